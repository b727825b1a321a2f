//! Card faults during a code release, through a real pcscd with the vpcd driver and
//! `custody-emu`'s fault knobs, released through the `PcscAccess` custodyd opens devices with
//! (one per operation, from the shipped configuration): the card removed at the first APDU and
//! at the calculation, a garbage and a truncated answer, an answer that never finishes (`61xx`
//! forever), very slow answers, a different key under the expected reader name (same serial,
//! another OATH applet; another serial), and a touch never given.
//!
//! For each: the release gives an error naming what failed, the request is left in a defined
//! state (`approved`: nothing was asked of the card yet, the release may be retried;
//! `issuing`: `code.issuing` was committed before the card was asked, so the request is spent
//! and a retry is refused `already_released`), and the ledger verifies. One line per fault:
//! `card-fault: fault=NAME error=CODE status=STATE retry=RESULT ms=N ledger=verified`.
//!
//! `cargo test` runs three of the faults; `CUSTODY_CARD_FAULTS=all` (in `make soak`) runs all
//! eleven. A separate test stops pcscd itself after the check-out and starts it again.
//!
//! The clock is the host's moved forward when the domain waits for a step, as in
//! tests/it/pcscd/signin.rs.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mfa_custody::custody::{
    Clock, Credentials, Custody, DeviceAccess, DeviceRole, Location, RequestId, RequestStatus,
    SealNumber, Serial,
};
use mfa_custody::daemon::access::PcscAccess;
use mfa_custody::ledger::verify_ledger;
use mfa_custody::token::pcsc::PcscContext;
use support::clock::{step_of_ms, totp};
use support::domain::{self, People, SEED_B32};
use support::{
    custodyd_devices, in_harness, reader_events, reader_name, remove_card_seen_at, vpcd_addr,
};

const PRIMARY: u32 = 10_000_201;
const BACKUP: u32 = 10_000_202;

fn serial(s: u32) -> Serial {
    Serial::new(s).expect("serial")
}

/// An emulated key in slot 0 or 1, its log (with `-v`) in a file.
struct Key {
    child: Child,
    log: PathBuf,
    /// pcscd's event count for the slot once it saw this key arrive.
    seen: u32,
}

