//! The sign-in ceremony through the production device path: a real pcscd with the vpcd driver,
//! two `custody-emu` keys (primary and backup, blank until enrolment programs them) and the
//! `PcscAccess` custodyd opens devices with (one per operation, from the shipped configuration).
//! Enrolment programs both keys over PC/SC, the code released for the request matches an
//! independent TOTP computation of the seed, `code.issuing` precedes `code.released`, and the
//! ledger verifies afterwards. Enrolment also locks each key's OATH applet with its own access
//! key: a plain PC/SC client's LIST without VALIDATE answers 6982 on either key, the release
//! (which validates first) still goes through, and neither access key is found in the ledger
//! file, the export or the device records. Retiring the backup clears its access key on the
//! card: LIST then answers without VALIDATE. The root password two officers stored comes with
//! the code (the task, changing it, signs in with it), once, and is in neither the ledger file
//! nor the export. The export, held against a CloudTrail sign-in after the release by
//! `custody audit cloudtrail`, explains it by the request.
//!
//! The clock is the host's, moved forward (never back) when the domain waits for the next time
//! step or an officer needs a fresh second-factor step, so the test does not sleep through
//! 30-second steps. The emulated keys compute whatever step they are asked for.

use crate::support;

use mfa_custody::custody::{Clock, DeviceRole, Location, RequestStatus, SealNumber, Serial};
use mfa_custody::ledger::verify_ledger;
use support::clock::{step_of_ms, totp};
use support::domain::{self, SEED_B32};
use support::{custodyd_devices, in_harness};

const PRIMARY: u32 = 10_000_101;
const BACKUP: u32 = 10_000_102;

