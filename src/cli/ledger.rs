//! `custody ledger ...`: verify the live ledger, re-share the master secret; and the unseal
//! arguments and passphrase input shared by every command that opens the ledger.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::json;
use zeroize::Zeroizing;

use super::exit;
use super::progress::{Progress, Unit};
use super::secret_input::SecretFd;
use crate::daemon::protocol::{ErrorCode, RefusalCode};
use crate::ledger::seal::PassphraseError;
use crate::ledger::{
    verify_ledger_observed, Ledger, LedgerError, OfficerName, Passphrase, Projections,
};

/// `custody ledger` subcommands.
#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Verify the live ledger: every hash and link, every checkpoint, and that the projection
    /// tables equal a replay of the events.
    #[command(
        after_help = "Example:\n  sudo -u custody custody ledger verify --ledger /var/lib/custody/ledger --officer alice --officer bob"
    )]
    Verify(UnsealArgs),
    /// Re-share the master secret (add or remove officers, change the threshold). Needs a quorum
    /// of current officers; new officers choose passphrases.
    #[command(
        after_help = "Example:\n  sudo -u custody custody ledger reshare --ledger /var/lib/custody/ledger --officer alice --officer bob \\\n      --new-officer alice --new-officer bob --new-officer carol --threshold 2"
    )]
    Reshare(ReshareArgs),
}

/// How to find and unseal the ledger.
#[derive(Debug, Args)]
pub struct UnsealArgs {
    /// The ledger directory.
    #[arg(long, value_name = "DIR")]
    pub ledger: PathBuf,
    /// An officer taking part in the unseal (repeat; at least the keyring's threshold).
    #[arg(long = "officer", value_name = "NAME", required = true, value_parser = parse_officer)]
    pub officers: Vec<OfficerName>,
    /// Read passphrases from this file descriptor, one per line, in the order of --officer,
    /// instead of prompting.
    #[arg(long, value_name = "N")]
    pub passphrase_fd: Option<u32>,
}

/// Arguments of `custody ledger reshare`.
#[derive(Debug, Args)]
pub struct ReshareArgs {
    /// Ledger and the current officers who approve the re-share.
    #[command(flatten)]
    pub unseal: UnsealArgs,
    /// The new set of officers, in keyring order (repeat). Officers not in the approving quorum
    /// choose a passphrase (read after the quorum's from --passphrase-fd, in this order).
    #[arg(long = "new-officer", value_name = "NAME", required = true, value_parser = parse_officer)]
    pub new_officers: Vec<OfficerName>,
    /// How many officers the new keyring needs to unseal (at least 2).
    #[arg(long, default_value_t = 2)]
    pub threshold: usize,
}

pub(crate) fn parse_officer(s: &str) -> Result<OfficerName, String> {
    OfficerName::parse(s).map_err(|e| e.to_string())
}

/// A failed command: the message to print, the exit status, and, when custodyd answered
/// with one, its error code and the refusal's own reason code.
pub(crate) struct Failure {
    pub(crate) status: u8,
    pub(crate) message: String,
    /// custodyd's code (`refused`, `not_found`, ...); `None` for a failure of this process,
    /// whose code follows from its exit status (see [`Failure::code`]).
    pub(crate) code: Option<ErrorCode>,
    /// The refusal's reason (`seal_mismatch`, `self_approval`, ...), when there is one.
    pub(crate) reason: Option<RefusalCode>,
    /// More fields of the `--json` error object (where a verification failed: `line`,
    /// `seq`, `problem`).
    pub(crate) detail: serde_json::Map<String, serde_json::Value>,
}

