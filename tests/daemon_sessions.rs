//! Login sessions and read authorisation through a real `custodyd` socket: anonymous reads are
//! refused with what to do, an operator sees only their own requests, a token is refused from
//! another uid (and that session ends), after `logout`, after its idle and absolute lifetimes
//! (short ones configured here), and after the daemon seals; a session serves the person's
//! own cancel but never stands in for `by`.
//!
//! The tests run as root, as CI runs them: a connection from another uid is made by a thread
//! that takes uid and gid 65534 for itself alone (see tests/daemon_peers.rs).

mod support;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use support::custodyd::{outcome, user_pass, Conn, Custodyd, Factors};

const ACCOUNT: &str = "123456789012";
const NOBODY: u32 = 65534;

fn message(r: &Value) -> String {
    r["result"]["err"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// An unsealed daemon with officers alice, bob and carol, operators oscar and rita, auditor erin,
/// one account, and a request each by oscar and rita.
struct Scene {
    d: Custodyd,
    c: Conn,
    f: Factors,
    oscar_req: String,
    rita_req: String,
}

fn scene(dir: &Path, extra: &str) -> Scene {
    let d = Custodyd::start(dir, &["alice", "bob", "carol"], "info", extra);
    let mut c = d.connect();
    let mut f = Factors::default();
    d.unseal_and_bootstrap(&mut c, &mut f, &[]);
    for (who, role, by) in [
        ("oscar", "operator", "alice"),
        ("rita", "operator", "bob"),
        ("erin", "auditor", "alice"),
    ] {
        let by = f.auth(by);
        let r = c.call(json!({"user_add": {"by": [by], "name": who, "roles": [role], "passphrase": user_pass(who)}}));
        assert_eq!(outcome(&r), "ok", "add {who}: {r}");
    }
    let by = f.auth("bob");
    let r = c.call(json!({"account_add": {"by": by, "provider": "aws", "account": ACCOUNT, "alias": "prod", "root_email": "root@example.test", "credential": "AWS:root@example.test"}}));
    assert_eq!(outcome(&r), "ok", "{r}");
    let mut ids = Vec::new();
    for who in ["oscar", "rita"] {
        let by = f.auth(who);
        let r = c.call(json!({"request_code": {"by": by, "account": ACCOUNT, "task": "change-root-password", "ticket": "SEC-42", "reason": "rotate the root password after the audit"}}));
        assert_eq!(outcome(&r), "ok", "{r}");
        ids.push(
            r["result"]["ok"]["request"]["id"]
                .as_str()
                .expect("id")
                .to_owned(),
        );
    }
    Scene {
        d,
        c,
        f,
        rita_req: ids.pop().expect("rita's"),
        oscar_req: ids.pop().expect("oscar's"),
    }
}

#[test]
fn anonymous_reads_are_refused_with_the_operation_the_role_and_what_to_do() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut s = scene(tmp.path(), "");
    for op in [
        "users",
        "requests",
        "export",
        "devices",
        "incidents",
        "accounts",
        "checkpoint",
    ] {
        let r = s.c.call(json!(op));
        assert_eq!(
            outcome(&r),
            "forbidden/authentication_required",
            "{op}: {r}"
        );
        let m = message(&r);
        assert!(
            m.starts_with(&format!("{op} needs an authenticated user")),
            "{m}"
        );
        assert!(
            m.contains("run custody login first, or pass --as USER"),
            "{m}"
        );
    }
    let m = message(&s.c.call(json!("export")));
    assert!(m.contains("officer, auditor"), "{m}");
    let r = s.c.call(json!({"request_show": {"request": s.rita_req}}));
    assert_eq!(outcome(&r), "forbidden/authentication_required", "{r}");
    // A token nobody issued is no better than none.
    let r = s.c.call_as(json!("users"), &"ab".repeat(32));
    assert_eq!(outcome(&r), "forbidden/session_unknown", "{r}");
    // The minimal status stays anonymous.
    let r = s.c.call(json!("status"));
    assert_eq!(outcome(&r), "ok", "{r}");
    assert_eq!(r["result"]["ok"]["status"]["sealed"], json!(false));
    s.d.stop();
}

#[test]
fn an_operator_sees_only_their_own_requests_and_no_inventory() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut s = scene(tmp.path(), "");
    let by = s.f.auth("oscar");
    let t = s.c.login(by);
    let r = s.c.call_as(json!("requests"), &t);
    assert_eq!(outcome(&r), "ok", "{r}");
    let listed: Vec<&str> = r["result"]["ok"]["requests"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|q| q["id"].as_str())
        .collect();
    assert_eq!(listed, [s.oscar_req.as_str()], "only oscar's own");
    let r =
        s.c.call_as(json!({"request_show": {"request": s.oscar_req}}), &t);
    assert_eq!(outcome(&r), "ok", "{r}");
    let r =
        s.c.call_as(json!({"request_show": {"request": s.rita_req}}), &t);
    assert_eq!(outcome(&r), "forbidden/not_the_requester", "{r}");
    let m = message(&r);
    assert!(
        m.contains(&s.rita_req) && m.contains("operators see only their own"),
        "{m}"
    );
    for op in ["users", "devices", "export"] {
        let r = s.c.call_as(json!(op), &t);
        assert_eq!(outcome(&r), "forbidden/role_required", "{op}: {r}");
        assert!(message(&r).contains("oscar holds operator"), "{r}");
    }
    let r = s.c.call_as(json!("accounts"), &t);
    assert_eq!(
        outcome(&r),
        "ok",
        "an operator names the account they ask for: {r}"
    );
    // An auditor sees both.
    let by = s.f.auth("erin");
    let e = s.c.login(by);
    let r = s.c.call_as(json!("requests"), &e);
    assert_eq!(
        r["result"]["ok"]["requests"].as_array().map(Vec::len),
        Some(2),
        "{r}"
    );
    // A session serves the operator's own cancel, never another's, and never a `by` operation.
    let r = s.c.call_as(json!({"cancel": {"request": s.rita_req}}), &t);
    assert_eq!(outcome(&r), "forbidden/not_the_requester", "{r}");
    let r = s.c.call_as(json!({"cancel": {"request": s.oscar_req}}), &t);
    assert_eq!(outcome(&r), "ok", "{r}");
    assert_eq!(
        r["result"]["ok"]["request"]["status"],
        json!("cancelled"),
        "{r}"
    );
    s.d.stop();
}

