//! `custody request|account|device show`, `custody user roles` and `custody account
//! set-status` against a real `custodyd`: genesis with `custody init`, the daemon started from
//! its configuration file, two officers unsealing and bootstrapping, then the commands as an
//! operator would type them, in text and in `--json`, with their exit statuses. The daemon is
//! `custodyd-testclock`: where the officers would wait for a fresh second-factor step, the
//! test moves its clock on.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::clock;

use clock::{custodyd_testclock, TestClock};

const ALICE: &str = "alice-Unseal-Phrase-1";
const BOB: &str = "bob-Unseal-Phrase-22";
const ALICE_USER: &str = "alice-User-Phrase-9";
const BOB_USER: &str = "bob-User-Phrase-9";
const DAVE: &str = "dave-Operator-Phrase-1";

use crate::support::cli::{self, Custody, Run as Out};
use crate::support::custodyd::{config, spawn_listening, Process};
use crate::support::daemon::{account_add_args, request_code_args, ACCOUNT};

/// Runs `custody` with `stdin`, and with the lines of `fd3` and `fd4` readable on file
/// descriptors 3 and 4 (passphrases and second-factor codes of `--by` officers).
fn custody_fds(args: &[&str], stdin: &str, fd3: &str, fd4: &str, tmp: &Path) -> Out {
    Custody::new(args)
        .stdin(stdin)
        .fd3(fd3)
        .fd4(fd4)
        .files_in(tmp)
        // `custody login` keeps its session here, as under a person's XDG_RUNTIME_DIR.
        .runtime_dir(&tmp.join("run"))
        .run()
}

struct Daemon {
    _process: Process,
    dir: tempfile::TempDir,
    socket: String,
    clock: TestClock,
}

impl Daemon {
    fn run(&self, args: &[&str], stdin: &str) -> Out {
        self.run_fds(args, stdin, "", "")
    }

    fn run_fds(&self, args: &[&str], stdin: &str, fd3: &str, fd4: &str) -> Out {
        let mut all = vec!["--socket", self.socket.as_str()];
        all.extend_from_slice(args);
        custody_fds(&all, stdin, fd3, fd4, self.dir.path())
    }
}

/// A ledger made by `custody init`, a `custodyd` on it, unsealed by alice and bob, who are
/// then bootstrapped as custody officers. Returns the daemon and their second-factor seeds.
fn unsealed_with_officers() -> (Daemon, String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger: PathBuf = dir.path().join("ledger");
    let socket = dir.path().join("custodyd.sock");
    cli::init(&ledger, &[("alice", ALICE), ("bob", BOB)]);
    let config = config(
        dir.path(),
        &ledger,
        &socket,
        "watch_readers = false\n\n[policy]\npassphrase_kdf_iterations = 1000\n",
    );
    let clock = TestClock::create(dir.path());
    let mut cmd = Command::new(custodyd_testclock());
    cmd.args(["--config", &config.to_string_lossy()])
        .args(clock.args());
    let child = spawn_listening(cmd, &socket, &dir.path().join("custodyd.log"));
    let d = Daemon {
        _process: Process(child),
        dir,
        socket: socket.to_string_lossy().into_owned(),
        clock,
    };
    for (who, pass) in [("alice", ALICE), ("bob", BOB)] {
        let r = d.run(
            &["unseal", "--officer", who, "--passphrase-fd", "0"],
            &format!("{pass}\n"),
        );
        assert_eq!(r.code, 0, "{}{}", r.out, r.err);
    }
    let mut seeds = Vec::new();
    for (who, keyring, pass) in [("alice", ALICE, ALICE_USER), ("bob", BOB, BOB_USER)] {
        let r = d.run(
            &["--json", "user", "bootstrap", who, "--passphrase-fd", "0"],
            &format!("{keyring}\n{pass}\n{pass}\n"),
        );
        assert_eq!(r.code, 0, "{}{}", r.out, r.err);
        seeds.push(
            r.json()["factor"]["base32"]
                .as_str()
                .expect("seed")
                .to_owned(),
        );
    }
    let bob = seeds.pop().expect("bob's seed");
    let alice = seeds.pop().expect("alice's seed");
    // Reads need a session: erin, an auditor, logs in at this terminal (no second factor).
    d.clear_of_step_boundary();
    let r = d.run_fds(
        &[
            "user",
            "add",
            "erin",
            "--role",
            "auditor",
            "--by",
            "alice",
            "--passphrase-fd",
            "3",
            "--totp-fd",
            "4",
        ],
        "",
        &format!("{ALICE_USER}\nerin-User-Phrase-3\n"),
        &format!("{}\n", d.totp(&alice, 1)),
    );
    assert_eq!(r.code, 0, "{}{}", r.out, r.err);
    let r = d.run(
        &["login", "--as", "erin", "--no-totp", "--passphrase-fd", "0"],
        "erin-User-Phrase-3\n",
    );
    assert_eq!(r.code, 0, "{}{}", r.out, r.err);
    // The tests spend alice's previous step again: the clock moves on to a new one.
    d.clock.next_step();
    (d, alice, bob)
}

