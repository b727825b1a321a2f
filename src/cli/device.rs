//! `custody device ...`, `custody enrol`, `custody code`: devices, enrolment and the release of
//! a code, through custodyd.

use std::path::Path;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::client::{call, print_reply, AuthArgs, PairArgs, SecretLines};
use super::ledger::finish;
use super::session::{for_reads, ReadAuthArgs};
use crate::custody::{escape_unsafe, DeviceRole, Terminal};
use crate::daemon::protocol::{named, DeviceReply, Op, Progress, Reply};

/// `custody device` subcommands.
#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Register the device with SERIAL, presented now in an allowed reader (one officer), and
    /// give it an attested PIV custody key: a P-256 key generated in slot 9e whose attestation
    /// must chain to Yubico's roots (or the configured test CA) and name SERIAL. A key that
    /// cannot be attested is registered unattested, or refused when custodyd's
    /// policy.require_attested_devices is on.
    #[command(
        after_help = "Example:\n  custody device register 10000001 --role primary --as alice\n\nRefused attestation_untrusted or attestation_unsupported only under\npolicy.require_attested_devices; attestation_serial_mismatch always."
    )]
    Register {
        /// The serial printed on the key.
        serial: u32,
        /// primary or backup.
        #[arg(long, value_parser = super::values::offered(parse_device_role as fn(&str) -> Result<DeviceRole, String>, super::values::device_roles))]
        role: DeviceRole,
        /// The officer.
        #[command(flatten)]
        auth: AuthArgs,
    },
    /// List devices and their states (officers and auditors; needs `custody login` or --as).
    #[command(after_help = "Example:\n  custody login --as alice\n  custody --json device list")]
    List {
        /// How you authenticate: the session of `custody login`, or --as for this command.
        #[command(flatten)]
        auth: ReadAuthArgs,
    },
    /// Show one device: role, account, state (where it is kept, its seal or its custodian).
    #[command(
        after_help = "Example:\n  custody device show 10000001\n  custody --json device show 10000001"
    )]
    Show {
        /// The serial printed on the key.
        serial: u32,
        /// How you authenticate: the session of `custody login`, or --as for this command.
        #[command(flatten)]
        auth: ReadAuthArgs,
    },
    /// Take a device out of its sealed bag; the seal number must match the ledger's.
    #[command(
        after_help = "Example:\n  custody device checkout 10000001 --seal BAG-0001 --request req-... --as alice"
    )]
    Checkout {
        /// The serial.
        serial: u32,
        /// The seal number on the bag.
        #[arg(long)]
        seal: String,
        /// The request the device is taken out for.
        #[arg(long, value_parser = super::client::parse_request_id)]
        request: Option<String>,
        /// The officer (becomes its custodian).
        #[command(flatten)]
        auth: AuthArgs,
    },
    /// Retire a device (two officers). A key enrolment locked must be in a reader: its OATH
    /// access key is cleared from it.
    #[command(after_help = "Example:\n  custody device retire 10000002 --by alice --by bob")]
    Retire(TerminalArgs),
    /// Lock a key enrolled without an OATH access key (two officers): a new access key, held
    /// only sealed in the ledger, is set on it, and from then on no OATH tool lists or computes
    /// its codes without custodyd. The key must be out of its bag (checked out) and in an
    /// allowed reader.
    #[command(
        after_help = "Example:\n  custody device checkout 10000001 --seal BAG-0001 --as alice\n  custody device lock 10000001 --by alice --by bob\n  custody device checkin 10000001 --seal BAG-0002 --location \"safe A\" --as alice"
    )]
    Lock(TerminalArgs),
    /// Give a registered key an attested PIV custody key (two officers). The key, in an
    /// allowed reader, generates a P-256 key in PIV slot 9e that never leaves it; its
    /// attestation must chain to Yubico's roots (or the configured test CA) and name the key's
    /// serial. Only then is its PIV management key replaced by a random one held sealed in the
    /// ledger; from then on every check-out, code release, check-in and inventory challenges
    /// the key, and a copy of the device is refused `device_mismatch`.
    #[command(
        after_help = "Example:\n  custody device checkout 10000001 --seal BAG-0001 --as alice\n  custody device attest 10000001 --by alice --by bob\n  custody device checkin 10000001 --seal BAG-0002 --location \"safe A\" --as alice\n\nRefused attestation_untrusted, attestation_serial_mismatch or attestation_unsupported, the\nkey keeps its factory PIV management key and stays unattested."
    )]
    Attest {
        /// The serial printed on the key.
        #[arg(value_parser = super::client::parse_serial)]
        serial: u32,
        /// The two officers.
        #[command(flatten)]
        pair: PairArgs,
    },
    /// Report a device lost; opens an incident (two officers).
    #[command(after_help = "Example:\n  custody device report-lost 10000002 --by alice --by bob")]
    ReportLost(TerminalArgs),
    /// Record a device's destruction (two officers).
    #[command(after_help = "Example:\n  custody device destroy 10000002 --by alice --by bob")]
    Destroy(TerminalArgs),
    /// Seal a device into a new bag and put it in the safe.
    #[command(
        after_help = "Example:\n  custody device checkin 10000001 --seal BAG-0002 --location \"safe A, shelf 1\" --as alice"
    )]
    Checkin {
        /// The serial.
        serial: u32,
        /// The new bag's seal number.
        #[arg(long)]
        seal: String,
        /// Where it is kept.
        #[arg(long)]
        location: String,
        /// The officer.
        #[command(flatten)]
        auth: AuthArgs,
    },
}

