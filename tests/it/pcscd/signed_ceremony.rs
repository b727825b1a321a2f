//! The sign-in ceremony with `--sign` under `[policy] approval_proof = "signature"`, through
//! the production path: a private pcscd with the vpcd driver, `custody-emu` keys (the custody
//! primary in the first reader; carol's and frank's own YubiKeys taking turns in the second,
//! each kept in its `--state` file), a real `custodyd` trusting the emulator's test CA, and
//! the `custody` binary. The approving officers give name, passphrase and PIV PIN, the wizard
//! finds the YubiKey holding each one's registered key and says whose to touch; both
//! approvals are recorded with proof `signature` and the code is released. Scripted, the
//! answers are fed to `--passphrase-fd` as the ceremony goes (the officers' keys are swapped
//! between the approvals); at a terminal, a mistyped PIN says the tries left and is asked
//! again. No PIN appears in any output.

use crate::support;

use std::io::{BufRead, Write};
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use support::daemon::{request_status, user_pass, with_task, world_with_config, Run, World, SEED};
use support::{in_harness, wait_for_card, Emu};

const PRIMARY: u32 = 10_000_961;
const BACKUP: u32 = 10_000_962;
const CAROL_KEY: u32 = 10_000_971;
const FRANK_KEY: u32 = 10_000_972;
/// The emulator's factory PIV PIN.
const PIN: &str = "123456";
/// A PIN typed wrong.
const WRONG_PIN: &str = "864209";
const REASON: &str = "rotate the root password after the annual audit";

/// The officers' own YubiKeys: the `--state` file of each, so a key taken out and put back
/// keeps its approval key and PIN counter.
struct OwnKeys {
    dir: tempfile::TempDir,
}

impl OwnKeys {
    /// `serial`'s key plugged into the second reader.
    fn plug(&self, serial: u32) -> Emu {
        let state = self.dir.path().join(serial.to_string());
        let key = Emu::start(
            1,
            &[
                "--serial",
                &serial.to_string(),
                "--state",
                state.to_str().expect("utf8"),
            ],
        );
        wait_for_card(1);
        key
    }
}

/// Stops custodyd, adds `line` to its `[policy]` table, and starts and unseals it again.
fn restart_with_policy(w: &mut World, line: &str) {
    if let Some(mut d) = w.daemon.take() {
        let _ = d.kill();
        let _ = d.wait();
    }
    let text = std::fs::read_to_string(&w.config).expect("custodyd's configuration");
    assert!(text.contains("[policy]\n"), "{text}");
    std::fs::write(
        &w.config,
        text.replace("[policy]\n", &format!("[policy]\n{line}\n")),
    )
    .expect("custodyd's configuration");
    w.start_daemon();
    w.unseal();
}

/// `custody ARGS` with descriptor 3 a FIFO the test writes the answers to as the command
/// runs, and its standard error collected as it comes.
struct Fed {
    child: Child,
    answers: std::fs::File,
    err: Arc<Mutex<String>>,
    out: std::thread::JoinHandle<String>,
    /// How much of the standard error [`Fed::wait_for`] consumed.
    read_up_to: usize,
}

