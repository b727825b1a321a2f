//! A pseudo-terminal for tests of what people see: a command runs with the terminal as its
//! controlling terminal (so hidden prompts read it, as they would a keyboard), and the test
//! answers each prompt once it appears.

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};

/// The terminal's side of the conversation: everything the program wrote so far.
pub struct Terminal {
    master: std::fs::File,
    seen: Arc<Mutex<String>>,
    read_up_to: usize,
}

impl Terminal {
    /// Runs `program ARGS` on a new pseudo-terminal (`setsid --ctty` from util-linux makes it
    /// the controlling terminal), with `TERM=xterm` and the variables `env`.
    pub fn spawn(
        program: &str,
        args: &[&std::ffi::OsStr],
        env: &[(&str, &std::ffi::OsStr)],
    ) -> (Self, Child) {
        let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)
            .expect("a pseudo-terminal");
        grantpt(&master).expect("grantpt");
        unlockpt(&master).expect("unlockpt");
        let name = ptsname(&master, Vec::new()).expect("ptsname");
        let slave = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(name.to_str().expect("path"))
            .expect("open the terminal");
        let master = std::fs::File::from(master);
        let child = Command::new("setsid")
            .arg("--ctty")
            .arg(program)
            .args(args)
            .env("TERM", "xterm")
            .envs(env.iter().copied())
            .stdin(Stdio::from(slave.try_clone().expect("dup")))
            .stdout(Stdio::from(slave.try_clone().expect("dup")))
            .stderr(Stdio::from(slave))
            .spawn()
            .expect("setsid (util-linux) runs the program");
        let seen = Arc::new(Mutex::new(String::new()));
        let sink = seen.clone();
        let mut reader = master.try_clone().expect("dup");
        std::thread::spawn(move || {
            let mut buf = [0u8; 1024];
            // Ends with EIO once the program has exited and closed the terminal.
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .expect("lock")
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        (
            Self {
                master,
                seen,
                read_up_to: 0,
            },
            child,
        )
    }

    /// Waits (up to `secs`) until `text` appears after what was already consumed, and
    /// consumes up to it.
    pub fn expect_within(&mut self, text: &str, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            {
                let seen = self.seen.lock().expect("lock");
                if let Some(at) = seen[self.read_up_to..].find(text) {
                    self.read_up_to += at + text.len();
                    return;
                }
                assert!(
                    Instant::now() < deadline,
                    "never saw {text:?}; the terminal shows:\n{}",
                    &seen[self.read_up_to..]
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// [`Terminal::expect_within`] 20 seconds.
    pub fn expect(&mut self, text: &str) {
        self.expect_within(text, 20);
    }

    /// Types a line (after a moment, as a hidden prompt turns echo off before reading).
    pub fn type_line(&mut self, line: &str) {
        std::thread::sleep(Duration::from_millis(150));
        self.master
            .write_all(format!("{line}\n").as_bytes())
            .expect("type");
    }

    /// Everything shown so far.
    pub fn all(&self) -> String {
        self.seen.lock().expect("lock").clone()
    }
}
