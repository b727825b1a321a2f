//! Approvals signed by officers' own YubiKeys through the production path: a private pcscd
//! with the vpcd driver, `custody-emu` keys, a real `custodyd` trusting the emulator's test CA
//! and the `custody` binary. Two custody keys are enrolled; then carol's and frank's own
//! YubiKeys take turns in the second reader: each officer registers a new approval key (the
//! other witnessing) with `custody user key register --generate`, and approves dave's request
//! with `custody approve --sign` (PIV PIN on a descriptor, the emulator touched). The code is
//! released from the primary, and the exported ledger verifies offline with `custody audit
//! verify`; its `request.approved` events hold the signatures and name the registered keys.

use crate::support;

use serde_json::Value;
use support::cli::{output, Custody};
use support::daemon::{request_status, user_pass, world_with_config, Run, World, ACCOUNT, SEED};
use support::{in_harness, wait_for_card, Emu};

const PRIMARY: u32 = 10_000_931;
const BACKUP: u32 = 10_000_932;
const CAROL_KEY: u32 = 10_000_941;
const FRANK_KEY: u32 = 10_000_942;
/// The emulator's factory PIV PIN.
const PIN: &str = "123456";

/// `custody user key register OFFICER --witness WITNESS --serial SERIAL [--generate]`, both
/// officers' passphrases on descriptor 3 and codes on 4: as it ran.
fn register(w: &mut World, officer: &str, witness: &str, serial: u32, generate: bool) -> Run {
    let (co, cw) = (w.code(officer), w.code(witness));
    let serial = serial.to_string();
    let args: Vec<&str> = ["--json", "user", "key", "register", officer]
        .into_iter()
        .chain(["--witness", witness, "--serial", &serial])
        .chain(generate.then_some("--generate"))
        .chain(["--passphrase-fd", "3", "--totp-fd", "4"])
        .collect();
    w.custody4(
        &args,
        &format!("{}\n{}\n", user_pass(officer), user_pass(witness)),
        &format!("{co}\n{cw}\n"),
    )
}

/// `custody approve ID --as OFFICER --sign --serial SERIAL`, the passphrase on descriptor 3
/// and the PIV PIN on 5: as it ran.
fn approve_signed(w: &World, id: &str, officer: &str, serial: u32) -> Run {
    Custody::new(&[
        "approve",
        id,
        "--as",
        officer,
        "--sign",
        "--serial",
        &serial.to_string(),
        "--passphrase-fd",
        "3",
        "--pin-fd",
        "5",
    ])
    .socket(&w.socket)
    .fd3(&format!("{}\n", user_pass(officer)))
    .fd5(&format!("{PIN}\n"))
    .files_in(w.dir.path())
    .runtime_dir(&w.runtime_dir)
    .run()
}

