//! PIV attestation verification of two real YubiKey attestations against Yubico's roots, and
//! the cost of loading the compiled-in anchors.
#![allow(missing_docs, clippy::unwrap_used)]

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use mfa_custody::token::attestation::{
    certificates_from_pem, verify_attestation, Evidence, Expected, PivSlot, TrustAnchors,
};

fn der(pem: &str) -> Vec<u8> {
    certificates_from_pem(pem).unwrap().pop().unwrap()
}

fn verify(c: &mut Criterion) {
    let anchors = TrustAnchors::yubico();
    let now = jiff::Timestamp::from_second(1_780_272_000).unwrap();
    let chains = [
        (
            "verify a 5.2.6 attestation (slot, F9, PIV root)",
            include_str!("../src/token/attestation/testdata/yk-5.2.6-9c.pem"),
            include_str!("../src/token/attestation/testdata/yk-5.2.6-f9.pem"),
            13_078_782,
        ),
        (
            "verify a 5.7.4 attestation (slot, F9, 2 intermediates, Root 1)",
            include_str!("../src/token/attestation/testdata/yk-5.7.4-9c.pem"),
            include_str!("../src/token/attestation/testdata/yk-5.7.4-f9.pem"),
            38_906_327,
        ),
    ];
    for (name, slot, f9, serial) in chains {
        let (slot, f9) = (der(slot), der(f9));
        let expected = Expected {
            slot: PivSlot::SIGNATURE,
            serial,
        };
        c.bench_function(name, |b| {
            b.iter(|| {
                let evidence = Evidence {
                    slot_cert: black_box(&slot),
                    device_cert: black_box(&f9),
                    extra_intermediates: &[],
                };
                verify_attestation(&evidence, &expected, &anchors, now).unwrap()
            })
        });
    }
    c.bench_function("TrustAnchors::yubico()", |b| b.iter(TrustAnchors::yubico));
}

criterion_group!(benches, verify);
criterion_main!(benches);
