//! Approvals signed by officers' registered YubiKeys: registration by two officers (one key
//! per officer), challenges bound to (officer, request) and used once, and each way a signed
//! approval is refused (relayed to another request, a swapped YubiKey, a replayed nonce, the
//! policy). The officers' YubiKeys are in-process software keys; `ring` checks nothing here
//! that the domain does not check itself.

use zeroize::Zeroizing;

use super::attest::{in_test_ca_validity, test_ca};
use super::*;
use crate::custody::approval_keys::{CHALLENGES_PER_OFFICER, CHALLENGE_TTL_MS};
use crate::custody::{ApprovalProof, KeyEvidence, PassphraseProven, SignedProof};
use crate::emulator::oath::{AutoTouch, OathState};
use crate::emulator::SoftKey;
use crate::token::piv::{self, signing, ManagementKey, PivSession};

pub(super) const ALICE_KEY: u32 = 20_000_001;
pub(super) const CAROL_KEY: u32 = 20_000_002;

/// An officer's own YubiKey with a fresh approval key in 9C.
pub(super) fn officer_yubikey(serial: u32) -> SoftKey {
    let mut key = SoftKey::new(
        serial,
        [5, 4, 3],
        crate::token::management::FormFactor::UsbAKeychain,
        OathState::fresh(),
        Box::new(AutoTouch),
    );
    let mut s = PivSession::select(&mut key).expect("select");
    let alg = s.management_algorithm().expect("alg");
    signing::generate(&mut s, &ManagementKey::factory_default(alg).expect("mk")).expect("gen");
    key
}

fn evidence(key: &mut SoftKey, serial: u32) -> KeyEvidence {
    let mut s = PivSession::select(key).expect("select");
    let e = signing::evidence(&mut s).expect("evidence");
    let anchors = test_ca();
    let attested = crate::token::attestation::verify_attestation(
        &crate::token::attestation::Evidence {
            slot_cert: &e.slot_cert,
            device_cert: &e.device_cert,
            extra_intermediates: &[],
        },
        &crate::token::attestation::Expected {
            slot: crate::token::attestation::PivSlot::SIGNATURE,
            serial,
        },
        &anchors,
        jiff::Timestamp::now(),
    )
    .expect("attests");
    KeyEvidence {
        serial,
        spki: attested.public_key_spki,
        slot_cert: e.slot_cert,
        device_cert: e.device_cert,
    }
}

pub(super) fn register(
    w: &mut World,
    officer: &str,
    witness: &str,
    key: &mut SoftKey,
    serial: u32,
) {
    let ev = evidence(key, serial);
    let (a, b) = (w.login(officer), w.login(witness));
    w.custody
        .register_officer_key(&a, &b, &ev, &test_ca())
        .expect("register");
}

pub(super) fn proven(w: &World, officer: &str) -> PassphraseProven {
    PassphraseProven::for_tests(name(officer), w.clock.now_ms())
}

/// Signs the approval of `r` as `officer` with `key` for the nonce, as the CLI does from
/// what it shows.
fn sign(r: &RequestRecord, officer: &str, key_id: &str, nonce: &str, key: &mut SoftKey) -> Vec<u8> {
    let message = crate::custody::records::signed_approval_message(
        [
            r.id.as_str(),
            r.account.as_str(),
            r.task.as_str(),
            r.ticket.as_str(),
            r.reason.as_str(),
            r.requester.as_str(),
        ],
        officer,
        key_id,
        nonce,
    );
    let digest: [u8; 32] = ring::digest::digest(&ring::digest::SHA256, &message)
        .as_ref()
        .try_into()
        .expect("32");
    let pin = piv::Pin::new(Zeroizing::new(b"123456".to_vec())).expect("pin");
    let mut s = PivSession::select(key).expect("select");
    signing::sign(&mut s, &pin, &digest).expect("sign")
}

fn signed_approval(
    w: &mut World,
    r: &RequestRecord,
    officer: &str,
    key: &mut SoftKey,
) -> Result<RequestRecord, CustodyError> {
    let p = proven(w, officer);
    let ch = w.custody.approval_challenge(&p, &r.id)?;
    let signature = sign(r, officer, &ch.key_id, &ch.nonce, key);
    w.custody.approve_signed(
        &r.id,
        &p,
        None,
        &SignedProof {
            key_id: ch.key_id,
            nonce: ch.nonce,
            signature,
        },
    )
}

