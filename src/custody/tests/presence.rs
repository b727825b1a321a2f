//! Officers proving presence at two-officer operations with their registered YubiKeys: the
//! signature covers the operation custodyd received (a relay to another operation, or other
//! parameters, never verifies), each nonce is the officer's own, for that digest, used once
//! and short-lived, the policy takes each proof or refuses it, and the operation's event
//! records every officer's proof once.

use zeroize::Zeroizing;

use super::signed_approvals::{officer_yubikey, proven, register, world, ALICE_KEY, CAROL_KEY};
use super::*;
use crate::custody::approval_keys::CHALLENGE_TTL_MS;
use crate::custody::records::signed_presence_message;
use crate::custody::{ApprovalProof, OperationIntent, SignedProof};
use crate::emulator::SoftKey;
use crate::token::piv::{self, signing, PivSession};

fn suspend(user: &str) -> OperationIntent {
    OperationIntent::new(
        "user_set_active",
        vec![
            ("name".to_owned(), user.to_owned()),
            ("active".to_owned(), "false".to_owned()),
        ],
    )
}

fn sign_digest(
    digest: &str,
    officer: &str,
    key_id: &str,
    nonce: &str,
    key: &mut SoftKey,
) -> Vec<u8> {
    let message = signed_presence_message(digest, officer, key_id, nonce);
    let hash: [u8; 32] = ring::digest::digest(&ring::digest::SHA256, &message)
        .as_ref()
        .try_into()
        .expect("32");
    let pin = piv::Pin::new(Zeroizing::new(b"123456".to_vec())).expect("pin");
    let mut s = PivSession::select(key).expect("select");
    signing::sign(&mut s, &pin, &hash).expect("sign")
}

/// What the CLI does for one officer: a challenge for the intent's digest, the YubiKey's
/// signature over it.
fn signed_for(
    w: &mut World,
    officer: &str,
    intent: &OperationIntent,
    key: &mut SoftKey,
) -> SignedProof {
    let p = proven(w, officer);
    let ch = w
        .custody
        .presence_challenge(&p, &intent.digest())
        .expect("challenge");
    let signature = sign_digest(&intent.digest(), officer, &ch.key_id, &ch.nonce, key);
    SignedProof {
        key_id: ch.key_id,
        nonce: ch.nonce,
        signature,
    }
}

fn present(
    w: &mut World,
    officer: &str,
    intent: &OperationIntent,
    proof: &SignedProof,
) -> Result<Session, CustodyError> {
    let p = proven(w, officer);
    w.custody.prove_presence(&p, intent, proof)
}

fn keys(w: &mut World) -> (SoftKey, SoftKey) {
    let (mut ka, mut kc) = (officer_yubikey(ALICE_KEY), officer_yubikey(CAROL_KEY));
    register(w, "alice", "bob", &mut ka, ALICE_KEY);
    register(w, "carol", "bob", &mut kc, CAROL_KEY);
    (ka, kc)
}

#[test]
fn two_officers_sign_an_operation_and_its_event_records_both_proofs() {
    let mut w = world();
    let (mut ka, mut kc) = keys(&mut w);
    let intent = suspend("oscar");
    let pa = signed_for(&mut w, "alice", &intent, &mut ka);
    let pc = signed_for(&mut w, "carol", &intent, &mut kc);
    let a = present(&mut w, "alice", &intent, &pa).expect("alice present");
    let c = present(&mut w, "carol", &intent, &pc).expect("carol present");
    let u = w
        .custody
        .set_active(&a, &c, &name("oscar"), false)
        .expect("suspended");
    assert!(!u.active);
    let ev = w.bodies(store::kinds::USER_SUSPENDED);
    let presence = ev[0]["presence"].as_array().expect("presence recorded");
    assert_eq!(presence.len(), 2, "{}", ev[0]);
    for (p, officer, proof) in [(&presence[0], "alice", &pa), (&presence[1], "carol", &pc)] {
        assert_eq!(p["officer"], officer);
        assert_eq!(p["operation"], "user_set_active");
        assert_eq!(
            p["parameters"],
            serde_json::json!([["name", "oscar"], ["active", "false"]])
        );
        assert_eq!(p["digest"], intent.digest());
        assert_eq!(p["key_id"], proof.key_id);
        assert_eq!(p["nonce"], proof.nonce);
        assert_eq!(
            p["signature"],
            data_encoding::BASE64.encode(&proof.signature)
        );
    }
    // Nothing else records them again.
    let (bodies, _) = w.bodies_and_export();
    assert_eq!(
        bodies.matches(&pa.nonce).count(),
        1,
        "alice's nonce recorded once"
    );
}

