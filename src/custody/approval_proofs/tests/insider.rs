//! An insider who holds the ledger's keys edits a recorded proof in the database (a byte of a
//! signature, of a digest, of an officer key's spki or certificates, its key id), re-hashes and
//! re-links the chain from there and exports with a freshly signed checkpoint: the export's
//! chain verifies, and the approval checks refuse it, naming the check and the event.

use std::num::NonZeroU32;
use std::path::Path;

use rusqlite::params;
use serde_json::{json, Value};
use zeroize::Zeroizing;

use super::*;
use crate::emulator::oath::{AutoTouch, OathState};
use crate::emulator::piv::attest::TEST_CA_CERT_PEM;
use crate::emulator::SoftKey;
use crate::ledger::chain::{body_hash, event_hash, Hash};
use crate::ledger::{
    export, Actor, CanonicalJson, ExportFilter, ExportFormat, Genesis, KdfParams, Kind, Ledger,
    NewEvent, OfficerName, Passphrase, Projections, Timestamp,
};
use crate::token::management::FormFactor;
use crate::token::piv::{ManagementKey, PinPolicy, PivSession, TouchPolicy};

const SLOT: u8 = 0x9C;
const SERIAL: u32 = 20_000_101;
const SHOWN: [&str; 6] = ["r1", "123456789012", "support_plan", "T-1", "why", "olivia"];
const NONCE: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

fn officers() -> Vec<(OfficerName, Passphrase)> {
    ["alice", "bob"]
        .iter()
        .map(|n| {
            (
                OfficerName::parse(n).expect("name"),
                Passphrase::for_unseal(Zeroizing::new(format!("{n}-passphrase-1"))).expect("pass"),
            )
        })
        .collect()
}

fn anchors() -> TrustAnchors {
    TrustAnchors::from_pem(TEST_CA_CERT_PEM).expect("test CA")
}

fn append(l: &mut Ledger, kind: &str, body: &Value) -> u64 {
    l.append(
        NewEvent::new(
            Actor::parse("alice").expect("actor"),
            Kind::parse(kind).expect("kind"),
            body,
        )
        .expect("body"),
    )
    .expect("append")
    .header
    .seq
}

/// A ledger in `dir` with alice's attested key registered, request r1 and alice's signed
/// approval of it; the seqs of the registration and the approval.
fn master(dir: &Path) -> (u64, u64) {
    master_with(dir, TouchPolicy::Always)
}

/// [`master`] with alice's key generated with touch policy `touch` (and so recorded).
fn master_with(dir: &Path, touch: TouchPolicy) -> (u64, u64) {
    let mut card = SoftKey::new(
        SERIAL,
        [5, 4, 3],
        FormFactor::UsbAKeychain,
        OathState::blank([1; 8]),
        Box::new(AutoTouch),
    );
    let mut s = PivSession::select(&mut card).expect("select");
    let alg = s.management_algorithm().expect("metadata");
    s.authenticate(&ManagementKey::factory_default(alg).expect("factory"))
        .expect("authenticate");
    s.generate_p256(SLOT, PinPolicy::Never, touch)
        .expect("generate");
    let slot_cert = s.attest(SLOT).expect("attest");
    let device_cert = s.attestation_certificate().expect("F9");
    let attested = verify_attestation(
        &Evidence {
            slot_cert: &slot_cert,
            device_cert: &device_cert,
            extra_intermediates: &[],
        },
        &Expected {
            slot: PivSlot::SIGNATURE,
            serial: SERIAL,
        },
        &anchors(),
        jiff::Timestamp::now(),
    )
    .expect("attested");
    let key_id = attested.key_id.clone();
    let message = signed_approval_message(SHOWN, "alice", &key_id, NONCE);
    let digest = ring::digest::digest(&ring::digest::SHA256, &message);
    let mut to_sign = [0u8; 32];
    to_sign.copy_from_slice(digest.as_ref());
    let signature = s.sign_p256(SLOT, &to_sign).expect("sign");

    let genesis = Genesis {
        officers: &officers(),
        threshold: 2,
        kdf: KdfParams::insecure_for_tests(NonZeroU32::new(1000).unwrap_or(NonZeroU32::MIN)),
    };
    let mut l = Ledger::create(dir, &genesis, Projections::ledger_only()).expect("create");
    let b64 = |b: &[u8]| data_encoding::BASE64.encode(b);
    let registered = append(
        &mut l,
        kinds::OFFICER_KEY_REGISTERED,
        &json!({"officer": "alice", "serial": SERIAL, "slot": "9c",
                "spki": b64(&attested.public_key_spki), "key_id": key_id,
                "firmware": attested.firmware.to_string(), "pin_policy": "never",
                "touch_policy": attested.touch_policy.to_string(), "anchor": attested.anchor,
                "slot_certificate": b64(&slot_cert), "device_certificate": b64(&device_cert),
                "witness": "bob"}),
    );
    append(
        &mut l,
        kinds::REQUEST_CREATED,
        &json!({"request": SHOWN[0], "account": SHOWN[1], "task": SHOWN[2],
                "ticket": SHOWN[3], "reason": SHOWN[4], "requester": SHOWN[5]}),
    );
    let approved = append(
        &mut l,
        kinds::REQUEST_APPROVED,
        &json!({"request": "r1", "account": SHOWN[1], "officer": "alice", "proof": "signature",
                "key_id": key_id, "nonce": NONCE,
                "digest": signed_approval_digest(&message), "signature": b64(&signature)}),
    );
    (registered, approved)
}

fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for f in std::fs::read_dir(from).expect("read dir") {
        let f = f.expect("entry");
        std::fs::copy(f.path(), to.join(f.file_name())).expect("copy");
    }
}

/// The body of event `seq`.
pub(in crate::custody) fn body(l: &Ledger, seq: u64) -> Value {
    let b: Vec<u8> = l
        .conn()
        .query_row("SELECT body FROM events WHERE seq = ?1", [seq], |r| {
            r.get(0)
        })
        .expect("body");
    serde_json::from_slice(&b).expect("json")
}

/// Replaces the body of event `seq` with `edited` (canonical), then re-hashes and re-links every
/// event from `seq` on, as a forger who knows the chain's hash construction would.
pub(in crate::custody) fn forge(l: &Ledger, seq: u64, edited: &Value) {
    l.conn()
        .execute_batch(
            "DROP TRIGGER IF EXISTS events_no_update; DROP TRIGGER IF EXISTS events_no_delete;
             DROP TRIGGER IF EXISTS checkpoints_no_update;
             DROP TRIGGER IF EXISTS checkpoints_no_delete;",
        )
        .expect("drop triggers");
    let canonical = CanonicalJson::from_value(edited).expect("canonical");
    l.conn()
        .execute(
            "UPDATE events SET body = ?1 WHERE seq = ?2",
            params![canonical.as_bytes().to_vec(), seq],
        )
        .expect("edit");
    type Row = (u64, i64, String, String, Vec<u8>, Vec<u8>, Vec<u8>);
    let rows: Vec<Row> = {
        let mut s = l
            .conn()
            .prepare(
                "SELECT seq, time, actor, kind, body, prev_hash, hash FROM events ORDER BY seq",
            )
            .expect("prepare");
        let rows = s
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ))
            })
            .expect("query")
            .collect::<Result<Vec<Row>, _>>()
            .expect("rows");
        rows
    };
    let mut prev: Option<Hash> = None;
    for (s, time, actor, kind, body, stored_prev, stored) in rows {
        if s < seq {
            prev = Hash::from_slice(&stored);
            continue;
        }
        let p = prev.unwrap_or_else(|| Hash::from_slice(&stored_prev).expect("hash"));
        let bh = body_hash(&body);
        let h = event_hash(
            s,
            &p,
            Timestamp(time),
            &Actor::parse(&actor).expect("actor"),
            &Kind::parse(&kind).expect("kind"),
            &bh,
        );
        l.conn()
            .execute(
                "UPDATE events SET body_hash = ?1, prev_hash = ?2, hash = ?3 WHERE seq = ?4",
                params![bh.0.to_vec(), p.0.to_vec(), h.0.to_vec(), s],
            )
            .expect("rehash");
        prev = Some(h);
    }
}