pub(super) fn world() -> World {
    in_test_ca_validity(World::new().with_enrolled_account())
}

#[test]
fn two_signed_approvals_approve_and_the_events_carry_what_auditors_check() {
    let mut w = world();
    let (mut ka, mut kc) = (officer_yubikey(ALICE_KEY), officer_yubikey(CAROL_KEY));
    register(&mut w, "alice", "bob", &mut ka, ALICE_KEY);
    register(&mut w, "carol", "bob", &mut kc, CAROL_KEY);
    let reg = w.bodies(store::kinds::OFFICER_KEY_REGISTERED);
    assert_eq!(reg.len(), 2);
    for field in [
        "officer",
        "serial",
        "slot",
        "spki",
        "key_id",
        "firmware",
        "pin_policy",
        "touch_policy",
        "anchor",
        "slot_certificate",
        "device_certificate",
        "witness",
    ] {
        assert!(reg[0].get(field).is_some(), "{field} missing: {}", reg[0]);
    }
    assert_eq!(reg[0]["slot"], "9c");
    assert_eq!(reg[0]["serial"], ALICE_KEY);
    assert_eq!(reg[0]["touch_policy"], "always");
    assert_eq!(reg[0]["witness"], "bob");

    let r = w.new_request("oscar");
    signed_approval(&mut w, &r, "alice", &mut ka).expect("alice signs");
    let r = signed_approval(&mut w, &r, "carol", &mut kc).expect("carol signs");
    assert_eq!(r.status, RequestStatus::Approved);
    let approved = w.bodies(store::kinds::REQUEST_APPROVED);
    let last = approved.last().expect("approval");
    assert_eq!(last["proof"], "signature");
    assert_eq!(last["nonce"].as_str().expect("nonce").len(), 64);
    assert_eq!(last["digest"].as_str().expect("digest").len(), 64);
    assert!(last["signature"].is_string() && last["key_id"].is_string());
    // A TOTP approval says so.
    let r2 = w.new_request("oscar");
    w.approve(&r2.id, "bob").expect("totp");
    assert_eq!(
        w.bodies(store::kinds::REQUEST_APPROVED).last().expect("a")["proof"],
        "totp"
    );
}

#[test]
fn a_signature_relayed_to_another_request_is_refused() {
    let mut w = world();
    let mut ka = officer_yubikey(ALICE_KEY);
    register(&mut w, "alice", "bob", &mut ka, ALICE_KEY);
    let r1 = w.new_request("oscar");
    let r2 = w.new_request("oscar");
    let p = proven(&w, "alice");
    // A nonce issued for r1, and a signature made over r1, sent to approve r2.
    let ch = w.custody.approval_challenge(&p, &r1.id).expect("challenge");
    let signature = sign(&r1, "alice", &ch.key_id, &ch.nonce, &mut ka);
    let proof = SignedProof {
        key_id: ch.key_id.clone(),
        nonce: ch.nonce.clone(),
        signature: signature.clone(),
    };
    let e = w
        .custody
        .approve_signed(&r2.id, &p, None, &proof)
        .expect_err("relayed");
    assert_eq!(e.code(), "approval_nonce_unknown", "{e}");
    // With a nonce for r2 but the signature over r1: the message is computed from r2.
    let ch2 = w.custody.approval_challenge(&p, &r2.id).expect("challenge");
    let e = w
        .custody
        .approve_signed(
            &r2.id,
            &p,
            None,
            &SignedProof {
                key_id: ch2.key_id,
                nonce: ch2.nonce,
                signature,
            },
        )
        .expect_err("signed over r1");
    assert_eq!(e.code(), "approval_signature_invalid", "{e}");
    assert!(e.to_string().contains("new challenge"), "{e}");
    assert!(w
        .refusals()
        .contains(&"approval_signature_invalid".to_owned()));
    assert!(w.bodies(store::kinds::REQUEST_APPROVED).is_empty());
}

