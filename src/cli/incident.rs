//! `custody incident ...`: incidents (broken seals, lost devices, failed checks), through
//! custodyd.

use std::path::Path;
use std::process::ExitCode;

use clap::Subcommand;

use super::client::{call, print_reply, PairArgs};
use super::ledger::finish;
use super::session::{for_reads, ReadAuthArgs};
use crate::custody::escape_unsafe;
use crate::daemon::protocol::{IncidentReply, Op, Reply};

/// `custody incident` subcommands.
#[derive(Debug, Subcommand)]
pub enum IncidentCommand {
    /// List incidents (officers and auditors; needs `custody login` or --as).
    #[command(
        after_help = "Example:\n  custody login --as alice\n  custody incident list\n  custody --json incident list --as erin"
    )]
    List {
        /// How you authenticate: the session of `custody login`, or --as for this command.
        #[command(flatten)]
        auth: ReadAuthArgs,
    },
    /// Acknowledge an incident (two officers).
    #[command(
        after_help = "Example:\n  custody incident ack inc-0123456789abcdef --note \"bag replaced, key verified\" --by alice --by bob"
    )]
    Ack {
        /// The incident id.
        #[arg(value_parser = super::client::parse_incident_id)]
        incident: String,
        /// What was found or done (at most 500 characters, plain text on one line).
        #[arg(long)]
        note: String,
        /// The two officers.
        #[command(flatten)]
        pair: PairArgs,
    },
}

/// One incident as a table row: id, open or closed, kind, device, when it was opened,
/// who acknowledged it, and what happened (last, as it may contain spaces).
fn line(i: &IncidentReply) -> String {
    let acked = if i.acknowledged_by.is_empty() {
        "-".to_owned()
    } else {
        i.acknowledged_by
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    format!(
        "{}  {:<6} {:<16} device {:<10} opened {} ack {:<12} {}",
        i.id,
        if i.open { "open" } else { "closed" },
        i.kind.as_str(),
        i.device.map_or("-".to_owned(), |d| d.to_string()),
        super::time::show(i.opened_ms),
        acked,
        escape_unsafe(&i.detail)
    )
}

/// Runs `custody incident ...`.
pub fn run(json: bool, socket: &Path, cmd: IncidentCommand) -> ExitCode {
    finish(
        json,
        (|| {
            let r = match cmd {
                IncidentCommand::List { auth } => {
                    let _s = for_reads(socket, &auth, "custody incident list")?;
                    call(socket, Op::Incidents)?
                }
                IncidentCommand::Ack {
                    incident,
                    note,
                    pair,
                } => call(
                    socket,
                    pair.signed(
                        socket,
                        Op::IncidentAck {
                            by: pair.read()?,
                            incident,
                            note,
                        },
                    )?,
                )?,
            };
            print_reply(json, &r, |r| match r {
                Reply::Incidents(list) => {
                    for i in list {
                        outln!("{}", line(i));
                    }
                }
                Reply::Incident(i) => outln!("{}", line(i)),
                other => outln!("{other:?}"),
            });
            Ok(())
        })(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::custody::{IncidentKind, UserName};

    #[test]
    fn an_incident_is_one_readable_row_not_json() {
        let mut i: IncidentReply = serde_json::from_value(serde_json::json!({
            "id": "inc-00000000000000a1",
            "kind": "seal_mismatch",
            "device": 10000001,
            "detail": "seal BAG-0009 presented, BAG-0001 recorded (at safe A)",
            "opened_ms": 1795000000000_i64,
            "open": true,
            "acknowledged_by": [],
        }))
        .expect("an incident");
        let row = line(&i);
        assert!(!row.contains('{'), "{row}");
        assert!(
            row.starts_with("inc-00000000000000a1  open   seal_mismatch    device 10000001 "),
            "{row}"
        );
        assert!(row.contains(" ack -  "), "{row}");
        assert!(
            row.ends_with("seal BAG-0009 presented, BAG-0001 recorded (at safe A)"),
            "{row}"
        );
        i.open = false;
        i.device = None;
        i.kind = IncidentKind::DeviceLost;
        i.acknowledged_by = ["alice", "bob"]
            .iter()
            .map(|n| UserName::parse(n).expect("name"))
            .collect();
        let row = line(&i);
        assert!(row.contains(" closed device_lost      device -  "), "{row}");
        assert!(row.contains(" ack alice,bob "), "{row}");
    }

    #[test]
    fn a_stored_detail_with_unsafe_characters_is_shown_escaped() {
        let i: IncidentReply = serde_json::from_value(serde_json::json!({
            "id": "inc-00000000000000a1",
            "kind": "other",
            "device": null,
            "detail": "resolved\ninc-00000000000000a2  closed \u{202e}\u{1b}[2K",
            "opened_ms": 1795000000000_i64,
            "open": true,
            "acknowledged_by": [],
        }))
        .expect("an incident an older ledger holds");
        let row = line(&i);
        assert!(!row.contains(['\n', '\u{202e}', '\u{1b}']), "{row:?}");
        assert!(
            row.ends_with("resolved\\ninc-00000000000000a2  closed \\u{202e}\\u{1b}[2K"),
            "{row}"
        );
    }
}
