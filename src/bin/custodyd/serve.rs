//! The custodyd process, shared by `custodyd` and its test build `custodyd-testclock`: the
//! command line, hardening, the ledger's lock, the socket, the reader watch and the server. The
//! two binaries differ only in where the daemon reads the time ([`OpenTestClock`]).
//!
//! Exit statuses: 0 after a clean shutdown (SIGTERM or SIGINT), 2 for a bad command line or
//! configuration (including a test clock asked of `custodyd`), 4 when the ledger directory is
//! unusable, 5 when the socket cannot be set up, 6 when another custodyd already runs on the
//! ledger (or answers on the socket).

use std::io::{Read, Seek, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use mfa_custody::custody::{Clock, SystemClock};
use mfa_custody::daemon::access::identify_in_reader;
use mfa_custody::daemon::config::{resolve_group, Config};
use mfa_custody::daemon::{run, Daemon};
use mfa_custody::token::pcsc::PcscContext;

/// Exit statuses of `custodyd` (documented in docs/daemon.md).
mod exit {
    pub const OK: u8 = 0;
    pub const USAGE: u8 = 2;
    pub const LEDGER: u8 = 4;
    pub const IO: u8 = 5;
    pub const ALREADY_RUNNING: u8 = 6;
}

/// The file in the ledger directory that the running custodyd holds locked (`flock`,
/// exclusive) for as long as it runs; it holds that daemon's pid.
const LOCK_FILE: &str = "custodyd.lock";

/// custodyd: holds the custody ledger and serves the `custody` command line over a Unix socket.
#[derive(Debug, Parser)]
#[command(name = "custodyd", version = mfa_custody::VERSION,
    about = "The mfa-custody daemon: holds the custody ledger and serves the custody command line",
    long_about = DESCRIPTION,
    after_help = "Examples:\n  custodyd --config /etc/custody/custody.toml\n  \
custodyd --check-config /etc/custody/custody.toml")]
struct Args {
    /// The configuration file (TOML; see packaging/custody.toml).
    #[arg(long, value_name = "FILE", required_unless_present_any = ["check_config", "man"])]
    config: Option<PathBuf>,
    /// Check the configuration FILE and exit: 0 when it is valid, 2 with every problem listed
    /// (each naming its key and what to do). Starts nothing and opens no ledger.
    #[arg(long, value_name = "FILE", conflicts_with = "config")]
    check_config: Option<PathBuf>,
    /// Log level: error, warn, info, debug.
    #[arg(long, default_value = "info")]
    log_level: tracing::Level,
    /// Test builds only (`custodyd-testclock`): read the time from FILE instead of the host's
    /// clock. `custodyd` refuses it (exit status 2).
    #[arg(long, value_name = "FILE")]
    test_clock: Option<PathBuf>,
    /// Print this manual page, custodyd(8), in roff on standard output and exit (the Debian
    /// package installs it).
    #[arg(long, conflicts_with_all = ["config", "check_config"])]
    man: bool,
}

/// What `custodyd --help` and custodyd(8) say the daemon is.
const DESCRIPTION: &str = "custodyd holds the mfa-custody ledger (an encrypted, hash-chained \
SQLCipher file) and serves the custody command line over a Unix socket. It starts sealed: two \
officers unseal it with their keyring passphrases (custody unseal). It decides every operation \
through the custody domain (dual control, seals, reconciliation), records it in the ledger, and \
talks to the YubiKeys through pcscd, only in the readers the configuration allows. Under \
systemd it runs as the custody user (custodyd.service); it logs to standard error, the journal.";

