//! The software YubiKey through a real pcscd and the vpcd driver: the `yubikey` crate, the PC/SC
//! transport, `custody token scan`, card removal, faults and state persistence.
//!
//! Every test re-runs itself inside `scripts/with-pcscd.sh` on its own ports (see `support`).
//! Needs root and the packages pcscd and vsmartcard-vpcd (`make deps`).

use crate::support;

use std::time::Duration;

use mfa_custody::token::identity;
use mfa_custody::token::oath::{
    totp, CredentialName, Digits, HashAlgorithm, OathSecret, OathSession, PutRequest, Selected,
    TimeStep,
};
use mfa_custody::token::pcsc::{PcscContext, ReaderEvent};
use mfa_custody::token::transport::exchange;
use mfa_custody::token::{apdu::Command, CardTransport, TokenError, TransportError};
use support::{custody, fixture, in_harness, wait_for_card, Emu};

fn image_arg(name: &str) -> String {
    fixture(name).to_string_lossy().into_owned()
}

#[test]
fn pcscd_yubikey_crate_finds_the_emulated_key_by_serial() {
    if !in_harness(
        "pcscd_yubikey_crate_finds_the_emulated_key_by_serial",
        41000,
        1,
    ) {
        return;
    }
    let _keys = support::two_keys(
        &["--image", &image_arg("primary.toml")],
        &["--image", &image_arg("backup.toml")],
    );
    let yk = yubikey::YubiKey::open_by_serial(yubikey::Serial(10_000_002)).expect("found");
    assert_eq!(u32::from(yk.serial()), 10_000_002);
    assert_eq!(yk.name(), support::reader_name(1));
    let v = yk.version();
    assert_eq!((v.major, v.minor, v.patch), (5, 4, 3));
    drop(yk);
    assert_eq!(
        identity::find_by_serial(10_000_001).expect("found"),
        support::reader_name(0)
    );
    assert!(identity::find_by_serial(99).is_err());
}