impl Fed {
    fn start(w: &World, args: &[&str]) -> Self {
        let fifo = w.dir.path().join("answers.fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo (coreutils)");
        assert!(made.success(), "mkfifo {}", fifo.display());
        let mut cmd = w.custody_cmd(args, "", "");
        // Descriptor 3 reads the FIFO instead of a file.
        cmd.env("FD3", &fifo);
        let mut child = cmd.spawn().expect("custody");
        let answers = std::fs::OpenOptions::new()
            .write(true)
            .open(&fifo)
            .expect("the answers' FIFO");
        let err = Arc::new(Mutex::new(String::new()));
        let sink = err.clone();
        let stderr = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut e = sink.lock().expect("lock");
                e.push_str(&line);
                e.push('\n');
            }
        });
        let mut stdout = child.stdout.take().expect("stdout");
        let out = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut stdout, &mut text);
            text
        });
        Self {
            child,
            answers,
            err,
            out,
            read_up_to: 0,
        }
    }

    fn answer(&mut self, lines: &str) {
        self.answers
            .write_all(lines.as_bytes())
            .expect("the ceremony reads its answers");
    }

    /// Waits until `text` appears on the standard error after what was consumed, and consumes
    /// up to it; fails if the command ends first.
    fn wait_for(&mut self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            {
                let err = self.err.lock().expect("lock");
                if let Some(at) = err[self.read_up_to..].find(text) {
                    self.read_up_to += at + text.len();
                    return;
                }
                let ended = self.child.try_wait().expect("status").is_some();
                assert!(
                    !ended && Instant::now() < deadline,
                    "never saw {text:?}; the ceremony said:\n{err}"
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn finish(mut self) -> Run {
        drop(self.answers);
        let status = self.child.wait().expect("custody");
        let out = self.out.join().expect("stdout");
        // The standard error's reader ends with the process.
        let deadline = Instant::now() + Duration::from_secs(10);
        let err = loop {
            let e = self.err.lock().expect("lock").clone();
            if Arc::strong_count(&self.err) == 1 || Instant::now() > deadline {
                break e;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Run {
            code: status.code().unwrap_or(-1),
            out,
            err,
        }
    }
}

/// Neither PIN appears in `text` (the account id, 123456789012, starts with the factory PIN
/// and is taken out first).
fn assert_no_pin(text: &str) {
    let shown = text.replace(support::daemon::ACCOUNT, "");
    assert!(!shown.contains(PIN), "the PIN was shown:\n{shown}");
    assert!(
        !shown.contains(WRONG_PIN),
        "the wrong PIN was shown:\n{shown}"
    );
}

/// The `body` of every `request.approved` event in the ledger's export (custodyd stopped and
/// the ledger verified first).
fn approvals_in_export(w: &mut World) -> Vec<Value> {
    let verified = w.stop_and_verify();
    assert_eq!(verified["ok"], true, "{verified}");
    let out = w.export();
    std::fs::read_to_string(&out)
        .expect("export")
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["kind"] == "request.approved")
        .map(|e| e["body"].clone())
        .collect()
}

#[test]
fn pcscd_sign_in_ceremony_with_sign_under_the_signature_policy_releases_the_code() {
    if !in_harness(
        "pcscd_sign_in_ceremony_with_sign_under_the_signature_policy_releases_the_code",
        45360,
        1,
    ) {
        return;
    }
    let [_primary, backup] = support::two_keys(
        &["--serial", &PRIMARY.to_string()],
        &["--serial", &BACKUP.to_string()],
    );
    let ca = support::fixture("piv-test-ca.pem");
    let mut w = world_with_config(&format!("piv_attestation_test_ca = \"{}\"", ca.display()));
    super::ceremony::enrol_with_wizard(&mut w, PRIMARY, BACKUP);
    // The backup goes to its safe; the second reader takes the officers' own keys.
    backup.stop();
    let own = OwnKeys {
        dir: tempfile::tempdir().expect("tmp"),
    };
    let mut key_ids = Vec::new();
    for (officer, witness, serial) in [("carol", "frank", CAROL_KEY), ("frank", "carol", FRANK_KEY)]
    {
        let key = own.plug(serial);
        let (co, cw) = (w.code(officer), w.code(witness));
        let r = w.ok4(
            &[
                "--json",
                "user",
                "key",
                "register",
                officer,
                "--witness",
                witness,
                "--serial",
                &serial.to_string(),
                "--generate",
                "--passphrase-fd",
                "3",
                "--totp-fd",
                "4",
            ],
            &format!("{}\n{}\n", user_pass(officer), user_pass(witness)),
            &format!("{co}\n{cw}\n"),
        );
        key_ids.push(
            r.json()["officer_key"]["key_id"]
                .as_str()
                .expect("key id")
                .to_owned(),
        );
        key.stop();
    }
    restart_with_policy(&mut w, "approval_proof = \"signature\"");

    // Without --sign the wizard's TOTP approval is refused by the policy.
    w.room_in_step(10);
    let mut answers = format!("dave\n{}\n", user_pass("dave"));
    answers.push_str(&w.officer_lines("carol"));
    let r = w.custody(
        &with_task(
            &["ceremony", "sign-in"],
            &["--reason", REASON, "--passphrase-fd", "3"],
        ),
        &answers,
    );
    assert_ne!(r.code, 0, "approved by TOTP:\n{}\n{}", r.out, r.err);
    assert!(
        r.err.contains("approval_proof_required"),
        "{}\n{}",
        r.out,
        r.err
    );
    let refused = r
        .out
        .lines()
        .find_map(|l| l.strip_prefix("request "))
        .expect("the request id")
        .to_owned();
    assert!(
        r.err
            .contains(&format!("custody ceremony sign-in --request {refused}\n")),
        "{}",
        r.err
    );

    // Scripted with --sign: the whole ceremony, the officers' keys swapped between the
    // approvals as the answers are fed.
    w.room_in_step(15);
    let carol = own.plug(CAROL_KEY);
    let mut fed = Fed::start(
        &w,
        &with_task(
            &["ceremony", "sign-in"],
            &[
                "--reason",
                REASON,
                "--location",
                "safe A, shelf 1",
                "--sign",
                "--passphrase-fd",
                "3",
            ],
        ),
    );
    fed.answer(&format!("dave\n{}\n", user_pass("dave")));
    fed.wait_for("is pending.");
    let started = Instant::now();
    fed.answer(&format!("carol\n{}\n{PIN}\n", user_pass("carol")));
    fed.wait_for(&format!(
        "carol: touch your YubiKey {CAROL_KEY} (in Yubico YubiKey OTP+FIDO+CCID 00 01) now"
    ));
    fed.wait_for("Approved by 1 officer(s); the request is pending.");
    let first_ms = started.elapsed().as_millis();
    carol.stop();
    let frank = own.plug(FRANK_KEY);
    let second = Instant::now();
    fed.answer(&format!("frank\n{}\n{PIN}\n", user_pass("frank")));
    fed.wait_for(&format!("frank: touch your YubiKey {FRANK_KEY}"));
    fed.wait_for("Approved by 2 officer(s); the request is approved.");
    let second_ms = second.elapsed().as_millis();
    frank.stop();
    let mut rest = w.officer_lines("grace");
    rest.push_str("BAG-0001\n");
    rest.push_str(&format!("{}\n", user_pass("dave")));
    rest.push_str(&w.officer_lines("alice"));
    rest.push_str("BAG-0003\n");
    fed.answer(&rest);
    let r = fed.finish();
    let after = w.clock.step();
    assert_eq!(r.code, 0, "sign-in --sign:\n{}\n{}", r.out, r.err);
    println!(
        "signed-ceremony: one approval in the wizard (answers given to approval recorded): \
         {first_ms} ms (first), {second_ms} ms (second)"
    );
    assert_no_pin(&format!("{}{}", r.out, r.err));
    assert!(
        !r.err.contains("Second-factor code of carol")
            && !r.err.contains("Second-factor code of frank"),
        "a signing officer was asked for a code: {}",
        r.err
    );
    let id = r
        .out
        .lines()
        .find_map(|l| l.strip_prefix("request "))
        .expect("the request id")
        .to_owned();
    let line = r
        .out
        .lines()
        .find(|l| l.starts_with(&format!("Code for {id} (device {PRIMARY}): ")))
        .unwrap_or_else(|| panic!("no code line: {}", r.out));
    let code = line.rsplit(' ').next().expect("code");
    assert!(
        [after, after - 1]
            .iter()
            .any(|s| support::clock::totp(SEED, *s) == code),
        "{code} is not the seed's code of this step or the previous one"
    );
    assert_eq!(request_status(&w, &id), "released");
    assert!(
        r.out.contains(&format!("device {PRIMARY}: in_safe")),
        "{}",
        r.out
    );

    // At a terminal, a mistyped PIN: the tries left are said, never the PIN, and the step is
    // asked again; the right PIN then approves.
    w.clock.next_step();
    let carol = own.plug(CAROL_KEY);
    let (mut t, mut child) = w.terminal(&with_task(
        &["--json", "ceremony", "sign-in"],
        &["--reason", REASON, "--sign", "--no-checkin"],
    ));
    t.expect("Requester (the operator who will sign in): name: ");
    t.type_line("dave");
    t.expect("Passphrase of dave (hidden): ");
    t.type_line(&user_pass("dave"));
    t.expect("Approving officer 1: name: ");
    t.type_line("carol");
    t.expect("Passphrase of carol (hidden): ");
    t.type_line(&user_pass("carol"));
    t.expect(&format!(
        "PIV PIN of carol's YubiKey {CAROL_KEY} (hidden): "
    ));
    t.type_line(WRONG_PIN);
    t.expect(&format!(
        "wrong PIV PIN for YubiKey {CAROL_KEY}: 2 tries left before it is blocked"
    ));
    t.expect("Let's try that step again.");
    t.expect("Approving officer 1: name: ");
    t.type_line("carol");
    t.expect("Passphrase of carol (hidden): ");
    t.type_line(&user_pass("carol"));
    t.expect(&format!(
        "PIV PIN of carol's YubiKey {CAROL_KEY} (hidden): "
    ));
    t.type_line(PIN);
    t.expect(&format!("carol: touch your YubiKey {CAROL_KEY}"));
    t.expect("Approved by 1 officer(s); the request is pending.");
    carol.stop();
    // frank's YubiKey is not plugged in yet: the wizard says so and asks again.
    t.expect("Approving officer 2: name: ");
    t.type_line("frank");
    t.expect("Passphrase of frank (hidden): ");
    t.type_line(&user_pass("frank"));
    t.expect("no YubiKey present holds frank's registered approval key");
    t.expect("plug in the YubiKey frank registered");
    t.expect("Let's try that step again.");
    let frank = own.plug(FRANK_KEY);
    t.expect("Approving officer 2: name: ");
    t.type_line("frank");
    t.expect("Passphrase of frank (hidden): ");
    t.type_line(&user_pass("frank"));
    t.expect(&format!(
        "PIV PIN of frank's YubiKey {FRANK_KEY} (hidden): "
    ));
    t.type_line(PIN);
    t.expect("Approved by 2 officer(s); the request is approved.");
    frank.stop();
    t.expect("Hand the keyboard to the custodian officer: name: ");
    t.type_line("grace");
    t.expect("Passphrase of grace (hidden): ");
    t.type_line(&user_pass("grace"));
    t.expect("Second-factor code of grace, from their authenticator (hidden): ");
    let c = w.code("grace");
    t.type_line(&c);
    t.expect(&format!("Seal number on the bag of key {PRIMARY}: "));
    t.type_line("BAG-0003");
    t.expect("Press Enter when the key is inserted. [Enter] ");
    t.type_line("");
    t.expect("Passphrase of dave (hidden): ");
    t.type_line(&user_pass("dave"));
    t.expect("\"code\":");
    let status = child.wait().expect("wizard");
    let screen = t.all();
    assert_eq!(status.code(), Some(0), "{screen}");
    assert_no_pin(&screen);
    // The wrong PIN was refused before anyone was told to touch the key.
    let (before, _) = screen.split_once("wrong PIV PIN").expect("the wrong PIN");
    let (_, asked) = before
        .rsplit_once("PIV PIN of carol's YubiKey")
        .expect("the PIN prompt");
    assert!(!asked.contains("touch"), "{screen}");
    let second_id = screen
        .split("\"request\":\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_else(|| panic!("no request in the JSON: {screen}"))
        .to_owned();
    assert_eq!(request_status(&w, &second_id), "released");

    // Both ceremonies' approvals are in the ledger as signatures by the registered keys, the
    // refused TOTP approval nowhere.
    let all = approvals_in_export(&mut w);
    assert!(
        !all.iter().any(|b| b["request"] == refused.as_str()),
        "{all:?}"
    );
    for request in [&id, &second_id] {
        let approved: Vec<&Value> = all
            .iter()
            .filter(|b| b["request"] == request.as_str())
            .collect();
        let officers: Vec<&str> = approved
            .iter()
            .filter_map(|b| b["officer"].as_str())
            .collect();
        assert_eq!(officers, ["carol", "frank"], "{approved:?}");
        for (body, key_id) in approved.iter().zip(&key_ids) {
            assert_eq!(body["proof"], "signature", "{body}");
            assert_eq!(body["key_id"], key_id.as_str(), "{body}");
        }
    }
}
