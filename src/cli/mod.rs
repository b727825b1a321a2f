//! The `custody` command line: argument definitions and dispatch. One file per command group.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// `println!` for the command's answer on standard output: when the reader has gone (`custody
/// user list | head -1`), the command ends quietly with [`exit::BROKEN_PIPE`] instead of
/// panicking. Never status 0: a `custody audit verify` whose answer was not read must not look
/// like a valid export to the script that ran it.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` for the command's answer (see `outln!`).
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::write_stdout(format_args!($($arg)*))
    };
}

/// Writes to standard output; a closed pipe ends the process quietly with
/// [`exit::BROKEN_PIPE`], any other failure with [`exit::IO`], naming it.
pub(crate) fn write_stdout(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    if let Err(e) = o.write_fmt(args).and_then(|()| o.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(i32::from(exit::BROKEN_PIPE));
        }
        eprintln!("custody: cannot write to standard output: {e}");
        std::process::exit(i32::from(exit::IO));
    }
}

pub mod account;
pub mod audit;
pub mod ceremony;
pub mod client;
pub mod cloudtrail;
pub mod daemon;
pub mod device;
pub mod generate;
pub mod incident;
pub mod init;
pub mod inventory;
pub mod ledger;
pub mod officer_card;
pub mod progress;
pub mod report;
pub mod request;
pub(crate) mod secret_input;
pub mod session;
pub(crate) mod time;
pub mod token;
pub mod user;
mod values;

/// Exit statuses of `custody`, documented in `docs/cli.md` and stable.
pub mod exit {
    /// The command did what was asked (for `verify`: the input is valid).
    pub const OK: u8 = 0;
    /// The command ran but the answer is "no": a verification failed, a request was refused.
    pub const FAILED: u8 = 1;
    /// The command line was wrong (clap's own usage errors use this status too).
    pub const USAGE: u8 = 2;
    /// A card, reader or pcscd could not be used.
    pub const TOKEN: u8 = 3;
    /// The ledger could not be opened, unsealed or written.
    pub const LEDGER: u8 = 4;
    /// Reading or writing a file, descriptor or terminal failed.
    pub const IO: u8 = 5;
    /// `custody status` only: custodyd answered and is sealed (0: unsealed), so a script
    /// tells the two apart without reading the output.
    pub const SEALED: u8 = 6;
    /// Standard output was closed before the answer was written (`custody user list | head
    /// -1`): 128 + SIGPIPE, the status a shell shows for a process a closed pipe ended.
    pub const BROKEN_PIPE: u8 = 141;
}

