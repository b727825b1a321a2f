//! The runbooks in `docs/runbooks/` are run, command by command, against the demo environment:
//! a private pcscd with two emulated YubiKeys (`custody-emu`, blank until the enrolment runbook
//! programs them), the real `custody` and `custodyd` binaries, and one temporary directory
//! standing in for `/var/lib/custody`. The runbooks are played in the order of one story
//! (`STORY`), so each starts from the state the previous ones left, as on a real host.
//!
//! Every command of every ```sh block runs, exactly as printed, with these host differences only:
//! - `/var/lib/custody/` is the temporary directory and `/media/backup/` a folder in it;
//! - `sudo -u custody` and `sudo` are dropped (the test runs as one user), and so are the
//!   `custody` owner options of `install` and `chown` (there is no `custody` OS user);
//! - `systemctl start|stop custodyd` starts the daemon or stops it with SIGTERM; the daemon is
//!   `custodyd-testclock`, custodyd reading the time from the story's clock file;
//! - `custody login` keeps its session under the run's directory (`XDG_RUNTIME_DIR`);
//! - secrets are fed on file descriptors (`--passphrase-fd 3`, `--totp-fd 4`, `--seed-fd 5`), as
//!   the people in the room would type them at the prompts, with each officer's second-factor
//!   code computed from the seed their `bootstrap` or `user add` printed, at the story's time
//!   (one code per step);
//! - where an officer would wait for a fresh second-factor step, the story's clock moves to it;
//! - the example values of the runbooks (request and incident ids, the checkpoint key, the
//!   operator's uid) are replaced by the values this run produced.
//!
//! A runbook steers the test with HTML comments, invisible when printed:
//! `<!-- runbook-test: run COMMAND -->` runs a command the prose asks for without printing it
//! (for example "follow unseal.md"), `<!-- runbook-test: expect-exit N -->` says the next
//! block's commands are documented to fail with status N, and `<!-- runbook-test: skip REASON -->`
//! skips the next block (the reason is printed). The text after `Expected:` (a ```text block or
//! a `code span` on the same line) must appear in the output, with digits and hex ids matched
//! loosely and `…` standing for anything.
//!
//! The story runs about 120 commands against a private pcscd. It is `#[ignore]`d in `cargo test`
//! and run by `make runbooks` (part of `make test`, alongside the fuzz build), with the cargo
//! feature `test-clock`.

use crate::support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::clock::{custodyd_testclock, totp, TestClock};
use support::{in_harness, repo};

/// The runbooks, in the order of the story they tell together.
const STORY: &[&str] = &[
    "genesis",
    "unseal",
    "enrolment",
    "sign-in",
    "check-out-check-in",
    "inventory-audit",
    "officers-and-resharing",
    "backup",
    "custody-release",
    "disaster-recovery",
    "incident",
];

/// The provider's seed typed at enrolment (the public RFC 6238 test seed).
const PROVIDER_SEED: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
const PRIMARY: &str = "10000001";
const BACKUP: &str = "10000002";

/// The keyring (unseal) passphrase each officer chooses at genesis or re-sharing.
fn keyring_passphrase(officer: &str) -> String {
    format!("{officer}-Keyring-Passphrase-9")
}

/// The custody user passphrase each person chooses.
fn user_passphrase(user: &str) -> String {
    format!("{user}-User-Passphrase-42")
}

#[derive(Debug, Clone)]
enum Item {
    /// A command to run; `hidden` when it comes from a `run` directive.
    Run {
        at: String,
        text: String,
        hidden: bool,
        expect_exit: i32,
    },
    /// A command not run, and why.
    Skip {
        at: String,
        text: String,
        reason: String,
    },
    /// Output the commands since the previous block must show.
    Expect { at: String, text: String },
    /// A new ```sh block starts: expectations refer to its output.
    Block,
}

fn directive(line: &str) -> Option<&str> {
    let t = line.trim();
    t.strip_prefix("<!-- runbook-test:")
        .and_then(|r| r.strip_suffix("-->"))
        .map(str::trim)
}

