//! `custody incident ...`: incidents (broken seals, lost devices, failed checks), through
//! custodyd.

use std::path::Path;
use std::process::ExitCode;

use clap::Subcommand;

use super::client::{call, print_reply, PairArgs};
use super::ledger::finish;
use crate::daemon::protocol::{Op, Reply};

/// `custody incident` subcommands.
#[derive(Debug, Subcommand)]
pub enum IncidentCommand {
    /// List incidents.
    #[command(after_help = "Example:\n  custody --json incident list")]
    List,
    /// Acknowledge an incident (two officers).
    #[command(
        after_help = "Example:\n  custody incident ack inc-0123456789abcdef --note \"bag replaced, key verified\" --by alice --by bob"
    )]
    Ack {
        /// The incident id.
        incident: String,
        /// What was found or done.
        #[arg(long)]
        note: String,
        /// The two officers.
        #[command(flatten)]
        pair: PairArgs,
    },
}

/// Runs `custody incident ...`.
pub fn run(json: bool, socket: &Path, cmd: IncidentCommand) -> ExitCode {
    finish(
        json,
        (|| {
            let r = match cmd {
                IncidentCommand::List => call(socket, Op::Incidents)?,
                IncidentCommand::Ack {
                    incident,
                    note,
                    pair,
                } => call(
                    socket,
                    Op::IncidentAck {
                        by: pair.read()?,
                        incident,
                        note,
                    },
                )?,
            };
            print_reply(json, &r, |r| match r {
                Reply::Incidents(list) => {
                    for i in list {
                        println!("{}", serde_json::to_string(i).unwrap_or_default());
                    }
                }
                Reply::Incident(i) => println!("{}", serde_json::to_string(i).unwrap_or_default()),
                other => println!("{other:?}"),
            });
            Ok(())
        })(),
    )
}
