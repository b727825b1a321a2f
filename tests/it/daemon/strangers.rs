//! Strangers on the socket: no lockout of someone else, no unbounded guessing, no unseal
//! oracle, no approval landing on something the officer was not shown, and a `custody` CLI
//! that gives nothing to a socket custodyd does not serve. Real `custodyd` and `custody`;
//! connections and listeners of another uid come from threads that take that uid alone
//! ([`support::custodyd::stream_as`]); the tests run as root, as CI runs them.

use crate::support;

use std::io::Read;
use std::os::unix::net::UnixListener;
use std::time::Duration;

use serde_json::{json, Value};
use support::custodyd::{
    outcome, seen, start_open_to_nobody, tmp_open_to_nobody, unseal_pass, user_pass, Custodyd,
    NOBODY,
};

fn start(officers: &[&str]) -> (tempfile::TempDir, Custodyd) {
    start_open_to_nobody(officers)
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
    let mut factors = d.factors();
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
fn an_officers_attempt_without_a_code_is_a_guess_like_any_other() {
    let (_tmp, d) = start(&["alice", "bob"]);
    let mut root = d.connect();
    let mut factors = d.factors();
    d.unseal_and_bootstrap(&mut root, &mut factors, &[]);
    let mut stranger = d.connect_as(NOBODY);
    for _ in 1..=4 {
        let r = stranger.call(wrong_seal("alice"));
        assert_eq!(outcome(&r), "forbidden/authentication_failed", "{r}");
    }
    assert_throttled(&stranger.call(wrong_seal("alice")), NOBODY);
    // Past the wait, an attempt without a code is checked like any other: whether alice has
    // a second factor is told only to a right passphrase, so this guess is a failure (never
    // factor_code_required), and neither free nor a pardon.
    d.clock.advance(2_000);
    let r = stranger
        .call(json!({"seal": {"by": {"user": "alice", "passphrase": "Guessed-Phrase-Number-8"}}}));
    assert_eq!(outcome(&r), "forbidden/authentication_failed", "{r}");
    assert!(r["result"]["err"].get("continuation").is_none(), "{r}");
    // It was the fifth failure in a row: the wait after it has grown (2 s).
    let r = stranger.call(wrong_seal("alice"));
    assert_throttled(&r, NOBODY);
    let m = r["result"]["err"]["message"].as_str().expect("message");
    assert!(m.starts_with("5 failed"), "{m}");
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
    let mut factors = d.factors();
    d.bootstrap(&mut root, &mut factors, &[]);
    let session = root.login(factors.auth("alice"));
    let export = root.call_as(json!("export"), &session);
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

#[test]
fn an_approval_lands_only_on_what_the_officer_was_shown() {
    let (_tmp, d) = start(&["alice", "bob", "carol"]);
    let mut c = d.connect();
    let mut f = d.factors();
    d.unseal_and_bootstrap(&mut c, &mut f, &[]);
    let r = c.call(json!({"user_add": {"by": [f.auth("alice")], "name": "dave", "roles": ["operator"], "passphrase": user_pass("dave")}}));
    assert_eq!(outcome(&r), "ok", "{r}");
    let r = c.call(json!({"account_add": {"by": f.auth("bob"), "provider": "aws", "account": "123456789012", "alias": "prod-root", "root_email": "root@example.test", "credential": "AWS:root@example.test"}}));
    assert_eq!(outcome(&r), "ok", "{r}");
    let dave = json!({"user": "dave", "passphrase": user_pass("dave")});
    let mut ids = Vec::new();
    let mut records = Vec::new();
    for reason in [
        "rotate the root password after the audit finding",
        "close the account: the project ended in November",
    ] {
        let r = c.call(json!({"request_code": {"by": dave.clone(), "account": "123456789012", "task": "change-root-password", "ticket": "SEC-42", "reason": reason}}));
        ids.push(
            r["result"]["ok"]["request"]["id"]
                .as_str()
                .expect("id")
                .to_owned(),
        );
        records.push(r["result"]["ok"]["request"].clone());
    }
    // carol read the first request; a relay sends her approval to the second one.
    let shown = seen(&records[0]);
    let r = c.call(json!({"approve": {"by": f.auth("carol"), "request": ids[1], "seen": shown}}));
    assert_eq!(outcome(&r), "refused/approval_mismatch", "{r}");
    let m = r["result"]["err"]["message"].as_str().expect("message");
    assert!(m.contains(&ids[1]) && m.contains("show it again"), "{m}");
    let session = c.login(f.auth("alice"));
    for id in &ids {
        let r = c.call_as(json!({"request_show": {"request": id}}), &session);
        assert_eq!(r["result"]["ok"]["request"]["approvals"], json!([]), "{r}");
    }
    // A request line without the digest is not an approval at all.
    let r = d
        .connect()
        .call_any_id(json!({"approve": {"by": f.auth_unspent("carol"), "request": ids[0]}}));
    assert_eq!(outcome(&r), "bad_request", "{r}");
    // Without `by`, only a session opened within the minute approves: a stranger without one
    // is asked to authenticate; an older login is not fresh proof.
    let shown0 = seen(&records[0]);
    let r = d
        .connect_as(NOBODY)
        .call(json!({"approve": {"request": ids[0], "seen": shown0}}));
    assert_eq!(outcome(&r), "forbidden/authentication_required", "{r}");
    let bob = c.login(f.auth("bob"));
    d.clock.advance(61_000);
    let r = c.call_as(
        json!({"approve": {"request": ids[0], "seen": shown0}}),
        &bob,
    );
    assert_eq!(outcome(&r), "forbidden/proof_not_fresh", "{r}");
    let bob = c.login(f.auth("bob"));
    let r = c.call_as(
        json!({"approve": {"request": ids[0], "seen": shown0}}),
        &bob,
    );
    assert_eq!(outcome(&r), "ok", "a fresh login approves: {r}");
    assert_eq!(
        r["result"]["ok"]["request"]["approvals"][0]["officer"],
        "bob"
    );
    d.stop();
}

/// A socket served by uid [`NOBODY`] in `dir`: answers nothing and counts the bytes it is sent.
fn impostor(dir: &std::path::Path) -> (std::path::PathBuf, std::sync::mpsc::Receiver<usize>) {
    let sub = dir.join("impostor");
    std::fs::create_dir(&sub).expect("dir");
    rustix::fs::chown(
        &sub,
        Some(rustix::fs::Uid::from_raw(NOBODY)),
        Some(rustix::fs::Gid::from_raw(NOBODY)),
    )
    .expect("chown");
    let path = sub.join("custodyd.sock");
    let (tx, rx) = std::sync::mpsc::channel();
    let p = path.clone();
    let (ready_tx, ready) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let gid = rustix::process::Gid::from_raw(NOBODY);
        rustix::thread::set_thread_res_gid(gid, gid, gid).expect("setresgid on this thread");
        let uid = rustix::process::Uid::from_raw(NOBODY);
        rustix::thread::set_thread_res_uid(uid, uid, uid).expect("setresuid on this thread");
        let l = UnixListener::bind(&p).expect("bind as nobody");
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o666))
            .expect("chmod");
        ready_tx.send(()).expect("ready");
        while let Ok((mut s, _)) = l.accept() {
            s.set_read_timeout(Some(Duration::from_millis(500)))
                .expect("timeout");
            let mut got = Vec::new();
            let _ = s.read_to_end(&mut got);
            if tx.send(got.len()).is_err() {
                break;
            }
        }
    });
    ready.recv().expect("impostor listening");
    (path, rx)
}

