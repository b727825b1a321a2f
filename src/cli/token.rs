//! `custody token ...`: readers and the YubiKeys in them.

use std::io::Write;
use std::process::ExitCode;

use clap::Subcommand;
use serde::Serialize;

use super::exit;
use super::ledger::Failure;
use crate::daemon::protocol::RefusalCode;
use crate::token::identity::{self, DeviceIdentity};
use crate::token::pcsc::PcscContext;
use crate::token::transport::TransportError;
use crate::token::TokenError;

/// `custody token` subcommands.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// List the readers and the YubiKeys in them: serial, firmware, OATH device id, whether the
    /// OATH applet is password-protected, and the credentials (type, algorithm, digits, touch).
    /// Never shows a code or a secret.
    #[command(
        after_help = "Example:\n  sudo -u custody custody token scan\n  custody --json token scan"
    )]
    Scan,
}

/// One reader in the scan output.
#[derive(Debug, Serialize)]
pub struct ReaderReport {
    /// The reader's name.
    pub reader: String,
    /// Whether a card is in it.
    pub card: bool,
    /// The device, when a card answered as a YubiKey.
    pub device: Option<DeviceIdentity>,
    /// Why the card could not be read, if it could not (`problem`: `error` is the name of the
    /// `--json` error object only).
    #[serde(rename = "problem")]
    pub error: Option<String>,
}

/// The whole scan output (`--json`; stable).
#[derive(Debug, Serialize)]
pub struct ScanReport {
    /// Always true: the scan ran (`--json` answers all start with `ok`).
    pub ok: bool,
    /// Every reader pcscd knows, in its order.
    pub readers: Vec<ReaderReport>,
}

/// Runs a `custody token` subcommand.
pub fn run(cmd: TokenCommand, json: bool) -> ExitCode {
    match cmd {
        TokenCommand::Scan => scan(json),
    }
}

fn emit(text: &str) {
    // A closed pipe (`custody token scan | head`) is not an error.
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// A scan that could not run: the common `--json` error with status 3 (code `token`), its
/// reason `device_unavailable` when no reader is there, `token_error` when pcscd cannot be used.
fn fail(json: bool, reason: Option<RefusalCode>, message: &str) -> ExitCode {
    let mut f = Failure::new(exit::TOKEN, message);
    f.reason = reason;
    if json {
        // A person watching a script still reads why on standard error.
        eprintln!("custody: {}", f.human());
    }
    super::ledger::finish(json, Err(f))
}

/// Reads one reader: `Ok(None)` when it holds no card.
fn scan_reader(ctx: &PcscContext, reader: &str) -> Result<Option<DeviceIdentity>, TokenError> {
    // The `yubikey` crate opens its own connection; do it before ours.
    let yk = identity::yubikey_serial_and_version(reader);
    let mut card = match ctx.connect(reader) {
        Ok(c) => c,
        Err(TransportError::NoCard { .. }) => return Ok(None),
        Err(source) => {
            return Err(TokenError::Transport {
                reader: reader.to_owned(),
                ins: 0xA4,
                source,
            })
        }
    };
    let id = card
        .with_transaction(|tx| identity::identify(tx, yk))
        .map_err(|source| TokenError::Transport {
            reader: reader.to_owned(),
            ins: 0xA4,
            source,
        })??;
    let _ = card.disconnect(false);
    Ok(Some(id))
}

fn scan(json: bool) -> ExitCode {
    let ctx = match PcscContext::establish() {
        Ok(c) => c,
        Err(e) => return fail(json, Some(RefusalCode::TokenError), &e.to_string()),
    };
    let readers = match ctx.readers() {
        Ok(r) => r,
        Err(e) => return fail(json, Some(RefusalCode::TokenError), &e.to_string()),
    };
    if readers.is_empty() {
        return fail(
            json,
            Some(RefusalCode::DeviceUnavailable),
            "no smart-card reader found (is a YubiKey plugged in?)",
        );
    }
    let mut report = ScanReport {
        ok: true,
        readers: Vec::new(),
    };
    let mut any_error = false;
    for reader in readers {
        let r = match scan_reader(&ctx, &reader) {
            Ok(None) => ReaderReport {
                reader,
                card: false,
                device: None,
                error: None,
            },
            Ok(Some(id)) => ReaderReport {
                reader,
                card: true,
                device: Some(id),
                error: None,
            },
            Err(e) => {
                any_error = true;
                ReaderReport {
                    reader,
                    card: true,
                    device: None,
                    error: Some(e.to_string()),
                }
            }
        };
        report.readers.push(r);
    }
    if json {
        match serde_json::to_string_pretty(&report) {
            Ok(s) => emit(&format!("{s}\n")),
            Err(e) => return fail(json, None, &e.to_string()),
        }
    } else {
        emit(&human(&report));
    }
    if any_error {
        ExitCode::from(exit::TOKEN)
    } else {
        ExitCode::from(exit::OK)
    }
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(|| "-".to_owned(), T::to_string)
}

/// The human-readable table.
pub fn human(report: &ScanReport) -> String {
    let mut s = String::new();
    for r in &report.readers {
        s.push_str(&format!("reader {}\n", r.reader));
        match (&r.device, &r.error) {
            (_, Some(e)) => s.push_str(&format!("  error: {e}\n")),
            (None, None) => s.push_str("  (no card)\n"),
            (Some(d), None) => {
                s.push_str(&format!(
                    "  serial {}  firmware {}  form factor {}\n  OATH device id {}  password-protected {}\n",
                    opt(&d.serial),
                    opt(&d.firmware),
                    d.form_factor,
                    opt(&d.oath_device_id),
                    if d.oath_locked { "yes" } else { "no" },
                ));
                if d.oath_locked {
                    s.push_str("  credentials: not listed (the OATH applet is locked)\n");
                } else if d.credentials.is_empty() {
                    s.push_str("  credentials: none\n");
                } else {
                    s.push_str(&format!(
                        "  {:<40} {:<5} {:<7} {:<6} {}\n",
                        "CREDENTIAL", "TYPE", "ALG", "DIGITS", "TOUCH"
                    ));
                    for c in &d.credentials {
                        let kind = serde_json::to_value(c.kind).unwrap_or_default();
                        let alg = serde_json::to_value(c.algorithm).unwrap_or_default();
                        s.push_str(&format!(
                            "  {:<40} {:<5} {:<7} {:<6} {}\n",
                            c.name,
                            kind.as_str().unwrap_or("?"),
                            alg.as_str().unwrap_or("?"),
                            opt(&c.digits),
                            match c.touch {
                                Some(true) => "yes",
                                Some(false) => "no",
                                None => "-",
                            }
                        ));
                    }
                }
            }
        }
    }
    s
}
