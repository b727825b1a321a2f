//! `custody request ...`, `custody approve`, `custody deny`: dual-control code requests,
//! through custodyd.

use std::path::Path;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::client::{call, print_reply, AuthArgs};
use super::exit;
use super::ledger::{finish, Failure};
use super::session::{for_reads, ReadAuthArgs};
use crate::custody::escape_unsafe;
use crate::daemon::protocol::{Op, Reply, RequestReply};

/// `custody request` subcommands.
#[derive(Debug, Subcommand)]
pub enum RequestCommand {
    /// Ask for one code for a root task on an account (operators and officers).
    #[command(
        after_help = "Example:\n  custody request code --account 123456789012 --task change-root-password \\\n    --ticket SEC-42 --reason \"rotate the root password after the audit\" --as dave"
    )]
    Code(CodeArgs),
    /// List requests: officers and auditors see every request, operators their own (needs
    /// `custody login` or --as).
    #[command(after_help = "Example:\n  custody login --as dave\n  custody --json request list")]
    List {
        /// How you authenticate: the session of `custody login`, or --as for this command.
        #[command(flatten)]
        auth: ReadAuthArgs,
    },
    /// Show one request: account, task, ticket, reason, approvals, status.
    #[command(
        after_help = "Example:\n  custody request show req-0000000000000001\n  custody --json request show req-0000000000000001"
    )]
    Show {
        /// The request id.
        #[arg(value_parser = super::client::parse_request_id)]
        request: String,
        /// How you authenticate: the session of `custody login`, or --as for this command.
        #[command(flatten)]
        auth: ReadAuthArgs,
    },
    /// Cancel your own request: with the session of `custody login`, or --as to authenticate
    /// for this command.
    #[command(
        after_help = "Example:\n  custody request cancel REQ-ID\n  custody request cancel REQ-ID --as dave"
    )]
    Cancel {
        /// The request id.
        #[arg(value_parser = super::client::parse_request_id)]
        request: String,
        /// The requester: the session of `custody login`, or --as.
        #[command(flatten)]
        auth: ReadAuthArgs,
    },
}

/// Arguments of `custody request code`.
#[derive(Debug, Args)]
pub struct CodeArgs {
    /// The account id.
    #[arg(long)]
    pub account: String,
    /// The root task (catalogue id, e.g. change-root-password).
    #[arg(long, value_parser = super::values::offered_text(super::values::tasks), hide_possible_values = true)]
    pub task: String,
    /// The ticket reference (e.g. SEC-42).
    #[arg(long)]
    pub ticket: String,
    /// Why the root user is needed (20 to 1000 characters): plain text on one line, without
    /// control, bidi or invisible characters, since it is what the approving officers read.
    #[arg(long)]
    pub reason: String,
    /// The requester.
    #[command(flatten)]
    pub auth: AuthArgs,
}

/// Arguments of `custody approve`.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  custody approve REQ-ID --as alice      # prompts for passphrase and second-factor code\n  custody approve REQ-ID --as alice --sign\n      # shows the request, asks for the passphrase and your YubiKey's PIV PIN, then a touch\n\nWith --sign your own YubiKey (its approval key, registered with `custody user key register`)\nsigns exactly what was shown, bound to a single-use challenge from custodyd; the signature\nis the approval's second proof and is kept in the ledger for auditors. Without a `custody\nlogin` session, showing the request needs a login first (passphrase, and the second-factor\ncode when you have one)."
)]
pub struct ApproveArgs {
    /// The request id.
    #[arg(value_parser = super::client::parse_request_id)]
    pub request: String,
    /// The approving officer.
    #[command(flatten)]
    pub auth: AuthArgs,
    /// Approve with a signature by your own YubiKey (PIV slot 9c) instead of the
    /// second-factor code.
    #[arg(long)]
    pub sign: bool,
    /// With --sign: read the YubiKey's PIV PIN from this file descriptor instead of prompting.
    #[arg(long, value_name = "N", requires = "sign", value_parser = super::client::parse_fd)]
    pub pin_fd: Option<u32>,
    /// With --sign: which YubiKey.
    #[command(flatten)]
    pub card: super::officer_card::CardArgs,
}

/// Arguments of `custody deny`.
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  custody deny REQ-ID --note \"no change window\" --as bob")]
pub struct DenyArgs {
    /// The request id.
    #[arg(value_parser = super::client::parse_request_id)]
    pub request: String,
    /// Why (at most 500 characters, plain text on one line).
    #[arg(long)]
    pub note: String,
    /// The denying officer.
    #[command(flatten)]
    pub auth: AuthArgs,
}

