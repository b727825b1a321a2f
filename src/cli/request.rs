//! `custody request ...`, `custody approve`, `custody deny`: dual-control code requests,
//! through custodyd.

use std::path::Path;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::client::{call, print_reply, AuthArgs};
use super::ledger::finish;
use super::session::{for_reads, ReadAuthArgs};
use crate::custody::RequestRecord;
use crate::daemon::protocol::{Op, Reply};

/// `custody request` subcommands.
#[derive(Debug, Subcommand)]
pub enum RequestCommand {
    /// Ask for one code for a root task on an account (operators and officers).
    #[command(
        after_help = "Example:\n  custody request code --account 123456789012 --task change-root-password \\\n    --ticket SEC-42 --reason \"rotate the root password after the audit\" --as dave --no-totp"
    )]
    Code(CodeArgs),
    /// List requests: officers and auditors see every request, operators their own (needs
    /// `custody login` or --as).
    #[command(
        after_help = "Example:\n  custody login --as dave --no-totp\n  custody --json request list"
    )]
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
        request: String,
        /// How you authenticate: the session of `custody login`, or --as for this command.
        #[command(flatten)]
        auth: ReadAuthArgs,
    },
    /// Cancel your own request: with the session of `custody login`, or --as to authenticate
    /// for this command.
    #[command(
        after_help = "Example:\n  custody request cancel REQ-ID\n  custody request cancel REQ-ID --as dave --no-totp"
    )]
    Cancel {
        /// The request id.
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
    #[arg(long)]
    pub task: String,
    /// The ticket reference (e.g. SEC-42).
    #[arg(long)]
    pub ticket: String,
    /// Why the root user is needed.
    #[arg(long)]
    pub reason: String,
    /// The requester.
    #[command(flatten)]
    pub auth: AuthArgs,
}

/// Arguments of `custody approve`.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  custody approve REQ-ID --as alice      # prompts for passphrase and second-factor code"
)]
pub struct ApproveArgs {
    /// The request id.
    pub request: String,
    /// The approving officer.
    #[command(flatten)]
    pub auth: AuthArgs,
}

/// Arguments of `custody deny`.
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  custody deny REQ-ID --note \"no change window\" --as bob")]
pub struct DenyArgs {
    /// The request id.
    pub request: String,
    /// Why.
    #[arg(long)]
    pub note: String,
    /// The denying officer.
    #[command(flatten)]
    pub auth: AuthArgs,
}

fn line(r: &RequestRecord) {
    println!(
        "{}  {:<10} account {} task {} ticket {} by {} approvals {}",
        r.id,
        r.status.as_str(),
        r.account,
        r.task,
        r.ticket.as_str(),
        r.requester,
        r.approvals.len()
    );
}

fn detail(r: &RequestRecord) {
    println!("request   {}", r.id);
    println!("status    {}", r.status.as_str());
    println!("account   {}", r.account);
    println!("task      {}", r.task);
    println!("ticket    {}", r.ticket.as_str());
    println!("reason    {}", r.reason.as_str());
    println!("requester {}", r.requester);
    println!("created   {} ms since the epoch", r.created_ms);
    println!("expires   {} ms since the epoch", r.expires_ms);
    if r.approvals.is_empty() {
        println!("approvals none");
    }
    for a in &r.approvals {
        println!(
            "approved  by {} at {} ms since the epoch",
            a.officer, a.at_ms
        );
    }
    if let Some(d) = r.device {
        println!("device    {d}");
    }
    if let Some(s) = r.step {
        println!("step      {s}");
    }
    if let Some(by) = &r.closed_by {
        println!("closed by {by}");
    }
}

fn show(json: bool, r: &Reply) {
    print_reply(json, r, |r| match r {
        Reply::Request(rec) => line(rec),
        Reply::Requests(list) => list.iter().for_each(line),
        other => println!("{other:?}"),
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
                    call(
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
                        Reply::Request(rec) => detail(rec),
                        other => println!("{other:?}"),
                    });
                    return Ok(());
                }
                RequestCommand::Cancel { request, auth } => match &auth.user {
                    Some(user) => call(
                        socket,
                        Op::Cancel {
                            by: Some(
                                AuthArgs {
                                    user: user.clone(),
                                    passphrase_fd: auth.passphrase_fd,
                                    totp_fd: auth.totp_fd,
                                    no_totp: auth.no_totp,
                                }
                                .read()?,
                            ),
                            request,
                        },
                    )?,
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
    finish(
        json,
        (|| {
            let r = call(
                socket,
                Op::Approve {
                    by: a.auth.read()?,
                    request: a.request,
                },
            )?;
            show(json, &r);
            Ok(())
        })(),
    )
}

/// Runs `custody deny`.
pub fn deny(json: bool, socket: &Path, a: DenyArgs) -> ExitCode {
    finish(
        json,
        (|| {
            let r = call(
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
