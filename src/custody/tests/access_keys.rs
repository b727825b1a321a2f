//! OATH access keys: enrolment locks each key with its own, every later use starts with
//! VALIDATE, and a clone (same serial and OATH device id, without the key or with another) is
//! refused `device_mismatch` with an incident before anything is listed or computed.

use crate::emulator::oath::{AutoTouch, OathState};
use crate::emulator::SoftKey;
use crate::token::management::FormFactor;
use crate::token::oath::{AccessKey, OathSession, Selected};
use crate::token::CardTransport;

use super::*;

fn locked_key(w: &World, s: u32) -> AccessKey {
    w.custody
        .access_key(serial(s))
        .expect("readable")
        .expect("the ledger holds the device's access key")
}

/// A key that answers as `s` does (serial, salt and so OATH device id, credentials), locked
/// with `key` or not at all.
fn clone_of(w: &World, s: u32, key: Option<&AccessKey>) -> SoftKey {
    let orig = w.keys.keys[&s].oath_state();
    let state = OathState::with_credentials(
        *orig.salt(),
        key,
        orig.credentials().to_vec(),
        orig.capacity_on([5, 4, 3]),
    );
    SoftKey::new(
        s,
        [5, 4, 3],
        FormFactor::UsbAKeychain,
        state,
        Box::new(AutoTouch),
    )
}

/// LIST (A1) and CALCULATE (A2) instructions sent since `from`.
fn listed_or_computed(w: &World, from: usize) -> Vec<u8> {
    w.keys.log[from..]
        .iter()
        .copied()
        .filter(|i| matches!(i, 0xA1 | 0xA2))
        .collect()
}

#[test]
fn enrolment_locks_both_keys_with_their_own_access_keys() {
    let mut w = World::new().with_enrolled_account();
    let (p, b) = (locked_key(&w, PRIMARY), locked_key(&w, BACKUP));
    assert!(p != b, "each device has its own access key");
    for (s, key, other) in [(PRIMARY, &p, &b), (BACKUP, &b, &p)] {
        let d = w.custody.device(serial(s)).expect("device");
        assert!(d.oath_access_key, "the record says the device is locked");
        let soft = w.keys.keys.get_mut(&s).expect("key");
        assert!(soft.oath_state().has_password(), "SET CODE reached {s}");
        // Without VALIDATE the applet lists nothing: LIST answers 6982.
        assert!(matches!(
            OathSession::select(&mut *soft),
            Ok(Selected::Locked(_))
        ));
        let answer = soft.transmit(&[0x00, 0xA1, 0x00, 0x00]).expect("answer");
        assert_eq!(
            answer.as_slice(),
            &[0x69, 0x82],
            "LIST without VALIDATE on {s}"
        );
        // The other device's key does not open it; its own does.
        match OathSession::select(&mut *soft).expect("select") {
            Selected::Locked(l) => {
                assert!(l.validate(other).is_err(), "{s} opens with another key")
            }
            Selected::Ready(_) => panic!("{s} is not locked"),
        }
        match OathSession::select(&mut *soft).expect("select") {
            Selected::Locked(l) => {
                let mut s = l.validate(key).expect("its own key opens it");
                assert!(!s.list().expect("list").is_empty());
            }
            Selected::Ready(_) => panic!("{s} is not locked"),
        }
    }
    // The release goes through VALIDATE and still gives the current code.
    let r = w.approved_and_out();
    let oscar = w.login("oscar");
    let code = w
        .custody
        .release_code(&oscar, &r.id, &mut w.keys)
        .expect("release");
    assert_eq!(code.code.as_str(), totp_at(SEED_B32, w.clock.now_ms()));
    // Never in an event body, an export, or the Debug of what carries it.
    let (plain, export) = w.bodies_and_export();
    let lock = w
        .custody
        .oath_lock(&w.custody.device(serial(PRIMARY)).expect("device"))
        .expect("lock");
    let shown = format!("{lock:?} {p:?}");
    for key in [&p, &b] {
        let hex = data_encoding::HEXLOWER.encode(key.expose());
        let b64 = data_encoding::BASE64.encode(key.expose());
        for needle in [&hex, &b64] {
            assert!(!plain.contains(needle.as_str()), "access key in an event");
            assert!(
                !export.contains(needle.as_str()),
                "access key in the export"
            );
            assert!(!shown.contains(needle.as_str()), "access key in Debug");
        }
    }
    let sealed = crate::custody::store::get::<crate::custody::device_keys::SealedAccessKey>(
        w.custody.ledger(),
        store::entity::ACCESS_KEY,
        &PRIMARY.to_string(),
    )
    .expect("read")
    .expect("sealed record");
    assert!(
        !export.contains(&sealed.sealed),
        "the export carries a digest, not the sealed key"
    );
    assert!(export.contains("\"access_key\""), "redacted by name");
}