#[test]
fn the_cli_sends_nothing_to_a_socket_another_user_serves() {
    let tmp = tmp_open_to_nobody();
    let (socket, received) = impostor(tmp.path());
    let s = socket.to_string_lossy().into_owned();
    for (args, stdin) in [
        (vec!["--socket", &s, "status"], ""),
        (
            vec![
                "--socket",
                &s,
                "unseal",
                "--officer",
                "alice",
                "--passphrase-fd",
                "0",
            ],
            "alice-Unseal-Phrase-1\n",
        ),
    ] {
        let (code, _, err) = support::custody_stdin(&args, stdin);
        assert_eq!(code, 5, "{args:?}: {err}");
        assert!(
            err.contains("refusing to talk to")
                && err.contains(&format!("uid {NOBODY}"))
                && err.contains("nothing was sent"),
            "{err}"
        );
        let got = received
            .recv_timeout(Duration::from_secs(5))
            .expect("the impostor saw the connection");
        assert_eq!(got, 0, "{args:?}: the impostor was sent {got} bytes");
    }
}

#[test]
fn a_pinned_ledger_id_refuses_any_other_daemon() {
    let (_tmp, d) = start(&["alice", "bob"]);
    let s = d.socket.to_string_lossy().into_owned();
    // Sealed: custody status answers with its own status 6.
    let (code, out, err) = support::custody(&["--socket", &s, "--json", "status"]);
    assert_eq!(code, 6, "{out}{err}");
    let v: Value = serde_json::from_str(&out).expect("json");
    let ours = v["status"]["ledger_id"]
        .as_str()
        .expect("ledger id")
        .to_owned();
    let (code, out, err) = support::custody(&["--socket", &s, "--ledger-id", &ours, "status"]);
    assert_eq!(code, 6, "the right ledger, sealed: {out}{err}");
    let other = "ab".repeat(16);
    let (code, out, err) = support::custody(&["--socket", &s, "--ledger-id", &other, "status"]);
    assert_eq!(code, 5, "another ledger: {out}{err}");
    assert!(err.contains("wrong_ledger") && err.contains(&ours), "{err}");
    let (code, _, err) = support::custody(&["--socket", &s, "--ledger-id", "not-hex", "status"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("32 hex digits"), "{err}");
    d.stop();
}

#[test]
fn a_flood_of_free_refusals_writes_a_few_events_not_one_each() {
    let (_tmp, d) = start(&["alice", "bob"]);
    let mut root = d.connect();
    let mut f = d.factors();
    d.unseal_and_bootstrap(&mut root, &mut f, &[]);
    let head = |c: &mut support::custodyd::Conn| {
        c.call(json!("status"))["result"]["ok"]["status"]["head_seq"]
            .as_u64()
            .expect("head")
    };
    let before = head(&mut root);
    let mut stranger = d.connect_as(NOBODY);
    const FLOOD: usize = 300;
    for i in 0..FLOOD {
        let r = stranger.call(json!({"seal": {"by": {"user": format!("nobody{i}"), "passphrase": "Guessed-Phrase-Number-7", "factor": "000000"}}}));
        assert_eq!(outcome(&r), "not_found/unknown_user", "{r}");
        let r = stranger.call(json!({"bootstrap_officer": {"user": format!("mallory{i}"), "keyring_passphrase": "Guessed-Phrase-Number-7", "passphrase": "Another-Phrase-Number-8"}}));
        assert_eq!(outcome(&r), "forbidden/not_an_officer", "{r}");
    }
    let after = head(&mut root);
    assert!(
        after - before <= 4,
        "{} refusals wrote {} events",
        2 * FLOOD,
        after - before
    );
    // Sealing records what was counted: nothing is lost, only folded.
    let r = root.call(json!({"seal": {"by": f.auth("alice")}}));
    assert_eq!(outcome(&r), "ok", "{r}");
    let mut c = d.connect();
    d.unseal(&mut c);
    let session = c.login(f.auth("bob"));
    let export = c.call_as(json!("export"), &session);
    let content = export["result"]["ok"]["export"]["content"]
        .as_str()
        .unwrap_or_else(|| panic!("export: {export}"));
    let counted: Vec<Value> = content
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["kind"] == "custody.refusals_counted")
        .map(|e| e["body"].clone())
        .collect();
    let total: u64 = counted.iter().filter_map(|b| b["count"].as_u64()).sum();
    assert_eq!(
        total,
        2 * FLOOD as u64 - 2,
        "the repeats, counted: {counted:?}"
    );
    assert!(
        counted
            .iter()
            .any(|b| b["refusal"] == "unknown_user" && b["peer_uid"] == NOBODY),
        "{counted:?}"
    );
    d.stop();
}

