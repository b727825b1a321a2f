//! What the integration tests share. The pcscd tests each re-run themselves inside
//! `scripts/with-pcscd.sh` (a private pcscd with vpcd readers in its own mount namespace), on
//! their own TCP ports, so tests run in parallel without meeting each other or the host's pcscd.
#![allow(dead_code)]

pub mod cli;
pub mod clock;
pub mod custodyd;
pub mod daemon;
pub mod domain;
pub mod ledger;
pub mod officer_keys;
pub mod rig;
pub mod rng;
pub mod tty;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use mfa_custody::daemon::access::PcscAccess;
use mfa_custody::daemon::config::Config;
use mfa_custody::token::pcsc::PcscContext;
use mfa_custody::token::TransportError;

/// Held for its whole run by each test that loads the machine (hundreds of clients, kill
/// loops, card faults behind pcscd) or times the daemon's answers to the second: all tests
/// share one process and run side by side, and none of these runs beside another of them.
/// A test that runs itself inside the pcscd harness takes it before [`in_harness`], in the
/// process that waits for the harness.
pub fn alone() -> MutexGuard<'static, ()> {
    static ALONE: Mutex<()> = Mutex::new(());
    // A test that failed while holding it leaves nothing behind for the next one.
    ALONE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The reader name pcscd gives vpcd slot `n` of the first reader entry.