#[test]
fn a_nonce_is_used_once() {
    let mut w = world();
    let mut ka = officer_yubikey(ALICE_KEY);
    register(&mut w, "alice", "bob", &mut ka, ALICE_KEY);
    let r = w.new_request("oscar");
    let p = proven(&w, "alice");
    let ch = w.custody.approval_challenge(&p, &r.id).expect("challenge");
    let proof = SignedProof {
        key_id: ch.key_id.clone(),
        nonce: ch.nonce.clone(),
        signature: sign(&r, "alice", &ch.key_id, &ch.nonce, &mut ka),
    };
    w.custody
        .approve_signed(&r.id, &p, None, &proof)
        .expect("first use");
    let e = w
        .custody
        .approve_signed(&r.id, &p, None, &proof)
        .expect_err("replay");
    assert_eq!(e.code(), "approval_nonce_unknown", "{e}");
    // Another officer cannot use alice's nonce either.
    let ch = w.custody.approval_challenge(&p, &r.id).expect("challenge");
    let e = w
        .custody
        .approve_signed(
            &r.id,
            &proven(&w, "carol"),
            None,
            &SignedProof {
                key_id: ch.key_id.clone(),
                nonce: ch.nonce.clone(),
                signature: vec![0x30, 0x00],
            },
        )
        .expect_err("carol");
    assert_eq!(e.code(), "approval_nonce_unknown", "{e}");
    // An expired nonce is unknown.
    let proof = SignedProof {
        signature: sign(&r, "alice", &ch.key_id, &ch.nonce, &mut ka),
        key_id: ch.key_id,
        nonce: ch.nonce,
    };
    w.clock.advance(CHALLENGE_TTL_MS + 1);
    let e = w
        .custody
        .approve_signed(&r.id, &proven(&w, "alice"), None, &proof)
        .expect_err("expired");
    assert_eq!(e.code(), "approval_nonce_unknown", "{e}");
}

#[test]
fn challenges_are_capped_per_officer_and_one_officers_cap_is_not_anothers() {
    let mut w = world();
    let (mut ka, mut kc) = (officer_yubikey(ALICE_KEY), officer_yubikey(CAROL_KEY));
    register(&mut w, "alice", "bob", &mut ka, ALICE_KEY);
    register(&mut w, "carol", "bob", &mut kc, CAROL_KEY);
    let r = w.new_request("oscar");
    for _ in 0..CHALLENGES_PER_OFFICER {
        w.custody
            .approval_challenge(&proven(&w, "alice"), &r.id)
            .expect("under the cap");
    }
    let e = w
        .custody
        .approval_challenge(&proven(&w, "alice"), &r.id)
        .expect_err("cap");
    assert_eq!(e.code(), "approval_nonces_exhausted", "{e}");
    signed_approval(&mut w, &r, "carol", &mut kc).expect("carol is not capped by alice");
    w.clock.advance(CHALLENGE_TTL_MS + 1);
    w.custody
        .approval_challenge(&proven(&w, "alice"), &r.id)
        .expect("expired ones free the cap");
}

#[test]
fn a_swapped_yubikey_is_refused_and_a_second_key_needs_removal_first() {
    let mut w = world();
    let mut ka = officer_yubikey(ALICE_KEY);
    register(&mut w, "alice", "bob", &mut ka, ALICE_KEY);
    let r = w.new_request("oscar");
    // Alice signs with another YubiKey (same slot, another key): its key id is not hers.
    let mut other = officer_yubikey(CAROL_KEY);
    let other_id = {
        let ev = evidence(&mut other, CAROL_KEY);
        data_encoding::HEXLOWER
            .encode(ring::digest::digest(&ring::digest::SHA256, &ev.spki).as_ref())
    };
    let p = proven(&w, "alice");
    let ch = w.custody.approval_challenge(&p, &r.id).expect("challenge");
    let e = w
        .custody
        .approve_signed(
            &r.id,
            &p,
            None,
            &SignedProof {
                key_id: other_id.clone(),
                nonce: ch.nonce.clone(),
                signature: sign(&r, "alice", &other_id, &ch.nonce, &mut other),
            },
        )
        .expect_err("another key id");
    assert_eq!(e.code(), "signing_key_not_registered", "{e}");
    // The swapped key signing under alice's key id does not verify.
    let ch = w.custody.approval_challenge(&p, &r.id).expect("challenge");
    let e = w
        .custody
        .approve_signed(
            &r.id,
            &p,
            None,
            &SignedProof {
                key_id: ch.key_id.clone(),
                nonce: ch.nonce.clone(),
                signature: sign(&r, "alice", &ch.key_id, &ch.nonce, &mut other),
            },
        )
        .expect_err("another key's signature");
    assert_eq!(e.code(), "approval_signature_invalid", "{e}");

    // Registering the other key needs the first removed.
    let ev = evidence(&mut other, CAROL_KEY);
    let (a, b) = (w.login("alice"), w.login("bob"));
    let e = w
        .custody
        .register_officer_key(&a, &b, &ev, &test_ca())
        .expect_err("one key per officer");
    assert_eq!(e.code(), "signing_key_exists", "{e}");
    let removed = w.custody.remove_officer_key(&a, &b).expect("remove");
    assert_eq!(
        w.bodies(store::kinds::OFFICER_KEY_REMOVED)[0]["key_id"],
        removed
    );
    w.custody
        .register_officer_key(&a, &b, &ev, &test_ca())
        .expect("the new key");
    // The old key now signs nothing.
    let ch = w.custody.approval_challenge(&p, &r.id).expect("challenge");
    assert_ne!(ch.key_id, removed);
    signed_approval(&mut w, &r, "alice", &mut other).expect("the new key signs");
}

