//! `attest_device` (two officers): an enrolled key gets an attested PIV custody key, its new
//! management key sealed in the ledger before the card is touched; a chain that does not reach
//! the trust anchors is refused and recorded and the card keeps its factory management key;
//! once attested, a copy that passes every OATH check is refused `device_mismatch` with an
//! incident.

use crate::emulator::oath::{AutoTouch, OathState};
use crate::emulator::piv::attest::TEST_CA_CERT_PEM;
use crate::emulator::SoftKey;
use crate::token::attestation::{verify_attestation, Evidence, Expected, PivSlot, TrustAnchors};
use crate::token::management::FormFactor;
use crate::token::piv::{ManagementKey, PivSession};

use super::*;

/// PIV SET MANAGEMENT KEY (Yubico's PIV extension, INS `FF`).
const SET_MANAGEMENT_KEY: u8 = 0xFF;

/// Enrolled keys in hand, at a time inside the test CA's validity (the world starts at `T0`,
/// which may be before the fixture CA was issued: the verifier checks every certificate's dates).
fn world() -> World {
    in_test_ca_validity(World::new()).with_enrolled_keys_in_hand()
}

/// `w` with its clock moved inside the test CA's validity when it is before it.
pub(super) fn in_test_ca_validity(w: World) -> World {
    use x509_cert::der::DecodePem;
    let ca = x509_cert::Certificate::from_pem(TEST_CA_CERT_PEM.as_bytes()).expect("CA");
    let not_before = ca.tbs_certificate.validity.not_before.to_unix_duration();
    let not_before = i64::try_from(not_before.as_millis()).expect("ms");
    let behind = not_before - w.clock.now_ms();
    if behind > 0 {
        w.clock.advance(behind + 86_400_000);
    }
    w
}

/// The emulator's test attestation CA as the only trust anchor.
pub(super) fn test_ca() -> TrustAnchors {
    TrustAnchors::from_pem(TEST_CA_CERT_PEM).expect("the emulator's test CA")
}

fn attest(
    w: &mut World,
    x: &str,
    y: &str,
    anchors: &TrustAnchors,
) -> Result<DeviceRecord, CustodyError> {
    let (a, b) = (w.login(x), w.login(y));
    w.custody
        .attest_device(&a, &b, &mut w.keys, serial(PRIMARY), anchors)
}

/// Whether the primary still takes the factory management key (firmware 5.4.3: 3DES default).
fn takes_factory_key(w: &mut World) -> bool {
    card_takes_factory_key(w, PRIMARY)
}

/// Whether the card `serial` still takes the factory management key.
pub(super) fn card_takes_factory_key(w: &mut World, serial: u32) -> bool {
    let key = w.keys.keys.get_mut(&serial).expect("key");
    let mut s = PivSession::select(&mut *key).expect("select PIV");
    let alg = s.management_algorithm().expect("metadata");
    s.authenticate(&ManagementKey::factory_default(alg).expect("factory"))
        .is_ok()
}