#[test]
fn pcscd_officers_register_keys_approve_by_signature_and_the_export_verifies() {
    if !in_harness(
        "pcscd_officers_register_keys_approve_by_signature_and_the_export_verifies",
        45300,
        1,
    ) {
        return;
    }
    let [_primary, backup] = support::two_keys(
        &["--serial", &PRIMARY.to_string()],
        &["--serial", &BACKUP.to_string()],
    );
    let ca = support::fixture("piv-test-ca.pem");
    let mut w = world_with_config(&format!("piv_attestation_test_ca = \"{}\"", ca.display()));
    super::ceremony::enrol_with_wizard(&mut w, PRIMARY, BACKUP);
    // The backup goes to its safe; the second reader takes the officers' own keys.
    backup.stop();

    w.room_in_step(10);
    let r = w.request_code(true, "rotate the root password after the annual audit");
    assert_eq!(r.code, 0, "request code:\n{}\n{}", r.out, r.err);
    let id = r.json()["request"]["id"].as_str().expect("id").to_owned();

    let mut key_ids = Vec::new();
    for (officer, witness, serial) in [("carol", "frank", CAROL_KEY), ("frank", "carol", FRANK_KEY)]
    {
        let own = Emu::start(1, &["--serial", &serial.to_string()]);
        wait_for_card(1);
        let r = register(&mut w, officer, witness, serial, true);
        assert_eq!(r.code, 0, "register {officer}:\n{}\n{}", r.out, r.err);
        let key_id = r.json()["officer_key"]["key_id"]
            .as_str()
            .unwrap_or_else(|| panic!("no key id: {}", r.out))
            .to_owned();
        assert_eq!(key_id.len(), 64, "{key_id}");
        assert!(
            r.err.contains(&key_id),
            "the card's key id is shown: {}",
            r.err
        );

        // Registered once only (the key already in 9c, not generated again).
        let again = register(&mut w, officer, witness, serial, false);
        assert_ne!(again.code, 0, "registered twice:\n{}", again.out);
        assert_eq!(
            again.json()["error"]["reason"],
            "signing_key_exists",
            "{}",
            again.out
        );

        let r = approve_signed(&w, &id, officer, serial);
        assert_eq!(r.code, 0, "approve --sign {officer}:\n{}\n{}", r.out, r.err);
        assert!(r.err.contains("You are approving:"), "{}", r.err);
        assert!(r.err.contains("Touch your YubiKey"), "{}", r.err);
        // (The account id, 123456789012, starts with the factory PIN.)
        let shown = format!("{}{}", r.out, r.err).replace(ACCOUNT, "");
        assert!(!shown.contains(PIN), "the PIN was echoed: {shown}");
        own.stop();
        key_ids.push(key_id);
    }
    assert_ne!(key_ids[0], key_ids[1]);
    assert_eq!(request_status(&w, &id), "approved");

    // The listing names each officer's registered key (the whole id in JSON, its first 16
    // hex digits for people), and no key for the others.
    let list = w.ok(&["--json", "user", "list"], "");
    let users = list.json()["users"].as_array().cloned().unwrap_or_default();
    let key_of = |name: &str| {
        users
            .iter()
            .find(|u| u["name"] == name)
            .map(|u| u["approval_key"].clone())
    };
    assert_eq!(
        key_of("carol"),
        Some(key_ids[0].as_str().into()),
        "{}",
        list.out
    );
    assert_eq!(
        key_of("frank"),
        Some(key_ids[1].as_str().into()),
        "{}",
        list.out
    );
    assert_eq!(
        key_of("dave"),
        Some(serde_json::Value::Null),
        "{}",
        list.out
    );
    let human = w.ok(&["user", "list"], "");
    for (officer, key_id) in [("carol", &key_ids[0]), ("frank", &key_ids[1])] {
        let line = human
            .out
            .lines()
            .find(|l| l.starts_with(officer))
            .unwrap_or_else(|| panic!("no line for {officer}: {}", human.out));
        assert!(
            line.ends_with(&format!("approval key {}", &key_id[..16])),
            "{line}"
        );
    }
    let dave = human
        .out
        .lines()
        .find(|l| l.starts_with("dave"))
        .unwrap_or_default();
    assert!(!dave.contains("approval key"), "{dave}");

    // The code, from the checked-out primary.
    let c = w.code("grace");
    w.ok4(
        &[
            "device",
            "checkout",
            &PRIMARY.to_string(),
            "--seal",
            "BAG-0001",
            "--request",
            &id,
            "--as",
            "grace",
            "--passphrase-fd",
            "3",
            "--totp-fd",
            "4",
        ],
        &format!("{}\n", user_pass("grace")),
        &format!("{c}\n"),
    );
    let r = w.ok(
        &["code", &id, "--as", "dave", "--passphrase-fd", "3"],
        &format!("{}\n", user_pass("dave")),
    );
    let after = w.clock.step();
    let line = r
        .out
        .lines()
        .find(|l| l.starts_with(&format!("Code for {id} (device {PRIMARY}): ")))
        .unwrap_or_else(|| panic!("no code line: {}", r.out));
    let code = line.rsplit(' ').next().expect("code");
    assert!(
        [after, after - 1]
            .iter()
            .any(|s| support::clock::totp(SEED, *s) == code),
        "{code} is not the seed's code"
    );
    assert_eq!(request_status(&w, &id), "released");

    // Offline: the ledger, then its export with the pinned checkpoint key.
    let verified = w.stop_and_verify();
    assert_eq!(verified["ok"], true, "{verified}");
    let out = w.export();
    let export = out.to_str().expect("utf8");
    // The officers' keys are attested by the emulator's test CA: against Yubico's roots alone
    // the export does not verify, and says which check failed.
    let o = output(
        &[
            "--json",
            "audit",
            "verify",
            export,
            "--pubkey",
            &w.public_key,
        ],
        "",
    );
    assert_eq!(o.status.code(), Some(1), "{}", support::cli::describe(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("officer_key_attestation"),
        "{}",
        support::cli::describe(&o)
    );
    let ca = support::fixture("piv-test-ca.pem");
    let o = output(
        &[
            "--json",
            "audit",
            "verify",
            export,
            "--pubkey",
            &w.public_key,
            "--piv-test-ca",
            ca.to_str().expect("utf8"),
        ],
        "",
    );
    assert_eq!(o.status.code(), Some(0), "{}", support::cli::describe(&o));
    let report: Value = serde_json::from_slice(&o.stdout).expect("verify --json");
    assert_eq!(report["approvals"]["signed"], 2, "{report}");
    assert_eq!(report["approvals"]["unchecked"], 0, "{report}");

    let events: Vec<Value> = std::fs::read_to_string(&out)
        .expect("export")
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let registered: Vec<&Value> = events
        .iter()
        .filter(|e| e["kind"] == "officer.key_registered")
        .map(|e| &e["body"])
        .collect();
    assert_eq!(registered.len(), 2, "{registered:?}");
    let approved: Vec<&Value> = events
        .iter()
        .filter(|e| e["kind"] == "request.approved")
        .map(|e| &e["body"])
        .collect();
    assert_eq!(approved.len(), 2, "{approved:?}");
    for (body, key_id) in approved.iter().zip(&key_ids) {
        assert_eq!(body["proof"], "signature", "{body}");
        assert_eq!(body["key_id"], key_id.as_str(), "{body}");
        assert!(
            body["signature"]
                .as_str()
                .and_then(|s| data_encoding::BASE64.decode(s.as_bytes()).ok())
                .is_some_and(|d| d.len() > 60),
            "{body}"
        );
    }
}

/// `custody user key register --generate` on the YubiKey whose key in 9c is the officer's
/// registered one is refused before the card is changed, saying to remove the key first; the
/// key stays on the card (and registered). Once two officers remove it, `--generate` replaces
/// it.
#[test]
fn pcscd_generate_over_the_registered_key_is_refused_before_the_card_is_changed() {
    if !in_harness(
        "pcscd_generate_over_the_registered_key_is_refused_before_the_card_is_changed",
        45342,
        1,
    ) {
        return;
    }
    let ca = support::fixture("piv-test-ca.pem");
    let mut w = world_with_config(&format!("piv_attestation_test_ca = \"{}\"", ca.display()));
    let _own = Emu::start(0, &["--serial", &CAROL_KEY.to_string()]);
    wait_for_card(0);
    let r = register(&mut w, "carol", "frank", CAROL_KEY, true);
    assert_eq!(r.code, 0, "register:\n{}\n{}", r.out, r.err);
    let key_id = r.json()["officer_key"]["key_id"]
        .as_str()
        .expect("key id")
        .to_owned();

    let again = register(&mut w, "carol", "frank", CAROL_KEY, true);
    assert_ne!(
        again.code, 0,
        "generated over the registered key:\n{}",
        again.out
    );
    let e = &again.json()["error"];
    assert_eq!(e["reason"], "signing_key_exists", "{}", again.out);
    let message = e["message"].as_str().expect("message");
    for part in [
        "custody user key remove carol --witness frank",
        key_id.as_str(),
        "nothing was changed",
    ] {
        assert!(message.contains(part), "{part:?} not in: {message}");
    }
    assert!(!again.err.contains("Generating"), "{}", again.err);
    // Without a login session custody cannot tell whose key the card holds: refused too.
    let (co, cw) = (w.code("carol"), w.code("frank"));
    let serial = CAROL_KEY.to_string();
    let alone = Custody::new(&[
        "--json",
        "user",
        "key",
        "register",
        "carol",
        "--witness",
        "frank",
        "--serial",
        &serial,
        "--generate",
        "--passphrase-fd",
        "3",
        "--totp-fd",
        "4",
    ])
    .socket(&w.socket)
    .fd3(&format!("{}\n{}\n", user_pass("carol"), user_pass("frank")))
    .fd4(&format!("{co}\n{cw}\n"))
    .files_in(w.dir.path())
    .runtime_dir(&w.dir.path().join("no-session"))
    .run();
    assert_eq!(alone.code, 1, "{}\n{}", alone.out, alone.err);
    let message = alone.json()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        message.contains("run custody login first") && message.contains("nothing was changed"),
        "{message}"
    );
    assert!(!alone.err.contains("Generating"), "{}", alone.err);
    // The card still holds the registered key.
    let kept = register(&mut w, "carol", "frank", CAROL_KEY, false);
    assert_eq!(kept.json()["error"]["reason"], "signing_key_exists");
    assert!(
        kept.err.contains(&format!("approval key {key_id}")),
        "the key on the card changed: {}",
        kept.err
    );

    // Removed by two officers, the key may be replaced.
    let (co, cw) = (w.code("carol"), w.code("frank"));
    w.ok4(
        &[
            "user",
            "key",
            "remove",
            "carol",
            "--witness",
            "frank",
            "--passphrase-fd",
            "3",
            "--totp-fd",
            "4",
        ],
        &format!("{}\n{}\n", user_pass("carol"), user_pass("frank")),
        &format!("{co}\n{cw}\n"),
    );
    let r = register(&mut w, "carol", "frank", CAROL_KEY, true);
    assert_eq!(r.code, 0, "register after removal:\n{}\n{}", r.out, r.err);
    assert_ne!(r.json()["officer_key"]["key_id"], key_id.as_str());
}

