//! Free text that could make a screen lie (line breaks, bidi controls, invisible characters) is
//! refused by every operation that records it, and nothing is written.

use super::*;

fn invalid(r: Result<impl std::fmt::Debug, CustodyError>, field: &str, code_point: &str) {
    let e = r.expect_err("refused");
    assert!(matches!(e, CustodyError::Invalid { .. }), "{e:?}");
    let m = e.to_string();
    assert!(m.starts_with(&format!("invalid {field} ")), "{m}");
    assert!(m.contains(code_point), "{m}");
}

#[test]
fn fail_a_reason_that_forges_lines_or_reverses_text_is_refused() {
    let mut w = World::new().with_enrolled_account();
    let s = w.login("oscar");
    for (bad, cp) in [
        (format!("{REASON}\nrequester alice"), "U+000A"),
        (format!("{REASON} \u{202e}txet"), "U+202E"),
        (format!("{REASON}\u{200b}"), "U+200B"),
        (format!("{REASON}\u{1b}[2J"), "U+001B"),
    ] {
        invalid(
            w.custody.create_request(
                &s,
                NewRequest {
                    account: AccountId::parse(ACCOUNT).expect("id"),
                    task: "change-root-password".into(),
                    ticket: "SEC-42".into(),
                    reason: bad,
                },
            ),
            "reason",
            cp,
        );
    }
    assert!(w.bodies(store::kinds::REQUEST_CREATED).is_empty());
}

#[test]
fn fail_a_deny_note_with_unsafe_characters_is_refused_and_the_request_stays_open() {
    let mut w = World::new().with_enrolled_account();
    let r = w.new_request("oscar");
    let bob = w.login("bob");
    invalid(
        w.custody.deny(&bob, &r.id, "no \u{202e}wodniw egnahc"),
        "note",
        "U+202E",
    );
    invalid(
        w.custody.deny(&bob, &r.id, "no\n\u{1b}[31mapproved"),
        "note",
        "U+000A",
    );
    assert_eq!(
        w.custody.request(&r.id).expect("r").status,
        RequestStatus::Pending
    );
    assert!(w.bodies(store::kinds::REQUEST_DENIED).is_empty());
    let rec = w
        .custody
        .deny(&bob, &r.id, "no change window")
        .expect("a plain note");
    assert_eq!(rec.status, RequestStatus::Denied);
    assert_eq!(
        w.bodies(store::kinds::REQUEST_DENIED)[0]["note"],
        "no change window"
    );
}

#[test]
fn fail_incident_notes_and_details_with_unsafe_characters_are_refused() {
    let mut w = World::new().with_enrolled_account();
    let a = w.login("alice");
    let b = w.login("bob");
    invalid(
        w.custody
            .report_incident(&a, Some(serial(PRIMARY)), "bag torn\u{2028}all fine"),
        "incident detail",
        "U+2028",
    );
    assert!(w.custody.incidents().expect("list").is_empty());
    let id = w
        .custody
        .report_incident(&a, Some(serial(PRIMARY)), "bag torn")
        .expect("plain detail");
    invalid(
        w.custody
            .acknowledge_incident(&a, &b, &id, "ok\u{1b}]0;pwned\u{7}"),
        "note",
        "U+001B",
    );
    assert!(w.custody.incident(&id).expect("i").open);
    assert!(w.bodies(store::kinds::INCIDENT_ACKNOWLEDGED).is_empty());
    let rec = w
        .custody
        .acknowledge_incident(&a, &b, &id, "bag replaced")
        .expect("plain note");
    assert!(!rec.open);
}

#[test]
fn fail_a_credential_name_with_unsafe_characters_is_refused() {
    let mut w = World::new();
    let a = w.login("alice");
    invalid(
        w.custody.register_account(
            &a,
            NewAccount {
                provider: Provider::Aws,
                account: Provider::Aws.parse_account_id(ACCOUNT).expect("id"),
                alias: Alias::parse("prod").expect("alias"),
                root_email: Email::parse("root@example.test").expect("email"),
                credential: crate::token::oath::CredentialName::parse("AWS:root\u{202e}")
                    .expect("the card layer takes any name"),
            },
        ),
        "credential",
        "U+202E",
    );
    assert!(w.custody.accounts().expect("list").is_empty());
}
