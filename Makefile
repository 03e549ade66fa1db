# camstream — the two commands of the README, and a few more for developers.
#   make run    build and start `camstream serve` (single node, embedded defaults, ./data)
#   make test   the whole test suite (what CI runs)
#   make web    the web dashboard (web/dist): npm ci + build when missing or stale

SHELL := /bin/bash
CARGO ?= cargo
# Extra flags for `make run`, e.g. RUN_ARGS="--admin-password ..." or RUN_ARGS=--allow-any-key.
RUN_ARGS ?=
# Seconds per fuzz target: `make fuzz` (AddressSanitizer) and the smoke run in `make test`
# (no sanitizer: its build is what CI can afford; README "Fuzzing").
FUZZ_SECONDS ?= 300
FUZZ_SMOKE_SECONDS ?= 20

.PHONY: run build test lint unit fuzz fuzz-smoke bench bench-webrtc bench-abr bench-mux deps-run deps-test web web-spec web-test deploy-test

# The release binary embeds web/dist (build.rs), so the dashboard is built first.
run: deps-run web
	$(CARGO) build --release --bin camstream
	./target/release/camstream serve $(RUN_ARGS)

build: deps-run web
	$(CARGO) build --release --bin camstream

# `make run`/`make build` dump the OpenAPI document with the release profile they build
# anyway; the test targets with the dev profile `cargo test` uses.
run build: WEB_SPEC_FLAGS = --release

test: deps-test web-test deploy-test lint unit fuzz-smoke
	@echo "make test: all passed"

# --- web dashboard (web/, README "Dashboard") ---
# The OpenAPI document the dashboard's API types are generated from, rewritten only when it
# changed (so an unchanged API does not rebuild the dashboard). An API change that breaks
# the dashboard fails its type check here.
web-spec: deps-run
	$(CARGO) run -q $(WEB_SPEC_FLAGS) -p camstream-controlplane --example openapi > web/openapi.json.tmp
	@if cmp -s web/openapi.json.tmp web/openapi.json; then rm web/openapi.json.tmp; \
	  else mv web/openapi.json.tmp web/openapi.json; echo "web: the OpenAPI document changed"; fi

WEB_INPUTS = $(shell find web/src web/public -type f ! -name schema.d.ts 2>/dev/null) \
  $(wildcard web/*.json web/*.js web/*.ts web/index.html)

web/node_modules/.package-lock.json: web/package-lock.json
	cd web && npm ci --no-audit --no-fund
	touch $@

web/dist/index.html: web/node_modules/.package-lock.json $(WEB_INPUTS)
	cd web && npm run build

web: web-spec
	@$(MAKE) --no-print-directory web/dist/index.html

# Type check, lint and unit tests of the dashboard (its end-to-end test runs in `unit`:
# tests/dashboard, which needs web/dist).
web-test: deps-test web
	cd web && npx tsc --noEmit && npx eslint . && npx vitest run

# Alerting rules (deploy/prometheus, README "Deployment"): syntax and the cases that fire and
# do not fire each rule. promtool comes from Debian's `prometheus` package (scripts/deps.sh);
# a missing promtool fails here. The metric names themselves are checked against a live
# server by `cargo test --test deploy` (in `unit`).
deploy-test: deps-test
	promtool check rules deploy/prometheus/rules.yml
	cd deploy/prometheus && promtool test rules rules.test.yml

lint: deps-test
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# cargo builds every test target (the camstream binary the end-to-end tests run among them)
# before it runs any test; the bench's tests use that binary rather than build it again.
unit: deps-test web
	CAMSTREAM_BIN=$(CURDIR)/target/debug/camstream $(CARGO) test --workspace

fuzz: deps-test
	fuzz/run.sh $(FUZZ_SECONDS)

fuzz-smoke: deps-test
	FUZZ_SANITIZER=none fuzz/run.sh $(FUZZ_SMOKE_SECONDS)

bench: deps-test
	$(CARGO) build --release -p camstream -p camstream-bench
	./target/release/camstream-bench compare --scenario bench/scenarios/quick.toml \
	  --camstream-bin ./target/release/camstream --out bench/results/quick

# WebRTC viewers (CPU and memory per viewer, 200 viewers on one camera) and Chromium's
# glass-to-glass; about 3 minutes.
bench-webrtc: deps-test
	$(CARGO) build --release -p camstream -p camstream-bench
	scripts/browser-runner.sh target/bench-browser
	./target/release/camstream-bench webrtc --camstream-bin ./target/release/camstream \
	  --browser-runner target/bench-browser --out bench/results/webrtc-200

# ABR: one camera without and with its ladder, 3 rounds (CPU and RSS of camstream and of
# its ffmpeg transcoder per ABR camera); about 6 minutes.
bench-abr: deps-test
	$(CARGO) build --release -p camstream -p camstream-bench
	./target/release/camstream-bench abr --camstream-bin ./target/release/camstream \
	  --cameras 1 --repeats 3 --out bench/results/abr

bench-mux:
	$(CARGO) bench -p camstream-dataplane --bench mux

deps-run:
	@scripts/deps.sh run

deps-test:
	@scripts/deps.sh test
