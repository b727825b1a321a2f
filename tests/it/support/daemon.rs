//! A real `custodyd` for the end-to-end tests, set up in one place ([`world`]): a ledger made
//! by `custody init`, the daemon started from its configuration file and unsealed, officers
//! bootstrapped, an operator added, and the `custody` binary run against it with secrets on
//! file descriptors 3 and 4. The daemon is `custodyd-testclock` on the world's clock
//! ([`World::clock`]): where an officer would wait for a fresh second-factor step, the clock
//! moves to it.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

use super::cli::{init, ledger_verify, Custody};
use super::clock::{custodyd_testclock, totp, TestClock};
use super::custodyd::{config, spawn_listening};
use super::tty::Terminal;

/// The provider's seed in these tests: the public RFC 6238 test seed.
pub const SEED: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
/// The account every test registers.
pub const ACCOUNT: &str = "123456789012";
/// The keyring officers, all bootstrapped as custody officers; the first two unseal.
pub const OFFICERS: [&str; 5] = ["alice", "bob", "carol", "frank", "grace"];

/// The keyring (unseal) passphrase of `who`.
pub fn unseal_pass(who: &str) -> String {
    format!("{who}-Unseal-Phrase-1")
}

/// The custody user passphrase of `who`.
pub fn user_pass(who: &str) -> String {
    format!("{who}-User-Phrase-9")
}

pub use super::cli::Run;

pub fn run_of(o: Output) -> Run {
    o.into()
}

/// A ledger, a custodyd on it, unsealed, five officers and an operator (dave).
pub struct World {
    pub dir: tempfile::TempDir,
    pub ledger: PathBuf,
    pub socket: PathBuf,
    pub config: PathBuf,
    pub daemon: Option<Child>,
    /// The time of custodyd and of the officers' authenticators.
    pub clock: TestClock,
    /// Where `custody login` keeps the world's sessions: its XDG_RUNTIME_DIR, given to every
    /// `custody` it runs.
    pub runtime_dir: PathBuf,
    pub seeds: BTreeMap<String, String>,
    pub last_step: BTreeMap<String, u64>,
    /// Whether erin (an auditor) exists to log in for the reads at this terminal.
    pub reader: bool,
    /// The ledger's checkpoint public key, as `custody init` printed it (auditors pin it).
    pub public_key: String,
}

/// The auditor whose login session serves the worlds' reads (lists, shows, ceremonies).
pub const READER: &str = "erin";

impl Drop for World {
    fn drop(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            let _ = d.kill();
            let _ = d.wait();
        }
    }
}