fn line(r: &RequestReply) -> String {
    format!(
        "{}  {:<10} account {} task {} ticket {} by {} approvals {}",
        r.id,
        r.status.as_str(),
        r.account,
        escape_unsafe(&r.task),
        escape_unsafe(r.ticket.as_str()),
        r.requester,
        r.approvals.len()
    )
}

/// A request as officers read it, one field a line; every ledger string is escaped so that a
/// reason cannot forge a `requester` or `approved` line.
fn detail(r: &RequestReply) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let _ = writeln!(o, "request   {}", r.id);
    let _ = writeln!(o, "status    {}", r.status.as_str());
    let _ = writeln!(o, "account   {}", r.account);
    let _ = writeln!(o, "task      {}", escape_unsafe(&r.task));
    let _ = writeln!(o, "ticket    {}", escape_unsafe(r.ticket.as_str()));
    let _ = writeln!(o, "reason    {}", escape_unsafe(r.reason.as_str()));
    let _ = writeln!(o, "requester {}", r.requester);
    let _ = writeln!(o, "created   {}", super::time::show(r.created_ms));
    let _ = writeln!(o, "expires   {}", super::time::show(r.expires_ms));
    if r.approvals.is_empty() {
        let _ = writeln!(o, "approvals none");
    }
    for a in &r.approvals {
        let _ = writeln!(
            o,
            "approved  by {} at {}",
            a.officer,
            super::time::show(a.at_ms)
        );
    }
    if let Some(until) = r.approvals_valid_until_ms {
        let _ = writeln!(
            o,
            "window    approvals count until {} (then the officers approve again)",
            super::time::show(until)
        );
    }
    if let Some(d) = r.device {
        let _ = writeln!(o, "device    {d}");
    }
    if let Some(s) = r.step {
        let _ = writeln!(o, "step      {s}");
    }
    if let Some(by) = &r.closed_by {
        let _ = writeln!(o, "closed by {by}");
    }
    o
}

fn show(json: bool, r: &Reply) {
    print_reply(json, r, |r| match r {
        Reply::Request(rec) => outln!("{}", line(rec)),
        Reply::Requests(list) => list.iter().for_each(|r| outln!("{}", line(r))),
        other => outln!("{other:?}"),
    });
}

/// Runs `custody request ...`.
pub fn run(json: bool, socket: &Path, cmd: RequestCommand) -> ExitCode {
    finish(
        json,
        (|| {
            let r = match cmd {
                RequestCommand::Code(a) => {
                    let by = a.auth.read()?;
                    a.auth.call(
                        socket,
                        Op::RequestCode {
                            by,
                            account: a.account,
                            task: a.task,
                            ticket: a.ticket,
                            reason: a.reason,
                        },
                    )?
                }
                RequestCommand::List { auth } => {
                    let _s = for_reads(socket, &auth, "custody request list")?;
                    call(socket, Op::Requests)?
                }
                RequestCommand::Show { request, auth } => {
                    let _s = for_reads(socket, &auth, "custody request show")?;
                    let r = call(socket, Op::RequestShow { request })?;
                    print_reply(json, &r, |r| match r {
                        Reply::Request(rec) => out!("{}", detail(rec)),
                        other => outln!("{other:?}"),
                    });
                    return Ok(());
                }
                RequestCommand::Cancel { request, auth } => match &auth.user {
                    Some(user) => {
                        let me = AuthArgs {
                            user: user.clone(),
                            passphrase_fd: auth.passphrase_fd,
                            totp_fd: auth.totp_fd,
                            no_totp: auth.no_totp,
                        };
                        me.call(
                            socket,
                            Op::Cancel {
                                by: Some(me.read()?),
                                request,
                            },
                        )?
                    }
                    None => {
                        let _s = for_reads(socket, &auth, "custody request cancel")?;
                        call(socket, Op::Cancel { by: None, request })?
                    }
                },
            };
            show(json, &r);
            Ok(())
        })(),
    )
}