/// Arguments of `custody device lock | retire | report-lost | destroy`.
#[derive(Debug, Args)]
pub struct TerminalArgs {
    /// The serial.
    pub serial: u32,
    /// The two officers.
    #[command(flatten)]
    pub pair: PairArgs,
}

/// Arguments of `custody enrol`.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  custody enrol --account 123456789012 --primary 10000001 --backup 10000002 --by alice --by bob\n  (prompts for each officer's passphrase and code, then the provider's seed, hidden)"
)]
pub struct EnrolArgs {
    /// The account.
    #[arg(long)]
    pub account: String,
    /// The primary device's serial.
    #[arg(long)]
    pub primary: u32,
    /// The backup device's serial.
    #[arg(long)]
    pub backup: u32,
    /// The two officers.
    #[arg(long = "by", required = true, num_args = 1, value_name = "OFFICER", value_parser = super::client::parse_user_name)]
    pub by: Vec<String>,
    /// Passphrases, one per line, of each --by officer in order.
    #[arg(long, value_name = "N")]
    pub passphrase_fd: Option<u32>,
    /// Second-factor codes, one per line, of each --by officer in order.
    #[arg(long, value_name = "N")]
    pub totp_fd: Option<u32>,
    /// This --by officer proves presence by a signature of their own registered YubiKey
    /// (PIV PIN and touch) instead of a second-factor code (repeat for both officers).
    #[arg(long = "sign", value_name = "OFFICER", value_parser = super::client::parse_user_name)]
    pub sign: Vec<String>,
    /// PIV PINs, one per line, of each --sign officer in order, instead of prompting.
    #[arg(long, value_name = "N")]
    pub pin_fd: Option<u32>,
    /// Read the provider's seed (Base32 or otpauth:// URI) from this descriptor, not a prompt.
    #[arg(long, value_name = "N")]
    pub seed_fd: Option<u32>,
    /// Overwrite an existing credential of the same name.
    #[arg(long)]
    pub overwrite: bool,
}

/// Arguments of `custody code`.
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  custody code req-0123456789abcdef --as dave")]
pub struct CodeArgs {
    /// The approved request.
    #[arg(value_parser = super::client::parse_request_id)]
    pub request: String,
    /// The requester.
    #[command(flatten)]
    pub auth: AuthArgs,
}