#[test]
fn two_distinct_officers_attest_a_key_once_intent_first_and_the_record_re_verifies_offline() {
    let mut w = world();
    let ca = test_ca();
    // One officer twice, and an operator with an officer: refused before any card I/O.
    let from = w.keys.log.len();
    let started = w.bodies("device.attestation_started").len();
    let e = attest(&mut w, "alice", "alice", &ca).expect_err("one officer");
    assert_eq!(e.code(), "same_officer_twice", "{e}");
    let e = attest(&mut w, "oscar", "alice", &ca).expect_err("an operator");
    assert_eq!(e.code(), "not_an_officer", "{e}");
    assert_eq!(w.keys.log.len(), from, "the card was touched");
    assert_eq!(w.bodies("device.attestation_started").len(), started);
    let refusals = w.refusals();
    assert!(
        refusals.contains(&"same_officer_twice".to_owned()),
        "{refusals:?}"
    );

    let d = attest(&mut w, "alice", "bob", &ca).expect("attested");
    let key = d
        .custody_key
        .clone()
        .expect("the record carries the custody key");
    assert_eq!(key.slot, "9e");
    assert_eq!(
        w.custody.device(serial(PRIMARY)).expect("d").custody_key,
        Some(key.clone())
    );
    assert!(
        !takes_factory_key(&mut w),
        "the factory management key was replaced"
    );

    // Intent (sealed key) first, the attestation after.
    let kinds = w.kinds();
    let started = kinds.iter().position(|k| k == "device.attestation_started");
    let attested = kinds.iter().position(|k| k == "device.attested");
    assert!(
        matches!((started, attested), (Some(s), Some(a)) if s < a),
        "{kinds:?}"
    );

    // An auditor re-verifies the recorded certificates with nothing but the event.
    let body = w.bodies("device.attested").pop().expect("event");
    let der = |f: &str| {
        data_encoding::BASE64
            .decode(body[f].as_str().expect(f).as_bytes())
            .expect("Base64")
    };
    let (slot_cert, device_cert) = (der("slot_certificate"), der("device_certificate"));
    let again = verify_attestation(
        &Evidence {
            slot_cert: &slot_cert,
            device_cert: &device_cert,
            extra_intermediates: &[],
        },
        &Expected {
            slot: PivSlot::CARD_AUTHENTICATION,
            serial: PRIMARY,
        },
        &ca,
        jiff::Timestamp::from_millisecond(w.clock.now_ms()).expect("t"),
    )
    .expect("the recorded chain verifies");
    assert_eq!(again.key_id, key.key_id);
    assert_eq!(body["spki"], key.spki.as_str());
    assert_eq!(body["serial"], PRIMARY);
    assert_eq!(body["pin_policy"], again.pin_policy.to_string());
    assert_eq!(body["touch_policy"], again.touch_policy.to_string());
    assert_eq!(body["firmware"], "5.4.3");

    // The management key is in the ledger only sealed: no event body or export shows it.
    let sealed = store::get::<crate::custody::device_attest::SealedManagementKey>(
        w.custody.ledger(),
        store::entity::MANAGEMENT_KEY,
        &PRIMARY.to_string(),
    )
    .expect("read")
    .expect("sealed record");
    let (_, export) = w.bodies_and_export();
    assert!(!export.contains(&sealed.sealed), "sealed key in the export");
    assert!(export.contains("\"management_key\""), "redacted by name");

    // Once only.
    let from = w.keys.log.len();
    let e = attest(&mut w, "alice", "bob", &ca).expect_err("attested twice");
    assert_eq!(e.code(), "device_state", "{e}");
    assert!(
        e.to_string()
            .contains("already has an attested custody key"),
        "{e}"
    );
    assert_eq!(w.keys.log.len(), from);
}

#[test]
fn the_new_management_key_is_in_no_debug_output_event_or_export_and_opens_the_card() {
    let mut w = world();
    let (a, b) = (w.login("alice"), w.login("bob"));
    let plan = w
        .custody
        .plan_attest(&a, &b, serial(PRIMARY))
        .expect("plan");
    let key = plan.management_key();
    let (hex, b64) = (
        data_encoding::HEXLOWER.encode(key.expose()),
        data_encoding::BASE64.encode(key.expose()),
    );
    let provisioned = plan.provision_card(
        &mut w.keys,
        &test_ca(),
        jiff::Timestamp::from_millisecond(w.clock.now_ms()).expect("t"),
    );
    let shown = format!("{plan:?} {provisioned:?}");
    let d = w
        .custody
        .finish_attest(&a, &b, &plan, provisioned)
        .expect("attested");
    let (plain, export) = w.bodies_and_export();
    for needle in [&hex, &b64] {
        assert!(!shown.contains(needle.as_str()), "management key in Debug");
        assert!(
            !plain.contains(needle.as_str()),
            "management key in an event"
        );
        assert!(
            !export.contains(needle.as_str()),
            "management key in the export"
        );
        assert!(!format!("{d:?}").contains(needle.as_str()));
    }
    // It is the card's management key now.
    let card = w.keys.keys.get_mut(&PRIMARY).expect("key");
    let mut s = PivSession::select(&mut *card).expect("select PIV");
    let copy = ManagementKey::new(
        key.algorithm(),
        zeroize::Zeroizing::new(key.expose().to_vec()),
    )
    .expect("copy");
    s.authenticate(&copy)
        .expect("the sealed key opens the card");
}

