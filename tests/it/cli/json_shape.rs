//! Every `--json` answer has one shape: `{"ok": true, ...}` for an answer,
//! `{"ok": false, "status": N, "error": {"code", "reason", "message"}}` for a failure (custodyd's
//! refusals, this process's own failures, clap's usage errors, `token scan` without pcscd and a
//! failed verification alike), and a field has one name and one type wherever it appears. The
//! test runs the commands against a real `custodyd` and walks every document it gets.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::support::cli::Custody;
use crate::support::cli::Run;
use crate::support::daemon::{user_pass, world, World};

/// The JSON type of a value, by name (`null` is left out: an absent optional value).
fn kind(v: &Value) -> Option<&'static str> {
    match v {
        Value::Null => None,
        Value::Bool(_) => Some("bool"),
        Value::Number(_) => Some("number"),
        Value::String(_) => Some("string"),
        Value::Array(_) => Some("array"),
        Value::Object(_) => Some("object"),
    }
}

/// Records the type of every field under `v` (keys of objects, at any depth), and where it was
/// first seen with that type.
fn walk(v: &Value, at: &str, types: &mut BTreeMap<String, BTreeMap<&'static str, String>>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if let Some(t) = kind(x) {
                    types
                        .entry(k.clone())
                        .or_default()
                        .entry(t)
                        .or_insert_with(|| at.to_owned());
                }
                walk(x, at, types);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| walk(x, at, types)),
        _ => {}
    }
}

