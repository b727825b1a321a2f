//! `custody audit ...`: signed checkpoints, exports, and offline verification of an export.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;

use super::cloudtrail::{self, CloudTrailArgs};
use super::exit;
use super::ledger::{finish, open, private_umask, Failure, PassphraseSource, UnsealArgs};
use super::progress::{CountingReader, LineCounter, Progress, Unit};
use super::report;
use crate::custody::approval_proofs::{
    verify_export_and_approvals, ApprovalSummary, ExportCheckFailure,
};
use crate::custody::cloudtrail::Windows;
use crate::custody::report::{parse_utc, CustodyReport, ReportBuilder};
use crate::ledger::export::checkpoint_line;
use crate::ledger::{
    export_redacted, parse_export_line, Actor, CheckpointPublicKey, ExportFailure, ExportFilter,
    ExportFormat, ExportLine, Kind, Ledger, LedgerError, SignedCheckpoint, Timestamp,
    VerifiedExport,
};
use crate::token::attestation::TrustAnchors;

/// `custody audit` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Sign and record a checkpoint of the current head, and print it (keep it for --after).
    #[command(
        after_help = "Example:\n  sudo -u custody custody audit checkpoint --ledger /var/lib/custody/ledger --officer alice --officer bob > checkpoint-2026-11.jsonl"
    )]
    Checkpoint(UnsealArgs),
    /// Export the ledger (a checkpoint is signed and recorded first, and ends the export).
    #[command(
        after_help = "Example:\n  sudo -u custody custody audit export --ledger /var/lib/custody/ledger --officer alice --officer bob \\\n      --out ledger-2026-11.jsonl\n  custody audit export --ledger /var/lib/custody/ledger --officer alice --officer bob --format csv --kind code.released"
    )]
    Export(ExportArgs),
    /// Verify an export offline with the pinned public key. Exit 0 when valid, 1 otherwise.
    #[command(
        after_help = "Example:\n  custody audit verify ledger-2026-11.jsonl --pubkey 8d7c7066...\n  custody audit verify ledger-2026-12.jsonl --pubkey 8d7c7066... --after checkpoint-2026-11.jsonl"
    )]
    Verify(VerifyArgs),
    /// Verify an export, then write a self-contained HTML custody report of it (per-device
    /// timelines, requests and releases per account, open incidents). An export that does not
    /// verify gets no report: exit 1, as `verify`.
    #[command(
        after_help = "Example:\n  custody audit report ledger-2026-11.jsonl --pubkey 8d7c7066... --out custody-2026-11.html\n  custody audit report ledger-2026-12.jsonl --pubkey 8d7c7066... --after ledger-2026-11.jsonl --out custody-2026-12.html"
    )]
    Report(ReportArgs),
    /// Verify an export, then hold CloudTrail's record of root activity against it: each root
    /// sign-in and root call is explained by a code release (request, approvers, task) or is a
    /// finding. Exit 0 when nothing but informational findings remain, 1 otherwise; an export
    /// that does not verify gets no findings, only the verification error (exit 1).
    #[command(
        after_help = "FILE is a CloudTrail log file as a trail writes it to S3 ({\"Records\": [...]}, gzipped or not), a directory of them (read recursively; digest files skipped), or JSON Lines of single records.\n\nExample:\n  custody audit cloudtrail --export ledger-2026-11.jsonl --pubkey 8d7c7066... AWSLogs/123456789012/CloudTrail/"
    )]
    Cloudtrail(CloudTrailArgs),
}

/// Export formats on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum FormatArg {
    /// JSON Lines (verifiable with `custody audit verify`).
    Jsonl,
    /// CSV for spreadsheets.
    Csv,
}

/// Arguments of `custody audit export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Ledger and unsealing officers.
    #[command(flatten)]
    pub unseal: UnsealArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "jsonl")]
    pub format: FormatArg,
    /// Write to this file (mode 0600) instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Bodies only for events at or after this time (RFC 3339 UTC such as
    /// 2026-01-31T12:00:00Z, or milliseconds since the epoch).
    #[arg(long, value_parser = parse_time)]
    pub since: Option<Timestamp>,
    /// Bodies only for events before this time.
    #[arg(long, value_parser = parse_time)]
    pub until: Option<Timestamp>,
    /// Bodies only for events of this kind (repeat for several).
    #[arg(long = "kind", value_parser = parse_kind)]
    pub kinds: Vec<Kind>,
    /// Bodies only for events whose body has this top-level "account".
    #[arg(long)]
    pub account: Option<String>,
    /// Bodies only for events whose body has this top-level "device".
    #[arg(long)]
    pub device: Option<String>,
    /// Bodies only for events by this actor.
    #[arg(long, value_parser = parse_actor)]
    pub actor: Option<Actor>,
}

