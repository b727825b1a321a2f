//! Registration gives a key its attested custody key in the same ceremony (the new PIV
//! management key sealed in the ledger before the card is touched; an interrupted registration
//! resumes with it); a key that cannot attest (firmware before 4.3, or a chain to no trusted
//! root) is registered unattested or refused as `require_attested_devices` says; and with the
//! policy on, every ceremony that opens an unattested key (enrolment, check-in, code release,
//! inventory) is refused `device_unattested`, naming the key and the command that fixes it,
//! while check-out, which never opens the card, is not.

use crate::token::attestation::TrustAnchors;

use super::attest::{card_takes_factory_key, in_test_ca_validity, test_ca};
use super::*;

/// PIV GENERATE ASYMMETRIC KEY PAIR (SP 800-73-4 part 2, INS `47`).
const GENERATE: u8 = 0x47;
/// A blank key of a firmware before PIV attestation (YubiKey 4.2).
const OLD: u32 = 10_000_042;

fn register(
    w: &mut World,
    s: u32,
    role: DeviceRole,
    anchors: &TrustAnchors,
) -> Result<DeviceRecord, CustodyError> {
    let a = w.login("alice");
    w.custody
        .register_device_with(&a, &mut w.keys, serial(s), role, anchors)
}

/// The kinds of the events about device `s`, in order.
fn kinds_of(w: &World, s: u32) -> Vec<String> {
    let device = s.to_string();
    let head = w
        .custody
        .ledger()
        .head()
        .expect("head")
        .map_or(0, |h| h.seq);
    let mut out = Vec::new();
    w.custody
        .ledger()
        .for_each_event(1, head, |e| {
            let kind = e.header.kind.as_str();
            if kind.starts_with("device.") && e.body.to_value()["device"] == device.as_str() {
                out.push(kind.to_owned());
            }
            Ok(())
        })
        .expect("events");
    out
}

fn registered_body(w: &World, s: u32) -> serde_json::Value {
    let device = s.to_string();
    w.bodies("device.registered")
        .into_iter()
        .find(|b| b["device"] == device.as_str())
        .expect("device.registered")
}

#[test]
fn registration_attests_the_custody_key_intent_first_and_the_check_in_challenges_it() {
    let mut w = in_test_ca_validity(World::new());
    w.custody.policy.require_attested_devices = true;
    let mut w = w.with_registered_keys_trusting(&test_ca());
    for s in [PRIMARY, BACKUP] {
        let d = w.custody.device(serial(s)).expect("registered");
        let key = d.custody_key.expect("attested at registration");
        assert_eq!(key.slot, "9e");
        assert_eq!(
            kinds_of(&w, s),
            [
                "device.attestation_started",
                "device.registered",
                "device.attested"
            ],
            "the sealed management key first, then the registration and its attestation"
        );
        assert!(
            !card_takes_factory_key(&mut w, s),
            "the factory management key was replaced"
        );
        assert!(registered_body(&w, s).get("unattested").is_none());
    }
    let attested = w.bodies("device.attested");
    assert_eq!(attested[0]["resumed"], false);
    assert_eq!(attested[0]["firmware"], "5.4.3");

    // Attested once: `custody device attest` has nothing left to do.
    let (a, b) = (w.login("alice"), w.login("bob"));
    let e = w
        .custody
        .attest_device(&a, &b, &mut w.keys, serial(PRIMARY), &test_ca())
        .expect_err("attested twice");
    assert!(e.to_string().contains("already has an attested"), "{e}");

    // With the policy on, the attested keys are enrolled and checked in; the check-in's
    // reconciliation challenges the custody key (a PIV GENERAL AUTHENTICATE, INS 87); the
    // copy of a key that fails it is `attest.rs`'s.
    let w = w.enrolled();
    let from = w.keys.log.len();
    let w = w.checked_in();
    assert!(
        w.keys.log[from..].contains(&0x87),
        "no challenge at check-in"
    );
}