impl Failure {
    pub(crate) fn new(status: u8, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            code: None,
            reason: None,
            detail: serde_json::Map::new(),
        }
    }

    /// The same failure with one more field in its `--json` error object.
    pub(crate) fn with(mut self, field: &str, value: impl Into<serde_json::Value>) -> Self {
        self.detail.insert(field.to_owned(), value.into());
        self
    }

    /// A failure of this process that has a reason code of its own (a malformed id refused
    /// before anything is sent is `invalid_input`).
    pub(crate) fn refused(status: u8, reason: RefusalCode, message: impl Into<String>) -> Self {
        Self {
            reason: Some(reason),
            ..Self::new(status, message)
        }
    }

    /// The error code of the `--json` error: custodyd's when it answered, else the one that
    /// names this exit status.
    pub(crate) fn code(&self) -> ErrorCode {
        self.code.unwrap_or(match self.status {
            exit::USAGE => ErrorCode::BadRequest,
            exit::TOKEN => ErrorCode::Token,
            exit::LEDGER => ErrorCode::Ledger,
            exit::IO => ErrorCode::Io,
            _ => ErrorCode::Refused,
        })
    }

    /// The text a person reads: with a reason, `refused (seal_mismatch): ...`.
    pub(crate) fn human(&self) -> String {
        match self.reason {
            Some(r) => format!("refused ({}): {}", r.as_str(), self.message),
            None => self.message.clone(),
        }
    }

    /// The one `--json` error shape of every command:
    /// `{"ok": false, "status": N, "error": {"code", "reason", "message"}}` (`reason` is
    /// `null` when the failure has none).
    pub(crate) fn to_json(&self) -> serde_json::Value {
        let mut error = self.detail.clone();
        error.insert("code".into(), json!(self.code()));
        error.insert("reason".into(), json!(self.reason));
        error.insert("message".into(), json!(self.message));
        json!({"ok": false, "status": self.status, "error": error})
    }
}

impl Failure {
    /// A failure whose explanation the command already printed.
    pub(crate) fn reported(status: u8) -> Self {
        Self::new(status, String::new())
    }
}

impl From<LedgerError> for Failure {
    fn from(e: LedgerError) -> Self {
        let status = match e {
            LedgerError::Io { .. } | LedgerError::Output { .. } => exit::IO,
            LedgerError::Chain { .. }
            | LedgerError::BadCheckpoint { .. }
            | LedgerError::ProjectionMismatch { .. } => exit::FAILED,
            _ => exit::LEDGER,
        };
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            let text = s.to_string();
            if !message.contains(&text) {
                message.push_str(": ");
                message.push_str(&text);
            }
            source = s.source();
        }
        Failure::new(status, message)
    }
}

/// Prints a failure (JSON or text) and turns it into the exit status.
pub(crate) fn finish(json: bool, result: Result<(), Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::from(exit::OK),
        Err(f) if f.message.is_empty() => ExitCode::from(f.status),
        Err(f) => {
            if json {
                outln!("{}", f.to_json());
            } else {
                eprintln!("custody: {}", f.human());
            }
            ExitCode::from(f.status)
        }
    }
}

/// Where passphrases come from: a file descriptor (one per line, each when it is asked for)
/// or the terminal.
pub(crate) struct PassphraseSource {
    fd: Option<SecretFd>,
}

impl PassphraseSource {
    pub(crate) fn new(fd: Option<u32>) -> Result<Self, Failure> {
        Ok(Self {
            fd: fd.map(SecretFd::open).transpose()?,
        })
    }

    fn next_line(&mut self, officer: &OfficerName) -> Result<Option<Zeroizing<String>>, Failure> {
        let Some(fd) = &mut self.fd else {
            return Ok(None);
        };
        Ok(Some(fd.next_line(&format!(
            "the passphrase of officer {officer}"
        ))?))
    }

    /// A passphrase offered to unseal.
    pub(crate) fn unseal(&mut self, officer: &OfficerName) -> Result<Passphrase, Failure> {
        let text = match self.next_line(officer)? {
            Some(l) => l,
            None => Zeroizing::new(
                rpassword::prompt_password(format!("Passphrase of officer {officer}: ")).map_err(
                    |e| {
                        Failure::new(
                            exit::IO,
                            format!("reading passphrase from the terminal: {e}"),
                        )
                    },
                )?,
            ),
        };
        Passphrase::for_unseal(text).map_err(|e| weak(officer, &e))
    }

    /// A newly chosen passphrase: strength-checked, and confirmed when typed.
    pub(crate) fn choose(&mut self, officer: &OfficerName) -> Result<Passphrase, Failure> {
        if let Some(text) = self.next_line(officer)? {
            return Passphrase::new_checked(text).map_err(|e| weak(officer, &e));
        }
        for _ in 0..3 {
            let read = |prompt: String| {
                rpassword::prompt_password(prompt)
                    .map(Zeroizing::new)
                    .map_err(|e| {
                        Failure::new(
                            exit::IO,
                            format!("reading passphrase from the terminal: {e}"),
                        )
                    })
            };
            let first = read(format!("New passphrase of officer {officer}: "))?;
            let again = read(format!("Repeat the passphrase of officer {officer}: "))?;
            if first.as_bytes() != again.as_bytes() {
                eprintln!("The two passphrases differ; try again.");
                continue;
            }
            match Passphrase::new_checked(first) {
                Ok(p) => return Ok(p),
                Err(e) => eprintln!("{}; try again.", e),
            }
        }
        Err(Failure::new(
            exit::USAGE,
            format!("no acceptable passphrase chosen for officer {officer}"),
        ))
    }
}

