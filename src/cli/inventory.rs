//! `custody inventory`: an officer's inventory audit of every device in custody, through
//! custodyd.

use std::path::Path;
use std::process::ExitCode;

use clap::Args;

use super::client::{print_reply, AuthArgs};
use super::exit;
use super::ledger::{finish, Failure};
use crate::daemon::protocol::{Op, PresentedDevice, Reply};

/// Arguments of `custody inventory`.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  custody inventory --present 10000001=BAG-0001 --present 10000002=BAG-0002 --as alice\n\nExit status 1 when a device is missing, does not reconcile, has the wrong seal, or is unknown."
)]
pub struct InventoryArgs {
    /// A device presented now: SERIAL, or SERIAL=SEAL for one in a sealed bag (repeat).
    #[arg(long = "present", value_name = "SERIAL[=SEAL]")]
    pub present: Vec<String>,
    /// The officer conducting the audit.
    #[command(flatten)]
    pub auth: AuthArgs,
}

fn presented(arg: &str) -> Result<PresentedDevice, Failure> {
    let (serial, seal) = match arg.split_once('=') {
        Some((s, seal)) => (s, Some(seal.to_owned())),
        None => (arg, None),
    };
    let serial = serial.parse::<u32>().map_err(|e| {
        Failure::new(
            exit::USAGE,
            format!("--present {arg:?}: the serial is not a number: {e}"),
        )
    })?;
    Ok(PresentedDevice { serial, seal })
}

/// Runs `custody inventory`.
pub fn run(json: bool, socket: &Path, args: InventoryArgs) -> ExitCode {
    finish(
        json,
        (|| {
            let presented = args
                .present
                .iter()
                .map(|p| presented(p))
                .collect::<Result<Vec<_>, _>>()?;
            let r = args.auth.call(
                socket,
                Op::Inventory {
                    by: args.auth.read()?,
                    presented,
                },
            )?;
            let mut clean = true;
            print_reply(json, &r, |r| match r {
                Reply::Audit(a) => {
                    outln!(
                        "Inventory: {} device(s) in order, {} incident(s) opened, {} unknown serial(s)",
                        a.ok.len(),
                        a.incidents.len(),
                        a.unknown.len()
                    );
                    a.ok.iter().for_each(|s| outln!("  ok       {s}"));
                    a.incidents.iter().for_each(|i| outln!("  incident {i}"));
                    a.unknown.iter().for_each(|s| outln!("  unknown  {s}"));
                    a.unlocked.iter().for_each(|s| {
                        outln!(
                            "  unlocked {s}: no OATH access key; lock it: custody device lock {s} --by OFFICER --by OFFICER"
                        )
                    });
                }
                other => outln!("{other:?}"),
            });
            if let Reply::Audit(a) = &r {
                clean = a.incidents.is_empty() && a.unknown.is_empty();
            }
            if clean {
                Ok(())
            } else {
                Err(Failure::new(exit::FAILED, ""))
            }
        })(),
    )
}
