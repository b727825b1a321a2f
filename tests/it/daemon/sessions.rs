//! Login sessions and read authorisation through a real `custodyd` socket: anonymous reads are
//! refused with what to do, an operator sees only their own requests, a token is refused from
//! another uid (and that session ends), after `logout`, after its idle and absolute lifetimes
//! (short ones configured here), and after the daemon seals; a session serves the person's
//! own cancel but never stands in for `by`.
//!
//! The tests run as root, as CI runs them: a connection from another uid is made by a thread
//! that takes uid and gid 65534 for itself alone (see tests/it/daemon/peers.rs).

use crate::support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::{json, Value};
use support::cli::Custody;
use support::custodyd::{outcome, tmp_open_to_nobody, user_pass, Conn, Custodyd, Factors, NOBODY};

const ACCOUNT: &str = "123456789012";

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
    let mut f = d.factors();
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
    let mut other = s.d.connect_as(NOBODY);
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
    s.d.clock.advance(2600);
    let r = s.c.call_as(json!("users"), &t);
    assert_eq!(outcome(&r), "forbidden/session_expired", "{r}");
    assert!(message(&r).contains("idle"), "{r}");
    // Absolute: used every second, still ends at 4 s.
    let by = s.f.auth("erin");
    let t = s.c.login(by);
    for _ in 0..3 {
        s.d.clock.advance(1100);
        assert_eq!(outcome(&s.c.call_as(json!("users"), &t)), "ok");
    }
    s.d.clock.advance(1300);
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

/// Every `records` entry of entity `credential` in an export's lines, as JSON values.
fn credential_records(content: &str) -> Vec<Value> {
    content
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .flat_map(|v| v["body"]["records"].as_array().cloned().unwrap_or_default())
        .filter(|r| r["entity"] == json!("credential"))
        .map(|r| r["record"].clone())
        .collect()
}

#[test]
fn exports_leave_credential_records_out_and_still_verify_offline() {
    use mfa_custody::ledger::chain::CheckpointPublicKey;
    use mfa_custody::ledger::verify::{verify_export, ExportProblem};
    let tmp = tempfile::tempdir().expect("tmp");
    let mut s = scene(tmp.path(), "");
    let by = s.f.auth("erin");
    let t = s.c.login(by);
    let r = s.c.call_as(json!("export"), &t);
    assert_eq!(outcome(&r), "ok", "{r}");
    let content = r["result"]["ok"]["export"]["content"]
        .as_str()
        .expect("content");
    let key = CheckpointPublicKey::parse(
        r["result"]["ok"]["export"]["public_key"]
            .as_str()
            .expect("key"),
    )
    .expect("key");
    // Every user's credential (alice, bob, carol, oscar, rita, erin) is a digest, nothing else.
    let creds = credential_records(content);
    assert_eq!(creds.len(), 6, "one per user: {creds:?}");
    for c in &creds {
        let obj = c.as_object().expect("object");
        assert_eq!(obj.len(), 1, "{c}");
        let d = c["redacted"].as_str().expect("a digest");
        assert!(d.starts_with("sha256:") && d.len() == 7 + 64, "{d}");
    }
    assert!(
        !content.contains("\"sealed\""),
        "no sealed credential in the export"
    );
    assert!(content.contains("\"type\":\"redacted\""));
    assert!(
        content.contains("\"redacted_entities\":[\"credential\",\"access_key\",\"management_key\",\"root_password\"]"),
        "the header says so"
    );
    let v = verify_export(content.as_bytes(), &key, None).expect("verifies offline");
    assert_eq!(v.redacted, 6);
    assert!(v.events > 0);
    // The shown body of a redacted event is signed: making oscar an officer there is caught.
    let forged = content.replacen("\"roles\":[\"operator\"]", "\"roles\":[\"officer\"]", 1);
    assert_ne!(forged, content);
    let e = verify_export(forged.as_bytes(), &key, None).expect_err("forged");
    assert!(
        matches!(e.problem, ExportProblem::BadRedactionSignature),
        "{e}"
    );
    s.d.stop();
}