/// Whether a card shows in `slot`'s reader within `secs`.
fn card_within(slot: u8, secs: u64) -> bool {
    let reader = reader_name(slot);
    let ctx = PcscContext::establish().expect("pcscd is running");
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if let Ok(card) = ctx.connect(&reader) {
            let _ = card.disconnect(false);
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

impl Key {
    /// Starts a key in `slot` and waits for pcscd to see it.
    fn start(slot: u8, args: &[String], log: &Path) -> Self {
        let mut key = Self::spawn(slot, args, log);
        assert!(card_within(slot, 15), "no card appeared in slot {slot}");
        key.seen = reader_events(slot).1;
        key
    }

    fn spawn(slot: u8, args: &[String], log: &Path) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_custody-emu"))
            .args(args)
            .args(["--vpcd", &vpcd_addr(u16::from(slot)), "-v"])
            .stdin(Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(log)
                    .expect("log"),
            )
            .spawn()
            .expect("start custody-emu");
        Self {
            child,
            log: log.to_path_buf(),
            seen: 0,
        }
    }

    /// APDUs answered (or refused by a fault) so far.
    fn apdus(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .matches("vpcd: APDU")
            .count()
    }

    /// Pulls the key out of `slot`; returns once pcscd has seen it leave, so the next key may
    /// go into the same slot at once (`support::remove_card`).
    fn stop(mut self, slot: u8) {
        remove_card_seen_at(slot, self.seen, || {
            let _ = self.child.kill();
            let _ = self.child.wait();
        });
    }
}

struct World {
    custody: Custody,
    people: People,
    seal: u32,
}

impl World {
    fn creds(&self, user: &str) -> Credentials {
        self.people.creds(user)
    }

    /// A request of oscar's, approved by two officers, with the primary checked out for it.
    fn approved_and_checked_out(&mut self) -> RequestId {
        let oscar = self
            .custody
            .authenticate(&self.creds("oscar"))
            .expect("oscar");
        let r = self
            .custody
            .create_request(
                &oscar,
                domain::new_request("rotate the root password after staff change"),
            )
            .expect("request");
        for o in ["alice", "bob"] {
            let c = self.creds(o);
            self.custody.approve(&r.id, &c).expect("approval");
        }
        let a = self
            .custody
            .authenticate(&self.creds("alice"))
            .expect("alice");
        self.custody
            .check_out(
                &a,
                serial(PRIMARY),
                &SealNumber::parse(&format!("SEAL-P{}", self.seal)).expect("seal"),
                Some(&r.id),
            )
            .expect("check out");
        r.id
    }

    /// Two officers acknowledge every open incident (which unblocks its device); answers how
    /// many there were.
    fn acknowledge_incidents(&mut self) -> usize {
        let a = self
            .custody
            .authenticate(&self.creds("alice"))
            .expect("alice");
        let b = self.custody.authenticate(&self.creds("bob")).expect("bob");
        let mut n = 0;
        for i in self.custody.incidents().expect("incidents") {
            if i.open {
                self.custody
                    .acknowledge_incident(&a, &b, &i.id, "fault injected by the test")
                    .expect("acknowledge");
                n += 1;
            }
        }
        n
    }

    /// Seals the primary into a new bag.
    fn check_in(&mut self) {
        self.acknowledge_incidents();
        let a = self
            .custody
            .authenticate(&self.creds("alice"))
            .expect("alice");
        self.seal += 1;
        self.custody
            .check_in(
                &a,
                &mut custodyd_devices(),
                serial(PRIMARY),
                SealNumber::parse(&format!("SEAL-P{}", self.seal)).expect("seal"),
                Location::parse("safe 1").expect("location"),
            )
            .expect("check in");
    }

    fn release(&mut self, id: &RequestId) -> Result<String, String> {
        self.release_through(id, &mut custodyd_devices())
    }

    fn release_through(&mut self, id: &RequestId, keys: &mut PcscAccess) -> Result<String, String> {
        let oscar = self
            .custody
            .authenticate(&self.creds("oscar"))
            .expect("oscar");
        match self.custody.release_code(&oscar, id, keys) {
            Ok(code) => {
                assert_eq!(
                    code.code.as_str(),
                    totp(SEED_B32, step_of_ms(self.people.clock.now_ms()))
                );
                Ok("ok".into())
            }
            Err(e) => Err(format!("{}: {e}", e.code())),
        }
    }
}

fn setup(dir: &Path) -> World {
    let (custody, people) = domain::bootstrapped(&dir.join("ledger"));
    let mut w = World {
        custody,
        people,
        seal: 1,
    };
    let a = w.custody.authenticate(&w.creds("alice")).expect("alice");
    let b = w.custody.authenticate(&w.creds("bob")).expect("bob");
    domain::add_operator(&mut w.custody, &a, "oscar");
    domain::register_aws_account(&mut w.custody, &a);
    for (s, role) in [(PRIMARY, DeviceRole::Primary), (BACKUP, DeviceRole::Backup)] {
        // A key that has just appeared is sometimes not identified at the first try (see the
        // report of this harness in docs/reliability.md): once more after a moment.
        let first = w
            .custody
            .register_device(&a, &mut custodyd_devices(), serial(s), role);
        if let Err(e) = first {
            println!("card-fault: setup register {s} retried after: {e}");
            std::thread::sleep(Duration::from_millis(500));
            w.custody
                .register_device(&a, &mut custodyd_devices(), serial(s), role)
                .expect("register");
        }
    }
    w.custody
        .enrol(
            &a,
            &b,
            &mut custodyd_devices(),
            domain::enrolment(PRIMARY, BACKUP),
        )
        .expect("enrol");
    for (s, seal) in [(PRIMARY, "SEAL-P1"), (BACKUP, "SEAL-B1")] {
        w.custody
            .check_in(
                &a,
                &mut custodyd_devices(),
                serial(s),
                SealNumber::parse(seal).expect("seal"),
                Location::parse("safe 1").expect("location"),
            )
            .expect("check in");
    }
    w
}

#[test]
fn pcscd_card_faults_during_release_leave_a_defined_request_and_a_verified_ledger() {
    let _alone = crate::support::alone();
    if !in_harness(
        "pcscd_card_faults_during_release_leave_a_defined_request_and_a_verified_ledger",
        43700,
        1,
    ) {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let state = tmp.path().join("primary.state");
    let log = std::env::var_os("CUSTODY_FAULTS_LOG")
        .map_or_else(|| tmp.path().join("primary.log"), PathBuf::from);
    let primary_args = |extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = vec![
            "--serial".into(),
            PRIMARY.to_string(),
            "--state".into(),
            state.to_string_lossy().into_owned(),
        ];
        a.extend(extra.iter().map(|s| (*s).to_owned()));
        a
    };
    let mut primary = Key::start(0, &primary_args(&[]), &log);
    let backup = Key::start(
        1,
        &[
            "--serial".into(),
            BACKUP.to_string(),
            "--state".into(),
            tmp.path()
                .join("backup.state")
                .to_string_lossy()
                .into_owned(),
        ],
        &tmp.path().join("backup.log"),
    );
    let mut w = setup(tmp.path());
    // The backup is not needed past enrolment. The primary is restarted in its own slot, at
    // once after pcscd has seen it leave.
    backup.stop(1);
    let restart = |key: Key, args: &[String]| -> Key {
        key.stop(0);
        Key::start(0, args, &log)
    };

    // A clean release, to count the APDUs it takes: the last one is the calculation.
    let id = w.approved_and_checked_out();
    let before = primary.apdus();
    assert_eq!(w.release(&id), Ok("ok".into()));
    let per_release = primary.apdus() - before;
    assert!(
        per_release >= 2,
        "a release takes several APDUs: {per_release}"
    );
    let last = (per_release - 1).to_string();
    w.check_in();
    println!("card-fault: baseline apdus={per_release}");

    let other_state = tmp.path().join("clone.state");
    let faults: Vec<(&str, Vec<String>, &[&str])> = vec![
        (
            "removed_at_first_apdu",
            primary_args(&["--drop-after", "0"]),
            &["device_unavailable"],
        ),
        (
            "removed_at_calculate",
            primary_args(&["--drop-after", &last]),
            &["token_error"],
        ),
        // The first APDU is the identity probe; when its answer is unreadable the probe falls
        // back to the yubikey crate's own, so the release may go through.
        (
            "garbage_first_answer",
            primary_args(&["--garbage-after", "0"]),
            &["ok", "device_unavailable"],
        ),
        (
            "truncated_first_answer",
            primary_args(&["--corrupt-after", "0"]),
            &["ok", "device_unavailable"],
        ),
        (
            "garbage_calculate_answer",
            primary_args(&["--garbage-after", &last]),
            &["token_error"],
        ),
        (
            "truncated_calculate_answer",
            primary_args(&["--corrupt-after", &last]),
            &["token_error"],
        ),
        (
            "endless_61xx_at_calculate",
            primary_args(&["--endless-more-data-after", &last]),
            &["token_error"],
        ),
        (
            "slow_answers_300ms",
            primary_args(&["--delay-ms", "300"]),
            &["ok"],
        ),
        (
            "touch_never_given",
            primary_args(&["--touch", "deny"]),
            &["token_error"],
        ),
        (
            "same_serial_other_applet",
            vec![
                "--serial".into(),
                PRIMARY.to_string(),
                "--state".into(),
                other_state.to_string_lossy().into_owned(),
            ],
            &["device_mismatch"],
        ),
        (
            "other_serial_in_the_reader",
            vec!["--serial".into(), "10000299".into()],
            &["device_unavailable"],
        ),
    ];
    // cargo test runs three representative faults; CUSTODY_CARD_FAULTS=all (make soak) runs
    // every one.
    let all = std::env::var("CUSTODY_CARD_FAULTS").is_ok_and(|v| v == "all");
    let quick = [
        "removed_at_calculate",
        "endless_61xx_at_calculate",
        "same_serial_other_applet",
    ];
    let faults: Vec<_> = faults
        .into_iter()
        .filter(|f| all || quick.contains(&f.0))
        .collect();
    let want = faults.len();
    let mut seen = 0;
    for (fault, args, expected) in faults {
        let id = w.approved_and_checked_out();
        primary = restart(primary, &args);
        let t0 = Instant::now();
        let result = w.release(&id);
        let ms = t0.elapsed().as_millis();
        let code = match &result {
            Ok(ok) => ok.clone(),
            Err(e) => e.split(':').next().unwrap_or("").to_owned(),
        };
        assert!(
            expected.contains(&code.as_str()),
            "{fault}: expected one of {expected:?}, got {result:?}"
        );
        if let Err(e) = &result {
            // A clear error names the device or its reader.
            assert!(
                e.contains(&PRIMARY.to_string()) || e.contains("Yubico YubiKey"),
                "{fault}: the error names neither the device nor the reader: {e}"
            );
        }
        let status = w.custody.request(&id).expect("request").status;
        verify_ledger(w.custody.ledger()).expect("the ledger verifies after the fault");

        // Back to a sound key: incidents acknowledged, the request retried, the key sealed
        // again.
        let incidents = w.acknowledge_incidents();
        primary = restart(primary, &primary_args(&[]));
        let retry = match w.release(&id) {
            Ok(_) => "ok".to_owned(),
            Err(e) => e.split(':').next().unwrap_or("").to_owned(),
        };
        match (result.is_ok(), status) {
            (true, RequestStatus::Released) => assert_eq!(retry, "already_released"),
            (false, RequestStatus::Approved) => assert_eq!(
                retry, "ok",
                "{fault}: an approved request releases on retry"
            ),
            (false, RequestStatus::Issuing) => assert_eq!(
                retry, "already_released",
                "{fault}: an issuing request is spent"
            ),
            other => panic!("{fault}: undefined state {other:?}"),
        }
        w.check_in();
        verify_ledger(w.custody.ledger()).expect("the ledger verifies after recovery");
        println!(
            "card-fault: fault={fault} error={code} status={} incidents={incidents} retry={retry} ms={ms} ledger=verified",
            format!("{status:?}").to_lowercase()
        );
        seen += 1;
    }
    assert_eq!(seen, want);
    primary.stop(0);
}

/// The pid of the harness's pcscd (its pid file is private to the harness's namespace).
fn pcscd_pid() -> i32 {
    std::fs::read_to_string("/run/pcscd/pcscd.pid")
        .expect("pcscd's pid file")
        .trim_matches(|c: char| c.is_whitespace() || c == '\0')
        .parse()
        .expect("a pid")
}

/// Whether `pid` is gone or a zombie (the harness script reaps pcscd only when the test ends).
fn exited(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| {
        s.rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z'))
    })
}

