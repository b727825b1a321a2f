//! `custody audit cloudtrail`: verify an export, then reconcile CloudTrail's root activity
//! against its releases ([`crate::custody::cloudtrail`]), offline.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::{json, Value};

use super::audit::{verified_report, VerifyArgs};
use super::exit;
use super::ledger::Failure;
use super::progress::{Progress, Unit};
use crate::custody::cloudtrail::{
    read_records, Explained, Finding, Held, ReadError, Reconciler, Reconciliation, RecordProblem,
    Windows,
};
use crate::custody::escape_unsafe;
use crate::custody::report::{utc, CustodyReport};
use crate::ledger::CheckpointPublicKey;

/// Arguments of `custody audit cloudtrail`.
#[derive(Debug, Args)]
pub struct CloudTrailArgs {
    /// The JSON Lines export of the ledger (verified first, as `custody audit verify` does).
    #[arg(long, value_name = "EXPORT")]
    pub export: PathBuf,
    /// The pinned checkpoint public key (hex or base64).
    #[arg(long, value_name = "KEY", value_parser = parse_key)]
    pub pubkey: CheckpointPublicKey,
    /// A checkpoint kept from earlier: the export must extend it (as for `verify`).
    #[arg(long, value_name = "CHECKPOINT")]
    pub after: Option<PathBuf>,
    /// Also trust this attestation CA (PEM) for officers' approval keys (as for `verify`).
    #[arg(long, value_name = "PATH")]
    pub piv_test_ca: Option<PathBuf>,
    /// How long after a code release a root sign-in is explained by it (seconds, or with a
    /// unit: 90s, 5m, 1h).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub window: i64,
    /// How long after an explained sign-in the root calls of its session are explained.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_duration)]
    pub session: i64,
    /// CloudTrail files or directories of them.
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
}

fn parse_key(s: &str) -> Result<CheckpointPublicKey, String> {
    CheckpointPublicKey::parse(s)
        .ok_or_else(|| "expected a 32-byte key in hex or base64".to_owned())
}

/// Milliseconds of `90`, `90s`, `5m` or `1h` (at most 24 h).
fn parse_duration(s: &str) -> Result<i64, String> {
    let bad = || format!("{s:?} is not a duration such as 300, 90s, 5m or 1h (at most 24h)");
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: i64 = num.parse().map_err(|_| bad())?;
    let per = match unit {
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(bad()),
    };
    let ms = n.checked_mul(per).ok_or_else(bad)?;
    if ms > 24 * 3_600_000 {
        return Err(bad());
    }
    Ok(ms)
}

/// Every file to read, in order: the named ones, and the `.json`, `.json.gz`, `.jsonl` and
/// `.jsonl.gz` files below named directories (sorted; digest files and symbolic links to
/// directories skipped).
pub(crate) fn inputs(named: &[PathBuf]) -> Result<Vec<PathBuf>, Failure> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), Failure> {
        let read = |e: std::io::Error| Failure::new(exit::IO, format!("{}: {e}", dir.display()));
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(read)?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()
            .map_err(read)?;
        entries.sort();
        for path in entries {
            let meta = std::fs::symlink_metadata(&path)
                .map_err(|e| Failure::new(exit::IO, format!("{}: {e}", path.display())))?;
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            let name = name.unwrap_or_default();
            if name.contains("CloudTrail-Digest") {
                continue;
            }
            if meta.is_dir() {
                walk(&path, out)?;
            } else if [".json", ".json.gz", ".jsonl", ".jsonl.gz"]
                .iter()
                .any(|ext| name.ends_with(ext))
            {
                out.push(path);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    for path in named {
        let meta = std::fs::metadata(path)
            .map_err(|e| Failure::new(exit::IO, format!("{}: {e}", path.display())))?;
        if meta.is_dir() {
            let before = out.len();
            walk(path, &mut out)?;
            if out.len() == before {
                return Err(Failure::new(
                    exit::USAGE,
                    format!(
                        "{}: no CloudTrail file (.json, .json.gz, .jsonl, .jsonl.gz) below this directory",
                        path.display()
                    ),
                ));
            }
        } else {
            out.push(path.clone());
        }
    }
    Ok(out)
}

/// Runs `custody audit cloudtrail`.
pub(crate) fn run(json: bool, args: &CloudTrailArgs) -> Result<(), Failure> {
    if args.window <= 0 || args.session <= 0 {
        return Err(Failure::new(
            exit::USAGE,
            "--window and --session must be longer than zero",
        ));
    }
    let files = inputs(&args.files)?;
    let verify = VerifyArgs {
        file: args.export.clone(),
        pubkey: args.pubkey,
        after: args.after.clone(),
        piv_test_ca: args.piv_test_ca.clone(),
    };
    let (report, verified, after_seq) = verified_report(json, &verify)?;
    let windows = Windows {
        sign_in_ms: args.window,
        session_ms: args.session,
    };
    let outcome = read_files(json, &report, windows, &files)?;

    let cp = &verified.checkpoint.checkpoint;
    // A filtered export carries some releases as stubs: what they released is unknown here.
    let release_stubs = report
        .stub_kinds
        .get(crate::custody::store::kinds::CODE_RELEASED)
        .copied()
        .unwrap_or(0);
    if json {
        outln!(
            "{}",
            json!({
                "ok": true,
                "valid": true,
                "ledger_id": report.ledger_id,
                "checkpoint": {"seq": cp.seq, "head": cp.head.to_hex()},
                "after_seq": after_seq,
                "files": files.len(),
                "records": outcome.records,
                "root_records": outcome.root_records,
                "other_identities": outcome.other_identities,
                "assume_root": outcome.assume_root,
                "covered": outcome.covered_ms.map(|(a, b)| json!({"from": iso(a), "to": iso(b)})),
                "releases_outside_period": outcome.releases_outside_period,
                "release_stubs": release_stubs,
                "explained": outcome.explained.iter().map(explained_json).collect::<Vec<_>>(),
                "findings": outcome.findings.iter().map(finding_json).collect::<Vec<_>>(),
                "clean": outcome.clean(),
            })
        );
    } else {
        human(&report.ledger_id, cp.seq, after_seq, files.len(), &outcome);
        if release_stubs > 0 {
            outln!(
                "warning: {release_stubs} code release(s) are stubs in this filtered export, so sign-ins they explain show as findings: reconcile against a whole export"
            );
        }
    }
    if outcome.clean() {
        Ok(())
    } else {
        Err(Failure::reported(exit::FAILED))
    }
}

/// Reads `files` (from [`inputs`]) into a reconciliation of `report`'s accounts and releases.
pub(crate) fn read_files(
    json: bool,
    report: &CustodyReport,
    windows: Windows,
    files: &[PathBuf],
) -> Result<Reconciliation, Failure> {
    let mut reconciler = Reconciler::new(Held::from_report(report), windows);
    let total: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let mut progress = Progress::stderr(json, "reading CloudTrail", Unit::Bytes, Some(total));
    for path in files {
        let file = File::open(path)
            .map_err(|e| Failure::new(exit::IO, format!("open {}: {e}", path.display())))?;
        let input = Counted {
            inner: file,
            progress: &mut progress,
        };
        let mut record = 0u64;
        let mut sink = |r| -> Result<(), RecordProblem> {
            record += 1;
            reconciler.push(r)
        };
        match read_records(input, &mut sink) {
            Ok(_) => {}
            Err(ReadError::Input(e)) => {
                return Err(Failure::new(
                    exit::FAILED,
                    format!("{}: {e}", path.display()),
                ))
            }
            Err(ReadError::Sink(e)) => {
                return Err(Failure::new(
                    exit::FAILED,
                    format!("{}: record {record}: {e}", path.display()),
                ))
            }
        }
    }
    progress.finish();
    Ok(reconciler.finish())
}

/// A reader that adds what passes through it to a progress line shared by all the files.
struct Counted<'a, R> {
    inner: R,
    progress: &'a mut Progress,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.add(n as u64);
        Ok(n)
    }
}

