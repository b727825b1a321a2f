#!/usr/bin/env bash
# Token demo: the primary and backup software YubiKeys in a private pcscd, then
# `custody token scan` in both output forms. Run it inside the harness:
#
#   cargo build --bins && scripts/with-pcscd.sh -- scripts/demo-token.sh
#
# Uses target/debug binaries unless CUSTODY_BIN_DIR says otherwise.
set -euo pipefail
: "${CUSTODY_VPCD_PORT:?run me inside scripts/with-pcscd.sh}"
bin="${CUSTODY_BIN_DIR:-target/debug}"
fixtures="$(dirname "$0")/../hsm-fixtures"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
i=0
for image in primary backup; do
    "$bin/custody-emu" --image "$fixtures/$image.toml" --vpcd "127.0.0.1:$((CUSTODY_VPCD_PORT + i))" 2>/dev/null &
    pids+=($!)
    i=$((i + 1))
done
# Wait until every key is visible.
for _ in $(seq 100); do
    n=$("$bin/custody" --json token scan 2>/dev/null | grep -c '"card": true' || true)
    [ "$n" -ge 2 ] && break
    sleep 0.1
done
"$bin/custody" token scan
"$bin/custody" --json token scan
