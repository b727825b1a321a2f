//! `custody audit verify` and `audit report` check hardware-signed approvals offline. The
//! ledgers are real SQLCipher ledgers whose events are appended through the ledger API: two
//! officers' emulated YubiKeys (support::officer_keys) generate attested keys in slot 9c and
//! sign approvals through the PIV codec; TOTP approvals beside them. Forged histories (a
//! signature relayed from another request, a nonce used twice, a key shared by two officers, a
//! removed key, a key the export never registers) are appended as an insider who writes
//! events would; byte flips of recorded proofs by an insider who re-chains the database are in
//! `src/custody/approval_proofs/tests/insider.rs`. Each is refused with the check named and the seq.

use std::path::Path;

use mfa_custody::ledger::{export, Actor, ExportFilter, ExportFormat, Kind, Ledger, NewEvent};
use serde_json::Value;

use crate::support::cli::Custody;
use crate::support::ledger;
use crate::support::officer_keys::{
    created, nonce, refs, shown, test_ca_path, totp_approved, OfficerKey,
};

fn append(l: &mut Ledger, actor: &str, kind: &str, body: &Value) -> u64 {
    l.append(
        NewEvent::new(
            Actor::parse(actor).expect("actor"),
            Kind::parse(kind).expect("kind"),
            body,
        )
        .expect("body"),
    )
    .expect("append")
    .header
    .seq
}

/// A ledger in `dir` with `events` (actor, kind, body) after genesis; the export's path and
/// the checkpoint key (hex).
fn exported(dir: &Path, events: &[(&str, &str, Value)]) -> (String, String) {
    let mut l = ledger::create(&dir.join("ledger"));
    for (actor, kind, body) in events {
        append(&mut l, actor, kind, body);
    }
    let mut out = Vec::new();
    export(
        &mut l,
        &ExportFilter::default(),
        ExportFormat::JsonLines,
        &mut out,
    )
    .expect("export");
    let path = dir.join("export.jsonl");
    std::fs::write(&path, out).expect("write export");
    (path.display().to_string(), l.public_key().to_hex())
}

fn verify(file: &str, key: &str, extra: &[&str]) -> crate::support::cli::Run {
    let ca = test_ca_path().display().to_string();
    let mut args = vec![
        "--json",
        "audit",
        "verify",
        file,
        "--pubkey",
        key,
        "--piv-test-ca",
        &ca,
    ];
    args.extend_from_slice(extra);
    Custody::new(&args).run()
}

/// Two officers' keys registered, three requests: r1 signed by alice and bob, r2 by a TOTP
/// approval and an older one without a proof, r3 signed by alice.
fn honest(
    alice: &mut OfficerKey,
    bob: &mut OfficerKey,
) -> Vec<(&'static str, &'static str, Value)> {
    let (s1, s2, s3) = (shown("r1"), shown("r2"), shown("r3"));
    vec![
        ("alice", "officer.key_registered", alice.registered()),
        ("bob", "officer.key_registered", bob.registered()),
        ("olivia", "request.created", created(refs(&s1))),
        ("olivia", "request.created", created(refs(&s2))),
        ("olivia", "request.created", created(refs(&s3))),
        (
            "alice",
            "request.approved",
            alice.approve(refs(&s1), &nonce(1)),
        ),
        ("bob", "request.approved", bob.approve(refs(&s1), &nonce(2))),
        (
            "alice",
            "request.approved",
            totp_approved("r2", "alice", false),
        ),
        ("bob", "request.approved", totp_approved("r2", "bob", true)),
        (
            "alice",
            "request.approved",
            alice.approve(refs(&s3), &nonce(3)),
        ),
    ]
}

fn keys() -> (OfficerKey, OfficerKey) {
    (
        OfficerKey::new("alice", 20_000_001),
        OfficerKey::new("bob", 20_000_002),
    )
}

#[test]
fn signed_and_totp_approvals_verify_and_are_counted() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut alice, mut bob) = keys();
    let (file, key) = exported(dir.path(), &honest(&mut alice, &mut bob));
    let r = verify(&file, &key, &[]);
    assert_eq!(r.code, 0, "{}{}", r.out, r.err);
    let j = r.json();
    assert_eq!(
        j["approvals"],
        serde_json::json!({"signed": 3, "totp": 2, "unchecked": 0})
    );
    assert_eq!(j["attested_keys"], 2);

    // For a person: how many were signed and checked.
    let ca = test_ca_path().display().to_string();
    let r = Custody::new(&[
        "audit",
        "verify",
        &file,
        "--pubkey",
        &key,
        "--piv-test-ca",
        &ca,
    ])
    .run();
    assert_eq!(r.code, 0, "{}{}", r.out, r.err);
    assert!(
        r.out.contains(
            "approvals: 3 signed and checked (officer keys attested: 2), 2 TOTP, 0 not checked"
        ),
        "{}",
        r.out
    );

    // Without the test CA the emulated keys are not attested: named, with the seq.
    let r = Custody::new(&["--json", "audit", "verify", &file, "--pubkey", &key]).run();
    assert_eq!(r.code, 1, "{}{}", r.out, r.err);
    let e = r.json();
    assert_eq!(e["error"]["problem"], "officer_key_attestation", "{e}");
    assert_eq!(e["error"]["seq"], 2, "{e}");

    // A test CA that is not a PEM certificate is a usage error naming the option.
    let bogus = dir.path().join("ca.pem");
    std::fs::write(&bogus, "not a certificate").expect("write");
    let bogus = bogus.display().to_string();
    let r = Custody::new(&[
        "audit",
        "verify",
        &file,
        "--pubkey",
        &key,
        "--piv-test-ca",
        &bogus,
    ])
    .run();
    assert_eq!(r.code, 2, "{}{}", r.out, r.err);
    assert!(r.err.contains("--piv-test-ca"), "{}", r.err);
}