fn tmp_open_to_nobody() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tmp");
    // Searchable by nobody, so it can reach the socket (group 65534, mode 0660).
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o711)).expect("chmod");
    tmp
}

fn connect_as_nobody(socket: &Path) -> UnixStream {
    let path = socket.to_path_buf();
    std::thread::spawn(move || {
        let gid = rustix::process::Gid::from_raw(NOBODY);
        rustix::thread::set_thread_res_gid(gid, gid, gid).expect("setresgid on this thread");
        let uid = rustix::process::Uid::from_raw(NOBODY);
        rustix::thread::set_thread_res_uid(uid, uid, uid).expect("setresuid on this thread");
        UnixStream::connect(&path)
    })
    .join()
    .expect("connecting thread")
    .expect("connect as nobody")
}

#[test]
fn a_token_from_another_uid_is_refused_and_ends_the_session() {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test connects as another uid: run it as root, as CI does"
    );
    let tmp = tmp_open_to_nobody();
    let mut s = scene(tmp.path(), &format!("socket_group = \"{NOBODY}\""));
    let by = s.f.auth("carol");
    let t = s.c.login(by);
    assert_eq!(outcome(&s.c.call_as(json!("users"), &t)), "ok");
    let mut other = Conn::from_stream(connect_as_nobody(&s.d.socket));
    let r = other.call(json!("status"));
    assert_eq!(
        r["result"]["ok"]["status"]["peer_uid"],
        json!(NOBODY),
        "{r}"
    );
    let r = other.call_as(json!("users"), &t);
    assert_eq!(outcome(&r), "forbidden/session_wrong_uid", "{r}");
    let m = message(&r);
    assert!(
        m.contains("uid 0") && m.contains(&format!("uid {NOBODY}")),
        "{m}"
    );
    assert!(!m.contains(&t), "the refusal never quotes the token");
    // The token left its owner: the session is over for the owner too.
    let r = s.c.call_as(json!("users"), &t);
    assert_eq!(outcome(&r), "forbidden/session_unknown", "{r}");
    let log = std::fs::read_to_string(&s.d.log).expect("log");
    assert!(
        log.contains("session token offered by another uid"),
        "{log}"
    );
    assert!(!log.contains(&t), "the log never holds a token");
    s.d.stop();
}