/// Checks one `--json` document: the common answer or error shape, its status the exit status.
fn check(what: &str, r: &Run, types: &mut BTreeMap<String, BTreeMap<&'static str, String>>) {
    let v: Value = serde_json::from_str(&r.out)
        .unwrap_or_else(|e| panic!("{what}: not one JSON document ({e}):\n{}\n{}", r.out, r.err));
    let ok = v["ok"]
        .as_bool()
        .unwrap_or_else(|| panic!("{what}: no boolean `ok`: {v}"));
    assert_eq!(ok, r.code == 0, "{what}: ok against exit {}: {v}", r.code);
    if ok {
        // The payload's fields: everything but `ok`.
        for (k, x) in v.as_object().expect("an object") {
            if k != "ok" {
                walk(x, what, types);
            }
        }
        return;
    }
    let top: Vec<&str> = v
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(top, ["error", "ok", "status"], "{what}: {v}");
    assert_eq!(v["status"], r.code, "{what}: {v}");
    let e = &v["error"];
    assert!(e["code"].is_string(), "{what}: error.code: {v}");
    assert!(
        e["reason"].is_string() || e["reason"].is_null(),
        "{what}: error.reason is a string or null: {v}"
    );
    assert!(
        e.get("reason").is_some(),
        "{what}: error.reason is always there: {v}"
    );
    assert!(
        e["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: error.message: {v}"
    );
}

fn run_json(w: &World, what: &str, args: &[&str], fd3: &str, fd4: &str) -> Run {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let r = w.custody4(&all, fd3, fd4);
    assert!(
        !r.out.is_empty(),
        "{what}: nothing on standard output: {}",
        r.err
    );
    r
}

/// Checks `r` (see [`check`]) and hands it back.
fn seen(what: &str, r: Run, types: &mut BTreeMap<String, BTreeMap<&'static str, String>>) -> Run {
    check(what, &r, types);
    r
}

#[test]
fn every_json_answer_and_error_has_one_shape_and_each_field_one_type() {
    let mut w = world();
    w.add_account("alice");
    let mut types = BTreeMap::new();

    let dave = format!("{}\n", user_pass("dave"));
    let r = seen(
        "request code",
        w.request_code(true, "rotate the root password after the audit"),
        &mut types,
    );
    let id = r.json()["request"]["id"].as_str().expect("id").to_owned();
    for (what, args) in [
        ("status", vec!["status"]),
        ("whoami", vec!["whoami"]),
        ("user list", vec!["user", "list"]),
        ("account list", vec!["account", "list"]),
        ("account show", vec!["account", "show", "123456789012"]),
        ("device list", vec!["device", "list"]),
        ("request list", vec!["request", "list"]),
        ("request show", vec!["request", "show", &id]),
        ("incident list", vec!["incident", "list"]),
    ] {
        let r = run_json(&w, what, &args, "", "");
        assert_eq!(r.code, 0, "{what}: {}{}", r.out, r.err);
        seen(what, r, &mut types);
    }

    // Refusals of custodyd: a reason code each.
    let r = run_json(
        &w,
        "approve by an operator",
        &[
            "approve",
            &id,
            "--as",
            "dave",
            "--passphrase-fd",
            "3",
            "--no-totp",
        ],
        &dave,
        "",
    );
    assert_eq!(r.code, 1, "{}{}", r.out, r.err);
    let r = seen("approve by an operator", r, &mut types);
    assert_eq!(r.json()["error"]["code"], "forbidden", "{}", r.out);
    assert!(r.json()["error"]["reason"].is_string(), "{}", r.out);
    let r = run_json(
        &w,
        "device show unknown",
        &["device", "show", "10000001"],
        "",
        "",
    );
    assert_eq!(r.code, 1);
    let r = seen("device show unknown", r, &mut types);
    assert_eq!(r.json()["error"]["reason"], "unknown_device", "{}", r.out);
    // Human text names the same reason.
    let h = w.custody(&["device", "show", "10000001"], "");
    assert!(
        h.err.contains("refused (unknown_device): "),
        "the reason code in the human message: {}",
        h.err
    );

    // Failures of this process: a malformed id, a usage error of clap.
    let r = run_json(
        &w,
        "request show malformed",
        &["request", "show", "not-an-id"],
        "",
        "",
    );
    assert_eq!(r.code, 2, "{}{}", r.out, r.err);
    seen("request show malformed", r, &mut types);
    let r = run_json(&w, "unknown subcommand", &["user", "frobnicate"], "", "");
    assert_eq!(r.code, 2, "{}{}", r.out, r.err);
    let r = seen("unknown subcommand", r, &mut types);
    assert_eq!(r.json()["error"]["code"], "bad_request", "{}", r.out);
    assert_eq!(r.json()["error"]["reason"], "invalid_input", "{}", r.out);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("frobnicate")),
        "{}",
        r.out
    );
    // Without --json, clap's own usage text (and status 2).
    let h = w.custody(&["user", "frobnicate"], "");
    assert_eq!(h.code, 2);
    assert!(h.out.is_empty() && h.err.contains("Usage"), "{}", h.err);

    // `token scan` with no pcscd behind the client library's socket.
    let none = w.dir.path().join("no-pcscd.comm");
    let r: Run = Custody::new(&["--json", "token", "scan"])
        .files_in(w.dir.path())
        .command()
        .env("PCSCLITE_CSOCK_NAME", &none)
        .output()
        .expect("custody")
        .into();
    assert_eq!(r.code, 3, "{}{}", r.out, r.err);
    let r = seen("token scan without pcscd", r, &mut types);
    assert_eq!(r.json()["error"]["code"], "token", "{}", r.out);

    // A failed verification: the error, with where it failed.
    let export = w.dir.path().join("export.jsonl");
    let e = w.custody(
        &["--json", "export", "--out", export.to_str().expect("utf8")],
        "",
    );
    assert_eq!(e.code, 0, "{}{}", e.out, e.err);
    let key = e.json()["public_key"].as_str().expect("key").to_owned();
    seen("export", e, &mut types);
    let text = std::fs::read_to_string(&export).expect("export");
    let bad = w.dir.path().join("bad.jsonl");
    std::fs::write(&bad, text.replacen("\"seq\":1,", "\"seq\":7,", 1)).expect("write");
    let r = run_json(
        &w,
        "audit verify tampered",
        &[
            "audit",
            "verify",
            bad.to_str().expect("utf8"),
            "--pubkey",
            &key,
        ],
        "",
        "",
    );
    assert_eq!(r.code, 1, "{}{}", r.out, r.err);
    let r = seen("audit verify tampered", r, &mut types);
    assert!(r.json()["error"]["line"].is_number(), "{}", r.out);

    // One type per field name, across every answer above.
    let mixed: Vec<String> = types
        .iter()
        .filter(|(_, t)| t.len() > 1)
        .map(|(k, t)| format!("{k}: {t:?}"))
        .collect();
    assert!(
        mixed.is_empty(),
        "fields with more than one type: {mixed:#?}"
    );
    // One name for the OATH device id; serials are numbers.
    assert!(!types.contains_key("device_id"), "{types:?}");
    for k in ["serial"] {
        if let Some(t) = types.get(k) {
            assert!(t.keys().all(|t| *t == "number"), "{k}: {t:?}");
        }
    }
}
