//! `custody audit cloudtrail` on a real ledger: the custody domain releases two codes on a
//! SQLCipher ledger with in-process software YubiKeys (a request to change the root password
//! of one account, one to create root access keys of another) and marks a third account's root
//! credentials removed; the real `custody` binary exports it with a quorum of keyring officers, and
//! CloudTrail files written here in the shapes AWS documents (a trail's log file, gzipped as
//! in S3 or not, in the S3 key layout with a digest file beside it, and JSON Lines) are
//! reconciled against that export through the binary.
//!
//! Record shapes follow the AWS CloudTrail User Guide ("AWS Management Console sign-in events":
//! root `ConsoleLogin` with `responseElements.ConsoleLogin` and `additionalEventData.MFAUsed`;
//! "CloudTrail record contents"), and `sessionContext.assumedRoot` marks calls of an
//! `sts:AssumeRoot` session (IAM User Guide, "Track privileged tasks in CloudTrail").

use std::io::Write as _;
use std::path::{Path, PathBuf};

use mfa_custody::custody::report::utc;
use mfa_custody::custody::{
    AccountId, AccountStatus, Alias, DeviceRole, Email, Enrolment, Location, NewAccount,
    NewRequest, Provider, SealNumber, Serial,
};
use mfa_custody::token::oath::CredentialName;
use serde_json::{json, Value};

use crate::support::cli::{
    describe as text, export_by_alice_and_bob, opened_by_alice_and_bob, output as custody,
};
use crate::support::domain::{self, Keys, ACCOUNT};

const PRIMARY: u32 = 10_000_401;
const BACKUP: u32 = 10_000_402;
const PRIMARY_2: u32 = 10_000_403;
const BACKUP_2: u32 = 10_000_404;
/// The second account in custody, whose root access keys are released.
const OTHER: &str = "345678901234";
/// An account in custody whose root credentials the ledger marks removed.
const REMOVED: &str = "210987654321";
/// An account the ledger knows nothing of.
const STRANGER: &str = "999999999999";

/// What the story left: the key to verify with, the export, and the two releases
/// (request id, release time in ms): the password of [`ACCOUNT`], the access keys of [`OTHER`].
struct Story {
    key: String,
    export: PathBuf,
    password: (String, i64),
    keys: (String, i64),
}

fn serial(n: u32) -> Serial {
    Serial::new(n).expect("serial")
}

fn seal(s: &str) -> SealNumber {
    SealNumber::parse(s).expect("seal")
}

fn new_account(id: &str, alias: &str) -> NewAccount {
    NewAccount {
        provider: Provider::Aws,
        account: Provider::Aws.parse_account_id(id).expect("id"),
        alias: Alias::parse(alias).expect("alias"),
        root_email: Email::parse(&format!("{alias}-root@example.test")).expect("email"),
        credential: CredentialName::parse(&format!("AWS:{alias}-root@example.test")).expect("cred"),
    }
}