fn human(r: &Reply) {
    match r {
        Reply::Device(d) => outln!("device {}: {}", d.serial, d.state.name()),
        Reply::Devices(list) => {
            for d in list {
                // A blocked device says so first: its state alone (`in_safe`) would invite
                // a check-out that is refused.
                let state = match &d.blocked_by {
                    Some(i) => format!("BLOCKED by incident {i} ({})", d.state.name()),
                    None => d.state.name().to_owned(),
                };
                outln!(
                    "{:<10} {:<8} {}",
                    d.serial.to_string(),
                    format!("{:?}", d.role).to_lowercase(),
                    state
                );
            }
        }
        Reply::Enrolled {
            first,
            second,
            first_step,
        } => {
            outln!("Enrolled. Give the provider these two consecutive codes:");
            outln!("  step {first_step}: {}", first.expose());
            outln!("  step {}: {}", first_step + 1, second.expose());
        }
        Reply::Code {
            request,
            code,
            seconds_remaining,
            device,
            password,
            ..
        } => {
            if let Some(p) = password {
                outln!("Root password for {request} (shown once): {}", p.expose());
            }
            outln!("Code for {request} (device {device}): {}", code.expose());
            outln!("Valid for {seconds_remaining} more second(s); it is shown once.");
        }
        other => outln!("{other:?}"),
    }
}

fn detail(d: &DeviceReply) {
    use crate::custody::DeviceState;
    outln!("device    {}", d.serial);
    outln!("role      {}", format!("{:?}", d.role).to_lowercase());
    outln!(
        "account   {}",
        d.account.as_ref().map_or("-".to_owned(), |a| a.to_string())
    );
    outln!("state     {}", d.state.name());
    match &d.state {
        DeviceState::InSafe { location, seal } => {
            outln!("location  {}", escape_unsafe(location.as_str()));
            outln!("seal      {seal}");
        }
        DeviceState::CheckedOut {
            custodian,
            request,
            since_ms,
        } => {
            outln!("custodian {custodian}");
            if let Some(r) = request {
                outln!("request   {r}");
            }
            outln!("since     {}", super::time::show(*since_ms));
        }
        _ => {}
    }
    outln!("firmware  {}", escape_unsafe(&d.firmware));
    outln!("device id {}", escape_unsafe(&d.device_id));
    if let Some(i) = &d.blocked_by {
        outln!("blocked   by incident {i}");
    }
    if let Some(k) = &d.custody_key_id {
        outln!("attested  PIV custody key {}", escape_unsafe(k));
    }
}

/// A registration's outcome: the device, and whether its custody key was attested.
fn registered(d: &DeviceReply) {
    outln!("device {}: {}", d.serial, d.state.name());
    match &d.custody_key_id {
        Some(k) => outln!("attested  PIV custody key {}", escape_unsafe(k)),
        None => outln!(
            "not attested: its PIV custody key could not be attested (device.registered in the \
             ledger says why); two officers may attest it later with `custody device attest {} \
             --by OFFICER --by OFFICER`",
            d.serial
        ),
    }
}

/// A device role named on the command line, checked before anyone is asked for a passphrase.
fn parse_device_role(s: &str) -> Result<DeviceRole, String> {
    named(s).ok_or_else(|| format!("{s:?} is not a device role: primary or backup"))
}

fn terminal(socket: &Path, t: TerminalArgs, to: Terminal) -> Result<Reply, super::ledger::Failure> {
    call(
        socket,
        t.pair.signed(
            socket,
            Op::DeviceSetTerminal {
                by: t.pair.read()?,
                serial: t.serial,
                to,
            },
        )?,
    )
}

