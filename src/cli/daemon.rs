//! `custody status | unseal | seal | export | release`: talk to `custodyd` about its state
//! and its exports.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use serde_json::json;

use super::client::{call, read_secret, AuthArgs};
use super::exit;
use super::ledger::{finish, Failure};
use crate::daemon::protocol::{Op, Reply, Secret};

/// Arguments of `custody unseal`.
#[derive(Debug, Args)]
#[command(
    after_help = "Each share is checked when it is offered: a wrong passphrase is refused at once, to the officer\nwho typed it, and never kept.\n\nExample:\n  custody unseal --officer alice            # prompts for alice's passphrase\n  custody unseal --officer bob --passphrase-fd 3 3<bob.pass\n  custody unseal --reset --officer alice    # abandon a half-done unseal (forgets every share offered)"
)]
pub struct UnsealArgs {
    /// The officer offering their share (their name in the keyring).
    #[arg(long, value_name = "NAME")]
    pub officer: String,
    /// Forget the shares offered so far instead of offering one (a keyring officer proves it
    /// with their own keyring passphrase).
    #[arg(long)]
    pub reset: bool,
    /// Read the passphrase from this file descriptor (first line) instead of prompting.
    #[arg(long, value_name = "N")]
    pub passphrase_fd: Option<u32>,
}

/// Arguments of `custody seal`.
#[derive(Debug, Args)]
#[command(
    after_help = "An officer seals, with their custody passphrase and second-factor code (like any officer\noperation); the seal event names them.\n\nExample:\n  custody seal --as alice                     # prompts for the passphrase and code\n  custody seal --as alice --passphrase-fd 3 --totp-fd 4 3<alice.pass 4<<<\"$CODE\""
)]
pub struct SealArgs {
    /// The officer who seals (recorded in the ledger).
    #[command(flatten)]
    pub auth: AuthArgs,
}

/// Arguments of `custody export`.
#[derive(Debug, Args)]
#[command(
    after_help = "The export carries every event, signed; users' sealed credential records are left out \
(each such event carries its body with the credential replaced by its digest, signed by the \
ledger's key, and still verifies in the hash chain). The file is created mode 0600.\n\n\
Example:\n  custody login --as erin\n  custody export --out ledger-2026-11.jsonl\n  custody audit verify ledger-2026-11.jsonl --pubkey KEY\n  custody export --out ledger.jsonl --as erin --passphrase-fd 3"
)]
pub struct ExportArgs {
    /// Where to write the export (JSON Lines); it must not exist, and is created mode 0600.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// How you authenticate (officers and auditors): the session of `custody login`, or --as
    /// for this command.
    #[command(flatten)]
    pub auth: super::session::ReadAuthArgs,
}

/// Arguments of `custody release`.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  custody release 123456789012 --out release-123456789012.jsonl --by alice --by bob\n  custody audit verify release-123456789012.jsonl --pubkey KEY"
)]
pub struct ReleaseArgs {
    /// The account whose custody ends.
    pub account: String,
    /// Where to write the signed extract of the account's history (JSON Lines); it must not
    /// exist.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// The two officers.
    #[command(flatten)]
    pub pair: super::client::PairArgs,
}

fn unexpected(r: &Reply) -> Failure {
    Failure::new(exit::IO, format!("unexpected answer from custodyd: {r:?}"))
}

/// `custody status`.
pub fn status(json: bool, socket: &Path) -> ExitCode {
    finish(
        json,
        (|| {
            let r = call(socket, Op::Status)?;
            let Reply::Status(s) = &r else {
                return Err(unexpected(&r));
            };
            if json {
                outln!("{}", json!({"ok": true, "status": s}));
            }
            if !json && s.sealed {
                outln!("custodyd: SEALED (ledger {})", s.ledger_id);
                outln!(
                    "Unseal: {} of {} officer(s) so far{}",
                    s.unseal_given.len(),
                    s.threshold,
                    if s.unseal_given.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", s.unseal_given.join(", "))
                    }
                );
                outln!("Officers: {}", s.officers.join(", "));
            } else if !json {
                outln!("custodyd: UNSEALED (ledger {})", s.ledger_id);
                outln!("Head: seq {}", s.head_seq.unwrap_or(0));
                outln!(
                    "Checkpoint public key: {}",
                    s.public_key.as_deref().unwrap_or("?")
                );
            }
            if s.sealed {
                // Answered: the output above is the whole answer, the status tells it too.
                return Err(Failure::reported(exit::SEALED));
            }
            Ok(())
        })(),
    )
}