/// Splits a runbook into items.
fn parse(name: &str, text: &str) -> Vec<Item> {
    let mut items = Vec::new();
    let mut skip: Option<String> = None;
    let mut expect_exit = 0;
    let mut last_prose = String::new();
    let mut lines = text.lines().enumerate().peekable();
    while let Some((i, line)) = lines.next() {
        let at = format!("docs/runbooks/{name}.md:{}", i + 1);
        if let Some(d) = directive(line) {
            if let Some(c) = d.strip_prefix("run ") {
                items.push(Item::Run {
                    at,
                    text: c.trim().to_owned(),
                    hidden: true,
                    expect_exit: std::mem::take(&mut expect_exit),
                });
            } else if let Some(r) = d.strip_prefix("skip ") {
                skip = Some(r.trim().to_owned());
            } else if let Some(n) = d.strip_prefix("expect-exit ") {
                expect_exit = n
                    .trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("{at}: bad exit"));
            } else {
                panic!("{at}: unknown runbook-test directive {d:?}");
            }
            continue;
        }
        let trimmed = line.trim_start();
        if !trimmed.is_empty() && !trimmed.starts_with("```") {
            last_prose = trimmed.to_owned();
        }
        if let Some(lang) = trimmed.strip_prefix("```") {
            let lang = lang.trim().to_owned();
            let mut body = Vec::new();
            for (j, l) in lines.by_ref() {
                if l.trim_start().starts_with("```") {
                    break;
                }
                body.push((j, l.trim().to_owned()));
            }
            match lang.as_str() {
                "sh" => {
                    items.push(Item::Block);
                    let mut cmd = String::new();
                    let mut start = 0;
                    for (j, l) in body {
                        if cmd.is_empty() {
                            start = j;
                        }
                        if l.is_empty() || l.starts_with('#') {
                            continue;
                        }
                        if let Some(head) = l.strip_suffix('\\') {
                            cmd.push_str(head);
                            continue;
                        }
                        cmd.push_str(&l);
                        let at = format!("docs/runbooks/{name}.md:{}", start + 1);
                        let text = std::mem::take(&mut cmd);
                        items.push(match &skip {
                            Some(reason) => Item::Skip {
                                at,
                                text,
                                reason: reason.clone(),
                            },
                            None => Item::Run {
                                at,
                                text,
                                hidden: false,
                                expect_exit,
                            },
                        });
                    }
                    skip = None;
                    expect_exit = 0;
                }
                // A text block is expected output when the prose before it says so
                // ("Expected:", "Expected output:"); other text blocks show prompts or forms.
                "text" if last_prose.contains("Expected") => items.push(Item::Expect {
                    at,
                    text: body
                        .into_iter()
                        .map(|(_, l)| l)
                        .collect::<Vec<_>>()
                        .join("\n"),
                }),
                _ => {}
            }
            continue;
        }
        if let Some(rest) = trimmed.strip_prefix("Expected:") {
            for s in leading_spans(rest) {
                items.push(Item::Expect {
                    at: at.clone(),
                    text: s,
                });
            }
        }
    }
    items
}

/// The code spans that make up an `Expected:` line: the first right after the colon, then
/// those joined to it by `,`, `and`, `then` or `or`. Spans inside later prose are not output.
fn leading_spans(rest: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = rest.trim_start();
    while let Some(body) = rest.strip_prefix('`') {
        let Some(end) = body.find('`') else { break };
        out.push(body[..end].to_owned());
        let after = body[end + 1..].trim_start();
        let joined = [",", "and ", "then ", "or "]
            .iter()
            .find_map(|j| after.strip_prefix(j))
            .map(str::trim_start);
        match joined {
            Some(next) => rest = next.strip_prefix("and ").unwrap_or(next).trim_start(),
            None => break,
        }
    }
    out
}

/// Splits a command line into words (single and double quotes, backslash escapes).
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut have = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                have = true;
                for d in chars.by_ref() {
                    if d == '\'' {
                        break;
                    }
                    cur.push(d);
                }
            }
            '"' => {
                have = true;
                while let Some(d) = chars.next() {
                    match d {
                        '"' => break,
                        '\\' => cur.extend(chars.next()),
                        _ => cur.push(d),
                    }
                }
            }
            '\\' => {
                have = true;
                cur.extend(chars.next());
            }
            c if c.is_whitespace() => {
                if have {
                    out.push(std::mem::take(&mut cur));
                    have = false;
                }
            }
            c => {
                have = true;
                cur.push(c);
            }
        }
    }
    if have {
        out.push(cur);
    }
    out
}