/// A ledger in `tmp` with the two released codes, exported whole offline.
fn story(tmp: &Path) -> Story {
    let dir = tmp.join("ledger");
    let (mut c, people) = domain::bootstrapped(&dir);
    let key = c.ledger().public_key().to_hex();
    let a = c.authenticate(&people.creds("alice")).expect("alice");
    domain::add_operator(&mut c, &a, "oscar");
    domain::register_aws_account(&mut c, &a);
    for (id, alias) in [(OTHER, "staging"), (REMOVED, "sandbox")] {
        c.register_account(&a, new_account(id, alias))
            .expect("account");
    }
    let b = c.authenticate(&people.creds("bob")).expect("bob");
    c.set_account_status(
        &a,
        &b,
        &AccountId::parse(REMOVED).expect("id"),
        AccountStatus::RootCredentialsRemoved,
    )
    .expect("root credentials removed");
    let mut keys = Keys::default();
    let safe = Location::parse("safe 1").expect("location");
    for (account, primary, backup) in [(ACCOUNT, PRIMARY, BACKUP), (OTHER, PRIMARY_2, BACKUP_2)] {
        for (s, role) in [(primary, DeviceRole::Primary), (backup, DeviceRole::Backup)] {
            keys.add(s);
            c.register_device(&a, &mut keys, serial(s), role)
                .expect("register");
        }
        let enrolment = Enrolment {
            account: AccountId::parse(account).expect("id"),
            ..domain::enrolment(primary, backup)
        };
        c.enrol(&a, &b, &mut keys, enrolment).expect("enrol");
        for s in [primary, backup] {
            c.check_in(
                &a,
                &mut keys,
                serial(s),
                seal(&format!("SEAL-{s}-1")),
                safe.clone(),
            )
            .expect("check in");
        }
    }
    let mut released = Vec::new();
    for (account, task, device) in [
        (ACCOUNT, "change-root-password", PRIMARY),
        (OTHER, "create-root-access-keys", PRIMARY_2),
    ] {
        let oscar = c.authenticate(&people.creds("oscar")).expect("oscar");
        let r = c
            .create_request(
                &oscar,
                NewRequest {
                    account: AccountId::parse(account).expect("id"),
                    task: task.into(),
                    ticket: "SEC-42".into(),
                    reason: format!("{task} after the staff change of November"),
                },
            )
            .expect("request");
        c.approve(&r.id, &people.creds("alice")).expect("alice");
        c.approve(&r.id, &people.creds("bob")).expect("bob");
        let a = c.authenticate(&people.creds("alice")).expect("alice");
        c.check_out(
            &a,
            serial(device),
            &seal(&format!("SEAL-{device}-1")),
            Some(&r.id),
        )
        .expect("check out");
        c.release_code(&oscar, &r.id, &mut keys).expect("release");
        c.check_in(
            &a,
            &mut keys,
            serial(device),
            seal(&format!("SEAL-{device}-2")),
            safe.clone(),
        )
        .expect("check in");
        released.push(r.id.to_string());
    }
    let export = tmp.join("export.jsonl");
    export_by_alice_and_bob(&dir, &export);
    let time_of = |request: &str| -> i64 {
        std::fs::read_to_string(&export)
            .expect("export")
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).expect("json line"))
            .find(|v| v["kind"] == "code.released" && v["body"]["request"] == request)
            .and_then(|v| v["time"].as_i64())
            .expect("the release is in the export")
    };
    Story {
        key,
        password: (released[0].clone(), time_of(&released[0])),
        keys: (released[1].clone(), time_of(&released[1])),
        export,
    }
}

/// `2026-11-30T12:00:00Z` of a time in whole seconds.
fn iso(secs: i64) -> String {
    utc(secs * 1000).replace(' ', "T")
}

/// The first whole second at or after `ms`.
fn ceil_s(ms: i64) -> i64 {
    (ms + 999).div_euclid(1000)
}

/// A root record as CloudTrail writes one (root identity, event in `account`).
fn root(id: &str, secs: i64, account: &str, source: &str, name: &str) -> Value {
    json!({
        "eventVersion": "1.10",
        "userIdentity": {"type": "Root", "principalId": account,
                         "arn": format!("arn:aws:iam::{account}:root"), "accountId": account,
                         "accessKeyId": "ASIAEXAMPLE"},
        "eventTime": iso(secs), "eventSource": source, "eventName": name,
        "awsRegion": "us-east-1", "sourceIPAddress": "192.0.2.10", "userAgent": "aws-cli/2",
        "requestParameters": {"userName": null}, "responseElements": null,
        "requestID": format!("req-{id}"), "eventID": id, "readOnly": false,
        "eventType": "AwsApiCall", "managementEvent": true, "recipientAccountId": account,
        "eventCategory": "Management"
    })
}

/// A root console sign-in: `result` Success or Failure, `mfa` Yes or No.
fn sign_in(id: &str, secs: i64, account: &str, result: &str, mfa: &str) -> Value {
    let mut r = root(id, secs, account, "signin.amazonaws.com", "ConsoleLogin");
    r["userIdentity"]["accessKeyId"] = json!("");
    r["responseElements"] = json!({"ConsoleLogin": result});
    r["additionalEventData"] = json!({"LoginTo": "https://console.aws.amazon.com/console/home",
                                      "MobileVersion": "No", "MFAUsed": mfa});
    r["eventType"] = json!("AwsConsoleSignIn");
    r["requestParameters"] = Value::Null;
    r
}

