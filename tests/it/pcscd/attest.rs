//! `custody device attest` through the production path: a private pcscd with the vpcd driver,
//! two `custody-emu` keys, a real `custodyd` configured with `piv_attestation_test_ca` (the
//! emulator's test CA, `hsm-fixtures/piv-test-ca.pem`) and the `custody` binary. Two officers
//! attest the checked-out primary; `device.attested` is recorded with both certificates; the
//! check-in that follows challenges the attested key over PC/SC and passes, and so does the
//! next check-out. The daemon's log says it trusts a test CA.

use crate::support;

use serde_json::Value;
use support::cli::{opened_by_alice_and_bob, output};
use support::daemon::{device_state, unseal_pass, user_pass, world_with_config, World};
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
    let ca = support::fixture("piv-test-ca.pem");
    let mut w = world_with_config(&format!("piv_attestation_test_ca = \"{}\"\n", ca.display()));
    let log = std::fs::read_to_string(w.dir.path().join("custodyd.log")).expect("log");
    assert!(
        log.contains("piv_attestation_test_ca is set") && log.contains("TEST CA"),
        "custodyd warns that it trusts a test CA:\n{log}"
    );
    super::ceremony::enrol_with_wizard(&mut w, PRIMARY, BACKUP);

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

    let verified = w.stop_and_verify();
    assert_eq!(verified["ok"], true, "{verified}");
    let out = w.dir.path().join("export.jsonl");
    let l = w.ledger.to_str().expect("utf8").to_owned();
    let o = output(
        &[
            &["audit", "export"][..],
            &opened_by_alice_and_bob(&l),
            &["--out", out.to_str().expect("utf8")],
        ]
        .concat(),
        &format!("{}\n{}\n", unseal_pass("alice"), unseal_pass("bob")),
    );
    assert_eq!(o.status.code(), Some(0), "{}", support::cli::describe(&o));
    let events: Vec<Value> = std::fs::read_to_string(&out)
        .expect("export")
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
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