/// Arguments of `custody audit verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The JSON Lines export (`-` for standard input).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The pinned checkpoint public key (hex or base64).
    #[arg(long, value_name = "KEY", value_parser = parse_key)]
    pub pubkey: CheckpointPublicKey,
    /// A checkpoint kept from earlier (a file whose last checkpoint line is used, such as the
    /// output of `custody audit checkpoint` or an earlier export): the export must extend it.
    #[arg(long, value_name = "CHECKPOINT")]
    pub after: Option<PathBuf>,
    /// Also trust this attestation CA (PEM) for officers' approval keys, beside Yubico's
    /// roots: for exports of test and demo ledgers whose keys are emulated.
    #[arg(long, value_name = "PATH")]
    pub piv_test_ca: Option<PathBuf>,
}

/// Arguments of `custody audit report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The export and the key to verify it with.
    #[command(flatten)]
    pub verify: VerifyArgs,
    /// Write the HTML report to this file (mode 0600, written atomically).
    #[arg(long, short, value_name = "REPORT.html")]
    pub out: PathBuf,
    /// Replace the report file if it exists.
    #[arg(long)]
    pub force: bool,
    /// A CloudTrail file or directory to reconcile against the export, as `audit cloudtrail`
    /// does with its default windows (repeat for several); the report gains a section of them,
    /// and the exit status is 1 when findings need attention.
    #[arg(long, value_name = "FILE")]
    pub cloudtrail: Vec<PathBuf>,
}

fn parse_kind(s: &str) -> Result<Kind, String> {
    Kind::parse(s).map_err(|e| e.to_string())
}

fn parse_actor(s: &str) -> Result<Actor, String> {
    Actor::parse(s).map_err(|e| e.to_string())
}

fn parse_key(s: &str) -> Result<CheckpointPublicKey, String> {
    CheckpointPublicKey::parse(s)
        .ok_or_else(|| "expected a 32-byte key in hex or base64".to_owned())
}

/// Parses milliseconds since the epoch or `YYYY-MM-DDTHH:MM:SS[.fff]Z`.
pub fn parse_time(s: &str) -> Result<Timestamp, String> {
    parse_utc(s)
}

/// Runs `custody audit ...`.
pub fn run(json: bool, cmd: AuditCommand) -> ExitCode {
    private_umask();
    match cmd {
        AuditCommand::Checkpoint(args) => finish(json, checkpoint(json, &args)),
        AuditCommand::Export(args) => finish(json, export_cmd(json, &args)),
        AuditCommand::Verify(args) => finish(json, verify(json, &args)),
        AuditCommand::Report(args) => finish(json, report(json, &args)),
        AuditCommand::Cloudtrail(args) => finish(json, cloudtrail::run(json, &args)),
    }
}

fn checkpoint(json: bool, args: &UnsealArgs) -> Result<(), Failure> {
    let mut source = PassphraseSource::new(args.passphrase_fd)?;
    let mut ledger = open(args, &mut source)?;
    let cp = ledger.checkpoint()?;
    let key = ledger.public_key();
    let line = checkpoint_line(&cp, &key);
    if !json {
        eprintln!(
            "Checkpoint of ledger {} at seq {}, head {}, signed by key {}. Keep the line below for `custody audit verify --after`.",
            cp.checkpoint.ledger_id,
            cp.checkpoint.seq,
            cp.checkpoint.head,
            key.fingerprint()
        );
    }
    outln!("{line}");
    Ok(())
}

