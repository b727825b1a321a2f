//! The sign-in wizard at a real terminal: `custody ceremony sign-in` runs on a pseudo-terminal
//! (its controlling terminal, so hidden prompts read it as they would a person's keyboard)
//! against a real `custodyd`. The test answers each prompt only once it appears, like the
//! people in the room. Names are echoed; passphrases and second-factor codes never are; a
//! mistyped passphrase is explained and asked again.

mod support;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
use support::daemon::{request_status, user_pass, world, ACCOUNT};

/// The terminal's side of the conversation: everything the wizard wrote so far.
struct Terminal {
    master: std::fs::File,
    seen: Arc<Mutex<String>>,
    read_up_to: usize,
}

impl Terminal {
    /// Waits until `text` appears after what was already consumed, and consumes up to it.
    fn expect(&mut self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
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

    /// Types a line (after a moment, as the prompt turns echo off before reading).
    fn type_line(&mut self, line: &str) {
        std::thread::sleep(Duration::from_millis(150));
        self.master
            .write_all(format!("{line}\n").as_bytes())
            .expect("type");
    }

    fn all(&self) -> String {
        self.seen.lock().expect("lock").clone()
    }
}

#[test]
fn sign_in_wizard_at_a_terminal_never_echoes_a_secret() {
    let mut w = world();
    w.room_in_step(12);
    let c = w.code("alice");
    w.ok4(
        &[
            "account",
            "add",
            "--provider",
            "aws",
            "--account",
            ACCOUNT,
            "--alias",
            "prod",
            "--root-email",
            "root@example.test",
            "--credential",
            "AWS:prod-root",
            "--as",
            "alice",
            "--passphrase-fd",
            "3",
            "--totp-fd",
            "4",
        ],
        &format!("{}\n", user_pass("alice")),
        &format!("{c}\n"),
    );

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
    let mut master = std::fs::File::from(master);
    // `setsid --ctty` makes the pseudo-terminal the wizard's controlling terminal (/dev/tty).
    let mut child = Command::new("setsid")
        .arg("--ctty")
        .arg(env!("CARGO_BIN_EXE_custody"))
        .arg("--socket")
        .arg(&w.socket)
        .args([
            "ceremony",
            "sign-in",
            "--account",
            ACCOUNT,
            "--task",
            "change-root-password",
            "--ticket",
            "SEC-42",
            "--reason",
            "rotate the root password after the annual audit",
        ])
        .env("TERM", "xterm")
        .stdin(Stdio::from(slave.try_clone().expect("dup")))
        .stdout(Stdio::from(slave.try_clone().expect("dup")))
        .stderr(Stdio::from(slave))
        .spawn()
        .expect("setsid (util-linux) runs custody");
    let seen = Arc::new(Mutex::new(String::new()));
    let sink = seen.clone();
    let mut reader = master.try_clone().expect("dup");
    std::thread::spawn(move || {
        let mut buf = [0u8; 1024];
        // Ends with EIO once the wizard has exited and closed the terminal.
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .expect("lock")
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let mut t = Terminal {
        master: master.try_clone().expect("dup"),
        seen,
        read_up_to: 0,
    };
    let wrong = "dave-Mistyped-Phrase-7";
    t.expect("Requester (the operator who will sign in): name: ");
    t.type_line("dave");
    t.expect("Passphrase of dave (hidden): ");
    t.type_line(wrong);
    t.expect("Let's try that step again.");
    t.expect("Requester (the operator who will sign in): name: ");
    t.type_line("dave");
    t.expect("Passphrase of dave (hidden): ");
    t.type_line(&user_pass("dave"));
    t.expect("Hand the keyboard to approving officer 1 (not dave).");
    let mut codes = Vec::new();
    for (n, who) in [(1, "alice"), (2, "bob")] {
        t.expect(&format!("Approving officer {n}: name: "));
        t.type_line(who);
        t.expect(&format!("Passphrase of {who} (hidden): "));
        t.type_line(&user_pass(who));
        t.expect(&format!(
            "Second-factor code of {who}, from their authenticator (hidden): "
        ));
        let c = w.code(who);
        t.type_line(&c);
        codes.push(c);
    }
    t.expect("the request is approved.");
    // The account has no key in the safe: the wizard stops at the check-out.
    t.expect("has no unblocked key in the safe to check out");
    let status = child.wait().expect("wizard");
    let _ = master.flush();
    assert_eq!(status.code(), Some(1));

    let screen = t.all();
    for secret in [
        wrong.to_owned(),
        user_pass("dave"),
        user_pass("alice"),
        user_pass("bob"),
    ]
    .iter()
    .chain(&codes)
    {
        assert!(
            !screen.contains(secret.as_str()),
            "a secret was echoed on the terminal:\n{screen}"
        );
    }
    // What is typed visibly is echoed: the names.
    assert!(screen.contains("name: dave"), "{screen}");
    assert!(screen.contains("name: alice"), "{screen}");
    assert!(
        screen.contains("custodyd refused (forbidden)"),
        "the mistyped passphrase is explained:\n{screen}"
    );
    let id = screen
        .split_whitespace()
        .find(|w| w.starts_with("req-") && w.len() == 20)
        .expect("the request id is shown")
        .to_owned();
    assert_eq!(request_status(&w, &id), "approved");
}
