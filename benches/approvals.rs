//! Offline checks of signed approvals: an export holding 1,000 approvals signed by two
//! officers' emulated YubiKeys (attested 9c keys), verified as `custody audit verify` does
//! (the chain and checkpoint, then every officer key's attestation and every approval's
//! digest, signature and nonce), beside the same export verified without the approval checks.
//! Criterion's report gives each median ("time: [low median high]" is the estimate of the
//! mean; the median is in target/criterion/*/new/estimates.json).

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mfa_custody::custody::approval_proofs::verify_export_and_approvals;
use mfa_custody::ledger::{
    export, verify_export, Actor, ExportFilter, ExportFormat, Kind, Ledger, NewEvent,
};
use serde_json::Value;

#[path = "../tests/it/support/ledger.rs"]
mod ledger_support;
#[path = "../tests/it/support/officer_keys.rs"]
mod officer_keys;

use officer_keys::{created, nonce, refs, shown, test_ca, OfficerKey};

const APPROVALS: u64 = 1_000;

fn append(l: &mut Ledger, actor: &str, kind: &str, body: &Value) {
    l.append(
        NewEvent::new(
            Actor::parse(actor).expect("actor"),
            Kind::parse(kind).expect("kind"),
            body,
        )
        .expect("body"),
    )
    .expect("append");
}

fn approvals(c: &mut Criterion) {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut l = ledger_support::create(&tmp.path().join("ledger"));
    let mut officers = [
        OfficerKey::new("alice", 20_000_001),
        OfficerKey::new("bob", 20_000_002),
    ];
    for o in &officers {
        append(
            &mut l,
            &o.officer,
            "officer.key_registered",
            &o.registered(),
        );
    }
    let mut batch: Vec<(String, &str, Value)> = Vec::new();
    for i in 0..APPROVALS {
        let s = shown(&format!("r{i}"));
        batch.push(("olivia".to_owned(), "request.created", created(refs(&s))));
        let o = &mut officers[usize::from(i % 2 == 1)];
        let approved = o.approve(refs(&s), &nonce(i));
        batch.push((o.officer.clone(), "request.approved", approved));
    }
    for chunk in batch.chunks(500) {
        l.append_batch(chunk.iter().map(|(a, k, b)| {
            NewEvent::new(
                Actor::parse(a).expect("actor"),
                Kind::parse(k).expect("kind"),
                b,
            )
            .expect("event")
        }))
        .expect("append");
    }
    let mut out = Vec::new();
    export(
        &mut l,
        &ExportFilter::default(),
        ExportFormat::JsonLines,
        &mut out,
    )
    .expect("export");
    let key = l.public_key();
    let anchors = test_ca();
    let (_, summary) =
        verify_export_and_approvals(&out[..], &key, None, anchors.clone(), &mut |_| {})
            .expect("the export and its approvals verify");
    assert_eq!(summary.signed, APPROVALS);

    let mut group = c.benchmark_group("approvals_1000");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(APPROVALS));
    group.bench_function("verify_without_approval_checks", |b| {
        b.iter(|| black_box(verify_export(&out[..], &key, None).expect("verifies")))
    });
    group.bench_function("verify_with_approval_checks", |b| {
        b.iter(|| {
            black_box(
                verify_export_and_approvals(&out[..], &key, None, anchors.clone(), &mut |_| {})
                    .expect("verifies"),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, approvals);
criterion_main!(benches);