fn export_cmd(json: bool, args: &ExportArgs) -> Result<(), Failure> {
    let mut source = PassphraseSource::new(args.unseal.passphrase_fd)?;
    let mut ledger = open(&args.unseal, &mut source)?;
    let filter = ExportFilter {
        since: args.since,
        until: args.until,
        kinds: args.kinds.clone(),
        account: args.account.clone(),
        device: args.device.clone(),
        actor: args.actor.clone(),
    };
    let format = match args.format {
        FormatArg::Jsonl => ExportFormat::JsonLines,
        FormatArg::Csv => ExportFormat::Csv,
    };
    let summary = match &args.out {
        Some(path) => {
            use std::os::unix::fs::OpenOptionsExt;
            let file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| Failure::new(exit::IO, format!("create {}: {e}", path.display())))?;
            let mut w = BufWriter::new(file);
            let mut counted = LineCounter::new(&mut w, export_progress(json, &ledger)?);
            let s = export_redacted(
                &mut ledger,
                &filter,
                format,
                crate::custody::store::SECRET_ENTITIES,
                &mut counted,
            )?;
            drop(counted);
            let file = w.into_inner().map_err(|e| {
                Failure::new(exit::IO, format!("write {}: {}", path.display(), e.error()))
            })?;
            file.sync_all()
                .map_err(|e| Failure::new(exit::IO, format!("fsync {}: {e}", path.display())))?;
            s
        }
        None => {
            let stdout = std::io::stdout();
            let mut w = BufWriter::new(stdout.lock());
            // On a terminal, the export itself is on screen: no progress line across it.
            let progress = if std::io::stdout().is_terminal() {
                Progress::to(None, "exporting", Unit::Events, None, Duration::ZERO)
            } else {
                export_progress(json, &ledger)?
            };
            let mut counted = LineCounter::new(&mut w, progress);
            match export_redacted(
                &mut ledger,
                &filter,
                format,
                crate::custody::store::SECRET_ENTITIES,
                &mut counted,
            ) {
                Ok(s) => s,
                // The reader went away (`| head`): not an error.
                Err(LedgerError::Output { source })
                    if source.kind() == std::io::ErrorKind::BrokenPipe =>
                {
                    return Ok(())
                }
                Err(e) => return Err(e.into()),
            }
        }
    };
    let cp = &summary.checkpoint.checkpoint;
    let text = if json {
        json!({"ok": true, "events": summary.events, "stubs": summary.stubs,
               "checkpoint_seq": cp.seq, "head": cp.head.to_hex()})
        .to_string()
    } else {
        format!(
            "exported {} events with bodies and {} stubs, up to checkpoint seq {} head {}",
            summary.events, summary.stubs, cp.seq, cp.head
        )
    };
    // The export itself may be on standard output; the summary then goes to standard error.
    if args.out.is_some() {
        outln!("{text}");
    } else {
        eprintln!("{text}");
    }
    Ok(())
}

/// Progress of an export: events written out of the head's seq (the export ends there).
fn export_progress(json: bool, ledger: &Ledger) -> Result<Progress, Failure> {
    let total = ledger.head()?.map(|h| h.seq);
    Ok(Progress::stderr(json, "exporting", Unit::Events, total))
}

fn read_after(path: &PathBuf) -> Result<SignedCheckpoint, Failure> {
    let file = File::open(path)
        .map_err(|e| Failure::new(exit::IO, format!("open {}: {e}", path.display())))?;
    let mut found = None;
    for line in BufReader::new(file).split(b'\n') {
        let line =
            line.map_err(|e| Failure::new(exit::IO, format!("read {}: {e}", path.display())))?;
        if let Ok(ExportLine::Checkpoint { checkpoint, .. }) = parse_export_line(&line) {
            found = Some(checkpoint);
        }
    }
    found.ok_or_else(|| {
        Failure::new(
            exit::USAGE,
            format!("{} holds no checkpoint line", path.display()),
        )
    })
}

/// The trust anchors for officers' approval keys: Yubico's roots, and `--piv-test-ca`.
fn approval_anchors(v: &VerifyArgs) -> Result<TrustAnchors, Failure> {
    let anchors = TrustAnchors::yubico();
    let Some(path) = &v.piv_test_ca else {
        return Ok(anchors);
    };
    let pem = std::fs::read_to_string(path).map_err(|e| {
        Failure::new(
            exit::USAGE,
            format!("--piv-test-ca {}: {e}", path.display()),
        )
    })?;
    anchors.with_pem(&pem).map_err(|e| {
        Failure::new(
            exit::USAGE,
            format!(
                "--piv-test-ca {}: {e} (give the PEM certificate of the attestation CA)",
                path.display()
            ),
        )
    })
}

