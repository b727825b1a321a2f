//! `custody user ...`: custody users (officers, operators, auditors), through custodyd.

use std::path::Path;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use subtle::ConstantTimeEq;

use super::client::{call, print_reply, read_officers, PairArgs, SecretLines};
use super::exit;
use super::ledger::{finish, Failure};
use super::session::{for_reads, ReadAuthArgs};
use crate::custody::Role;
use crate::daemon::protocol::{Op, Reply};

/// `custody user` subcommands.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Enrol a genesis officer (named in the keyring) as a custody user, once. The officer
    /// proves who they are with their keyring (unseal) passphrase, then chooses their custody
    /// passphrase (asked twice). Prints their second-factor seed this one time.
    #[command(
        after_help = "Asks for three lines, in this order: the officer's keyring (unseal) passphrase, their new\ncustody passphrase, and the new custody passphrase again. With --passphrase-fd the three\nlines are read from that descriptor in the same order.\n\nExample:\n  custody user bootstrap alice     # prompts: unseal passphrase, new one twice\n  custody user bootstrap alice --passphrase-fd 3 \\\n      3< <(printf '%s\\n%s\\n%s\\n' \"$UNSEAL\" \"$NEW\" \"$NEW\")"
    )]
    Bootstrap {
        /// The officer.
        name: String,
        /// Read the three lines (keyring passphrase, new passphrase, new passphrase again)
        /// from this file descriptor instead of prompting.
        #[arg(long, value_name = "N")]
        passphrase_fd: Option<u32>,
    },
    /// Add a user. Operators and auditors need one officer; an officer needs two (`--by` twice).
    #[command(
        after_help = "Example:\n  custody user add dave --role operator --uid 1004 --by alice\n  custody user add carol --role officer --by alice --by bob --passphrase-fd 3 --totp-fd 4"
    )]
    Add(AddArgs),
    /// List users, roles and states (officers and auditors; needs `custody login` or --as).
    #[command(after_help = "Example:\n  custody login --as alice\n  custody --json user list")]
    List {
        /// How you authenticate: the session of `custody login`, or --as for this command.
        #[command(flatten)]
        auth: ReadAuthArgs,
    },
    /// Suspend a user (two officers).
    #[command(after_help = "Example:\n  custody user suspend dave --by alice --by bob")]
    Suspend {
        /// The user.
        name: String,
        /// The two officers.
        #[command(flatten)]
        pair: PairArgs,
    },
    /// Replace a user's roles (two officers). Nobody becomes an officer this way: officers are
    /// added as new users, so that they get a second factor.
    #[command(
        after_help = "Example:\n  custody user roles dave --role operator --role auditor --by alice --by bob"
    )]
    Roles {
        /// The user.
        name: String,
        /// A role: operator, auditor, or officer for a user who already is one (repeat).
        #[arg(long = "role", required = true, value_parser = super::values::offered(parse_role as fn(&str) -> Result<Role, String>, super::values::user_roles))]
        roles: Vec<Role>,
        /// The two officers.
        #[command(flatten)]
        pair: PairArgs,
    },
    /// Bind a user to the OS uid they must run `custody` as, or move their binding (two
    /// officers, neither of them the user). Genesis officers start unbound; this binds them.
    #[command(
        name = "bind-uid",
        after_help = "A bound user authenticates only over a connection from that uid (custodyd reads the peer's\nuid from the socket): their passphrase and second factor no longer work from any other OS\naccount. Find the uid with `id -u NAME` on the custody host.\n\nThe two officers may not include the user: a binding limits where that user's credentials\nwork, so two people it does not constrain vouch for it. With only two officers, add a third\n(`custody user add ... --role officer`) before binding them.\n\nTwo-officer operations are typed at one terminal, so both officers authenticate from the uid\nit runs as: officers bound to different uids cannot act as a pair. Bind officers who run\nceremonies together to the account they use for them.\n\nThe binding applies from the user's next authentication and is recorded as user.uid_bound\n(from, to, and the two officers). Binding a user to the uid they already have is refused.\n\nExample:\n  custody user bind-uid alice --uid 1001 --by bob --by carol"
    )]
    BindUid {
        /// The user to bind.
        name: String,
        /// The OS uid they must connect as (`id -u NAME`).
        #[arg(long)]
        uid: u32,
        /// The two officers (neither of them NAME).
        #[command(flatten)]
        pair: PairArgs,
    },
    /// Clear a user's failed authentications, so that custodyd no longer makes them wait
    /// before their next attempt (two officers, neither of them the user).
    #[command(
        after_help = "After repeated wrong passphrases or codes custodyd makes the next attempt of that user wait