#[test]
fn pcscd_sign_in_ceremony_releases_the_current_code_from_the_checked_out_key() {
    if !in_harness(
        "pcscd_sign_in_ceremony_releases_the_current_code_from_the_checked_out_key",
        41200,
        1,
    ) {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let state = |s: u32| tmp.path().join(format!("{s}.state"));
    let _keys = support::two_keys_with_state([PRIMARY, BACKUP], state);

    let dir = tmp.path().join("ledger");
    let (mut custody, people) = domain::bootstrapped(&dir);
    let clock = people.clock.clone();
    let a = custody.authenticate(&people.creds("alice")).expect("alice");
    let b = custody.authenticate(&people.creds("bob")).expect("bob");
    let none = domain::add_operator(&mut custody, &a, "oscar");
    assert!(none.is_none());

    domain::register_aws_account(&mut custody, &a);
    for (s, role) in [(PRIMARY, DeviceRole::Primary), (BACKUP, DeviceRole::Backup)] {
        custody
            .register_device(
                &a,
                &mut custodyd_devices(),
                Serial::new(s).expect("serial"),
                role,
            )
            .expect("register over PC/SC");
    }
    let codes = custody
        .enrol(
            &a,
            &b,
            &mut custodyd_devices(),
            domain::enrolment(PRIMARY, BACKUP),
        )
        .expect("enrol over PC/SC");
    let s = codes.first_step;
    assert_eq!(codes.first.as_str(), totp(SEED_B32, s));
    assert_eq!(codes.second.as_str(), totp(SEED_B32, s + 1));
    let access_keys = [PRIMARY, BACKUP].map(|s| support::access_key_on_card(&state(s)));
    assert_ne!(access_keys[0], access_keys[1], "one access key per device");
    for slot in [0, 1] {
        assert_list_needs_validate(slot);
    }
    for (s, seal) in [(PRIMARY, "SEAL-P1"), (BACKUP, "SEAL-B1")] {
        custody
            .check_in(
                &a,
                &mut custodyd_devices(),
                Serial::new(s).expect("serial"),
                SealNumber::parse(seal).expect("seal"),
                Location::parse("safe 1").expect("location"),
            )
            .expect("check in");
    }

    // The root password, generated and stored sealed by two officers.
    let root_password = mfa_custody::custody::RootPassword::generate().expect("generate");
    let account = mfa_custody::custody::AccountId::parse(domain::ACCOUNT).expect("id");
    let a = custody.authenticate(&people.creds("alice")).expect("alice");
    let b = custody.authenticate(&people.creds("bob")).expect("bob");
    custody
        .set_root_password(&a, &b, &account, &root_password, true)
        .expect("set the root password");

    let oscar = custody.authenticate(&people.creds("oscar")).expect("oscar");
    let r = custody
        .create_request(
            &oscar,
            domain::new_request("rotate the root password after staff change"),
        )
        .expect("request");
    custody
        .approve(&r.id, &people.creds("alice"))
        .expect("first approval");
    let approved = custody
        .approve(&r.id, &people.creds("bob"))
        .expect("second approval");
    assert_eq!(approved.status, RequestStatus::Approved);
    let a = custody.authenticate(&people.creds("alice")).expect("alice");
    custody
        .check_out(
            &a,
            Serial::new(PRIMARY).expect("serial"),
            &SealNumber::parse("SEAL-P1").expect("seal"),
            Some(&r.id),
        )
        .expect("check out");
    let code = custody
        .release_code(&oscar, &r.id, &mut custodyd_devices())
        .expect("release over PC/SC");
    let now = clock.now_ms();
    assert_eq!(code.step, u64::try_from(now / 30_000).expect("step"));
    assert_eq!(code.code.as_str(), totp(SEED_B32, step_of_ms(now)));
    assert_eq!(code.device.get(), PRIMARY);
    // Changing the root password signs in with it: it comes with the code, once.
    assert_eq!(
        code.password.as_ref().map(|p| p.expose()),
        Some(root_password.expose())
    );
    assert!(
        custody
            .account(&account)
            .expect("account")
            .password_rotation_due
    );

    let mut kinds = Vec::new();
    let head = custody.ledger().head().expect("head").expect("events").seq;
    custody
        .ledger()
        .for_each_event(1, head, |e| {
            kinds.push(e.header.kind.as_str().to_owned());
            Ok(())
        })
        .expect("events");
    let issuing = kinds.iter().position(|k| k == "code.issuing");
    let released = kinds.iter().position(|k| k == "code.released");
    assert!(
        matches!((issuing, released), (Some(i), Some(r)) if i < r),
        "{kinds:?}"
    );
    custody
        .check_in(
            &a,
            &mut custodyd_devices(),
            Serial::new(PRIMARY).expect("serial"),
            SealNumber::parse("SEAL-P2").expect("seal"),
            Location::parse("safe 1").expect("location"),
        )
        .expect("check in under a new seal");
    verify_ledger(custody.ledger()).expect("the ledger verifies");

    // Neither access key is anywhere the ledger's holders can read it without the master
    // secret: the database file, the export, the device records.
    let mut out = Vec::new();
    custody.export_redacted(&mut out).expect("export");
    cloudtrail_explains_the_release(&out, &custody.ledger().public_key().to_hex(), &r.id);
    let mut records = String::new();
    for s in [PRIMARY, BACKUP] {
        let d = custody
            .device(Serial::new(s).expect("serial"))
            .expect("device");
        assert!(d.oath_access_key, "{s} is recorded as locked");
        records.push_str(&format!(
            "{d:?} {}",
            serde_json::to_string(&d).expect("json")
        ));
    }
    // Retiring the backup over PC/SC clears its access key on the card: a plain client then
    // lists its credential without VALIDATE.
    let d = custody
        .set_terminal(
            &a,
            &b,
            &mut custodyd_devices(),
            Serial::new(BACKUP).expect("serial"),
            mfa_custody::custody::Terminal::Retired,
        )
        .expect("retire over PC/SC");
    assert!(
        !d.oath_access_key,
        "the retired backup is recorded as unlocked"
    );
    assert_list_without_validate(1);
    drop(custody);
    let mut bytes = out;
    bytes.extend_from_slice(records.as_bytes());
    for f in ["ledger.db", "ledger.db-wal"] {
        if let Ok(b) = std::fs::read(dir.join(f)) {
            bytes.extend_from_slice(&b);
        }
    }
    for key in &access_keys {
        support::assert_key_absent(
            &bytes,
            key,
            "the ledger file, the export or a device record",
        );
    }
    support::assert_key_absent(
        &bytes,
        root_password.expose().as_bytes(),
        "the ledger file, the export or a device record (the root password)",
    );
}

/// `custody audit cloudtrail` on the daemon's export of this ledger: a root console sign-in
/// (the record shape of the AWS CloudTrail User Guide, "AWS Management Console sign-in events")
/// 20 s after the code released over PC/SC is explained by that request, and a second one is not.
fn cloudtrail_explains_the_release(
    export: &[u8],
    key: &str,
    request: &mfa_custody::custody::RequestId,
) {
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("export.jsonl");
    std::fs::write(&file, export).expect("write the export");
    let released = String::from_utf8_lossy(export)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["kind"] == "code.released")
        .and_then(|v| v["time"].as_i64())
        .expect("code.released in the export");
    let sign_in = |id: &str, ms: i64| {
        serde_json::json!({
            "eventVersion": "1.10", "eventID": id, "eventType": "AwsConsoleSignIn",
            "userIdentity": {"type": "Root", "accountId": domain::ACCOUNT,
                             "arn": format!("arn:aws:iam::{}:root", domain::ACCOUNT)},
            "eventTime": mfa_custody::custody::report::utc(ms).replace(' ', "T"),
            "eventSource": "signin.amazonaws.com", "eventName": "ConsoleLogin",
            "responseElements": {"ConsoleLogin": "Success"},
            "additionalEventData": {"MobileVersion": "No", "MFAUsed": "Yes"},
            "recipientAccountId": domain::ACCOUNT
        })
    };
    let trail = dir.path().join("trail.json");
    let records = [
        sign_in("s1", released + 20_000),
        sign_in("s2", released + 40_000),
    ];
    std::fs::write(
        &trail,
        serde_json::json!({ "Records": records }).to_string(),
    )
    .expect("write the trail");
    let (code, out, err) = support::custody(&[
        "--json",
        "audit",
        "cloudtrail",
        "--export",
        &file.to_string_lossy(),
        "--pubkey",
        key,
        &trail.to_string_lossy(),
    ]);
    assert_eq!(code, 1, "the second sign-in is a finding: {out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["explained"][0]["event_id"], "s1", "{v}");
    assert_eq!(v["explained"][0]["request"], request.to_string(), "{v}");
    assert_eq!(v["findings"][0]["kind"], "unexplained_root_sign_in", "{v}");
    assert_eq!(v["findings"][0]["event_id"], "s2", "{v}");
}

/// A plain PC/SC client that does not VALIDATE gets nothing listed: LIST answers 6982.
fn assert_list_needs_validate(slot: u8) {
    use mfa_custody::token::apdu::StatusWord;
    use mfa_custody::token::oath::{list, session::transact, OathSession, Selected};
    use mfa_custody::token::pcsc::PcscContext;
    use mfa_custody::token::TokenError;
    let reader = support::reader_name(slot);
    let ctx = PcscContext::establish().expect("pcscd");
    let card = ctx.connect(&reader).expect("card");
    let Selected::Locked(locked) = OathSession::select(card).expect("select") else {
        panic!("the OATH applet in {reader} is not locked after enrolment");
    };
    let mut card = locked.into_transport();
    match transact(&mut card, &list()) {
        Err(TokenError::Refused { ins: 0xA1, sw, .. }) => {
            assert_eq!(sw, StatusWord::SecurityStatusNotSatisfied, "{reader}")
        }
        other => panic!("LIST without VALIDATE in {reader}: {other:?}"),
    }
    let _ = card.disconnect(false);
}

/// Once a key is retired, a plain PC/SC client lists its credential without VALIDATE.
fn assert_list_without_validate(slot: u8) {
    use mfa_custody::token::oath::{OathSession, Selected};
    use mfa_custody::token::pcsc::PcscContext;
    let reader = support::reader_name(slot);
    let ctx = PcscContext::establish().expect("pcscd");
    let card = ctx.connect(&reader).expect("card");
    let Selected::Ready(mut s) = OathSession::select(card).expect("select") else {
        panic!("the OATH applet in {reader} still asks for an access key after retiring");
    };
    assert!(
        !s.list().expect("LIST").is_empty(),
        "{reader}: credential listed"
    );
}