impl Daemon {
    /// The code of `base32`'s TOTP `steps_back` steps ago, at the daemon's time. Officers may
    /// use the previous step and then the current one; a code is accepted once.
    fn totp(&self, base32: &str, steps_back: u64) -> String {
        clock::totp(base32, self.clock.step() - steps_back)
    }

    /// Stays clear of a step boundary, so a code made now is still valid when the daemon
    /// checks it.
    fn clear_of_step_boundary(&self) {
        self.clock.room_in_step(6);
    }
}

/// alice registers dave, an operator, and bob the account: each officer with their previous
/// step's code, which leaves them the current step for one more operation.
fn dave_and_account(d: &Daemon, alice: &str, bob: &str) {
    d.clear_of_step_boundary();
    let uid = rustix::process::geteuid().as_raw().to_string();
    let r = d.run_fds(
        &[
            "user",
            "add",
            "dave",
            "--role",
            "operator",
            "--uid",
            &uid,
            "--by",
            "alice",
            "--passphrase-fd",
            "3",
            "--totp-fd",
            "4",
        ],
        "",
        &format!("{ALICE_USER}\n{DAVE}\n"),
        &format!("{}\n", d.totp(alice, 1)),
    );
    assert_eq!(r.code, 0, "{}{}", r.out, r.err);
    let r = d.run_fds(
        &account_add_args("prod-root", "AWS:root@example.test", "bob"),
        "",
        &format!("{BOB_USER}\n"),
        &format!("{}\n", d.totp(bob, 1)),
    );
    assert_eq!(r.code, 0, "{}{}", r.out, r.err);
}

#[test]
fn cli_request_account_and_device_show_against_custodyd() {
    let (d, alice, bob) = unsealed_with_officers();
    dave_and_account(&d, &alice, &bob);

    // account show: text and JSON.
    let r = d.run(&["account", "show", ACCOUNT], "");
    assert_eq!(r.code, 0, "{}", r.err);
    for want in [
        ACCOUNT,
        "prod-root",
        "root@example.test",
        "AWS:root@example.test",
        "active",
    ] {
        assert!(r.out.contains(want), "{want} in {}", r.out);
    }
    let r = d.run(&["--json", "account", "show", ACCOUNT], "");
    assert_eq!(r.code, 0, "{}", r.err);
    let v = r.json();
    assert_eq!(v["ok"], true);
    assert_eq!(v["account"]["account"], ACCOUNT);
    assert_eq!(v["account"]["status"], "active");
    let r = d.run(&["--json", "account", "show", "999999999999"], "");
    assert_eq!(r.code, 1, "unknown account → refused: {}", r.out);
    assert_eq!(r.json()["ok"], false);

    // request show: dave asks, then anyone may look it up by id.
    let args: Vec<&str> = ["--json"]
        .into_iter()
        .chain(request_code_args(
            "rotate the root password after the audit finding",
        ))
        .collect();
    let r = d.run_fds(&args, "", &format!("{DAVE}\n"), "");
    assert_eq!(r.code, 0, "{}{}", r.out, r.err);
    let id = r.json()["request"]["id"]
        .as_str()
        .expect("request id")
        .to_owned();
    let r = d.run(&["request", "show", &id], "");
    assert_eq!(r.code, 0, "{}", r.err);
    for want in [
        id.as_str(),
        "pending",
        "change-root-password",
        "SEC-42",
        "rotate the root password after the audit finding",
        "dave",
        "approvals none",
    ] {
        assert!(r.out.contains(want), "{want} in {}", r.out);
    }
    let r = d.run(&["--json", "request", "show", &id], "");
    assert_eq!(r.code, 0, "{}", r.err);
    let v = r.json();
    assert_eq!(v["request"]["id"], id.as_str());
    assert_eq!(v["request"]["requester"], "dave");
    assert_eq!(v["request"]["status"], "pending");
    let r = d.run(&["request", "show", "not-a-request-id"], "");
    assert_eq!(r.code, 2, "a malformed id is a usage error: {}", r.err);

    // device show: no device is registered (that needs a card), so the serial is unknown.
    let r = d.run(&["--json", "device", "show", "10000001"], "");
    assert_eq!(r.code, 1, "{}{}", r.out, r.err);
    let v = r.json();
    assert_eq!(v["ok"], false);
    assert!(
        v["error"]["message"]
            .as_str()
            .expect("error")
            .contains("10000001"),
        "{v}"
    );
    let r = d.run(&["device", "show", "10000001"], "");
    assert_eq!(r.code, 1);
    assert!(r.err.contains("refused (unknown_device): "), "{}", r.err);
}