fn check(l: &mut Ledger) -> Result<ApprovalSummary, ExportCheckFailure> {
    let mut out = Vec::new();
    export(
        l,
        &ExportFilter::default(),
        ExportFormat::JsonLines,
        &mut out,
    )
    .expect("export");
    verify_export_and_approvals(&out[..], &l.public_key(), None, anchors(), &mut |_| {})
        .map(|(_, s)| s)
}

/// `field` of `v`, Base64-decoded, with the byte at `at` (from the end when negative) flipped.
pub(in crate::custody) fn flip_b64(v: &mut Value, field: &str, at: isize) {
    let mut b = data_encoding::BASE64
        .decode(v[field].as_str().expect(field).as_bytes())
        .expect("base64");
    let i = if at < 0 {
        b.len() - at.unsigned_abs()
    } else {
        at.unsigned_abs()
    };
    b[i] ^= 0x01;
    v[field] = json!(data_encoding::BASE64.encode(&b));
}

pub(in crate::custody) fn flip_hex(v: &mut Value, field: &str) {
    let s = v[field].as_str().expect(field).to_owned();
    let first = if s.starts_with('0') { "1" } else { "0" };
    v[field] = json!(format!("{first}{}", &s[1..]));
}

#[test]
fn proofs_edited_and_rechained_by_an_insider_are_caught_and_named() {
    let tmp = tempfile::tempdir().expect("tmp");
    let master_dir = tmp.path().join("master");
    let (registered, approved) = master(&master_dir);
    {
        let mut l =
            Ledger::open(&master_dir, &officers(), Projections::ledger_only()).expect("open");
        let s = check(&mut l).expect("the honest ledger checks");
        assert_eq!(
            (s.signed, s.totp, s.unchecked, s.attested_keys),
            (1, 0, 0, 1)
        );
    }
    type Edit = fn(&mut Value);
    let cases: [(&str, u64, Edit, ApprovalCheck); 8] = [
        (
            "a byte of the signature",
            approved,
            |v| flip_b64(v, "signature", 20),
            ApprovalCheck::Signature,
        ),
        (
            "the signature's last byte",
            approved,
            |v| flip_b64(v, "signature", -1),
            ApprovalCheck::Signature,
        ),
        (
            "the digest",
            approved,
            |v| flip_hex(v, "digest"),
            ApprovalCheck::Digest,
        ),
        (
            "the nonce",
            approved,
            |v| flip_hex(v, "nonce"),
            ApprovalCheck::Digest,
        ),
        (
            "a byte of the key's spki point",
            registered,
            |v| flip_b64(v, "spki", -3),
            ApprovalCheck::AttestedKey,
        ),
        (
            "a byte of the slot certificate",
            registered,
            |v| flip_b64(v, "slot_certificate", -5),
            ApprovalCheck::KeyAttestation,
        ),
        (
            "a byte of the device certificate",
            registered,
            |v| flip_b64(v, "device_certificate", -5),
            ApprovalCheck::KeyAttestation,
        ),
        (
            "the key id",
            registered,
            |v| flip_hex(v, "key_id"),
            ApprovalCheck::KeyId,
        ),
    ];
    for (i, (what, seq, edit, expected)) in cases.into_iter().enumerate() {
        let dir = tmp.path().join(format!("case-{i}"));
        copy(&master_dir, &dir);
        let mut l = Ledger::open(&dir, &officers(), Projections::ledger_only()).expect("open");
        let mut b = body(&l, seq);
        edit(&mut b);
        forge(&l, seq, &b);
        match check(&mut l) {
            Err(ExportCheckFailure::Approval(f)) => {
                assert_eq!((f.check, f.seq), (expected, seq), "{what}: {f}");
            }
            other => panic!("{what}: expected {expected} at seq {seq}, got {other:?}"),
        }
    }
}

