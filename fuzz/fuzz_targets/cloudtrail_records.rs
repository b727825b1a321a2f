//! Fuzz the CloudTrail reader and reconciliation: any bytes read as CloudTrail input (either
//! shape, gzipped or not) by `read_records`, every record handed to a `Reconciler` holding one
//! account and one release. Nothing may panic; an error is a value.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use mfa_custody::custody::cloudtrail::{
    read_records, Held, HeldAccount, Reconciler, Record, RecordProblem, Release, Windows,
};

fuzz_target!(|data: &[u8]| {
    let mut accounts = BTreeMap::new();
    accounts.insert(
        "123456789012".to_owned(),
        HeldAccount {
            account: "123456789012".to_owned(),
            removed_since_ms: None,
        },
    );
    let held = Held {
        accounts,
        releases: vec![Release {
            request: "req-1".into(),
            account: "123456789012".into(),
            task: Some("change-contact".into()),
            approvers: vec!["alice".into(), "bob".into()],
            time_ms: 1_796_040_000_000,
            seq: 1,
        }],
    };
    let mut r = Reconciler::new(held, Windows::default());
    let mut sink = |rec: Record| -> Result<(), RecordProblem> { r.push(rec) };
    let _ = read_records(data, &mut sink);
    let outcome = r.finish();
    assert!(outcome.root_records <= outcome.records);
});