#[test]
fn a_clone_without_the_access_key_or_with_another_is_refused_before_any_calculate() {
    let other = crate::custody::device_keys::generate().expect("key");
    for with in [None, Some(&other)] {
        let mut w = World::new().with_enrolled_account();
        let r = w.approved_and_out();
        let clone = clone_of(&w, PRIMARY, with);
        assert_eq!(
            clone.oath_state().device_id(),
            w.custody.device(serial(PRIMARY)).expect("d").device_id,
            "the clone shows the same OATH device id"
        );
        w.keys.keys.insert(PRIMARY, clone);
        let from = w.keys.log.len();
        let oscar = w.login("oscar");
        let e = w
            .custody
            .release_code(&oscar, &r.id, &mut w.keys)
            .expect_err("a clone computes nothing");
        let CustodyError::DeviceMismatch {
            serial: s,
            mismatch,
        } = &e
        else {
            panic!("{e:?}");
        };
        assert_eq!(*s, serial(PRIMARY));
        assert!(mismatch.contains("access key"), "{mismatch}");
        assert_eq!(e.code(), "device_mismatch");
        assert_eq!(
            listed_or_computed(&w, from),
            Vec::<u8>::new(),
            "the clone was asked to list or compute (with key {})",
            with.is_some()
        );
        assert!(!w.kinds().contains(&"code.issuing".to_owned()));
        let incidents = w.custody.incidents().expect("incidents");
        let inc = incidents
            .iter()
            .find(|i| i.device == Some(serial(PRIMARY)))
            .expect("an incident for the device");
        assert_eq!(inc.kind, IncidentKind::DeviceMismatch);
        assert!(inc.open);
        let d = w.custody.device(serial(PRIMARY)).expect("d");
        assert_eq!(
            d.blocked_by.as_ref(),
            Some(&inc.id),
            "the device is blocked"
        );
        assert!(w.refusals().contains(&"device_mismatch".to_owned()));
    }
}

