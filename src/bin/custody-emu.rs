//! `custody-emu`: a software YubiKey 5 presented to pcscd through the vpcd driver (tests and
//! demos only).
#![forbid(unsafe_code)]

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use mfa_custody::emulator::image::{DeviceImage, Firmware};
use mfa_custody::emulator::oath::{AutoTouch, DelayTouch, DenyTouch, TouchSource};
use mfa_custody::emulator::vpcd::{self, Faults};
use mfa_custody::emulator::{state, SoftKey};

/// How the emulated key answers touch requests.
#[derive(Debug, Clone, Copy)]
enum Touch {
    Auto,
    Deny,
    Delay(Duration),
    Stdin,
}

fn parse_touch(s: &str) -> Result<Touch, String> {
    match s {
        "auto" => Ok(Touch::Auto),
        "deny" => Ok(Touch::Deny),
        "stdin" => Ok(Touch::Stdin),
        _ => match s.strip_prefix("delay=") {
            Some(ms) => ms
                .parse()
                .map(|ms| Touch::Delay(Duration::from_millis(ms)))
                .map_err(|_| format!("delay=MS needs a whole number of milliseconds, got {ms:?}")),
            None => Err(format!(
                "touch must be auto, deny, delay=MS or stdin, got {s:?}"
            )),
        },
    }
}

/// Asks a person at the terminal to "touch" the key by pressing Enter.
struct StdinTouch;

impl TouchSource for StdinTouch {
    fn wait_for_touch(&mut self, credential: &str) -> bool {
        eprintln!("touch requested for {credential}: press Enter");
        let mut line = String::new();
        matches!(std::io::stdin().lock().read_line(&mut line), Ok(n) if n > 0)
    }
}

/// A software YubiKey 5 for tests and demos, presented to pcscd through the vpcd driver.
///
/// The key connects to the vpcd port of a running pcscd (see scripts/with-pcscd.sh) and serves
/// until killed, reconnecting when pcscd restarts. It answers as a YubiKey 5: the YubiKey ATR,
/// the OATH, management, PIV and OTP applets.
///
/// Example:
///   custody-emu --image hsm-fixtures/primary.toml --state /tmp/primary.state \
///       --vpcd 127.0.0.1:35963 --touch auto
#[derive(Debug, Parser)]
#[command(name = "custody-emu", version, verbatim_doc_comment)]
struct Args {
    /// Device image (TOML: serial, firmware, form_factor, [oath]); see hsm-fixtures/.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["serial", "firmware"])]
    image: Option<PathBuf>,
    /// Serial number of a blank key (instead of --image).
    #[arg(long, value_name = "N")]
    serial: Option<u32>,
    /// Firmware of a blank key (instead of --image).
    #[arg(long, value_name = "X.Y.Z", default_value = "5.4.3", value_parser = |s: &str| s.parse::<Firmware>())]
    firmware: Firmware,
    /// Keep the OATH credentials and counters and the PIV PIN, PUK, management key, keys and
    /// objects in FILE across restarts (mode 0600, written atomically). The image seeds it only
    /// when FILE does not exist.
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
    /// The vpcd port of pcscd to connect to.
    #[arg(long, value_name = "HOST:PORT")]
    vpcd: String,
    /// Touch answers: auto (at once), deny (never; 6982 after 2 s), delay=MS, or stdin (prompt on
    /// stderr, wait for Enter).
    #[arg(long, value_name = "MODE", default_value = "auto", value_parser = parse_touch)]
    touch: Touch,
    /// Fault: remove the card (close the socket) instead of answering APDU number N+1.
    #[arg(long, value_name = "N")]
    drop_after: Option<u64>,
    /// Fault: delay every answer by D milliseconds.
    #[arg(long, value_name = "D", default_value_t = 0)]
    delay_ms: u64,
    /// Fault: corrupt the answer to APDU number N+1 (cut to one byte), once.
    #[arg(long, value_name = "N")]
    corrupt_after: Option<u64>,
    /// Fault: from APDU number N+1 on, answer everything with data and 61FF ("more data"),
    /// endlessly.
    #[arg(long, value_name = "N")]
    endless_more_data_after: Option<u64>,
    /// Fault: replace the answer to APDU number N+1 by 32 bytes of garbage and 9000, once.
    #[arg(long, value_name = "N")]
    garbage_after: Option<u64>,
    /// More logging on stderr (repeat for more).
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let level = match args.verbose {
        0 => tracing::Level::INFO,
        1 => tracing::Level::DEBUG,
        _ => tracing::Level::TRACE,
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .with_target(false)
        .init();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("custody-emu: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    let (image, image_path) = match (&args.image, args.serial) {
        (Some(path), _) => (
            DeviceImage::load(path).map_err(|e| e.to_string())?,
            path.clone(),
        ),
        (None, Some(serial)) => (
            DeviceImage::blank(serial, args.firmware),
            PathBuf::from("<blank>"),
        ),
        (None, None) => return Err("give --image FILE or --serial N".into()),
    };
    let saved = match &args.state {
        Some(p) => state::load(p).map_err(|e| e.to_string())?,
        None => None,
    };
    let resumed = saved.is_some();
    let (saved_oath, saved_piv) = match saved {
        Some(s) => (Some(s.oath), s.piv),
        None => (None, None),
    };
    let touch: Box<dyn TouchSource + Send> = match args.touch {
        Touch::Auto => Box::new(AutoTouch),
        Touch::Deny => Box::new(DenyTouch {
            timeout: Duration::from_secs(2),
        }),
        Touch::Delay(d) => Box::new(DelayTouch(d)),
        Touch::Stdin => Box::new(StdinTouch),
    };
    let mut key =
        SoftKey::from_image(&image, &image_path, saved_oath, touch).map_err(|e| e.to_string())?;
    if let Some(piv) = saved_piv {
        key = key.with_piv_state(piv);
    }
    if let Some(p) = &args.state {
        if !resumed {
            state::save(p, key.oath_state(), Some(key.piv_state())).map_err(|e| e.to_string())?;
        }
    }
    tracing::info!(
        serial = image.serial,
        firmware = %image.firmware,
        form_factor = %image.form_factor,
        state = ?args.state,
        resumed,
        "software YubiKey ready"
    );
    let faults = Faults {
        drop_after: args.drop_after,
        delay: Duration::from_millis(args.delay_ms),
        corrupt_after: args.corrupt_after,
        endless_more_data_after: args.endless_more_data_after,
        garbage_after: args.garbage_after,
    };
    let state_path = args.state.clone();
    let mut save_error = None;
    let mut on_apdu = |key: &mut SoftKey| {
        // Both flags are read (and reset) every time: `|` does not short-circuit.
        if key.oath_state_changed() | key.piv_state_changed() {
            if let Some(p) = &state_path {
                if let Err(e) = state::save(p, key.oath_state(), Some(key.piv_state())) {
                    tracing::error!(error = %e, "could not save the state");
                    save_error = Some(e.to_string());
                }
            }
        }
    };
    vpcd::serve(&args.vpcd, &mut key, faults, &mut on_apdu)
        .map_err(|e| format!("vpcd {}: {e}", args.vpcd))?;
    if let Some(e) = save_error {
        tracing::warn!(error = %e, "an earlier state save failed");
    }
    // The drop fault removed the card: keep it out until killed.
    tracing::info!("card removed; staying out until killed");
    loop {
        std::thread::park();
    }
}