/// Loose form of output for comparison: hex ids and numbers become `#`, blanks one space.
fn loose(s: &str) -> String {
    let mut out = String::new();
    let mut token = String::new();
    let flush = |token: &mut String, out: &mut String| {
        if token.is_empty() {
            return;
        }
        // Ids, keys and fingerprint groups; the docs write N, S, K, M, H or L for a number.
        let hexlike = token.len() >= 4 && token.chars().all(|c| c.is_ascii_hexdigit());
        let placeholder = matches!(token.as_str(), "N" | "S" | "K" | "M" | "H" | "L");
        if hexlike || placeholder || token.chars().all(|c| c.is_ascii_digit()) {
            out.push('#');
        } else {
            out.push_str(token);
        }
        token.clear();
    };
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            token.push(c);
        } else {
            flush(&mut token, &mut out);
            if c.is_whitespace() {
                if !out.ends_with(' ') {
                    out.push(' ');
                }
            } else {
                out.push(c);
            }
        }
    }
    flush(&mut token, &mut out);
    out.trim().to_owned()
}

/// Whether every part of the expected line (split at `…`) shows, in order, in one output line.
fn shows(output: &str, expected_line: &str) -> bool {
    let parts: Vec<String> = expected_line
        .split('…')
        .map(loose)
        .filter(|p| !p.is_empty() && p != "." && p != ",")
        .collect();
    if parts.is_empty() {
        return true;
    }
    output.lines().map(loose).any(|line| {
        let mut from = 0;
        parts.iter().all(|p| match line[from..].find(p.as_str()) {
            Some(i) => {
                from += i + p.len();
                true
            }
            None => false,
        })
    })
}

/// Everything the story has produced so far.
struct World {
    work: PathBuf,
    socket: PathBuf,
    daemon: Option<Child>,
    /// The story's time: custodyd's, and the officers' authenticators'.
    clock: TestClock,
    /// Second-factor steps the story moved its clock forward by, waiting for fresh steps.
    steps_waited: u64,
    /// Officers' second-factor seeds, as printed to them.
    factors: BTreeMap<String, String>,
    /// The last second-factor step used by each officer.
    last_step: BTreeMap<String, u64>,
    /// Who has a keyring share (their passphrase is `keyring_passphrase`).
    pubkey: Option<String>,
    requests: Vec<String>,
    incidents: Vec<String>,
    /// The output of the current block so far.
    block_out: String,
    block_ran: bool,
    ran: usize,
    hidden: usize,
    skipped: Vec<String>,
    mismatches: Vec<String>,
    checked: usize,
}

fn find_ids(text: &str, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(prefix) {
        let tail = &rest[i + prefix.len()..];
        let hex: String = tail.chars().take_while(char::is_ascii_hexdigit).collect();
        if hex.len() == 16 {
            out.push(format!("{prefix}{hex}"));
        }
        rest = &rest[i + prefix.len()..];
    }
    out
}

impl Drop for World {
    fn drop(&mut self) {
        // A failed runbook must not leave its daemon running.
        if let Some(mut child) = self.daemon.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn is_example_id(w: &str, prefix: &str) -> bool {
    w.strip_prefix(prefix)
        .is_some_and(|h| h.len() == 16 && h.chars().all(|c| c.is_ascii_hexdigit()))
}

/// The values of `--flag` in `args`.
fn values<'a>(args: &'a [String], flag: &str) -> Vec<&'a str> {
    args.windows(2)
        .filter(|w| w[0] == flag)
        .map(|w| w[1].as_str())
        .collect()
}

impl World {
    fn bin(name: &str) -> PathBuf {
        match name {
            "custody" => PathBuf::from(env!("CARGO_BIN_EXE_custody")),
            "custodyd" => PathBuf::from(env!("CARGO_BIN_EXE_custodyd")),
            other => panic!("no binary {other}"),
        }
    }

