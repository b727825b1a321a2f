#!/usr/bin/env bash
# Installs what building and testing mfa-custody needs on a Debian machine, and only what is
# missing: the PC/SC stack (pcscd, its client library, the vpcd virtual-reader driver), oathtool
# for cross-checking codes, Yubico's PIV tools (yubico-piv-tool, ykman) and openssl for the PIV
# applet's interoperability tests, the C toolchain pieces the bundled SQLCipher links against, and
# cargo-fuzz for the fuzz targets. Runs apt-get as root, through sudo otherwise.
set -euo pipefail

packages=(
  pcscd            # the PC/SC daemon custodyd talks to
  libpcsclite-dev  # the client library the pcsc crate links
  vsmartcard-vpcd  # pcscd driver that presents the software YubiKey as a reader
  oathtool         # independent HOTP/TOTP implementation for cross-checks
  yubico-piv-tool  # Yubico's PIV tool, run against the software YubiKey's PIV applet
  yubikey-manager  # ykman, Yubico's manager, likewise (piv info, keys generate, attest)
  openssl          # verifies the emulator's attestation chains independently
  jq               # scripts/demo.sh reads the CLI's --json answers
  pkg-config       # finds libpcsclite at build time
  libssl-dev       # libcrypto, SQLCipher's crypto provider
  gcc make         # SQLCipher is compiled from source
  util-linux       # unshare: one private pcscd per test run
  iproute2         # ip: the loopback interface of each test run's own network namespace
  procps           # pgrep/pkill in the scripts
  systemd          # systemd-analyze: the unit's security score (tests/it/packaging/unit.rs)
  dpkg-dev         # dpkg-shlibdeps: the Debian package's library dependencies (make deb)
  binutils         # strip: the packaged binaries
)
cargo_fuzz_version=0.13.2

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "deps: installing ${missing[*]}" >&2
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "deps: need root or sudo to install ${missing[*]}" >&2; exit 1; }
    sudo=(sudo)
  fi
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! cargo fuzz --version 2>/dev/null | grep -q "$cargo_fuzz_version"; then
  echo "deps: installing cargo-fuzz $cargo_fuzz_version" >&2
  cargo install cargo-fuzz --locked --version "$cargo_fuzz_version"
fi
