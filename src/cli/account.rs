//! `custody account ...`: cloud accounts whose root MFA is in custody, through custodyd.

use std::path::Path;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::client::{call, print_reply, AuthArgs};
use super::ledger::finish;
use crate::daemon::protocol::{Op, Reply};

/// `custody account` subcommands.
#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Register an account (one officer).
    #[command(
        after_help = "Example:\n  custody account add --provider aws --account 123456789012 --alias prod \\\n    --root-email root@example.com --credential AWS:root@example.com --as alice"
    )]
    Add(AddArgs),
    /// List accounts.
    #[command(after_help = "Example:\n  custody --json account list")]
    List,
}

/// Arguments of `custody account add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// Provider: aws, aws-us-gov, aws-cn.
    #[arg(long)]
    pub provider: String,
    /// The provider's account id.
    #[arg(long)]
    pub account: String,
    /// A friendly alias.
    #[arg(long)]
    pub alias: String,
    /// The root user's e-mail.
    #[arg(long)]
    pub root_email: String,
    /// The OATH credential name on its devices (`issuer:account`).
    #[arg(long)]
    pub credential: String,
    /// The officer registering it.
    #[command(flatten)]
    pub auth: AuthArgs,
}

/// Runs `custody account ...`.
pub fn run(json: bool, socket: &Path, cmd: AccountCommand) -> ExitCode {
    finish(
        json,
        (|| {
            let r = match cmd {
                AccountCommand::Add(a) => {
                    let by = a.auth.read()?;
                    call(
                        socket,
                        Op::AccountAdd {
                            by,
                            provider: a.provider,
                            account: a.account,
                            alias: a.alias,
                            root_email: a.root_email,
                            credential: a.credential,
                        },
                    )?
                }
                AccountCommand::List => call(socket, Op::Accounts)?,
            };
            print_reply(json, &r, |r| match r {
                Reply::Account(a) => println!("Registered account {} ({})", a.account, a.alias),
                Reply::Accounts(list) => {
                    for a in list {
                        println!(
                            "{:<14} {:<20} {:<32} {:?}",
                            a.account.to_string(),
                            a.alias.to_string(),
                            a.root_email.to_string(),
                            a.status
                        );
                    }
                }
                other => println!("{other:?}"),
            });
            Ok(())
        })(),
    )
}