/// Records event `seq` under `actor`, then re-hashes and re-links the chain from there.
fn forge_actor(l: &Ledger, seq: u64, actor: &str) {
    let b = body(l, seq);
    forge(l, seq, &b);
    l.conn()
        .execute(
            "UPDATE events SET actor = ?1 WHERE seq = ?2",
            params![actor, seq],
        )
        .expect("edit the actor");
    forge(l, seq, &b);
}

#[test]
fn registrations_and_approvals_edited_to_disagree_with_the_attestation_or_actor_are_caught() {
    let tmp = tempfile::tempdir().expect("tmp");
    let master_dir = tmp.path().join("master");
    let (registered, approved) = master(&master_dir);
    type Edit = fn(&mut Value);
    let cases: [(&str, Edit, ApprovalCheck); 7] = [
        (
            "the firmware",
            |v| v["firmware"] = json!("5.7.1"),
            ApprovalCheck::KeyFirmware,
        ),
        (
            "the PIN policy",
            |v| v["pin_policy"] = json!("once"),
            ApprovalCheck::KeyPolicy,
        ),
        (
            "the touch policy",
            |v| v["touch_policy"] = json!("never"),
            ApprovalCheck::KeyPolicy,
        ),
        (
            "the anchor",
            |v| v["anchor"] = json!("CN=Yubico PIV Root CA Serial 263751"),
            ApprovalCheck::KeyAnchor,
        ),
        (
            "the witness, the officer herself",
            |v| v["witness"] = json!("alice"),
            ApprovalCheck::KeyWitness,
        ),
        (
            "the witness, gone",
            |v| {
                if let Some(o) = v.as_object_mut() {
                    o.remove("witness");
                }
            },
            ApprovalCheck::KeyWitness,
        ),
        (
            "the firmware, gone",
            |v| {
                if let Some(o) = v.as_object_mut() {
                    o.remove("firmware");
                }
            },
            ApprovalCheck::KeyRecord,
        ),
    ];
    for (i, (what, edit, expected)) in cases.into_iter().enumerate() {
        let dir = tmp.path().join(format!("registration-{i}"));
        copy(&master_dir, &dir);
        let mut l = Ledger::open(&dir, &officers(), Projections::ledger_only()).expect("open");
        let mut b = body(&l, registered);
        edit(&mut b);
        forge(&l, registered, &b);
        match check(&mut l) {
            Err(ExportCheckFailure::Approval(f)) => {
                assert_eq!((f.check, f.seq), (expected, registered), "{what}: {f}");
                assert!(f.to_string().contains(&format!("seq {registered}")), "{f}");
            }
            other => panic!("{what}: expected {expected} at seq {registered}, got {other:?}"),
        }
    }
    // The registration, then the signed approval, recorded under bob's name.
    for (i, seq) in [registered, approved].into_iter().enumerate() {
        let dir = tmp.path().join(format!("actor-{i}"));
        copy(&master_dir, &dir);
        let mut l = Ledger::open(&dir, &officers(), Projections::ledger_only()).expect("open");
        forge_actor(&l, seq, "bob");
        match check(&mut l) {
            Err(ExportCheckFailure::Approval(f)) => {
                assert_eq!(
                    (f.check, f.seq),
                    (ApprovalCheck::ActorNotOfficer, seq),
                    "{f}"
                );
                assert!(f.detail.contains("bob"), "{f}");
            }
            other => panic!("actor of seq {seq}: expected actor_not_officer, got {other:?}"),
        }
    }
}

#[test]
fn a_key_attested_without_touch_always_fails_its_policy_check() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (registered, _) = master_with(tmp.path(), TouchPolicy::Never);
    let mut l = Ledger::open(tmp.path(), &officers(), Projections::ledger_only()).expect("open");
    match check(&mut l) {
        Err(ExportCheckFailure::Approval(f)) => {
            assert_eq!(
                (f.check, f.seq),
                (ApprovalCheck::KeyPolicy, registered),
                "{f}"
            );
            assert!(f.detail.contains("touch policy never"), "{f}");
        }
        other => panic!("expected officer_key_policy at seq {registered}, got {other:?}"),
    }
}