(the refusal `throttled` says how long), up to 15 minutes. Two officers who have checked
with the user that the failures were theirs clear it; it is recorded as user.unlocked with
the count cleared and both officers.

Example:
  custody user unlock dave --by alice --by bob"
    )]
    Unlock {
        /// The user.
        #[arg(value_parser = super::client::parse_user_name)]
        name: String,
        /// The two officers (neither of them NAME).
        #[command(flatten)]
        pair: PairArgs,
    },
    /// An officer's approval key on their own YubiKey (`custody approve --sign`): register or
    /// remove it (the officer and a witness officer).
    #[command(
        subcommand,
        after_help = "Example:\n  custody user key register alice --witness bob --generate\n  custody user key remove alice --witness bob"
    )]
    Key(KeyCommand),
    /// Reinstate a suspended user (two officers).
    #[command(after_help = "Example:\n  custody user reinstate dave --by alice --by bob")]
    Reinstate {
        /// The user.
        name: String,
        /// The two officers.
        #[command(flatten)]
        pair: PairArgs,
    },
}

/// `custody user key` subcommands.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Register OFFICER's approval key: the P-256 key in PIV slot 9c of their own YubiKey
    /// (never a custody key), which `custody approve --sign` uses. With --generate a new key is
    /// made on the card first (PIN policy once, touch policy always); without it the key
    /// already in 9c is used. The card's attestation goes to custodyd, which checks it chains
    /// to Yubico's roots, names the YubiKey's serial and requires a touch for every signature.
    #[command(
        after_help = "Asked for: the passphrase and second-factor code of OFFICER, then of the witness (or one\nper line from --passphrase-fd and --totp-fd, OFFICER's first). With --generate and a\nmanagement key other than the factory one, that key as hex on --management-key-fd. No PIN\nand no touch: generating and attesting need neither.\n\nOne key per officer: to replace it, remove it first (custody user key remove). --generate\nreplaces the key in slot 9c at once, before custodyd is asked; it is refused, before the\ncard is changed, when the key in 9c is OFFICER's registered one (it needs a custody login\nsession to check that when the slot holds a key).\n\nExample:\n  custody user key register alice --witness bob --generate --serial 10000101\n  custody approve REQ-ID --as alice --sign"
    )]
    Register {
        /// The officer whose YubiKey it is.
        #[arg(value_parser = super::client::parse_user_name)]
        officer: String,
        /// The officer who witnesses the registration.
        #[arg(long, value_name = "OFFICER", value_parser = super::client::parse_user_name)]
        witness: String,
        /// Generate a new approval key in slot 9c first (replacing what the slot held).
        #[arg(long)]
        generate: bool,
        /// With --generate: read the YubiKey's PIV management key (hex) from this file
        /// descriptor; without it the factory management key is used.
        #[arg(long, value_name = "N", requires = "generate", value_parser = super::client::parse_fd)]
        management_key_fd: Option<u32>,
        /// Which YubiKey.
        #[command(flatten)]
        card: super::officer_card::CardArgs,
        /// Passphrases, one per line: OFFICER's, then the witness's.
        #[arg(long, value_name = "N")]
        passphrase_fd: Option<u32>,
        /// Second-factor codes, one per line: OFFICER's, then the witness's.
        #[arg(long, value_name = "N")]
        totp_fd: Option<u32>,
    },
    /// Remove OFFICER's approval key (a lost or replaced YubiKey), so that a new one can be
    /// registered; until then they cannot approve with --sign.
    #[command(
        after_help = "Asked for: the passphrase and second-factor code of OFFICER, then of the witness (or one\nper line from --passphrase-fd and --totp-fd, OFFICER's first).\n\nExample:\n  custody user key remove alice --witness bob\n  custody user key register alice --witness bob --generate"
    )]
    Remove {
        /// The officer whose key it is.
        #[arg(value_parser = super::client::parse_user_name)]
        officer: String,
        /// The officer who witnesses the removal.
        #[arg(long, value_name = "OFFICER", value_parser = super::client::parse_user_name)]
        witness: String,
        /// Passphrases, one per line: OFFICER's, then the witness's.
        #[arg(long, value_name = "N")]
        passphrase_fd: Option<u32>,
        /// Second-factor codes, one per line: OFFICER's, then the witness's.
        #[arg(long, value_name = "N")]
        totp_fd: Option<u32>,
    },
}

