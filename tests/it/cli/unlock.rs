//! `custody user unlock`: after repeated wrong passphrases custodyd makes a user's next attempt
//! wait (minutes, on the test clock); two officers unlock the user and the right passphrase
//! is taken at once, while the wait would still run. The user's failed-attempt count is
//! cleared in the ledger.

use crate::support::daemon::{user_pass, world};

#[test]
fn two_officers_unlock_a_user_whose_attempts_custodyd_makes_wait() {
    let mut w = world();
    let login = |pass: &str| {
        vec![
            "login".to_owned(),
            "--as".into(),
            "dave".into(),
            "--no-totp".into(),
            "--passphrase-fd".into(),
            "3".into(),
            format!("{pass}\n"),
        ]
    };
    let try_login = |w: &crate::support::daemon::World, pass: &str| {
        let a = login(pass);
        let args: Vec<&str> = a[..6].iter().map(String::as_str).collect();
        w.custody(&args, &a[6])
    };
    // Wrong passphrases until the wait is over a minute (waits double: 1 s, 2 s, ... 64 s).
    let mut failures = 0;
    let mut wait = 0;
    while wait < 60 {
        let r = try_login(&w, "not dave's passphrase at all");
        assert_eq!(r.code, 1, "{}", r.err);
        if let Some(rest) = r.err.split("try again in ").nth(1) {
            wait = rest
                .split(' ')
                .next()
                .and_then(|n| n.parse::<i64>().ok())
                .expect("seconds");
            if wait < 60 {
                w.clock.advance(wait * 1000);
            }
        } else {
            assert!(
                r.err.contains("refused (authentication_failed)"),
                "{}",
                r.err
            );
            failures += 1;
        }
        assert!(failures < 20, "the wait never grew: {}", r.err);
    }
    let r = try_login(&w, &user_pass("dave"));
    assert_eq!(r.code, 1, "the right passphrase waits too: {}", r.err);
    assert!(r.err.contains("refused (throttled)"), "{}", r.err);
    let before = w.clock.now_ms();

    let (a, b) = (w.code("alice"), w.code("bob"));
    let r = w.custody4(
        &[
            "--json",
            "user",
            "unlock",
            "dave",
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
        &format!("{a}\n{b}\n"),
    );
    assert_eq!(r.code, 0, "{}{}", r.out, r.err);
    assert_eq!(r.json()["user"]["name"], "dave");
    assert_eq!(r.json()["user"]["failed_attempts"], 0, "{}", r.out);
    assert!(
        w.clock.now_ms() - before < wait * 1000,
        "the wait has not run out on its own"
    );
    let r = try_login(&w, &user_pass("dave"));
    assert_eq!(r.code, 0, "unlocked: {}", r.err);

    // Recorded: the ledger holds user.unlocked with the count cleared and both officers.
    w.ok(&["logout"], "");
    w.ok(
        &["login", "--as", "erin", "--no-totp", "--passphrase-fd", "3"],
        &format!("{}\n", user_pass("erin")),
    );
    let export = w.dir.path().join("unlock.jsonl");
    w.ok(&["export", "--out", export.to_str().expect("utf8")], "");
    let text = std::fs::read_to_string(&export).expect("export");
    let event = text
        .lines()
        .find(|l| l.contains("\"user.unlocked\""))
        .expect("a user.unlocked event");
    assert!(
        event.contains(&format!("\\\"failed_attempts\\\":{failures}"))
            || event.contains(&format!("\"failed_attempts\":{failures}")),
        "{event}"
    );
    assert!(event.contains("alice") && event.contains("bob"), "{event}");
}