#[test]
fn an_interrupted_registration_resumes_with_the_sealed_management_key() {
    let mut w = in_test_ca_validity(World::new());
    w.keys.add(PRIMARY);
    let a = w.login("alice");
    let s = serial(PRIMARY);
    w.custody.plan_registration(&a, s).expect("plan");
    let seen = identify_device(&mut w.keys, s);
    let plan = w
        .custody
        .begin_registration(&a, s, DeviceRole::Primary, seen)
        .expect("begin");
    let key = plan.management_key().expect("planned");
    let (hex, b64) = (
        data_encoding::HEXLOWER.encode(key.expose()),
        data_encoding::BASE64.encode(key.expose()),
    );
    assert!(
        !format!("{plan:?}").contains(&hex) && !format!("{plan:?}").contains(&b64),
        "management key in Debug"
    );
    let now = jiff::Timestamp::from_millisecond(w.clock.now_ms()).expect("t");
    // The card takes the new management key; the daemon stops before the record.
    plan.provision_card(&mut w.keys, &test_ca(), now)
        .expect("provisioned");
    drop(plan);
    assert!(!card_takes_factory_key(&mut w, PRIMARY));
    assert_eq!(kinds_of(&w, PRIMARY), ["device.attestation_started"]);
    assert!(matches!(
        w.custody.device(s),
        Err(CustodyError::UnknownDevice { .. })
    ));

    // Run again: the sealed key opens the card, and the registration finishes.
    let d = register(&mut w, PRIMARY, DeviceRole::Primary, &test_ca()).expect("resumed");
    assert!(d.custody_key.is_some());
    assert_eq!(
        kinds_of(&w, PRIMARY),
        [
            "device.attestation_started",
            "device.registered",
            "device.attested"
        ],
        "sealed once"
    );
    assert_eq!(w.bodies("device.attested")[0]["resumed"], true);
    let (plain, export) = w.bodies_and_export();
    for needle in [&hex, &b64] {
        assert!(
            !plain.contains(needle.as_str()),
            "management key in an event"
        );
        assert!(
            !export.contains(needle.as_str()),
            "management key in the export"
        );
    }
}

#[test]
fn firmware_before_4_3_registers_unattested_without_piv_or_is_refused_by_the_policy() {
    let mut w = in_test_ca_validity(World::new());
    w.keys.add_with_firmware(OLD, [4, 2, 7]);

    // Required: refused, recorded, not registered, its PIV applet untouched.
    w.custody.policy.require_attested_devices = true;
    let e = register(&mut w, OLD, DeviceRole::Primary, &test_ca()).expect_err("required");
    assert_eq!(e.code(), "attestation_unsupported", "{e}");
    assert!(e.to_string().contains("firmware 4.2.7"), "{e}");
    assert!(w.refusals().contains(&"attestation_unsupported".to_owned()));
    assert!(w.custody.device(serial(OLD)).is_err(), "registered");
    assert!(!w.keys.log.contains(&GENERATE), "GENERATE reached the card");

    // Not required: registered unattested, the reason named in device.registered.
    w.custody.policy.require_attested_devices = false;
    let d = register(&mut w, OLD, DeviceRole::Primary, &test_ca()).expect("unattested");
    assert_eq!(d.custody_key, None);
    assert_eq!(d.firmware, "4.2.7");
    let body = registered_body(&w, OLD);
    assert_eq!(body["unattested"], "attestation_unsupported", "{body}");
    assert!(
        body["unattested_detail"]
            .as_str()
            .is_some_and(|s| s.contains("4.3")),
        "{body}"
    );
    assert_eq!(kinds_of(&w, OLD), ["device.registered"], "nothing sealed");
    assert!(!w.keys.log.contains(&GENERATE), "GENERATE reached the card");

    // Two officers cannot attest it later either.
    let (a, b) = (w.login("alice"), w.login("bob"));
    let e = w
        .custody
        .attest_device(&a, &b, &mut w.keys, serial(OLD), &test_ca())
        .expect_err("4.2");
    assert_eq!(e.code(), "attestation_unsupported", "{e}");
}

#[test]
fn an_untrusted_attestation_registers_unattested_by_default_and_is_refused_when_required() {
    let mut w = in_test_ca_validity(World::new());
    w.keys.add(PRIMARY);
    // The emulator's chain reaches its test CA, not Yubico's roots.
    w.custody.policy.require_attested_devices = true;
    let e = register(
        &mut w,
        PRIMARY,
        DeviceRole::Primary,
        &TrustAnchors::yubico(),
    )
    .expect_err("required");
    assert_eq!(e.code(), "attestation_untrusted", "{e}");
    assert!(w.custody.device(serial(PRIMARY)).is_err(), "registered");
    assert!(w.refusals().contains(&"attestation_untrusted".to_owned()));
    assert!(
        card_takes_factory_key(&mut w, PRIMARY),
        "factory key replaced"
    );

    w.custody.policy.require_attested_devices = false;
    let d = register(
        &mut w,
        PRIMARY,
        DeviceRole::Primary,
        &TrustAnchors::yubico(),
    )
    .expect("unattested");
    assert_eq!(d.custody_key, None);
    assert_eq!(
        registered_body(&w, PRIMARY)["unattested"],
        "attestation_untrusted"
    );
    assert!(
        card_takes_factory_key(&mut w, PRIMARY),
        "factory key replaced"
    );
    // The key sealed by the first attempt was used again, not sealed a second time.
    assert_eq!(
        kinds_of(&w, PRIMARY),
        ["device.attestation_started", "device.registered"]
    );
}