/// Runs `custody device ...`.
pub fn run(json: bool, socket: &Path, cmd: DeviceCommand) -> ExitCode {
    finish(
        json,
        (|| {
            let r = match cmd {
                DeviceCommand::Register { serial, role, auth } => {
                    let r = auth.call(
                        socket,
                        Op::DeviceRegister {
                            by: auth.read()?,
                            serial,
                            role,
                        },
                    )?;
                    print_reply(json, &r, |r| match r {
                        Reply::Device(d) => registered(d),
                        other => human(other),
                    });
                    return Ok(());
                }
                DeviceCommand::List { auth } => {
                    let _s = for_reads(socket, &auth, "custody device list")?;
                    call(socket, Op::Devices)?
                }
                DeviceCommand::Show { serial, auth } => {
                    let _s = for_reads(socket, &auth, "custody device show")?;
                    let r = call(socket, Op::DeviceShow { serial })?;
                    print_reply(json, &r, |r| match r {
                        Reply::Device(d) => detail(d),
                        other => human(other),
                    });
                    return Ok(());
                }
                DeviceCommand::Lock(t) => call(
                    socket,
                    t.pair.signed(
                        socket,
                        Op::DeviceLock {
                            by: t.pair.read()?,
                            serial: t.serial,
                        },
                    )?,
                )?,
                DeviceCommand::Attest { serial, pair } => call(
                    socket,
                    pair.signed(
                        socket,
                        Op::DeviceAttest {
                            by: pair.read()?,
                            serial,
                        },
                    )?,
                )?,
                DeviceCommand::Retire(t) => terminal(socket, t, Terminal::Retired)?,
                DeviceCommand::ReportLost(t) => terminal(socket, t, Terminal::Lost)?,
                DeviceCommand::Destroy(t) => terminal(socket, t, Terminal::Destroyed)?,
                DeviceCommand::Checkout {
                    serial,
                    seal,
                    request,
                    auth,
                } => auth.call(
                    socket,
                    Op::Checkout {
                        by: auth.read()?,
                        serial,
                        seal,
                        request,
                    },
                )?,
                DeviceCommand::Checkin {
                    serial,
                    seal,
                    location,
                    auth,
                } => auth.call(
                    socket,
                    Op::Checkin {
                        by: auth.read()?,
                        serial,
                        seal,
                        location,
                    },
                )?,
            };
            print_reply(json, &r, human);
            Ok(())
        })(),
    )
}

/// Runs `custody enrol`.
pub fn enrol(json: bool, socket: &Path, a: EnrolArgs) -> ExitCode {
    finish(
        json,
        (|| {
            let (by, _) =
                super::client::read_officers_signing(&a.by, &a.sign, a.passphrase_fd, a.totp_fd)?;
            let seed = SecretLines::new(a.seed_fd)?
                .next("Provider's TOTP seed (Base32 or otpauth:// URI): ")?;
            let op = Op::Enrol {
                by,
                account: a.account,
                primary: a.primary,
                backup: a.backup,
                seed,
                overwrite: a.overwrite,
            };
            let r = call(
                socket,
                super::client::with_signatures(socket, &a.sign, a.pin_fd, op)?,
            )?;
            print_reply(json, &r, human);
            Ok(())
        })(),
    )
}

/// Runs `custody code`.
pub fn code(json: bool, socket: &Path, a: CodeArgs) -> ExitCode {
    finish(
        json,
        (|| {
            let by = a.auth.read()?;
            let request = a.request.clone();
            // custodyd says when it asks the checked-out key for the code, and in which reader:
            // the key flashes until it is touched.
            let touch = |p: &Progress| match p {
                Progress::Touch {
                    serial,
                    reader,
                    timeout_secs,
                } if !json => eprintln!(
                    "Touch the key in {}: custodyd is asking key {serial} for the code of \
                     {request}; it flashes until touched (custodyd waits {timeout_secs} s).",
                    escape_unsafe(reader)
                ),
                _ => {}
            };
            let r = a.auth.call_with_progress(
                socket,
                Op::Code {
                    by,
                    request: a.request,
                    touch_prompt: true,
                },
                &touch,
            )?;
            match &r {
                // At a terminal the code counts down and is erased when it expires, as in the
                // sign-in wizard; piped, two lines.
                Reply::Code {
                    request,
                    code,
                    seconds_remaining,
                    device,
                    password: None,
                    ..
                } if !json => {
                    super::ceremony::show_code(code, *seconds_remaining, request.as_str(), *device)?
                }
                _ => print_reply(json, &r, human),
            }
            Ok(())
        })(),
    )
}
