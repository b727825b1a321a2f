#!/usr/bin/env bash
# Writes the offline bundle for the air-gapped custody host, on a connected build machine that
# runs the same Debian release and architecture as the host:
#
#   scripts/build-bundle.sh [--out DIR]
#
# DIR (default target/bundle) gets mfa-custody-VERSION-ARCH/ and the same as a .tar:
#   mfa-custody_VERSION_ARCH.deb   the package (scripts/build-deb.sh)
#   debs/                          every Debian package it needs at run time that is not
#                                  Essential (pcscd, libccid, libpcsclite1, libssl3, ... and
#                                  their own dependencies), fetched with `apt-get download`
#   SHA256SUMS                     the SHA-256 of every file above
#   INSTALL.txt                    the one-page install sheet
#
# Dependencies are followed through Depends and Pre-Depends; of alternatives, the one
# installed on this machine is taken (else the first real package).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
out="$repo/target/bundle"
while [ $# -gt 0 ]; do
    case "$1" in
    --out) out=$2; shift 2 ;;
    *) echo "usage: $0 [--out DIR]" >&2; exit 2 ;;
    esac
done
for t in apt-get apt-cache dpkg-deb sha256sum; do
    command -v "$t" >/dev/null || { echo "bundle: $t is missing (a Debian build machine?)" >&2; exit 1; }
done

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

# The dependencies of package $1, one per line: of each group of alternatives, the first one
# installed here, else the first real (not virtual) package.
deps_of() {
    local line name pick group=()
    flush() {
        ((${#group[@]})) || return 0
        pick=""
        for name in "${group[@]}"; do installed "$name" && { pick=$name; break; }; done
        if [ -z "$pick" ]; then
            for name in "${group[@]}"; do [[ $name == \<* ]] || { pick=$name; break; }; done
        fi
        [ -z "$pick" ] || echo "$pick"
        group=()
    }
    while IFS= read -r line; do
        # "  Depends: X" ends a group; " |Depends: X" has an alternative on the next line.
        if [[ $line =~ ^\ ([\ |])(Pre)?Depends:\ (.*)$ ]]; then
            group+=("${BASH_REMATCH[3]}")
            [ "${BASH_REMATCH[1]}" = "|" ] || flush
        fi
    done < <(apt-cache depends --no-recommends --no-suggests --no-conflicts --no-breaks \
        --no-replaces --no-enhances "$1")
    flush
}

# Every package reachable from the arguments.
closure() {
    local queue=("$@") seen=" " p
    while ((${#queue[@]})); do
        p=${queue[0]}
        queue=("${queue[@]:1}")
        case "$seen" in *" $p "*) continue ;; esac
        seen+="$p "
        mapfile -t -O "${#queue[@]}" queue < <(deps_of "$p")
    done
    echo $seen
}

deb=$("$repo/scripts/build-deb.sh" | tail -n 1)
version=$(dpkg-deb -f "$deb" Version)
arch=$(dpkg-deb -f "$deb" Architecture)
depends=$(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed 's/[ (].*//; s/^ *//' | grep -v '^$' || true)
release=$(. /etc/os-release && echo "${PRETTY_NAME:-unknown}")

name="mfa-custody-$version-$arch"
dir="$out/$name"
rm -rf "$dir"
mkdir -p "$dir/debs"
cp "$deb" "$dir/"

needed=()
for p in $(closure $depends); do
    essential=$(apt-cache show --no-all-versions "$p" | sed -n 's/^Essential: //p' | head -n 1)
    [ "$essential" = "yes" ] || needed+=("$p")
done
echo "bundle: fetching ${needed[*]}" >&2
(cd "$dir/debs" && apt-get download -q "${needed[@]}")

cat >"$dir/INSTALL.txt" <<SHEET
mfa-custody $version ($arch): installing on the air-gapped custody host
Built on: $release. The host must run the same Debian release and architecture.

1. Check the bundle (on the host, from this directory):
     sha256sum -c SHA256SUMS
   Every line must say OK. Compare SHA256SUMS with the copy the builder signed or read out.

2. Install the package and what it needs (no network is used):
     sudo apt-get install --no-download ./debs/*.deb ./mfa-custody_${version}_${arch}.deb
   or, without apt:  sudo dpkg -i debs/*.deb mfa-custody_${version}_${arch}.deb
   This creates the custody user and group, /var/lib/custody (0700), the custodyd unit
   (not started), /etc/custody/custody.toml, the manual pages and the completions.

3. Check the configuration (edit it first if needed: man custody, docs in
   /usr/share/doc/mfa-custody/configuration.md):
     sudo custodyd --check-config /etc/custody/custody.toml
     custodyd --version

4. Let the people who use custody reach the daemon's socket:
     sudo usermod -a -G custody alice        (each officer, operator, auditor)

5. Set the clock from a trusted source, in UTC (TOTP depends on it), and check it:
     sudo date -u -s 'YYYY-MM-DD HH:MM:SS' && timedatectl

6. Check that pcscd sees the keys:
     sudo systemctl enable --now pcscd.socket
     sudo -u custody custody token scan

7. Run the genesis ceremony (/usr/share/doc/mfa-custody/runbooks/genesis.md), then:
     sudo systemctl enable --now custodyd
   After every start the officers unseal it (runbooks/unseal.md).

Upgrading: steps 1 and 2 with the new bundle. custodyd keeps running the old version until
it is restarted (it comes back sealed): sudo systemctl restart custodyd, with two officers.
Removing: sudo apt-get remove mfa-custody (purge removes the custody user; the ledger in
/var/lib/custody is always kept).
SHEET

(cd "$dir" && find . -type f ! -name SHA256SUMS -printf '%P\n' | LC_ALL=C sort |
    xargs sha256sum >SHA256SUMS)
tar -C "$out" -cf "$out/$name.tar" "$name"
echo "$dir"