#[test]
fn pcscd_token_scan_json_shows_identity_and_never_a_code() {
    if !in_harness(
        "pcscd_token_scan_json_shows_identity_and_never_a_code",
        41010,
        1,
    ) {
        return;
    }
    // Two credentials: the touch one from the fixture and one without touch, whose code the
    // device does compute during the scan's CALCULATE ALL (time step 0).
    let dir = tempfile::tempdir().expect("tempdir");
    let image = dir.path().join("scan.toml");
    let text = std::fs::read_to_string(fixture("primary.toml")).expect("fixture")
        + "\n[[oath.credentials]]\nname = \"Example:notouch\"\ntype = \"totp\"\nalgorithm = \"sha1\"\ndigits = 6\nsecret_hex = \"3132333435363738393031323334353637383930\"\ntouch = false\n";
    std::fs::write(&image, text).expect("write image");
    let _emu = Emu::start(0, &["--image", &image.to_string_lossy()]);
    let reader = wait_for_card(0);

    let (code, out, err) = custody(&["--json", "token", "scan"]);
    assert_eq!(code, 0, "stderr: {err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let r = &v["readers"][0];
    assert_eq!(r["reader"], reader.as_str());
    assert_eq!(r["card"], true);
    let d = &r["device"];
    assert_eq!(d["serial"], 10_000_001);
    assert_eq!(d["firmware"], "5.4.3");
    assert_eq!(d["form_factor"], "usb-a-keychain");
    assert_eq!(d["oath_locked"], false);
    let creds = d["credentials"].as_array().expect("credentials");
    assert_eq!(creds.len(), 2);
    assert_eq!(creds[0]["name"], "AWS:root@example.test");
    assert_eq!(creds[0]["type"], "totp");
    assert_eq!(creds[0]["algorithm"], "sha1");
    assert_eq!(creds[0]["digits"], 6);
    assert_eq!(creds[0]["touch"], true);
    assert_eq!(creds[1]["touch"], false);
    // The second slot is empty.
    assert_eq!(v["readers"][1]["card"], false);

    // The OATH device id is the one SELECT gives.
    let ctx = PcscContext::establish().expect("pcscd");
    let card = ctx.connect(&reader).expect("card");
    let info = match OathSession::select(card).expect("select") {
        Selected::Ready(s) => s.info().clone(),
        Selected::Locked(s) => s.info().clone(),
    };
    assert_eq!(d["oath_device_id"], info.device_id().as_str());

    // No code: neither the step-0 code the scan's CALCULATE ALL produced, nor the current ones.
    let secret = OathSecret::from_hex("3132333435363738393031323334353637383930").expect("hex");
    let now = TimeStep::now(std::num::NonZeroU32::new(30).expect("30"));
    for step in [
        TimeStep(0),
        TimeStep(now.0.saturating_sub(1)),
        now,
        TimeStep(now.0 + 1),
    ] {
        let c = totp(&secret, HashAlgorithm::Sha1, step, Digits::SIX);
        assert!(!out.contains(c.as_str()), "scan output holds a code");
        let (_, human, _) = custody(&["token", "scan"]);
        assert!(!human.contains(c.as_str()), "scan output holds a code");
    }
    let (_, human, _) = custody(&["token", "scan"]);
    assert!(human.contains("AWS:root@example.test"));
    assert!(human.contains("10000001"));
}

#[test]
fn pcscd_token_scan_shows_a_locked_applet() {
    if !in_harness("pcscd_token_scan_shows_a_locked_applet", 41020, 1) {
        return;
    }
    let _emu = Emu::start(0, &["--image", &image_arg("locked.toml")]);
    wait_for_card(0);
    let (code, out, err) = custody(&["--json", "token", "scan"]);
    assert_eq!(code, 0, "stderr: {err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let d = &v["readers"][0]["device"];
    assert_eq!(d["serial"], 10_000_003);
    assert_eq!(d["oath_locked"], true);
    assert_eq!(d["credentials"].as_array().map(Vec::len), Some(0));
}

#[test]
fn pcscd_no_reader_exits_3() {
    if !in_harness("pcscd_no_reader_exits_3", 41030, 0) {
        return;
    }
    let (code, out, err) = custody(&["--json", "token", "scan"]);
    assert_eq!(code, 3);
    assert!(err.contains("no smart-card reader"), "stderr: {err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["status"], 3, "{v}");
    assert_eq!(v["error"]["code"], "token", "{v}");
    assert_eq!(v["error"]["reason"], "device_unavailable", "{v}");
}

#[test]
fn pcscd_not_running_is_service_unavailable() {
    // The client library reaches pcscd through this socket; none listens there.
    if std::env::var_os("PCSCLITE_CSOCK_NAME").is_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        let test = crate::support::current_test("pcscd_not_running_is_service_unavailable");
        let rerun = std::process::Command::new(std::env::current_exe().expect("self"))
            .args(["--exact", &test])
            .env("PCSCLITE_CSOCK_NAME", dir.path().join("no-pcscd.comm"))
            .output()
            .expect("re-run");
        let stdout = String::from_utf8_lossy(&rerun.stdout);
        assert!(rerun.status.success(), "{stdout}");
        assert!(
            stdout.contains("test result: ok. 1 passed"),
            "{test} did not re-run: {stdout}"
        );
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_custody"))
            .args(["token", "scan"])
            .env("PCSCLITE_CSOCK_NAME", dir.path().join("no-pcscd.comm"))
            .output()
            .expect("custody");
        assert_eq!(out.status.code(), Some(3));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("pcscd"), "stderr: {err}");
        return;
    }
    match PcscContext::establish() {
        Err(TransportError::ServiceUnavailable { .. }) => {}
        other => panic!("expected ServiceUnavailable, got {other:?}"),
    }
}

#[test]
fn pcscd_card_removed_mid_operation_names_the_reader() {
    if !in_harness(
        "pcscd_card_removed_mid_operation_names_the_reader",
        41040,
        1,
    ) {
        return;
    }
    // The card answers three APDUs, then is pulled while the fourth is in flight.
    let _emu = Emu::start(
        0,
        &["--image", &image_arg("primary.toml"), "--drop-after", "3"],
    );
    let reader = wait_for_card(0);
    let ctx = PcscContext::establish().expect("pcscd");
    let mut card = ctx.connect(&reader).expect("card");
    let select_piv = Command::new(0, 0xA4, 4, 0).with_data(vec![0xA0, 0, 0, 3, 8]);
    let mut err = None;
    for _ in 0..10 {
        match exchange(&mut card, &select_piv, 0xC0) {
            Ok(_) => continue,
            Err(e) => {
                err = Some(e);
                break;
            }
        }
    }
    match err {
        Some(TokenError::Transport {
            reader: r, source, ..
        }) => {
            assert_eq!(r, reader);
            assert!(
                matches!(
                    &source,
                    TransportError::CardRemoved { reader: r } | TransportError::NoCard { reader: r }
                        if *r == reader
                ),
                "expected card removal, got {source:?}"
            );
            assert!(source.to_string().contains(&reader));
        }
        other => panic!("expected a transport error, got {other:?}"),
    }
}

#[test]
fn pcscd_corrupt_answer_is_malformed_not_a_panic() {
    if !in_harness("pcscd_corrupt_answer_is_malformed_not_a_panic", 41050, 1) {
        return;
    }
    let _emu = Emu::start(
        0,
        &[
            "--image",
            &image_arg("primary.toml"),
            "--corrupt-after",
            "0",
        ],
    );
    let reader = wait_for_card(0);
    let ctx = PcscContext::establish().expect("pcscd");
    let mut card = ctx.connect(&reader).expect("card");
    let select_piv = Command::new(0, 0xA4, 4, 0).with_data(vec![0xA0, 0, 0, 3, 8]);
    match exchange(&mut card, &select_piv, 0xC0) {
        Err(TokenError::Malformed { reader: r, .. }) => assert_eq!(r, reader),
        other => panic!("expected Malformed, got {other:?}"),
    }
    // The next answer is whole again.
    let r = exchange(&mut card, &select_piv, 0xC0).expect("answer");
    assert!(r.sw.is_success());
}

#[test]
fn pcscd_reader_events_report_insert_and_remove() {
    if !in_harness("pcscd_reader_events_report_insert_and_remove", 41060, 1) {
        return;
    }
    let ctx = PcscContext::establish().expect("pcscd");
    let mut w = ctx.watcher().expect("watcher");
    assert!(w.snapshot().iter().all(|(_, present)| !present));
    let emu = Emu::start(0, &["--image", &image_arg("blank.toml")]);
    let reader = support::reader_name(0);
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !seen
        .iter()
        .any(|e| matches!(e, ReaderEvent::CardInserted { .. }))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no insert event: {seen:?}"
        );
        seen.extend(w.watch(Duration::from_millis(500)).expect("watch"));
    }
    assert!(seen.contains(&ReaderEvent::CardInserted {
        reader: reader.clone(),
        atr: mfa_custody::emulator::YUBIKEY5_ATR.to_vec()
    }));
    emu.stop();
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|e| matches!(e, ReaderEvent::CardRemoved { .. }))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no remove event: {seen:?}"
        );
        seen.extend(w.watch(Duration::from_millis(500)).expect("watch"));
    }
    assert!(seen.contains(&ReaderEvent::CardRemoved { reader }));
}

