//! `custodyd-testclock`: custodyd for tests, reading the time from a file the test controls.
//! Built only with the cargo feature `test-clock` and never packaged (`cargo build --release
//! --bins` leaves it out).
//!
//! ```text
//! custodyd-testclock --config custody.toml --test-clock clock.ms
//! ```
//!
//! The file holds one integer, milliseconds since the Unix epoch: that is the daemon's now, for
//! the domain (second-factor steps, approval and request lifetimes, sessions), the throttle and
//! the release's wait for a fresh time step. Time stands still until the test writes a later
//! value; where the daemon would wait for a time (`wait_until`), it moves the file's time
//! forward to it instead. Writers replace the file by renaming (a reader sees the old or the new
//! time, never half of one) and change it under an exclusive `flock` on `FILE.lock`, so a test
//! moving time forward and the daemon waiting never lose each other's step. Time never goes back:
//! a write takes the later of the file's time and its own.
//!
//! The rest is custodyd's: same command line, configuration, exit statuses.
#![forbid(unsafe_code)]

#[path = "custodyd/serve.rs"]
mod serve;

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mfa_custody::custody::Clock;

/// The test clock: the time in a file.
struct FileClock {
    file: PathBuf,
}

impl FileClock {
    fn open(file: &Path) -> Result<Arc<dyn Clock + Sync>, String> {
        let clock = FileClock {
            file: file.to_owned(),
        };
        clock.read()?;
        Ok(Arc::new(clock))
    }

    fn read(&self) -> Result<i64, String> {
        let text = std::fs::read_to_string(&self.file)
            .map_err(|e| format!("test clock {}: {e}", self.file.display()))?;
        text.trim().parse::<i64>().map_err(|e| {
            format!(
                "test clock {}: {text:?} is not milliseconds since the epoch: {e}",
                self.file.display()
            )
        })
    }

    /// Moves the time forward to `until_ms` (never back), under the clock's lock.
    fn advance_to(&self, until_ms: i64) -> Result<(), String> {
        let lock_path = lock_path(&self.file);
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|e| format!("test clock lock {}: {e}", lock_path.display()))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| format!("test clock lock {}: {e}", lock_path.display()))?;
        let now = self.read()?;
        if until_ms > now {
            let tmp = self
                .file
                .with_extension(format!("tmp-{}", std::process::id()));
            std::fs::File::create(&tmp)
                .and_then(|mut f| f.write_all(format!("{until_ms}\n").as_bytes()))
                .and_then(|()| std::fs::rename(&tmp, &self.file))
                .map_err(|e| format!("test clock {}: {e}", self.file.display()))?;
        }
        drop(lock);
        Ok(())
    }
}

/// `FILE.lock` beside the clock file `FILE`.
fn lock_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// A clock the test broke (file removed, garbage written) ends the daemon at once: a test build
/// that went on with a guessed time would prove nothing.
fn broken(message: String) -> ! {
    eprintln!("custodyd-testclock: {message}");
    std::process::exit(2)
}

impl Clock for FileClock {
    fn now_ms(&self) -> i64 {
        self.read().unwrap_or_else(|e| broken(e))
    }

    fn wait_until(&self, until_ms: i64) {
        self.advance_to(until_ms).unwrap_or_else(|e| broken(e));
    }
}

fn main() -> std::process::ExitCode {
    serve::main(Some(FileClock::open))
}
