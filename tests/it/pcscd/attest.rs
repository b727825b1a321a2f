//! Attested custody keys through the production path: a private pcscd with the vpcd driver,
//! two `custody-emu` keys, a real `custodyd` and the `custody` binary.
//!
//! - `custody device attest`: keys registered while custodyd trusted only Yubico's roots
//!   (which the emulator's CA is not: registered unattested, `attestation_untrusted`); custodyd
//!   restarted with `piv_attestation_test_ca` (the emulator's test CA,
//!   `hsm-fixtures/piv-test-ca.pem`); two officers attest the checked-out primary;
//!   `device.attested` is recorded with both certificates; the check-in that follows challenges
//!   the attested key over PC/SC and passes, and so does the next check-out. The daemon's log
//!   says it trusts a test CA.
//! - Registration with `policy.require_attested_devices = true` and the test CA: the enrolment
//!   wizard's registrations end with attested keys (`device.attestation_started`, then
//!   `device.registered` and `device.attested`), and its check-ins, and a later check-in,
//!   challenge them.

use crate::support;

use serde_json::Value;

use support::daemon::{device_state, user_pass, world_with_config, world_with_policy, World};
use support::in_harness;

const PRIMARY: u32 = 10_000_901;
const BACKUP: u32 = 10_000_902;

/// `custody device attest SERIAL --by alice --by bob`, their passphrases and codes on
/// descriptors 3 and 4: as it ran.
fn attest(w: &mut World, serial: u32) -> support::daemon::Run {
    let (ca, cb) = (w.code("alice"), w.code("bob"));
    w.custody4(
        &[
            "--json",
            "device",
            "attest",
            &serial.to_string(),
            "--by",
            "alice",
            "--by",
            "bob",
            "--passphrase-fd",
            "3",
            "--totp-fd",
            "4",
        ],
        &format!("{}\n{}\n", user_pass("alice"), user_pass("bob")),
        &format!("{ca}\n{cb}\n"),
    )
}

/// grace runs `custody device ACTION SERIAL --seal SEAL [extra]`.
fn grace(w: &mut World, action: &str, serial: u32, seal: &str, extra: &[&str]) {
    let c = w.code("grace");
    let serial = serial.to_string();
    let args: Vec<&str> = [
        &["device", action, &serial, "--seal", seal][..],
        extra,
        &["--as", "grace", "--passphrase-fd", "3", "--totp-fd", "4"],
    ]
    .concat();
    w.ok4(
        &args,
        &format!("{}\n", user_pass("grace")),
        &format!("{c}\n"),
    );
}