/// A second YubiKey of the officers' (vpcd slot 1).
const OTHER_KEY: u32 = 10_000_943;

/// `custody --json approve ID --as OFFICER --sign ARGS --passphrase-fd 3`, the passphrase on
/// descriptor 3 and `pin` (when given) on 5: as it ran.
fn approve_with(w: &World, id: &str, officer: &str, args: &[&str], pin: Option<&str>) -> Run {
    let all: Vec<&str> = ["--json", "approve", id, "--as", officer, "--sign"]
        .into_iter()
        .chain(args.iter().copied())
        .chain(["--passphrase-fd", "3"])
        .collect();
    let mut c = Custody::new(&all)
        .socket(&w.socket)
        .fd3(&format!("{}\n", user_pass(officer)))
        .files_in(w.dir.path())
        .runtime_dir(&w.runtime_dir);
    if let Some(pin) = pin {
        c = c.fd5(pin);
    }
    c.run()
}

/// The `--json` error's message of a run that failed with exit status `code`, checked to hold
/// every one of `parts`, and no panic.
fn failed_saying(r: &Run, what: &str, code: i32, parts: &[&str]) -> String {
    assert_eq!(r.code, code, "{what}: exit status\n{}\n{}", r.out, r.err);
    let both = format!("{}{}", r.out, r.err);
    assert!(!both.contains("panicked"), "{what}: a panic\n{both}");
    let message = serde_json::from_str::<Value>(&r.out)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| r.err.clone());
    for p in parts {
        assert!(message.contains(p), "{what}: {p:?} not in: {message}");
    }
    message
}

