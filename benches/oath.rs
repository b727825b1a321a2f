//! SELECT + CALCULATE through the client session against the in-process applet.
#![allow(missing_docs, clippy::unwrap_used)]

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use mfa_custody::emulator::oath::{AutoTouch, OathApplet, OathCard, OathState};
use mfa_custody::token::oath::{
    CredentialName, OathSecret, OathSession, PutRequest, Selected, TimeStep,
};
use zeroize::Zeroizing;

fn card() -> (OathCard, CredentialName) {
    let mut card = OathCard::new(
        OathApplet::new(OathState::blank([0; 8]), [5, 4, 3], Box::new(AutoTouch)),
        "bench",
    );
    let name = CredentialName::parse("AWS:root@example.com").unwrap();
    let Ok(Selected::Ready(mut s)) = OathSession::select(&mut card) else {
        panic!("applet not ready");
    };
    s.put(&PutRequest::totp(
        name.clone(),
        OathSecret::from_bytes(Zeroizing::new(b"12345678901234567890".to_vec())),
    ))
    .unwrap();
    (card, name)
}

fn select_and_calculate(c: &mut Criterion) {
    let (mut card, name) = card();
    c.bench_function("oath select + calculate (in-process)", |b| {
        b.iter(|| {
            let Ok(Selected::Ready(mut s)) = OathSession::select(&mut card) else {
                panic!("applet not ready");
            };
            black_box(
                s.calculate_totp(&name, TimeStep(black_box(56_666_666)))
                    .unwrap(),
            );
        })
    });
    c.bench_function("oath calculate all, 1 credential (in-process)", |b| {
        let Ok(Selected::Ready(mut s)) = OathSession::select(&mut card) else {
            panic!("applet not ready");
        };
        b.iter(|| black_box(s.calculate_all(TimeStep(black_box(56_666_666))).unwrap()))
    });
}

criterion_group!(benches, select_and_calculate);
criterion_main!(benches);