/// `custody`: the mfa-custody command line.
#[derive(Debug, Parser)]
#[command(name = "custody", version = crate::VERSION, about, long_about = None)]
pub struct Cli {
    /// Print machine-readable JSON instead of text (stable; see docs/cli.md).
    #[arg(long, global = true)]
    pub json: bool,
    /// The custodyd socket (commands that talk to the daemon). Default: $CUSTODY_SOCKET, else
    /// /run/custody/custodyd.sock.
    #[arg(long, global = true, value_name = "PATH")]
    pub socket: Option<std::path::PathBuf>,
    /// The ledger id (32 hex digits, as `custody init` and `custody status` print it) this
    /// host's custodyd must hold; custodyd refuses requests meant for another ledger. Default:
    /// $CUSTODY_LEDGER_ID.
    #[arg(long, global = true, value_name = "HEX")]
    pub ledger_id: Option<String>,
    /// Show times in the host's time zone (RFC 3339 with its offset) instead of UTC.
    #[arg(long, global = true)]
    pub local: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The command groups of `custody`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a ledger and its keyring (the genesis ceremony).
    #[command(
        after_help = "Example:\n  sudo -u custody custody init --ledger /var/lib/custody/ledger --officer alice --officer bob\n  (prompts each officer, in turn, for a new keyring passphrase, twice)"
    )]
    Init(init::InitArgs),
    /// Ledger maintenance: verify, re-share.
    #[command(
        subcommand,
        after_help = "Example:\n  sudo -u custody custody ledger verify --ledger /var/lib/custody/ledger --officer alice --officer bob"
    )]
    Ledger(ledger::LedgerCommand),
    /// Auditor commands: checkpoint, export, verify, report.
    #[command(
        subcommand,
        after_help = "Example:\n  custody audit verify ledger-2026-11.jsonl --pubkey 8d7c7066..."
    )]
    Audit(audit::AuditCommand),
    /// Readers and the YubiKeys in them.
    #[command(
        subcommand,
        after_help = "Example:\n  sudo -u custody custody token scan"
    )]
    Token(token::TokenCommand),
    /// Log in once: reads (lists, shows, export) then use a short-lived session instead of your
    /// passphrase and second factor. Approvals, check-outs, codes and two-officer operations
    /// still ask for them each time.
    #[command(
        after_help = "The session is bound to you and to your OS uid, ends after a while unused \
(session_idle_secs, 10 minutes by default), at the latest session_absolute_secs after the login \
(an hour), at custody logout, and when custodyd seals. Its token is kept in a file only you can \
read ($XDG_RUNTIME_DIR/custody/, else ~/.cache/custody/, mode 0600), never on the command line \
or in the environment.\n\nExample:\n  custody login --as alice\n  custody login --as dave\n  custody user list\n  custody logout"
    )]
    Login(session::LoginArgs),
    /// End your session (the daemon revokes it and its file is removed).
    #[command(after_help = "Example:\n  custody logout")]
    Logout,
    /// Show whose session this terminal holds and when it ends.
    #[command(after_help = "Example:\n  custody whoami\n  custody --json whoami")]
    Whoami,
    /// Show custodyd's state: sealed or not, unseal progress, ledger head. Exits 0 unsealed, 6
    /// sealed.
    #[command(after_help = "Example:\n  custody status\n  custody --json status")]
    Status,
    /// Offer one officer's unseal share to custodyd (a quorum unseals it).
    Unseal(daemon::UnsealArgs),
    /// Seal custodyd (one officer): record it by name, close the ledger, erase its keys from
    /// memory.
    Seal(daemon::SealArgs),
    /// Export the ledger through custodyd (JSON Lines, signed), for offline verification.
    Export(daemon::ExportArgs),
    /// Custody users: officers, operators, auditors.
    #[command(subcommand, after_help = "Example:\n  custody user list --as alice")]
    User(user::UserCommand),
    /// Cloud accounts whose root MFA is in custody.
    #[command(subcommand, after_help = "Example:\n  custody account list --as alice")]
    Account(account::AccountCommand),
    /// Dual-control requests for a root code.
    #[command(subcommand, after_help = "Example:\n  custody request list --as alice")]
    Request(request::RequestCommand),
    /// Approve a request (an officer other than the requester).
    Approve(request::ApproveArgs),
    /// Deny a request.
    Deny(request::DenyArgs),
    /// Devices: register, list, check out of and into the safe.
    #[command(subcommand, after_help = "Example:\n  custody device list --as alice")]
    Device(device::DeviceCommand),
    /// Enrol an account's primary and backup keys with the provider's seed (two officers).
    Enrol(device::EnrolArgs),
    /// Receive the one code of your approved request (computed after a touch).
    Code(device::CodeArgs),
    /// Inventory audit (one officer): present every device in custody; anything missing,
    /// mismatched or unknown opens an incident or is reported.
    Inventory(inventory::InventoryArgs),
    /// End custody of an account (two officers): its devices are handed over, each locked key's
    /// OATH access key cleared from it first (the keys in allowed readers), and a signed
    /// extract of its history is written for the receiving organisation.
    Release(daemon::ReleaseArgs),
    /// Guided ceremonies (sign-in, enrolment): each person is asked for their own credentials
    /// in turn; scriptable with --passphrase-fd.
    #[command(
        subcommand,
        after_help = "Example:\n  custody ceremony sign-in --account 123456789012 --task change-root-password"
    )]
    Ceremony(ceremony::CeremonyCommand),
    /// Incidents: list, acknowledge.
    #[command(
        subcommand,
        after_help = "Example:\n  custody incident list --as alice"
    )]
    Incident(incident::IncidentCommand),
    /// Print the shell completion script of `custody` (bash, zsh, fish, elvish, powershell).
    #[command(
        after_help = "Example:\n  custody completions bash > /etc/bash_completion.d/custody\n  custody completions zsh > \"${fpath[1]}/_custody\""
    )]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page of `custody` (roff), or write one page per command to a
    /// directory: custody.1, custody-request.1, custody-request-code.1, ... Made from the same
    /// definitions as --help.
    #[command(
        after_help = "Example:\n  custody man > custody.1 && man ./custody.1\n  custody man --out /usr/local/share/man/man1 && man custody-request-code"
    )]
    Man(generate::ManArgs),
}

