# camstream — the two commands of the README, and a few more for developers.
#   make run    build and start `camstream serve` (single node, embedded defaults, ./data)
#   make test   the whole test suite (what CI runs)

SHELL := /bin/bash
CARGO ?= cargo
# `make run` is the developer quick start: any stream key is accepted and used as the
# camera id. Override, e.g. `make run RUN_ARGS="--config camstream.toml"`.
RUN_ARGS ?= --allow-any-key
FUZZ_SECONDS ?= 10

.PHONY: run build test lint unit fuzz bench deps-run deps-test

run: deps-run
	$(CARGO) build --release --bin camstream
	./target/release/camstream serve $(RUN_ARGS)

build: deps-run
	$(CARGO) build --release --bin camstream

test: deps-test lint unit
	@echo "make test: all passed"

lint: deps-test
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

unit: deps-test
	$(CARGO) test --workspace

fuzz:
	fuzz/run.sh $(FUZZ_SECONDS)

bench:
	$(CARGO) bench -p camstream-dataplane --bench mux

deps-run:
	@scripts/deps.sh run

deps-test:
	@scripts/deps.sh test
