//! Genesis, shared by the integration tests and the benchmarks: a keyring of officers, and a
//! ledger for it at the test-only KDF cost. (benches/ledger.rs includes this file alone: it
//! uses nothing else of the tests' support.)
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

/// The keyring of a genesis: each officer by name with the unseal passphrase they chose.
pub fn keyring(officers: &[(&str, &str)]) -> Vec<(OfficerName, Passphrase)> {
    officers.iter().map(|(o, p)| officer(o, p)).collect()
}

/// The keyring of `officers`, each with the unseal passphrase `pass` gives them.
pub fn keyring_of(
    officers: &[&str],
    pass: impl Fn(&str) -> String,
) -> Vec<(OfficerName, Passphrase)> {
    officers.iter().map(|o| officer(o, &pass(o))).collect()
}

fn officer(name: &str, pass: &str) -> (OfficerName, Passphrase) {
    (
        OfficerName::parse(name).expect("officer name"),
        Passphrase::new_checked(Zeroizing::new(pass.to_owned())).expect("strong"),
    )
}

/// The key-derivation cost of every test ledger and domain: 1,000 PBKDF2 iterations.
pub fn low_kdf() -> NonZeroU32 {
    NonZeroU32::new(1000).expect("nonzero")
}

/// A new ledger in `dir` for `keyring`, threshold 2, at the test cost ([`low_kdf`]), with
/// `projections`.
pub fn genesis(
    dir: &Path,
    keyring: &[(OfficerName, Passphrase)],
    projections: Projections,
) -> Ledger {
    let genesis = Genesis {
        officers: keyring,
        threshold: 2,
        kdf: KdfParams::insecure_for_tests(low_kdf()),
    };
    Ledger::create(dir, &genesis, projections).expect("create the ledger")
}

/// A new ledger in `dir` for alice and bob, threshold 2, 1,000 PBKDF2 iterations (test only).
pub fn create(dir: &Path) -> Ledger {
    genesis(dir, &officers(), Projections::ledger_only())
}

/// Opens `dir` with alice and bob.
pub fn open(dir: &Path) -> Ledger {
    Ledger::open(dir, &officers(), Projections::ledger_only()).expect("open")
}

/// A JSON value as the exporter writes it: canonical (sorted keys, no spaces), so a test's
/// edits are not caught merely as non-canonical lines.
pub fn canonical(v: &serde_json::Value) -> Vec<u8> {
    use serde_json::Value;
    fn sort(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                Value::Object(keys.into_iter().map(|k| (k.clone(), sort(&m[k]))).collect())
            }
            Value::Array(a) => Value::Array(a.iter().map(sort).collect()),
            other => other.clone(),
        }
    }
    serde_json::to_vec(&sort(v)).expect("json")
}

/// Export lines back into an export: each line and its newline.
pub fn join(lines: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for l in lines {
        out.extend_from_slice(l);
        out.push(b'\n');
    }
    out
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
