//! What a reader sees of a request over time: after one approval `request show` gives the end
//! of the approval window (the approval lifetime, 15 minutes, after the first approval); past
//! the request's lifetime (an hour) `request list` and `request show` call it `expired`,
//! although nothing has touched its record yet, and `--json` says the same.

use crate::support::daemon::{user_pass, world};

#[test]
fn an_old_request_reads_as_expired_and_show_gives_the_approval_window() {
    let mut w = world();
    w.add_account("alice");
    let r = w.request_code(true, "rotate the root password after the audit");
    assert_eq!(r.code, 0, "{}", r.err);
    let id = r.json()["request"]["id"].as_str().expect("id").to_owned();

    let show = |w: &crate::support::daemon::World| w.ok(&["request", "show", &id], "").out;
    assert!(
        !show(&w).contains("window"),
        "no approval, no window:\n{}",
        show(&w)
    );
    let c = w.code("bob");
    let r = w.custody4(
        &[
            "approve",
            &id,
            "--as",
            "bob",
            "--passphrase-fd",
            "3",
            "--totp-fd",
            "4",
        ],
        &format!("{}\n", user_pass("bob")),
        &format!("{c}\n"),
    );
    assert_eq!(r.code, 0, "{}{}", r.out, r.err);
    let j = w.ok(&["--json", "request", "show", &id], "").json();
    let approved_at = j["request"]["approvals"][0]["at_ms"].as_i64().expect("at");
    assert_eq!(
        j["request"]["approvals_valid_until_ms"].as_i64(),
        Some(approved_at + 15 * 60 * 1000),
        "{j}"
    );
    let until = j["request"]["approvals_valid_until_ms"]
        .as_i64()
        .expect("until");
    let shown = show(&w);
    let line = shown
        .lines()
        .find(|l| l.starts_with("window"))
        .unwrap_or_else(|| panic!("a window line:\n{shown}"));
    let secs = until / 1000;
    let rfc = std::process::Command::new("date")
        .args(["-u", "-d", &format!("@{secs}"), "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .expect("date");
    let rfc = String::from_utf8_lossy(&rfc.stdout).trim().to_owned();
    assert!(line.contains(&rfc), "{line} names {rfc}");
    assert_eq!(j["request"]["status"], "pending");

    // An hour and a minute later, untouched: expired for every reader.
    w.clock.advance(61 * 60 * 1000);
    // erin's reading session ended with the hour too.
    w.ok(
        &["login", "--as", "erin", "--no-totp", "--passphrase-fd", "3"],
        &format!("{}\n", user_pass("erin")),
    );
    let j = w.ok(&["--json", "request", "show", &id], "").json();
    assert_eq!(j["request"]["status"], "expired", "{j}");
    assert!(
        j["request"].get("approvals_valid_until_ms").is_none(),
        "{j}"
    );
    let list = w.ok(&["request", "list"], "").out;
    let row = list
        .lines()
        .find(|l| l.contains(&id))
        .unwrap_or_else(|| panic!("{list}"));
    assert!(row.contains("expired"), "{row}");
    assert!(!row.contains("pending"), "{row}");
}