#[test]
fn check_in_inventory_and_re_enrolment_refuse_a_clone_with_an_incident() {
    // Check-in.
    let mut w = World::new().with_enrolled_account();
    let a = w.login("alice");
    w.custody
        .check_out(&a, serial(BACKUP), &seal("SEAL-B1"), None)
        .expect("out");
    let clone = clone_of(&w, BACKUP, None);
    w.keys.keys.insert(BACKUP, clone);
    let from = w.keys.log.len();
    let e = w
        .custody
        .check_in(
            &a,
            &mut w.keys,
            serial(BACKUP),
            seal("SEAL-B2"),
            Location::parse("safe 1").expect("loc"),
        )
        .expect_err("a clone is not checked in");
    assert_eq!(e.code(), "device_mismatch", "{e:?}");
    assert!(listed_or_computed(&w, from).is_empty());
    assert!(w
        .custody
        .device(serial(BACKUP))
        .expect("d")
        .blocked_by
        .is_some());

    // Inventory audit.
    let mut w = World::new().with_enrolled_account();
    let other = crate::custody::device_keys::generate().expect("key");
    let clone = clone_of(&w, PRIMARY, Some(&other));
    w.keys.keys.insert(PRIMARY, clone);
    let a = w.login("alice");
    let from = w.keys.log.len();
    let presented = [(PRIMARY, "SEAL-P1"), (BACKUP, "SEAL-B1")].map(|(s, sl)| Presented {
        serial: serial(s),
        seal: Some(seal(sl)),
    });
    let report = w
        .custody
        .inventory_audit(&a, &mut w.keys, &presented)
        .expect("audit");
    assert_eq!(report.ok, vec![serial(BACKUP)], "the real backup passes");
    assert_eq!(report.incidents.len(), 1);
    let inc = w.custody.incident(&report.incidents[0]).expect("incident");
    assert_eq!(inc.kind, IncidentKind::DeviceMismatch);
    assert!(inc.detail.contains("access key"), "{}", inc.detail);
    // Only the real backup was listed: one LIST, no CALCULATE.
    assert_eq!(listed_or_computed(&w, from), vec![0xA1]);

    // Re-enrolment.
    let mut w = World::new().with_enrolled_keys_in_hand();
    let clone = clone_of(&w, PRIMARY, None);
    w.keys.keys.insert(PRIMARY, clone);
    let from = w.keys.log.len();
    let e = w.enrol_both(true).expect_err("a clone is not re-enrolled");
    assert_eq!(e.code(), "device_mismatch", "{e:?}");
    assert!(listed_or_computed(&w, from).is_empty());
    assert_eq!(
        w.bodies("enrolment.started").len(),
        1,
        "the refused re-enrolment did not start"
    );
    assert!(w
        .custody
        .device(serial(PRIMARY))
        .expect("d")
        .blocked_by
        .is_some());
}

#[test]
fn a_device_the_ledger_never_locked_reconciles_as_before() {
    let w = World::new().with_enrolled_account();
    // A device record from before access keys, and an unlocked card that holds the credential.
    let mut d = w.custody.device(serial(PRIMARY)).expect("d");
    d.oath_access_key = false;
    let mut card = clone_of(&w, PRIMARY, None);
    let rec = reconcile(&d, Some(CRED), &OathLock::default(), &mut card).expect("reconcile");
    assert!(rec.is_ok(), "{}", rec.describe());
    assert_eq!(rec.observed.credential_present, Some(true));
    // A password it does not know is still refused as a locked applet.
    let other = crate::custody::device_keys::generate().expect("key");
    let mut card = clone_of(&w, PRIMARY, Some(&other));
    let rec = reconcile(&d, Some(CRED), &OathLock::default(), &mut card).expect("reconcile");
    assert_eq!(rec.mismatches, vec![Mismatch::OathLocked]);
}

#[test]
fn re_enrolment_validates_and_keeps_each_devices_access_key() {
    let mut w = World::new().with_enrolled_keys_in_hand();
    let before = (locked_key(&w, PRIMARY), locked_key(&w, BACKUP));
    let codes = w.enrol_both(true).expect("re-enrol the genuine keys");
    assert_eq!(codes.first.len(), 6);
    assert!(before.0 == locked_key(&w, PRIMARY) && before.1 == locked_key(&w, BACKUP));
    assert!(w.custody.incidents().expect("incidents").is_empty());
}

/// A card that holds the device's access key but answers the host's VALIDATE challenge wrongly
/// (the last byte of its answer flipped), so only the check of its answer tells it apart.
struct WrongAnswer {
    card: SoftKey,
    sent: Vec<u8>,
}

impl CardTransport for WrongAnswer {
    fn transmit(
        &mut self,
        command: &[u8],
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, crate::token::TransportError> {
        let ins = command.get(1).copied().unwrap_or(0);
        self.sent.push(ins);
        let mut answer = self.card.transmit(command)?;
        // `75 14 <HMAC> 90 00`: flip the HMAC's last byte.
        let n = answer.len();
        if ins == 0xA3 && n > 4 {
            answer[n - 3] ^= 0x01;
        }
        Ok(answer)
    }
    fn reader(&self) -> &str {
        self.card.reader()
    }
}

impl DeviceAccess for WrongAnswer {
    fn open(&mut self, serial: Serial) -> Result<Box<dyn CardTransport + '_>, DeviceAccessError> {
        match serial.get() {
            PRIMARY => Ok(Box::new(&mut *self)),
            _ => Err(DeviceAccessError::NotPresent { serial }),
        }
    }
}

