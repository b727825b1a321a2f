//! `custody init`: the genesis ceremony. Creates the ledger directory, the keyring (one
//! passphrase-wrapped share per officer) and the genesis event, and prints the checkpoint
//! public key auditors pin.

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde_json::json;

use super::exit;
use super::ledger::{finish, parse_officer, private_umask, Failure, PassphraseSource};
use crate::ledger::{Genesis, KdfParams, Ledger, OfficerName, Projections};

/// Arguments of `custody init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The ledger directory to create (mode 0700).
    #[arg(long, value_name = "DIR")]
    pub ledger: PathBuf,
    /// An officer receiving a share (repeat; at least two).
    #[arg(long = "officer", value_name = "NAME", required = true, value_parser = parse_officer)]
    pub officers: Vec<OfficerName>,
    /// How many officers must take part to unseal (at least 2).
    #[arg(long, default_value_t = 2)]
    pub threshold: usize,
    /// Read the officers' new passphrases from this file descriptor, one per line, in the order
    /// of --officer, instead of prompting.
    #[arg(long, value_name = "N")]
    pub passphrase_fd: Option<u32>,
    /// TEST ONLY: use this PBKDF2 iteration count instead of 600,000. The keyring records that it
    /// is a test keyring, and every command that opens it warns.
    #[arg(long, value_name = "N", hide = true)]
    pub insecure_test_kdf_iterations: Option<NonZeroU32>,
}

/// Runs `custody init`.
pub fn run(json: bool, args: InitArgs) -> ExitCode {
    private_umask();
    finish(json, init(json, &args))
}

fn init(json: bool, args: &InitArgs) -> Result<(), Failure> {
    if args.officers.len() < 2 || args.threshold < 2 || args.threshold > args.officers.len() {
        return Err(Failure::new(
            exit::USAGE,
            format!(
                "threshold {} with {} officer(s): give at least two officers and a threshold from 2 to their number",
                args.threshold,
                args.officers.len()
            ),
        ));
    }
    let kdf = match args.insecure_test_kdf_iterations {
        Some(n) => {
            eprintln!("custody: warning: test-only PBKDF2 iteration count {n}; this keyring is marked insecure");
            KdfParams::insecure_for_tests(n)
        }
        None => KdfParams::production(),
    };
    let mut source = PassphraseSource::new(args.passphrase_fd)?;
    let mut officers = Vec::with_capacity(args.officers.len());
    for name in &args.officers {
        officers.push((name.clone(), source.choose(name)?));
    }
    let genesis = Genesis {
        officers: &officers,
        threshold: args.threshold,
        kdf,
    };
    let ledger = Ledger::create(&args.ledger, &genesis, Projections::ledger_only())?;
    drop(officers);
    let key = ledger.public_key();
    let names: Vec<&str> = args.officers.iter().map(OfficerName::as_str).collect();
    if json {
        outln!(
            "{}",
            json!({
                "ok": true,
                "ledger": args.ledger.display().to_string(),
                "ledger_id": ledger.ledger_id().to_hex(),
                "officers": names,
                "threshold": args.threshold,
                "kdf_iterations": kdf.iterations(),
                "public_key": key.to_hex(),
                "public_key_base64": key.to_base64(),
                "fingerprint": key.fingerprint(),
            })
        );
    } else {
        outln!(
            "Ledger {} created in {}",
            ledger.ledger_id(),
            args.ledger.display()
        );
        outln!(
            "Officers: {} (threshold {})",
            names.join(", "),
            args.threshold
        );
        outln!("Checkpoint public key (pin it for audits):");
        outln!("  hex:         {}", key.to_hex());
        outln!("  base64:      {}", key.to_base64());
        outln!("  fingerprint: {}", key.fingerprint());
    }
    Ok(())
}
