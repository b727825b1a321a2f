//! The PIV attestation verifier on arbitrary certificate bytes: errors are fine, panics are not.
//!
//! The first byte picks how the rest is used: split into a whole chain (slot certificate, F9
//! certificate, intermediates, each behind a two-byte length), as edits (position, XOR) of a
//! valid chain's slot or F9 certificate (so mutations reach the signature and extension checks,
//! not only the DER parser), or as a PEM bundle of trust anchors. The edited chain is mostly
//! OpenSSL's P-256 one (ring's ECDSA runs uninstrumented C); one input in eight edits a real
//! YubiKey 5.7.4 attestation, whose RSA checks run through instrumented Rust at a few
//! milliseconds each.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mfa_custody::token::attestation::{
    certificates_from_pem, verify_attestation, Evidence, Expected, PivSlot, TrustAnchors,
};

const SLOT: &str = include_str!("../../src/token/attestation/testdata/yk-5.7.4-9c.pem");
const F9: &str = include_str!("../../src/token/attestation/testdata/yk-5.7.4-f9.pem");
const EC_ROOT: &str = include_str!("../../src/token/attestation/testdata/openssl-p256/root.pem");
const EC_F9: &str = include_str!("../../src/token/attestation/testdata/openssl-p256/f9.pem");
const EC_SLOT: &str = include_str!("../../src/token/attestation/testdata/openssl-p256/slot-9a.pem");

fn real(pem: &str) -> Vec<u8> {
    certificates_from_pem(pem)
        .ok()
        .and_then(|mut v| v.pop())
        .unwrap_or_default()
}

/// A valid chain: its anchors, slot certificate and F9 certificate, and what it attests.
struct Fixture {
    anchors: TrustAnchors,
    slot: Vec<u8>,
    f9: Vec<u8>,
    expected: Expected,
}

/// Parsed once: the same for every input. The real chain, then OpenSSL's.
fn fixtures() -> &'static [Fixture; 2] {
    static FIXTURES: OnceLock<[Fixture; 2]> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        [
            Fixture {
                anchors: TrustAnchors::yubico(),
                slot: real(SLOT),
                f9: real(F9),
                expected: Expected {
                    slot: PivSlot::SIGNATURE,
                    serial: 38_906_327,
                },
            },
            Fixture {
                anchors: TrustAnchors::from_pem(EC_ROOT).unwrap_or_default(),
                slot: real(EC_SLOT),
                f9: real(EC_F9),
                expected: Expected {
                    slot: PivSlot::AUTHENTICATION,
                    serial: 10_000_001,
                },
            },
        ]
    })
}

fn edit(mut der: Vec<u8>, edits: &[u8]) -> Vec<u8> {
    for e in edits.chunks_exact(3) {
        if der.is_empty() {
            break;
        }
        let at = usize::from(u16::from_be_bytes([e[0], e[1]])) % der.len();
        der[at] ^= e[2];
    }
    der
}

fn split(mut data: &[u8]) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    while data.len() >= 2 && parts.len() < 12 {
        let len = usize::from(u16::from_be_bytes([data[0], data[1]])).min(data.len() - 2);
        parts.push(&data[2..2 + len]);
        data = &data[2 + len..];
    }
    parts
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let [yubikey, openssl] = fixtures();
    // Inside both chains' validity.
    let now = jiff::Timestamp::from_second(1_893_456_000).unwrap_or_default();
    let check = |fixture: &Fixture, slot: &[u8], device: &[u8], extra: &[&[u8]]| {
        let evidence = Evidence {
            slot_cert: slot,
            device_cert: device,
            extra_intermediates: extra,
        };
        let _ = verify_attestation(&evidence, &fixture.expected, &fixture.anchors, now);
    };
    match mode % 8 {
        0 | 1 => {
            let parts = split(rest);
            if let [slot, device, extra @ ..] = parts.as_slice() {
                check(openssl, slot, device, extra);
            }
        }
        2 | 3 => check(openssl, &edit(openssl.slot.clone(), rest), &openssl.f9, &[]),
        4 | 5 => check(openssl, &openssl.slot, &edit(openssl.f9.clone(), rest), &[]),
        6 => {
            if mode & 0x80 == 0 {
                check(yubikey, &edit(yubikey.slot.clone(), rest), &yubikey.f9, &[]);
            } else {
                check(yubikey, &yubikey.slot, &edit(yubikey.f9.clone(), rest), &[]);
            }
        }
        _ => {
            if let Ok(Ok(anchors)) = std::str::from_utf8(rest).map(TrustAnchors::from_pem) {
                let evidence = Evidence {
                    slot_cert: &openssl.slot,
                    device_cert: &openssl.f9,
                    extra_intermediates: &[],
                };
                let _ = verify_attestation(&evidence, &openssl.expected, &anchors, now);
            }
        }
    }
});
