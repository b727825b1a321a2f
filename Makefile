# mfa-custody: every entry point a person or CI uses.
#   make demo   the main job: a dual-control ceremony against emulated YubiKeys behind a real pcscd
#   make test   everything CI checks (installs missing system packages first)
#   make soak   the long runs: fuzzing for millions of executions, long crash loops
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
CARGO ?= cargo
FUZZ_SMOKE_RUNS ?= 20000
FUZZ_SOAK_RUNS ?= 10000000
TAMPER_SOAK_ROUNDS ?= 1000
export CARGO_TERM_COLOR ?= never

.PHONY: all deps build lint unit fuzz-build fuzz-smoke test demo soak secret-scan-demo bench clean

all: build

deps:
	scripts/deps.sh

build:
	$(CARGO) build --bins

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

unit:
	$(CARGO) test

# cargo-fuzz wants a nightly compiler; RUSTC_BOOTSTRAP=1 lets the stable one accept its flags.
fuzz-build:
	RUSTC_BOOTSTRAP=1 $(CARGO) fuzz build

fuzz-smoke: fuzz-build
	for t in $$(RUSTC_BOOTSTRAP=1 $(CARGO) fuzz list); do \
	  echo "fuzz: $$t ($(FUZZ_SMOKE_RUNS) runs)"; \
	  RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run "$$t" -- -runs=$(FUZZ_SMOKE_RUNS) -max_total_time=120 2>&1 | tail -n 2; \
	done

test: deps lint unit fuzz-smoke demo

demo: deps build
	scripts/demo.sh

soak: deps
	for t in $$(RUSTC_BOOTSTRAP=1 $(CARGO) fuzz list); do \
	  RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run "$$t" -- -runs=$(FUZZ_SOAK_RUNS); \
	done
	CUSTODY_TAMPER_ROUNDS=$(TAMPER_SOAK_ROUNDS) $(CARGO) test --test tamper_harness -- --nocapture
	CUSTODY_CARD_FAULTS=all $(CARGO) test --test pcscd_faults -- --nocapture
	$(MAKE) secret-scan-demo

# The demo with custodyd at debug level, then every file it kept scanned for its secrets.
secret-scan-demo: build
	rm -rf target/secret-scan-demo
	CUSTODY_DEMO_LOG_LEVEL=debug scripts/demo.sh --keep target/secret-scan-demo
	CUSTODY_SCAN_DIR=$(CURDIR)/target/secret-scan-demo $(CARGO) test --test secret_hygiene -- --ignored --nocapture

bench: deps
	$(CARGO) bench

clean:
	$(CARGO) clean
	rm -rf fuzz/target