#[test]
fn pcscd_state_persists_across_emulator_restart() {
    if !in_harness("pcscd_state_persists_across_emulator_restart", 41070, 1) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("primary.state");
    let state_arg = state.to_string_lossy().into_owned();
    let scan = |slot: usize| {
        let (code, out, err) = custody(&["--json", "token", "scan"]);
        assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
        let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
        v["readers"][slot]["device"].clone()
    };

    let emu = Emu::start(
        0,
        &["--image", &image_arg("primary.toml"), "--state", &state_arg],
    );
    wait_for_card(0);
    // A credential added over PC/SC is saved too.
    {
        let ctx = PcscContext::establish().expect("pcscd");
        let card = ctx.connect(&support::reader_name(0)).expect("card");
        let Selected::Ready(mut s) = OathSession::select(card).expect("select") else {
            panic!("primary is not locked");
        };
        let name = CredentialName::parse("Example:added").expect("name");
        let secret = OathSecret::from_hex("3132333435363738393031323334353637383930").expect("hex");
        s.put(&PutRequest::totp(name, secret)).expect("put");
    }
    let first = scan(0);
    assert_eq!(first["credentials"].as_array().map(Vec::len), Some(2));
    emu.stop();
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&state)
            .expect("state file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // Restarted from a blank image: the saved state wins, credentials and salt included. (The
    // restarted key goes into the second slot: vpcd does not always notice a card that leaves
    // and comes back to the same slot while pcscd has it powered down.)
    let _emu = Emu::start(
        1,
        &["--image", &image_arg("blank.toml"), "--state", &state_arg],
    );
    wait_for_card(1);
    let second = scan(1);
    assert_eq!(second["serial"], 10_000_000);
    assert_eq!(second["oath_device_id"], first["oath_device_id"]);
    assert_eq!(second["credentials"], first["credentials"]);
}

#[test]
fn pcscd_oath_client_suite_through_pcsc_card() {
    if !in_harness("pcscd_oath_client_suite_through_pcsc_card", 41080, 1) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("blank.state");
    let _emu = Emu::start(
        0,
        &[
            "--image",
            &image_arg("blank.toml"),
            "--state",
            &state.to_string_lossy(),
        ],
    );
    let reader = wait_for_card(0);
    let ctx = PcscContext::establish().expect("pcscd");
    let mut card = ctx.connect(&reader).expect("card");
    card.with_transaction(|tx| {
        let mut s = match OathSession::select(&mut *tx).expect("select") {
            Selected::Ready(s) => s,
            Selected::Locked(_) => panic!("blank key is not locked"),
        };
        assert_eq!(s.info().version.to_bytes(), [5, 4, 3]);
        let name = CredentialName::parse("AWS:root@example.test").expect("name");
        let secret = OathSecret::from_hex("3132333435363738393031323334353637383930").expect("hex");
        let mut put = PutRequest::totp(name.clone(), secret);
        put.digits = Digits::new(8).expect("8");
        s.put(&put).expect("put");
        let list = s.list().expect("list");
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].name, name);
        // RFC 6238, SHA-1, 8 digits, T = 59 s → step 1.
        let code = s.calculate_totp(&name, TimeStep(1)).expect("calculate");
        assert_eq!(code.as_str(), "94287082");
        let code = s
            .calculate_totp(&name, TimeStep(1_111_111_109 / 30))
            .expect("calculate");
        assert_eq!(code.as_str(), "07081804");
        s.delete(&name).expect("delete");
        assert!(s.list().expect("list").is_empty());
        assert_eq!(CardTransport::reader(&*tx), reader);
    })
    .expect("transaction");
}
