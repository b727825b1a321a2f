//! The `custody` binary as the tests run it: its arguments, its standard input, and the
//! secrets a person would give on descriptors 3 and 4 (passphrases, wizard answers,
//! second-factor codes). `CUSTODY_SOCKET` never comes from the environment of the test run,
//! and `custody login` keeps its sessions in a private runtime directory of this test run
//! (or the test's own), never in the host's.

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use serde_json::Value;

/// What one run of `custody` gave.
pub struct Run {
    /// The exit status (-1 when a signal ended it).
    pub code: i32,
    pub out: String,
    pub err: String,
}

impl Run {
    /// Standard output as JSON (`--json`), or a panic showing both outputs.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.out)
            .unwrap_or_else(|e| panic!("JSON ({e}): {}\n{}", self.out, self.err))
    }

    /// (exit status, standard output, standard error).
    pub fn parts(self) -> (i32, String, String) {
        (self.code, self.out, self.err)
    }
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            code: o.status.code().unwrap_or(-1),
            out: String::from_utf8_lossy(&o.stdout).into_owned(),
            err: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// Runs `custody ARGS` with `stdin` on its standard input, to the end.
pub fn output(args: &[&str], stdin: &str) -> Output {
    Custody::new(args).stdin(stdin).output()
}

/// Genesis by `custody init --json`: a ledger at `ledger` whose keyring holds `officers`
/// (name, unseal passphrase, given on standard input), threshold 2, at the test KDF cost.
/// Answers what `init` printed (the ledger id, the checkpoint public key).
pub fn init(ledger: &Path, officers: &[(&str, &str)]) -> Value {
    let l = ledger.to_string_lossy().into_owned();
    let mut args = vec!["--json", "init", "--ledger", &l];
    for (o, _) in officers {
        args.extend(["--officer", o]);
    }
    args.extend([
        "--passphrase-fd",
        "0",
        "--insecure-test-kdf-iterations",
        "1000",
    ]);
    let passes: String = officers.iter().map(|(_, p)| format!("{p}\n")).collect();
    let r = Custody::new(&args).stdin(&passes).run();
    assert_eq!(r.code, 0, "custody init: {}{}", r.out, r.err);
    r.json()
}

/// `custody audit export --out OUT` of the whole ledger at `ledger`, offline, opened by alice
/// and bob (their unseal passphrases on standard input); the run, asserted to succeed.
pub fn export_by_alice_and_bob(ledger: &Path, out: &Path) -> Output {
    let l = ledger.to_str().expect("utf8 path");
    let o = output(
        &[
            &["audit", "export"][..],
            &opened_by_alice_and_bob(l),
            &["--out", out.to_str().expect("utf8 path")],
        ]
        .concat(),
        &format!(
            "{}\n{}\n",
            super::domain::unseal_pass("alice"),
            super::domain::unseal_pass("bob")
        ),
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "custody audit export: {}",
        describe(&o)
    );
    o
}

/// `custody --json ledger verify` of the ledger at `ledger` (no daemon), opened by two of its
/// officers (name, unseal passphrase, given on standard input): every hash, link,
/// checkpoint, and the projections against a replay.
pub fn ledger_verify(ledger: &Path, officers: [(&str, &str); 2]) -> Run {
    let l = ledger.to_string_lossy().into_owned();
    let [(a, a_pass), (b, b_pass)] = officers;
    Custody::new(&[
        "--json",
        "ledger",
        "verify",
        "--ledger",
        &l,
        "--officer",
        a,
        "--officer",
        b,
        "--passphrase-fd",
        "0",
    ])
    .stdin(&format!("{a_pass}\n{b_pass}\n"))
    .run()
}

/// `--ledger LEDGER --officer alice --officer bob --passphrase-fd 0`: the ledger opened offline
/// by alice and bob, their passphrases on standard input.
pub fn opened_by_alice_and_bob(ledger: &str) -> [&str; 8] {
    [
        "--ledger",
        ledger,
        "--officer",
        "alice",
        "--officer",
        "bob",
        "--passphrase-fd",
        "0",
    ]
}

/// A run's status and both outputs, for an assertion's message.
pub fn describe(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The runtime directory (`XDG_RUNTIME_DIR`) of this test run, mode 0700: sessions are kept
/// by socket, and every test's daemon has a socket of its own.
pub fn runtime_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("custody-tests-{}", std::process::id()));
        let _ = std::fs::DirBuilder::new().mode(0o700).create(&d);
        d
    })
}