/// Stops custodyd, verifies its ledger offline and exports it (alice and bob): the events.
fn stopped_and_exported(w: &mut World) -> Vec<Value> {
    let verified = w.stop_and_verify();
    assert_eq!(verified["ok"], true, "{verified}");
    let out = w.export();
    std::fs::read_to_string(&out)
        .expect("export")
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[test]
fn pcscd_device_attest_records_device_attested_and_a_later_check_out_passes() {
    if !in_harness(
        "pcscd_device_attest_records_device_attested_and_a_later_check_out_passes",
        44900,
        1,
    ) {
        return;
    }
    let _keys = support::two_keys(
        &["--serial", &PRIMARY.to_string()],
        &["--serial", &BACKUP.to_string()],
    );
    // Registered while only Yubico's roots were trusted: unattested.
    let mut w = world_with_config("");
    super::ceremony::enrol_with_wizard(&mut w, PRIMARY, BACKUP);
    let shown = w.ok(&["--json", "device", "show", &PRIMARY.to_string()], "");
    assert!(
        shown.json()["device"]["custody_key_id"].is_null(),
        "{}",
        shown.out
    );
    let ca = support::fixture("piv-test-ca.pem");
    w.restart_with(&format!("piv_attestation_test_ca = \"{}\"", ca.display()));
    let log = std::fs::read_to_string(w.dir.path().join("custodyd.log")).expect("log");
    assert!(
        log.contains("piv_attestation_test_ca is set") && log.contains("TEST CA"),
        "custodyd warns that it trusts a test CA:\n{log}"
    );

    // A key in its sealed bag is not attested (with --json the refusal is on standard
    // output, its code as `reason`).
    let r = attest(&mut w, PRIMARY);
    assert_ne!(r.code, 0, "attested in its bag:\n{}\n{}", r.out, r.err);
    assert!(r.out.contains("check it out first"), "{}\n{}", r.out, r.err);

    grace(&mut w, "checkout", PRIMARY, "BAG-0001", &[]);
    let r = attest(&mut w, PRIMARY);
    assert_eq!(r.code, 0, "custody device attest:\n{}\n{}", r.out, r.err);
    let key_id = r.json()["device"]["custody_key_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no custody key id: {}", r.out))
        .to_owned();
    assert_eq!(key_id.len(), 64, "{key_id}");
    let shown = w.ok(&["--json", "device", "show", &PRIMARY.to_string()], "");
    assert_eq!(shown.json()["device"]["custody_key_id"], key_id.as_str());
    let shown = w.ok(&["device", "show", &PRIMARY.to_string()], "");
    assert!(
        shown
            .out
            .contains(&format!("attested  PIV custody key {key_id}")),
        "{}",
        shown.out
    );

    // Once only.
    let r = attest(&mut w, PRIMARY);
    assert_ne!(r.code, 0, "attested twice:\n{}", r.out);
    assert!(
        r.out.contains("already has an attested custody key"),
        "{}\n{}",
        r.out,
        r.err
    );

    // The check-in reconciles the card, challenging the attested key over PC/SC; then the
    // next check-out.
    grace(
        &mut w,
        "checkin",
        PRIMARY,
        "BAG-0003",
        &["--location", "safe A, shelf 1"],
    );
    grace(&mut w, "checkout", PRIMARY, "BAG-0003", &[]);
    assert_eq!(device_state(&w, PRIMARY)["state"], "checked_out");

    let events = stopped_and_exported(&mut w);
    let registered: Vec<&Value> = events
        .iter()
        .filter(|e| e["kind"] == "device.registered")
        .map(|e| &e["body"])
        .collect();
    assert_eq!(registered.len(), 2);
    for body in registered {
        assert_eq!(body["unattested"], "attestation_untrusted", "{body}");
    }
    let kind = |e: &Value| e["kind"].as_str().unwrap_or_default().to_owned();
    let kinds: Vec<String> = events.iter().map(kind).collect();
    let started = kinds.iter().position(|k| k == "device.attestation_started");
    let attested = kinds.iter().position(|k| k == "device.attested");
    assert!(
        matches!((started, attested), (Some(s), Some(a)) if s < a),
        "{kinds:?}"
    );
    let body = &events[attested.unwrap_or_default()]["body"];
    assert_eq!(body["key_id"], key_id.as_str(), "{body}");
    assert_eq!(body["slot"], "9e", "{body}");
    assert_eq!(body["serial"], PRIMARY, "{body}");
    for cert in ["slot_certificate", "device_certificate"] {
        let b64 = body[cert].as_str().unwrap_or_default();
        assert!(
            data_encoding::BASE64
                .decode(b64.as_bytes())
                .is_ok_and(|d| d.len() > 100),
            "{cert}: {body}"
        );
    }
}

const ATTESTED_PRIMARY: u32 = 10_000_911;
const ATTESTED_BACKUP: u32 = 10_000_912;

#[test]
fn pcscd_registration_attests_the_keys_under_the_policy_and_check_in_challenges_them() {
    if !in_harness(
        "pcscd_registration_attests_the_keys_under_the_policy_and_check_in_challenges_them",
        45200,
        1,
    ) {
        return;
    }
    let _keys = support::two_keys(
        &["--serial", &ATTESTED_PRIMARY.to_string()],
        &["--serial", &ATTESTED_BACKUP.to_string()],
    );
    let ca = support::fixture("piv-test-ca.pem");
    let mut w = world_with_policy(
        &format!("piv_attestation_test_ca = \"{}\"\n", ca.display()),
        "require_attested_devices = true\n",
    );
    // The wizard registers both keys (each given its attested custody key), enrols them and
    // checks them in: with the policy on, only attested keys get this far.
    super::ceremony::enrol_with_wizard(&mut w, ATTESTED_PRIMARY, ATTESTED_BACKUP);
    let mut key_ids = Vec::new();
    for s in [ATTESTED_PRIMARY, ATTESTED_BACKUP] {
        let shown = w.ok(&["--json", "device", "show", &s.to_string()], "");
        let id = shown.json()["device"]["custody_key_id"]
            .as_str()
            .unwrap_or_else(|| panic!("{s} not attested at registration: {}", shown.out))
            .to_owned();
        assert_eq!(id.len(), 64, "{id}");
        assert_eq!(shown.json()["device"]["state"]["state"], "in_safe");
        key_ids.push(id);
    }
    assert_ne!(key_ids[0], key_ids[1], "one custody key per device");
    let r = attest(&mut w, ATTESTED_PRIMARY);
    assert_ne!(r.code, 0, "attested twice:\n{}", r.out);
    assert!(
        r.out.contains("already has an attested custody key"),
        "{}\n{}",
        r.out,
        r.err
    );

    // Out of the bag and back in: the check-in challenges the custody key over PC/SC.
    grace(&mut w, "checkout", ATTESTED_PRIMARY, "BAG-0001", &[]);
    grace(
        &mut w,
        "checkin",
        ATTESTED_PRIMARY,
        "BAG-0003",
        &["--location", "safe A, shelf 1"],
    );
    assert_eq!(device_state(&w, ATTESTED_PRIMARY)["state"], "in_safe");

    let events = stopped_and_exported(&mut w);
    let primary = ATTESTED_PRIMARY.to_string();
    let kinds: Vec<&str> = events
        .iter()
        .filter(|e| e["body"]["device"] == primary.as_str())
        .filter_map(|e| e["kind"].as_str())
        .filter(|k| k.starts_with("device."))
        .collect();
    assert_eq!(
        kinds[..3],
        [
            "device.attestation_started",
            "device.registered",
            "device.attested"
        ],
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| **k == "device.checked_in").count(),
        2,
        "{kinds:?}"
    );
    let attested = events
        .iter()
        .find(|e| e["kind"] == "device.attested" && e["body"]["device"] == primary.as_str())
        .map(|e| &e["body"])
        .expect("device.attested");
    assert_eq!(attested["key_id"], key_ids[0].as_str(), "{attested}");
    assert_eq!(attested["serial"], ATTESTED_PRIMARY, "{attested}");
    assert_eq!(attested["resumed"], false, "{attested}");
    assert!(
        !events
            .iter()
            .any(|e| e["kind"] == "custody.refused" && e["body"]["refusal"] == "device_unattested"),
        "an attested key was refused as unattested"
    );
}

