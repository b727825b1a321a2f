//! The offline checks of officer keys and signed approvals (`custody::approval_proofs`) on
//! arbitrary event bodies: failures are fine, panics are not.
//!
//! The first byte picks how the rest is used. Even: edits (event, field, position, XOR) of a
//! valid history made once by an emulated YubiKey (an attested 9c key registered, a request,
//! its signed approval), so mutations reach the attestation, digest and signature checks, not
//! only the field parsing. Odd: a sequence of events, each a kind byte, a two-byte length and
//! that many bytes of JSON body. Each input is checked in well under a millisecond but for the
//! attestation chain's two P-256 signatures.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mfa_custody::custody::approval_proofs::ApprovalProofs;
use mfa_custody::custody::records::{signed_approval_digest, signed_approval_message};
use mfa_custody::emulator::oath::{AutoTouch, OathState};
use mfa_custody::emulator::piv::attest::TEST_CA_CERT_PEM;
use mfa_custody::emulator::SoftKey;
use mfa_custody::ledger::{
    Actor, CanonicalJson, EventHeader, ExportLine, Hash, Kind, StoredEvent, Timestamp,
};
use mfa_custody::token::attestation::{
    verify_attestation, Evidence, Expected, PivSlot, TrustAnchors,
};
use mfa_custody::token::management::FormFactor;
use mfa_custody::token::piv::{ManagementKey, PinPolicy, PivSession, TouchPolicy};
use serde_json::{json, Value};

const KINDS: [&str; 5] = [
    "officer.key_registered",
    "request.created",
    "request.approved",
    "officer.key_removed",
    "request.approved",
];
const SHOWN: [&str; 6] = ["r1", "123456789012", "support_plan", "T-1", "why", "olivia"];
const NONCE: &str = "00112233445566778899aabbccddeeff";

fn anchors() -> &'static TrustAnchors {
    static A: OnceLock<TrustAnchors> = OnceLock::new();
    A.get_or_init(|| TrustAnchors::from_pem(TEST_CA_CERT_PEM).unwrap_or_default())
}

/// The valid history: (kind index, body) of a registration, a request and its signed approval.
fn history() -> &'static Vec<(usize, Value)> {
    static H: OnceLock<Vec<(usize, Value)>> = OnceLock::new();
    H.get_or_init(|| make_history().unwrap_or_default())
}

fn make_history() -> Option<Vec<(usize, Value)>> {
    let serial = 20_000_201;
    let mut card = SoftKey::new(
        serial,
        [5, 4, 3],
        FormFactor::UsbAKeychain,
        OathState::blank([3; 8]),
        Box::new(AutoTouch),
    );
    let mut s = PivSession::select(&mut card).ok()?;
    let alg = s.management_algorithm().ok()?;
    s.authenticate(&ManagementKey::factory_default(alg).ok()?).ok()?;
    s.generate_p256(0x9C, PinPolicy::Never, TouchPolicy::Always).ok()?;
    let slot_cert = s.attest(0x9C).ok()?;
    let device_cert = s.attestation_certificate().ok()?;
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
        anchors(),
        now(),
    )
    .ok()?;
    let message = signed_approval_message(SHOWN, "alice", &attested.key_id, NONCE);
    let d = ring::digest::digest(&ring::digest::SHA256, &message);
    let signature = s.sign_p256(0x9C, d.as_ref().try_into().ok()?).ok()?;
    let b64 = |b: &[u8]| data_encoding::BASE64.encode(b);
    Some(vec![
        (
            0,
            json!({"officer": "alice", "serial": serial, "slot": "9c",
                   "spki": b64(&attested.public_key_spki), "key_id": attested.key_id,
                   "firmware": attested.firmware.to_string(),
                   "pin_policy": attested.pin_policy.to_string(),
                   "touch_policy": attested.touch_policy.to_string(),
                   "anchor": attested.anchor, "witness": "bob",
                   "slot_certificate": b64(&slot_cert), "device_certificate": b64(&device_cert)}),
        ),
        (
            1,
            json!({"request": SHOWN[0], "account": SHOWN[1], "task": SHOWN[2],
                   "ticket": SHOWN[3], "reason": SHOWN[4], "requester": SHOWN[5]}),
        ),
        (
            2,
            json!({"request": "r1", "officer": "alice", "proof": "signature",
                   "key_id": attested.key_id, "nonce": NONCE,
                   "digest": signed_approval_digest(&message), "signature": b64(&signature)}),
        ),
    ])
}