/// `custody unseal`.
pub fn unseal(json: bool, socket: &Path, args: UnsealArgs) -> ExitCode {
    finish(
        json,
        (|| {
            let pass = read_secret(
                args.passphrase_fd,
                &format!("Passphrase of officer {}: ", args.officer),
            )?;
            let op = if args.reset {
                Op::UnsealReset {
                    officer: args.officer.clone(),
                    passphrase: Secret::new(pass),
                }
            } else {
                Op::Unseal {
                    officer: args.officer.clone(),
                    passphrase: Secret::new(pass),
                }
            };
            let r = call(socket, op)?;
            let Reply::Unseal(p) = &r else {
                return Err(unexpected(&r));
            };
            if json {
                outln!("{}", json!({"ok": true, "unseal": p}));
            } else if args.reset {
                outln!(
                    "Unseal reset by {}: every share offered so far is forgotten; {} officers \
                     start again with `custody unseal`.",
                    args.officer,
                    p.threshold
                );
            } else if p.unsealed {
                outln!(
                    "Unsealed: the quorum of {} is complete; the ledger is open.",
                    p.threshold
                );
            } else {
                outln!(
                    "Share of {} accepted: {} of {} ({}). The next officer runs `custody unseal`.",
                    args.officer,
                    p.given.len(),
                    p.threshold,
                    p.given.join(", ")
                );
            }
            Ok(())
        })(),
    )
}

/// `custody seal`.
pub fn seal(json: bool, socket: &Path, args: SealArgs) -> ExitCode {
    finish(
        json,
        (|| {
            let r = args.auth.call(
                socket,
                Op::Seal {
                    by: args.auth.read()?,
                },
            )?;
            let Reply::Sealed { seq } = r else {
                return Err(unexpected(&r));
            };
            if json {
                outln!("{}", json!({"ok": true, "sealed": true, "seq": seq}));
            } else {
                outln!("Sealed (event {seq}); the ledger is closed and its keys are erased from memory.");
            }
            Ok(())
        })(),
    )
}

/// `custody export`.
pub fn export(json: bool, socket: &Path, args: ExportArgs) -> ExitCode {
    finish(
        json,
        (|| {
            let _s = super::session::for_reads(socket, &args.auth, "custody export")?;
            let r = call(socket, Op::Export)?;
            write_export(json, &args.out, &r, "Exported")?;
            Ok(())
        })(),
    )
}

/// Writes an export carried in `r` to `out` (which must not exist) and reports it.
fn write_export(json: bool, out: &Path, r: &Reply, verb: &str) -> Result<(), Failure> {
    let Reply::Export {
        events,
        seq,
        public_key,
        content,
    } = r
    else {
        return Err(unexpected(r));
    };
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .map_err(|e| Failure::new(exit::IO, format!("{}: {e}", out.display())))?;
    f.write_all(content.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| Failure::new(exit::IO, format!("{}: {e}", out.display())))?;
    if json {
        outln!(
            "{}",
            json!({"ok": true, "path": out.display().to_string(), "events": events, "seq": seq, "public_key": public_key})
        );
    } else {
        outln!(
            "{verb} {events} event(s) up to seq {seq} to {}",
            out.display()
        );
        outln!(
            "Verify offline: custody audit verify {} --pubkey {public_key}",
            out.display()
        );
    }
    Ok(())
}

/// `custody release`: ends custody of an account (two officers) and writes the signed extract
/// of its history.
pub fn release(json: bool, socket: &Path, args: ReleaseArgs) -> ExitCode {
    finish(
        json,
        (|| {
            if args.out.exists() {
                return Err(Failure::new(
                    exit::IO,
                    format!("{}: already exists", args.out.display()),
                ));
            }
            let r = call(
                socket,
                args.pair.signed(
                    socket,
                    Op::Release {
                        by: args.pair.read()?,
                        account: args.account.clone(),
                    },
                )?,
            )?;
            write_export(json, &args.out, &r, "Custody released; wrote")
        })(),
    )
}