/// The sections of custodyd(8) that clap does not know: written as roff.
const MAN_SECTIONS: &str = r#".SH EXAMPLES
.nf
custodyd \-\-config /etc/custody/custody.toml
custodyd \-\-check\-config /etc/custody/custody.toml
systemctl start custodyd
.fi
.SH "EXIT STATUS"
.TP
\fB0\fR
a clean shutdown (SIGTERM or SIGINT); with \fB\-\-check\-config\fR, the file is valid
.TP
\fB2\fR
a bad command line or configuration, every problem listed once (including a test clock asked of custodyd)
.TP
\fB4\fR
the ledger directory is unusable
.TP
\fB5\fR
the socket cannot be set up
.TP
\fB6\fR
another custodyd already runs on the ledger, or answers on the socket
.SH SIGNALS
SIGTERM and SIGINT end custodyd cleanly: no new connections, the requests in flight are answered, the ledger is closed and its keys zeroized. The next start is sealed.
.SH FILES
.TP
\fB/etc/custody/custody.toml\fR
the configuration (ledger_dir, socket, socket_group, allowed_readers, touch_timeout_secs, the policy)
.TP
\fB/var/lib/custody/ledger/\fR
the ledger directory: ledger.db (SQLCipher), keyring.json (the officers' quorum shares), custodyd.lock (held while custodyd runs), unseal\-failures.log
.TP
\fB/run/custody/custodyd.sock\fR
the socket the custody command line talks to (mode 0660, group socket_group)
.SH "SEE ALSO"
\fBcustody\fR(1), \fBpcscd\fR(8), \fBsystemd\-analyze\fR(1);
/usr/share/doc/mfa\-custody/daemon.md (the socket protocol, hardening, exit statuses) and configuration.md (every key of custody.toml)
"#;

/// `--man`: custodyd(8), from this command line's definition and [`MAN_SECTIONS`].
fn man_page() -> ExitCode {
    use clap::CommandFactory;
    let man = clap_mangen::Man::new(Args::command())
        .section("8")
        .manual("mfa-custody");
    let mut page = Vec::new();
    let rendered = man
        .render_title(&mut page)
        .and_then(|()| man.render_name_section(&mut page))
        .and_then(|()| man.render_synopsis_section(&mut page))
        .and_then(|()| man.render_description_section(&mut page))
        .and_then(|()| man.render_options_section(&mut page))
        .and_then(|()| page.write_all(MAN_SECTIONS.as_bytes()))
        .and_then(|()| man.render_version_section(&mut page));
    let mut out = std::io::stdout().lock();
    match rendered
        .and_then(|()| out.write_all(&page))
        .and_then(|()| out.flush())
    {
        Ok(()) => ExitCode::from(exit::OK),
        Err(e) => fail(exit::IO, format!("writing the manual page: {e}")),
    }
}

/// Opens the test clock whose file the command line names (`custodyd-testclock` only).
pub type OpenTestClock = fn(&Path) -> Result<Arc<dyn Clock + Sync>, String>;

/// The daemon's clock: the host's for `custodyd` (`open_test` is `None`), which refuses a test
/// clock; the named file's for `custodyd-testclock`, which requires one. Or why the daemon may
/// not start.
fn choose_clock(
    open_test: Option<OpenTestClock>,
    asked: Option<&Path>,
) -> Result<Arc<dyn Clock + Sync>, String> {
    match (open_test, asked) {
        (None, None) => Ok(Arc::new(SystemClock)),
        (None, Some(_)) => Err(
            "--test-clock: custodyd runs on the host's clock only; a test \
             clock exists only in custodyd-testclock, a test build (cargo feature test-clock) \
             that is never packaged"
                .to_owned(),
        ),
        (Some(open), Some(file)) => {
            let clock = open(file)?;
            tracing::warn!(
                file = %file.display(),
                "test clock: the time is read from this file, not from the host; a test build"
            );
            Ok(clock)
        }
        (Some(_), None) => Err("custodyd-testclock needs --test-clock FILE: it is a test \
             build whose time is the file's; run custodyd on a real host"
            .to_owned()),
    }
}

/// Ends the daemon with `status`, saying why once, on standard error (the log: under systemd,
/// the journal).
fn fail(status: u8, message: impl std::fmt::Display) -> ExitCode {
    eprintln!("custodyd: {message}");
    ExitCode::from(status)
}

/// `--check-config FILE`: every problem of the file and of what it asks of this host, each
/// once on standard error, or a line saying it is valid on standard output.
fn check_config(file: &Path) -> ExitCode {
    let (problems, config) = match Config::load(file) {
        Ok(config) => (
            config
                .host_problems()
                .iter()
                .map(ToString::to_string)
                .collect(),
            Some(config),
        ),
        Err(e) => (e.problems(), None),
    };
    if let (true, Some(config)) = (problems.is_empty(), config) {
        println!("custodyd: {} is valid", file.display());
        println!("{}", attestation_policy(&config));
        println!("{}", approval_proof_policy(&config));
        return ExitCode::from(exit::OK);
    }
    let n = problems.len();
    eprintln!(
        "custodyd: {} is not valid ({n} problem{}):",
        file.display(),
        if n == 1 { "" } else { "s" }
    );
    for p in problems {
        eprintln!("  {p}");
    }
    ExitCode::from(exit::USAGE)
}

/// What the configuration asks of devices' attestation, as `--check-config` shows it.
fn attestation_policy(config: &Config) -> String {
    let trusted = match &config.piv_attestation_test_ca {
        Some(ca) => format!("the test CAs of {} (tests and demos only)", ca.display()),
        None => "Yubico's published PIV attestation roots".to_owned(),
    };
    if config.policy.require_attested_devices {
        format!(
            "custodyd: policy.require_attested_devices = true: every key must have a custody \
             key attested by {trusted}; unattested keys are refused"
        )
    } else {
        format!(
            "custodyd: policy.require_attested_devices = false: keys are attested at \
             registration by {trusted}, and unattested keys are accepted"
        )
    }
}

/// What the configuration takes as an officer's proof at approval, as `--check-config`
/// shows it.
fn approval_proof_policy(config: &Config) -> String {
    use mfa_custody::custody::ApprovalProof;
    let what = match config.policy.approval_proof {
        ApprovalProof::Either => {
            "an approval is proved by the passphrase and either the TOTP code or a signature \
             by the officer's registered YubiKey"
        }
        ApprovalProof::Signature => {
            "an approval is proved by the passphrase and a signature by the officer's \
             registered YubiKey; TOTP approvals are refused"
        }
        ApprovalProof::Totp => {
            "an approval is proved by the passphrase and the TOTP code; signed approvals are \
             refused"
        }
    };
    format!(
        "custodyd: policy.approval_proof = \"{}\": {what}",
        config.policy.approval_proof.as_str()
    )
}

fn harden() {
    // No core dumps and no ptrace by other processes of the same user: secrets live in memory.
    if let Err(e) =
        rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
    {
        tracing::warn!("PR_SET_DUMPABLE 0 failed: {e}");
    }
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    lock_memory();
}

/// Keeps every page of the daemon (keys, passphrases and codes in flight) out of swap, where
/// the OS allows it without risk: when the daemon may lock memory without limit (the systemd
/// unit sets `LimitMEMLOCK=infinity`; a process with `CAP_IPC_LOCK` has no limit). Under a
/// finite limit, locking future allocations would make the daemon fail once the limit is
/// reached, so it logs why memory is not locked and goes on. Pages are locked as they are first
/// touched (`MCL_ONFAULT`), so thread stacks cost only what they use.
fn lock_memory() {
    use rustix::mm::{mlockall, MlockAllFlags};
    let limit = rustix::process::getrlimit(rustix::process::Resource::Memlock);
    let exempt = rustix::thread::capabilities(None)
        .map(|c| {
            c.effective
                .contains(rustix::thread::CapabilitySet::IPC_LOCK)
        })
        .unwrap_or(false);
    if let (Some(bytes), false) = (limit.current, exempt) {
        tracing::warn!(
            "memory not locked: RLIMIT_MEMLOCK is {bytes} bytes; run with LimitMEMLOCK=infinity \
             (packaging/custodyd.service) so secrets cannot be swapped out"
        );
        return;
    }
    let all = MlockAllFlags::CURRENT | MlockAllFlags::FUTURE;
    match mlockall(all | MlockAllFlags::ONFAULT).or_else(|_| mlockall(all)) {
        Ok(()) => tracing::info!("memory locked (mlockall): secrets cannot be swapped out"),
        Err(e) => tracing::warn!("memory not locked: mlockall failed: {e}"),
    }
}

fn check_ledger_dir(dir: &Path) -> Result<(), String> {
    let meta =
        std::fs::metadata(dir).map_err(|e| format!("ledger directory {}: {e}", dir.display()))?;
    if !meta.is_dir() {
        return Err(format!(
            "ledger directory {} is not a directory",
            dir.display()
        ));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(format!(
            "ledger directory {} has mode {mode:04o}; refusing a group- or world-writable ledger",
            dir.display()
        ));
    }
    Ok(())
}

/// Why the daemon may not run.
struct Refusal {
    status: u8,
    message: String,
}

/// Takes the ledger directory's lock, so that one custodyd at a time serves a ledger: a second
/// one on the same configuration would otherwise open the same ledger and replace the first
/// one's socket. The lock goes with the process (however it ends), so a crashed daemon never
/// leaves a stale lock; the file itself stays.
fn lock_ledger(dir: &Path) -> Result<std::fs::File, Refusal> {
    let path = dir.join(LOCK_FILE);
    let ledger = |message: String| Refusal {
        status: exit::LEDGER,
        message,
    };
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(&path)
        .map_err(|e| ledger(format!("opening the lock file {}: {e}", path.display())))?;
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(rustix::io::Errno::WOULDBLOCK) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            let holder = match text.trim().parse::<u32>() {
                Ok(pid) => format!("another custodyd (pid {pid})"),
                Err(_) => "another custodyd".to_owned(),
            };
            return Err(Refusal {
                status: exit::ALREADY_RUNNING,
                message: format!(
                    "{holder} holds {} and is serving the ledger {}; stop it first \
                     (systemctl stop custodyd), or give this one its own ledger_dir and socket",
                    path.display(),
                    dir.display()
                ),
            });
        }
        Err(e) => return Err(ledger(format!("locking {}: {e}", path.display()))),
    }
    let pid = format!("{}\n", std::process::id());
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(pid.as_bytes()))
        .map_err(|e| ledger(format!("writing {}: {e}", path.display())))?;
    Ok(file)
}