/// The time of every event (and of the attestation): now, inside the test CA's validity.
fn now() -> jiff::Timestamp {
    static T: OnceLock<jiff::Timestamp> = OnceLock::new();
    *T.get_or_init(jiff::Timestamp::now)
}

fn line(seq: u64, kind: usize, body: &Value) -> Option<ExportLine> {
    let header = EventHeader {
        seq,
        time: Timestamp(now().as_millisecond()),
        actor: Actor::parse("alice").ok()?,
        kind: Kind::parse(KINDS[kind % KINDS.len()]).ok()?,
        body_hash: Hash([0; 32]),
        prev: Hash([0; 32]),
        hash: Hash([0; 32]),
    };
    if kind % KINDS.len() == 4 {
        return Some(ExportLine::Stub(header));
    }
    Some(ExportLine::Event(StoredEvent {
        header,
        body: CanonicalJson::from_value(body).ok()?,
    }))
}

/// Applies an edit to one string field of `body`: bytes of Base64 fields are edited decoded.
fn edit(body: &mut Value, field: u8, pos: u8, xor: u8) {
    let Value::Object(m) = body else { return };
    let keys: Vec<String> = m.keys().cloned().collect();
    let Some(key) = keys.get(usize::from(field) % keys.len().max(1)) else {
        return;
    };
    let Some(v) = m.get_mut(key) else { return };
    match v {
        Value::String(s) => {
            let decoded = data_encoding::BASE64.decode(s.as_bytes()).ok();
            let mut bytes = decoded.clone().unwrap_or_else(|| s.as_bytes().to_vec());
            if bytes.is_empty() {
                return;
            }
            let at = usize::from(pos) * 7 % bytes.len();
            bytes[at] ^= xor.max(1);
            *s = if decoded.is_some() {
                data_encoding::BASE64.encode(&bytes)
            } else {
                String::from_utf8_lossy(&bytes).into_owned()
            };
        }
        Value::Number(_) => *v = json!(u64::from(pos) << (xor % 40)),
        _ => *v = Value::Null,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut proofs = ApprovalProofs::new(anchors().clone());
    if mode % 2 == 0 {
        let mut events = history().clone();
        for e in rest.chunks_exact(4).take(16) {
            let n = events.len().max(1);
            match e[0] % 8 {
                // Duplicate an event (a nonce reused, a key registered twice).
                6 => {
                    if let Some(x) = events.get(usize::from(e[1]) % n).cloned() {
                        events.push(x);
                    }
                }
                // Drop one.
                7 => {
                    if !events.is_empty() {
                        events.remove(usize::from(e[1]) % n);
                    }
                }
                _ => {
                    if let Some((_, body)) = events.get_mut(usize::from(e[0]) % n) {
                        edit(body, e[1], e[2], e[3]);
                    }
                }
            }
        }
        for (seq, (kind, body)) in events.iter().enumerate() {
            if let Some(l) = line(seq as u64 + 1, *kind, body) {
                proofs.observe(&l);
            }
        }
    } else {
        let mut at = rest;
        let mut seq = 0u64;
        while let [kind, hi, lo, tail @ ..] = at {
            let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(tail.len());
            let (body, next) = tail.split_at(len);
            at = next;
            seq += 1;
            let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            if let Some(l) = line(seq, usize::from(*kind), &body) {
                proofs.observe(&l);
            }
        }
    }
    let _ = proofs.finish();
});
