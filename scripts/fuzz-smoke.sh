#!/usr/bin/env bash
# The fuzz smoke run of `make test`: every cargo-fuzz target for RUNS inputs or SECS seconds,
# whichever ends first, JOBS targets at a time (the build is already done: `make fuzz-build`).
# A target that fails (a panic, a crash, a leak, a timeout) prints the end of its log, which
# names the input it saved under fuzz/artifacts/, and the run exits non-zero.
#
#   scripts/fuzz-smoke.sh RUNS SECS JOBS [cargo-fuzz run flags...]
set -euo pipefail
runs=${1:?runs}
secs=${2:?seconds}
jobs=${3:?jobs}
shift 3
cd "$(dirname "$0")/.."
export RUSTC_BOOTSTRAP=1
export CARGO=${CARGO:-cargo}

one() {
  local t=$1
  shift
  local log
  log=$(mktemp)
  local start=$SECONDS
  if "$CARGO" fuzz run "$@" "$t" -- -runs="$runs" -max_total_time="$secs" >"$log" 2>&1; then
    printf 'fuzz: %-26s ok   %3ss  %s\n' "$t" "$((SECONDS - start))" "$(grep -m1 '^Done' "$log" || echo 'no Done line')"
    rm -f "$log"
  else
    printf 'fuzz: %s FAILED after %ss; the end of its log:\n' "$t" "$((SECONDS - start))"
    tail -n 60 "$log"
    rm -f "$log"
    return 1
  fi
}
export -f one
export runs secs

"$CARGO" fuzz list | xargs -P "$jobs" -I{} bash -c 'one "$@"' _ {} "$@"