fn weak(officer: &OfficerName, e: &PassphraseError) -> Failure {
    Failure::new(exit::USAGE, format!("passphrase of officer {officer}: {e}"))
}

/// Reads the quorum's passphrases and opens the ledger.
pub(crate) fn open(args: &UnsealArgs, source: &mut PassphraseSource) -> Result<Ledger, Failure> {
    let mut given = Vec::with_capacity(args.officers.len());
    for name in &args.officers {
        given.push((name.clone(), source.unseal(name)?));
    }
    let ledger = Ledger::open(&args.ledger, &given, Projections::ledger_only())?;
    warn_if_test_keyring(&ledger);
    Ok(ledger)
}

pub(crate) fn warn_if_test_keyring(ledger: &Ledger) {
    let kdf = ledger.keyring().kdf();
    if kdf.is_insecure_test_only() {
        eprintln!(
            "custody: warning: this keyring uses a test-only PBKDF2 iteration count ({}); do not use it for real custody",
            kdf.iterations()
        );
    }
}

/// Restricts files this process creates to its owner.
pub(crate) fn private_umask() {
    rustix::process::umask(rustix::fs::Mode::from_bits_truncate(0o077));
}

/// Runs `custody ledger ...`.
pub fn run(json: bool, cmd: LedgerCommand) -> ExitCode {
    private_umask();
    finish(
        json,
        match cmd {
            LedgerCommand::Verify(args) => verify(json, &args),
            LedgerCommand::Reshare(args) => reshare(json, &args),
        },
    )
}

fn verify(json: bool, args: &UnsealArgs) -> Result<(), Failure> {
    let mut source = PassphraseSource::new(args.passphrase_fd)?;
    let ledger = open(args, &mut source)?;
    let total = ledger.head()?.map(|h| h.seq);
    let mut progress = Progress::stderr(json, "verifying the ledger", Unit::Events, total);
    let report = verify_ledger_observed(&ledger, &mut |seq| progress.set(seq));
    progress.finish();
    let report = report?;
    let head = report.head.map(|(s, h)| (s, h.to_hex()));
    if json {
        outln!(
            "{}",
            json!({
                "ok": true,
                "ledger_id": ledger.ledger_id().to_hex(),
                "events": report.events,
                "head_seq": head.as_ref().map(|h| h.0),
                "head_hash": head.as_ref().map(|h| h.1.clone()),
                "checkpoints": report.checkpoints,
                "projection_tables": report.tables,
            })
        );
    } else {
        outln!(
            "ledger {} is valid: {} events, head {}, {} checkpoints, projections {} equal a replay",
            ledger.ledger_id(),
            report.events,
            head.map(|(s, h)| format!("seq {s} {h}"))
                .unwrap_or_else(|| "none".into()),
            report.checkpoints,
            report.tables.join(", ")
        );
    }
    Ok(())
}

fn reshare(json: bool, args: &ReshareArgs) -> Result<(), Failure> {
    let mut source = PassphraseSource::new(args.unseal.passphrase_fd)?;
    let mut quorum = Vec::new();
    for name in &args.unseal.officers {
        quorum.push((name.clone(), source.unseal(name)?));
    }
    let mut ledger = Ledger::open(&args.unseal.ledger, &quorum, Projections::ledger_only())?;
    warn_if_test_keyring(&ledger);
    let mut chosen = Vec::new();
    for name in &args.new_officers {
        if !args.unseal.officers.contains(name) {
            chosen.push((name.clone(), source.choose(name)?));
        }
    }
    let ev = ledger.reshare(&quorum, &args.new_officers, &chosen, args.threshold)?;
    let names: Vec<&str> = args.new_officers.iter().map(OfficerName::as_str).collect();
    if json {
        outln!(
            "{}",
            json!({"ok": true, "seq": ev.header.seq, "generation": ledger.keyring().generation(),
                   "officers": names, "threshold": args.threshold})
        );
    } else {
        outln!(
            "keyring generation {} written: officers {}, threshold {} (event seq {})",
            ledger.keyring().generation(),
            names.join(", "),
            args.threshold,
            ev.header.seq
        );
    }
    Ok(())
}