/// The refusal of a ceremony on an unattested key with the policy on: named, recorded.
fn assert_unattested(w: &World, e: &CustodyError, s: u32, operation: &str) {
    assert_eq!(e.code(), "device_unattested", "{operation}: {e}");
    let text = e.to_string();
    assert!(
        text.contains(&format!("device {s} has no attested custody key"))
            && text.contains(&format!("custody device attest {s} --by"))
            && text.contains(operation),
        "{text}"
    );
    let recorded = w
        .bodies(store::kinds::REFUSED)
        .into_iter()
        .any(|b| b["refusal"] == "device_unattested" && b["device"] == s.to_string().as_str());
    assert!(recorded, "{operation}: refusal not recorded");
}

#[test]
fn with_the_policy_on_every_ceremony_on_an_unattested_key_is_refused_but_check_out() {
    // Keys registered while unattested keys were accepted.
    let mut w = in_test_ca_validity(World::new()).with_registered_keys();
    assert_eq!(
        w.custody.device(serial(PRIMARY)).expect("d").custody_key,
        None
    );
    w.custody.policy.require_attested_devices = true;

    let e = w.enrol_both(false).expect_err("enrol");
    assert_unattested(&w, &e, PRIMARY, "refuses to enrol it");

    // Enrolled while off; checked in while off.
    w.custody.policy.require_attested_devices = false;
    let mut w = w.enrolled();
    w.custody.policy.require_attested_devices = true;
    let a = w.login("alice");
    let e = w
        .custody
        .check_in(
            &a,
            &mut w.keys,
            serial(PRIMARY),
            seal("SEAL-P1"),
            Location::parse("safe 1").expect("loc"),
        )
        .expect_err("check in");
    assert_unattested(&w, &e, PRIMARY, "refuses to check it in");
    w.custody.policy.require_attested_devices = false;
    let mut w = w.checked_in();
    w.custody.policy.require_attested_devices = true;

    let a = w.login("alice");
    let presented = [
        Presented {
            serial: serial(PRIMARY),
            seal: Some(seal("SEAL-P1")),
        },
        Presented {
            serial: serial(BACKUP),
            seal: Some(seal("SEAL-B1")),
        },
    ];
    let from = w.keys.log.len();
    let e = w
        .custody
        .inventory_audit(&a, &mut w.keys, &presented)
        .expect_err("inventory");
    assert_unattested(&w, &e, PRIMARY, "refuses to audit it");
    assert_eq!(w.keys.log.len(), from, "a card was opened");

    // Check-out never opens the card: allowed, so that the key can be attested.
    let r = w.approved_and_out();
    let oscar = w.login("oscar");
    let from = w.keys.calculations();
    let e = w
        .custody
        .release_code(&oscar, &r.id, &mut w.keys)
        .expect_err("release");
    assert_unattested(&w, &e, PRIMARY, "refuses to release a code from it");
    assert_eq!(w.keys.calculations(), from, "a code was computed");
    assert!(!w.kinds().contains(&"code.issuing".to_owned()));

    // The fix the refusal names: two officers attest the checked-out key; the code follows.
    let (a, b) = (w.login("alice"), w.login("bob"));
    w.custody
        .attest_device(&a, &b, &mut w.keys, serial(PRIMARY), &test_ca())
        .expect("attested");
    let oscar = w.login("oscar");
    let released = w
        .custody
        .release_code(&oscar, &r.id, &mut w.keys)
        .expect("released from the attested key");
    assert_eq!(released.device, serial(PRIMARY));
}

#[test]
fn with_the_policy_off_unattested_keys_serve_every_ceremony() {
    let mut w = World::new().with_enrolled_account();
    assert!(
        !w.custody.policy().require_attested_devices,
        "off by default"
    );
    assert_eq!(
        w.custody.device(serial(PRIMARY)).expect("d").custody_key,
        None
    );
    let r = w.approved_and_out();
    let oscar = w.login("oscar");
    w.custody
        .release_code(&oscar, &r.id, &mut w.keys)
        .expect("released from an unattested key");
    assert!(!w.refusals().contains(&"device_unattested".to_owned()));
}
