//! `custody audit report` on a real ledger: the custody domain runs a device's whole life on a
//! SQLCipher ledger with in-process software YubiKeys (registration, enrolment, check-out and
//! check-in under seals, a released code, a denied request, incidents, a retirement); the real
//! `custody` binary exports it with a quorum of keyring officers, and the report is made from
//! that export. The report's content, its escaping of ledger strings, the refusal of a tampered
//! export and of an existing file are checked.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use mfa_custody::custody::{DeviceRole, Location, SealNumber, Serial, Terminal};

use crate::support::cli::{
    describe as text, export_by_alice_and_bob, opened_by_alice_and_bob, output as custody,
};
use crate::support::domain::{self, Keys, ACCOUNT};

const CUSTODY: &str = env!("CARGO_BIN_EXE_custody");
const UNSEAL: &str = "alice-unseal-1\nbob-unseal-1\n";
const PRIMARY: u32 = 10_000_301;
const BACKUP: u32 = 10_000_302;
const SPARE: u32 = 10_000_303;
const HOSTILE_REASON: &str = r#"<script>alert(1)</script> "quoted" & 'single' reason text"#;
const HOSTILE_NOTE: &str = r#"no <b>bold</b> "ticket" & 'note'"#;

fn serial(n: u32) -> Serial {
    Serial::new(n).expect("serial")
}

fn seal(s: &str) -> SealNumber {
    SealNumber::parse(s).expect("seal")
}

fn safe() -> Location {
    Location::parse("safe 1").expect("location")
}

/// What the story left behind, for the assertions.
struct Story {
    key: String,
    released: String,
    denied: String,
    open_incident: String,
    closed_incident: String,
}

/// A ledger in `dir` with a whole custody story written by the domain.
fn story(dir: &Path) -> Story {
    let (mut c, people) = domain::bootstrapped(dir);
    let key = c.ledger().public_key().to_hex();
    let a = c.authenticate(&people.creds("alice")).expect("alice");
    let b = c.authenticate(&people.creds("bob")).expect("bob");
    domain::add_operator(&mut c, &a, "oscar");
    domain::register_aws_account(&mut c, &a);
    let mut keys = Keys::default();
    for (s, role) in [
        (PRIMARY, DeviceRole::Primary),
        (BACKUP, DeviceRole::Backup),
        (SPARE, DeviceRole::Backup),
    ] {
        keys.add(s);
        c.register_device(&a, &mut keys, serial(s), role)
            .expect("register");
    }
    c.enrol(&a, &b, &mut keys, domain::enrolment(PRIMARY, BACKUP))
        .expect("enrol");
    for (s, sl) in [(PRIMARY, "SEAL-P1"), (BACKUP, "SEAL-B1")] {
        c.check_in(&a, &mut keys, serial(s), seal(sl), safe())
            .expect("check in");
    }

    // A request approved by two officers, the key checked out, the code released, checked in.
    let oscar = c.authenticate(&people.creds("oscar")).expect("oscar");
    let new_request = domain::new_request;
    let r = c
        .create_request(
            &oscar,
            new_request("rotate the root password after staff change"),
        )
        .expect("request");
    c.approve(&r.id, &people.creds("alice"))
        .expect("alice approves");
    c.approve(&r.id, &people.creds("bob"))
        .expect("bob approves");
    let a = c.authenticate(&people.creds("alice")).expect("alice");
    c.check_out(&a, serial(PRIMARY), &seal("SEAL-P1"), Some(&r.id))
        .expect("check out");
    c.release_code(&oscar, &r.id, &mut keys).expect("release");
    c.check_in(&a, &mut keys, serial(PRIMARY), seal("SEAL-P2"), safe())
        .expect("check in under a new seal");

    // A request whose reason is hostile markup, denied with a hostile note.
    let d = c
        .create_request(&oscar, new_request(HOSTILE_REASON))
        .expect("hostile request");
    c.deny(&a, &d.id, HOSTILE_NOTE).expect("deny");

    // A wrong seal at check-out opens an incident that stays open.
    let wrong = c.check_out(&a, serial(BACKUP), &seal("SEAL-XX"), None);
    assert!(wrong.is_err(), "a wrong seal is refused");
    // An incident reported and acknowledged by two officers.
    let closed = c
        .report_incident(&a, None, "safe door found ajar")
        .expect("report");
    let a = c.authenticate(&people.creds("alice")).expect("alice");
    let b = c.authenticate(&people.creds("bob")).expect("bob");
    c.acknowledge_incident(&a, &b, &closed, "door closed, contents checked")
        .expect("ack");
    c.set_terminal(&a, &b, &mut keys, serial(SPARE), Terminal::Retired)
        .expect("retire");
    let incidents = c.incidents().expect("incidents");
    let open: Vec<_> = incidents.iter().filter(|i| i.open).collect();
    assert_eq!(open.len(), 1, "{incidents:?}");
    Story {
        key,
        released: r.id.to_string(),
        denied: d.id.to_string(),
        open_incident: open[0].id.to_string(),
        closed_incident: closed.to_string(),
    }
}