#[test]
fn cli_two_officers_change_roles_and_account_status_against_custodyd() {
    let (d, alice, bob) = unsealed_with_officers();
    dave_and_account(&d, &alice, &bob);
    let pair = |args: &[&str], alice_code: String, bob_code: String| {
        let mut all = args.to_vec();
        all.extend_from_slice(&[
            "--by",
            "alice",
            "--by",
            "bob",
            "--passphrase-fd",
            "3",
            "--totp-fd",
            "4",
        ]);
        d.run_fds(
            &all,
            "",
            &format!("{ALICE_USER}\n{BOB_USER}\n"),
            &format!("{alice_code}\n{bob_code}\n"),
        )
    };

    // A role that does not exist is refused before anyone authenticates.
    let r = pair(
        &["user", "roles", "dave", "--role", "wizard"],
        "000000".into(),
        "000000".into(),
    );
    assert_eq!(r.code, 2, "{}{}", r.out, r.err);

    d.clear_of_step_boundary();
    let r = pair(
        &[
            "--json", "user", "roles", "dave", "--role", "operator", "--role", "auditor",
        ],
        d.totp(&alice, 0),
        d.totp(&bob, 0),
    );
    assert_eq!(r.code, 0, "{}{}", r.out, r.err);
    let v = r.json();
    assert_eq!(v["user"]["name"], "dave");
    let roles: Vec<&str> = v["user"]["roles"]
        .as_array()
        .expect("roles")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        roles.contains(&"operator") && roles.contains(&"auditor"),
        "{v}"
    );
    let r = d.run(&["user", "list"], "");
    assert!(r.out.contains("auditor"), "{}", r.out);
    // `custody user list | head -0`: the reader is gone before the answer is written.
    let (status, err) = cli::with_stdout_closed(
        Custody::new(&["--socket", d.socket.as_str(), "user", "list"])
            .runtime_dir(&d.dir.path().join("run"))
            .command(),
    );
    assert_eq!(status, Some(141), "user list into a closed pipe: {err}");
    assert_eq!(err, "", "nothing but the status: no panic, no message");

    // A status that does not exist is refused before anyone authenticates.
    let r = pair(
        &["account", "set-status", ACCOUNT, "gone"],
        "000000".into(),
        "000000".into(),
    );
    assert_eq!(r.code, 2, "{}{}", r.out, r.err);
    assert!(r.err.contains("root_credentials_removed"), "{}", r.err);

    // Both officers have used their current step: the clock moves to the next one.
    d.clock.next_step();
    d.clear_of_step_boundary();
    let r = pair(
        &["account", "set-status", ACCOUNT, "root_credentials_removed"],
        d.totp(&alice, 0),
        d.totp(&bob, 0),
    );
    assert_eq!(r.code, 0, "{}{}", r.out, r.err);
    assert!(r.out.contains("root_credentials_removed"), "{}", r.out);
    let r = d.run(&["--json", "account", "show", ACCOUNT], "");
    assert_eq!(r.json()["account"]["status"], "root_credentials_removed");

    // One officer is not enough (usage status: the daemon needs exactly two).
    let r = d.run_fds(
        &[
            "account",
            "set-status",
            ACCOUNT,
            "active",
            "--by",
            "alice",
            "--passphrase-fd",
            "3",
            "--totp-fd",
            "4",
        ],
        "",
        &format!("{ALICE_USER}\n"),
        "000000\n",
    );
    assert_ne!(r.code, 0, "{}{}", r.out, r.err);
    let r = d.run(&["--json", "account", "show", ACCOUNT], "");
    assert_eq!(r.json()["account"]["status"], "root_credentials_removed");
}

