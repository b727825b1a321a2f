#!/usr/bin/env bash
# Builds the Debian package of mfa-custody with dpkg-deb (no other packaging tool):
#
#   scripts/build-deb.sh [--version VERSION] [--out DIR]
#
# It holds `custody` and `custodyd` (release build; CUSTODY_DEB_BIN_DIR names a directory of
# already-built binaries instead), the systemd unit, /etc/custody/custody.toml as a conffile,
# the polkit rule for pcscd, a manual page per `custody` subcommand and custodyd(8), bash, zsh and fish
# completions, the documentation, and the maintainer scripts of packaging/debian/. Depends:
# pcscd and the shared libraries the binaries link (dpkg-shlibdeps). Never custody-emu,
# custodyd-testclock or hsm-fixtures/: they are for tests and demos.
#
# VERSION defaults to Cargo.toml's; DIR to target/debian. Prints the package's path last.
# CUSTODY_DEB_COMPRESSION (xz, gzip or none; default xz) is dpkg-deb's compressor.
# SOURCE_DATE_EPOCH, when set, is the binaries' build date (--version) and every file's date;
# unset, the files are dated by the last commit (else the epoch), so the same binaries make the
# same package, and the build keeps cargo's usual environment (no rebuild of what
# `cargo build --release` already built).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
version=""
out="$repo/target/debian"
while [ $# -gt 0 ]; do
    case "$1" in
    --version) version=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "usage: $0 [--version VERSION] [--out DIR]" >&2; exit 2 ;;
    esac
done
for t in dpkg-deb dpkg-shlibdeps strip; do
    command -v "$t" >/dev/null || { echo "build-deb: $t is missing; run make deps" >&2; exit 1; }
done
[ -n "$version" ] || version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$repo/Cargo.toml" | head -n 1)
file_date=${SOURCE_DATE_EPOCH:-$(git -C "$repo" log -1 --format=%ct 2>/dev/null || echo 0)}

bin=${CUSTODY_DEB_BIN_DIR:-}
if [ -z "$bin" ]; then
    (cd "$repo" && cargo build --release --locked --bin custody --bin custodyd)
    bin="$repo/target/release"
fi
for b in custody custodyd; do
    [ -x "$bin/$b" ] || { echo "build-deb: $bin/$b missing" >&2; exit 1; }
done

arch=$(dpkg --print-architecture)
work=$(mktemp -d "${TMPDIR:-/tmp}/custody-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
root="$work/root"

install -d "$root/DEBIAN" "$root/usr/bin"
for b in custody custodyd; do
    install -m 0755 "$bin/$b" "$root/usr/bin/$b"
    strip --strip-unneeded "$root/usr/bin/$b"
done
install -D -m 0644 "$repo/packaging/custodyd.service" "$root/lib/systemd/system/custodyd.service"
install -D -m 0644 "$repo/packaging/custody.toml" "$root/etc/custody/custody.toml"
install -D -m 0644 "$repo/packaging/60-custody-pcsc.rules" \
    "$root/usr/share/polkit-1/rules.d/60-custody-pcsc.rules"

man="$root/usr/share/man/man1"
install -d "$man"
"$root/usr/bin/custody" man --out "$man" >/dev/null
gzip -9n "$man"/*.1
install -d "$root/usr/share/man/man8"
"$root/usr/bin/custodyd" --man | gzip -9n > "$root/usr/share/man/man8/custodyd.8.gz"
"$root/usr/bin/custody" completions bash |
    install -D -m 0644 /dev/stdin "$root/usr/share/bash-completion/completions/custody"
"$root/usr/bin/custody" completions zsh |
    install -D -m 0644 /dev/stdin "$root/usr/share/zsh/vendor-completions/_custody"
"$root/usr/bin/custody" completions fish |
    install -D -m 0644 /dev/stdin "$root/usr/share/fish/vendor_completions.d/custody.fish"

doc="$root/usr/share/doc/mfa-custody"
install -d "$doc/runbooks"
install -m 0644 "$repo/README.md" "$repo"/docs/*.md "$doc/"
install -m 0644 "$repo"/docs/runbooks/*.md "$doc/runbooks/"
cat >"$doc/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: mfa-custody

Files: *
License: Apache-2.0
 On Debian systems, the full text of the Apache License 2.0 is in
 /usr/share/common-licenses/Apache-2.0.
COPYRIGHT

for s in postinst prerm postrm; do
    install -m 0755 "$repo/packaging/debian/$s" "$root/DEBIAN/$s"
done
echo /etc/custody/custody.toml >"$root/DEBIAN/conffiles"

# dpkg-shlibdeps reads debian/control of the directory it runs in; it needs only a source
# stanza and one binary stanza.
mkdir -p "$work/src/debian"
printf 'Source: mfa-custody\n\nPackage: mfa-custody\nArchitecture: any\n' >"$work/src/debian/control"
shlibs=$(cd "$work/src" && dpkg-shlibdeps -O "$root/usr/bin/custody" "$root/usr/bin/custodyd" |
    sed -n 's/^shlibs:Depends=//p')
[ -n "$shlibs" ] || { echo "build-deb: dpkg-shlibdeps found no shared libraries" >&2; exit 1; }

size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat >"$root/DEBIAN/control" <<CONTROL
Package: mfa-custody
Version: $version
Architecture: $arch
Maintainer: ${DEB_MAINTAINER:-mfa-custody maintainers <mfa-custody@localhost>}
Installed-Size: $size
Depends: pcscd, $shlibs
Section: admin
Priority: optional
Description: dual-control custody of the YubiKeys that hold cloud root users' MFA
 custodyd keeps the TOTP seeds of cloud root users (AWS and the like) on YubiKeys under
 dual control: a one-time code is released only after two security officers approve,
 from the key the ledger holds for the account, and every step is recorded in an
 encrypted, hash-chained ledger that auditors verify offline. custody is its command
 line for officers, operators and auditors.
CONTROL

find "$root" -exec touch --no-dereference --date="@$file_date" {} +
mkdir -p "$out"
deb="$out/mfa-custody_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Z"${CUSTODY_DEB_COMPRESSION:-xz}" --build "$root" "$deb" >/dev/null
echo "$deb"