    fn map_path(&self, w: &str) -> String {
        let work = self.work.to_string_lossy();
        w.replace("/var/lib/custody/", &format!("{work}/"))
            .replace("/var/lib/custody", &work)
            .replace("/media/backup/", &format!("{work}/backup/"))
    }

    /// The example values of the runbooks, replaced by this run's.
    fn substitute(&self, args: Vec<String>) -> Vec<String> {
        let mut out = Vec::with_capacity(args.len());
        for (i, w) in args.iter().enumerate() {
            let prev = if i > 0 { args[i - 1].as_str() } else { "" };
            let w = if prev == "--pubkey" && (w == "KEY" || w.len() == 64) {
                self.pubkey.clone().expect("a checkpoint key from init")
            } else if prev == "--uid" {
                rustix::process::getuid().as_raw().to_string()
            } else if is_example_id(w, "req-") && !self.requests.contains(w) {
                self.requests
                    .last()
                    .cloned()
                    .expect("a request made earlier")
            } else if is_example_id(w, "inc-") && !self.incidents.contains(w) {
                self.incidents
                    .last()
                    .cloned()
                    .expect("an incident opened earlier")
            } else {
                self.map_path(w)
            };
            out.push(w);
        }
        out
    }

    /// A fresh second-factor code of `officer` (the clock moves to the next step when needed).
    fn factor(&mut self, officer: &str) -> String {
        let seed = self
            .factors
            .get(officer)
            .unwrap_or_else(|| panic!("no second factor was printed for {officer}"))
            .clone();
        let last = self.last_step.get(officer).copied();
        loop {
            let now = self.clock.now_secs();
            let step = now / 30;
            let into = now % 30;
            // The step before the current one is accepted too, unless it is about to lapse.
            let candidates = if into < 27 {
                vec![step - 1, step]
            } else {
                vec![step]
            };
            if let Some(s) = candidates
                .into_iter()
                .find(|s| last.map_or(true, |l| *s > l))
            {
                self.last_step.insert(officer.to_owned(), s);
                return totp(&seed, s);
            }
            println!(
                "   (second factor of {officer}: the clock moves {} s on, to a fresh step)",
                30 - into
            );
            self.clock.next_step();
            self.steps_waited += 1;
        }
    }

    fn start_daemon(&mut self) {
        assert!(self.daemon.is_none(), "custodyd is already running");
        let config = self.work.join("custody.toml");
        std::fs::write(
            &config,
            format!(
                "ledger_dir = \"{}\"\nsocket = \"{}\"\ntouch_timeout_secs = 10\n[policy]\npassphrase_kdf_iterations = 10000\n",
                self.work.join("ledger").display(),
                self.socket.display()
            ),
        )
        .expect("write the configuration");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.work.join("custodyd.log"))
            .expect("daemon log");
        let _ = std::fs::remove_file(&self.socket);
        let child = Command::new(custodyd_testclock())
            .arg("--config")
            .arg(&config)
            .args(self.clock.args())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start custodyd");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.socket.exists() {
            assert!(
                Instant::now() < deadline,
                "custodyd did not open its socket"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        self.daemon = Some(child);
    }

    fn stop_daemon(&mut self) {
        let mut child = self.daemon.take().expect("custodyd is running");
        let pid =
            rustix::process::Pid::from_raw(i32::try_from(child.id()).expect("pid")).expect("a pid");
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM");
        let status = child.wait().expect("custodyd ends");
        assert!(status.success(), "custodyd ended with {status} on SIGTERM");
    }

