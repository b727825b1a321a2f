//! Devices enrolled before enrolment set OATH access keys: `lock_device` (two officers) locks
//! one, the ledger's policy refuses codes from the others, and the inventory audit reports
//! them. The ledger of such a device is written here as the enrolment of that time wrote it
//! (`device.enrolled` without `oath_access_key`, no sealed key), and its cards are programmed
//! without SET CODE.

use serde_json::json;

use crate::token::oath::{CredentialName, OathSecret, OathSession, PutRequest, Selected};
use crate::token::CardTransport;

use super::*;

/// Both keys enrolled as before access keys existed, checked in under `SEAL-P1` and `SEAL-B1`.
fn enrolled_unlocked() -> World {
    let mut w = World::new().with_registered_keys();
    let name = CredentialName::parse(CRED).expect("cred");
    for s in [PRIMARY, BACKUP] {
        let soft = w.keys.keys.get_mut(&s).expect("key");
        let Selected::Ready(mut o) = OathSession::select(&mut *soft).expect("select") else {
            panic!("{s} is locked before enrolment");
        };
        let mut put = PutRequest::totp(
            name.clone(),
            OathSecret::from_base32(SEED_B32).expect("seed"),
        );
        put.touch = true;
        o.put(&put).expect("put");
        let mut d = w.custody.device(serial(s)).expect("d");
        d.account = Some(AccountId::parse(ACCOUNT).expect("id"));
        d.state = DeviceState::Enrolled;
        w.custody
            .append(
                store::kinds::DEVICE_ENROLLED,
                "alice+bob",
                json!({"device": s.to_string(), "account": ACCOUNT, "role": d.role,
                       "credential": CRED}),
                &[store::Put::new(store::entity::DEVICE, s, &d).expect("put")],
            )
            .expect("append");
    }
    let a = w.login("alice");
    for (s, sl) in [(PRIMARY, "SEAL-P1"), (BACKUP, "SEAL-B1")] {
        w.custody
            .check_in(
                &a,
                &mut w.keys,
                serial(s),
                seal(sl),
                Location::parse("safe 1").expect("loc"),
            )
            .expect("check in an unlocked key");
    }
    w
}

fn check_out(w: &mut World, s: u32, sl: &str) {
    let a = w.login("alice");
    w.custody
        .check_out(&a, serial(s), &seal(sl), None)
        .expect("check out");
}

fn lock(w: &mut World, s: u32) -> Result<DeviceRecord, CustodyError> {
    let (a, b) = (w.login("alice"), w.login("bob"));
    w.custody.lock_device(&a, &b, &mut w.keys, serial(s))
}

fn list_without_validate(w: &mut World, s: u32) -> Vec<u8> {
    let soft = w.keys.keys.get_mut(&s).expect("key");
    let _ = OathSession::select(&mut *soft).expect("select");
    let answer = soft.transmit(&[0x00, 0xA1, 0x00, 0x00]).expect("answer");
    answer[answer.len() - 2..].to_vec()
}

#[test]
fn locking_an_unlocked_device_sets_its_own_access_key_and_the_card_proves_it() {
    let mut w = enrolled_unlocked();
    assert_eq!(list_without_validate(&mut w, PRIMARY), [0x90, 0x00]);
    check_out(&mut w, PRIMARY, "SEAL-P1");
    let from = w.keys.log.len();
    let d = lock(&mut w, PRIMARY).expect("lock");
    assert!(d.oath_access_key);
    assert!(
        !w.keys.log[from..].contains(&0xA2),
        "nothing computed while locking"
    );
    let key = w
        .custody
        .access_key(serial(PRIMARY))
        .expect("read")
        .expect("the ledger holds the key");
    assert!(w.keys.keys[&PRIMARY].oath_state().has_password());
    assert_eq!(
        list_without_validate(&mut w, PRIMARY),
        [0x69, 0x82],
        "LIST without VALIDATE after the lock"
    );
    // The intent (with the sealed key) before the card, the lock after it; no key in either.
    let kinds = w.kinds();
    let started = kinds.iter().position(|k| k == "device.lock_started");
    let locked = kinds.iter().position(|k| k == "device.locked");
    assert!(
        matches!((started, locked), (Some(s), Some(l)) if s < l),
        "{kinds:?}"
    );
    let hex = data_encoding::HEXLOWER.encode(key.expose());
    let b64 = data_encoding::BASE64.encode(key.expose());
    for k in ["device.lock_started", "device.locked"] {
        let text = w.bodies(k).last().expect("event").to_string();
        assert!(!text.contains(&hex) && !text.contains(&b64), "{k}: {text}");
    }
    assert_eq!(w.bodies("device.locked")[0]["resumed"], false);
    // The backup gets a key of its own; a code then comes through VALIDATE.
    check_out(&mut w, BACKUP, "SEAL-B1");
    lock(&mut w, BACKUP).expect("lock the backup");
    let other = w.custody.access_key(serial(BACKUP)).expect("r").expect("k");
    assert!(other != key, "one access key per device");
    let a = w.login("alice");
    w.custody
        .check_in(
            &a,
            &mut w.keys,
            serial(PRIMARY),
            seal("SEAL-P2"),
            Location::parse("safe 1").expect("loc"),
        )
        .expect("check in the locked key");
    let r = w.new_request("oscar");
    w.approve(&r.id, "alice").expect("first");
    w.approve(&r.id, "bob").expect("second");
    w.custody
        .check_out(&a, serial(PRIMARY), &seal("SEAL-P2"), Some(&r.id))
        .expect("out");
    let oscar = w.login("oscar");
    let code = w
        .custody
        .release_code(&oscar, &r.id, &mut w.keys)
        .expect("release");
    assert_eq!(code.code.as_str(), totp_at(SEED_B32, w.clock.now_ms()));
    // Locking again is refused: it has its key.
    let e = lock(&mut w, BACKUP).expect_err("already locked");
    assert_eq!(e.code(), "device_state", "{e}");
    assert!(
        e.to_string().contains("already has its OATH access key"),
        "{e}"
    );
}