/// One run of `custody ARGS`, built up then run (or handed over as a [`Command`]).
pub struct Custody {
    args: Vec<OsString>,
    stdin: String,
    fds: Vec<(u8, String)>,
    files_in: PathBuf,
    runtime_dir: PathBuf,
    env: Vec<(String, OsString)>,
}

impl Custody {
    pub fn new<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Self {
        Custody {
            args: args.iter().map(|a| a.as_ref().to_owned()).collect(),
            stdin: String::new(),
            fds: Vec::new(),
            files_in: std::env::temp_dir(),
            runtime_dir: runtime_dir().to_path_buf(),
            env: Vec::new(),
        }
    }

    /// `--socket SOCKET` before the arguments.
    pub fn socket(mut self, socket: &Path) -> Self {
        self.args
            .splice(0..0, [OsString::from("--socket"), socket.into()]);
        self
    }

    /// `text` on standard input.
    pub fn stdin(mut self, text: &str) -> Self {
        self.stdin = text.to_owned();
        self
    }

    /// `text` readable on descriptor 3.
    pub fn fd3(self, text: &str) -> Self {
        self.fd(3, text)
    }

    /// `text` readable on descriptor 4.
    pub fn fd4(self, text: &str) -> Self {
        self.fd(4, text)
    }

    /// `text` readable on descriptor 5.
    pub fn fd5(self, text: &str) -> Self {
        self.fd(5, text)
    }

    fn fd(mut self, n: u8, text: &str) -> Self {
        self.fds.retain(|(m, _)| *m != n);
        self.fds.push((n, text.to_owned()));
        self
    }

    /// Keeps the descriptors' files in `dir` (the test's temporary directory).
    pub fn files_in(mut self, dir: &Path) -> Self {
        self.files_in = dir.to_path_buf();
        self
    }

    /// `XDG_RUNTIME_DIR`, where `custody login` keeps its sessions.
    pub fn runtime_dir(mut self, dir: &Path) -> Self {
        self.runtime_dir = dir.to_path_buf();
        self
    }

    /// One more environment variable.
    pub fn env(mut self, name: &str, value: impl Into<OsString>) -> Self {
        self.env.push((name.to_owned(), value.into()));
        self
    }

    /// The command, with the descriptors' files written (left in [`Custody::files_in`]) and
    /// standard input, output and error not yet set.
    pub fn command(&self) -> Command {
        self.command_and_files().0
    }

    fn command_and_files(&self) -> (Command, Vec<PathBuf>) {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let mut redirects = String::new();
        let mut files = Vec::new();
        let mut cmd = Command::new("sh");
        for (n, text) in &self.fds {
            let file = self.files_in.join(format!(
                ".fd{n}-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::write(&file, text).expect("a descriptor's file");
            redirects.push_str(&format!(" {n}<\"$FD{n}\""));
            cmd.env(format!("FD{n}"), &file);
            files.push(file);
        }
        cmd.arg("-c")
            .arg(format!(r#"exec "$0" "$@"{redirects}"#))
            .arg(env!("CARGO_BIN_EXE_custody"))
            .args(&self.args)
            .env_remove("CUSTODY_SOCKET")
            .env("XDG_RUNTIME_DIR", &self.runtime_dir)
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        (cmd, files)
    }

    /// Runs it to the end and returns its status and outputs.
    pub fn output(self) -> Output {
        let (mut cmd, files) = self.command_and_files();
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run custody");
        // The command may exit before reading (usage errors); a broken pipe is fine then.
        let _ = child
            .stdin
            .take()
            .expect("stdin")
            .write_all(self.stdin.as_bytes());
        let out = child.wait_with_output().expect("custody's output");
        for f in files {
            let _ = std::fs::remove_file(f);
        }
        out
    }

    /// [`Custody::output`] as text.
    pub fn run(self) -> Run {
        self.output().into()
    }
}

/// Runs `cmd` (no input) with its standard output already closed by the reader, as in
/// `custody ... | head -0`: a socket whose other end is gone before `cmd` starts, so its first
/// write fails with EPIPE whatever its size and however fast it runs. Returns (status, stderr).
pub fn with_stdout_closed(mut cmd: Command) -> (Option<i32>, String) {
    let (reader, writer) = std::os::unix::net::UnixStream::pair().expect("a socket pair");
    drop(reader);
    let out = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::from(std::os::fd::OwnedFd::from(writer)))
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the command")
        .wait_with_output()
        .expect("its output");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
