#!/usr/bin/env bash
# The mfa-custody story, end to end, with scripted participants:
#
#   scripts/demo.sh [--keep DIR]
#
# Inside a private pcscd (scripts/with-pcscd.sh, two vpcd slots) it starts two emulated
# YubiKeys (hsm-fixtures/primary.toml and backup.toml, touch answered automatically) and a
# custodyd on a temporary directory, then: genesis with two officers, unseal, the officers'
# enrolment (each proving their keyring passphrase; another officer's is refused) and second
# factors, a third officer, an operator and an auditor, an AWS account, both keys registered
# and enrolled, sealed into the safe, a code request, a refused self-approval, two approvals,
# check-out with the seal matched, the code (checked against oathtool), check-in under a new
# seal, an export and its offline verification, and the seal by an officer (an operator's is
# refused).
#
# --keep DIR keeps everything in DIR (created if missing) and writes DIR/summary.json and
# DIR/env.sh: the demo's test-only passphrases and second-factor seeds, and the commands that
# bring the environment back (emulated keys and a sealed custodyd) to go on by hand:
#   scripts/with-pcscd.sh -- bash --rcfile DIR/env.sh     then: demo_start (README.md)
# CUSTODY_DEMO_LOG_LEVEL (default info) is custodyd's --log-level.
# Every process the demo starts is stopped when it ends. Needs root, pcscd, vsmartcard-vpcd,
# oathtool and jq (`make deps`), and the binaries (`cargo build --bins`; CUSTODY_BIN_DIR
# overrides target/debug).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
keep=""
if [ "${1:-}" = "--keep" ]; then
    [ $# -ge 2 ] || { echo "usage: $0 [--keep DIR]" >&2; exit 2; }
    keep=$(mkdir -p "$2" && cd "$2" && pwd)
fi

if [ "${CUSTODY_PCSCD_HARNESS:-}" != "1" ]; then
    exec "$repo/scripts/with-pcscd.sh" --port "${CUSTODY_DEMO_PORT:-35963}" --readers 1 -- "$repo/scripts/demo.sh" "$@"
fi

bin=${CUSTODY_BIN_DIR:-$repo/target/debug}
[ ! -d "$bin" ] || bin=$(cd "$bin" && pwd)
for b in custody custodyd custody-emu; do
    [ -x "$bin/$b" ] || { echo "demo: $bin/$b missing; run cargo build --bins" >&2; exit 1; }
done
for t in oathtool jq; do
    command -v "$t" >/dev/null || { echo "demo: $t is missing; run make deps" >&2; exit 1; }
done

work=${keep:-$(mktemp -d "${TMPDIR:-/tmp}/custody-demo.XXXXXX")}
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do
        kill "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    [ -n "$keep" ] || rm -rf "$work"
}
trap cleanup EXIT

