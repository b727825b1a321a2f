//! `custody device lock` through the production device path: a real pcscd with the vpcd driver,
//! two `custody-emu` keys and the `PcscAccess` custodyd opens devices with. The ledger holds
//! the two keys as an enrolment before access keys wrote them (`device.enrolled` without
//! `oath_access_key`, no sealed key; the cards programmed over PC/SC without SET CODE). The
//! inventory audit reports both unlocked (a plain PC/SC client lists the credential without
//! VALIDATE), the ledger's policy refuses a code from them, and once two officers locked the
//! checked-out primary a plain client's LIST answers 6982, the audit reports only the backup,
//! and the code comes through VALIDATE. The ledger verifies afterwards, and the access key is
//! in neither the ledger file nor the export.

use crate::support;

use mfa_custody::custody::{
    Clock, Custody, DeviceRecord, DeviceRole, DeviceState, Location, Presented, SealNumber, Serial,
};
use mfa_custody::ledger::{verify_ledger, Actor, Kind, NewEvent};
use mfa_custody::token::oath::{CredentialName, OathSecret, OathSession, PutRequest, Selected};
use mfa_custody::token::pcsc::PcscContext;
use support::clock::{step_of_ms, totp};
use support::domain::{self, ACCOUNT, SEED_B32};
use support::{custodyd_devices, in_harness};

const PRIMARY: u32 = 10_000_301;
const BACKUP: u32 = 10_000_302;

fn serial(s: u32) -> Serial {
    Serial::new(s).expect("serial")
}

fn seal(s: &str) -> SealNumber {
    SealNumber::parse(s).expect("seal")
}