fn bind(config: &Config) -> Result<UnixListener, Refusal> {
    let io = |message: String| Refusal {
        status: exit::IO,
        message,
    };
    let path = &config.socket;
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if meta.file_type().is_socket() {
            // The ledger's lock is ours, but a daemon of another ledger may use this socket.
            if UnixStream::connect(path).is_ok() {
                return Err(Refusal {
                    status: exit::ALREADY_RUNNING,
                    message: format!(
                        "{} is in use: another process (a custodyd with another ledger_dir?) \
                         answers on it; stop it, or give this daemon its own socket",
                        path.display()
                    ),
                });
            }
            std::fs::remove_file(path)
                .map_err(|e| io(format!("removing stale socket {}: {e}", path.display())))?;
        } else {
            return Err(io(format!("{} exists and is not a socket", path.display())));
        }
    }
    let listener =
        UnixListener::bind(path).map_err(|e| io(format!("binding {}: {e}", path.display())))?;
    if let Some(group) = &config.socket_group {
        let gid = resolve_group(group)
            .ok_or_else(|| io(format!("socket_group {group:?}: no such group")))?;
        rustix::fs::chown(path, None, Some(rustix::fs::Gid::from_raw(gid)))
            .map_err(|e| io(format!("chown {} to group {group}: {e}", path.display())))?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(|e| io(format!("chmod 0660 {}: {e}", path.display())))?;
    Ok(listener)
}