# DIR/env.sh of --keep: source it in a shell inside a private pcscd (scripts/with-pcscd.sh) to go
# on from where the demo ended, with the same keys, ledger, people and secrets.
write_env() {
    local f=$1 v
    {
        echo "# mfa-custody demo environment, kept by scripts/demo.sh --keep. Test-only secrets:"
        echo "# never use them anywhere real. Source it inside the demo's private pcscd:"
        printf '#   %q/scripts/with-pcscd.sh -- bash --rcfile %q\n' "$repo" "$f"
        echo "# then run demo_start (emulated keys and custodyd, sealed), and go on by hand."
        printf 'export CUSTODY_DEMO_DIR=%q\n' "$work"
        printf 'export PATH=%q:"$PATH"\n' "$bin"
        printf 'export CUSTODY_SOCKET=%q\n' "$socket"
        printf 'export CUSTODY_LEDGER_ID=%q\n' "$(jq -r .ledger_id "$work/genesis.json")"
        printf 'export XDG_RUNTIME_DIR=%q\n' "$XDG_RUNTIME_DIR"
        echo "# Keyring (unseal) passphrases of the genesis officers."
        for v in P_ALICE P_BOB; do printf '%s=%q\n' "$v" "${!v}"; done
        echo "# Custody passphrases (officers alice, bob, carol; operator dave; auditor erin)."
        for v in U_ALICE U_BOB U_CAROL U_DAVE U_ERIN; do printf '%s=%q\n' "$v" "${!v}"; done
        echo "# The officers' second-factor seeds (base32): totp \"\$S_ALICE\" prints the current code."
        for v in S_ALICE S_BOB S_CAROL; do printf '%s=%q\n' "$v" "${!v}"; done
        echo "# The AWS account, the provider's seed (RFC 6238's test seed), the keys and their seals."
        printf 'ACCOUNT=%q\nSEED=%q\nPUBKEY=%q\n' "$account" "$SEED" "$pubkey"
        echo "PRIMARY=10000001   # in safe A, seal BAG-0003"
        echo "BACKUP=10000002    # in safe B, seal BAG-0002"
        cat <<'ENV'
totp() { oathtool --totp -b "${1//=/}"; }
demo_start() {
    [ "${CUSTODY_PCSCD_HARNESS:-}" = 1 ] || { echo "demo_start: run it in the shell scripts/with-pcscd.sh started" >&2; return 1; }
    local d=$CUSTODY_DEMO_DIR
    custody-emu --image "$CUSTODY_DEMO_REPO/hsm-fixtures/primary.toml" --state "$d/primary.state" \
        --vpcd "127.0.0.1:$CUSTODY_VPCD_PORT" --touch auto >>"$d/emu-primary.log" 2>&1 &
    custody-emu --image "$CUSTODY_DEMO_REPO/hsm-fixtures/backup.toml" --state "$d/backup.state" \
        --vpcd "127.0.0.1:$((CUSTODY_VPCD_PORT + 1))" --touch auto >>"$d/emu-backup.log" 2>&1 &
    custodyd --config "$d/custody.toml" 2>>"$d/custodyd.log" &
    # custody status answers 6 while sealed, 0 unsealed, anything else until custodyd listens.
    local i rc
    for i in $(seq 100); do
        rc=0; [ -S "$CUSTODY_SOCKET" ] && { custody status >/dev/null 2>&1 || rc=$?; } || rc=1
        case $rc in 0|6) break ;; esac
        sleep 0.1
    done
    custody status || true
    echo "next: custody unseal --officer alice   (then bob; passphrases: \$P_ALICE, \$P_BOB)"
}
demo_stop() { kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; echo "stopped"; }
ENV
        printf 'CUSTODY_DEMO_REPO=%q\n' "$repo"
        echo 'echo "mfa-custody demo environment loaded: demo_start, then see README.md (Going on by hand)"'
    } >"$f"
    chmod 0600 "$f"
}

step=0
say() { step=$((step + 1)); printf '\n== %d. %s\n' "$step" "$*"; }
# Login sessions are kept under the demo's own directory.
export XDG_RUNTIME_DIR="$work/run"
mkdir -p -m 0700 "$XDG_RUNTIME_DIR"
run() { printf '   $ custody %s\n' "$*" >&2; "$bin/custody" --socket "$work/custodyd.sock" "$@"; }

ledger="$work/ledger"
socket="$work/custodyd.sock"
# Demo passphrases (never use these anywhere real).
P_ALICE='alice-Keyring-Pass-1'; P_BOB='bob-Keyring-Pass-22'
U_ALICE='alice-User-Pass-333'; U_BOB='bob-User-Pass-4444'; U_CAROL='carol-User-Pass-55'
U_DAVE='dave-Operator-Pass-6'; U_ERIN='erin-Auditor-Pass-7'

# The current TOTP code of a base32 seed, BACK steps ago (0 or 1), computed by oathtool.
totp() {
    local seed=$1 back=$2 now
    now=$(date +%s)
    oathtool --totp -b -N "@$(( (now / 30 - back) * 30 ))" "${seed//=/}"
}
# Leave at least 12 s before the next TOTP step boundary.
settle() {
    local s=$(( $(date +%s) % 30 ))
    if [ "$s" -gt 18 ]; then
        echo "   (waiting $((30 - s)) s for a fresh TOTP step)"
        sleep $((30 - s))
    fi
}
next_step() {
    local s=$(( $(date +%s) % 30 ))
    echo "   (each second-factor code is accepted once: waiting $((30 - s)) s for the next step)"
    sleep $((30 - s + 1))
}