#[test]
fn the_report_says_per_approval_whose_yubikey_signed_it_or_totp() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut alice, mut bob) = keys();
    let (file, key) = exported(dir.path(), &honest(&mut alice, &mut bob));
    let html = dir.path().join("report.html");
    let html_s = html.display().to_string();
    let ca = test_ca_path().display().to_string();
    let r = Custody::new(&[
        "--json",
        "audit",
        "report",
        &file,
        "--pubkey",
        &key,
        "--piv-test-ca",
        &ca,
        "--out",
        &html_s,
    ])
    .run();
    assert_eq!(r.code, 0, "{}{}", r.out, r.err);
    assert_eq!(r.json()["approvals"]["signed"], 3);
    let page = std::fs::read_to_string(&html).expect("report");
    assert!(
        page.contains("signed by alice&#39;s YubiKey 20000001 (attested)")
            || page.contains("signed by alice's YubiKey 20000001 (attested)"),
        "{page}"
    );
    assert!(page.contains("YubiKey 20000002 (attested)"), "{page}");
    assert!(page.contains(": TOTP"), "{page}");
}

/// Verifies `events` and answers the failure's `problem` and `seq`.
fn refused(events: &[(&str, &str, Value)]) -> (String, u64) {
    let dir = tempfile::tempdir().expect("tmp");
    let (file, key) = exported(dir.path(), events);
    let r = verify(&file, &key, &[]);
    assert_eq!(r.code, 1, "{}{}", r.out, r.err);
    let e = r.json();
    (
        e["error"]["problem"].as_str().expect("problem").to_owned(),
        e["error"]["seq"].as_u64().expect("seq"),
    )
}

#[test]
fn fail_a_signature_relayed_from_another_request_is_caught() {
    let (mut alice, mut bob) = keys();
    let mut events = honest(&mut alice, &mut bob);
    // alice's valid signed approval of r1, recorded as her approval of r3.
    let mut relayed = events[5].2.clone();
    relayed["request"] = "r3".into();
    events[9].2 = relayed;
    assert_eq!(refused(&events), ("approval_digest".to_owned(), 11));
    // With the digest recomputed for r3 too, the signature is over r1's message.
    let mut relayed = events[5].2.clone();
    relayed["request"] = "r3".into();
    let s3 = shown("r3");
    let m = mfa_custody::custody::records::signed_approval_message(
        refs(&s3),
        "alice",
        &alice.key_id,
        &nonce(1),
    );
    relayed["digest"] = mfa_custody::custody::records::signed_approval_digest(&m).into();
    events[9].2 = relayed;
    assert_eq!(refused(&events), ("approval_signature".to_owned(), 11));
}

#[test]
fn fail_a_nonce_used_twice_a_shared_key_a_removed_key_and_an_unknown_key_are_caught() {
    let (mut alice, mut bob) = keys();
    // The same nonce on two of alice's approvals, each validly signed.
    let mut events = honest(&mut alice, &mut bob);
    let s3 = shown("r3");
    events[9].2 = alice.approve(refs(&s3), &nonce(1));
    assert_eq!(refused(&events), ("approval_nonce_reused".to_owned(), 11));

    // bob registers alice's key as his own.
    let mut events = honest(&mut alice, &mut bob);
    let mut shared = alice.registered();
    shared["officer"] = "bob".into();
    events.insert(2, ("bob", "officer.key_registered", shared));
    assert_eq!(refused(&events), ("officer_key_shared".to_owned(), 4));

    // alice's key removed, then used.
    let mut events = honest(&mut alice, &mut bob);
    events.insert(9, ("alice", "officer.key_removed", alice.removed()));
    assert_eq!(refused(&events), ("approval_key_removed".to_owned(), 12));

    // bob's approval signed by alice's key.
    let mut events = honest(&mut alice, &mut bob);
    let s1 = shown("r1");
    let mut as_bob = alice.approve(refs(&s1), &nonce(2));
    as_bob["officer"] = "bob".into();
    events[6].2 = as_bob;
    assert_eq!(
        refused(&events),
        ("approval_key_of_another_officer".to_owned(), 8)
    );

    // A key the export never registers.
    let mut events = honest(&mut alice, &mut bob);
    events.remove(0);
    assert_eq!(
        refused(&events),
        ("approval_key_not_registered".to_owned(), 6)
    );
}

#[test]
fn a_filtered_export_counts_what_it_cannot_check_as_unchecked() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut alice, mut bob) = keys();
    let mut l = ledger::create(&dir.path().join("ledger"));
    for (actor, kind, body) in honest(&mut alice, &mut bob) {
        append(&mut l, actor, kind, &body);
    }
    let mut out = Vec::new();
    let filter = ExportFilter {
        kinds: vec![Kind::parse("request.approved").expect("kind")],
        ..ExportFilter::default()
    };
    export(&mut l, &filter, ExportFormat::JsonLines, &mut out).expect("export");
    let file = dir.path().join("approvals.jsonl");
    std::fs::write(&file, out).expect("write");
    let r = verify(&file.display().to_string(), &l.public_key().to_hex(), &[]);
    assert_eq!(r.code, 0, "{}{}", r.out, r.err);
    let j = r.json();
    assert_eq!(
        j["approvals"],
        serde_json::json!({"signed": 0, "totp": 2, "unchecked": 3})
    );
}