/// A record of an IAM role (ignored by reconciliation).
fn role_call(id: &str, secs: i64) -> Value {
    json!({"eventVersion": "1.10",
           "userIdentity": {"type": "AssumedRole", "accountId": ACCOUNT,
                            "sessionContext": {"attributes": {"mfaAuthenticated": "false"},
                                               "assumedRoot": ""}},
           "eventTime": iso(secs), "eventSource": "ec2.amazonaws.com",
           "eventName": "DescribeInstances", "eventID": id, "readOnly": true,
           "responseElements": {"instancesSet": {"items": [{"instanceId": "i-1"}]}},
           "recipientAccountId": ACCOUNT})
}

fn log_file(records: &[Value]) -> Vec<u8> {
    serde_json::to_vec_pretty(&json!({ "Records": records })).expect("json")
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes).expect("gzip");
    gz.finish().expect("gzip")
}

fn json_lines(records: &[Value]) -> Vec<u8> {
    records
        .iter()
        .map(|r| format!("{r}\n"))
        .collect::<String>()
        .into_bytes()
}

/// `custody [--json] audit cloudtrail --export ... --pubkey ... EXTRA... FILES...`.
fn reconcile(s: &Story, json: bool, extra: &[&str], files: &[&Path]) -> std::process::Output {
    let mut args = Vec::new();
    if json {
        args.push("--json");
    }
    args.extend([
        "audit",
        "cloudtrail",
        "--export",
        s.export.to_str().expect("utf8"),
        "--pubkey",
        &s.key,
    ]);
    args.extend(extra);
    let files: Vec<&str> = files.iter().map(|f| f.to_str().expect("utf8")).collect();
    args.extend(files);
    custody(&args, "")
}

fn parsed(o: &std::process::Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("JSON ({e}): {}", text(o)))
}

fn kinds(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| f["kind"].as_str().expect("kind").to_owned())
        .collect();
    k.sort();
    k
}

