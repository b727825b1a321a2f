//! A stranger on the socket against other people's secrets: no lockout of someone else, no
//! unbounded guessing, no unseal oracle. Real `custodyd`, connections from another uid
//! ([`support::custodyd::stream_as`]); the tests run as root, as CI runs them.

mod support;

use serde_json::{json, Value};
use support::custodyd::{
    outcome, tmp_open_to_nobody, unseal_pass, user_pass, Custodyd, Factors, NOBODY,
};

fn start(officers: &[&str]) -> (tempfile::TempDir, Custodyd) {
    assert!(
        rustix::process::geteuid().is_root(),
        "these tests connect as another uid and need root, as CI runs them"
    );
    let tmp = tmp_open_to_nobody();
    let d = Custodyd::start(
        tmp.path(),
        officers,
        "info",
        &format!("socket_group = \"{NOBODY}\"\n"),
    );
    (tmp, d)
}

fn wrong_seal(user: &str) -> Value {
    json!({"seal": {"by": {"user": user, "passphrase": "Guessed-Phrase-Number-7", "factor": "000000"}}})
}

/// Throttled attempts say so, with the peer's uid and when to try again.
fn assert_throttled(r: &Value, uid: u32) {
    assert_eq!(outcome(r), "forbidden/throttled", "{r}");
    let m = r["result"]["err"]["message"].as_str().expect("message");
    assert!(
        m.contains(&format!("uid {uid}")) && m.contains("try again in"),
        "{m}"
    );
}

#[test]
fn a_strangers_failures_never_lock_the_officer_out_and_the_stranger_is_slowed() {
    let (_tmp, d) = start(&["alice", "bob"]);
    let mut root = d.connect();
    let mut factors = Factors::default();
    d.unseal_and_bootstrap(&mut root, &mut factors, &[]);
    let mut stranger = d.connect_as(NOBODY);
    // The first failures are answered as failures: a typing mistake costs nothing.
    for n in 1..=4 {
        let r = stranger.call(wrong_seal("alice"));
        assert_eq!(
            outcome(&r),
            "forbidden/authentication_failed",
            "attempt {n}: {r}"
        );
    }
    // Then the stranger waits, and their next guess is refused without being checked.
    assert_throttled(&stranger.call(wrong_seal("alice")), NOBODY);
    // A second connection from the same uid does not get around it.
    assert_throttled(&d.connect_as(NOBODY).call(wrong_seal("alice")), NOBODY);
    // alice, at her own uid, is neither locked nor slowed: she seals at once.
    let r = root.call(json!({"seal": {"by": factors.auth("alice")}}));
    assert_eq!(
        outcome(&r),
        "ok",
        "alice seals after a stranger's guesses: {r}"
    );
    d.stop();
}

#[test]
fn unseal_shares_are_checked_when_offered_and_guessing_them_is_slowed() {
    let (_tmp, d) = start(&["alice", "bob"]);
    let mut stranger = d.connect_as(NOBODY);
    let guess = json!({"unseal": {"officer": "bob", "passphrase": "Guessed-Phrase-Number-7"}});
    for n in 1..=4 {
        let r = stranger.call(guess.clone());
        assert_eq!(outcome(&r), "unseal_failed", "guess {n}: {r}");
        let m = r["result"]["err"]["message"].as_str().expect("message");
        assert!(m.contains("bob") && m.contains("nothing was kept"), "{m}");
    }
    assert_throttled(&stranger.call(guess), NOBODY);
    // No guess was kept: the unseal has no share yet.
    let s = stranger.call(json!("status"));
    assert_eq!(
        s["result"]["ok"]["status"]["unseal_given"],
        json!([]),
        "{s}"
    );
    // The officers themselves, at their uid, unseal at once; the answer to one officer never
    // says whether another's share was right.
    let mut root = d.connect();
    let r = root.call(json!({"unseal": {"officer": "alice", "passphrase": unseal_pass("alice")}}));
    assert_eq!(outcome(&r), "ok", "{r}");
    let r = root.call(json!({"unseal": {"officer": "bob", "passphrase": unseal_pass("bob")}}));
    assert_eq!(r["result"]["ok"]["unseal"]["unsealed"], true, "{r}");
    // The failed shares are in the ledger with the uid they came from.
    let mut factors = Factors::default();
    for o in ["alice", "bob"] {
        let r = root.call(json!({"bootstrap_officer": {"user": o, "keyring_passphrase": unseal_pass(o), "passphrase": user_pass(o)}}));
        let seed = r["result"]["ok"]["factor"]["base32"]
            .as_str()
            .unwrap_or_else(|| panic!("bootstrap {o}: {r}"))
            .to_owned();
        factors.seeds.insert(o.to_owned(), seed);
    }
    let export = root.call(json!("export"));
    let content = export["result"]["ok"]["export"]["content"]
        .as_str()
        .unwrap_or_else(|| panic!("export: {export}"));
    let failed: Vec<Value> = content
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["kind"] == "ledger.unseal_failed")
        .collect();
    assert_eq!(failed.len(), 1, "{content}");
    let body = &failed[0]["body"];
    assert_eq!(body["attempts"], 4, "{body}");
    assert_eq!(body["peer_uids"], json!([NOBODY]), "{body}");
    d.stop();
}
