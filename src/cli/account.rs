//! `custody account ...`: cloud accounts whose root MFA is in custody, through custodyd.

use std::path::Path;
use std::process::ExitCode;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Subcommand};

use super::client::{call, print_reply, AuthArgs, PairArgs, SecretLines};
use super::ledger::finish;
use super::session::{for_reads, ReadAuthArgs};
use crate::custody::{escape_unsafe, AccountStatus};
use crate::daemon::protocol::{named, AccountReply, Op, Reply};

/// `custody account` subcommands.
#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Register an account (one officer).
    #[command(
        after_help = "Example:\n  custody account add --provider aws --account 123456789012 --alias prod \\\n    --root-email root@example.com --credential AWS:root@example.com --as alice"
    )]
    Add(AddArgs),
    /// List accounts (officers, auditors, operators; needs `custody login` or --as).
    #[command(after_help = "Example:\n  custody login --as dave\n  custody --json account list")]
    List {
        /// How you authenticate: the session of `custody login`, or --as for this command.
        #[command(flatten)]
        auth: ReadAuthArgs,
    },
    /// Show one account: provider, alias, root e-mail, credential, status.
    #[command(
        after_help = "Example:\n  custody account show 123456789012\n  custody --json account show 123456789012"
    )]
    Show {
        /// The account id.
        account: String,
        /// How you authenticate: the session of `custody login`, or --as for this command.
        #[command(flatten)]
        auth: ReadAuthArgs,
    },
    /// Change an account's status (two officers): active, root_credentials_removed or closed.
    /// Closing an account retires its devices and is final.
    #[command(
        after_help = "Example:\n  custody account set-status 123456789012 root_credentials_removed --by alice --by bob"
    )]
    SetStatus {
        /// The account id.
        account: String,
        /// The new status: active, root_credentials_removed or closed.
        #[arg(value_parser = PossibleValuesParser::new(["active", "root_credentials_removed", "closed"])
            .try_map(|s| named::<AccountStatus>(&s).ok_or("not an account status")))]
        status: AccountStatus,
        /// The two officers.
        #[command(flatten)]
        pair: PairArgs,
    },
    /// Store the root user's console password, sealed in the ledger (two officers): typed at a
    /// hidden prompt, read from --password-fd, or generated with --generate (meeting AWS's
    /// root password rules) and shown once. A code release for a task that needs it hands it
    /// to the requester beside the code, once; the account is then due a new password.
    #[command(
        after_help = "Example:\n  custody account set-password 123456789012 --generate --by alice --by bob\n  (shows the generated password once: set it at the provider during the sign-in)"
    )]
    SetPassword {
        /// The account id.
        account: String,
        /// Generate a password (32 characters: upper- and lower-case letters, digits, symbols).
        #[arg(long, conflicts_with = "password_fd")]
        generate: bool,
        /// Read the password from this descriptor (one line), not a prompt.
        #[arg(long, value_name = "N")]
        password_fd: Option<u32>,
        /// The two officers.
        #[command(flatten)]
        pair: PairArgs,
    },
}

/// Arguments of `custody account add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// Provider: aws, aws-us-gov, aws-cn.
    #[arg(long, value_parser = super::values::offered_text(super::values::providers), hide_possible_values = true)]
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

fn detail(a: &AccountReply) {
    outln!("account      {}", a.account);
    outln!("provider     {}", a.provider);
    outln!("alias        {}", escape_unsafe(a.alias.as_str()));
    outln!("root e-mail  {}", a.root_email);
    outln!("credential   {}", escape_unsafe(&a.credential));
    outln!("status       {}", a.status.as_str());
    outln!(
        "password     {}",
        match (a.root_password, a.password_rotation_due) {
            (false, _) => "not held",
            (true, false) => "held sealed",
            (true, true) => "held sealed; rotation due (a release handed it out)",
        }
    );
    outln!(
        "last release {}",
        a.last_release_step
            .map_or("-".to_owned(), |s| format!("TOTP step {s}"))
    );
}

/// Runs `custody account ...`.
pub fn run(json: bool, socket: &Path, cmd: AccountCommand) -> ExitCode {
    finish(
        json,
        (|| {
            let mut verb = "Registered";
            let r = match cmd {
                AccountCommand::Add(a) => {
                    let by = a.auth.read()?;
                    a.auth.call(
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
                AccountCommand::List { auth } => {
                    let _s = for_reads(socket, &auth, "custody account list")?;
                    call(socket, Op::Accounts)?
                }
                AccountCommand::Show { account, auth } => {
                    let _s = for_reads(socket, &auth, "custody account show")?;
                    verb = "";
                    call(socket, Op::AccountShow { account })?
                }
                AccountCommand::SetPassword {
                    account,
                    generate,
                    password_fd,
                    pair,
                } => {
                    let by = pair.read()?;
                    let password = match generate {
                        true => None,
                        false => Some(
                            SecretLines::new(password_fd)?
                                .next(&format!("Root password of account {account}: "))?,
                        ),
                    };
                    call(
                        socket,
                        pair.signed(
                            socket,
                            Op::AccountSetPassword {
                                by,
                                account,
                                password,
                                generate,
                            },
                        )?,
                    )?
                }
                AccountCommand::SetStatus {
                    account,
                    status,
                    pair,
                } => {
                    verb = "Changed";
                    call(
                        socket,
                        pair.signed(
                            socket,
                            Op::AccountSetStatus {
                                by: pair.read()?,
                                account,
                                status,
                            },
                        )?,
                    )?
                }
            };
            print_reply(json, &r, |r| match r {
                Reply::PasswordSet { account, password } => {
                    outln!(
                        "Root password of account {} ({}) stored sealed.",
                        account.account,
                        escape_unsafe(account.alias.as_str())
                    );
                    if let Some(p) = password {
                        outln!("Generated password (shown once): {}", p.expose());
                    }
                }
                Reply::Account(a) if verb.is_empty() => detail(a),
                Reply::Account(a) => outln!(
                    "{verb} account {} ({}): {}",
                    a.account,
                    escape_unsafe(a.alias.as_str()),
                    a.status.as_str()
                ),
                Reply::Accounts(list) => {
                    for a in list {
                        outln!(
                            "{:<14} {:<20} {:<32} {}",
                            a.account.to_string(),
                            escape_unsafe(a.alias.as_str()),
                            a.root_email.to_string(),
                            a.status.as_str()
                        );
                    }
                }
                other => outln!("{other:?}"),
            });
            Ok(())
        })(),
    )
}