#[test]
fn sign_ins_and_calls_after_releases_are_explained_by_their_requests_in_every_file_shape() {
    let tmp = tempfile::tempdir().expect("tmp");
    let s = story(tmp.path());
    let (pw, pw_ms) = &s.password;
    let (ak, ak_ms) = &s.keys;
    let (p0, k0) = (ceil_s(*pw_ms), ceil_s(*ak_ms));

    // The S3 layout of a trail: gzipped log files by account, region and day, with a digest
    // file beside them (skipped), and a plain log file.
    let day = tmp
        .path()
        .join("AWSLogs/123456789012/CloudTrail/us-east-1/2026/11/30");
    std::fs::create_dir_all(&day).expect("mkdir");
    let digest = tmp
        .path()
        .join("AWSLogs/123456789012/CloudTrail-Digest/us-east-1");
    std::fs::create_dir_all(&digest).expect("mkdir");
    std::fs::write(
        digest.join("123456789012_CloudTrail-Digest_us-east-1_trail_20261130T1200Z.json.gz"),
        gzip(br#"{"awsAccountId":"123456789012","digestStartTime":"2026-11-30T11:00:00Z"}"#),
    )
    .expect("digest");
    std::fs::write(
        day.join("123456789012_CloudTrail_us-east-1_20261130T1205Z_a1.json.gz"),
        gzip(&log_file(&[
            sign_in("signin-pw", p0 + 30, ACCOUNT, "Success", "Yes"),
            root(
                "call-pw",
                p0 + 60,
                ACCOUNT,
                "iam.amazonaws.com",
                "GetAccountSummary",
            ),
            role_call("role-1", p0 + 61),
        ])),
    )
    .expect("log file");
    std::fs::write(
        day.join("123456789012_CloudTrail_us-east-1_20261130T1215Z_b2.json"),
        log_file(&[
            sign_in("failed", k0 - 20, ACCOUNT, "Failure", "No"),
            sign_in("signin-keys", k0 + 40, OTHER, "Success", "Yes"),
        ]),
    )
    .expect("log file");
    // JSON Lines of single records, as tools export them; an AssumeRoot session's call in the
    // account whose root credentials are removed is not a finding.
    let mut assumed = root(
        "assumed",
        k0 + 50,
        REMOVED,
        "s3.amazonaws.com",
        "DeleteBucketPolicy",
    );
    assumed["userIdentity"]["sessionContext"] = json!({"attributes": {}, "assumedRoot": "true"});
    let lines = tmp.path().join("exported.jsonl");
    std::fs::write(
        &lines,
        json_lines(&[
            root(
                "call-keys",
                k0 + 90,
                OTHER,
                "iam.amazonaws.com",
                "CreateAccessKey",
            ),
            assumed,
            role_call("role-2", k0 + 400),
        ]),
    )
    .expect("json lines");

    let o = reconcile(&s, true, &[], &[&tmp.path().join("AWSLogs"), &lines]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v = parsed(&o);
    assert_eq!(v["valid"], true);
    assert!(
        v["checkpoint"]["seq"].as_u64().is_some_and(|n| n > 10),
        "{v}"
    );
    assert_eq!(v["files"], 3, "the digest file is skipped: {v}");
    assert_eq!(v["records"], 8);
    assert_eq!(v["other_identities"], 2);
    assert_eq!(v["assume_root"], 1);
    let mut explained: Vec<(String, String)> = v["explained"]
        .as_array()
        .expect("explained")
        .iter()
        .map(|e| {
            (
                e["event_id"].as_str().expect("id").to_owned(),
                e["request"].as_str().expect("request").to_owned(),
            )
        })
        .collect();
    explained.sort();
    let want = [
        ("call-keys", ak),
        ("call-pw", pw),
        ("signin-keys", ak),
        ("signin-pw", pw),
    ];
    assert_eq!(
        explained,
        want.map(|(e, r)| (e.to_owned(), r.clone())).to_vec(),
        "{v}"
    );
    // In time order, the first is the password request's sign-in.
    let first = &v["explained"][0];
    assert_eq!(first["task"], "change-root-password");
    assert_eq!(first["approvers"], json!(["alice", "bob"]));
    assert_eq!(first["event_time"], iso(p0 + 30));
    // Only the informational failed sign-in remains.
    assert_eq!(kinds(&v), ["failed_root_sign_in"], "{v}");
    assert_eq!(v["findings"][0]["informational"], true);
    assert_eq!(v["clean"], true);

    // For people: a short table naming the requests.
    let o = reconcile(&s, false, &[], &[&tmp.path().join("AWSLogs"), &lines]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.starts_with("valid: ledger "), "{out}");
    assert!(
        out.contains("explained: 4; findings: 0 needing attention, 1 informational"),
        "{out}"
    );
    assert!(
        out.contains(&format!("{pw} (approved by alice, bob)")),
        "{out}"
    );
    assert!(out.contains("failed_root_sign_in"), "{out}");
}

#[test]
fn every_finding_kind_is_reported_with_its_record_and_fails_the_run() {
    let tmp = tempfile::tempdir().expect("tmp");
    let s = story(tmp.path());
    let (pw, pw_ms) = &s.password;
    let (_, ak_ms) = &s.keys;
    let p0 = ceil_s(*pw_ms);
    let file = tmp.path().join("trail.json");
    std::fs::write(
        &file,
        log_file(&[
            // One release explains one sign-in: the second is unexplained.
            sign_in("first", p0 + 10, ACCOUNT, "Success", "Yes"),
            sign_in("second", p0 + 20, ACCOUNT, "Success", "Yes"),
            // Access keys created in the session of the password request.
            root(
                "keys",
                p0 + 30,
                ACCOUNT,
                "iam.amazonaws.com",
                "CreateAccessKey",
            ),
            // Root calls long before any release.
            root(
                "early",
                p0 - 7200,
                ACCOUNT,
                "ec2.amazonaws.com",
                "RunInstances",
            ),
            sign_in("no-mfa", p0 - 3600, ACCOUNT, "Success", "No"),
            sign_in("failed", p0 - 3500, ACCOUNT, "Failure", "Yes"),
            sign_in("stranger", p0 + 5, STRANGER, "Success", "Yes"),
            root("removed", p0 + 6, REMOVED, "iam.amazonaws.com", "ListUsers"),
            // The trail covers the access-key release's window, and no one signed in.
            role_call("later", ceil_s(*ak_ms) + 3600),
        ]),
    )
    .expect("write");
    let o = reconcile(&s, true, &[], &[&file]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let v = parsed(&o);
    assert_eq!(v["valid"], true);
    assert_eq!(v["clean"], false);
    assert_eq!(
        kinds(&v),
        [
            "account_not_in_custody",
            "failed_root_sign_in",
            "release_without_sign_in",
            "root_action_outside_session",
            "root_credentials_removed_but_used",
            "root_sign_in_without_mfa",
            "task_mismatch",
            "unexplained_root_sign_in",
        ],
        "{v}"
    );
    let by = |kind: &str| -> Value {
        v["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .find(|f| f["kind"] == kind)
            .cloned()
            .expect(kind)
    };
    assert_eq!(by("unexplained_root_sign_in")["event_id"], "second");
    assert_eq!(by("account_not_in_custody")["account"], STRANGER);
    assert_eq!(by("root_credentials_removed_but_used")["account"], REMOVED);
    let mismatch = by("task_mismatch");
    assert_eq!(mismatch["event_id"], "keys");
    assert_eq!(mismatch["request"], pw.as_str());
    let sentence = mismatch["sentence"].as_str().expect("sentence");
    assert!(sentence.contains("create-root-access-keys"), "{sentence}");
    assert!(sentence.contains("change-root-password"), "{sentence}");
    assert!(sentence.contains(pw.as_str()), "{sentence}");
    let unused = by("release_without_sign_in");
    assert_eq!(unused["event_id"], Value::Null);
    assert_eq!(unused["request"], s.keys.0.as_str());
    for f in v["findings"].as_array().expect("findings") {
        assert!(
            f["event_time"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{f}"
        );
        assert!(f["sentence"].as_str().is_some_and(|t| t.len() > 40), "{f}");
    }
    assert_eq!(v["explained"].as_array().map(Vec::len), Some(1), "{v}");

    // The same as a table. To look at it:
    // CLOUDTRAIL_KEEP=/tmp/cloudtrail.txt cargo test --test it -- cli::audit_cloudtrail::every
    let o = reconcile(&s, false, &[], &[&file]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    if let Some(keep) = std::env::var_os("CLOUDTRAIL_KEEP") {
        std::fs::write(keep, out.as_bytes()).expect("keep a copy");
    }
    assert!(
        out.contains("findings: 6 needing attention, 2 informational"),
        "{out}"
    );
    assert!(out.contains("unexplained_root_sign_in"), "{out}");
}

#[test]
fn window_and_session_boundaries_hold_to_the_second() {
    let tmp = tempfile::tempdir().expect("tmp");
    let s = story(tmp.path());
    let (_, pw_ms) = &s.password;
    let window = 60_000;
    let last_in = (pw_ms + window).div_euclid(1000);
    let case = |name: &str, records: &[Value]| -> Value {
        let file = tmp.path().join(format!("{name}.jsonl"));
        std::fs::write(&file, json_lines(records)).expect("write");
        let o = reconcile(&s, true, &["--window", "60s", "--session", "2m"], &[&file]);
        parsed(&o)
    };
    // The last second of the window explains the sign-in; the next does not.
    let v = case(
        "last",
        &[sign_in("at-end", last_in, ACCOUNT, "Success", "Yes")],
    );
    assert_eq!(v["explained"][0]["event_id"], "at-end", "{v}");
    let v = case(
        "past",
        &[sign_in("past", last_in + 1, ACCOUNT, "Success", "Yes")],
    );
    assert_eq!(kinds(&v), ["unexplained_root_sign_in"], "{v}");
    // A second before the release is too early.
    let before = pw_ms.div_euclid(1000) - 1;
    let v = case(
        "before",
        &[sign_in("early", before, ACCOUNT, "Success", "Yes")],
    );
    assert_eq!(kinds(&v), ["unexplained_root_sign_in"], "{v}");
    // The session lasts --session after the sign-in, to the second.
    let at = ceil_s(*pw_ms);
    let v = case(
        "session",
        &[
            sign_in("in", at, ACCOUNT, "Success", "Yes"),
            root(
                "end",
                at + 120,
                ACCOUNT,
                "iam.amazonaws.com",
                "GetAccountSummary",
            ),
            root(
                "after",
                at + 121,
                ACCOUNT,
                "iam.amazonaws.com",
                "GetAccountSummary",
            ),
        ],
    );
    assert_eq!(kinds(&v), ["root_action_outside_session"], "{v}");
    assert_eq!(v["findings"][0]["event_id"], "after");
    assert_eq!(v["explained"].as_array().map(Vec::len), Some(2), "{v}");
}

#[test]
fn a_tampered_export_gives_only_the_verification_error() {
    let tmp = tempfile::tempdir().expect("tmp");
    let s = story(tmp.path());
    let file = tmp.path().join("trail.json");
    std::fs::write(
        &file,
        log_file(&[sign_in("x", 1_800_000_000, STRANGER, "Success", "No")]),
    )
    .expect("write");
    let original = std::fs::read_to_string(&s.export).expect("export");
    let edited = original.replace("after the staff change", "after the staff chang3");
    assert_ne!(edited, original);
    let tampered = Story {
        export: tmp.path().join("tampered.jsonl"),
        key: s.key.clone(),
        password: s.password.clone(),
        keys: s.keys.clone(),
    };
    std::fs::write(&tampered.export, edited).expect("write");
    let o = reconcile(&tampered, false, &[], &[&file]);
    let verify = custody(
        &[
            "audit",
            "verify",
            tampered.export.to_str().expect("utf8"),
            "--pubkey",
            &s.key,
        ],
        "",
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_eq!(o.stdout, verify.stdout, "the same explanation as verify");
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("invalid:"));
    let o = reconcile(&tampered, true, &[], &[&file]);
    let v = parsed(&o);
    // The one --json error shape, as `audit verify --json` answers an invalid export.
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["status"], 1, "{v}");
    assert!(
        v["error"]["problem"].is_string(),
        "names what is wrong: {v}"
    );
    assert!(
        v.get("findings").is_none(),
        "no findings of an invalid export: {v}"
    );
}

#[test]
fn fail_malformed_and_hostile_cloudtrail_input_gets_a_clear_error() {
    let tmp = tempfile::tempdir().expect("tmp");
    let s = story(tmp.path());
    let huge = format!(
        "{{\"Records\":[{{\"eventID\":\"a\",\"requestParameters\":\"{}\"}}]}}",
        "x".repeat(2 << 20)
    );
    let mut truncated_gz = gzip(&log_file(&[sign_in(
        "t",
        1_800_000_000,
        ACCOUNT,
        "Success",
        "Yes",
    )]));
    truncated_gz.truncate(truncated_gz.len() / 2);
    let mut no_time = root(
        "no-time",
        1_800_000_000,
        ACCOUNT,
        "iam.amazonaws.com",
        "ListUsers",
    );
    no_time.as_object_mut().expect("object").remove("eventTime");
    for (name, bytes, want) in [
        ("empty.json", b"".to_vec(), "the file is empty"),
        (
            "array.json",
            b"[{\"eventID\": 1}]".to_vec(),
            "not CloudTrail input",
        ),
        (
            "binary.json",
            b"{\"Records\":[{\"eventID\":\"\xff\xfe\xfd\"}]}".to_vec(),
            "record 1:",
        ),
        ("huge.json", huge.into_bytes(), "larger than 1048576 bytes"),
        ("truncated.json.gz", truncated_gz, "truncated.json.gz"),
        ("no-time.json", log_file(&[no_time]), "has no eventTime"),
        (
            "lines.jsonl",
            b"{\"eventID\":\"a\"}\n{\"eventID\": \n".to_vec(),
            "line 2 is not one record object",
        ),
    ] {
        let file = tmp.path().join(name);
        std::fs::write(&file, bytes).expect("write");
        let o = reconcile(&s, false, &[], &[&file]);
        assert_eq!(o.status.code(), Some(1), "{name}: {}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(name), "{name}: the file is named: {err}");
        assert!(err.contains(want), "{name}: {want:?} in {err}");
        assert!(!err.contains("panicked"), "{name}: {err}");
        assert!(
            o.stdout.is_empty() || String::from_utf8_lossy(&o.stdout).starts_with("valid"),
            "{name}"
        );
    }
    // Deep nesting in a field that is skipped costs nothing and is no error.
    let deep = format!(
        "{{\"Records\":[{{\"eventID\":\"d\",\"requestParameters\":{}{}}}]}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let file = tmp.path().join("deep.json");
    std::fs::write(&file, deep).expect("write");
    let o = reconcile(&s, true, &[], &[&file]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(parsed(&o)["records"], 1);
    // A directory without CloudTrail files is a usage error, not an empty success.
    let empty = tmp.path().join("nothing-here");
    std::fs::create_dir(&empty).expect("mkdir");
    let o = reconcile(&s, false, &[], &[&empty]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no CloudTrail file"));
}

#[test]
fn a_filtered_export_whose_releases_are_stubs_says_so() {
    let tmp = tempfile::tempdir().expect("tmp");
    let s = story(tmp.path());
    let filtered = tmp.path().join("filtered.jsonl");
    let ledger = tmp.path().join("ledger");
    let o = custody(
        &[
            &["audit", "export"][..],
            &opened_by_alice_and_bob(ledger.to_str().expect("utf8")),
            &[
                "--kind",
                "account.registered",
                "--out",
                filtered.to_str().expect("utf8"),
            ],
        ]
        .concat(),
        &format!(
            "{}\n{}\n",
            domain::unseal_pass("alice"),
            domain::unseal_pass("bob")
        ),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let at = ceil_s(s.password.1);
    let file = tmp.path().join("trail.jsonl");
    std::fs::write(
        &file,
        json_lines(&[sign_in("s", at, ACCOUNT, "Success", "Yes")]),
    )
    .expect("write");
    let stubbed = Story {
        export: filtered,
        key: s.key.clone(),
        password: s.password.clone(),
        keys: s.keys.clone(),
    };
    let o = reconcile(&stubbed, true, &[], &[&file]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let v = parsed(&o);
    assert_eq!(v["release_stubs"], 2, "{v}");
    assert_eq!(kinds(&v), ["unexplained_root_sign_in"], "{v}");
    let o = reconcile(&stubbed, false, &[], &[&file]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("warning: 2 code release(s) are stubs"),
        "{out}"
    );
}

/// `custody GLOBAL... audit report EXPORT --pubkey KEY --out OUT EXTRA...`.
fn html_report(s: &Story, out: &Path, global: &[&str], extra: &[&str]) -> std::process::Output {
    let head = [
        "audit",
        "report",
        s.export.to_str().expect("utf8"),
        "--pubkey",
        &s.key,
        "--out",
        out.to_str().expect("utf8"),
    ];
    custody(&[global, &head[..], extra].concat(), "")
}

#[test]
fn the_html_report_gains_the_reconciliation_escaped() {
    let tmp = tempfile::tempdir().expect("tmp");
    let s = story(tmp.path());
    let at = ceil_s(s.password.1);
    let hostile = root(
        "<b>id</b>",
        at + 100,
        ACCOUNT,
        "iam.amazonaws.com",
        "<script>alert(1)</script>",
    );
    let file = tmp.path().join("trail.json");
    std::fs::write(
        &file,
        log_file(&[
            sign_in("in", at + 10, ACCOUNT, "Success", "Yes"),
            sign_in("again", at + 20, ACCOUNT, "Success", "Yes"),
            hostile,
        ]),
    )
    .expect("write");
    let html = tmp.path().join("report.html");
    let o = html_report(
        &s,
        &html,
        &["--json"],
        &["--cloudtrail", file.to_str().expect("utf8")],
    );
    assert_eq!(
        o.status.code(),
        Some(1),
        "findings need attention: {}",
        text(&o)
    );
    let v = parsed(&o);
    assert_eq!(v["cloudtrail"]["records"], 3, "{v}");
    assert_eq!(v["cloudtrail"]["explained"], 2, "{v}");
    assert_eq!(
        v["cloudtrail"]["findings"],
        json!(["unexplained_root_sign_in"]),
        "{v}"
    );
    let page = std::fs::read_to_string(&html).expect("the report is written");
    assert!(page.contains("id=\"cloudtrail\""), "the section");
    assert!(page.contains("unexplained_root_sign_in"));
    assert!(page.contains(&s.password.0), "the explaining request");
    assert!(!page.contains("<script"), "no script from CloudTrail");
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(page.contains("&lt;b&gt;id&lt;/b&gt;"));
    // Without CloudTrail files, no such section.
    let plain = tmp.path().join("plain.html");
    let o = html_report(&s, &plain, &[], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let page = std::fs::read_to_string(&plain).expect("report");
    assert!(!page.contains("id=\"cloudtrail\""));
}