const NEW_KEY: u32 = 10_000_921;
const OLD_KEY: u32 = 10_000_922;

/// `custody [--json] device register SERIAL --role ROLE` by alice: as it ran.
fn register(w: &mut World, json: bool, serial: u32, role: &str) -> support::daemon::Run {
    let c = w.code("alice");
    let serial = serial.to_string();
    let args: Vec<&str> = json
        .then_some("--json")
        .into_iter()
        .chain([
            "device",
            "register",
            &serial,
            "--role",
            role,
            "--as",
            "alice",
            "--passphrase-fd",
            "3",
            "--totp-fd",
            "4",
        ])
        .collect();
    w.custody4(
        &args,
        &format!("{}\n", user_pass("alice")),
        &format!("{c}\n"),
    )
}

#[test]
fn pcscd_registration_refuses_a_key_too_old_to_attest_when_the_policy_requires_it() {
    if !in_harness(
        "pcscd_registration_refuses_a_key_too_old_to_attest_when_the_policy_requires_it",
        45201,
        1,
    ) {
        return;
    }
    let _keys = support::two_keys(
        &["--serial", &NEW_KEY.to_string()],
        &["--serial", &OLD_KEY.to_string(), "--firmware", "4.2.7"],
    );
    let ca = support::fixture("piv-test-ca.pem");
    let mut w = world_with_policy(
        &format!("piv_attestation_test_ca = \"{}\"\n", ca.display()),
        "require_attested_devices = true\n",
    );
    let r = register(&mut w, false, NEW_KEY, "primary");
    assert_eq!(r.code, 0, "{}\n{}", r.out, r.err);
    assert!(
        r.out.contains(&format!("device {NEW_KEY}: registered"))
            && r.out.contains("attested  PIV custody key "),
        "{}",
        r.out
    );

    // YubiKey 4.2 has no PIV attestation: refused, named, recorded, not registered.
    let r = register(&mut w, true, OLD_KEY, "backup");
    assert_ne!(r.code, 0, "a 4.2.7 key registered:\n{}", r.out);
    assert_eq!(
        r.json()["error"]["reason"],
        "attestation_unsupported",
        "{}",
        r.out
    );
    assert!(
        r.out.contains("firmware 4.2.7 has no PIV attestation"),
        "{}\n{}",
        r.out,
        r.err
    );
    let shown = w.custody(&["--json", "device", "show", &OLD_KEY.to_string()], "");
    assert_eq!(
        shown.json()["error"]["reason"],
        "unknown_device",
        "registered after all:\n{}",
        shown.out
    );

    let events = stopped_and_exported(&mut w);
    assert!(
        events.iter().any(|e| e["kind"] == "custody.refused"
            && e["body"]["refusal"] == "attestation_unsupported"
            && e["body"]["device"] == OLD_KEY.to_string().as_str()),
        "the refusal is not in the ledger"
    );
    assert!(
        !events
            .iter()
            .any(|e| e["body"]["device"] == OLD_KEY.to_string().as_str()
                && e["kind"].as_str().is_some_and(|k| k.starts_with("device."))),
        "a device event for the refused key"
    );
}