/// Watches readers and records cards coming and going, identifying each card that appears in
/// an allowed reader (best effort: without pcscd it retries).
fn watch_readers(daemon: Arc<Daemon>, shutdown: Arc<AtomicBool>) {
    let mut reported = false;
    while !shutdown.load(Ordering::SeqCst) {
        let watcher = PcscContext::establish().and_then(|c| Ok((c.watcher()?, c)));
        let (mut watcher, ctx) = match watcher {
            Ok(w) => {
                reported = false;
                w
            }
            Err(e) => {
                if !reported {
                    tracing::warn!("reader watch unavailable (will retry): {e}");
                    reported = true;
                }
                std::thread::sleep(Duration::from_secs(2));
                continue;
            }
        };
        for (reader, present) in watcher.snapshot() {
            tracing::info!(
                reader = reader.as_str(),
                card = present,
                allowed = daemon.options().reader_allowed(&reader),
                "reader"
            );
            if present {
                daemon.card_present(&reader, |r| identify_in_reader(&ctx, r));
            }
        }
        while !shutdown.load(Ordering::SeqCst) {
            match watcher.watch(Duration::from_millis(500)) {
                Ok(events) => {
                    for ev in &events {
                        daemon.reader_event(ev, |r| identify_in_reader(&ctx, r));
                    }
                }
                Err(e) => {
                    tracing::warn!("reader watch: {e}");
                    std::thread::sleep(Duration::from_secs(1));
                    break;
                }
            }
        }
    }
}

