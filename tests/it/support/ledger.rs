//! Helpers shared by the ledger integration tests and benchmarks: the two test officers and a
//! ledger with the test-only KDF cost.
#![allow(dead_code)]

use std::num::NonZeroU32;
use std::path::Path;

use mfa_custody::ledger::{
    Actor, Genesis, KdfParams, Kind, Ledger, NewEvent, OfficerName, Passphrase, Projections,
};
use zeroize::Zeroizing;

/// alice and bob with passphrases `alice-Passphrase-1` and `bob-Passphrase-1`.
pub fn officers() -> Vec<(OfficerName, Passphrase)> {
    ["alice", "bob"]
        .iter()
        .map(|n| {
            (
                OfficerName::parse(n).expect("name"),
                Passphrase::for_unseal(Zeroizing::new(format!("{n}-Passphrase-1"))).expect("pass"),
            )
        })
        .collect()
}

/// A new ledger in `dir` for alice and bob, threshold 2, 1,000 PBKDF2 iterations (test only).
pub fn create(dir: &Path) -> Ledger {
    let officers = officers();
    let genesis = Genesis {
        officers: &officers,
        threshold: 2,
        kdf: KdfParams::insecure_for_tests(NonZeroU32::new(1000).expect("nonzero")),
    };
    Ledger::create(dir, &genesis, Projections::ledger_only()).expect("create")
}

/// Opens `dir` with alice and bob.
pub fn open(dir: &Path) -> Ledger {
    Ledger::open(dir, &officers(), Projections::ledger_only()).expect("open")
}

/// An event from JSON.
pub fn ev(actor: &str, kind: &str, body: serde_json::Value) -> NewEvent {
    NewEvent::new(
        Actor::parse(actor).expect("actor"),
        Kind::parse(kind).expect("kind"),
        &body,
    )
    .expect("event")
}
