//! The time of a scenario: the file `custodyd-testclock` reads its clock from (see
//! src/bin/custodyd-testclock.rs), and the officers' second-factor codes computed at that time.
//! Where an officer would wait for a fresh 30-second step, the test moves the clock forward.
//!
//! The file holds milliseconds since the Unix epoch. Both sides replace it by renaming and
//! change it under an exclusive `flock` on `FILE.lock`, and time only moves forward, so the
//! daemon moving it (to the next step, for a release or an enrolment) and the test moving it
//! never undo each other.
#![allow(dead_code)]

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use mfa_custody::token::oath::{self, Digits, HashAlgorithm, OathSecret, TimeStep};

/// Milliseconds in one second-factor (TOTP) step.
pub const STEP_MS: i64 = 30_000;

/// `custodyd-testclock`, custodyd on a file clock, built with the cargo feature `test-clock`.
/// A test run without the feature fails here, naming it. (Cargo names the binary's path to the
/// tests even when the feature is off and the binary is not built, or is left from an earlier
/// build: the feature itself is what is checked.)
pub fn custodyd_testclock() -> PathBuf {
    match option_env!("CARGO_BIN_EXE_custodyd-testclock") {
        Some(p) if cfg!(feature = "test-clock") => PathBuf::from(p),
        _ => panic!(
            "these tests run custodyd-testclock, which is built only with the cargo feature \
             test-clock: run them with `cargo test --features test-clock` (as `make unit` does)"
        ),
    }
}

/// The host's time, in milliseconds since the epoch.
fn host_ms() -> i64 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970");
    i64::try_from(d.as_millis()).expect("ms fit")
}

/// A scenario's clock file.
#[derive(Clone)]
pub struct TestClock {
    file: PathBuf,
}

impl TestClock {
    /// A clock file in `dir`, at the start of the host's current step (so a scenario starts
    /// with the whole step before it).
    pub fn create(dir: &Path) -> Self {
        let clock = TestClock {
            file: dir.join("clock.ms"),
        };
        clock.write(host_ms() / STEP_MS * STEP_MS);
        clock
    }

    /// The file, for `custodyd-testclock --test-clock`.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// `--test-clock FILE`, to append to custodyd's arguments.
    pub fn args(&self) -> [String; 2] {
        [
            "--test-clock".to_owned(),
            self.file.to_string_lossy().into_owned(),
        ]
    }

    /// Now, in milliseconds since the epoch.
    pub fn now_ms(&self) -> i64 {
        let text = std::fs::read_to_string(&self.file).expect("the test clock");
        text.trim().parse().expect("milliseconds in the test clock")
    }

    /// Now, in seconds since the epoch.
    pub fn now_secs(&self) -> u64 {
        u64::try_from(self.now_ms() / 1000).expect("after 1970")
    }

    /// The current second-factor step.
    pub fn step(&self) -> u64 {
        self.now_secs() / 30
    }

    /// Whole seconds left in the current step.
    pub fn secs_left_in_step(&self) -> u64 {
        30 - self.now_secs() % 30
    }

    /// Moves the time forward to `ms` (never back: the later of the two wins).
    pub fn advance_to(&self, ms: i64) {
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(self.lock_path())
            .expect("the test clock's lock");
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
            .expect("lock the test clock");
        if ms > self.now_ms() {
            self.write(ms);
        }
    }

    /// Lets `ms` milliseconds pass.
    pub fn advance(&self, ms: i64) {
        self.advance_to(self.now_ms() + ms);
    }

    /// Moves the time to the start of the next step.
    pub fn next_step(&self) {
        self.advance_to((self.now_ms() / STEP_MS + 1) * STEP_MS);
    }

    /// Moves to the next step when fewer than `secs` seconds are left in this one.
    pub fn room_in_step(&self, secs: u64) {
        if self.secs_left_in_step() < secs {
            self.next_step();
        }
    }

    /// The step of an officer's next second-factor code: the oldest step the daemon still
    /// accepts (the previous one, then the current one) later than `last`, the step the officer
    /// used last. When the officer used both, or fewer than `margin_secs` seconds are left in
    /// the step, the time moves on to the next step first.
    pub fn unused_step(&self, last: Option<u64>, margin_secs: u64) -> u64 {
        loop {
            self.room_in_step(margin_secs);
            let current = self.step();
            let step = last.map_or(current - 1, |l| (l + 1).max(current - 1));
            if step <= current {
                return step;
            }
            self.next_step();
        }
    }

    fn lock_path(&self) -> PathBuf {
        let mut name = self.file.as_os_str().to_owned();
        name.push(".lock");
        PathBuf::from(name)
    }

    fn write(&self, ms: i64) {
        let tmp = self
            .file
            .with_extension(format!("test-{}", std::process::id()));
        let mut f = std::fs::File::create(&tmp).expect("the test clock");
        f.write_all(format!("{ms}\n").as_bytes())
            .expect("write the test clock");
        std::fs::rename(&tmp, &self.file).expect("replace the test clock");
    }
}

/// An officer's second-factor code for `step` (of 30 seconds), from their Base32 seed, as their
/// authenticator computes it: RFC 6238 with SHA-1 and six digits, by `token::oath`, whose
/// known-answer vectors `oath::vectors` checks. The tests' only TOTP.
pub fn totp(seed_b32: &str, step: u64) -> String {
    let secret = OathSecret::from_base32(seed_b32).expect("a Base32 seed");
    oath::totp(&secret, HashAlgorithm::Sha1, TimeStep(step), Digits::SIX)
        .as_str()
        .to_owned()
}

/// The second-factor step of `ms` milliseconds since the epoch.
pub fn step_of_ms(ms: i64) -> u64 {
    u64::try_from(ms / STEP_MS).expect("after 1970")
}

/// The host's current second-factor step.
pub fn host_step() -> u64 {
    step_of_ms(host_ms())
}