impl World {
    /// `custody ARGS` against the daemon, with `fd3` readable on descriptor 3 (passphrases,
    /// wizard answers) and `fd4` on descriptor 4 (second-factor codes).
    pub fn custody_cmd(&self, args: &[&str], fd3: &str, fd4: &str) -> Command {
        let mut cmd = Custody::new(args)
            .socket(&self.socket)
            .fd3(fd3)
            .fd4(fd4)
            .files_in(self.dir.path())
            .runtime_dir(&self.runtime_dir)
            .command();
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// `custody --socket SOCKET ARGS` on a new pseudo-terminal, as a person runs it.
    pub fn terminal(&self, args: &[&str]) -> (Terminal, Child) {
        let args: Vec<&OsStr> = [OsStr::new("--socket"), self.socket.as_os_str()]
            .into_iter()
            .chain(args.iter().map(OsStr::new))
            .collect();
        Terminal::spawn(
            env!("CARGO_BIN_EXE_custody"),
            &args,
            &[("XDG_RUNTIME_DIR", self.runtime_dir.as_os_str())],
        )
    }

    pub fn custody(&self, args: &[&str], fd3: &str) -> Run {
        self.custody4(args, fd3, "")
    }

    pub fn custody4(&self, args: &[&str], fd3: &str, fd4: &str) -> Run {
        run_of(
            self.custody_cmd(args, fd3, fd4)
                .output()
                .expect("run custody"),
        )
    }

    pub fn ok(&self, args: &[&str], fd3: &str) -> Run {
        self.ok4(args, fd3, "")
    }

    pub fn ok4(&self, args: &[&str], fd3: &str, fd4: &str) -> Run {
        let r = self.custody4(args, fd3, fd4);
        assert_eq!(r.code, 0, "custody {args:?}:\n{}\n{}", r.out, r.err);
        r
    }

    /// Stops custodyd (SIGKILL), adds the top-level configuration line `line` to its
    /// configuration file, and starts and unseals it again.
    pub fn restart_with(&mut self, line: &str) {
        if let Some(mut d) = self.daemon.take() {
            let _ = d.kill();
            let _ = d.wait();
        }
        let text = std::fs::read_to_string(&self.config).expect("custodyd's configuration");
        std::fs::write(&self.config, format!("{line}\n{text}")).expect("custodyd's configuration");
        self.start_daemon();
        self.unseal();
    }

    pub fn start_daemon(&mut self) {
        let _ = std::fs::remove_file(&self.socket);
        let mut cmd = Command::new(custodyd_testclock());
        cmd.arg("--config")
            .arg(&self.config)
            .args(self.clock.args());
        let child = spawn_listening(cmd, &self.socket, &self.dir.path().join("custodyd.log"));
        self.daemon = Some(child);
    }

    pub fn unseal(&self) {
        for who in &OFFICERS[..2] {
            self.ok(
                &["unseal", "--officer", who, "--passphrase-fd", "3"],
                &format!("{}\n", unseal_pass(who)),
            );
        }
        // Sealing and restarts end sessions: the reader logs in again.
        if self.reader {
            self.ok(
                &["login", "--as", READER, "--no-totp", "--passphrase-fd", "3"],
                &format!("{}\n", user_pass(READER)),
            );
        }
    }

    /// Stops the daemon (SIGKILL) and verifies the ledger offline: hashes, links, checkpoints
    /// and projections.
    pub fn stop_and_verify(&mut self) -> Value {
        if let Some(mut d) = self.daemon.take() {
            let _ = d.kill();
            let _ = d.wait();
        }
        let (a, b) = (unseal_pass("alice"), unseal_pass("bob"));
        let r = ledger_verify(&self.ledger, [("alice", &a), ("bob", &b)]);
        assert_eq!(r.code, 0, "custody ledger verify:\n{}\n{}", r.out, r.err);
        r.json()
    }

    /// Exports the (stopped) daemon's ledger, opened by alice and bob, as JSON Lines to
    /// `export.jsonl` in the world's directory, and answers that path.
    pub fn export(&self) -> PathBuf {
        let out = self.dir.path().join("export.jsonl");
        let l = self.ledger.to_str().expect("utf8").to_owned();
        let o = super::cli::output(
            &[
                &["audit", "export"][..],
                &super::cli::opened_by_alice_and_bob(&l),
                &["--out", out.to_str().expect("utf8")],
            ]
            .concat(),
            &format!("{}\n{}\n", unseal_pass("alice"), unseal_pass("bob")),
        );
        assert_eq!(o.status.code(), Some(0), "{}", super::cli::describe(&o));
        out
    }

    /// A second-factor code of `officer` the daemon accepts: the oldest acceptable step the
    /// officer has not used yet (the previous step first, then the current one), moving the
    /// clock to the next step when the officer used both.
    pub fn code(&mut self, officer: &str) -> String {
        let step = self
            .clock
            .unused_step(self.last_step.get(officer).copied(), 0);
        self.last_step.insert(officer.to_owned(), step);
        totp(&self.seeds[officer], step)
    }

    /// Moves the clock to the next step when fewer than `secs` seconds are left in this one.
    pub fn room_in_step(&self, secs: u64) {
        self.clock.room_in_step(secs);
    }

    /// Officer `by` registers the AWS account [`ACCOUNT`] (alias `prod`, credential
    /// `AWS:prod-root`).
    pub fn add_account(&mut self, by: &str) {
        let c = self.code(by);
        self.ok4(
            &account_add_args("prod", "AWS:prod-root", by),
            &format!("{}\n", user_pass(by)),
            &format!("{c}\n"),
        );
    }

    /// dave (the operator) asks for a code of [`ACCOUNT`] ([`request_code_args`]): `custody
    /// request code` (with `--json` when `json`), as it ran.
    pub fn request_code(&self, json: bool, reason: &str) -> Run {
        let args: Vec<&str> = json
            .then_some("--json")
            .into_iter()
            .chain(request_code_args(reason))
            .collect();
        self.custody(&args, &format!("{}\n", user_pass("dave")))
    }

    /// One officer's answers for a wizard: name, passphrase, code.
    pub fn officer_lines(&mut self, who: &str) -> String {
        format!("{who}\n{}\n{}\n", user_pass(who), self.code(who))
    }
}

/// The shared setup, in one place: `custody init` with five keyring officers, custodyd started
/// from its configuration file and unsealed by two of them, all five bootstrapped as custody
/// officers, and dave added as an operator.
pub fn world() -> World {
    world_with_touch_timeout(10)
}

/// [`world`] with `touch_timeout_secs` set in custodyd's configuration.
pub fn world_with_touch_timeout(touch_timeout_secs: u64) -> World {
    world_with_config(&format!("touch_timeout_secs = {touch_timeout_secs}\n"))
}

/// [`world`] with the top-level configuration lines `top` (the touch timeout among them).
pub fn world_with_config(top: &str) -> World {
    world_with_policy(top, "")
}

/// [`world_with_config`] with the lines `policy` added to its `[policy]` table.
pub fn world_with_policy(top: &str, policy: &str) -> World {
    let dir = tempfile::tempdir().expect("tempdir");
    let runtime_dir = dir.path().join("run");
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&runtime_dir)
        .expect("the world's runtime directory");
    let ledger = dir.path().join("ledger");
    let socket = dir.path().join("custodyd.sock");
    let config = config(
        dir.path(),
        &ledger,
        &socket,
        &format!("{top}\n[policy]\npassphrase_kdf_iterations = 1000\n{policy}"),
    );
    let mut w = World {
        clock: TestClock::create(dir.path()),
        dir,
        ledger,
        socket,
        config,
        runtime_dir,
        daemon: None,
        seeds: BTreeMap::new(),
        last_step: BTreeMap::new(),
        reader: false,
        public_key: String::new(),
    };
    let passes: Vec<String> = OFFICERS.iter().map(|o| unseal_pass(o)).collect();
    let keyring: Vec<(&str, &str)> = OFFICERS
        .iter()
        .copied()
        .zip(passes.iter().map(String::as_str))
        .collect();
    let created = init(&w.ledger, &keyring);
    w.public_key = created["public_key"]
        .as_str()
        .expect("init's public key")
        .to_owned();
    w.start_daemon();
    w.unseal();
    for o in OFFICERS {
        // The keyring passphrase proves the officer; then the new user passphrase, twice.
        let r = w.ok(
            &["--json", "user", "bootstrap", o, "--passphrase-fd", "3"],
            &format!("{}\n{}\n{}\n", unseal_pass(o), user_pass(o), user_pass(o)),
        );
        let seed = r.json()["factor"]["base32"]
            .as_str()
            .expect("seed")
            .to_owned();
        w.seeds.insert(o.to_owned(), seed);
    }
    w.room_in_step(5);
    let c = w.code("grace");
    w.ok4(
        &[
            "user",
            "add",
            "dave",
            "--role",
            "operator",
            "--by",
            "grace",
            "--passphrase-fd",
            "3",
            "--totp-fd",
            "4",
        ],
        &format!("{}\n{}\n", user_pass("grace"), user_pass("dave")),
        &format!("{c}\n"),
    );
    let c = w.code("frank");
    w.ok4(
        &[
            "user",
            "add",
            READER,
            "--role",
            "auditor",
            "--by",
            "frank",
            "--passphrase-fd",
            "3",
            "--totp-fd",
            "4",
        ],
        &format!("{}\n{}\n", user_pass("frank"), user_pass(READER)),
        &format!("{c}\n"),
    );
    w.reader = true;
    w.ok(
        &["login", "--as", READER, "--no-totp", "--passphrase-fd", "3"],
        &format!("{}\n", user_pass(READER)),
    );
    w
}