/// The approvals line of `verify` and `report`.
fn approvals_line(a: &ApprovalSummary) -> String {
    format!(
        "approvals: {} signed and checked (officer keys attested: {}), {} TOTP, {} not checked{}",
        a.signed,
        a.attested_keys,
        a.totp,
        a.unchecked,
        if a.unchecked > 0 {
            " (their request, key registration or body is left out of this export)"
        } else {
            ""
        }
    )
}

/// The `approvals` object of `--json` outputs.
pub(crate) fn approvals_json(a: &ApprovalSummary) -> serde_json::Value {
    json!({"signed": a.signed, "totp": a.totp, "unchecked": a.unchecked})
}

fn verify(json: bool, args: &VerifyArgs) -> Result<(), Failure> {
    let after = args.after.as_ref().map(read_after).transpose()?;
    let anchors = approval_anchors(args)?;
    let input = open_export(json, &args.file)?;
    match verify_export_and_approvals(input, &args.pubkey, after.as_ref(), anchors, &mut |_| {}) {
        Ok((v, a)) => {
            let cp = &v.checkpoint.checkpoint;
            if json {
                outln!(
                    "{}",
                    json!({"ok": true, "valid": true, "ledger_id": v.ledger_id.to_hex(), "events": v.events,
                           "stubs": v.stubs, "redacted": v.redacted, "checkpoint_seq": cp.seq, "head": cp.head.to_hex(),
                           "after_seq": after.map(|a| a.checkpoint.seq),
                           "approvals": approvals_json(&a), "attested_keys": a.attested_keys,
                           "presence_signed": a.presence_signed})
                );
            } else {
                outln!(
                    "valid: ledger {}, {} events ({} with bodies, {}{} stubs), checkpoint seq {} head {} signed by {}{}",
                    v.ledger_id,
                    v.events + v.stubs + v.redacted,
                    v.events,
                    if v.redacted > 0 {
                        format!("{} with credential records left out (signed), ", v.redacted)
                    } else {
                        String::new()
                    },
                    v.stubs,
                    cp.seq,
                    cp.head,
                    args.pubkey.fingerprint(),
                    after
                        .map(|a| format!(", extends the checkpoint at seq {}", a.checkpoint.seq))
                        .unwrap_or_default()
                );
                outln!("{}", approvals_line(&a));
                if a.presence_signed > 0 {
                    outln!(
                        "two-officer operations: {} officers' YubiKey signatures checked",
                        a.presence_signed
                    );
                }
            }
            Ok(())
        }
        Err(f) => Err(invalid_check(json, &f)),
    }
}

/// Opens an export (`-`: standard input), counting what is read for the progress line.
fn open_export(json: bool, file: &Path) -> Result<CountingReader<Box<dyn BufRead>>, Failure> {
    let (input, size): (Box<dyn BufRead>, Option<u64>) = if file.as_os_str() == "-" {
        (Box::new(BufReader::new(std::io::stdin())), None)
    } else {
        let f = File::open(file)
            .map_err(|e| Failure::new(exit::IO, format!("open {}: {e}", file.display())))?;
        let size = f.metadata().ok().map(|m| m.len());
        (Box::new(BufReader::with_capacity(256 * 1024, f)), size)
    };
    let progress = Progress::stderr(json, "verifying", Unit::Bytes, size);
    Ok(CountingReader::new(input, progress))
}

/// Prints why an export does not verify, and the status of a failed verification.
/// With `--json` it is the common error (`{"ok":false,"status":1,"error":{"code":"refused",
/// "reason":null,"message","line","seq","problem"}}`); for a person, `invalid: ...` on
/// standard output.
fn invalid(json: bool, f: &ExportFailure) -> Failure {
    if json {
        return Failure::new(exit::FAILED, format!("invalid: {f}"))
            .with("line", f.line)
            .with("seq", f.seq)
            .with("problem", f.problem.to_string());
    }
    outln!("invalid: {f}");
    let _ = std::io::stdout().flush();
    Failure::reported(exit::FAILED)
}