/// The story's ledger in `tmp`, exported whole offline by alice and bob: the story, the
/// export file and the export's run.
fn exported_story(tmp: &Path) -> (Story, std::path::PathBuf, std::process::Output) {
    let dir = tmp.join("ledger");
    let s = story(&dir);
    let export = tmp.join("export.jsonl");
    let o = export_by_alice_and_bob(&dir, &export);
    (s, export, o)
}

#[test]
fn report_of_a_real_export_tells_the_custody_story_escaped_and_fails_closed() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (s, export, _) = exported_story(tmp.path());
    let e = export.to_str().expect("utf8");
    let fingerprint = {
        let o = custody(&["--json", "audit", "verify", e, "--pubkey", &s.key], "");
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        let line = std::fs::read_to_string(&export).expect("export");
        let last = line.lines().last().expect("checkpoint line").to_owned();
        let v: serde_json::Value = serde_json::from_str(&last).expect("json");
        v["key_fingerprint"].as_str().expect("fp").to_owned()
    };

    // The report, in --json.
    let report = tmp.path().join("custody.html");
    let r = report.to_str().expect("utf8");
    let o = custody(
        &[
            "--json", "audit", "report", e, "--pubkey", &s.key, "--out", r,
        ],
        "",
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json summary");
    assert_eq!(v["ok"], true);
    assert_eq!(v["valid"], true);
    assert_eq!(v["path"], r);
    assert_eq!(v["devices"], 3);
    assert_eq!(v["accounts"], 1);
    assert_eq!(v["requests"], 2);
    assert_eq!(v["released"], 1);
    assert_eq!(v["incidents"], 2);
    assert_eq!(v["open_incidents"], serde_json::json!([s.open_incident]));
    assert_eq!(v["key_fingerprint"], fingerprint.as_str());
    assert!(o.stderr.is_empty(), "{}", text(&o));
    let mode = std::fs::metadata(&report)
        .expect("report")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "the report is private");

    let html = std::fs::read_to_string(&report).expect("html");
    // To look at the page:
    // AUDIT_REPORT_KEEP=/tmp/custody.html cargo test --test it -- cli::audit_report::
    if let Some(keep) = std::env::var_os("AUDIT_REPORT_KEEP") {
        std::fs::write(keep, &html).expect("keep a copy");
    }
    for want in [
        PRIMARY.to_string(),
        BACKUP.to_string(),
        SPARE.to_string(),
        ACCOUNT.to_owned(),
        s.released.clone(),
        s.denied.clone(),
        s.open_incident.clone(),
        s.closed_incident.clone(),
        fingerprint.clone(),
        "SEAL-P1".into(),
        "SEAL-P2".into(),
        "SEAL-XX".into(),
        "seal_mismatch".into(),
        "retired".into(),
        "safe door found ajar".into(),
        "door closed, contents checked".into(),
        "SEC-42".into(),
        "change-root-password".into(),
    ] {
        assert!(html.contains(&want), "{want} in the report");
    }
    // Who approved, who asked, and the release.
    assert!(html.contains("alice at "), "alice's approval");
    assert!(html.contains("bob at "), "bob's approval");
    assert!(html.contains("oscar"), "the requester");
    assert!(html.contains("released at "), "the release time");
    assert!(html.contains("denied by alice"), "the denial");
    // The open incident is listed in its own section, before the devices.
    let open_at = html.find("id=\"open-incidents\"").expect("open incidents");
    let devices_at = html.find("id=\"devices\"").expect("devices");
    let incident_at = html[open_at..].find(&s.open_incident).map(|i| i + open_at);
    assert!(
        matches!(incident_at, Some(i) if i < devices_at),
        "the open incident is in the open-incidents section"
    );
    assert!(
        !html[open_at..devices_at].contains(&s.closed_incident),
        "an acknowledged incident is not open"
    );

    // Ledger strings are escaped; the page has no script and loads nothing.
    assert!(!html.contains("<script"), "no script element");
    assert!(!html.contains("<b>bold</b>"), "markup in a note is escaped");
    assert!(html.contains(
        "&lt;script&gt;alert(1)&lt;/script&gt; &quot;quoted&quot; &amp; &#39;single&#39;"
    ));
    assert!(html.contains("&lt;b&gt;bold&lt;/b&gt; &quot;ticket&quot; &amp; &#39;note&#39;"));
    for external in ["src=", "url(", "@import", "http://", "https://"] {
        assert!(!html.contains(external), "{external} in the report");
    }
    // Links lead within the page only (the contents).
    assert!(html.contains("<a href=\"#open-incidents\">"));
    assert_eq!(
        html.matches("href=").count(),
        html.matches("href=\"#").count(),
        "every link is to a part of the page"
    );
    // Each device's custody drawn inline: the three devices, the primary's check-out and its
    // release marked, the spare's retirement.
    assert_eq!(html.matches("<svg class=\"custody\"").count(), 3);
    assert!(
        html.contains("<title>checked out from "),
        "a check-out span"
    );
    assert!(html.contains("<title>in the safe from "), "an in-safe span");
    assert!(html.contains("<title>retired, lost, destroyed or released from "));
    assert!(
        html.contains("released to oscar") && html.contains("fill=\"#1a73e8\"><title>"),
        "the release is marked"
    );
    // Each person's part: alice approved one request, denied one and checked keys out.
    assert!(html.contains("id=\"officers\""));
    assert!(
        html.contains(
            "<tr><td>alice</td><td class=\"n\">1</td><td class=\"n\">1</td><td class=\"n\">1</td>"
        ),
        "alice's part"
    );
    assert!(html.contains("default-src 'none'"));

    // The report never overwrites a file unless --force.
    let before = std::fs::read(&report).expect("read");
    let o = custody(&["audit", "report", e, "--pubkey", &s.key, "--out", r], "");
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("already exists"),
        "{}",
        text(&o)
    );
    assert_eq!(std::fs::read(&report).expect("read"), before);
    let o = custody(
        &[
            "audit", "report", e, "--pubkey", &s.key, "--out", r, "--force",
        ],
        "",
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.starts_with("valid:"), "{}", text(&o));
    assert!(out.contains("1 open incident(s)"), "{}", text(&o));

    // A tampered export (the hostile reason edited) gets no report, and fails as verify does.
    let tampered = tmp.path().join("tampered.jsonl");
    let original = std::fs::read_to_string(&export).expect("read");
    let edited = original.replace("rotate the root password", "rotate the root passw0rd");
    assert_ne!(edited, original);
    std::fs::write(&tampered, edited).expect("write");
    let t = tampered.to_str().expect("utf8");
    let bad = tmp.path().join("bad.html");
    let o = custody(
        &[
            "audit",
            "report",
            t,
            "--pubkey",
            &s.key,
            "--out",
            bad.to_str().expect("utf8"),
        ],
        "",
    );
    let verify = custody(&["audit", "verify", t, "--pubkey", &s.key], "");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_eq!(o.status.code(), verify.status.code());
    assert_eq!(o.stdout, verify.stdout, "the same explanation as verify");
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("invalid:"));
    assert!(!bad.exists(), "no report of an export that does not verify");
    let o = custody(
        &[
            "--json",
            "audit",
            "report",
            t,
            "--pubkey",
            &s.key,
            "--out",
            bad.to_str().expect("utf8"),
        ],
        "",
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["ok"], false, "{v}");
    assert!(v["error"]["problem"].is_string(), "{v}");
    assert!(!bad.exists());
    // The wrong key: refused too.
    let other = "00".repeat(32);
    let o = custody(
        &[
            "audit",
            "report",
            e,
            "--pubkey",
            &other,
            "--out",
            bad.to_str().expect("utf8"),
        ],
        "",
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(!bad.exists());
    // No temporary file is left anywhere in the directory.
    for entry in std::fs::read_dir(tmp.path()).expect("dir") {
        let n = entry.expect("entry").file_name();
        assert!(!n.to_string_lossy().ends_with(".tmp"), "{n:?} left behind");
    }
}