/// `account add` of the AWS account [`ACCOUNT`] with `alias` and the name `credential` of its
/// OATH credential on the keys, by officer `by` (passphrase on descriptor 3, code on 4).
pub fn account_add_args<'a>(alias: &'a str, credential: &'a str, by: &'a str) -> [&'a str; 18] {
    [
        "account",
        "add",
        "--provider",
        "aws",
        "--account",
        ACCOUNT,
        "--alias",
        alias,
        "--root-email",
        "root@example.test",
        "--credential",
        credential,
        "--as",
        by,
        "--passphrase-fd",
        "3",
        "--totp-fd",
        "4",
    ]
}

/// What dave signs in for in the worlds' stories: to change [`ACCOUNT`]'s root password, on
/// ticket SEC-42 (the arguments of `request code` and of the sign-in ceremony).
pub const TASK: [&str; 6] = [
    "--account",
    ACCOUNT,
    "--task",
    "change-root-password",
    "--ticket",
    "SEC-42",
];

/// `command ARGS` with [`TASK`] between them.
pub fn with_task<'a>(command: &[&'a str], args: &[&'a str]) -> Vec<&'a str> {
    [command, &TASK, args].concat()
}

/// dave's `request code` for [`TASK`] with `reason`: his passphrase on descriptor 3, no second
/// factor (an operator has none).
pub fn request_code_args(reason: &str) -> Vec<&str> {
    with_task(
        &["request", "code"],
        &[
            "--reason",
            reason,
            "--as",
            "dave",
            "--passphrase-fd",
            "3",
            "--no-totp",
        ],
    )
}

pub fn request_status(w: &World, id: &str) -> String {
    w.ok(&["--json", "request", "show", id], "").json()["request"]["status"]
        .as_str()
        .expect("status")
        .to_owned()
}

pub fn device_state(w: &World, serial: u32) -> Value {
    w.ok(&["--json", "device", "show", &serial.to_string()], "")
        .json()["device"]["state"]
        .clone()
}