#[test]
fn cli_two_officers_release_an_account_and_the_extract_verifies() {
    let (d, alice, bob) = unsealed_with_officers();
    dave_and_account(&d, &alice, &bob);
    let out = d.dir.path().join("release.jsonl");
    let o = out.to_string_lossy().into_owned();
    d.clear_of_step_boundary();
    let r = d.run_fds(
        &[
            "--json",
            "release",
            ACCOUNT,
            "--out",
            &o,
            "--by",
            "alice",
            "--by",
            "bob",
            "--passphrase-fd",
            "3",
            "--totp-fd",
            "4",
        ],
        "",
        &format!("{ALICE_USER}\n{BOB_USER}\n"),
        &format!("{}\n{}\n", d.totp(&alice, 0), d.totp(&bob, 0)),
    );
    assert_eq!(r.code, 0, "{}{}", r.out, r.err);
    let v = r.json();
    assert_eq!(v["ok"], true);
    let key = v["public_key"].as_str().expect("key").to_owned();
    let text = std::fs::read_to_string(&out).expect("extract");
    assert!(text.contains("custody.released"), "{text}");
    assert!(text.contains(ACCOUNT));
    for secret in [ALICE_USER, BOB_USER, DAVE] {
        assert!(!text.contains(secret));
    }
    let r = custody_fds(
        &["audit", "verify", &o, "--pubkey", &key],
        "",
        "",
        "",
        d.dir.path(),
    );
    assert_eq!(r.code, 0, "{}{}", r.out, r.err);
    // The file is never overwritten.
    let r = d.run_fds(
        &[
            "release", ACCOUNT, "--out", &o, "--by", "alice", "--by", "bob",
        ],
        "",
        "",
        "",
    );
    assert_eq!(r.code, 5, "{}{}", r.out, r.err);
}

#[test]
fn cli_inventory_reports_unknown_serials_and_needs_no_card_when_none_is_known() {
    let (d, alice, bob) = unsealed_with_officers();
    d.clear_of_step_boundary();
    let inventory = |who: &str, pass: &str, code: String, present: &[&str]| {
        let mut args = vec!["--json", "inventory"];
        for p in present {
            args.extend_from_slice(&["--present", p]);
        }
        args.extend_from_slice(&["--as", who, "--passphrase-fd", "3", "--totp-fd", "4"]);
        d.run_fds(&args, "", &format!("{pass}\n"), &format!("{code}\n"))
    };
    // No device is registered: nothing is missing, nothing needs a card.
    let r = inventory("alice", ALICE_USER, d.totp(&alice, 0), &[]);
    assert_eq!(r.code, 0, "{}{}", r.out, r.err);
    let v = r.json();
    assert_eq!(v["ok"], true);
    assert_eq!(v["audit"]["ok"], serde_json::json!([]));
    assert_eq!(v["audit"]["incidents"], serde_json::json!([]));
    // A serial the ledger does not know is reported, and the answer is "no".
    let r = inventory("bob", BOB_USER, d.totp(&bob, 0), &["10000009=BAG-0009"]);
    assert_eq!(r.code, 1, "{}{}", r.out, r.err);
    assert_eq!(r.json()["audit"]["unknown"], serde_json::json!([10000009]));
    // A malformed --present is a usage error before anything is sent.
    let r = d.run(&["inventory", "--present", "ten", "--as", "alice"], "");
    assert_eq!(r.code, 2, "{}{}", r.out, r.err);
}