/// `2026-11-30T12:00:00Z`.
fn iso(ms: i64) -> String {
    utc(ms).replace(' ', "T")
}

fn explained_json(e: &Explained) -> Value {
    json!({"event_id": e.event_id, "event_time": iso(e.time_ms), "account": e.account,
           "event_name": e.event_name, "request": e.request, "task": e.task,
           "approvers": e.approvers})
}

fn finding_json(f: &Finding) -> Value {
    json!({"kind": f.kind.as_str(), "event_id": f.event_id, "event_time": iso(f.time_ms),
           "account": f.account, "request": f.request, "informational": f.kind.informational(),
           "sentence": f.sentence})
}

fn human(ledger: &str, seq: u64, after: Option<u64>, files: usize, o: &Reconciliation) {
    outln!(
        "valid: ledger {ledger}, checkpoint seq {seq}{}",
        after
            .map(|a| format!(", extends the checkpoint at seq {a}"))
            .unwrap_or_default()
    );
    outln!(
        "cloudtrail: {} record(s) in {files} file(s){}: {} root, {} AssumeRoot session call(s), {} of other identities (ignored)",
        o.records,
        o.covered_ms
            .map(|(a, b)| format!(" from {} to {}", utc(a), utc(b)))
            .unwrap_or_default(),
        o.root_records - o.assume_root,
        o.assume_root,
        o.other_identities
    );
    let info = o.findings.iter().filter(|f| f.kind.informational()).count();
    outln!(
        "explained: {}; findings: {} needing attention, {info} informational{}",
        o.explained.len(),
        o.findings.len() - info,
        if o.releases_outside_period > 0 {
            format!(
                "; {} release(s) outside the period these files cover, not judged",
                o.releases_outside_period
            )
        } else {
            String::new()
        }
    );
    if !o.explained.is_empty() {
        outln!("");
        outln!(
            "{:<20}  {:<12}  {:<24}  {:<26}  request",
            "explained (UTC)",
            "account",
            "event",
            "task"
        );
        for e in &o.explained {
            outln!(
                "{:<20}  {:<12}  {:<24}  {:<26}  {} (approved by {})",
                utc(e.time_ms),
                escape_unsafe(&e.account),
                escape_unsafe(&e.event_name),
                e.task.as_deref().unwrap_or("?"),
                e.request,
                e.approvers.join(", ")
            );
        }
    }
    if !o.findings.is_empty() {
        outln!("");
        outln!(
            "{:<20}  {:<12}  {:<34}  event id",
            "finding (UTC)",
            "account",
            "kind"
        );
        for f in &o.findings {
            outln!(
                "{:<20}  {:<12}  {:<34}  {}",
                utc(f.time_ms),
                escape_unsafe(&f.account),
                f.kind.as_str(),
                escape_unsafe(f.event_id.as_deref().unwrap_or("-"))
            );
            outln!("    {}", escape_unsafe(&f.sentence));
        }
    }
}