#[test]
fn locking_refuses_a_key_in_its_bag_the_same_officer_twice_and_an_absent_card() {
    let mut w = enrolled_unlocked();
    let e = lock(&mut w, PRIMARY).expect_err("in its bag");
    assert_eq!(e.code(), "device_state");
    assert!(e.to_string().contains("check it out first"), "{e}");
    check_out(&mut w, PRIMARY, "SEAL-P1");
    let a = w.login("alice");
    let e = w
        .custody
        .lock_device(&a, &a, &mut w.keys, serial(PRIMARY))
        .expect_err("one officer");
    assert_eq!(e.code(), "same_officer_twice");
    let card = w.keys.keys.remove(&PRIMARY).expect("key");
    let e = lock(&mut w, PRIMARY).expect_err("absent");
    assert_eq!(e.code(), "device_unavailable");
    assert!(
        e.to_string().contains("put it in a reader to lock it"),
        "{e}"
    );
    assert!(
        !w.custody
            .device(serial(PRIMARY))
            .expect("d")
            .oath_access_key
    );
    assert!(w.refusals().iter().any(|r| r == "device_unavailable"));
    // The key sealed before the card was asked is the one the next lock uses.
    let sealed = w
        .custody
        .access_key(serial(PRIMARY))
        .expect("r")
        .expect("k");
    w.keys.keys.insert(PRIMARY, card);
    let d = lock(&mut w, PRIMARY).expect("lock");
    assert!(d.oath_access_key);
    assert!(
        w.custody
            .access_key(serial(PRIMARY))
            .expect("r")
            .expect("k")
            == sealed
    );
    assert_eq!(w.bodies("device.lock_started").len(), 1, "sealed once");
    assert_eq!(w.bodies("device.locked")[0]["resumed"], true);
}

#[test]
fn a_lock_that_stopped_after_set_code_is_finished_with_the_same_key() {
    let mut w = enrolled_unlocked();
    check_out(&mut w, BACKUP, "SEAL-B1");
    let (a, b) = (w.login("alice"), w.login("bob"));
    let plan = w.custody.plan_lock(&a, &b, serial(BACKUP)).expect("plan");
    plan.lock_card(&mut w.keys)
        .expect("SET CODE reached the card");
    // The daemon stops here: the card is locked, the ledger holds the key, the record says
    // unlocked. The next lock proves the key with VALIDATE and records it.
    drop(plan);
    assert!(!w.custody.device(serial(BACKUP)).expect("d").oath_access_key);
    assert!(w.keys.keys[&BACKUP].oath_state().has_password());
    let d = lock(&mut w, BACKUP).expect("lock again");
    assert!(d.oath_access_key);
    assert_eq!(w.bodies("device.lock_started").len(), 1);
    assert_eq!(list_without_validate(&mut w, BACKUP), [0x69, 0x82]);
}

#[test]
fn locking_refuses_a_card_that_is_not_the_device_with_an_incident() {
    let mut w = enrolled_unlocked();
    check_out(&mut w, PRIMARY, "SEAL-P1");
    // The backup's card answers for the primary's serial: another OATH device id.
    w.keys.swap.insert(PRIMARY, BACKUP);
    let e = lock(&mut w, PRIMARY).expect_err("not the device");
    assert_eq!(e.code(), "device_mismatch", "{e}");
    assert!(
        !w.keys.keys[&BACKUP].oath_state().has_password(),
        "nothing was set on the other card"
    );
    let d = w.custody.device(serial(PRIMARY)).expect("d");
    assert!(!d.oath_access_key);
    let inc = w
        .custody
        .incident(d.blocked_by.as_ref().expect("blocked"))
        .expect("incident");
    assert_eq!(inc.kind, IncidentKind::DeviceMismatch);
    // A card locked with a password the ledger does not hold is not the device either.
    let mut w = enrolled_unlocked();
    check_out(&mut w, BACKUP, "SEAL-B1");
    let stranger = crate::custody::device_keys::generate().expect("key");
    {
        let soft = w.keys.keys.get_mut(&BACKUP).expect("key");
        let Selected::Ready(mut o) = OathSession::select(&mut *soft).expect("select") else {
            panic!("locked");
        };
        o.set_code(&stranger).expect("someone else's password");
    }
    let e = lock(&mut w, BACKUP).expect_err("another password");
    assert_eq!(e.code(), "device_mismatch", "{e}");
    assert!(w
        .custody
        .device(serial(BACKUP))
        .expect("d")
        .blocked_by
        .is_some());
}