    /// Runs one runbook command; returns its exit status, stdout and stderr.
    fn run(&mut self, at: &str, line: &str) -> (i32, String, String) {
        let mut args = words(line);
        // The test runs as one user: sudo and sudo -u custody fall away.
        if args.first().map(String::as_str) == Some("sudo") {
            args.remove(0);
            if args.first().map(String::as_str) == Some("-u") {
                args.drain(..2);
            }
        }
        match args
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice()
        {
            ["systemctl", "start", "custodyd"] => {
                self.start_daemon();
                return (0, String::new(), String::new());
            }
            ["systemctl", "stop", "custodyd"] => {
                self.stop_daemon();
                return (0, String::new(), String::new());
            }
            _ => {}
        }
        // `> FILE` at the end.
        let mut redirect = None;
        if args.len() >= 2 && args[args.len() - 2] == ">" {
            redirect = Some(self.map_path(&args[args.len() - 1]));
            args.truncate(args.len() - 2);
        }
        let args = self.substitute(args);
        let (program, rest) = args.split_first().unwrap_or_else(|| panic!("{at}: empty"));
        match program.as_str() {
            "custody" | "custodyd" => self.run_custody(at, program, rest.to_vec(), redirect),
            "install" | "tar" | "chmod" | "ls" | "cp" | "mv" | "chown" | "sha256sum" | "rm" => {
                self.run_host(at, program, rest)
            }
            other => panic!("{at}: the runbook runs `{other}`, which this test does not know"),
        }
    }