#[test]
fn a_card_whose_validate_answer_is_wrong_is_refused_before_any_calculate() {
    let mut w = World::new().with_enrolled_account();
    let r = w.approved_and_out();
    let key = locked_key(&w, PRIMARY);
    let mut card = WrongAnswer {
        card: clone_of(&w, PRIMARY, Some(&key)),
        sent: Vec::new(),
    };
    let oscar = w.login("oscar");
    let e = w
        .custody
        .release_code(&oscar, &r.id, &mut card)
        .expect_err("a card that does not prove the key computes nothing");
    assert_eq!(e.code(), "device_mismatch", "{e:?}");
    assert!(
        card.sent.contains(&0xA3),
        "VALIDATE was sent: {:?}",
        card.sent
    );
    assert!(
        !card.sent.iter().any(|i| matches!(i, 0xA1 | 0xA2)),
        "listed or computed after a wrong VALIDATE answer: {:?}",
        card.sent
    );
    let d = w.custody.device(serial(PRIMARY)).expect("d");
    let inc = w
        .custody
        .incident(d.blocked_by.as_ref().expect("blocked"))
        .expect("incident");
    assert_eq!(inc.kind, IncidentKind::DeviceMismatch);
    // The same card with its answer left alone releases.
    let mut honest = clone_of(&w, PRIMARY, Some(&key));
    assert!(reconcile(
        &d,
        Some(CRED),
        &w.custody.oath_lock(&d).expect("lock"),
        &mut honest
    )
    .expect("reconcile")
    .is_ok());
}

#[test]
fn retiring_a_locked_device_clears_its_access_key_on_the_card() {
    let mut w = World::new().with_enrolled_account();
    let key = locked_key(&w, BACKUP);
    let (a, b) = (w.login("alice"), w.login("bob"));
    let d = w
        .custody
        .set_terminal(&a, &b, &mut w.keys, serial(BACKUP), Terminal::Retired)
        .expect("retire");
    assert_eq!(d.state, DeviceState::Retired);
    assert!(!d.oath_access_key, "the record says the device is unlocked");
    let soft = w.keys.keys.get_mut(&BACKUP).expect("key");
    assert!(!soft.oath_state().has_password(), "UNSET CODE reached it");
    // The receiving organisation lists it without any key.
    assert!(matches!(
        OathSession::select(&mut *soft),
        Ok(Selected::Ready(_))
    ));
    let answer = soft.transmit(&[0x00, 0xA1, 0x00, 0x00]).expect("answer");
    assert_eq!(
        &answer[answer.len() - 2..],
        &[0x90, 0x00],
        "LIST without VALIDATE"
    );
    let bodies = w.bodies("device.state_changed");
    let body = bodies.last().expect("event");
    assert_eq!(body["to"], "retired");
    assert_eq!(body["access_key_cleared"], true);
    let hex = data_encoding::HEXLOWER.encode(key.expose());
    let b64 = data_encoding::BASE64.encode(key.expose());
    assert!(!body.to_string().contains(&hex) && !body.to_string().contains(&b64));
    // The sealed key stays in the ledger's history.
    assert!(locked_key(&w, BACKUP) == key);
    // Losing a locked device needs no card and clears nothing.
    w.keys.keys.remove(&PRIMARY);
    let d = w
        .custody
        .set_terminal(&a, &b, &mut w.keys, serial(PRIMARY), Terminal::Lost)
        .expect("lost");
    assert!(d.oath_access_key);
    let bodies = w.bodies("device.state_changed");
    assert!(bodies
        .last()
        .expect("event")
        .get("access_key_cleared")
        .is_none());
}