pub fn reader_name(slot: u8) -> String {
    format!("Yubico YubiKey OTP+FIDO+CCID 00 {slot:02}")
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture(name: &str) -> PathBuf {
    repo().join("hsm-fixtures").join(name)
}

/// Devices opened as custodyd opens them: its [`PcscAccess`], built from the daemon options of
/// the shipped configuration (`packaging/custody.toml`: allowed readers, touch timeout). Like
/// custodyd, call it once per operation.
pub fn custodyd_devices() -> PcscAccess {
    let config = Config::load(&repo().join("packaging/custody.toml")).expect("the shipped config");
    PcscAccess::new(&config.daemon_options())
}

fn require_packages() {
    let pcscd = ["/usr/sbin/pcscd", "/usr/bin/pcscd", "/sbin/pcscd"]
        .iter()
        .any(|p| Path::new(p).exists());
    let vpcd = Path::new("/usr/lib/pcsc/drivers/serial/libifdvpcd.so").exists();
    assert!(
        pcscd && vpcd,
        "pcscd (package pcscd) and the vpcd driver (package vsmartcard-vpcd) are required: run `make deps`"
    );
    assert!(
        rustix::process::geteuid().is_root(),
        "the pcscd tests need root (unshare -m for a private pcscd), as CI runs them"
    );
}

/// The full name of the running test (`pcscd::e2e::NAME`), as `--exact` wants it to run that
/// test alone: libtest runs each test on a thread named after it. `test` is the function's
/// name, checked against the thread's so a test cannot re-run another by mistake.
pub fn current_test(test: &str) -> String {
    let thread = std::thread::current();
    let name = thread.name().unwrap_or_default();
    assert!(
        name.rsplit("::").next() == Some(test),
        "{test:?} is not the running test (thread {name:?}): call this from the test's own thread"
    );
    name.to_owned()
}

/// The full name of test `test` of module `module` (its `module_path!()`), as `--exact` wants it.
pub fn test_in(module: &str, test: &str) -> String {
    let path = module.split_once("::").map_or("", |(_crate, path)| path);
    format!("{path}::{test}")
}

/// True when the caller is the re-run inside the harness and should do the test's work. When
/// false, the test has just run itself inside a fresh harness (readers × 2 vpcd slots from
/// `port`), and that run succeeded.
pub fn in_harness(test: &str, port: u16, readers: u8) -> bool {
    if std::env::var_os("CUSTODY_PCSCD_HARNESS").is_some() {
        return true;
    }
    require_packages();
    let test = &current_test(test);
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut child = Command::new(repo().join("scripts/with-pcscd.sh"))
        .args([
            "--port",
            &port.to_string(),
            "--readers",
            &readers.to_string(),
            "--",
        ])
        .arg(exe)
        .args([
            "--exact",
            test,
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env_remove("CUSTODY_PCSCD_NS")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run scripts/with-pcscd.sh");
    // Its output is passed on line by line as it comes, so a long run stopped from outside
    // has shown how far it got.
    let mut err = child.stderr.take().expect("stderr");
    let errors = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = std::io::Read::read_to_end(&mut err, &mut text);
        text
    });
    let mut stdout = String::new();
    for line in std::io::BufRead::lines(std::io::BufReader::new(
        child.stdout.take().expect("stdout"),
    )) {
        let line = line.unwrap_or_default();
        println!("{line}");
        stdout.push_str(&line);
        stdout.push('\n');
    }
    let status = child.wait().expect("the harness's status");
    eprint!(
        "{}",
        String::from_utf8_lossy(&errors.join().unwrap_or_default())
    );
    assert!(
        status.success(),
        "{test} failed inside the pcscd harness: {status}"
    );
    // A name that matches no test would run nothing and pass: insist that exactly this one ran.
    assert!(
        stdout.contains("test result: ok. 1 passed"),
        "{test} did not run inside the pcscd harness (is the name given to in_harness right?)"
    );
    false
}

/// The vpcd port of slot `slot` in this harness.
pub fn vpcd_addr(slot: u16) -> String {
    let port: u16 = std::env::var("CUSTODY_VPCD_PORT")
        .expect("inside the harness")
        .parse()
        .expect("a port");
    format!("127.0.0.1:{}", port + slot)
}

/// A running `custody-emu`, killed on drop.
pub struct Emu {
    pub child: Child,
    slot: u8,
}

impl Emu {
    pub fn start(slot: u16, args: &[&str]) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_custody-emu"))
            .args(args)
            .args(["--vpcd", &vpcd_addr(slot)])
            .args(std::env::var_os("CUSTODY_EMU_VERBOSE").map(|_| "-v"))
            .stdin(Stdio::null())
            .spawn()
            .expect("start custody-emu");
        Self {
            child,
            slot: u8::try_from(slot).expect("a vpcd slot"),
        }
    }

    /// Pulls the key out: the process ends, and this returns once pcscd has seen the card
    /// leave (see [`remove_card`]), so another key may go into the same slot at once.
    pub fn stop(self) {
        self.stop_while(|| {});
    }

    /// [`Emu::stop`], running `meanwhile` once the key's process has ended and before pcscd is
    /// known to have seen it leave (a client still using the card, say).
    pub fn stop_while(mut self, meanwhile: impl FnOnce()) {
        remove_card(self.slot, || {
            let _ = self.child.kill();
            let _ = self.child.wait();
            meanwhile();
        });
    }
}

impl Drop for Emu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The reader of `slot` as pcscd reports it to SCardGetStatusChange: whether it holds a card,
/// and its event count (the upper 16 bits of the event state), which pcscd's event handler
/// moves each time it sees a card arrive or leave.
pub fn reader_events(slot: u8) -> (bool, u32) {
    let ctx = pcsc::Context::establish(pcsc::Scope::User).expect("pcscd is running");
    let name = std::ffi::CString::new(reader_name(slot)).expect("a reader name");
    let mut states = [pcsc::ReaderState::new(name, pcsc::State::UNAWARE)];
    ctx.get_status_change(Duration::from_secs(5), &mut states)
        .expect("the reader's state");
    let present = states[0].event_state().contains(pcsc::State::PRESENT);
    (present, states[0].event_count())
}