#[test]
fn an_attestation_interrupted_after_the_card_took_its_key_is_finished_with_that_key() {
    let mut w = world();
    let (a, b) = (w.login("alice"), w.login("bob"));
    let plan = w
        .custody
        .plan_attest(&a, &b, serial(PRIMARY))
        .expect("plan");
    // The card is provisioned (it takes the new management key); the daemon stops before
    // `device.attested`.
    plan.provision_card(
        &mut w.keys,
        &test_ca(),
        jiff::Timestamp::from_millisecond(w.clock.now_ms()).expect("t"),
    )
    .expect("provisioned");
    drop(plan);
    assert!(!takes_factory_key(&mut w), "the card took the new key");
    assert!(w.bodies("device.attested").is_empty());
    let d = attest(&mut w, "alice", "bob", &test_ca()).expect("finished with the sealed key");
    assert!(d.custody_key.is_some());
    let primary = PRIMARY.to_string();
    assert_eq!(
        w.bodies("device.attestation_started")
            .iter()
            .filter(|b| b["device"] == primary.as_str())
            .count(),
        1,
        "sealed once"
    );
    assert_eq!(w.bodies("device.attested")[0]["resumed"], true);
}

#[test]
fn an_untrusted_chain_is_refused_and_recorded_and_the_card_keeps_its_factory_key() {
    let mut w = world();
    let from = w.keys.log.len();
    // The emulator's attestation chains to its test CA, not to Yubico's roots.
    let e = attest(&mut w, "alice", "bob", &TrustAnchors::yubico()).expect_err("untrusted");
    assert_eq!(e.code(), "attestation_untrusted", "{e}");
    assert!(e.to_string().contains("counterfeit"), "{e}");
    assert!(
        !w.keys.log[from..].contains(&SET_MANAGEMENT_KEY),
        "SET MANAGEMENT KEY reached the card"
    );
    assert!(
        takes_factory_key(&mut w),
        "the card keeps its factory management key"
    );
    let d = w.custody.device(serial(PRIMARY)).expect("d");
    assert_eq!(d.custody_key, None);
    assert!(w.refusals().contains(&"attestation_untrusted".to_owned()));
    assert!(w.bodies("device.attested").is_empty());

    // A key in its sealed bag is not attested; the trusted CA then attests the one in hand.
    let e = {
        let (a, b) = (w.login("alice"), w.login("bob"));
        w.custody
            .check_in(
                &a,
                &mut w.keys,
                serial(BACKUP),
                seal("SEAL-B1"),
                Location::parse("safe 1").expect("loc"),
            )
            .expect("check in");
        w.custody
            .attest_device(&a, &b, &mut w.keys, serial(BACKUP), &test_ca())
            .expect_err("in its bag")
    };
    assert_eq!(e.code(), "device_state", "{e}");
    assert!(e.to_string().contains("check it out first"), "{e}");
    attest(&mut w, "alice", "bob", &test_ca()).expect("attested after all");
}

#[test]
fn after_attestation_a_perfect_oath_copy_is_refused_device_mismatch_with_an_incident() {
    let mut w = world();
    attest(&mut w, "alice", "bob", &test_ca()).expect("attested");
    // The original passes the challenge at check-in (it reconciles).
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
            .expect("the attested original checks in");
    }
    let r = w.approved_and_out();
    // Same serial, same OATH salt (device id), same access key and credentials: every OATH
    // check passes; only the PIV custody key differs.
    let orig = w.keys.keys[&PRIMARY].oath_state();
    let access = w
        .custody
        .access_key(serial(PRIMARY))
        .expect("read")
        .expect("locked");
    let state = OathState::with_credentials(
        *orig.salt(),
        Some(&access),
        orig.credentials().to_vec(),
        orig.capacity_on([5, 4, 3]),
    );
    let copy = SoftKey::new(
        PRIMARY,
        [5, 4, 3],
        FormFactor::UsbAKeychain,
        state,
        Box::new(AutoTouch),
    );
    w.keys.keys.insert(PRIMARY, copy);
    let oscar = w.login("oscar");
    let e = w
        .custody
        .release_code(&oscar, &r.id, &mut w.keys)
        .expect_err("a copy computes nothing");
    assert_eq!(e.code(), "device_mismatch", "{e}");
    assert!(e.to_string().contains("custody key"), "{e}");
    assert!(!w.kinds().contains(&"code.issuing".to_owned()));
    let incidents = w.custody.incidents().expect("incidents");
    let inc = incidents
        .iter()
        .find(|i| i.device == Some(serial(PRIMARY)))
        .expect("an incident for the device");
    assert_eq!(inc.kind, IncidentKind::DeviceMismatch);
    assert!(inc.open);
}