#[test]
fn retiring_refuses_a_clone_with_an_incident_and_an_absent_card() {
    let other = crate::custody::device_keys::generate().expect("key");
    for with in [None, Some(&other)] {
        let mut w = World::new().with_enrolled_account();
        let clone = clone_of(&w, BACKUP, with);
        w.keys.keys.insert(BACKUP, clone);
        let (a, b) = (w.login("alice"), w.login("bob"));
        let e = w
            .custody
            .set_terminal(&a, &b, &mut w.keys, serial(BACKUP), Terminal::Retired)
            .expect_err("a clone is not retired");
        assert_eq!(e.code(), "device_mismatch", "{e:?}");
        let d = w.custody.device(serial(BACKUP)).expect("d");
        assert!(!d.state.is_terminal(), "{:?}", d.state);
        assert!(d.oath_access_key);
        let inc = w
            .custody
            .incident(d.blocked_by.as_ref().expect("blocked"))
            .expect("incident");
        assert_eq!(inc.kind, IncidentKind::DeviceMismatch);
        assert!(inc.open);
        let soft = &w.keys.keys[&BACKUP];
        assert_eq!(
            soft.oath_state().has_password(),
            with.is_some(),
            "the clone's lock was left alone"
        );
    }
    let mut w = World::new().with_enrolled_account();
    w.keys.keys.remove(&BACKUP);
    let (a, b) = (w.login("alice"), w.login("bob"));
    let e = w
        .custody
        .set_terminal(&a, &b, &mut w.keys, serial(BACKUP), Terminal::Retired)
        .expect_err("absent");
    assert_eq!(e.code(), "device_unavailable", "{e:?}");
    assert!(
        e.to_string().contains(&format!(
            "put key {BACKUP} in a reader: its access key is cleared when it is retired"
        )),
        "{e}"
    );
    let d = w.custody.device(serial(BACKUP)).expect("d");
    assert!(!d.state.is_terminal() && d.oath_access_key);
    assert!(!w.kinds().contains(&"device.state_changed".to_owned()));
}

fn asks_for_no_key(w: &mut World, s: u32) -> bool {
    let soft = w.keys.keys.get_mut(&s).expect("key");
    matches!(OathSession::select(&mut *soft), Ok(Selected::Ready(_)))
}

#[test]
fn the_custody_release_clears_both_access_keys_and_its_extract_says_so() {
    let mut w = World::new().with_enrolled_account();
    let keys = [locked_key(&w, PRIMARY), locked_key(&w, BACKUP)];
    let (a, b) = (w.login("alice"), w.login("bob"));
    // A key not in a reader releases nothing.
    let backup = w.keys.keys.remove(&BACKUP).expect("key");
    let account = AccountId::parse(ACCOUNT).expect("id");
    let e = w
        .custody
        .release_custody(&a, &b, &mut w.keys, &account, &mut Vec::new())
        .expect_err("the backup is not in a reader");
    assert_eq!(e.code(), "device_unavailable", "{e}");
    assert!(e.to_string().contains("cleared when it is released"), "{e}");
    for s in [PRIMARY, BACKUP] {
        let d = w.custody.device(serial(s)).expect("d");
        assert!(!d.state.is_terminal() && d.oath_access_key, "{s}: {d:?}");
    }
    assert!(!w.kinds().contains(&"custody.released".to_owned()));
    // The primary was cleared already; run again with both keys in readers, the release
    // settles it (its intent is on record) and clears the backup.
    assert!(asks_for_no_key(&mut w, PRIMARY));
    w.keys.keys.insert(BACKUP, backup);
    let mut out = Vec::new();
    w.custody
        .release_custody(&a, &b, &mut w.keys, &account, &mut out)
        .expect("release");
    for s in [PRIMARY, BACKUP] {
        let d = w.custody.device(serial(s)).expect("d");
        assert_eq!(d.state, DeviceState::Released);
        assert!(!d.oath_access_key && !d.access_key_clearing);
        assert!(asks_for_no_key(&mut w, s), "{s} still asks for a key");
    }
    let released = w.bodies("custody.released").pop().expect("event");
    assert_eq!(
        released["access_keys_cleared"],
        serde_json::json!([PRIMARY.to_string(), BACKUP.to_string()])
    );
    assert_eq!(
        w.bodies("device.access_key_clearing").len(),
        2,
        "one intent each"
    );
    let text = String::from_utf8(out).expect("utf8");
    assert!(
        text.contains("\"access_keys_cleared\""),
        "the signed extract says so"
    );
    assert!(text.contains("\"access_key_cleared\":true"));
    crate::ledger::verify_export(text.as_bytes(), &w.custody.ledger().public_key(), None)
        .expect("the extract verifies");
    for key in &keys {
        let hex = data_encoding::HEXLOWER.encode(key.expose());
        let b64 = data_encoding::BASE64.encode(key.expose());
        assert!(
            !text.contains(&hex) && !text.contains(&b64),
            "key in the extract"
        );
    }
}