/// Stops the harness's pcscd with SIGTERM and waits until it has exited.
fn stop_pcscd() {
    let pid = pcscd_pid();
    let p = rustix::process::Pid::from_raw(pid).expect("a pid");
    rustix::process::kill_process(p, rustix::process::Signal::TERM).expect("signal pcscd");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !exited(pid) {
        assert!(Instant::now() < deadline, "pcscd {pid} did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts pcscd again with the harness's command line and waits until it answers.
// Not waited for: it stays up as the harness's pcscd, which with-pcscd.sh stops at the end.
#[allow(clippy::zombie_processes)]
fn start_pcscd(log: &Path) {
    let cmd = std::env::var("CUSTODY_PCSCD_CMD").expect("with-pcscd.sh exports pcscd's command");
    let mut words = cmd.split_whitespace();
    let out = std::fs::File::create(log).expect("pcscd log");
    Command::new(words.next().expect("pcscd's path"))
        .args(words)
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("log"))
        .stderr(out)
        .spawn()
        .expect("start pcscd again");
    let deadline = Instant::now() + Duration::from_secs(10);
    while PcscContext::establish().and_then(|c| c.readers()).is_err() {
        assert!(Instant::now() < deadline, "pcscd did not come back");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// pcscd stopped after the approvals and the check-out, and started again: the release while
/// it is down fails naming pcscd and leaves the request defined; once it is back (and the
/// emulated keys have reconnected to vpcd) the release goes through a `PcscAccess` that had
/// reached pcscd before it stopped, or is refused `already_released` when the failed one had
/// committed `code.issuing`.
#[test]
fn pcscd_restarted_mid_ceremony_leaves_a_defined_request_and_a_verified_ledger() {
    let _alone = crate::support::alone();
    if !in_harness(
        "pcscd_restarted_mid_ceremony_leaves_a_defined_request_and_a_verified_ledger",
        43900,
        1,
    ) {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let key = |s: u32, slot: u8| {
        Key::start(
            slot,
            &[
                "--serial".into(),
                s.to_string(),
                "--state".into(),
                tmp.path()
                    .join(format!("{s}.state"))
                    .to_string_lossy()
                    .into_owned(),
            ],
            &tmp.path().join(format!("{s}.log")),
        )
    };
    let primary = key(PRIMARY, 0);
    let backup = key(BACKUP, 1);
    let mut w = setup(tmp.path());
    let id = w.approved_and_checked_out();
    // One operation may span a pcscd restart (an enrolment waits for the next step between
    // its two keys): this access reaches pcscd before the restart and releases after it.
    let mut spanning = custodyd_devices();
    spanning
        .open(serial(PRIMARY))
        .map(drop)
        .expect("the primary, before pcscd stops");

    let t0 = Instant::now();
    stop_pcscd();
    let down = w.release(&id);
    let err = down.expect_err("no release without pcscd");
    let code = err.split(':').next().unwrap_or("").to_owned();
    assert!(
        ["device_unavailable", "token_error"].contains(&code.as_str()),
        "{err}"
    );
    assert!(
        err.contains("pcscd"),
        "the error does not name pcscd: {err}"
    );
    let status = w.custody.request(&id).expect("request").status;
    verify_ledger(w.custody.ledger()).expect("the ledger verifies while pcscd is down");

    start_pcscd(&tmp.path().join("pcscd-again.log"));
    assert!(
        card_within(0, 20),
        "the primary did not reconnect to vpcd after pcscd came back"
    );
    let back_ms = t0.elapsed().as_millis();
    let retry = match w.release_through(&id, &mut spanning) {
        Ok(_) => "ok".to_owned(),
        Err(e) => e.split(':').next().unwrap_or("").to_owned(),
    };
    match status {
        RequestStatus::Approved => assert_eq!(retry, "ok", "an approved request releases"),
        RequestStatus::Issuing => assert_eq!(retry, "already_released", "issuing is spent"),
        other => panic!("undefined state {other:?} after a release without pcscd"),
    }
    w.check_in();
    verify_ledger(w.custody.ledger()).expect("the ledger verifies after pcscd came back");
    println!(
        "card-fault: fault=pcscd_restarted error={code} status={} retry={retry} back_ms={back_ms} ledger=verified",
        format!("{status:?}").to_lowercase()
    );
    // The harness goes away with the test: no need to wait for pcscd to see the keys leave.
    for mut k in [primary, backup] {
        let _ = k.child.kill();
        let _ = k.child.wait();
    }
}