#[test]
fn logout_idle_and_absolute_lifetimes_end_a_session() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut s = scene(
        tmp.path(),
        "session_idle_secs = 2\nsession_absolute_secs = 4",
    );
    // Logout.
    let by = s.f.auth("erin");
    let t = s.c.login(by);
    let r = s.c.call_as(json!("whoami"), &t);
    assert_eq!(r["result"]["ok"]["session"]["user"], json!("erin"), "{r}");
    assert!(
        r["result"]["ok"]["session"].get("token").is_none(),
        "whoami never repeats the token"
    );
    let r = s.c.call_as(json!("logout"), &t);
    assert_eq!(
        r["result"]["ok"]["logged_out"]["user"],
        json!("erin"),
        "{r}"
    );
    let r = s.c.call_as(json!("export"), &t);
    assert_eq!(outcome(&r), "forbidden/session_unknown", "{r}");
    assert!(message(&r).contains("custody login"), "{r}");
    // Idle: unused for longer than 2 s.
    let by = s.f.auth("erin");
    let t = s.c.login(by);
    std::thread::sleep(Duration::from_millis(2600));
    let r = s.c.call_as(json!("users"), &t);
    assert_eq!(outcome(&r), "forbidden/session_expired", "{r}");
    assert!(message(&r).contains("idle"), "{r}");
    // Absolute: used every second, still ends at 4 s.
    let by = s.f.auth("erin");
    let t = s.c.login(by);
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(outcome(&s.c.call_as(json!("users"), &t)), "ok");
    }
    std::thread::sleep(Duration::from_millis(1300));
    let r = s.c.call_as(json!("users"), &t);
    assert_eq!(outcome(&r), "forbidden/session_expired", "{r}");
    assert!(message(&r).contains("older than 4 s"), "{r}");
    s.d.stop();
}

#[test]
fn sealing_ends_every_session_and_suspension_ends_the_persons() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut s = scene(tmp.path(), "");
    let by = s.f.auth("erin");
    let auditor = s.c.login(by);
    let by = s.f.auth("oscar");
    let operator = s.c.login(by);
    // Suspending oscar ends his session at once.
    let by = json!([s.f.auth("alice"), s.f.auth("bob")]);
    let r =
        s.c.call(json!({"user_set_active": {"by": by, "name": "oscar", "active": false}}));
    assert_eq!(outcome(&r), "ok", "{r}");
    let r = s.c.call_as(json!("accounts"), &operator);
    assert_eq!(outcome(&r), "forbidden/suspended", "{r}");
    assert_eq!(outcome(&s.c.call_as(json!("users"), &auditor)), "ok");
    // Seal, unseal: the auditor's session did not survive.
    let by = s.f.auth("carol");
    let r = s.c.call(json!({"seal": {"by": by}}));
    assert_eq!(outcome(&r), "ok", "{r}");
    let r = s.c.call_as(json!("users"), &auditor);
    assert_eq!(outcome(&r), "sealed", "{r}");
    s.d.unseal(&mut s.c);
    let r = s.c.call_as(json!("users"), &auditor);
    assert_eq!(outcome(&r), "forbidden/session_unknown", "{r}");
    s.d.stop();
}