#[test]
fn pcscd_device_lock_locks_a_key_enrolled_without_an_access_key() {
    if !in_harness(
        "pcscd_device_lock_locks_a_key_enrolled_without_an_access_key",
        44000,
        1,
    ) {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let state = |s: u32| tmp.path().join(format!("{s}.state"));
    let _keys = support::two_keys_with_state([PRIMARY, BACKUP], state);
    let dir = tmp.path().join("ledger");
    let (mut custody, people) = domain::bootstrapped(&dir);
    let a = custody.authenticate(&people.creds("alice")).expect("alice");
    assert!(domain::add_operator(&mut custody, &a, "oscar").is_none());
    domain::register_aws_account(&mut custody, &a);
    for (s, role) in [(PRIMARY, DeviceRole::Primary), (BACKUP, DeviceRole::Backup)] {
        custody
            .register_device(&a, &mut custodyd_devices(), serial(s), role)
            .expect("register over PC/SC");
    }
    // The enrolment of before: the credential programmed, no access key, the events of then.
    for slot in [0, 1] {
        program_without_access_key(slot);
    }
    let mut custody = enrolled_as_before(custody, &people);
    let a = custody.authenticate(&people.creds("alice")).expect("alice");
    for (s, sl) in [(PRIMARY, "SEAL-P1"), (BACKUP, "SEAL-B1")] {
        custody
            .check_in(
                &a,
                &mut custodyd_devices(),
                serial(s),
                seal(sl),
                Location::parse("safe 1").expect("location"),
            )
            .expect("check in an unlocked key");
    }
    for slot in [0, 1] {
        assert!(lists_without_validate(slot), "unlocked before the lock");
    }
    let presented = |p: &str, b: &str| {
        [(PRIMARY, p), (BACKUP, b)].map(|(s, sl)| Presented {
            serial: serial(s),
            seal: Some(seal(sl)),
        })
    };
    let report = custody
        .inventory_audit(
            &a,
            &mut custodyd_devices(),
            &presented("SEAL-P1", "SEAL-B1"),
        )
        .expect("audit over PC/SC");
    assert_eq!(report.unlocked, vec![serial(PRIMARY), serial(BACKUP)]);
    assert!(report.incidents.is_empty(), "{:?}", report.incidents);

    // A code from an unlocked key is refused by the ledger's policy.
    let oscar = custody.authenticate(&people.creds("oscar")).expect("oscar");
    let r = custody
        .create_request(
            &oscar,
            domain::new_request("rotate the root password after staff change"),
        )
        .expect("request");
    custody
        .approve(&r.id, &people.creds("alice"))
        .expect("first");
    custody
        .approve(&r.id, &people.creds("bob"))
        .expect("second");
    let a = custody.authenticate(&people.creds("alice")).expect("alice");
    custody
        .check_out(&a, serial(PRIMARY), &seal("SEAL-P1"), Some(&r.id))
        .expect("check out");
    let e = custody
        .release_code(&oscar, &r.id, &mut custodyd_devices())
        .expect_err("no code from an unlocked key");
    assert_eq!(e.code(), "device_unlocked", "{e}");

    // Two officers lock the checked-out primary over PC/SC.
    let b = custody.authenticate(&people.creds("bob")).expect("bob");
    let d = custody
        .lock_device(&a, &b, &mut custodyd_devices(), serial(PRIMARY))
        .expect("lock over PC/SC");
    assert!(d.oath_access_key);
    let key = support::access_key_on_card(&state(PRIMARY));
    assert!(
        !lists_without_validate(0),
        "LIST without VALIDATE after the lock"
    );
    assert!(lists_without_validate(1), "the backup is still unlocked");
    let code = custody
        .release_code(&oscar, &r.id, &mut custodyd_devices())
        .expect("the code, through VALIDATE");
    assert_eq!(
        code.code.as_str(),
        totp(SEED_B32, step_of_ms(people.clock.now_ms()))
    );
    custody
        .check_in(
            &a,
            &mut custodyd_devices(),
            serial(PRIMARY),
            seal("SEAL-P2"),
            Location::parse("safe 1").expect("location"),
        )
        .expect("check in the locked key");
    let a = custody.authenticate(&people.creds("alice")).expect("alice");
    let report = custody
        .inventory_audit(
            &a,
            &mut custodyd_devices(),
            &presented("SEAL-P2", "SEAL-B1"),
        )
        .expect("audit");
    assert_eq!(report.unlocked, vec![serial(BACKUP)]);
    assert_eq!(report.ok.len(), 2);
    verify_ledger(custody.ledger()).expect("the ledger verifies");
    let mut bytes = Vec::new();
    custody.export_redacted(&mut bytes).expect("export");
    drop(custody);
    for f in ["ledger.db", "ledger.db-wal"] {
        if let Ok(b) = std::fs::read(dir.join(f)) {
            bytes.extend_from_slice(&b);
        }
    }
    support::assert_key_absent(&bytes, &key, "the ledger file or the export");
}

/// Puts the account's credential (touch required) on the card in `slot` with a plain PC/SC
/// client, as enrolment did before it set access keys.
fn program_without_access_key(slot: u8) {
    let ctx = PcscContext::establish().expect("pcscd");
    let card = ctx.connect(&support::reader_name(slot)).expect("card");
    let Selected::Ready(mut s) = OathSession::select(card).expect("select") else {
        panic!("slot {slot} is locked before enrolment");
    };
    let mut put = PutRequest::totp(
        CredentialName::parse("AWS:root@example.test").expect("name"),
        OathSecret::from_base32(SEED_B32).expect("seed"),
    );
    put.touch = true;
    s.put(&put).expect("PUT");
}

/// The domain on `custody`'s ledger after the `device.enrolled` events an enrolment wrote
/// before access keys existed (no `oath_access_key`, no sealed key).
fn enrolled_as_before(custody: Custody, people: &domain::People) -> Custody {
    let devices: Vec<DeviceRecord> = [PRIMARY, BACKUP]
        .iter()
        .map(|s| custody.device(serial(*s)).expect("device"))
        .collect();
    let mut ledger = custody.into_ledger();
    for mut d in devices {
        d.account = Some(mfa_custody::custody::AccountId::parse(ACCOUNT).expect("id"));
        d.state = DeviceState::Enrolled;
        assert!(!d.oath_access_key);
        let body = serde_json::json!({
            "device": d.serial.to_string(), "account": ACCOUNT, "role": d.role,
            "credential": "AWS:root@example.test",
            "records": [{"entity": "device", "id": d.serial.to_string(), "record": d}],
        });
        let ev = NewEvent::new(
            Actor::parse("alice+bob").expect("actor"),
            Kind::parse("device.enrolled").expect("kind"),
            &body,
        )
        .expect("event");
        ledger.append(ev).expect("append");
    }
    Custody::with_clock(ledger, domain::policy(), Box::new(people.clock.clone())).expect("custody")
}

/// Whether a plain PC/SC client lists the credential on the card in `slot` without VALIDATE
/// (false: the applet asks for an access key and LIST answers 6982).
fn lists_without_validate(slot: u8) -> bool {
    use mfa_custody::token::apdu::StatusWord;
    use mfa_custody::token::oath::{list, session::transact};
    use mfa_custody::token::TokenError;
    let ctx = PcscContext::establish().expect("pcscd");
    let card = ctx.connect(&support::reader_name(slot)).expect("card");
    let mut card = match OathSession::select(card).expect("select") {
        Selected::Ready(mut s) => {
            assert!(!s.list().expect("LIST").is_empty(), "credential listed");
            return true;
        }
        Selected::Locked(l) => l.into_transport(),
    };
    match transact(&mut card, &list()) {
        Err(TokenError::Refused { ins: 0xA1, sw, .. }) => {
            assert_eq!(sw, StatusWord::SecurityStatusNotSatisfied)
        }
        other => panic!("LIST without VALIDATE in slot {slot}: {other:?}"),
    }
    let _ = card.disconnect(false);
    false
}