#[test]
fn fail_a_signature_relayed_to_another_operation_or_other_parameters_is_refused() {
    let mut w = world();
    let (mut ka, _) = keys(&mut w);
    let signed = suspend("oscar");
    // The relay asks the daemon for a challenge for what it means to do, then hands the
    // officer's screen the real operation: the signature is over the wrong digest.
    let relayed = suspend("olga");
    let p = proven(&w, "alice");
    let ch = w
        .custody
        .presence_challenge(&p, &relayed.digest())
        .expect("challenge");
    let signature = sign_digest(&signed.digest(), "alice", &ch.key_id, &ch.nonce, &mut ka);
    let proof = SignedProof {
        key_id: ch.key_id,
        nonce: ch.nonce,
        signature,
    };
    let e = present(&mut w, "alice", &relayed, &proof).expect_err("relayed");
    assert_eq!(e.code(), "approval_signature_invalid", "{e}");
    assert!(e.to_string().contains("user_set_active"), "{e}");

    // A proof signed and challenged for one operation, sent with another: the nonce is not
    // the other digest's.
    let proof = signed_for(&mut w, "alice", &signed, &mut ka);
    let other = OperationIntent::new("user_unlock", vec![("name".into(), "oscar".into())]);
    let e = present(&mut w, "alice", &other, &proof).expect_err("other op");
    assert_eq!(e.code(), "approval_nonce_unknown", "{e}");
    assert!(w
        .refusals()
        .contains(&"approval_signature_invalid".to_owned()));
}

#[test]
fn fail_a_replayed_proof_another_officers_nonce_and_an_expired_one_are_refused() {
    let mut w = world();
    let (mut ka, mut kc) = keys(&mut w);
    let intent = suspend("oscar");
    let proof = signed_for(&mut w, "alice", &intent, &mut ka);
    present(&mut w, "alice", &intent, &proof).expect("first use");
    let e = present(&mut w, "alice", &intent, &proof).expect_err("replay");
    assert_eq!(e.code(), "approval_nonce_unknown", "{e}");

    // Carol signs over alice's nonce: the nonce is alice's, not hers.
    let p = proven(&w, "alice");
    let ch = w
        .custody
        .presence_challenge(&p, &intent.digest())
        .expect("challenge");
    let carol_key = w
        .custody
        .officer_key(&name("carol"))
        .expect("read")
        .expect("key");
    let signature = sign_digest(
        &intent.digest(),
        "carol",
        &carol_key.key_id,
        &ch.nonce,
        &mut kc,
    );
    let stolen = SignedProof {
        key_id: carol_key.key_id,
        nonce: ch.nonce,
        signature,
    };
    let e = present(&mut w, "carol", &intent, &stolen).expect_err("alice's nonce");
    assert_eq!(e.code(), "approval_nonce_unknown", "{e}");

    // A nonce past its lifetime on the service clock.
    let late = signed_for(&mut w, "carol", &intent, &mut kc);
    w.clock.advance(CHALLENGE_TTL_MS + 1);
    let e = present(&mut w, "carol", &intent, &late).expect_err("expired");
    assert_eq!(e.code(), "approval_nonce_unknown", "{e}");

    // Alice's key signing as carol (a swapped YubiKey) is not carol's registered key.
    let swapped = signed_for(&mut w, "carol", &intent, &mut kc);
    let alice_key = w
        .custody
        .officer_key(&name("alice"))
        .expect("read")
        .expect("key");
    let forged = SignedProof {
        key_id: alice_key.key_id.clone(),
        signature: sign_digest(
            &intent.digest(),
            "carol",
            &alice_key.key_id,
            &swapped.nonce,
            &mut ka,
        ),
        ..swapped
    };
    let e = present(&mut w, "carol", &intent, &forged).expect_err("swapped");
    assert_eq!(e.code(), "signing_key_not_registered", "{e}");
}