    fn run_host(&mut self, at: &str, program: &str, rest: &[String]) -> (i32, String, String) {
        let mut rest: Vec<String> = rest.to_vec();
        match program {
            // No `custody` OS user here: ownership stays the test's.
            "chown" => return (0, String::new(), String::new()),
            "install" => {
                for flag in ["-o", "-g"] {
                    if let Some(i) = rest.iter().position(|w| w == flag) {
                        rest.drain(i..i + 2);
                    }
                }
            }
            _ => {}
        }
        if program == "chmod" {
            // `chmod 0600 DIR/*`: the shell would expand the glob.
            let mut expanded = Vec::new();
            for w in rest {
                if let Some(dir) = w.strip_suffix("/*") {
                    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{at}: {dir}: {e}")) {
                        expanded.push(e.expect("entry").path().to_string_lossy().into_owned());
                    }
                } else {
                    expanded.push(w);
                }
            }
            rest = expanded;
        }
        let out = Command::new(program)
            .args(&rest)
            .current_dir(&self.work)
            .output()
            .unwrap_or_else(|e| panic!("{at}: run {program}: {e}"));
        let code = out.status.code().unwrap_or(-1);
        // `ls` is an inspection; what it finds is for the people in the room to judge.
        let code = if program == "ls" { 0 } else { code };
        (
            code,
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn run_custody(
        &mut self,
        at: &str,
        program: &str,
        mut rest: Vec<String>,
        redirect: Option<String>,
    ) -> (i32, String, String) {
        let mut pass: Vec<String> = Vec::new();
        let mut codes: Vec<String> = Vec::new();
        let mut seed = false;
        let subcommand: Vec<&str> = rest
            .iter()
            .map(String::as_str)
            .filter(|w| !w.starts_with("--"))
            .take(2)
            .collect();
        let officers: Vec<String> = values(&rest, "--officer")
            .into_iter()
            .map(str::to_owned)
            .collect();
        let by: Vec<String> = values(&rest, "--by")
            .into_iter()
            .map(str::to_owned)
            .collect();
        let as_user = values(&rest, "--as").first().map(|s| (*s).to_owned());
        let mut factor_of: Option<String> = None;
        if program == "custody" {
            match subcommand.as_slice() {
                ["init", ..] | ["unseal", ..] | ["ledger", "verify"] => {
                    pass.extend(officers.iter().map(|o| keyring_passphrase(o)));
                }
                ["audit", "export"] if rest.iter().any(|w| w == "--ledger") => {
                    pass.extend(officers.iter().map(|o| keyring_passphrase(o)));
                }
                ["ledger", "reshare"] => {
                    pass.extend(officers.iter().map(|o| keyring_passphrase(o)));
                    for n in values(&rest, "--new-officer") {
                        if !officers.iter().any(|o| o == n) {
                            pass.push(keyring_passphrase(n));
                        }
                    }
                }
                ["user", "bootstrap"] => {
                    let name = rest
                        .iter()
                        .filter(|w| !w.starts_with("--"))
                        .nth(2)
                        .unwrap_or_else(|| panic!("{at}: bootstrap whom?"))
                        .clone();
                    // Their keyring passphrase proves who they are, then the new custody
                    // passphrase, typed twice.
                    pass.push(keyring_passphrase(&name));
                    pass.push(user_passphrase(&name));
                    pass.push(user_passphrase(&name));
                    factor_of = Some(name);
                }
                ["user", "add"] => {
                    let name = rest
                        .iter()
                        .filter(|w| !w.starts_with("--"))
                        .nth(2)
                        .unwrap_or_else(|| panic!("{at}: add whom?"))
                        .clone();
                    for b in &by {
                        pass.push(user_passphrase(b));
                        codes.push(self.factor(b));
                    }
                    pass.push(user_passphrase(&name));
                    factor_of = Some(name);
                }
                _ => {
                    if let Some(u) = &as_user {
                        pass.push(user_passphrase(u));
                        // custody asks for a code only of a person with a second factor.
                        if !rest.iter().any(|w| w == "--no-totp") && self.factors.contains_key(u) {
                            codes.push(self.factor(u));
                        }
                    }
                    for b in &by {
                        pass.push(user_passphrase(b));
                        codes.push(self.factor(b));
                    }
                }
            }
            if subcommand.first() == Some(&"enrol") {
                seed = true;
            }
        }
        let secrets = self.work.join(".secrets");
        std::fs::create_dir_all(&secrets).expect("secrets dir");
        let mut redirections = String::new();
        for (fd, flag, lines) in [
            (3, "--passphrase-fd", &pass),
            (4, "--totp-fd", &codes),
            (5, "--seed-fd", &vec![PROVIDER_SEED.to_owned()]),
        ] {
            if lines.is_empty() || (fd == 5 && !seed) {
                continue;
            }
            let f = secrets.join(format!("fd{fd}"));
            std::fs::write(&f, lines.join("\n") + "\n").expect("write secrets");
            rest.push(flag.to_owned());
            rest.push(fd.to_string());
            redirections.push_str(&format!(" {fd}<\"$SECRETS/fd{fd}\""));
        }
        let stdout = match &redirect {
            Some(path) => Stdio::from(
                std::fs::File::create(self.work.join(path))
                    .unwrap_or_else(|e| panic!("{at}: create {path}: {e}")),
            ),
            None => Stdio::piped(),
        };
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!("exec \"$@\"{redirections}"))
            .arg("runbook")
            .arg(Self::bin(program))
            .args(&rest)
            .env("SECRETS", &secrets)
            .env("CUSTODY_SOCKET", &self.socket)
            // `custody login` keeps its session under the run's own directory, as under a
            // person's XDG_RUNTIME_DIR.
            .env("XDG_RUNTIME_DIR", self.work.join(".run"))
            .current_dir(&self.work)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::piped())
            .output()
            .unwrap_or_else(|e| panic!("{at}: run {program}: {e}"));
        let _ = std::fs::remove_dir_all(&secrets);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        // What this command made that later commands name.
        if self.pubkey.is_none() {
            if let Some(l) = stdout.lines().find(|l| l.trim_start().starts_with("hex:")) {
                self.pubkey = l.split_whitespace().nth(1).map(str::to_owned);
            }
        }
        if let Some(name) = factor_of {
            if let Some(l) = stdout
                .lines()
                .find(|l| l.trim_start().starts_with("base32:"))
            {
                let seed = l.split_whitespace().nth(1).expect("a seed").to_owned();
                self.factors.insert(name, seed);
            }
        }
        for id in find_ids(&stdout, "req-") {
            if !self.requests.contains(&id) {
                self.requests.push(id);
            }
        }
        for id in find_ids(&stdout, "inc-") {
            if !self.incidents.contains(&id) {
                self.incidents.push(id);
            }
        }
        (out.status.code().unwrap_or(-1), stdout, stderr)
    }

    fn daemon_log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.work.join("custodyd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    fn play(&mut self, name: &str, items: &[Item]) {
        println!("== runbook {name}");
        for item in items {
            match item {
                Item::Block => {
                    self.block_out.clear();
                    self.block_ran = false;
                }
                Item::Skip { at, text, reason } => {
                    println!("   skip {at}: {text} ({reason})");
                    self.skipped.push(format!("{at}: {text}"));
                }
                Item::Run {
                    at,
                    text,
                    hidden,
                    expect_exit,
                } => {
                    println!("   {} {text}", if *hidden { "(run)" } else { "$" });
                    let (code, out, err) = self.run(at, text);
                    assert_eq!(
                        code,
                        *expect_exit,
                        "{at}: `{text}` exited {code}, the runbook expects {expect_exit}\n\
                         --- stdout\n{out}--- stderr\n{err}--- custodyd log (tail)\n{}",
                        self.daemon_log_tail()
                    );
                    if *hidden {
                        self.hidden += 1;
                    } else {
                        self.ran += 1;
                        self.block_out.push_str(&out);
                        self.block_out.push_str(&err);
                        self.block_ran = true;
                    }
                }
                Item::Expect { at, text } => {
                    if !self.block_ran {
                        continue;
                    }
                    for l in text.lines().filter(|l| !l.trim().is_empty()) {
                        self.checked += 1;
                        let seen = self
                            .block_out
                            .replace(&*self.work.to_string_lossy(), "/var/lib/custody");
                        if !shows(&seen, l) {
                            self.mismatches.push(format!(
                                "{at}: expected {l:?}\n  in the output:\n{}",
                                self.block_out
                            ));
                        }
                    }
                }
            }
        }
    }
}

