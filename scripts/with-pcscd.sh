#!/usr/bin/env bash
# Runs a command next to a private pcscd whose readers are vpcd slots for the software YubiKey.
#
#   scripts/with-pcscd.sh [--port PORT] [--readers N] [--] CMD [ARGS...]
#
# The pcscd runs in its own mount namespace with a tmpfs on /run/pcscd, so it never meets the
# host's pcscd (pcscd always serves /run/pcscd/pcscd.comm), and in its own network namespace, so
# its vpcd ports are private. Needs root (unshare) and the packages `pcscd`, `vsmartcard-vpcd`
# and `iproute2` (`make deps`).
#
# N is 0 (pcscd without readers) or 1: one vpcd reader.conf entry with two slots, listening on
# TCP PORT (slot 0, reader "Yubico YubiKey OTP+FIDO+CCID 00 00") and PORT+1 (slot 1, reader
# "Yubico YubiKey OTP+FIDO+CCID 00 01"). vpcd 3.3 keeps one card context per slot number
# across all its entries, so a second entry would mix cards up. CMD runs with these set:
#   CUSTODY_PCSCD_HARNESS=1     the command runs inside the harness
#   CUSTODY_VPCD_PORT=PORT      the first vpcd port (connect custody-emu --vpcd 127.0.0.1:PORT)
#   CUSTODY_VPCD_READERS=N
#   CUSTODY_PCSCD_CMD="PCSCD ARGS..."  pcscd's command line (no spaces within a word), so a test
#                               can stop pcscd (pid in /run/pcscd/pcscd.pid) and start it again;
#                               a pcscd started that way is stopped when CMD ends
# The exit status is CMD's. Default: PORT 35963, N 1. CUSTODY_PCSCD_LOG=FILE keeps pcscd's
# debug log (APDUs included: test keys only) in FILE.
set -eu

port=35963
readers=1
while [ $# -gt 0 ]; do
    case "$1" in
        --port) port="$2"; shift 2 ;;
        --readers) readers="$2"; shift 2 ;;
        --) shift; break ;;
        *) break ;;
    esac
done
case "$readers" in
    0 | 1) ;;
    *)
        # The vpcd driver (3.3) keeps one card context per slot number across all its reader
        # entries: a second entry's slot 0 talks to the same card as the first's.
        echo "with-pcscd: --readers must be 0 or 1 (one vpcd entry, two slots)" >&2
        exit 2
        ;;
esac
[ $# -gt 0 ] || { echo "usage: $0 [--port PORT] [--readers N] [--] CMD [ARGS...]" >&2; exit 2; }

vpcd_lib=/usr/lib/pcsc/drivers/serial/libifdvpcd.so
if ! command -v pcscd >/dev/null 2>&1 && [ ! -x /usr/sbin/pcscd ]; then
    echo "with-pcscd: pcscd is not installed; run \`make deps\`" >&2; exit 127
fi
if [ ! -f "$vpcd_lib" ]; then
    echo "with-pcscd: $vpcd_lib is missing (package vsmartcard-vpcd); run \`make deps\`" >&2; exit 127
fi

if [ "${CUSTODY_PCSCD_NS:-}" != "1" ]; then
    # Re-enter this script in a private mount namespace and a PID namespace of its own (with
    # its own /proc), whose first process is this script: when it ends, the kernel ends
    # every process left in the namespace (an emulator a failing test left running would
    # otherwise keep the caller's output pipe open, and the caller would wait for ever). A
    # network namespace of its own too: its vpcd ports are private, so two harnesses on the
    # same port (two clones tested at once, a test beside a demo) never see each other's keys.
    export CUSTODY_PCSCD_NS=1
    exec unshare --mount --pid --net --fork --kill-child --mount-proc --propagation private -- \
        "$0" --port "$port" --readers "$readers" -- "$@"
fi

# The new network namespace has a loopback interface, down.
if ! command -v ip >/dev/null 2>&1; then
    echo "with-pcscd: ip (package iproute2) is missing; run \`make deps\`" >&2; exit 127
fi
ip link set lo up

pcscd_bin=$(command -v pcscd || echo /usr/sbin/pcscd)
work=$(mktemp -d "${TMPDIR:-/tmp}/custody-pcscd.XXXXXX")
mkdir -p "$work/reader.conf.d"
i=0
while [ "$i" -lt "$readers" ]; do
    p=$((port + 2 * i))
    hex=$(printf '0x%X' "$p")
    # pcscd does not number readers of equal names apart: entries after the first get a suffix.
    name="Yubico YubiKey OTP+FIDO+CCID"
    [ "$i" -eq 0 ] || name="$name $i"
    cat > "$work/reader.conf.d/vpcd-$i" <<CONF
FRIENDLYNAME "$name"
DEVICENAME /dev/null:$hex
LIBPATH $vpcd_lib
CHANNELID $hex
CONF
    i=$((i + 1))
done

mkdir -p /run/pcscd
mount -t tmpfs -o mode=0755 tmpfs /run/pcscd

# CUSTODY_PCSCD_LOG=FILE keeps pcscd's debug log (with APDUs) in FILE.
log="${CUSTODY_PCSCD_LOG:-$work/pcscd.log}"
if [ -n "${CUSTODY_PCSCD_LOG:-}" ]; then
    pcscd_cmd="$pcscd_bin -f -d -a -c $work/reader.conf.d"
else
    pcscd_cmd="$pcscd_bin -f -c $work/reader.conf.d"
fi
# shellcheck disable=SC2086 # the words of the command line
$pcscd_cmd >"$log" 2>&1 &
pcscd_pid=$!
cleanup() {
    kill "$pcscd_pid" 2>/dev/null || true
    wait "$pcscd_pid" 2>/dev/null || true
    # A pcscd CMD started again (the pid file is private to this namespace).
    restarted=$( { tr -d '\0' </run/pcscd/pcscd.pid; } 2>/dev/null || true)
    if [ -n "$restarted" ] && [ "$(cat "/proc/$restarted/comm" 2>/dev/null)" = pcscd ]; then
        kill "$restarted" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

# Ready when the socket exists and the last vpcd port listens (checked in /proc/net/tcp{,6}:
# connecting would look like a card to vpcd).
listening() {
    local hex
    hex=$(printf ':%04X' "$1")
    cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk -v p="$hex" '$2 ~ p"$" && $4 == "0A" { f = 1 } END { exit !f }'
}
ready() {
    [ -S /run/pcscd/pcscd.comm ] || return 1
    [ "$readers" -eq 0 ] || listening $((port + 2 * (readers - 1)))
}
n=0
until ready; do
    n=$((n + 1))
    if [ "$n" -gt 100 ] || ! kill -0 "$pcscd_pid" 2>/dev/null; then
        echo "with-pcscd: pcscd did not become ready; its log:" >&2
        cat "$log" >&2
        exit 1
    fi
    sleep 0.1
done

export CUSTODY_PCSCD_HARNESS=1 CUSTODY_VPCD_PORT="$port" CUSTODY_VPCD_READERS="$readers"
export CUSTODY_PCSCD_CMD="$pcscd_cmd"
set +e
"$@"
status=$?
set -e
exit "$status"