/// Runs custodyd until SIGTERM or SIGINT and answers its exit status; `open_test` as in
/// [`choose_clock`].
pub fn main(open_test: Option<OpenTestClock>) -> ExitCode {
    let args = Args::parse();
    if args.man {
        return man_page();
    }
    let config_file = match (&args.check_config, &args.config) {
        (Some(file), _) => return check_config(file),
        (None, Some(file)) => file.clone(),
        // clap requires one of the two.
        (None, None) => return fail(exit::USAGE, "--config FILE is required"),
    };
    tracing_subscriber::fmt()
        .with_max_level(args.log_level)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let clock = match choose_clock(open_test, args.test_clock.as_deref()) {
        Ok(c) => c,
        Err(e) => return fail(exit::USAGE, e),
    };
    harden();
    let config = match Config::load(&config_file) {
        Ok(c) => c,
        Err(e) => return fail(exit::USAGE, e),
    };
    if let Err(e) = check_ledger_dir(&config.ledger_dir) {
        return fail(exit::LEDGER, e);
    }
    // Held until the socket is gone again, so that the next daemon never meets this one.
    let lock = match lock_ledger(&config.ledger_dir) {
        Ok(f) => f,
        Err(r) => return fail(r.status, r.message),
    };
    let shutdown = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        if let Err(e) = signal_hook::flag::register(sig, shutdown.clone()) {
            return fail(exit::IO, format!("installing the signal handler: {e}"));
        }
    }
    let listener = match bind(&config) {
        Ok(l) => l,
        Err(r) => return fail(r.status, r.message),
    };
    let mut options = config.daemon_options();
    options.attestation_anchors = match config.trust_anchors() {
        Ok(a) => a,
        Err(p) => return fail(exit::USAGE, p),
    };
    if let Some(ca) = &config.piv_attestation_test_ca {
        tracing::warn!(
            ca = %ca.display(),
            anchors = ?options.attestation_anchors,
            "piv_attestation_test_ca is set: custody keys are attested against a TEST CA \
             instead of Yubico's roots; an emulated key passes as a YubiKey. Never in production"
        );
    }
    let daemon = Arc::new(Daemon::with_clock(options, clock));
    let watcher = config.watch_readers.then(|| {
        let (d, s) = (daemon.clone(), shutdown.clone());
        std::thread::Builder::new()
            .name("custodyd-readers".into())
            .spawn(move || watch_readers(d, s))
    });
    tracing::info!(
        socket = %config.socket.display(),
        ledger = %config.ledger_dir.display(),
        pid = std::process::id(),
        "custodyd listening (sealed)"
    );
    let result = run(
        listener,
        daemon.clone(),
        shutdown.clone(),
        config.server_limits(),
    );
    shutdown.store(true, Ordering::SeqCst);
    if let Some(Ok(w)) = watcher {
        let _ = w.join();
    }
    daemon.close();
    let _ = std::fs::remove_file(&config.socket);
    drop(lock);
    match result {
        Ok(()) => {
            tracing::info!("custodyd stopped");
            ExitCode::from(exit::OK)
        }
        Err(e) => fail(exit::IO, format!("socket: {e}")),
    }
}
