//! Officers' approval-signing YubiKeys in process, for ledgers with signed approvals: an
//! emulated YubiKey ([`SoftKey`]) generates a P-256 key in PIV slot 9c, attests it and signs
//! through the PIV codec, exactly as a real key answers; the event bodies are those
//! `officer.key_registered` and a signed `request.approved` record. (benches/approvals.rs
//! includes this file alone: it uses nothing else of the tests' support.)
#![allow(dead_code)]

use mfa_custody::custody::records::{signed_approval_digest, signed_approval_message};
use mfa_custody::emulator::oath::{AutoTouch, OathState};
use mfa_custody::emulator::piv::attest::TEST_CA_CERT_PEM;
use mfa_custody::emulator::SoftKey;
use mfa_custody::token::attestation::{
    verify_attestation, Evidence, Expected, PivSlot, TrustAnchors,
};
use mfa_custody::token::management::FormFactor;
use mfa_custody::token::piv::{ManagementKey, PivSession};
use mfa_custody::token::piv::{PinPolicy, TouchPolicy};
use serde_json::{json, Value};

/// PIV slot 9c (digital signature).
pub const SLOT: u8 = 0x9C;

/// The emulator's test attestation CA (what `--piv-test-ca` is given).
pub fn test_ca() -> TrustAnchors {
    TrustAnchors::from_pem(TEST_CA_CERT_PEM).expect("the emulator's test CA")
}

/// The file of the emulator's test CA, for `--piv-test-ca`.
pub fn test_ca_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("hsm-fixtures/piv-test-ca.pem")
}

/// An officer's YubiKey with an attested approval key in slot 9c.
pub struct OfficerKey {
    /// The officer.
    pub officer: String,
    /// The YubiKey's serial.
    pub serial: u32,
    card: SoftKey,
    /// The key's SubjectPublicKeyInfo (DER).
    pub spki: Vec<u8>,
    /// SHA-256 hex of `spki`.
    pub key_id: String,
    /// The slot attestation (DER).
    pub slot_cert: Vec<u8>,
    /// The F9 device certificate (DER).
    pub device_cert: Vec<u8>,
    firmware: String,
    /// The subject of the trust anchor the attestation chains to.
    anchor: String,
}

impl OfficerKey {
    /// `officer`'s YubiKey `serial` (firmware 5.4.3) with a new key in 9c, attested.
    pub fn new(officer: &str, serial: u32) -> Self {
        let firmware = [5, 4, 3];
        let mut card = SoftKey::new(
            serial,
            firmware,
            FormFactor::UsbAKeychain,
            OathState::blank([7; 8]),
            Box::new(AutoTouch),
        );
        let (slot_cert, device_cert) = {
            let mut s = PivSession::select(&mut card).expect("select PIV");
            let alg = s.management_algorithm().expect("metadata");
            s.authenticate(&ManagementKey::factory_default(alg).expect("factory key"))
                .expect("authenticate");
            s.generate_p256(SLOT, PinPolicy::Never, TouchPolicy::Always)
                .expect("generate in 9c");
            let slot_cert = s.attest(SLOT).expect("attest 9c");
            let device_cert = s.attestation_certificate().expect("F9 certificate");
            (slot_cert, device_cert)
        };
        let attested = verify_attestation(
            &Evidence {
                slot_cert: &slot_cert,
                device_cert: &device_cert,
                extra_intermediates: &[],
            },
            &Expected {
                slot: PivSlot::SIGNATURE,
                serial,
            },
            &test_ca(),
            jiff::Timestamp::now(),
        )
        .expect("the emulator's attestation verifies");
        Self {
            officer: officer.to_owned(),
            serial,
            card,
            spki: attested.public_key_spki.clone(),
            key_id: attested.key_id.clone(),
            slot_cert,
            device_cert,
            firmware: attested.firmware.to_string(),
            anchor: attested.anchor.clone(),
        }
    }

    /// The officer who witnesses this officer's registration and removal: bob, or alice for
    /// bob.
    fn witness(&self) -> &'static str {
        if self.officer == "bob" {
            "alice"
        } else {
            "bob"
        }
    }

    /// The `officer.key_registered` body.
    pub fn registered(&self) -> Value {
        let b64 = |b: &[u8]| data_encoding::BASE64.encode(b);
        json!({
            "officer": self.officer, "serial": self.serial, "slot": "9c",
            "spki": b64(&self.spki), "key_id": self.key_id, "firmware": self.firmware,
            "pin_policy": "never", "touch_policy": "always", "anchor": self.anchor,
            "slot_certificate": b64(&self.slot_cert),
            "device_certificate": b64(&self.device_cert), "witness": self.witness(),
        })
    }

    /// The `officer.key_removed` body.
    pub fn removed(&self) -> Value {
        json!({"officer": self.officer, "key_id": self.key_id, "witness": self.witness()})
    }

    /// Signs the approval of the request showing `shown` with `nonce` (hex): the
    /// `request.approved` body.
    pub fn approve(&mut self, shown: [&str; 6], nonce: &str) -> Value {
        let message = signed_approval_message(shown, &self.officer, &self.key_id, nonce);
        let digest = signed_approval_digest(&message);
        let d = ring::digest::digest(&ring::digest::SHA256, &message);
        let mut to_sign = [0u8; 32];
        to_sign.copy_from_slice(d.as_ref());
        let signature = PivSession::select(&mut self.card)
            .expect("select PIV")
            .sign_p256(SLOT, &to_sign)
            .expect("sign in 9c");
        json!({
            "request": shown[0], "account": shown[1], "officer": self.officer,
            "approvals": 1, "status": "pending", "reopened": false, "renewed": false,
            "dropped": [], "proof": "signature", "key_id": self.key_id, "nonce": nonce,
            "digest": digest, "signature": data_encoding::BASE64.encode(&signature),
        })
    }
}

/// What request `id` shows its approvers: id, account, task, ticket, reason, requester.
pub fn shown(id: &str) -> [String; 6] {
    [
        id.to_owned(),
        "123456789012".to_owned(),
        "support_plan".to_owned(),
        format!("T-{id}"),
        "rotate the root keys".to_owned(),
        "olivia".to_owned(),
    ]
}

/// `shown` as the message functions take it.
pub fn refs(s: &[String; 6]) -> [&str; 6] {
    [&s[0], &s[1], &s[2], &s[3], &s[4], &s[5]]
}

/// The `request.created` body of a request showing `shown`.
pub fn created(shown: [&str; 6]) -> Value {
    json!({"request": shown[0], "account": shown[1], "task": shown[2], "ticket": shown[3],
           "reason": shown[4], "requester": shown[5], "expires_ms": 4_102_444_800_000_i64})
}

/// A TOTP approval's body (`proof` absent when `older`).
pub fn totp_approved(id: &str, officer: &str, older: bool) -> Value {
    let mut b = json!({"request": id, "account": "123456789012", "officer": officer,
                       "approvals": 1, "status": "pending", "reopened": false,
                       "renewed": false, "dropped": []});
    if !older {
        b["proof"] = json!("totp");
    }
    b
}

/// A nonce (hex) distinct for each `n`.
pub fn nonce(n: u64) -> String {
    format!("{n:064x}")
}