#[test]
fn registration_needs_two_officers_a_trusted_chain_and_touch_always() {
    let mut w = world();
    let mut ka = officer_yubikey(ALICE_KEY);
    let ev = evidence(&mut ka, ALICE_KEY);
    let a = w.login("alice");
    let e = w
        .custody
        .register_officer_key(&a, &a, &ev, &test_ca())
        .expect_err("same officer twice");
    assert_eq!(e.code(), "same_officer_twice");
    let b = w.login("bob");
    let e = w
        .custody
        .register_officer_key(
            &a,
            &b,
            &ev,
            &crate::token::attestation::TrustAnchors::yubico(),
        )
        .expect_err("the test CA is not Yubico");
    assert_eq!(e.code(), "attestation_untrusted");
    let mut wrong = ev.clone();
    wrong.serial = CAROL_KEY;
    let e = w
        .custody
        .register_officer_key(&a, &b, &wrong, &test_ca())
        .expect_err("serial");
    assert_eq!(e.code(), "attestation_serial_mismatch");
    // A key generated with touch policy never.
    let mut lax = SoftKey::new(
        CAROL_KEY,
        [5, 4, 3],
        crate::token::management::FormFactor::UsbAKeychain,
        OathState::fresh(),
        Box::new(AutoTouch),
    );
    {
        let mut s = PivSession::select(&mut lax).expect("select");
        let alg = s.management_algorithm().expect("alg");
        s.authenticate(&ManagementKey::factory_default(alg).expect("mk"))
            .expect("auth");
        s.generate_p256(
            piv::SLOT_SIGNATURE,
            piv::PinPolicy::Once,
            piv::TouchPolicy::Never,
        )
        .expect("gen");
    }
    let ev = evidence(&mut lax, CAROL_KEY);
    let (c, b) = (w.login("carol"), w.login("bob"));
    let e = w
        .custody
        .register_officer_key(&c, &b, &ev, &test_ca())
        .expect_err("touch never");
    assert_eq!(e.code(), "signing_key_policy");
    assert!(e.to_string().contains("--generate"), "{e}");
    assert!(w.bodies(store::kinds::OFFICER_KEY_REGISTERED).is_empty());
    // Without a key, no challenge.
    let r = w.new_request("oscar");
    let e = w
        .custody
        .approval_challenge(&proven(&w, "alice"), &r.id)
        .expect_err("no key");
    assert_eq!(e.code(), "signing_key_not_registered");
}

#[test]
fn the_policy_takes_the_proofs_it_names() {
    let mut w = world();
    let mut ka = officer_yubikey(ALICE_KEY);
    register(&mut w, "alice", "bob", &mut ka, ALICE_KEY);
    let r = w.new_request("oscar");

    w.custody.policy.approval_proof = ApprovalProof::Signature;
    let e = w.approve(&r.id, "bob").expect_err("totp refused");
    assert_eq!(e.code(), "approval_proof_required", "{e}");
    assert!(e.to_string().contains("--sign"), "{e}");
    signed_approval(&mut w, &r, "alice", &mut ka).expect("signature taken");

    w.custody.policy.approval_proof = ApprovalProof::Totp;
    let r = w.new_request("oscar");
    let e = w
        .custody
        .approval_challenge(&proven(&w, "alice"), &r.id)
        .expect_err("signature refused");
    assert_eq!(e.code(), "approval_proof_required", "{e}");
    w.approve(&r.id, "bob").expect("totp taken");
    assert!(w.refusals().contains(&"approval_proof_required".to_owned()));
}