#[test]
fn fail_the_policy_refuses_totp_when_it_takes_signatures_and_signatures_when_it_takes_totp() {
    let mut w = world();
    let (mut ka, mut kc) = keys(&mut w);
    let intent = suspend("oscar");

    w.custody.policy.approval_proof = ApprovalProof::Signature;
    let (a, c) = (w.login("alice"), w.login("carol"));
    let e = w
        .custody
        .set_active(&a, &c, &name("oscar"), false)
        .expect_err("TOTP only");
    assert_eq!(e.code(), "approval_proof_required", "{e}");
    assert!(e.to_string().contains("--sign"), "{e}");
    // One officer signing is not enough either.
    let pa = signed_for(&mut w, "alice", &intent, &mut ka);
    let a = present(&mut w, "alice", &intent, &pa).expect("alice");
    let e = w
        .custody
        .set_active(&a, &c, &name("oscar"), false)
        .expect_err("carol by TOTP");
    assert_eq!(e.code(), "approval_proof_required", "{e}");
    assert!(e.to_string().contains("carol"), "{e}");
    assert!(w.custody.user(&name("oscar")).expect("oscar").active);
    // Both signing passes.
    let pa = signed_for(&mut w, "alice", &intent, &mut ka);
    let pc = signed_for(&mut w, "carol", &intent, &mut kc);
    let a = present(&mut w, "alice", &intent, &pa).expect("alice");
    let c = present(&mut w, "carol", &intent, &pc).expect("carol");
    w.custody
        .set_active(&a, &c, &name("oscar"), false)
        .expect("both signed");
    // Removing (and registering) a key stays possible by TOTP: a key is how one signs.
    let (a, b) = (w.login("alice"), w.login("bob"));
    w.custody
        .remove_officer_key(&a, &b)
        .expect("removed by TOTP");

    w.custody.policy.approval_proof = ApprovalProof::Totp;
    let p = proven(&w, "carol");
    let e = w
        .custody
        .presence_challenge(&p, &intent.digest())
        .expect_err("no challenges");
    assert_eq!(e.code(), "approval_proof_required", "{e}");
    assert!(e.to_string().contains("without --sign"), "{e}");
    let e = present(&mut w, "carol", &intent, &pc).expect_err("no signatures");
    assert_eq!(e.code(), "approval_proof_required", "{e}");
    // TOTP works.
    let (a, c) = (w.login("alice"), w.login("carol"));
    w.custody
        .set_active(&a, &c, &name("oscar"), true)
        .expect("TOTP reinstates");
}

#[test]
fn a_two_step_operation_records_the_proofs_once() {
    let mut w = world();
    let (mut ka, mut kc) = keys(&mut w);
    let intent = OperationIntent::new(
        "device_set_terminal",
        vec![
            ("serial".into(), PRIMARY.to_string()),
            ("to".into(), "lost".into()),
        ],
    );
    let pa = signed_for(&mut w, "alice", &intent, &mut ka);
    let pc = signed_for(&mut w, "carol", &intent, &mut kc);
    let a = present(&mut w, "alice", &intent, &pa).expect("alice");
    let c = present(&mut w, "carol", &intent, &pc).expect("carol");
    w.custody
        .set_terminal(&a, &c, &mut w.keys, serial(PRIMARY), Terminal::Lost)
        .expect("lost");
    let (bodies, _) = w.bodies_and_export();
    assert_eq!(bodies.matches(&pa.nonce).count(), 1, "{bodies}");
    assert_eq!(bodies.matches(&pc.nonce).count(), 1);
    let changed = w.bodies(store::kinds::DEVICE_STATE_CHANGED);
    assert!(changed.last().expect("event")["presence"].is_array());
}