#[test]
#[ignore = "plays every runbook against a private pcscd; `make runbooks` runs it"]
fn runbooks_run_against_the_demo_environment() {
    if !in_harness("runbooks_run_against_the_demo_environment", 42500, 1) {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    // Each key keeps its card memory in a state file, so the story can check what the custody
    // release left on it and put the keys back as they were before they were handed over.
    let states = [PRIMARY, BACKUP].map(|s| tmp.path().join(format!("key-{s}.state")));
    let start_keys = || {
        let [p, b] = states
            .each_ref()
            .map(|p| p.to_str().expect("utf-8 path").to_owned());
        support::two_keys(
            &["--serial", PRIMARY, "--touch", "auto", "--state", &p],
            &["--serial", BACKUP, "--touch", "auto", "--state", &b],
        )
    };
    let mut keys = Some(start_keys());
    std::fs::create_dir_all(tmp.path().join("backup")).expect("backup dir");
    let mut world = World {
        work: tmp.path().to_path_buf(),
        socket: tmp.path().join("custodyd.sock"),
        daemon: None,
        clock: TestClock::create(tmp.path()),
        steps_waited: 0,
        factors: BTreeMap::new(),
        last_step: BTreeMap::new(),
        pubkey: None,
        requests: Vec::new(),
        incidents: Vec::new(),
        block_out: String::new(),
        block_ran: false,
        ran: 0,
        hidden: 0,
        skipped: Vec::new(),
        mismatches: Vec::new(),
        checked: 0,
    };
    let dir = repo().join("docs/runbooks");
    let on_disk: BTreeSet<String> = std::fs::read_dir(&dir)
        .expect("docs/runbooks")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".md") && n != "README.md")
        .map(|n| n.trim_end_matches(".md").to_owned())
        .collect();
    let story: BTreeSet<String> = STORY.iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(
        on_disk, story,
        "every runbook must be part of the story this test plays (STORY)"
    );
    for name in STORY {
        let text = std::fs::read_to_string(dir.join(format!("{name}.md"))).expect("runbook");
        let items = parse(name, &text);
        assert!(
            items
                .iter()
                .any(|i| matches!(i, Item::Run { hidden: false, .. })),
            "{name}.md has no command to run"
        );
        let before = (*name == "custody-release").then(|| {
            states
                .each_ref()
                .map(|p| std::fs::read(p).expect("a key's state"))
        });
        world.play(name, &items);
        if let Some(before) = before {
            // The signed extract says the release cleared both keys' access keys.
            let extract = std::fs::read_to_string(tmp.path().join("release-123456789012.jsonl"))
                .expect("the release's extract");
            let released = extract
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .find(|v| v.to_string().contains("\"custody.released\""))
                .expect("custody.released in the extract");
            let cleared = released.to_string();
            assert!(
                cleared.contains(&format!(
                    "\"access_keys_cleared\":[\"{PRIMARY}\",\"{BACKUP}\"]"
                )),
                "{cleared}"
            );
            // The release cleared each key's OATH access key on the card itself.
            for (p, was) in states.iter().zip(&before) {
                let was: serde_json::Value = serde_json::from_slice(was).expect("state json");
                assert!(
                    was["access_key"]["key"].is_string(),
                    "{}: locked before",
                    p.display()
                );
                let now: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(p).expect("state")).expect("json");
                assert!(
                    now["access_key"]["key"].is_null(),
                    "{}: the release left the access key on the card: {}",
                    p.display(),
                    now["access_key"]
                );
            }
            // The released keys left with the receiver. The disaster recovery that follows
            // restores a backup from before the release, so the story goes on with the keys
            // as that ledger knows them: as they were before the release.
            for k in keys.take().expect("keys") {
                k.stop();
            }
            for (p, was) in states.iter().zip(&before) {
                std::fs::write(p, was).expect("restore a key's state");
            }
            keys = Some(start_keys());
        }
    }
    if world.daemon.is_some() {
        world.stop_daemon();
    }
    println!(
        "runbooks: {} runbooks, {} commands run, {} steered, {} skipped, {} expected lines checked, {} mismatched, {} second-factor steps moved on",
        STORY.len(),
        world.ran,
        world.hidden,
        world.skipped.len(),
        world.checked,
        world.mismatches.len(),
        world.steps_waited
    );
    assert!(
        world.mismatches.is_empty(),
        "runbook output differs from the CLI's:\n{}",
        world.mismatches.join("\n")
    );
    // The story's ledger verifies at the end, offline, with a quorum.
    let (code, out, err) = world.run(
        "end of the story",
        "custody ledger verify --ledger /var/lib/custody/ledger --officer alice --officer bob",
    );
    assert_eq!(code, 0, "the ledger does not verify:\n{out}{err}");
    assert!(out.contains("is valid"), "{out}");
    drop(keys);
}