#[test]
fn only_a_keyring_officer_resets_a_half_done_unseal() {
    let (_tmp, d) = start(&["alice", "bob", "carol"]);
    let mut root = d.connect();
    let r = root.call(json!({"unseal": {"officer": "alice", "passphrase": unseal_pass("alice")}}));
    assert_eq!(outcome(&r), "ok", "{r}");
    let given = |c: &mut support::custodyd::Conn| {
        c.call(json!("status"))["result"]["ok"]["status"]["unseal_given"].clone()
    };
    // A stranger cannot throw away alice's share: no passphrase, or a guessed one.
    let mut stranger = d.connect_as(NOBODY);
    let r = stranger.call_any_id(json!("unseal_reset"));
    assert_eq!(outcome(&r), "bad_request", "{r}");
    let mut stranger = d.connect_as(NOBODY);
    let r = stranger
        .call(json!({"unseal_reset": {"officer": "bob", "passphrase": "Guessed-Phrase-Number-7"}}));
    assert_eq!(outcome(&r), "unseal_failed", "{r}");
    assert_eq!(given(&mut root), json!(["alice"]));
    // carol, a keyring officer, resets it with her own passphrase, through the CLI.
    let s = d.socket.to_string_lossy().into_owned();
    let (code, text, err) = support::custody_stdin(
        &[
            "--socket",
            &s,
            "unseal",
            "--reset",
            "--officer",
            "carol",
            "--passphrase-fd",
            "0",
        ],
        &format!("{}\n", unseal_pass("carol")),
    );
    assert_eq!(code, 0, "{text}{err}");
    assert!(text.contains("Unseal reset by carol"), "{text}");
    assert_eq!(given(&mut root), json!([]));
    d.stop();
}