#[test]
fn cli_two_officers_store_the_root_password_generated_or_typed() {
    let (d, alice, bob) = unsealed_with_officers();
    dave_and_account(&d, &alice, &bob);
    let set = |extra: &[&str], stdin: &str| {
        d.clock.next_step();
        d.clear_of_step_boundary();
        let mut args = vec!["account", "set-password", ACCOUNT];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[
            "--by",
            "alice",
            "--by",
            "bob",
            "--passphrase-fd",
            "3",
            "--totp-fd",
            "4",
        ]);
        d.run_fds(
            &args,
            stdin,
            &format!("{ALICE_USER}\n{BOB_USER}\n"),
            &format!("{}\n{}\n", d.totp(&alice, 0), d.totp(&bob, 0)),
        )
    };
    let r = set(&["--generate"], "");
    assert_eq!(r.code, 0, "{}{}", r.out, r.err);
    let shown = r
        .out
        .lines()
        .find_map(|l| l.strip_prefix("Generated password (shown once): "))
        .unwrap_or_else(|| panic!("no generated password shown: {}", r.out));
    assert_eq!(shown.chars().count(), 32, "{shown}");
    // A typed password that breaks AWS's rules is refused naming the rule, not the password.
    let r = set(&["--password-fd", "0"], "weakpassword\n");
    assert_eq!(r.code, 2, "bad input: {}{}", r.out, r.err);
    assert!(r.err.contains("at least three"), "{}", r.err);
    assert!(!r.err.contains("weakpassword") && !r.out.contains("weakpassword"));
    let r = set(&["--password-fd", "0"], "Typed-Root-Pass-42!\n");
    assert_eq!(r.code, 0, "{}{}", r.out, r.err);
    assert!(r.out.contains("stored sealed"), "{}", r.out);
    assert!(
        !r.out.contains("Typed-Root-Pass-42!"),
        "a typed password is not echoed"
    );
    let r = d.run(&["account", "show", ACCOUNT], "");
    assert!(r.out.contains("password     held sealed"), "{}", r.out);
    let r = d.run(&["--json", "account", "show", ACCOUNT], "");
    assert_eq!(r.json()["account"]["root_password"], true, "{}", r.out);
}

#[test]
fn cli_device_lock_by_two_officers_names_an_unknown_serial() {
    let (d, alice, bob) = unsealed_with_officers();
    d.clear_of_step_boundary();
    let r = d.run_fds(
        &[
            "device",
            "lock",
            "10000009",
            "--by",
            "alice",
            "--by",
            "bob",
            "--passphrase-fd",
            "3",
            "--totp-fd",
            "4",
        ],
        "",
        &format!("{ALICE_USER}\n{BOB_USER}\n"),
        &format!("{}\n{}\n", d.totp(&alice, 0), d.totp(&bob, 0)),
    );
    assert_eq!(r.code, 1, "{}{}", r.out, r.err);
    assert!(r.err.contains("unknown device 10000009"), "{}", r.err);
}

#[test]
fn cli_device_attest_checks_the_serial_before_any_secret_and_names_an_unknown_device() {
    let (d, alice, bob) = unsealed_with_officers();
    // A serial that is not one is a usage error before any passphrase is read (none is given).
    for bad in ["0", "12ab", "12345678901"] {
        let r = d.run(
            &["device", "attest", bad, "--by", "alice", "--by", "bob"],
            "",
        );
        assert_eq!(r.code, 2, "{bad}: {}{}", r.out, r.err);
        assert!(r.err.contains("serial"), "{bad}: {}", r.err);
        assert!(
            !r.err.contains("passphrase"),
            "{bad}: asked for a secret: {}",
            r.err
        );
    }
    d.clear_of_step_boundary();
    let r = d.run_fds(
        &[
            "device",
            "attest",
            "10000009",
            "--by",
            "alice",
            "--by",
            "bob",
            "--passphrase-fd",
            "3",
            "--totp-fd",
            "4",
        ],
        "",
        &format!("{ALICE_USER}\n{BOB_USER}\n"),
        &format!("{}\n{}\n", d.totp(&alice, 0), d.totp(&bob, 0)),
    );
    assert_eq!(r.code, 1, "{}{}", r.out, r.err);
    assert!(r.err.contains("unknown device 10000009"), "{}", r.err);
    let help = d.run(&["device", "attest", "--help"], "");
    assert!(
        help.out
            .contains("custody device attest 10000001 --by alice --by bob"),
        "{}",
        help.out
    );
}