/// Runs `custody approve`.
pub fn approve(json: bool, socket: &Path, a: ApproveArgs) -> ExitCode {
    if a.sign {
        return finish(json, approve_signed(json, socket, a));
    }
    if a.card.reader.is_some() || a.card.serial.is_some() {
        return finish(
            json,
            Err(Failure::new(
                exit::USAGE,
                "--reader and --serial name the YubiKey that signs: they go with --sign",
            )),
        );
    }
    finish(
        json,
        (|| {
            // The approval carries the digest of exactly what the officer was shown: if the
            // daemon's request differs (another request, or the same one changed on the way),
            // it refuses. With a `custody login` session the request is shown before any
            // secret is asked for, and the approval then takes fresh proof. Without one, the
            // officer's proof opens a session for this command alone, which shows the request
            // and, within the minute, serves the approval itself: one second-factor code.
            let kept = super::session::use_kept(socket)?;
            let ephemeral = if kept {
                None
            } else {
                Some(super::session::for_reads(
                    socket,
                    &ReadAuthArgs {
                        user: Some(a.auth.user.clone()),
                        passphrase_fd: a.auth.passphrase_fd,
                        totp_fd: a.auth.totp_fd,
                        no_totp: a.auth.no_totp,
                    },
                    "custody approve",
                )?)
            };
            let shown = match call(
                socket,
                Op::RequestShow {
                    request: a.request.clone(),
                },
            )? {
                Reply::Request(rec) => rec,
                other => {
                    return Err(Failure::new(
                        exit::IO,
                        format!("custodyd answered request show with {other:?}"),
                    ))
                }
            };
            eprint!("You are approving:\n{}", detail(&shown));
            let by = match ephemeral {
                Some(_) => None,
                None => Some(a.auth.read()?),
            };
            let r = a.auth.call(
                socket,
                Op::Approve {
                    by,
                    request: a.request,
                    seen: shown.approval_digest(),
                    signed: None,
                },
            )?;
            drop(ephemeral);
            show(json, &r);
            Ok(())
        })(),
    )
}

fn request_show(socket: &Path, request: &str) -> Result<RequestReply, Failure> {
    match call(
        socket,
        Op::RequestShow {
            request: request.to_owned(),
        },
    )? {
        Reply::Request(rec) => Ok(rec),
        other => Err(Failure::new(
            exit::IO,
            format!("custodyd answered request show with {other:?}"),
        )),
    }
}

/// `custody approve --sign`: shows the request, then has the officer's YubiKey sign the
/// message of what was shown ([`sign_approval`]) and sends the signed approval.
fn approve_signed(json: bool, socket: &Path, a: ApproveArgs) -> Result<(), Failure> {
    use super::officer_card::read_pin;
    use crate::daemon::protocol::Auth;

    let kept = super::session::use_kept(socket)?;
    // One passphrase serves the login (without a kept session), the challenge and the approval.
    let mut passphrase = None;
    let session = if kept {
        None
    } else {
        let by = a.auth.read()?;
        passphrase.clone_from(&by.passphrase);
        Some(super::session::login_with(socket, &a.auth, by)?)
    };
    let shown = request_show(socket, &a.request)?;
    eprint!("You are approving:\n{}", detail(&shown));
    let passphrase = match passphrase {
        Some(p) => p,
        None => a.auth.read()?.passphrase.unwrap_or_default(),
    };
    let signed = sign_approval(
        socket,
        &a.auth.user,
        &passphrase,
        &shown,
        SigningCard::Named(&a.card),
        &mut |card| read_pin(a.pin_fd, card.serial),
    )?;
    let r = call(
        socket,
        Op::Approve {
            by: Some(Auth::new(a.auth.user.clone(), passphrase, None)),
            request: a.request,
            seen: shown.approval_digest(),
            signed: Some(signed),
        },
    )?;
    drop(session);
    show(json, &r);
    Ok(())
}

/// Which YubiKey signs an approval.
pub(crate) enum SigningCard<'a> {
    /// The one `--reader` or `--serial` names, or the only one present (`custody approve
    /// --sign`): it must hold the officer's registered key.
    Named(&'a super::officer_card::CardArgs),
    /// Whichever YubiKey present holds the officer's registered key (the sign-in ceremony,
    /// where the officers' keys and the custody key are plugged in side by side); `by_totp`
    /// says how to approve by TOTP instead, when none does.
    Holding {
        /// What to do instead (for the error).
        by_totp: &'a str,
    },
}