say "Genesis: officers alice and bob create the ledger (test-strength key derivation for the demo)"
printf '%s\n%s\n' "$P_ALICE" "$P_BOB" | "$bin/custody" --json init --ledger "$ledger" \
    --officer alice --officer bob --passphrase-fd 0 --insecure-test-kdf-iterations 10000 \
    > "$work/genesis.json"
pubkey=$(jq -r .public_key "$work/genesis.json")
echo "   ledger $(jq -r .ledger_id "$work/genesis.json"), checkpoint key $pubkey"

say "Two emulated YubiKeys join the private pcscd (primary 10000001, backup 10000002)"
"$bin/custody-emu" --image "$repo/hsm-fixtures/primary.toml" --state "$work/primary.state" \
    --vpcd "127.0.0.1:$CUSTODY_VPCD_PORT" --touch auto >"$work/emu-primary.log" 2>&1 &
pids+=($!)
"$bin/custody-emu" --image "$repo/hsm-fixtures/backup.toml" --state "$work/backup.state" \
    --vpcd "127.0.0.1:$((CUSTODY_VPCD_PORT + 1))" --touch auto >"$work/emu-backup.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
    n=$("$bin/custody" --json token scan 2>/dev/null | jq '[.readers[] | select(.card)] | length' 2>/dev/null || echo 0)
    [ "$n" = 2 ] && break
    sleep 0.1
done
"$bin/custody" --json token scan | jq -r '.readers[] | "   \(.reader): serial \(.device.serial // "-")"'

say "custodyd starts, sealed"
# The emulated keys' attestations chain to the emulator's public test CA, which custodyd
# trusts here instead of Yubico's roots (it warns at start): registration gives each key an
# attested custody key, and every check-in and release challenges it.
cat > "$work/custody.toml" <<EOF
ledger_dir = "$ledger"
socket = "$socket"
touch_timeout_secs = 10
piv_attestation_test_ca = "$repo/hsm-fixtures/piv-test-ca.pem"
[policy]
passphrase_kdf_iterations = 10000
EOF
"$bin/custodyd" --config "$work/custody.toml" --log-level "${CUSTODY_DEMO_LOG_LEVEL:-info}" 2>"$work/custodyd.log" &
pids+=($!)
for _ in $(seq 100); do [ -S "$socket" ] && break; sleep 0.05; done
# custody status exits 6 while custodyd is sealed (0 once unsealed).
rc=0; run status || rc=$?
[ "$rc" -eq 6 ] || { echo "demo: custody status of a sealed custodyd exited $rc, not 6" >&2; exit 1; }

say "Officers unseal it, one passphrase each"
run unseal --officer alice --passphrase-fd 3 3<<<"$P_ALICE"
run unseal --officer bob --passphrase-fd 3 3<<<"$P_BOB"
run status

say "Alice and bob enrol as custody officers (each proves their keyring passphrase) and load their second factors"
if run user bootstrap alice --passphrase-fd 3 \
        3< <(printf '%s\n%s\n%s\n' "$P_BOB" "$U_ALICE" "$U_ALICE") >/dev/null 2>&1; then
    echo "demo: bob's keyring passphrase enrolled alice" >&2; exit 1
fi
echo "   bob's keyring passphrase does not enrol alice: refused and recorded"
S_ALICE=$(run --json user bootstrap alice --passphrase-fd 3 \
    3< <(printf '%s\n%s\n%s\n' "$P_ALICE" "$U_ALICE" "$U_ALICE") | jq -r .factor.base32)
S_BOB=$(run --json user bootstrap bob --passphrase-fd 3 \
    3< <(printf '%s\n%s\n%s\n' "$P_BOB" "$U_BOB" "$U_BOB") | jq -r .factor.base32)