/// Takes the card out of `slot` (`pull` ends the key's process or its connection) and waits
/// until pcscd's event handler has seen it leave: the reader is empty *and* its event count
/// has moved past the count it had while the card was there.
///
/// An empty reader alone is not enough. When a client's command fails on a card that has gone,
/// pcscd's reset on disconnect marks the reader empty for clients at once, while its event
/// handler, which learns of cards only by polling vpcd, still holds the old card as present.
/// vpcd answers that poll with the next key that has connected to the slot, so a key started
/// before the handler's next poll is taken for the old card: the handler sees no removal and no
/// insertion, never powers the new card up, and the reader stays empty to clients until that
/// key leaves too (docs/reliability.md, "A key put back into the same slot").
pub fn remove_card(slot: u8, pull: impl FnOnce()) {
    let (present, seen) = reader_events(slot);
    if !present {
        pull();
        return;
    }
    remove_card_seen_at(slot, seen, pull);
}

/// [`remove_card`] for a card pcscd saw arrive at event count `seen` (a key that may already
/// have left by itself, so that the reader looks empty before it is pulled).
pub fn remove_card_seen_at(slot: u8, seen: u32, pull: impl FnOnce()) {
    pull();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (present, count) = reader_events(slot);
        if !present && count != seen {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "pcscd did not see the card leave {:?} (event count still {seen})",
            reader_name(slot)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Two blank keys with serials `serials` in slots 0 and 1, each keeping its state in
/// `state(serial)` (where tests read what was set on the card).
pub fn two_keys_with_state(serials: [u32; 2], state: impl Fn(u32) -> PathBuf) -> [Emu; 2] {
    let [p, b] = serials.map(|s| (s.to_string(), state(s).to_string_lossy().into_owned()));
    two_keys(
        &["--serial", &p.0, "--state", &p.1],
        &["--serial", &b.0, "--state", &b.1],
    )
}

/// Two emulated keys, `custody-emu SLOT0` in vpcd slot 0 and `custody-emu SLOT1` in slot 1,
/// once pcscd sees both cards; both stop when the pair is dropped.
pub fn two_keys(slot0: &[&str], slot1: &[&str]) -> [Emu; 2] {
    let keys = [Emu::start(0, slot0), Emu::start(1, slot1)];
    wait_for_card(0);
    wait_for_card(1);
    keys
}

/// The OATH access key an emulated card holds, read from the state file `custody-emu --state`
/// saves (the card's memory), waiting up to ten seconds for it to be set.
pub fn access_key_on_card(state: &Path) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(state).unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        if let Some(hex) = v["access_key"]["key"].as_str() {
            let key = data_encoding::HEXLOWER.decode(hex.as_bytes()).expect("hex");
            assert_eq!(key.len(), 16, "a 16-byte access key");
            return key;
        }
        assert!(
            Instant::now() < deadline,
            "no access key was set on the card behind {}",
            state.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            files_under(&path, out);
        } else if path.is_file() {
            out.push(path);
        }
    }
}

/// Asserts that `bytes` (from `what`) hold `key` neither raw nor in hex or Base64.
pub fn assert_key_absent(bytes: &[u8], key: &[u8], what: &str) {
    let hex = data_encoding::HEXLOWER.encode(key);
    let b64 = data_encoding::BASE64.encode(key);
    for needle in [key, hex.as_bytes(), b64.as_bytes()] {
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "an OATH access key is readable in {what}"
        );
    }
}

/// Waits until the reader of `slot` holds a card, and returns its name.
pub fn wait_for_card(slot: u8) -> String {
    let reader = reader_name(slot);
    let ctx = PcscContext::establish().expect("pcscd is running");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match ctx.connect(&reader) {
            Ok(card) => {
                let _ = card.disconnect(false);
                return reader;
            }
            Err(TransportError::NoCard { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(e) => panic!("no card appeared in {reader:?}: {e}"),
        }
    }
}

/// Runs `custody ARGS` with `stdin` on its standard input and returns (exit code, stdout,
/// stderr).
pub fn custody_stdin(args: &[&str], stdin: &str) -> (i32, String, String) {
    cli::Custody::new(args).stdin(stdin).run().parts()
}

/// Runs `custody ARGS` and returns (exit code, stdout, stderr).
pub fn custody(args: &[&str]) -> (i32, String, String) {
    cli::Custody::new(args).run().parts()
}
