//! The ceremonies end to end through the production path: a private pcscd with the vpcd driver,
//! two `custody-emu` keys, a real `custodyd` and the `custody` binary. The enrolment and
//! sign-in wizards run scripted (`--passphrase-fd`); a key pulled while its code is being
//! computed fails cleanly; a daemon killed with SIGKILL in the middle of a sign-in resumes
//! the request after the officers unseal it, with the wizard at a terminal drawing the code's
//! countdown and erasing it; a touch that never comes fails with `touch_timeout`; `custody
//! code` names the reader to touch the key in; a wrong seal number at check-out names the
//! incident it opened, says not to open the bag and how to acknowledge it, and `device list`
//! then shows the key blocked. Every test ends with `custody ledger verify`.
//!
//! Officers' second-factor codes come from the real clock, so a test may wait for a fresh
//! 30-second step, and enrolment waits for the next step by design: each test takes up to a
//! minute.

use crate::support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::daemon::{
    device_state, request_status, run_of, unseal_pass, user_pass, with_task, world,
    world_with_touch_timeout, Run, World, ACCOUNT, OFFICERS, SEED,
};
use support::{in_harness, wait_for_card, Emu};

/// An emulated key whose touches are answered by the test: each touch request (on the
/// emulator's standard error) is answered with Enter, until [`TouchKey::pull_at_next_touch`]:
/// then the next request kills the emulator instead, as if the key were pulled out while it
/// flashed.
struct TouchKey {
    child: Child,
    pull: std::sync::Arc<std::sync::atomic::AtomicBool>,
    pulled: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// While set, the next touch is held: [`TouchKey::waiting`] turns true and the touch is
    /// given only once this is cleared.
    hold: std::sync::Arc<std::sync::atomic::AtomicBool>,
    waiting: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl TouchKey {
    fn start(slot: u16, serial: u32) -> Self {
        use std::io::{BufRead, Write};
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        let mut child = Command::new(env!("CARGO_BIN_EXE_custody-emu"))
            .args(["--serial", &serial.to_string(), "--touch", "stdin"])
            .args(["--vpcd", &support::vpcd_addr(slot)])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start custody-emu");
        let mut stdin = child.stdin.take().expect("stdin");
        let stderr = child.stderr.take().expect("stderr");
        let pid = rustix::process::Pid::from_child(&child);
        let pull = Arc::new(AtomicBool::new(false));
        let pulled = Arc::new(AtomicBool::new(false));
        let hold = Arc::new(AtomicBool::new(false));
        let waiting = Arc::new(AtomicBool::new(false));
        let (p, done) = (pull.clone(), pulled.clone());
        let (h, w) = (hold.clone(), waiting.clone());
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if !line.contains("touch requested") {
                    continue;
                }
                if p.load(Ordering::SeqCst) {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                    done.store(true, Ordering::SeqCst);
                    break;
                }
                if h.load(Ordering::SeqCst) {
                    w.store(true, Ordering::SeqCst);
                    while h.load(Ordering::SeqCst) {
                        std::thread::sleep(std::time::Duration::from_millis(10));
                    }
                    w.store(false, Ordering::SeqCst);
                }
                let _ = stdin.write_all(b"\n");
                let _ = stdin.flush();
            }
        });
        Self {
            child,
            pull,
            pulled,
            hold,
            waiting,
        }
    }

    fn hold_next_touch(&self) {
        self.hold.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether the key is flashing, waiting for the touch held by [`TouchKey::hold_next_touch`].
    fn waiting(&self) -> bool {
        self.waiting.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn give_touch(&self) {
        self.hold.store(false, std::sync::atomic::Ordering::SeqCst);
    }

    fn pull_at_next_touch(&self) {
        self.pull.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    fn pulled(&self) -> bool {
        self.pulled.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for TouchKey {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The enrolment wizard, scripted: the account registered, both keys registered, enrolled and
/// checked in. Returns the wizard's JSON (the two codes for the provider).
pub(super) fn enrol_with_wizard(w: &mut World, primary: u32, backup: u32) -> Value {
    // Everything before the enrolment's wait must happen in the step the codes were made in.
    w.room_in_step(15);
    let mut answers = String::new();
    for who in ["alice", "bob", "carol", "frank", "grace"] {
        answers.push_str(&w.officer_lines(who));
    }
    answers.push_str(&format!("{SEED}\n"));
    // After the enrolment the step has moved on: these are current-step codes of officers
    // who used only the previous one.
    answers.push_str(&w.officer_lines("alice"));
    answers.push_str("BAG-0001\n");
    answers.push_str(&w.officer_lines("bob"));
    answers.push_str("BAG-0002\n");
    let p = primary.to_string();
    let b = backup.to_string();
    let r = w.custody(
        &[
            "--json",
            "ceremony",
            "enrol",
            "--account",
            ACCOUNT,
            "--primary",
            &p,
            "--backup",
            &b,
            "--provider",
            "aws",
            "--alias",
            "prod",
            "--root-email",
            "root@example.test",
            "--credential",
            "AWS:prod-root",
            "--primary-location",
            "safe A, shelf 1",
            "--backup-location",
            "safe B, shelf 1",
            "--passphrase-fd",
            "3",
        ],
        &answers,
    );
    assert_eq!(r.code, 0, "enrol wizard:\n{}\n{}", r.out, r.err);
    assert_no_secret(&r);
    assert!(r.err.contains("Touch each key"), "{}", r.err);
    let v = r.json();
    let first_step = v["enrolled"]["first_step"].as_u64().expect("first step");
    assert_eq!(
        v["enrolled"]["first"],
        support::clock::totp(SEED, first_step).as_str()
    );
    assert_eq!(
        v["enrolled"]["second"],
        support::clock::totp(SEED, first_step + 1).as_str()
    );
    let devices = w.ok(&["--json", "device", "list"], "").json();
    let states: Vec<&str> = devices["devices"]
        .as_array()
        .expect("devices")
        .iter()
        .map(|d| d["state"]["state"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(states.len(), 2, "{devices}");
    v
}

/// No passphrase and no seed appears in a wizard's output.
fn assert_no_secret(r: &Run) {
    for o in OFFICERS.iter().chain(&["dave"]) {
        for s in [user_pass(o), unseal_pass(o)] {
            assert!(
                !r.out.contains(&s) && !r.err.contains(&s),
                "a passphrase was echoed"
            );
        }
    }
    assert!(
        !r.out.contains(SEED) && !r.err.contains(SEED),
        "the seed was echoed"
    );
}

/// grace checks `serial` out for request `id`, presenting bag seal `seal`: as it ran.
fn checkout(w: &mut World, serial: u32, seal: &str, id: &str) -> Run {
    let c = w.code("grace");
    w.custody4(
        &[
            "device",
            "checkout",
            &serial.to_string(),
            "--seal",
            seal,
            "--request",
            id,
            "--as",
            "grace",
            "--passphrase-fd",
            "3",
            "--totp-fd",
            "4",
        ],
        &format!("{}\n", user_pass("grace")),
        &format!("{c}\n"),
    )
}

/// grace checks `serial` out for request `id` (bag `BAG-0001`), then dave's `custody code`
/// is started for it (the caller decides when the key's touch comes).
fn check_out_and_start_code(w: &mut World, serial: u32, id: &str) -> std::process::Child {
    let r = checkout(w, serial, "BAG-0001", id);
    assert_eq!(r.code, 0, "device checkout:\n{}\n{}", r.out, r.err);
    // No --no-totp: an operator is never asked for a code.
    w.custody_cmd(
        &["code", id, "--as", "dave", "--passphrase-fd", "3"],
        &format!("{}\n", user_pass("dave")),
        "",
    )
    .spawn()
    .expect("custody code")
}

/// dave's request, approved by carol and frank through the plain commands.
fn approved_request(w: &mut World) -> String {
    w.room_in_step(8);
    let r = w.request_code(true, "rotate the root password after the annual audit");
    assert_eq!(r.code, 0, "request code:\n{}\n{}", r.out, r.err);
    let id = r.json()["request"]["id"].as_str().expect("id").to_owned();
    for who in ["carol", "frank"] {
        let c = w.code(who);
        w.ok4(
            &[
                "approve",
                &id,
                "--as",
                who,
                "--passphrase-fd",
                "3",
                "--totp-fd",
                "4",
            ],
            &format!("{}\n", user_pass(who)),
            &format!("{c}\n"),
        );
    }
    assert_eq!(request_status(w, &id), "approved");
    id
}

/// A world (custodyd with `touch_timeout_secs`) with keys `primary` (a [`TouchKey`], slot 0)
/// and `primary + 1` (slot 1) enrolled by the wizard, and dave's request approved: the keys,
/// the world and the request's id.
fn approved_with_a_touch_key(
    primary: u32,
    touch_timeout_secs: u64,
) -> (TouchKey, Emu, World, String) {
    let key = TouchKey::start(0, primary);
    let backup = Emu::start(1, &["--serial", &(primary + 1).to_string()]);
    wait_for_card(0);
    wait_for_card(1);
    let mut w = world_with_touch_timeout(touch_timeout_secs);
    enrol_with_wizard(&mut w, primary, primary + 1);
    let id = approved_request(&mut w);
    (key, backup, w, id)
}

#[test]
fn pcscd_enrol_and_sign_in_wizards_scripted_release_the_right_code() {
    if !in_harness(
        "pcscd_enrol_and_sign_in_wizards_scripted_release_the_right_code",
        41700,
        1,
    ) {
        return;
    }
    let cards = tempfile::tempdir().expect("tmp");
    let card_state = |s: &str| cards.path().join(s);
    let (p, b) = (card_state("p"), card_state("b"));
    let _keys = support::two_keys(
        &["--serial", "10000201", "--state", &p.to_string_lossy()],
        &["--serial", "10000202", "--state", &b.to_string_lossy()],
    );
    let mut w = world();
    let enrolled = enrol_with_wizard(&mut w, 10_000_201, 10_000_202);
    assert_eq!(device_state(&w, 10_000_201)["state"], "in_safe");
    let access_keys = [p, b].map(|s| support::access_key_on_card(&s));

    // The whole sign-in: request, two approvals, check-out, code, check-in.
    w.room_in_step(10);
    let mut answers = format!("dave\n{}\n", user_pass("dave"));
    answers.push_str(&w.officer_lines("carol"));
    answers.push_str(&w.officer_lines("frank"));
    answers.push_str(&w.officer_lines("grace"));
    answers.push_str("BAG-0001\n");
    answers.push_str(&format!("{}\n", user_pass("dave")));
    answers.push_str(&w.officer_lines("alice"));
    answers.push_str("BAG-0003\n");
    let r = w.custody(
        &with_task(
            &["ceremony", "sign-in"],
            &[
                "--reason",
                "rotate the root password after the annual audit",
                "--location",
                "safe A, shelf 1",
                "--passphrase-fd",
                "3",
            ],
        ),
        &answers,
    );
    let after = w.clock.step();
    assert_eq!(r.code, 0, "sign-in wizard:\n{}\n{}", r.out, r.err);
    assert_no_secret(&r);
    assert!(r.err.contains("Touch key 10000201 now"), "{}", r.err);
    assert!(
        r.err
            .contains("Touch the key in Yubico YubiKey OTP+FIDO+CCID 00 00 now."),
        "the wizard names the key's reader: {}",
        r.err
    );
    // Without a terminal: the results on standard output, the code and its validity once, no
    // countdown.
    assert!(
        !r.out.contains('\r') && !r.err.contains('\r'),
        "no countdown without a terminal: {:?}",
        r.out
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
        .find(|l| l.starts_with(&format!("Code for {id} (device 10000201): ")))
        .unwrap_or_else(|| panic!("no code line: {}", r.out));
    let code = line.rsplit(' ').next().expect("code");
    assert!(
        [after, after - 1]
            .iter()
            .any(|s| support::clock::totp(SEED, *s) == code),
        "{code} is not the seed's code of this step or the previous one"
    );
    assert!(
        r.out.contains("more second(s); it is shown once."),
        "{}",
        r.out
    );
    assert!(r.out.contains("device 10000201: in_safe"), "{}", r.out);
    assert_eq!(request_status(&w, &id), "released");
    let state = device_state(&w, 10_000_201);
    assert_eq!(state["state"], "in_safe", "{state}");
    assert_eq!(state["seal"], "BAG-0003", "{state}");

    let verified = w.stop_and_verify();
    assert_eq!(verified["ok"], true, "{verified}");
    // Neither device's OATH access key reached the wizards' outputs, the daemon's answers
    // shown there, its log or the ledger directory.
    let mut seen = format!("{enrolled} {} {} {state}", r.out, r.err).into_bytes();
    let mut paths = Vec::new();
    support::files_under(w.dir.path(), &mut paths);
    assert!(
        paths.iter().any(|p| p.ends_with("custodyd.log")),
        "{paths:?}"
    );
    for p in paths {
        seen.extend(std::fs::read(p).unwrap_or_default());
    }
    for key in &access_keys {
        support::assert_key_absent(&seen, key, "the outputs, the log or the ledger");
    }
}

#[test]
fn pcscd_key_pulled_during_code_exits_3_and_the_request_stays_issuing() {
    if !in_harness(
        "pcscd_key_pulled_during_code_exits_3_and_the_request_stays_issuing",
        41710,
        1,
    ) {
        return;
    }
    // The primary asks for each touch on its standard error and waits for Enter: touches are
    // given until the key is to be pulled, which happens while it waits for the code's touch.
    let (primary, _b, mut w, id) = approved_with_a_touch_key(10_000_301, 10);
    primary.pull_at_next_touch();
    let code = check_out_and_start_code(&mut w, 10_000_301, &id);
    let r = run_of(code.wait_with_output().expect("custody code"));
    assert!(
        primary.pulled(),
        "the key was never asked for the code's touch"
    );
    assert_eq!(
        r.code, 3,
        "a pulled key is a card failure:\n{}\n{}",
        r.out, r.err
    );
    assert!(r.out.is_empty(), "no code: {}", r.out);
    assert!(r.err.contains("refused (token_error): "), "{}", r.err);
    assert!(
        r.err
            .contains("Touch the key in Yubico YubiKey OTP+FIDO+CCID 00 00"),
        "the operator was told to touch the key, in its reader: {}",
        r.err
    );
    assert!(r.err.contains("10000301"), "names the device: {}", r.err);

    // Defined state: the intent was recorded, no code was released, and none ever will be
    // for this request.
    assert_eq!(request_status(&w, &id), "issuing");
    let again = w.custody(
        &[
            "code",
            &id,
            "--as",
            "dave",
            "--no-totp",
            "--passphrase-fd",
            "3",
        ],
        &format!("{}\n", user_pass("dave")),
    );
    assert_eq!(again.code, 1, "{}\n{}", again.out, again.err);
    assert!(again.err.contains("already released"), "{}", again.err);
    let verified = w.stop_and_verify();
    assert_eq!(verified["ok"], true, "{verified}");
}

#[test]
fn pcscd_custodyd_killed_mid_sign_in_resumes_after_unseal() {
    if !in_harness(
        "pcscd_custodyd_killed_mid_sign_in_resumes_after_unseal",
        41720,
        1,
    ) {
        return;
    }
    let _keys = support::two_keys(&["--serial", "10000401"], &["--serial", "10000402"]);
    let mut w = world();
    enrol_with_wizard(&mut w, 10_000_401, 10_000_402);
    let id = approved_request(&mut w);

    // SIGKILL after the approvals, before the check-out and the code; then a new daemon on the
    // same ledger starts sealed.
    let mut d = w.daemon.take().expect("daemon");
    d.kill().expect("SIGKILL");
    d.wait().expect("reaped");
    w.start_daemon();
    let r = w.custody(&["--json", "status"], "");
    assert_eq!(r.code, 6, "sealed: {}", r.err);
    let s = r.json();
    assert_eq!(s["status"]["sealed"], true, "{s}");
    w.unseal();
    assert_eq!(request_status(&w, &id), "approved");

    // The sign-in wizard resumes the request at a terminal: no new request, no new approval;
    // the code is drawn with a countdown and erased when it expires. The key's last codes were
    // the enrolment's, before this step: the release needs no wait, and with 3 s left in the
    // step the countdown lasts 3 s.
    w.clock.next_step();
    w.clock.advance(27_000);
    let (mut t, mut child) = w.terminal(&["ceremony", "sign-in", "--request", &id, "--no-checkin"]);
    t.expect(&format!("Resuming {id} (approved"));
    t.expect("Hand the keyboard to the custodian officer: name: ");
    t.type_line("grace");
    t.expect("Passphrase of grace (hidden): ");
    t.type_line(&user_pass("grace"));
    t.expect("Second-factor code of grace, from their authenticator (hidden): ");
    let c = w.code("grace");
    t.type_line(&c);
    t.expect("Seal number on the bag of key 10000401: ");
    t.type_line("BAG-0001");
    t.expect("Press Enter when the key is inserted. [Enter] ");
    t.type_line("");
    t.expect("Passphrase of dave (hidden): ");
    t.type_line(&user_pass("dave"));
    t.expect("Touch key 10000401 now");
    t.expect(&format!("Code for {id} (device 10000401):"));
    let after = w.clock.step();
    t.expect("more second(s) ");
    t.expect_within("The code has expired and was cleared from the screen.", 40);
    let status = child.wait().expect("wizard");
    assert_eq!(status.code(), Some(0), "{}", t.all());
    let screen = t.all();
    let shown = screen
        .split("\r    ")
        .nth(1)
        .and_then(|f| f.get(..6))
        .unwrap_or_else(|| panic!("no countdown frame:\n{screen:?}"))
        .to_owned();
    assert!(
        [after, after - 1]
            .iter()
            .any(|s| support::clock::totp(SEED, *s) == shown),
        "{shown} is not the seed's code of this step or the previous one"
    );
    // Each frame rewrites the line; after the last one the line is erased, and the code is
    // never shown again.
    assert!(
        screen
            .matches(&format!("\r    {shown}    valid for"))
            .count()
            >= 1
    );
    let (_, after_erase) = screen.rsplit_once("\r\x1b[2K").expect("the line is erased");
    assert!(!after_erase.contains(&shown), "{screen:?}");
    for secret in [user_pass("grace"), user_pass("dave"), c] {
        assert!(!screen.contains(&secret), "a secret was echoed");
    }
    assert_eq!(request_status(&w, &id), "released");
    assert_eq!(device_state(&w, 10_000_401)["state"], "checked_out");
    let verified = w.stop_and_verify();
    assert_eq!(verified["ok"], true, "{verified}");
}

#[test]
fn pcscd_a_touch_that_never_comes_fails_with_touch_timeout() {
    if !in_harness(
        "pcscd_a_touch_that_never_comes_fails_with_touch_timeout",
        41730,
        1,
    ) {
        return;
    }
    // The primary's touch never comes (it would answer after ten minutes).
    let _keys = support::two_keys(
        &["--serial", "10000501", "--touch", "delay=600000"],
        &["--serial", "10000502"],
    );
    let mut w = world_with_touch_timeout(2);
    w.room_in_step(15);
    let mut answers = String::new();
    for who in ["alice", "bob", "carol", "frank", "grace"] {
        answers.push_str(&w.officer_lines(who));
    }
    answers.push_str(&format!("{SEED}\n"));
    let started = Instant::now();
    let r = w.custody(
        &[
            "ceremony",
            "enrol",
            "--account",
            ACCOUNT,
            "--primary",
            "10000501",
            "--backup",
            "10000502",
            "--provider",
            "aws",
            "--alias",
            "prod",
            "--root-email",
            "root@example.test",
            "--credential",
            "AWS:prod-root",
            "--passphrase-fd",
            "3",
        ],
        &answers,
    );
    let took = started.elapsed();
    assert_eq!(
        r.code, 3,
        "a missing touch is a card failure:\n{}\n{}",
        r.out, r.err
    );
    assert!(
        r.err.contains("refused (touch_timeout): device 10000501")
            && r.err.contains("was not touched within touch_timeout_secs"),
        "{}",
        r.err
    );
    assert!(
        took < Duration::from_secs(25),
        "bounded by the 2 s touch timeout, not the key: {took:?}"
    );
    // Nothing was enrolled, and custodyd still answers.
    for serial in [10_000_501, 10_000_502] {
        assert_eq!(device_state(&w, serial)["state"], "registered");
    }
    let verified = w.stop_and_verify();
    assert_eq!(verified["ok"], true, "{verified}");
}

#[test]
fn pcscd_a_release_waiting_for_a_touch_holds_up_nobody_else() {
    if !in_harness(
        "pcscd_a_release_waiting_for_a_touch_holds_up_nobody_else",
        41740,
        1,
    ) {
        return;
    }
    let (primary, _b, mut w, id) = approved_with_a_touch_key(10_000_601, 60);
    primary.hold_next_touch();
    let code = check_out_and_start_code(&mut w, 10_000_601, &id);
    let flashing = Instant::now();
    while !primary.waiting() {
        assert!(
            flashing.elapsed() < Duration::from_secs(30),
            "the key was never asked for the code's touch"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // While the key flashes and nobody touches it, everyone else is answered: each read ends
    // while the touch is still held. Before the service lock was released around card I/O,
    // each of these waited for the touch, which here only comes after them (or for the 60 s
    // touch timeout, which ends the wait by failing the release).
    for args in [
        &["--json", "status"][..],
        &["--json", "request", "list"][..],
        &["--json", "device", "list"][..],
    ] {
        w.ok(args, "");
        assert!(
            primary.waiting(),
            "`custody {}` was answered only once the release stopped waiting for its touch",
            args.join(" ")
        );
    }
    primary.give_touch();
    let r = run_of(code.wait_with_output().expect("custody code"));
    assert_eq!(r.code, 0, "the code after the touch:\n{}\n{}", r.out, r.err);
    let code_shown = r
        .out
        .lines()
        .next()
        .and_then(|l| l.rsplit(": ").next())
        .unwrap_or("");
    assert!(
        code_shown.len() == 6 && code_shown.bytes().all(|b| b.is_ascii_digit()),
        "one code: {}",
        r.out
    );
    assert_eq!(request_status(&w, &id), "released");
    let verified = w.stop_and_verify();
    assert_eq!(verified["ok"], true, "{verified}");
}

#[test]
fn pcscd_custody_code_names_the_reader_to_touch_the_key_in() {
    if !in_harness(
        "pcscd_custody_code_names_the_reader_to_touch_the_key_in",
        44600,
        1,
    ) {
        return;
    }
    // The primary (slot 0) is in the first vpcd reader, the backup (slot 1) in the second:
    // the prompt names the one custodyd opened the checked-out key in.
    let (_primary, _b, mut w, id) = approved_with_a_touch_key(10_000_501, 10);
    let code = check_out_and_start_code(&mut w, 10_000_501, &id);
    let r = run_of(code.wait_with_output().expect("custody code"));
    assert_eq!(r.code, 0, "custody code:\n{}\n{}", r.out, r.err);
    let touch = r
        .err
        .lines()
        .find(|l| l.starts_with("Touch the key in "))
        .unwrap_or_else(|| panic!("no touch prompt: {}", r.err));
    assert!(
        touch.starts_with("Touch the key in Yubico YubiKey OTP+FIDO+CCID 00 00: ")
            && touch.contains("key 10000501")
            && touch.contains(&id)
            && touch.contains("waits 10 s"),
        "{touch}"
    );
    assert!(
        !r.err.contains("OTP+FIDO+CCID 01 00") && !r.err.contains("CCID 1 "),
        "only the key's own reader is named: {}",
        r.err
    );
    assert!(r.out.contains("Code for"), "{}", r.out);
    w.stop_and_verify();
}

#[test]
fn pcscd_a_wrong_seal_at_check_out_names_the_incident_and_the_key_lists_blocked() {
    if !in_harness(
        "pcscd_a_wrong_seal_at_check_out_names_the_incident_and_the_key_lists_blocked",
        44610,
        1,
    ) {
        return;
    }
    let _primary = Emu::start(0, &["--serial", "10000601"]);
    let _backup = Emu::start(1, &["--serial", "10000602"]);
    wait_for_card(0);
    wait_for_card(1);
    let mut w = world();
    // Enrolled through pcscd and sealed in BAG-0001 (primary) and BAG-0002 (backup).
    enrol_with_wizard(&mut w, 10_000_601, 10_000_602);
    let id = approved_request(&mut w);
    // The officer reads the bag's number wrong by one character.
    let r = checkout(&mut w, 10_000_601, "BAG-0007", &id);
    assert_eq!(r.code, 1, "a refusal:\n{}\n{}", r.out, r.err);
    assert!(r.out.is_empty(), "{}", r.out);
    let incident = r
        .err
        .split_whitespace()
        .find(|w| w.starts_with("inc-"))
        .map(|w| w.trim_end_matches(|c: char| !c.is_ascii_hexdigit()))
        .unwrap_or_else(|| panic!("no incident id: {}", r.err))
        .to_owned();
    for said in [
        "refused (seal_mismatch): ",
        "recorded BAG-0001, presented BAG-0007",
        "Do not open the bag",
        &format!("Incident {incident} is open and blocks the device"),
        &format!("custody incident ack {incident} --note"),
    ] {
        assert!(r.err.contains(said), "{said:?} in {}", r.err);
    }
    // The list says so before anyone tries again.
    let list = w.ok(&["device", "list"], "");
    let line = list
        .out
        .lines()
        .find(|l| l.starts_with("10000601"))
        .unwrap_or_else(|| panic!("10000601 in {}", list.out));
    assert!(
        line.contains(&format!("BLOCKED by incident {incident} (in_safe)")),
        "{line}"
    );
    let backup = list
        .out
        .lines()
        .find(|l| l.starts_with("10000602"))
        .unwrap_or_else(|| panic!("10000602 in {}", list.out));
    assert!(
        !backup.contains("BLOCKED"),
        "only the mismatched key: {backup}"
    );
    // And the key stays in the safe: the right number no longer opens it either.
    let r = checkout(&mut w, 10_000_601, "BAG-0001", &id);
    assert_eq!(r.code, 1, "{}\n{}", r.out, r.err);
    assert!(r.err.contains("refused (device_blocked)"), "{}", r.err);
    w.stop_and_verify();
}