/// The officer and the witness must be two people: refused before any secret is asked for.
fn two_people(officer: &str, witness: &str) -> Result<(), Failure> {
    if officer == witness {
        return Err(Failure::new(
            exit::USAGE,
            format!("{officer} cannot witness their own key: give another officer with --witness; nothing was sent"),
        ));
    }
    Ok(())
}

/// Refuses `--generate` on a YubiKey whose slot 9c holds the approval key registered to
/// `officer`: generating would replace it on the card before custodyd is asked (and custodyd
/// would then refuse the new key, the officer already having one). The card is only read
/// (ATTEST, no PIN); custodyd's `users` listing, with the kept login session, names the
/// registered key. A slot the card attests no key in holds nothing to keep.
fn keep_registered_key(
    socket: &Path,
    officer: &str,
    witness: &str,
    yk: &mut super::officer_card::OfficerCard,
) -> Result<(), Failure> {
    let Ok(current) = yk.approval_key() else {
        return Ok(());
    };
    let on_card = super::officer_card::key_id(&current.spki);
    if !super::session::use_kept(socket)? {
        return Err(Failure::new(
            exit::FAILED,
            format!(
                "YubiKey {} already holds an approval key in slot 9c ({on_card}), and --generate \
                 would replace it: run custody login first (any officer or auditor) so that \
                 custody can check it is not {officer}'s registered key, or register the key \
                 already on the card without --generate; nothing was changed",
                yk.serial
            ),
        ));
    }
    let users = match call(socket, Op::Users)? {
        Reply::Users(u) => u,
        other => {
            return Err(Failure::new(
                exit::IO,
                format!("custodyd answered users with {other:?}"),
            ))
        }
    };
    let registered = users
        .iter()
        .find(|u| u.name.as_str() == officer)
        .and_then(|u| u.approval_key.as_deref());
    if registered == Some(on_card.as_str()) {
        return Err(Failure::refused(
            exit::FAILED,
            crate::daemon::protocol::RefusalCode::SigningKeyExists,
            format!(
                "YubiKey {} ({}) holds {officer}'s registered approval key {on_card} in slot 9c, \
                 and --generate would replace it on the card: to replace the key, two officers \
                 remove it first (custody user key remove {officer} --witness {witness}), then \
                 run this again; nothing was changed",
                yk.serial, yk.reader
            ),
        ));
    }
    Ok(())
}

/// Runs `custody user key ...`: the card first (so a missing YubiKey costs no passphrase),
/// then both officers' credentials.
fn key(socket: &Path, cmd: KeyCommand) -> Result<Reply, Failure> {
    match cmd {
        KeyCommand::Register {
            officer,
            witness,
            generate,
            management_key_fd,
            card,
            passphrase_fd,
            totp_fd,
        } => {
            two_people(&officer, &witness)?;
            let management_key = management_key_fd
                .map(super::officer_card::read_management_key)
                .transpose()?;
            let mut yk = card.open()?;
            let shown = if generate {
                keep_registered_key(socket, &officer, &witness, &mut yk)?;
                eprintln!(
                    "Generating a new approval key in slot 9c of YubiKey {} ({})...",
                    yk.serial, yk.reader
                );
                yk.generate(management_key)?
            } else {
                yk.approval_key()?
            };
            eprintln!(
                "YubiKey {} approval key {}",
                yk.serial,
                super::officer_card::key_id(&shown.spki)
            );
            let (by, _) = read_officers(&[officer, witness], passphrase_fd, totp_fd)?;
            let b64 = data_encoding::BASE64;
            call(
                socket,
                Op::OfficerKeyRegister {
                    by,
                    serial: yk.serial,
                    spki: b64.encode(&shown.spki),
                    slot_certificate: b64.encode(&shown.evidence.slot_cert),
                    device_certificate: b64.encode(&shown.evidence.device_cert),
                },
            )
        }
        KeyCommand::Remove {
            officer,
            witness,
            passphrase_fd,
            totp_fd,
        } => {
            two_people(&officer, &witness)?;
            let (by, _) = read_officers(&[officer, witness], passphrase_fd, totp_fd)?;
            call(socket, Op::OfficerKeyRemove { by })
        }
    }
}

