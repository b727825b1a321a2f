//! Strings that cannot lie on a screen, through the real `custody` CLI and a real `custodyd`: a
//! reason with a line break or a bidi override, a deny note with a terminal escape and an alias
//! with a zero-width space are refused with an error that names the field, the position and the
//! code point, and shows nothing that could itself forge the screen.

use crate::support;

use support::daemon::{account_add_args, request_status, user_pass, world, World};

const REASON: &str = "rotate the root password after the audit finding";

fn request(w: &World, reason: &str) -> support::daemon::Run {
    w.request_code(false, reason)
}

/// The refusal is exit status 2 (bad input) with one line on standard error naming what was
/// wrong, without the refused character itself.
fn refused(r: &support::daemon::Run, field: &str, at: usize, code_point: &str, raw: char) {
    assert_eq!(r.code, 2, "refused:\n{}\n{}", r.out, r.err);
    let e = r.err.trim_end();
    assert_eq!(e.lines().count(), 1, "{e}");
    for want in [
        format!("invalid {field} "),
        format!("character {at} "),
        code_point.to_owned(),
        format!("type the {field} again"),
    ] {
        assert!(e.contains(&want), "{want:?} in {e}");
    }
    assert!(!e.contains(raw), "{e:?} echoes {raw:?}");
}

#[test]
fn cli_refuses_a_reason_a_note_and_an_alias_that_could_forge_a_screen() {
    let mut w = world();
    w.room_in_step(5);

    let forged = format!("{REASON}\nrequester alice");
    refused(&request(&w, &forged), "reason", 49, "U+000A", '\n');
    let reversed = format!("{REASON} \u{202e}lamron");
    refused(&request(&w, &reversed), "reason", 50, "U+202E", '\u{202e}');
    let listed = w.ok(&["--json", "request", "list"], "").json();
    assert_eq!(listed["requests"], serde_json::json!([]), "{listed}");

    let c = w.code("alice");
    let alias = w.custody4(
        &account_add_args("prod\u{200b}", "AWS:prod-root", "alice"),
        &format!("{}\n", user_pass("alice")),
        &format!("{c}\n"),
    );
    refused(&alias, "alias", 5, "U+200B", '\u{200b}');

    w.add_account("bob");
    let ok = request(&w, REASON);
    assert_eq!(ok.code, 0, "{}\n{}", ok.out, ok.err);
    let id = ok
        .out
        .split_whitespace()
        .next()
        .expect("the request id")
        .to_owned();

    let c = w.code("carol");
    let deny = w.custody4(
        &[
            "deny",
            &id,
            "--note",
            "no\u{1b}[2Jchange window",
            "--as",
            "carol",
            "--passphrase-fd",
            "3",
            "--totp-fd",
            "4",
        ],
        &format!("{}\n", user_pass("carol")),
        &format!("{c}\n"),
    );
    refused(&deny, "note", 3, "U+001B", '\u{1b}');
    assert_eq!(request_status(&w, &id), "pending");
}
