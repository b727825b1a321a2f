#!/usr/bin/env bash
# The demo: a private pcscd with the vpcd driver, the primary and backup software YubiKeys from
# hsm-fixtures/, and `custody token scan` identifying both through the real PC/SC stack.
# Every process it starts is stopped when it ends.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/debug
[ -x "$bin/custody" ] && [ -x "$bin/custody-emu" ] || cargo build --bins

if [ "${CUSTODY_PCSCD_HARNESS:-}" != "1" ]; then
  exec scripts/with-pcscd.sh --readers 1 -- "$0" "$@"
fi

port="$CUSTODY_VPCD_PORT"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

step() { printf '\n== %s\n' "$*"; }

step "Presenting two emulated YubiKeys to pcscd (vpcd slots $port and $((port + 1)))"
"$bin/custody-emu" --image hsm-fixtures/primary.toml --vpcd "127.0.0.1:$port" --touch auto 2>/dev/null &
pids+=($!)
"$bin/custody-emu" --image hsm-fixtures/backup.toml --vpcd "127.0.0.1:$((port + 1))" --touch auto 2>/dev/null &
pids+=($!)

step "custody token scan: readers, serials, firmware, OATH device ids, credentials (never codes)"
for _ in $(seq 1 50); do
  out=$("$bin/custody" --json token scan 2>/dev/null || true)
  [ "$(grep -o '"serial"' <<<"$out" | wc -l)" -ge 2 ] && break
  sleep 0.2
done
"$bin/custody" token scan
n=$("$bin/custody" --json token scan | grep -o '"serial"' | wc -l)
if [ "$n" -lt 2 ]; then
  echo "demo: expected two YubiKeys through pcscd, found $n" >&2
  exit 1
fi
step "demo complete: both keys identified through pcscd"