/// A role named on the command line, checked before anyone is asked for a passphrase.
fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).map_err(|_| format!("{s:?} is not a role: officer, operator or auditor"))
}

/// Arguments of `custody user add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// The new user's name.
    pub name: String,
    /// A role: officer, operator or auditor (repeat).
    #[arg(long = "role", required = true, value_parser = super::values::offered(parse_role as fn(&str) -> Result<Role, String>, super::values::user_roles))]
    pub roles: Vec<Role>,
    /// The OS uid the user must connect as.
    #[arg(long)]
    pub uid: Option<u32>,
    /// An approving officer (repeat for two).
    #[arg(long = "by", required = true, value_name = "OFFICER", value_parser = super::client::parse_user_name)]
    pub by: Vec<String>,
    /// Passphrases, one per line: each --by officer's in order, then the new user's.
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
}

fn print_factor(r: &Reply) {
    if let Reply::Factor { user, uri, base32 } = r {
        outln!(
            "Second factor of officer {user} (shown once; load it into their authenticator now):"
        );
        outln!("  {}", uri.expose());
        outln!("  base32: {}", base32.expose());
    }
}

/// Refuses, before any secret is asked for, a pair of officers that includes `name`, the
/// user they act on (`what` they do, as in "bind alice's uid").
fn not_the_subject(pair: &PairArgs, name: &str, what: &str) -> Result<(), Failure> {
    if pair.by.iter().any(|b| b == name) {
        return Err(Failure::new(
            exit::USAGE,
            format!("{name} may not be one of the two officers who {what}: give two other officers with --by; nothing was sent"),
        ));
    }
    Ok(())
}