echo "   (seeds shown once; the demo's authenticators keep them)"

settle
say "A third officer, carol, added by alice and bob together"
S_CAROL=$(run --json user add carol --role officer --by alice --by bob \
    --passphrase-fd 3 --totp-fd 4 \
    3< <(printf '%s\n%s\n%s\n' "$U_ALICE" "$U_BOB" "$U_CAROL") \
    4< <(printf '%s\n%s\n' "$(totp "$S_ALICE" 1)" "$(totp "$S_BOB" 1)") | jq -r .factor.base32)
echo "   carol enrolled"

say "An operator (dave, bound to uid $(id -u)) and an auditor (erin), each added by carol"
run user add dave --role operator --uid "$(id -u)" --by carol --passphrase-fd 3 --totp-fd 4 \
    3< <(printf '%s\n%s\n' "$U_CAROL" "$U_DAVE") 4<<<"$(totp "$S_CAROL" 1)"
run user add erin --role auditor --by carol --passphrase-fd 3 --totp-fd 4 \
    3< <(printf '%s\n%s\n' "$U_CAROL" "$U_ERIN") 4<<<"$(totp "$S_CAROL" 0)"
say "Erin, the auditor, logs in at this terminal: her session serves the reads (lists, shows, export)"
run login --as erin --no-totp --passphrase-fd 3 3<<<"$U_ERIN"
run user list

account=123456789012
say "Alice registers the AWS account $account"
run account add --provider aws --account "$account" --alias demo-prod \
    --root-email root@example.test --credential 'AWS:demo-prod-root' \
    --as alice --passphrase-fd 3 --totp-fd 4 3<<<"$U_ALICE" 4<<<"$(totp "$S_ALICE" 0)"

say "Bob registers the primary key, presented in the reader: it gets its attested PIV custody key"
run device register 10000001 --role primary --as bob --passphrase-fd 3 --totp-fd 4 \
    3<<<"$U_BOB" 4<<<"$(totp "$S_BOB" 0)"

next_step
say "Alice registers the backup key"
run device register 10000002 --role backup --as alice --passphrase-fd 3 --totp-fd 4 \
    3<<<"$U_ALICE" 4<<<"$(totp "$S_ALICE" 0)"

# The provider's seed for the demo account: the public RFC 6238 test seed.
SEED=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ
say "Enrolment: bob and carol program the provider's seed into both keys (touch on each)"
run enrol --account "$account" --primary 10000001 --backup 10000002 --by bob --by carol \
    --passphrase-fd 3 --totp-fd 4 --seed-fd 5 \
    3< <(printf '%s\n%s\n' "$U_BOB" "$U_CAROL") \
    4< <(printf '%s\n%s\n' "$(totp "$S_BOB" 0)" "$(totp "$S_CAROL" 0)") 5<<<"$SEED"

next_step
say "Both keys go into sealed bags in the safe"
run device checkin 10000001 --seal BAG-0001 --location 'safe A, shelf 1' --as alice \
    --passphrase-fd 3 --totp-fd 4 3<<<"$U_ALICE" 4<<<"$(totp "$S_ALICE" 0)"
run device checkin 10000002 --seal BAG-0002 --location 'safe B, shelf 1' --as bob \
    --passphrase-fd 3 --totp-fd 4 3<<<"$U_BOB" 4<<<"$(totp "$S_BOB" 0)"

say "Operator dave requests one code to change the root password"
R1=$(run --json request code --account "$account" --task change-root-password --ticket SEC-42 \
    --reason "rotate the root password after the annual audit" --as dave --no-totp \
    --passphrase-fd 3 3<<<"$U_DAVE" | jq -r .request.id)
echo "   request $R1 pending"

say "Carol opens a request of her own"
R2=$(run --json request code --account "$account" --task change-support-plan --ticket SEC-43 \
    --reason "move the account to the business support plan" --as carol \
    --passphrase-fd 3 --totp-fd 4 3<<<"$U_CAROL" 4<<<"$(totp "$S_CAROL" 0)" | jq -r .request.id)
