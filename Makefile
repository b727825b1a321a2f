# mfa-custody: every entry point a person or CI uses.
#   make demo   the main job: a dual-control ceremony against emulated YubiKeys behind a real pcscd
#   make test   everything CI checks (installs missing system packages first)
#   make runbooks  run every command of docs/runbooks/ against the demo environment (minutes)
#   make soak   the long runs: fuzzing for millions of executions, custodyd crash and load loops
#   make bench  the criterion benchmarks, then custodyd under load (make bench-daemon)
#   make docs   regenerate docs/cli.md from the CLI definitions (tests/it/cli/generate.rs checks it)
#   make deb    the Debian package (release build) in target/debian/
#   make bundle the offline bundle for the air-gapped host in target/bundle/ (needs the network)
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
CARGO ?= cargo
FUZZ_SMOKE_RUNS ?= 20000
FUZZ_SMOKE_SECS ?= 30
FUZZ_SMOKE_JOBS ?= 2
FUZZ_SOAK_RUNS ?= 10000000
# Seconds per target in `make soak` (0: no limit, every target runs FUZZ_SOAK_RUNS inputs).
FUZZ_SOAK_SECS ?= 0
# The integration tests run custodyd on a clock they control: custodyd-testclock, built only
# with this feature (never by `cargo build --release --bins`, never packaged).
TEST_FEATURES := --features test-clock
# clippy also checks the benchmarks, which need the `bench` feature (criterion).
LINT_FEATURES := --features test-clock,bench
TAMPER_SOAK_ROUNDS ?= 1000
export CARGO_TERM_COLOR ?= never

.PHONY: all deps build lint unit fuzz-build fuzz-smoke test demo demo-script demo-built runbooks soak secret-scan-demo bench bench-daemon report-screenshot clean docs deb bundle

all: build

deps:
	scripts/deps.sh

build:
	$(CARGO) build --bins

# clippy checks in a target directory of its own: it shares no artifact with the test build
# (check metadata, the dev profile), and so it never waits for, nor holds, the tests' build lock.
LINT_TARGET_DIR ?= target/lint
lint:
	$(CARGO) fmt --check
	CARGO_TARGET_DIR=$(LINT_TARGET_DIR) $(CARGO) clippy --all-targets $(LINT_FEATURES) -- -D warnings

unit:
	$(CARGO) test $(TEST_FEATURES)

# cargo-fuzz wants a nightly compiler; RUSTC_BOOTSTRAP=1 lets the stable one accept its flags.
# The smoke run uses an unoptimised build with debug assertions and overflow checks and without
# AddressSanitizer (the crate forbids unsafe code): it builds in a third of the time and still
# finds panics. `make soak` builds the optimised, AddressSanitizer-instrumented targets.
FUZZ_SMOKE_FLAGS := --dev -s none
fuzz-build:
	RUSTC_BOOTSTRAP=1 $(CARGO) fuzz build $(FUZZ_SMOKE_FLAGS)

# Two targets at a time: by the time the fuzz build is done, the tests have finished with the
# cores. Each stops at FUZZ_SMOKE_RUNS inputs or FUZZ_SMOKE_SECS seconds.
fuzz-smoke: fuzz-build
	scripts/fuzz-smoke.sh $(FUZZ_SMOKE_RUNS) $(FUZZ_SMOKE_SECS) $(FUZZ_SMOKE_JOBS) $(FUZZ_SMOKE_FLAGS)

# Every test binary (the library's unit tests and `it`, the integration tests, runbooks among
# them) is built first, with both cores. Then everything runs side by side: the tests, the
# runbooks, the demo (on real time, mostly waiting), clippy (its own target directory) and the
# fuzz smoke (its own, in fuzz/). Nothing after the first build compiles into target/, so no job
# waits for cargo's lock on it.
test: deps
	$(CARGO) fmt --check
	$(CARGO) test $(TEST_FEATURES) --no-run
	$(MAKE) --no-print-directory -j5 --output-sync=target unit lint fuzz-smoke runbooks demo-built

demo: deps build demo-script

demo-script:
	scripts/demo.sh

# The demo inside `make test` runs the binaries the integration tests' build put in target/debug
# (`cargo test` builds them under its own profile, so a `cargo build` here would compile the whole
# tree a second time). The test-clock feature adds custodyd-testclock and changes nothing in the
# others; `make demo` builds without it.
demo-built:
	scripts/demo.sh

