//! The root password under dual control: two officers store it sealed, a code release for a
//! task that needs it hands it to the requester beside the code once (`credential.released`,
//! never the value), and the account is then due a new one.

use zeroize::Zeroizing;

use super::*;

fn account_id() -> AccountId {
    AccountId::parse(ACCOUNT).expect("id")
}

fn set(w: &mut World, pw: &RootPassword, generated: bool) -> AccountRecord {
    let (a, b) = (w.login("alice"), w.login("bob"));
    w.custody
        .set_root_password(&a, &b, &account_id(), pw, generated)
        .expect("set")
}

fn release(w: &mut World, task: &str) -> ReleasedCode {
    let o = w.login("oscar");
    let r = w
        .custody
        .create_request(
            &o,
            NewRequest {
                account: account_id(),
                task: task.into(),
                ticket: "SEC-42".into(),
                reason: REASON.into(),
            },
        )
        .expect("request");
    w.approve(&r.id, "alice").expect("first");
    w.approve(&r.id, "bob").expect("second");
    let a = w.login("alice");
    let seal_now = match w.custody.device(serial(PRIMARY)).expect("d").state {
        DeviceState::InSafe { seal, .. } => seal,
        other => panic!("{other:?}"),
    };
    w.custody
        .check_out(&a, serial(PRIMARY), &seal_now, Some(&r.id))
        .expect("out");
    let code = w
        .custody
        .release_code(&o, &r.id, &mut w.keys)
        .expect("release");
    let next = format!("SEAL-P{}", w.kinds().len());
    w.custody
        .check_in(
            &a,
            &mut w.keys,
            serial(PRIMARY),
            seal(&next),
            Location::parse("safe 1").expect("loc"),
        )
        .expect("in");
    code
}

#[test]
fn the_password_is_released_once_beside_the_code_and_then_due_for_rotation() {
    let mut w = World::new().with_enrolled_account();
    let pw = RootPassword::generate().expect("generate");
    let text = pw.expose().to_owned();
    let rec = set(&mut w, &pw, true);
    assert!(rec.root_password && !rec.password_rotation_due);
    // A task that signs in with the password gets it, with the code.
    let code = release(&mut w, "change-contact");
    assert_eq!(
        code.password.as_ref().map(RootPassword::expose),
        Some(text.as_str())
    );
    assert!(
        !format!("{code:?}").contains(&text),
        "Debug shows no password"
    );
    let rec = w.custody.account(&account_id()).expect("account");
    assert!(rec.password_rotation_due);
    let released = w.bodies("credential.released");
    assert_eq!(released.len(), 1);
    assert_eq!(released[0]["credential"], "root_password");
    assert_eq!(released[0]["requester"], "oscar");
    let kinds = w.kinds();
    let code_at = kinds.iter().rposition(|k| k == "code.released");
    let cred_at = kinds.iter().rposition(|k| k == "credential.released");
    assert!(
        matches!((code_at, cred_at), (Some(c), Some(p)) if p == c + 1),
        "{kinds:?}"
    );
    // The report built from the verified export says the password is due for rotation.
    let (_, export) = w.bodies_and_export();
    let mut builder = crate::custody::report::ReportBuilder::new();
    let verified = crate::ledger::verify_export_observed(
        export.as_bytes(),
        &w.custody.ledger().public_key(),
        None,
        &mut |l| builder.observe(l),
    )
    .expect("verifies");
    let report = builder.finish(&verified, String::new());
    let acc = &report.accounts[ACCOUNT];
    assert_eq!(acc.password.as_deref(), Some("rotation due"));
    assert!(acc
        .events
        .iter()
        .any(|e| e.what.starts_with("root password released to oscar")));
    // Recovering a forgotten password signs in without it: the code alone.
    let code = release(&mut w, "recover-root-password");
    assert!(code.password.is_none());
    assert_eq!(w.bodies("credential.released").len(), 1);
    // A new password ends the rotation.
    let typed = RootPassword::parse(Zeroizing::new("Another-Root-Pass-7".into()), &rec)
        .expect("meets the rules");
    let rec = set(&mut w, &typed, false);
    assert!(rec.root_password && !rec.password_rotation_due);
    let body = w.bodies("account.password_set").pop().expect("event");
    assert_eq!(body["generated"], false);
    assert_eq!(body["replaced"], true);
    // Never in an event body, the export or a record outside its sealed one.
    let (plain, export) = w.bodies_and_export();
    for secret in [text.as_str(), "Another-Root-Pass-7"] {
        let b64 = data_encoding::BASE64.encode(secret.as_bytes());
        for needle in [secret, b64.as_str()] {
            assert!(!plain.contains(needle), "password in an event body");
            assert!(!export.contains(needle), "password in the export");
        }
    }
    assert!(export.contains("\"root_password\""), "redacted by name");
}

#[test]
fn a_typed_password_must_meet_the_root_password_rules() {
    let w = World::new().with_enrolled_account();
    let rec = w.custody.account(&account_id()).expect("account");
    for (pw, why) in [
        ("Sh0rt!", "to 128"),
        ("alllowercase", "at least three"),
        ("LowerAndUPPER", "at least three"),
        ("with space 1A", "printable ASCII"),
        ("ROOT@example.test", "e-mail"),
    ] {
        let e = RootPassword::parse(Zeroizing::new(pw.into()), &rec).expect_err(pw);
        assert_eq!(e.code(), "invalid_input");
        let shown = e.to_string();
        assert!(shown.contains(why), "{pw}: {shown}");
        assert!(
            !shown.contains(pw),
            "the error names the rule, not the password"
        );
    }
    let long: String = "Aa1!".repeat(33);
    assert!(RootPassword::parse(Zeroizing::new(long), &rec).is_err());
    assert!(RootPassword::parse(Zeroizing::new("lower-and-digit-1".into()), &rec).is_ok());
}

#[test]
fn setting_the_password_takes_two_officers_and_an_active_account() {
    let mut w = World::new().with_enrolled_account();
    let pw = RootPassword::generate().expect("generate");
    let a = w.login("alice");
    let e = w
        .custody
        .set_root_password(&a, &a, &account_id(), &pw, true)
        .expect_err("one officer");
    assert_eq!(e.code(), "same_officer_twice");
    let o = w.login("oscar");
    let e = w
        .custody
        .set_root_password(&a, &o, &account_id(), &pw, true)
        .expect_err("an operator");
    assert_eq!(e.code(), "not_an_officer");
    assert!(w.bodies("account.password_set").is_empty());
    let b = w.login("bob");
    w.custody
        .set_account_status(&a, &b, &account_id(), AccountStatus::Closed)
        .expect("close");
    let (a, b) = (w.login("alice"), w.login("bob"));
    let e = w
        .custody
        .set_root_password(&a, &b, &account_id(), &pw, true)
        .expect_err("closed");
    assert_eq!(e.code(), "account_not_active");
}