echo "   request $R2 pending"

next_step
say "Carol tries to approve her own request: refused"
if out=$(run --json approve "$R2" --as carol --passphrase-fd 3 --totp-fd 4 \
        3<<<"$U_CAROL" 4<<<"$(totp "$S_CAROL" 0)"); then
    echo "demo: a self-approval was accepted" >&2; exit 1
fi
echo "   $(jq -r .error <<<"$out")"

say "Alice and bob approve dave's request, each with passphrase and second factor"
run approve "$R1" --as alice --passphrase-fd 3 --totp-fd 4 3<<<"$U_ALICE" 4<<<"$(totp "$S_ALICE" 0)"
run approve "$R1" --as bob --passphrase-fd 3 --totp-fd 4 3<<<"$U_BOB" 4<<<"$(totp "$S_BOB" 0)"
run request list

next_step
say "Alice checks the primary key out for the request; the bag's seal matches"
run device checkout 10000001 --seal BAG-0001 --request "$R1" --as alice \
    --passphrase-fd 3 --totp-fd 4 3<<<"$U_ALICE" 4<<<"$(totp "$S_ALICE" 0)"

say "Dave receives the code, once (the key is touched)"
run --json code "$R1" --as dave --no-totp --passphrase-fd 3 3<<<"$U_DAVE" > "$work/code.json"
code=$(jq -r .code.code "$work/code.json")
time_step=$(jq -r .code.step "$work/code.json")
device_serial=$(jq -r .code.device "$work/code.json")
expected=$(oathtool --totp -b -N "@$((time_step * 30))" "$SEED")
echo "   code $code for step $time_step from key $device_serial, $(jq -r .code.seconds_remaining "$work/code.json") s left"
if [ "$code" != "$expected" ]; then
    echo "demo: the code $code differs from oathtool's $expected" >&2; exit 1
fi
echo "   oathtool, computing independently from the seed, agrees: $expected"
if run code "$R1" --as dave --no-totp --passphrase-fd 3 3<<<"$U_DAVE" >/dev/null 2>&1; then
    echo "demo: a second code was released" >&2; exit 1
fi
echo "   a second code for the same request is refused"

say "Bob checks the key back in under a new seal"
run device checkin 10000001 --seal BAG-0003 --location 'safe A, shelf 1' --as bob \
    --passphrase-fd 3 --totp-fd 4 3<<<"$U_BOB" 4<<<"$(totp "$S_BOB" 0)"
run device list

say "Export through custodyd and verify it offline with the pinned key"
export_path="$work/export.jsonl"
run export --out "$export_path"
"$bin/custody" audit verify "$export_path" --pubkey "$pubkey"

say "Officer carol seals custodyd (passphrase and second factor); it stops on SIGTERM"
if run seal --as dave --no-totp --passphrase-fd 3 3<<<"$U_DAVE" >/dev/null 2>&1; then
    echo "demo: an operator sealed the daemon" >&2; exit 1
fi
echo "   operator dave may not seal: refused, custodyd stays unsealed"
run seal --as carol --passphrase-fd 3 --totp-fd 4 3<<<"$U_CAROL" 4<<<"$(totp "$S_CAROL" 0)"
kill -TERM "${pids[2]}"; wait "${pids[2]}" || true

if [ -n "$keep" ]; then
    jq -n --arg account "$account" --arg export "$export_path" --arg pubkey "$pubkey" \
        --arg ledger "$ledger" --arg request "$R1" --arg code "$code" \
        --argjson step "$time_step" --argjson serial "$device_serial" \
        '{code: $code, time_step: $step, account_id: $account, device_serial: $serial,
          request: $request, export_path: $export, pubkey: $pubkey, ledger_dir: $ledger}' \
        > "$work/summary.json"
    write_env "$work/env.sh"
    echo "kept in $work (summary.json; env.sh to go on by hand: see README.md)"
fi
echo
echo "demo: done"