/// Parses the command line. A usage error is printed as clap prints it, or, when `--json` is
/// among the arguments, as the one `--json` error shape (`{"ok": false, "status": 2, "error":
/// {"code": "bad_request", "reason": "invalid_input", "message"}}`); either way the status is
/// [`exit::USAGE`]. `--help` and `--version` print as usual.
pub fn parse<I, T>(args: I) -> Result<Cli, ExitCode>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
    match Cli::try_parse_from(&args) {
        Ok(cli) => Ok(cli),
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            Err(ExitCode::from(exit::OK))
        }
        Err(e) => {
            let json = args
                .iter()
                .skip(1)
                .take_while(|a| a.as_os_str() != "--")
                .any(|a| a.as_os_str() == "--json");
            if !json {
                e.exit();
            }
            // clap's first line names the problem (`error: unexpected argument '--x' found`);
            // the rest is usage and a tip for a terminal.
            let text = e.to_string();
            let message = text
                .lines()
                .next()
                .unwrap_or_default()
                .trim_start_matches("error: ")
                .to_owned();
            let f = ledger::Failure::refused(
                exit::USAGE,
                crate::daemon::protocol::RefusalCode::InvalidInput,
                message,
            );
            outln!("{}", f.to_json());
            Err(ExitCode::from(exit::USAGE))
        }
    }
}

/// Runs a parsed command line and returns the process exit status.
pub fn run(cli: Cli) -> ExitCode {
    time::set_local(cli.local);
    if let Err(f) = client::pin_ledger(cli.ledger_id.as_deref()) {
        return ledger::finish(cli.json, Err(f));
    }
    match cli.command {
        Command::Init(args) => init::run(cli.json, args),
        Command::Ledger(cmd) => ledger::run(cli.json, cmd),
        Command::Audit(cmd) => audit::run(cli.json, cmd),
        Command::Token(cmd) => token::run(cmd, cli.json),
        Command::Login(a) => {
            session::login(cli.json, &client::socket_path(cli.socket.as_deref()), a)
        }
        Command::Logout => session::logout(cli.json, &client::socket_path(cli.socket.as_deref())),
        Command::Whoami => session::whoami(cli.json, &client::socket_path(cli.socket.as_deref())),
        Command::Status => daemon::status(cli.json, &client::socket_path(cli.socket.as_deref())),
        Command::Unseal(a) => {
            daemon::unseal(cli.json, &client::socket_path(cli.socket.as_deref()), a)
        }
        Command::Seal(a) => daemon::seal(cli.json, &client::socket_path(cli.socket.as_deref()), a),
        Command::User(c) => user::run(cli.json, &client::socket_path(cli.socket.as_deref()), c),
        Command::Account(c) => {
            account::run(cli.json, &client::socket_path(cli.socket.as_deref()), c)
        }
        Command::Request(c) => {
            request::run(cli.json, &client::socket_path(cli.socket.as_deref()), c)
        }
        Command::Approve(a) => {
            request::approve(cli.json, &client::socket_path(cli.socket.as_deref()), a)
        }
        Command::Deny(a) => request::deny(cli.json, &client::socket_path(cli.socket.as_deref()), a),
        Command::Device(c) => device::run(cli.json, &client::socket_path(cli.socket.as_deref()), c),
        Command::Enrol(a) => {
            device::enrol(cli.json, &client::socket_path(cli.socket.as_deref()), a)
        }
        Command::Code(a) => device::code(cli.json, &client::socket_path(cli.socket.as_deref()), a),
        Command::Ceremony(c) => {
            ceremony::run(cli.json, &client::socket_path(cli.socket.as_deref()), c)
        }
        Command::Incident(c) => {
            incident::run(cli.json, &client::socket_path(cli.socket.as_deref()), c)
        }
        Command::Inventory(a) => {
            inventory::run(cli.json, &client::socket_path(cli.socket.as_deref()), a)
        }
        Command::Release(a) => {
            daemon::release(cli.json, &client::socket_path(cli.socket.as_deref()), a)
        }
        Command::Completions { shell } => generate::completions(cli.json, shell),
        Command::Man(a) => generate::man(cli.json, a),
        Command::Export(a) => {
            daemon::export(cli.json, &client::socket_path(cli.socket.as_deref()), a)
        }
    }
}