/// Has `officer`'s own YubiKey sign an approval of `shown`, the request as it was shown to
/// them: a single-use challenge from custodyd (`passphrase` only, no second-factor code), the
/// card holding the officer's registered key, its PIV PIN from `pin`, a touch. The signed
/// message binds what was shown, the officer, the key and the challenge
/// ([`signed_approval_message`](crate::custody::records::signed_approval_message)). Returns
/// the [`SignedApproval`](crate::daemon::protocol::SignedApproval) to send with `Op::Approve`.
/// A wrong PIN is a failure saying the tries left ([`super::officer_card::pin_tries_left`]).
pub(crate) fn sign_approval(
    socket: &Path,
    officer: &str,
    passphrase: &crate::daemon::protocol::Secret,
    shown: &RequestReply,
    card: SigningCard<'_>,
    pin: &mut dyn FnMut(
        &super::officer_card::OfficerCard,
    ) -> Result<crate::token::piv::Pin, Failure>,
) -> Result<crate::daemon::protocol::SignedApproval, Failure> {
    use super::officer_card::{key_id, open_holding};
    use crate::custody::records::{signed_approval_digest, signed_approval_message};
    use crate::daemon::protocol::{Auth, SignedApproval};

    let (key, nonce) = match call(
        socket,
        Op::ApprovalChallenge {
            by: Auth::new(officer, passphrase.clone(), None),
            request: shown.id.to_string(),
        },
    )? {
        Reply::Challenge { key_id, nonce, .. } => (key_id, nonce),
        other => {
            return Err(Failure::new(
                exit::IO,
                format!("custodyd answered approval_challenge with {other:?}"),
            ))
        }
    };
    let (mut card, named) = match card {
        SigningCard::Named(args) => {
            let mut card = args.open()?;
            let on_card = key_id(&card.approval_key()?.spki);
            if on_card != key {
                return Err(Failure::refused(
                    exit::FAILED,
                    crate::daemon::protocol::RefusalCode::SigningKeyNotRegistered,
                    format!(
                        "the YubiKey {} in {} holds approval key {on_card}, and {officer} has \
                         key {key} registered: use the YubiKey you registered, or have two \
                         officers replace the key (custody user key remove, then custody user \
                         key register)",
                        card.serial, card.reader
                    ),
                ));
            }
            (card, true)
        }
        SigningCard::Holding { by_totp } => (open_holding(officer, &key, by_totp)?, false),
    };
    let pin = pin(&card)?;
    let message = signed_approval_message(
        [
            shown.id.as_str(),
            shown.account.as_str(),
            shown.task.as_str(),
            shown.ticket.as_str(),
            shown.reason.as_str(),
            shown.requester.as_str(),
        ],
        officer,
        &key,
        &nonce,
    );
    let mut digest = [0u8; 32];
    digest.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, &message).as_ref());
    let touch = if named {
        format!("Touch your YubiKey {}", card.serial)
    } else {
        format!(
            "{officer}: touch your YubiKey {} (in {})",
            card.serial, card.reader
        )
    };
    let signature = card.sign(&pin, &digest, || {
        eprintln!(
            "{touch} now to sign the approval (digest {}).",
            signed_approval_digest(&message)
        );
    })?;
    drop(pin);
    Ok(SignedApproval {
        key_id: key,
        nonce,
        signature: data_encoding::BASE64.encode(&signature),
    })
}

/// Runs `custody deny`.
pub fn deny(json: bool, socket: &Path, a: DenyArgs) -> ExitCode {
    finish(
        json,
        (|| {
            let r = a.auth.call(
                socket,
                Op::Deny {
                    by: a.auth.read()?,
                    request: a.request,
                    note: a.note,
                },
            )?;
            show(json, &r);
            Ok(())
        })(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request an older ledger holds, whose reason forges lines and reverses text.
    fn forged() -> RequestReply {
        serde_json::from_value(serde_json::json!({
            "id": "req-00000000000000a1",
            "account": "123456789012",
            "task": "change-root-password",
            "ticket": "SEC-42",
            "reason": "routine\nrequester alice\napproved  by bob at 1 ms since the epoch\u{202e}\u{200b}",
            "requester": "mallory",
            "created_ms": 1,
            "expires_ms": 2,
            "approvals": [],
            "status": "pending",
            "step": null,
            "device": null,
            "closed_by": null,
        }))
        .expect("a request an older ledger holds")
    }

    #[test]
    fn a_forged_reason_cannot_add_lines_to_what_officers_read() {
        let text = detail(&forged());
        assert_eq!(
            text.lines().filter(|l| l.starts_with("requester")).count(),
            1
        );
        assert!(text.contains("requester mallory\n"), "{text}");
        assert!(!text.lines().any(|l| l.starts_with("approved")), "{text}");
        assert!(!text.contains(['\u{202e}', '\u{200b}']), "{text:?}");
        assert!(
            text.contains(
                "reason    routine\\nrequester alice\\napproved  by bob at 1 ms since the epoch\\u{202e}\\u{200b}\n"
            ),
            "{text}"
        );
        assert_eq!(line(&forged()).lines().count(), 1);
    }
}