#[test]
fn report_of_a_filtered_export_states_its_scope() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("ledger");
    let s = story(&dir);
    let d = dir.to_str().expect("utf8");
    let export = tmp.path().join("device.jsonl");
    let e = export.to_str().expect("utf8");
    let primary = PRIMARY.to_string();
    let o = custody(
        &[
            &["audit", "export"][..],
            &opened_by_alice_and_bob(d),
            &["--device", &primary, "--out", e],
        ]
        .concat(),
        UNSEAL,
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let report = tmp.path().join("device.html");
    let r = report.to_str().expect("utf8");
    let o = custody(
        &[
            "--json", "audit", "report", e, "--pubkey", &s.key, "--out", r,
        ],
        "",
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert!(v["stubs"].as_u64().expect("stubs") > 0, "{v}");
    assert_eq!(
        v["devices"], 1,
        "only the primary's events carry bodies: {v}"
    );
    let html = std::fs::read_to_string(&report).expect("html");
    assert!(
        html.contains(&format!("device = {PRIMARY}")),
        "the filter is stated"
    );
    assert!(html.contains("This export was filtered"));
    assert!(
        !html.contains(&SPARE.to_string()),
        "the spare's events are stubs"
    );
}

/// Runs `command` under `script`, which gives it a pseudo-terminal for standard output and
/// error, and returns what the terminal showed.
fn on_a_terminal(command: &str) -> String {
    let out = Command::new("script")
        .args(["-qec", command, "/dev/null"])
        .env_remove("CUSTODY_SOCKET")
        .stdin(Stdio::null())
        .output()
        .expect("script (util-linux) runs");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn verification_shows_progress_on_a_terminal_only() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (s, export, o) = exported_story(tmp.path());
    let e = export.to_str().expect("utf8");
    assert!(
        !String::from_utf8_lossy(&o.stderr).contains("exporting"),
        "no progress when standard error is a pipe: {}",
        text(&o)
    );
    // The export fed slowly (over half a second in all), so the verification outlasts the delay
    // before the progress line appears.
    let slow = format!(
        "while IFS= read -r line; do printf '%s\\n' \"$line\"; sleep 0.015; done < '{e}' | '{CUSTODY}' audit verify - --pubkey {}",
        s.key
    );
    let shown = on_a_terminal(&slow);
    assert!(shown.contains("verifying: "), "{shown:?}");
    assert!(
        shown.contains("\r\u{1b}[K"),
        "the line is erased: {shown:?}"
    );
    assert!(shown.contains("valid: ledger"), "{shown:?}");
    // --json on a terminal: no progress.
    let shown = on_a_terminal(&format!("{slow} --json"));
    assert!(!shown.contains("verifying"), "{shown:?}");
    assert!(shown.contains("\"valid\":true"), "{shown:?}");
    // Standard error piped: no progress either.
    let shown = on_a_terminal(&format!("{slow} 2>/dev/null"));
    assert!(!shown.contains("verifying"), "{shown:?}");
    assert!(shown.contains("valid: ledger"), "{shown:?}");
}