#[test]
fn presence_proofs_never_show_in_debug_and_hold_no_secret() {
    let mut w = world();
    let (mut ka, _) = keys(&mut w);
    let intent = suspend("oscar");
    let proof = signed_for(&mut w, "alice", &intent, &mut ka);
    let s = present(&mut w, "alice", &intent, &proof).expect("alice");
    let shown = format!("{s:?} {intent:?} {:?}", w.custody);
    assert!(!shown.contains(&pass_of("alice")), "{shown}");
}

/// The export of `w`'s ledger, checked with the officers' test CA.
fn audited(
    w: &mut World,
) -> Result<
    crate::custody::approval_proofs::ApprovalSummary,
    crate::custody::approval_proofs::ExportCheckFailure,
> {
    let mut out = Vec::new();
    crate::ledger::export(
        w.custody.ledger_mut(),
        &crate::ledger::ExportFilter::default(),
        crate::ledger::ExportFormat::JsonLines,
        &mut out,
    )
    .expect("export");
    let key = w.custody.ledger().public_key();
    crate::custody::approval_proofs::verify_export_and_approvals(
        &out[..],
        &key,
        None,
        super::attest::test_ca(),
        &mut |_| {},
    )
    .map(|(_, s)| s)
}

/// A world where alice and carol signed the suspension of oscar; the event's seq.
fn signed_suspension() -> (World, u64) {
    let mut w = world();
    let (mut ka, mut kc) = keys(&mut w);
    let intent = suspend("oscar");
    let pa = signed_for(&mut w, "alice", &intent, &mut ka);
    let pc = signed_for(&mut w, "carol", &intent, &mut kc);
    let a = present(&mut w, "alice", &intent, &pa).expect("alice");
    let c = present(&mut w, "carol", &intent, &pc).expect("carol");
    w.custody
        .set_active(&a, &c, &name("oscar"), false)
        .expect("suspended");
    let seq = w
        .custody
        .ledger()
        .head()
        .expect("head")
        .expect("events")
        .seq;
    (w, seq)
}

#[test]
fn fail_auditors_catch_an_edited_and_rechained_presence_proof_and_name_it() {
    use crate::custody::approval_proofs::tests::insider::{body, flip_b64, flip_hex, forge};
    use crate::custody::approval_proofs::{ApprovalCheck, ExportCheckFailure};

    let (mut w, seq) = signed_suspension();
    let s = audited(&mut w).expect("the honest ledger checks");
    assert_eq!((s.presence_signed, s.unchecked), (2, 0));
    assert!(body(w.custody.ledger(), seq)["presence"].is_array());

    type Edit = fn(&mut serde_json::Value);
    let cases: [(&str, Edit, ApprovalCheck); 5] = [
        (
            "a byte of alice's signature",
            |v| flip_b64(&mut v["presence"][0], "signature", 20),
            ApprovalCheck::PresenceSignature,
        ),
        (
            "the last byte of carol's signature",
            |v| flip_b64(&mut v["presence"][1], "signature", -1),
            ApprovalCheck::PresenceSignature,
        ),
        (
            "the digest",
            |v| flip_hex(&mut v["presence"][0], "digest"),
            ApprovalCheck::PresenceDigest,
        ),
        (
            "a parameter (another user suspended)",
            |v| v["presence"][0]["parameters"][0][1] = serde_json::json!("olga"),
            ApprovalCheck::PresenceDigest,
        ),
        (
            "the nonce",
            |v| flip_hex(&mut v["presence"][1], "nonce"),
            ApprovalCheck::PresenceSignature,
        ),
    ];
    for (what, edit, expected) in cases {
        let (mut w, seq) = signed_suspension();
        let mut b = body(w.custody.ledger(), seq);
        edit(&mut b);
        forge(w.custody.ledger(), seq, &b);
        match audited(&mut w) {
            Err(ExportCheckFailure::Approval(f)) => {
                assert_eq!((f.check, f.seq), (expected, seq), "{what}: {f}");
                assert!(f.to_string().contains(&format!("seq {seq}")), "{f}");
            }
            other => panic!("{what}: expected {expected} at seq {seq}, got {other:?}"),
        }
    }
}