/// What `custody approve --sign` and `custody user key register` say when something about the
/// card or the secrets given is wrong, through pcscd: each error names what was wrong and what
/// to do, none is a panic, and the PIN appears in no output.
#[test]
fn pcscd_signing_errors_say_what_was_wrong_and_what_to_do() {
    if !in_harness(
        "pcscd_signing_errors_say_what_was_wrong_and_what_to_do",
        45344,
        1,
    ) {
        return;
    }
    let ca = support::fixture("piv-test-ca.pem");
    let mut w = world_with_config(&format!("piv_attestation_test_ca = \"{}\"", ca.display()));
    w.add_account("alice");
    let carol = Emu::start(0, &["--serial", &CAROL_KEY.to_string()]);
    wait_for_card(0);
    let r = register(&mut w, "carol", "frank", CAROL_KEY, true);
    assert_eq!(r.code, 0, "register carol:\n{}\n{}", r.out, r.err);
    let r = w.request_code(true, "rotate the root password after the annual audit");
    assert_eq!(r.code, 0, "request code:\n{}\n{}", r.out, r.err);
    let id = r.json()["request"]["id"].as_str().expect("id").to_owned();
    let carol_serial = CAROL_KEY.to_string();
    let on_carol = ["--serial", carol_serial.as_str(), "--pin-fd", "5"];

    // A wrong PIN: the tries left are said, the PIN is never shown.
    let wrong = "864209";
    let r = approve_with(&w, &id, "carol", &on_carol, Some(&format!("{wrong}\n")));
    failed_saying(&r, "wrong PIN", 3, &["PIN", "2 tries left"]);
    assert_eq!(r.json()["error"]["pin_tries_left"], 2, "{}", r.out);
    assert!(
        !format!("{}{}", r.out, r.err).contains(wrong),
        "the PIN was shown:\n{}\n{}",
        r.out,
        r.err
    );

    // --pin-fd: not a number, a closed descriptor, an empty one.
    let r = approve_with(
        &w,
        &id,
        "carol",
        &["--serial", &carol_serial, "--pin-fd", "five"],
        None,
    );
    failed_saying(
        &r,
        "--pin-fd five",
        2,
        &["--pin-fd", "\"five\"", "descriptor"],
    );
    let r = approve_with(
        &w,
        &id,
        "carol",
        &["--serial", &carol_serial, "--pin-fd", "9"],
        None,
    );
    failed_saying(&r, "--pin-fd 9 (closed)", 5, &["file descriptor 9", "9<"]);
    let r = approve_with(&w, &id, "carol", &on_carol, Some(""));
    failed_saying(&r, "--pin-fd 5 (empty)", 2, &["file descriptor 5", "PIN"]);

    // --management-key-fd: not a number, a closed descriptor, an empty one, not hex. Read
    // before the card is opened: frank's registration never gets to the card.
    let register_with = |w: &mut World, fd: &str, key: Option<&str>| -> Run {
        let (co, cw) = (w.code("frank"), w.code("carol"));
        let mut c = Custody::new(&[
            "--json",
            "user",
            "key",
            "register",
            "frank",
            "--witness",
            "carol",
            "--generate",
            "--serial",
            &carol_serial,
            "--management-key-fd",
            fd,
            "--passphrase-fd",
            "3",
            "--totp-fd",
            "4",
        ])
        .socket(&w.socket)
        .fd3(&format!("{}\n{}\n", user_pass("frank"), user_pass("carol")))
        .fd4(&format!("{co}\n{cw}\n"))
        .files_in(w.dir.path())
        .runtime_dir(&w.runtime_dir);
        if let Some(key) = key {
            c = c.fd5(key);
        }
        c.run()
    };
    let r = register_with(&mut w, "x", None);
    failed_saying(
        &r,
        "--management-key-fd x",
        2,
        &["--management-key-fd", "\"x\"", "descriptor"],
    );
    let r = register_with(&mut w, "9", None);
    failed_saying(
        &r,
        "--management-key-fd 9 (closed)",
        5,
        &["file descriptor 9", "9<"],
    );
    let r = register_with(&mut w, "5", Some(""));
    failed_saying(
        &r,
        "--management-key-fd 5 (empty)",
        2,
        &["file descriptor 5", "management key"],
    );
    let r = register_with(&mut w, "5", Some("not hex\n"));
    failed_saying(
        &r,
        "--management-key-fd 5 (not hex)",
        2,
        &["file descriptor 5", "hex"],
    );

    // Two YubiKeys and no --serial: both are listed, and --serial is asked for.
    let other_serial = OTHER_KEY.to_string();
    let other = Emu::start(1, &["--serial", &other_serial]);
    wait_for_card(1);
    let r = approve_with(
        &w,
        &id,
        "carol",
        &["--pin-fd", "5"],
        Some(&format!("{PIN}\n")),
    );
    failed_saying(
        &r,
        "two YubiKeys",
        2,
        &[carol_serial.as_str(), other_serial.as_str(), "--serial"],
    );

    // A YubiKey with no approval key in 9c, then one with another officer's key: refused,
    // saying to use the registered YubiKey.
    let on_other = ["--serial", other_serial.as_str(), "--pin-fd", "5"];
    let r = approve_with(&w, &id, "carol", &on_other, Some(&format!("{PIN}\n")));
    failed_saying(
        &r,
        "no key in 9c",
        3,
        &[other_serial.as_str(), "9c", "registered"],
    );
    let r = register(&mut w, "frank", "carol", OTHER_KEY, true);
    assert_eq!(r.code, 0, "register frank:\n{}\n{}", r.out, r.err);
    let r = approve_with(&w, &id, "carol", &on_other, Some(&format!("{PIN}\n")));
    let m = failed_saying(
        &r,
        "frank's key",
        1,
        &[other_serial.as_str(), "use the YubiKey you registered"],
    );
    assert_eq!(
        r.json()["error"]["reason"],
        "signing_key_not_registered",
        "{m}"
    );

    // The registered YubiKey, with the right PIN, still approves.
    let r = approve_with(&w, &id, "carol", &on_carol, Some(&format!("{PIN}\n")));
    assert_eq!(r.code, 0, "approve:\n{}\n{}", r.out, r.err);

    // No YubiKey at all, then none with the serial asked for.
    other.stop();
    carol.stop();
    let r = approve_with(
        &w,
        &id,
        "frank",
        &["--pin-fd", "5"],
        Some(&format!("{PIN}\n")),
    );
    failed_saying(
        &r,
        "no YubiKey",
        3,
        &["no YubiKey in any reader", "plug in"],
    );
    let r = approve_with(&w, &id, "frank", &on_other, Some(&format!("{PIN}\n")));
    failed_saying(
        &r,
        "no such serial",
        3,
        &[&format!("with serial {other_serial}"), "plug in"],
    );
}