#[test]
fn a_release_refuses_a_clone_with_an_incident_and_releases_nothing() {
    let mut w = World::new().with_enrolled_account();
    let clone = clone_of(&w, BACKUP, None);
    w.keys.keys.insert(BACKUP, clone);
    let (a, b) = (w.login("alice"), w.login("bob"));
    let e = w
        .custody
        .release_custody(
            &a,
            &b,
            &mut w.keys,
            &AccountId::parse(ACCOUNT).expect("id"),
            &mut Vec::new(),
        )
        .expect_err("a clone is not released");
    assert_eq!(e.code(), "device_mismatch", "{e}");
    let d = w.custody.device(serial(BACKUP)).expect("d");
    assert!(d.blocked_by.is_some() && !d.state.is_terminal());
    assert!(!w.kinds().contains(&"custody.released".to_owned()));
}

#[test]
fn a_retire_stopped_after_unset_code_is_settled_when_it_runs_again() {
    let mut w = World::new().with_enrolled_account();
    let (a, b) = (w.login("alice"), w.login("bob"));
    let plan = w
        .custody
        .plan_terminal(&a, &b, serial(BACKUP), Terminal::Retired)
        .expect("plan");
    assert!(plan.clear_access_key(&mut w.keys).expect("UNSET CODE"));
    // The daemon stops before the record: the ledger still holds the device locked, with the
    // intent on record; the card asks for no key.
    drop(plan);
    let d = w.custody.device(serial(BACKUP)).expect("d");
    assert!(d.oath_access_key && d.access_key_clearing && !d.state.is_terminal());
    assert!(asks_for_no_key(&mut w, BACKUP));
    let d = w
        .custody
        .set_terminal(&a, &b, &mut w.keys, serial(BACKUP), Terminal::Retired)
        .expect("the retire settles");
    assert_eq!(d.state, DeviceState::Retired);
    assert!(!d.oath_access_key && !d.access_key_clearing);
    assert_eq!(
        w.bodies("device.state_changed").last().expect("event")["access_key_cleared"],
        true
    );
    assert_eq!(w.bodies("device.access_key_clearing").len(), 1);
    assert!(w.custody.incidents().expect("incidents").is_empty());
}

#[test]
fn closing_an_account_retires_its_devices_in_the_ledger_and_leaves_their_keys_locked() {
    let mut w = World::new().with_enrolled_account();
    let (a, b) = (w.login("alice"), w.login("bob"));
    let from = w.keys.log.len();
    w.custody
        .set_account_status(
            &a,
            &b,
            &AccountId::parse(ACCOUNT).expect("id"),
            AccountStatus::Closed,
        )
        .expect("close");
    assert!(w.keys.log[from..].is_empty(), "no card is opened");
    for s in [PRIMARY, BACKUP] {
        let d = w.custody.device(serial(s)).expect("d");
        assert_eq!(d.state, DeviceState::Retired);
        assert!(d.oath_access_key, "{s}: recorded as still locked");
        assert!(!d.access_key_clearing);
        assert!(
            w.keys.keys[&s].oath_state().has_password(),
            "{s}: card locked"
        );
        assert!(!asks_for_no_key(&mut w, s));
    }
    assert!(w.bodies("device.access_key_clearing").is_empty());
}