/// How long a new session has left is counted on the daemon's clock, as the daemon will end it:
/// a host clock minutes away from custodyd's (here the daemon's test clock runs 10 minutes
/// ahead) never changes what `custody login` says.
#[test]
fn the_login_message_counts_the_session_on_the_daemons_clock() {
    let tmp = tempfile::tempdir().expect("tmp");
    let s = scene(
        tmp.path(),
        "session_idle_secs = 600\nsession_absolute_secs = 3600",
    );
    s.d.clock.advance(10 * 60_000);
    let xdg = tmp.path().join("run");
    std::fs::create_dir(&xdg).expect("xdg");
    std::fs::set_permissions(&xdg, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let out = custody(
        &xdg,
        &s.d.socket,
        &["login", "--as", "erin", "--no-totp", "--passphrase-fd", "3"],
        &user_pass("erin"),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("for up to 60 min (10 min unused ends it sooner)"),
        "{text}"
    );
    let out = custody(&xdg, &s.d.socket, &["--json", "whoami"], "");
    let v: Value = serde_json::from_slice(&out.stdout).expect("whoami --json");
    assert_eq!(
        v["expires_at_ms"].as_i64().expect("expires_at_ms"),
        s.d.clock.now_ms() + 3_600_000,
        "{v}"
    );
}

/// Runs `custody --socket SOCKET ARGS` with `XDG_RUNTIME_DIR` set to `xdg` and `fd3` (a
/// passphrase) on descriptor 3.
fn custody(xdg: &Path, socket: &Path, args: &[&str], fd3: &str) -> std::process::Output {
    Custody::new(args)
        .socket(socket)
        .fd3(&format!("{fd3}\n"))
        .files_in(xdg)
        .runtime_dir(xdg)
        .output()
}

#[test]
fn the_cli_logs_in_once_reads_with_the_session_and_writes_exports_0600() {
    use std::os::unix::fs::MetadataExt;
    let tmp = tempfile::tempdir().expect("tmp");
    let s = scene(tmp.path(), "");
    let xdg = tmp.path().join("run");
    std::fs::create_dir(&xdg).expect("xdg");
    std::fs::set_permissions(&xdg, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let sock = s.d.socket.clone();
    // No session: a clear refusal, before anything is asked.
    let out = custody(&xdg, &sock, &["user", "list"], "");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("custody user list needs an authenticated user: run custody login first, or pass --as USER"),
        "{err}"
    );
    // --as for one command: nothing is kept.
    let out = custody(
        &xdg,
        &sock,
        &[
            "--json",
            "user",
            "list",
            "--as",
            "erin",
            "--no-totp",
            "--passphrase-fd",
            "3",
        ],
        &user_pass("erin"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !xdg.join("custody").exists()
            || std::fs::read_dir(xdg.join("custody"))
                .expect("dir")
                .next()
                .is_none()
    );
    // Login: the token is in a 0600 file in a 0700 directory, never on the command line.
    let out = custody(
        &xdg,
        &sock,
        &["login", "--as", "erin", "--no-totp", "--passphrase-fd", "3"],
        &user_pass("erin"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = xdg.join("custody");
    assert_eq!(std::fs::metadata(&dir).expect("dir").mode() & 0o777, 0o700);
    let files: Vec<_> = std::fs::read_dir(&dir)
        .expect("dir")
        .map(|e| e.expect("e").path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(
        std::fs::metadata(&files[0]).expect("file").mode() & 0o777,
        0o600
    );
    let token = std::fs::read_to_string(&files[0]).expect("token");
    assert_eq!(token.trim().len(), 64);
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        !printed.contains(token.trim()),
        "login never prints the token"
    );
    let out = custody(&xdg, &sock, &["--json", "user", "list"], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = custody(&xdg, &sock, &["--json", "whoami"], "");
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"user\":\"erin\""));
    // The export: 0600, no credential record, verifiable.
    let path = tmp.path().join("ledger.jsonl");
    let out = custody(
        &xdg,
        &sock,
        &["export", "--out", &path.to_string_lossy()],
        "",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::metadata(&path).expect("export").mode() & 0o777,
        0o600
    );
    let content = std::fs::read_to_string(&path).expect("read");
    assert!(credential_records(&content)
        .iter()
        .all(|c| c.get("redacted").is_some()));
    assert!(!content.contains("\"sealed\""));
    // Logout revokes it at the daemon and removes the file.
    let out = custody(&xdg, &sock, &["logout"], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!files[0].exists());
    let mut c = s.d.connect();
    let r = c.call_as(json!("users"), token.trim());
    assert_eq!(outcome(&r), "forbidden/session_unknown", "{r}");
    s.d.stop();
}