#[test]
fn the_ledger_policy_refuses_codes_from_unlocked_devices_before_any_calculate() {
    let mut w = enrolled_unlocked();
    assert!(
        w.custody.refuses_unlocked_devices().expect("policy"),
        "on for a ledger created now"
    );
    let r = w.approved_and_out();
    let oscar = w.login("oscar");
    let before = w.keys.calculations();
    let e = w
        .custody
        .release_code(&oscar, &r.id, &mut w.keys)
        .expect_err("an unlocked device gives no code");
    assert_eq!(e.code(), "device_unlocked");
    assert_eq!(e.refusal().as_str(), "device_unlocked");
    assert!(
        e.to_string().contains(&format!(
            "custody device lock {PRIMARY} --by OFFICER --by OFFICER"
        )),
        "{e}"
    );
    assert_eq!(w.keys.calculations(), before, "nothing computed");
    assert!(!w.kinds().contains(&"code.issuing".to_owned()));
    assert!(w.refusals().contains(&"device_unlocked".to_owned()));
    // The daemon's setting overrides the ledger's: off, the code is released as before.
    w.custody.policy.refuse_unlocked_devices = Some(false);
    let code = w
        .custody
        .release_code(&oscar, &r.id, &mut w.keys)
        .expect("released with the policy off");
    assert_eq!(code.code.as_str(), totp_at(SEED_B32, w.clock.now_ms()));
    // Locked, the device gives codes with the policy on.
    w.custody.policy.refuse_unlocked_devices = None;
    let d = lock(&mut w, PRIMARY).expect("lock the checked-out key");
    assert!(d.oath_access_key);
    // A ledger written before the policy existed has no record of it: off.
    assert!(!LedgerPolicy::default().refuse_unlocked_devices);
    let old: LedgerPolicy = serde_json::from_str("{}").expect("parses");
    assert!(!old.refuse_unlocked_devices);
    let p: Option<LedgerPolicy> =
        store::get(w.custody.ledger(), store::entity::POLICY, LedgerPolicy::ID).expect("read");
    assert_eq!(p, Some(LedgerPolicy::for_new_ledgers()));
}

#[test]
fn the_inventory_audit_reports_unlocked_devices_without_computing_a_code() {
    let mut w = enrolled_unlocked();
    let presented = |sp: &str, sb: &str| {
        vec![
            Presented {
                serial: serial(PRIMARY),
                seal: Some(seal(sp)),
            },
            Presented {
                serial: serial(BACKUP),
                seal: Some(seal(sb)),
            },
        ]
    };
    let a = w.login("alice");
    let before = w.keys.calculations();
    let report = w
        .custody
        .inventory_audit(&a, &mut w.keys, &presented("SEAL-P1", "SEAL-B1"))
        .expect("audit");
    assert_eq!(report.ok, vec![serial(PRIMARY), serial(BACKUP)]);
    assert_eq!(report.unlocked, vec![serial(PRIMARY), serial(BACKUP)]);
    assert!(report.incidents.is_empty());
    assert_eq!(w.keys.calculations(), before, "the audit computes nothing");
    let body = w.bodies("inventory.audited").pop().expect("event");
    assert_eq!(
        body["unlocked"],
        json!([PRIMARY.to_string(), BACKUP.to_string()])
    );
    // Once the backup is locked only the primary is reported; the backup passes VALIDATE.
    check_out(&mut w, BACKUP, "SEAL-B1");
    lock(&mut w, BACKUP).expect("lock");
    let a = w.login("alice");
    w.custody
        .check_in(
            &a,
            &mut w.keys,
            serial(BACKUP),
            seal("SEAL-B2"),
            Location::parse("safe 1").expect("loc"),
        )
        .expect("check in");
    let from = w.keys.log.len();
    let report = w
        .custody
        .inventory_audit(&a, &mut w.keys, &presented("SEAL-P1", "SEAL-B2"))
        .expect("audit");
    assert_eq!(report.ok.len(), 2);
    assert_eq!(report.unlocked, vec![serial(PRIMARY)]);
    assert!(w.keys.log[from..].contains(&0xA3), "VALIDATE was sent");
    assert!(!w.keys.log[from..].contains(&0xA2), "no CALCULATE");
}