/// Runs `custody user ...`.
pub fn run(json: bool, socket: &Path, cmd: UserCommand) -> ExitCode {
    let mut bound = false;
    let mut unlocked = false;
    finish(
        json,
        (|| {
            let r = match cmd {
                UserCommand::Bootstrap {
                    name,
                    passphrase_fd,
                } => {
                    let mut lines = SecretLines::new(passphrase_fd)?;
                    let keyring_passphrase =
                        lines.next(&format!("Keyring (unseal) passphrase of {name}: "))?;
                    let passphrase = lines.next(&format!("New custody passphrase of {name}: "))?;
                    let again =
                        lines.next(&format!("New custody passphrase of {name}, again: "))?;
                    if !bool::from(
                        passphrase
                            .expose()
                            .as_bytes()
                            .ct_eq(again.expose().as_bytes()),
                    ) {
                        return Err(Failure::new(
                            exit::USAGE,
                            format!("the two new custody passphrases of {name} differ; nothing was sent"),
                        ));
                    }
                    drop(again);
                    call(
                        socket,
                        Op::BootstrapOfficer {
                            user: name,
                            keyring_passphrase,
                            passphrase,
                        },
                    )?
                }
                UserCommand::Add(a) => {
                    let distinct: std::collections::BTreeSet<&String> = a.by.iter().collect();
                    if a.roles.contains(&Role::Officer) && distinct.len() < 2 {
                        return Err(Failure::new(
                            exit::USAGE,
                            "adding an officer needs two different officers: give --by twice",
                        ));
                    }
                    let (by, mut pass) = super::client::read_officers_signing(
                        &a.by,
                        &a.sign,
                        a.passphrase_fd,
                        a.totp_fd,
                    )?;
                    let passphrase = pass.next(&format!("New passphrase of {}: ", a.name))?;
                    let op = Op::UserAdd {
                        by,
                        name: a.name,
                        roles: a.roles,
                        uid: a.uid,
                        passphrase,
                    };
                    call(
                        socket,
                        super::client::with_signatures(socket, &a.sign, a.pin_fd, op)?,
                    )?
                }
                UserCommand::List { auth } => {
                    let _s = for_reads(socket, &auth, "custody user list")?;
                    call(socket, Op::Users)?
                }
                UserCommand::Suspend { name, pair } => call(
                    socket,
                    pair.signed(
                        socket,
                        Op::UserSetActive {
                            by: pair.read()?,
                            name,
                            active: false,
                        },
                    )?,
                )?,
                UserCommand::Roles { name, roles, pair } => call(
                    socket,
                    pair.signed(
                        socket,
                        Op::UserSetRoles {
                            by: pair.read()?,
                            name,
                            roles,
                        },
                    )?,
                )?,
                UserCommand::BindUid { name, uid, pair } => {
                    not_the_subject(&pair, &name, &format!("bind {name}'s uid"))?;
                    bound = true;
                    call(
                        socket,
                        pair.signed(
                            socket,
                            Op::UserBindUid {
                                by: pair.read()?,
                                name,
                                uid,
                            },
                        )?,
                    )?
                }
                UserCommand::Unlock { name, pair } => {
                    not_the_subject(&pair, &name, &format!("unlock {name}"))?;
                    unlocked = true;
                    call(
                        socket,
                        pair.signed(
                            socket,
                            Op::UserUnlock {
                                by: pair.read()?,
                                name,
                            },
                        )?,
                    )?
                }
                UserCommand::Key(k) => key(socket, k)?,
                UserCommand::Reinstate { name, pair } => call(
                    socket,
                    pair.signed(
                        socket,
                        Op::UserSetActive {
                            by: pair.read()?,
                            name,
                            active: true,
                        },
                    )?,
                )?,
            };
            print_reply(json, &r, |r| {
                match r {
                Reply::Factor { .. } => print_factor(r),
                Reply::User(u) if unlocked => outln!(
                    "{}: unlocked (failed authentications cleared; the next attempt is not made to wait)",
                    u.name
                ),
                Reply::User(u) if bound => outln!(
                    "{}: bound to uid {} (from their next authentication)",
                    u.name,
                    u.uid.map_or("-".to_owned(), |n| n.to_string())
                ),
                Reply::User(u) => outln!(
                    "{}: {} ({})",
                    u.name,
                    if u.active { "active" } else { "suspended" },
                    u.roles
                        .iter()
                        .map(|r| r.as_str())
                        .collect::<Vec<_>>()
                        .join(",")
                ),
                Reply::Users(us) => {
                    for u in us {
                        // An officer's registered approval key (custody approve --sign), by
                        // the first 16 hex digits of its id; the JSON carries the whole id.
                        let key = u.approval_key.as_deref().map_or(String::new(), |k| {
                            format!("  approval key {}", k.chars().take(16).collect::<String>())
                        });
                        outln!(
                            "{:<16} {:<24} uid {:<8} {}{key}",
                            u.name.to_string(),
                            u.roles
                                .iter()
                                .map(|r| r.as_str())
                                .collect::<Vec<_>>()
                                .join(","),
                            u.uid.map_or("-".to_owned(), |u| u.to_string()),
                            if u.active { "active" } else { "suspended" }
                        );
                    }
                }
                Reply::OfficerKey {
                    officer,
                    key_id,
                    registered: true,
                } => outln!(
                    "{officer}: approval key {key_id} registered (custody approve --sign uses it)"
                ),
                Reply::OfficerKey {
                    officer, key_id, ..
                } => outln!(
                    "{officer}: approval key {key_id} removed (custody approve --sign needs a new one registered)"
                ),
                other => outln!("{other:?}"),
            }
            });
            Ok(())
        })(),
    )
}