/// [`invalid`] for a failure of the export or of its approvals. An approval failure has no
/// line (the export's chain verified): `seq` names the event and `problem` the check.
fn invalid_check(json: bool, f: &ExportCheckFailure) -> Failure {
    match f {
        ExportCheckFailure::Export(e) => invalid(json, e),
        ExportCheckFailure::Approval(a) => {
            if json {
                return Failure::new(exit::FAILED, format!("invalid: {a}"))
                    .with("seq", a.seq)
                    .with("problem", a.check.as_str());
            }
            outln!("invalid: {a}");
            let _ = std::io::stdout().flush();
            Failure::reported(exit::FAILED)
        }
    }
}

/// Verifies an export exactly as `verify` does and, only if it verifies, answers the custody
/// story it tells, the verifier's result and the seq of the kept checkpoint it extends. An
/// export that does not verify is reported as `verify` reports it (exit 1).
pub(crate) fn verified_report(
    json: bool,
    v: &VerifyArgs,
) -> Result<(CustodyReport, VerifiedExport, Option<u64>), Failure> {
    let after = v.after.as_ref().map(read_after).transpose()?;
    let anchors = approval_anchors(v)?;
    let input = open_export(json, &v.file)?;
    let mut builder = ReportBuilder::new();
    // Fail closed: the report is built while verifying, and used only if the export and its
    // approvals verify.
    let (verified, approvals) =
        verify_export_and_approvals(input, &v.pubkey, after.as_ref(), anchors, &mut |line| {
            builder.observe(line)
        })
        .map_err(|f| invalid_check(json, &f))?;
    let after_seq = after.map(|a| a.checkpoint.seq);
    let mut custody = builder.finish(&verified, v.pubkey.fingerprint());
    custody.set_approval_proofs(approvals);
    Ok((custody, verified, after_seq))
}

fn report(json: bool, args: &ReportArgs) -> Result<(), Failure> {
    let v = &args.verify;
    if !args.force && std::fs::symlink_metadata(&args.out).is_ok() {
        return Err(Failure::new(
            exit::IO,
            format!(
                "{}: already exists (use --force to replace it)",
                args.out.display()
            ),
        ));
    }
    let files = if args.cloudtrail.is_empty() {
        Vec::new()
    } else {
        cloudtrail::inputs(&args.cloudtrail)?
    };
    let (custody, verified, after_seq) = verified_report(json, v)?;
    let reconciled = if files.is_empty() {
        None
    } else {
        let windows = Windows::default();
        Some(cloudtrail::read_files(json, &custody, windows, &files)?)
    };
    let html =
        report::render_html_with(&custody, Timestamp::now().0, after_seq, reconciled.as_ref());
    report::write_atomically(&args.out, html.as_bytes(), args.force)
        .map_err(|e| Failure::new(exit::IO, format!("{}: {e}", args.out.display())))?;
    if json {
        let mut summary = report::summary(&custody, &args.out, after_seq);
        if let Some(ct) = &reconciled {
            summary["cloudtrail"] = json!({
                "records": ct.records,
                "explained": ct.explained.len(),
                "findings": ct.findings.iter().map(|f| f.kind.as_str()).collect::<Vec<_>>(),
                "clean": ct.clean(),
            });
        }
        outln!("{summary}");
    } else {
        let open = custody.open_incidents().count();
        outln!(
            "valid: ledger {}, {} events up to checkpoint seq {} signed by {}",
            custody.ledger_id,
            custody.events + custody.stubs,
            verified.checkpoint.checkpoint.seq,
            v.pubkey.fingerprint()
        );
        if let Some(a) = &custody.approval_proofs {
            outln!("{}", approvals_line(a));
        }
        outln!(
            "report: {} ({} device(s), {} account(s), {} request(s), {} open incident(s))",
            args.out.display(),
            custody.devices.len(),
            custody.accounts.len(),
            custody.requests().count(),
            open
        );
        if let Some(ct) = &reconciled {
            let info = ct
                .findings
                .iter()
                .filter(|f| f.kind.informational())
                .count();
            outln!(
                "cloudtrail: {} record(s), {} explained, {} finding(s) needing attention, {info} informational",
                ct.records,
                ct.explained.len(),
                ct.findings.len() - info
            );
        }
    }
    match &reconciled {
        Some(ct) if !ct.clean() => Err(Failure::reported(exit::FAILED)),
        _ => Ok(()),
    }
}
