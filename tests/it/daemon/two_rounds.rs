//! Two-round authentication through a real `custodyd` socket: a person sends their passphrase
//! alone; a right passphrase of someone with a second factor is refused
//! `factor_code_required` with a single-use continuation, not counted and not recorded; the
//! second round sends the continuation and the code. A wrong passphrase is a counted failure
//! that never says `factor_code_required`; a continuation used twice, by another peer, for
//! another person or after its lifetime (the daemon's clock, moved by the test) is refused
//! `continuation_invalid`. The tests run as root, as CI runs them (another uid's connection
//! comes from a thread that takes uid 65534 for itself alone).

use crate::support;

use serde_json::{json, Value};
use support::custodyd::{
    outcome, start_open_to_nobody, user_pass, Conn, Custodyd, Factors, NOBODY,
};

fn start() -> (tempfile::TempDir, Custodyd, Conn, Factors) {
    let (tmp, d) = start_open_to_nobody(&["alice", "bob"]);
    let mut c = d.connect();
    let mut f = d.factors();
    d.unseal_and_bootstrap(&mut c, &mut f, &[]);
    (tmp, d, c, f)
}

fn login(by: Value) -> Value {
    json!({"login": {"by": by}})
}

fn first_round(user: &str, passphrase: &str) -> Value {
    login(json!({"user": user, "passphrase": passphrase}))
}

fn second_round(user: &str, continuation: &str, code: &str) -> Value {
    login(json!({"user": user, "continuation": continuation, "factor": code}))
}

/// The continuation of a `factor_code_required` refusal.
fn continuation(r: &Value) -> String {
    assert_eq!(outcome(r), "forbidden/factor_code_required", "{r}");
    let c = r["result"]["err"]["continuation"]
        .as_str()
        .unwrap_or_else(|| panic!("no continuation: {r}"))
        .to_owned();
    assert!(
        c.len() == 64 && c.bytes().all(|b| b.is_ascii_hexdigit()),
        "{c}"
    );
    c
}

/// alice's failed attempts and the ledger's head, as bob (logged in) reads them.
fn alice_record(c: &mut Conn, f: &mut Factors) -> (u64, u64) {
    let token = c.login(f.auth("bob"));
    let r = c.call_as(json!("users"), &token);
    let alice = r["result"]["ok"]["users"]
        .as_array()
        .unwrap_or_else(|| panic!("users: {r}"))
        .iter()
        .find(|u| u["name"] == "alice")
        .cloned()
        .expect("alice");
    let s = c.call(json!("status"));
    let head = s["result"]["ok"]["status"]["head_seq"]
        .as_u64()
        .unwrap_or_else(|| panic!("status: {s}"));
    c.call_as(json!("logout"), &token);
    (
        alice["failed_attempts"].as_u64().expect("failed_attempts"),
        head,
    )
}

#[test]
fn a_right_passphrase_asks_for_the_code_uncounted_and_the_second_round_logs_in() {
    let (_tmp, d, mut c, mut f) = start();
    let (failed_before, _) = alice_record(&mut c, &mut f);
    let head_before = c.call(json!("status"))["result"]["ok"]["status"]["head_seq"].clone();
    let r = c.call(first_round("alice", &user_pass("alice")));
    let cont = continuation(&r);
    let m = r["result"]["err"]["message"].as_str().expect("message");
    assert!(m.contains("passphrase of alice is right"), "{m}");
    assert!(
        !m.contains(&cont),
        "the message carries no continuation: {m}"
    );
    assert_eq!(
        c.call(json!("status"))["result"]["ok"]["status"]["head_seq"],
        head_before,
        "a first round records nothing"
    );
    let code = f.code("alice").expect("alice has a factor");
    let r = c.call(second_round("alice", &cont, &code));
    assert_eq!(outcome(&r), "ok", "{r}");
    assert_eq!(r["result"]["ok"]["session"]["user"], "alice", "{r}");
    let (failed_after, _) = alice_record(&mut c, &mut f);
    assert_eq!(
        (failed_before, failed_after),
        (0, 0),
        "asking for the code counted nothing"
    );
    d.stop();
}