/// A stranger without alice's passphrase gets no presence challenge of hers (each try is a
/// failed authentication, then throttled), so cannot use up the challenges she holds; alice,
/// at her own uid, is not slowed. A signature in the `by` of a one-officer operation is a bad
/// request naming the field.
#[test]
fn a_stranger_gets_no_presence_challenge_of_an_officer_and_one_officer_operations_take_no_signature(
) {
    let (_tmp, d) = start(&["alice", "bob"]);
    let mut root = d.connect();
    let mut factors = d.factors();
    d.unseal_and_bootstrap(&mut root, &mut factors, &[]);
    let mut stranger = d.connect_as(NOBODY);
    let digest = "0".repeat(64);
    for n in 1..=6 {
        let r = stranger.call(json!({"presence_challenge": {"by": {"user": "alice", "passphrase": "Guessed-Phrase-Number-7"}, "digest": digest}}));
        let o = outcome(&r);
        assert!(
            o == "forbidden/authentication_failed" || o == "forbidden/throttled",
            "attempt {n}: {r}"
        );
        assert!(
            r["result"].get("ok").is_none(),
            "a nonce for a stranger: {r}"
        );
    }
    let r = root.call(json!({"presence_challenge": {"by": {"user": "alice", "passphrase": user_pass("alice")}, "digest": digest}}));
    assert_eq!(
        outcome(&r),
        "refused/signing_key_not_registered",
        "alice is answered as herself: {r}"
    );
    let signed =
        json!({"key_id": "0".repeat(64), "nonce": "1".repeat(64), "signature": "MEUCIQ=="});
    let r = stranger.call(json!({"deny": {"by": {"user": "alice", "passphrase": "x", "signed": signed}, "request": "req-00000000000000aa", "note": "n"}}));
    assert_eq!(outcome(&r), "bad_request", "{r}");
    let m = r["result"]["err"]["message"].as_str().expect("message");
    assert!(m.contains("by.signed"), "{m}");
}