#[test]
fn runbook_parser_reads_blocks_directives_and_expectations() {
    let text = "intro\n\n   ```sh\n   custody a \\\n       --b \"c d\"\n   custody e\n   ```\n\n   Expected: `one 12` and `two`.\n\n<!-- runbook-test: run custody hidden -->\n<!-- runbook-test: expect-exit 1 -->\n```sh\ncustody fails\n```\nPrompts:\n```text\nPassphrase:\n```\nExpected:\n```text\nout …\n```\n<!-- runbook-test: skip host only -->\n```sh\nsudo reboot\n```\n";
    let items = parse("x", text);
    let runs: Vec<(String, bool, i32)> = items
        .iter()
        .filter_map(|i| match i {
            Item::Run {
                text,
                hidden,
                expect_exit,
                ..
            } => Some((text.clone(), *hidden, *expect_exit)),
            _ => None,
        })
        .collect();
    assert_eq!(
        runs,
        vec![
            ("custody a --b \"c d\"".to_owned(), false, 0),
            ("custody e".to_owned(), false, 0),
            ("custody hidden".to_owned(), true, 0),
            ("custody fails".to_owned(), false, 1),
        ]
    );
    let expects: Vec<String> = items
        .iter()
        .filter_map(|i| match i {
            Item::Expect { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(expects, vec!["one 12", "two", "out …"]);
    assert_eq!(
        leading_spans(" `a`, `b` and `c`. Providers: `aws`"),
        vec!["a", "b", "c"]
    );
    assert_eq!(
        leading_spans(" the serial equals the `device_id`"),
        Vec::<String>::new()
    );
    assert!(items
        .iter()
        .any(|i| matches!(i, Item::Skip { reason, .. } if reason == "host only")));
    assert_eq!(
        words("custody x --reason \"a b\" 'c d' e\\ f"),
        vec!["custody", "x", "--reason", "a b", "c d", "e f"]
    );
    assert!(shows(
        "device 10000001: in_safe\n",
        "device 10000002: in_safe"
    ));
    assert!(!shows(
        "device 10000001: checked_out\n",
        "device 10000001: in_safe"
    ));
    assert!(shows(
        "valid: ledger 35128501d39f80e8, 12 events\n",
        "valid: ledger …, N events"
    ));
}