#[test]
fn an_old_passphrase_proof_approves_nothing() {
    let mut w = world();
    let mut ka = officer_yubikey(ALICE_KEY);
    register(&mut w, "alice", "bob", &mut ka, ALICE_KEY);
    let r = w.new_request("oscar");
    let p = proven(&w, "alice");
    w.clock.advance(crate::custody::FRESH_AUTH_MS + 1);
    let e = w.custody.approval_challenge(&p, &r.id).expect_err("stale");
    assert_eq!(e.code(), "proof_not_fresh");
}

/// A failed authentication of `officer` (a wrong passphrase), counted in the ledger.
fn fail_once(w: &mut World, officer: &str) {
    let mut c = w.creds(officer);
    c.passphrase = UserPassphrase::new_checked(Zeroizing::new("not-the-passphrase-1".to_owned()))
        .expect("a passphrase");
    let e = w.custody.authenticate(&c).expect_err("wrong passphrase");
    assert_eq!(e.code(), "authentication_failed", "{e}");
    assert_eq!(
        w.custody
            .user(&name(officer))
            .expect("user")
            .failed_attempts,
        1
    );
}

#[test]
fn a_signed_approval_records_its_authentication_as_a_totp_approval_does() {
    let mut w = world();
    let mut ka = officer_yubikey(ALICE_KEY);
    register(&mut w, "alice", "bob", &mut ka, ALICE_KEY);
    let r = w.new_request("oscar");

    // A TOTP approval: auth.succeeded, then request.approved; the failed attempt is cleared.
    fail_once(&mut w, "carol");
    let before = w.bodies(store::kinds::AUTH_SUCCEEDED).len();
    w.approve(&r.id, "carol").expect("totp");
    let succeeded = w.bodies(store::kinds::AUTH_SUCCEEDED);
    assert_eq!(succeeded.len(), before + 1);
    assert_eq!(succeeded[before]["user"], "carol");
    assert_eq!(
        w.custody
            .user(&name("carol"))
            .expect("carol")
            .failed_attempts,
        0
    );
    let kinds = w.kinds();
    assert_eq!(
        kinds[kinds.len() - 2..],
        ["auth.succeeded".to_owned(), "request.approved".to_owned()]
    );

    // A signed approval records the same, with no second-factor step (the signature took its
    // place), and leaves the officer's last step as it was.
    fail_once(&mut w, "alice");
    let step = w
        .custody
        .user(&name("alice"))
        .expect("alice")
        .last_factor_step;
    let before = w.bodies(store::kinds::AUTH_SUCCEEDED).len();
    signed_approval(&mut w, &r, "alice", &mut ka).expect("alice signs");
    let succeeded = w.bodies(store::kinds::AUTH_SUCCEEDED);
    assert_eq!(succeeded.len(), before + 1, "{succeeded:?}");
    let body = &succeeded[before];
    assert_eq!(body["user"], "alice", "{body}");
    assert!(body["factor_step"].is_null(), "{body}");
    assert_eq!(body["proof"], "signature", "{body}");
    let alice = w.custody.user(&name("alice")).expect("alice");
    assert_eq!(alice.failed_attempts, 0);
    assert_eq!(alice.last_factor_step, step);
    let kinds = w.kinds();
    assert_eq!(
        kinds[kinds.len() - 2..],
        ["auth.succeeded".to_owned(), "request.approved".to_owned()]
    );

    // A refused signed approval records no success.
    fail_once(&mut w, "bob");
    let before = w.bodies(store::kinds::AUTH_SUCCEEDED).len();
    let p = proven(&w, "alice");
    let e = w
        .custody
        .approve_signed(
            &r.id,
            &p,
            None,
            &SignedProof {
                key_id: "00".repeat(32),
                nonce: "00".repeat(32),
                signature: vec![0x30, 0x00],
            },
        )
        .expect_err("no such nonce");
    assert_eq!(e.code(), "approval_nonce_unknown", "{e}");
    assert_eq!(w.bodies(store::kinds::AUTH_SUCCEEDED).len(), before);
}