# tests/it/runbooks.rs is ignored by a plain `cargo test` (it plays every runbook); this runs it.
runbooks: deps
	$(CARGO) test $(TEST_FEATURES) --test it -- --ignored runbooks::

# The long reliability variants (docs/reliability.md): 1,000 SIGKILLs of custodyd with code
# releases, and 200 clients for 5 minutes. CUSTODY_CRASH_KILLS and CUSTODY_LOAD_SECS resize them.
soak: deps
	for t in $$(RUSTC_BOOTSTRAP=1 $(CARGO) fuzz list); do \
	  RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run "$$t" -- -runs=$(FUZZ_SOAK_RUNS) -max_total_time=$(FUZZ_SOAK_SECS); \
	done
	CUSTODY_TAMPER_ROUNDS=$(TAMPER_SOAK_ROUNDS) $(CARGO) test $(TEST_FEATURES) --test it -- --nocapture ledger::tamper_harness::
	CUSTODY_CARD_FAULTS=all $(CARGO) test $(TEST_FEATURES) --test it -- --nocapture pcscd::faults::
	$(MAKE) secret-scan-demo
	$(CARGO) test --release --test it -- --ignored --nocapture daemon::crash::
	$(CARGO) test --release --test it -- --ignored --nocapture daemon::load::

# The demo with custodyd at debug level, then every file it kept scanned for its secrets.
secret-scan-demo: build
	rm -rf target/secret-scan-demo
	CUSTODY_DEMO_LOG_LEVEL=debug scripts/demo.sh --keep target/secret-scan-demo
	CUSTODY_SCAN_DIR=$(CURDIR)/target/secret-scan-demo $(CARGO) test $(TEST_FEATURES) --test it -- --ignored --nocapture secrets::hygiene::

bench: deps
	$(CARGO) bench --features bench
	$(MAKE) --no-print-directory bench-daemon

# custodyd under 200 clients while one release waits 10 s for a touch, behind a private pcscd
# (docs/reliability.md, "Daemon benchmark"); about 90 s, most of it setup and the wait for a
# fresh TOTP step. CUSTODY_BENCH_CLIENTS, _SECS, _THINK_MS, _MAX_OPS and _SEED resize it.
# Then signed approvals (`custody approve --sign` on an emulated YubiKey behind pcscd) against
# TOTP approvals, median and p90 of each (about 10 s); CUSTODY_BENCH_APPROVALS (10) sets how many.
bench-daemon: deps
	$(CARGO) test $(TEST_FEATURES) --test it -- --ignored --nocapture daemon::bench::

# The custody report in a real browser: the report test keeps its page, headless Chromium
# (`apt-get install chromium`; not part of make test) draws it: target/custody-report.png.
report-screenshot:
	AUDIT_REPORT_KEEP=$(CURDIR)/target/custody-report.html $(CARGO) test $(TEST_FEATURES) --test it -- cli::audit_report::report_of_a_real_export
	@command -v chromium >/dev/null || { echo "report-screenshot needs chromium: apt-get install chromium" >&2; exit 1; }
	chromium --headless=new --no-sandbox --disable-gpu --hide-scrollbars --window-size=1280,4000 \
	  --screenshot=$(CURDIR)/target/custody-report.png file://$(CURDIR)/target/custody-report.html
	@test -s target/custody-report.png && echo "report-screenshot: target/custody-report.png"

docs:
	$(CARGO) run --quiet --example generate-docs > docs/cli.md.tmp
	mv docs/cli.md.tmp docs/cli.md

# The Debian package: custody and custodyd (release build), the unit, the configuration as a
# conffile, manual pages, completions (scripts/build-deb.sh). tests/it/packaging/deb.rs builds it
# from the test build's binaries and installs, upgrades and purges it in a throwaway root.
deb: deps
	scripts/build-deb.sh

# The package plus every non-essential Debian package it needs at run time (apt-get download),
# SHA256SUMS and INSTALL.txt: what goes to the air-gapped host (docs/install.md).
bundle: deps
	scripts/build-bundle.sh

clean:
	$(CARGO) clean
	rm -rf fuzz/target