#[test]
fn a_wrong_passphrase_of_an_officer_is_a_counted_failure_and_never_asks_for_a_code() {
    let (_tmp, d, mut c, mut f) = start();
    let mut stranger = d.connect_as(NOBODY);
    for n in 1..=2 {
        // A stranger's guess, then alice's own typo: the same answer.
        let conn = if n == 1 { &mut stranger } else { &mut c };
        let r = conn.call(first_round("alice", "Guessed-Phrase-Number-7"));
        assert_eq!(outcome(&r), "forbidden/authentication_failed", "{r}");
        assert!(
            r["result"]["err"].get("continuation").is_none(),
            "a wrong passphrase gets no continuation: {r}"
        );
        let (failed, _) = alice_record(&mut c, &mut f);
        assert_eq!(failed, n, "each wrong passphrase counts");
    }
    // Right passphrase, no code: told only now, and the count stays where it was.
    let r = c.call(first_round("alice", &user_pass("alice")));
    continuation(&r);
    assert_eq!(alice_record(&mut c, &mut f).0, 2, "not counted");
    // An operator-like user with no factor never sees it: bob's passphrase with bob's code in
    // one round still works as before, and logs in at once.
    let r = c.call(login(f.auth("bob")));
    assert_eq!(outcome(&r), "ok", "one round with the code: {r}");
    d.stop();
}

#[test]
fn a_continuation_serves_once_its_own_peer_and_person_within_its_lifetime() {
    let (_tmp, d, mut c, mut f) = start();
    let pass = user_pass("alice");
    // Used twice: the second use is refused even with a fresh code.
    let cont = continuation(&c.call(first_round("alice", &pass)));
    let code = f.code("alice").expect("code");
    assert_eq!(outcome(&c.call(second_round("alice", &cont, &code))), "ok");
    let code = f.code("alice").expect("code");
    let r = c.call(second_round("alice", &cont, &code));
    assert_eq!(outcome(&r), "forbidden/continuation_invalid", "{r}");
    let m = r["result"]["err"]["message"].as_str().expect("message");
    assert!(m.contains("run the command again"), "{m}");

    // By another uid: refused, and ended for its owner too.
    let cont = continuation(&c.call(first_round("alice", &pass)));
    let code = f.code("alice").expect("code");
    let mut stranger = d.connect_as(NOBODY);
    let r = stranger.call(second_round("alice", &cont, &code));
    assert_eq!(outcome(&r), "forbidden/continuation_invalid", "{r}");
    let r = c.call(second_round("alice", &cont, &code));
    assert_eq!(outcome(&r), "forbidden/continuation_invalid", "{r}");

    // For another person: bob cannot finish alice's first round with his own code.
    let cont = continuation(&c.call(first_round("alice", &pass)));
    let code = f.code("bob").expect("code");
    let r = c.call(second_round("bob", &cont, &code));
    assert_eq!(outcome(&r), "forbidden/continuation_invalid", "{r}");

    // After its lifetime on the daemon's clock.
    let cont = continuation(&c.call(first_round("alice", &pass)));
    d.clock.advance(121_000);
    let code = f.code("alice").expect("code");
    let r = c.call(second_round("alice", &cont, &code));
    assert_eq!(outcome(&r), "forbidden/continuation_invalid", "{r}");
    assert!(
        r["result"]["err"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("older than 120 s")),
        "{r}"
    );

    // A wrong code in the second round is a failure like any other, and ends it.
    let before = alice_record(&mut c, &mut f).0;
    let cont = continuation(&c.call(first_round("alice", &pass)));
    let r = c.call(second_round("alice", &cont, "000000"));
    assert_eq!(outcome(&r), "forbidden/authentication_failed", "{r}");
    assert_eq!(alice_record(&mut c, &mut f).0, before + 1, "counted");
    // Refused continuations count with the throttle of (alice, this uid) too: that was the
    // fourth failure in a row, whose wait (1 s) passes first.
    let r = c.call(second_round("alice", &cont, "000000"));
    assert_eq!(outcome(&r), "forbidden/throttled", "{r}");
    d.clock.advance(1_000);
    let code = f.code("alice").expect("code");
    let r = c.call(second_round("alice", &cont, &code));
    assert_eq!(outcome(&r), "forbidden/continuation_invalid", "{r}");

    // A round is one or the other: passphrase and continuation together are refused.
    d.clock.advance(2_000);
    let cont = continuation(&c.call(first_round("alice", &pass)));
    let r = c.call(login(
        json!({"user": "alice", "passphrase": pass, "continuation": cont, "factor": "000000"}),
    ));
    assert_eq!(outcome(&r), "bad_request", "{r}");
    d.stop();
}
