# camstream — the two commands of the README, and a few more for developers.
#   make run    build and start `camstream serve` (single node, embedded defaults, ./data)
#   make test   the whole test suite (what CI runs)

SHELL := /bin/bash
CARGO ?= cargo
# Extra flags for `make run`, e.g. RUN_ARGS="--admin-password ..." or RUN_ARGS=--allow-any-key.
RUN_ARGS ?=
# Seconds per fuzz target: `make fuzz` (AddressSanitizer) and the smoke run in `make test`
# (no sanitizer: its build is what CI can afford; README "Fuzzing").
FUZZ_SECONDS ?= 300
FUZZ_SMOKE_SECONDS ?= 20

.PHONY: run build test lint unit fuzz fuzz-smoke bench bench-mux deps-run deps-test

run: deps-run
	$(CARGO) build --release --bin camstream
	./target/release/camstream serve $(RUN_ARGS)

build: deps-run
	$(CARGO) build --release --bin camstream

test: deps-test lint unit fuzz-smoke
	@echo "make test: all passed"

lint: deps-test
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

unit: deps-test
	$(CARGO) test --workspace

fuzz: deps-test
	fuzz/run.sh $(FUZZ_SECONDS)

fuzz-smoke: deps-test
	FUZZ_SANITIZER=none fuzz/run.sh $(FUZZ_SMOKE_SECONDS)

bench: deps-test
	$(CARGO) build --release -p camstream -p camstream-bench
	./target/release/camstream-bench compare --scenario bench/scenarios/quick.toml \
	  --camstream-bin ./target/release/camstream --out bench/results/quick

bench-mux:
	$(CARGO) bench -p camstream-dataplane --bench mux

deps-run:
	@scripts/deps.sh run

deps-test:
	@scripts/deps.sh test
