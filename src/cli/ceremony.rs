//! `custody ceremony sign-in | enrol`: interactive wizards that walk the people in the room
//! through a whole ceremony over custodyd, one step at a time, asking each person for their own
//! credentials when it is their turn. Every step is an ordinary daemon operation (the same as
//! `custody request code`, `approve`, `device checkout`, `code`, `device checkin`,
//! `account add`, `device register`, `enrol`), so a wizard stopped half-way is resumed by
//! running it again (`--request` for a sign-in): steps already done are skipped.
//!
//! On a terminal, names and other plain answers are typed visibly; passphrases, second-factor
//! codes and the provider's seed at hidden prompts. With `--passphrase-fd N` every answer is one
//! line of descriptor N, in the order documented in `docs/cli.md`, and nothing is asked on the
//! terminal. The narrative goes to standard error; standard output carries the results (the
//! request id, the code, the enrolment codes), or one JSON document with `--json`.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use serde_json::json;
use zeroize::Zeroizing;

use super::client::{call_completing, call_with_reason};
use super::exit;
use super::ledger::{finish, Failure};
use super::secret_input::SecretFd;
use crate::custody::{escape_unsafe, DeviceRole, DeviceState, RequestStatus, Role};
use crate::daemon::protocol::{
    Auth, DeviceReply, Op, Progress, RefusalCode, Reply, RequestReply, Secret, UserReply,
};

/// `custody ceremony` subcommands.
#[derive(Debug, Subcommand)]
pub enum CeremonyCommand {
    /// Sign-in wizard: request, approvals, check-out, the code (with a countdown), check-in.
    #[command(after_help = SIGN_IN_HELP)]
    SignIn(SignInArgs),
    /// Enrolment wizard: account, both keys registered, enrolled with the provider's seed,
    /// checked into the safe.
    #[command(after_help = ENROL_HELP)]
    Enrol(EnrolArgs),
}

const SIGN_IN_HELP: &str = "\
Example (at the custody host, the people taking turns at the keyboard):
  custody ceremony sign-in --account 123456789012 --task change-root-password \\
      --ticket SEC-42 --reason \"rotate the root password after the annual audit\"

Scripted: every answer is one line of descriptor N, in this order (a step already done,
or a value given as an option, is not asked):
  requester name, passphrase, [second-factor code: officers only],
  [account, task, ticket, reason: those not given as options];
  for each approval still needed: officer name, passphrase, code
    (with --sign: officer name, passphrase, PIV PIN of their own YubiKey);
  custodian name, passphrase, code, seal number on the bag;
  requester passphrase, [code];
  unless --no-checkin: officer name, passphrase, code, new seal number, [location].
  custody ceremony sign-in --request req-0123456789abcdef --passphrase-fd 3 --no-checkin 3<answers

With --sign each approving officer approves with their own YubiKey instead of a
second-factor code (the only way when custodyd's policy has approval_proof = \"signature\"):
their name and passphrase, then custody finds, among the YubiKeys plugged in, the one
holding the approval key they registered (custody user key register), asks its PIV PIN at
a hidden prompt and says whose YubiKey to touch. The signature covers exactly what was
shown and a single-use challenge from custodyd, and is kept in the ledger for auditors.
A mistyped PIN is asked again at a terminal (the tries left are said); with
--passphrase-fd the ceremony stops, and `--request ID --sign` resumes it.";

const ENROL_HELP: &str = "\
Example (both new keys inserted, the provider's \"Assign MFA device\" page open):
  custody ceremony enrol --account 123456789012 --primary 10000001 --backup 10000002 \\
      --provider aws --alias prod --root-email root@example.com --credential AWS:prod-root

Scripted: every answer is one line of descriptor N, in this order (a step already done,
or a value given as an option, is not asked):
  unless the account is registered: officer name, passphrase, code,
    [provider, alias, root e-mail, credential: those not given as options];
  unless the primary is registered: officer name, passphrase, code;
  unless the backup is registered: officer name, passphrase, code;
  unless both are enrolled: first officer name, passphrase, code; second officer name,
    passphrase, code; the provider's seed;
  for the primary, then the backup, unless in the safe: officer name, passphrase, code,
    seal number, [location].
  custody ceremony enrol --account 123456789012 --primary 10000001 --backup 10000002 \\
      --passphrase-fd 3 3<answers";

/// Arguments of `custody ceremony sign-in`.
#[derive(Debug, Args)]
pub struct SignInArgs {
    /// Resume this request instead of making a new one.
    #[arg(long, value_name = "ID", value_parser = super::client::parse_request_id)]
    pub request: Option<String>,
    /// The account (asked when missing).
    #[arg(long)]
    pub account: Option<String>,
    /// The root task (asked when missing), e.g. change-root-password.
    #[arg(long, value_parser = super::values::offered_text(super::values::tasks), hide_possible_values = true)]
    pub task: Option<String>,
    /// The ticket reference (asked when missing), e.g. SEC-42.
    #[arg(long)]
    pub ticket: Option<String>,
    /// Why the root user is needed (asked when missing).
    #[arg(long)]
    pub reason: Option<String>,
    /// The key to check out. Default: the account's primary key in the safe, else its backup.
    #[arg(long)]
    pub serial: Option<u32>,
    /// Where the key is kept after check-in (asked when missing).
    #[arg(long)]
    pub location: Option<String>,
    /// Stop after the code: the key stays checked out (check it in later with
    /// `custody device checkin`).
    #[arg(long)]
    pub no_checkin: bool,
    /// Read every answer, one per line, from this file descriptor instead of the terminal.
    #[arg(long, value_name = "N")]
    pub passphrase_fd: Option<u32>,
    /// The approving officers approve with their own YubiKeys (PIV slot 9c, registered with
    /// `custody user key register`): each gives name, passphrase and PIV PIN, and touches
    /// their key, instead of a second-factor code.
    #[arg(long)]
    pub sign: bool,
}

/// Arguments of `custody ceremony enrol`.
#[derive(Debug, Args)]
pub struct EnrolArgs {
    /// The account.
    #[arg(long)]
    pub account: String,
    /// The primary key's serial.
    #[arg(long)]
    pub primary: u32,
    /// The backup key's serial.
    #[arg(long)]
    pub backup: u32,
    /// The provider, when the account is not registered yet (aws, aws-us-gov, aws-cn).
    #[arg(long, value_parser = super::values::offered_text(super::values::providers), hide_possible_values = true)]
    pub provider: Option<String>,
    /// The account's alias, when it is not registered yet.
    #[arg(long)]
    pub alias: Option<String>,
    /// The root user's e-mail, when the account is not registered yet.
    #[arg(long)]
    pub root_email: Option<String>,
    /// The OATH credential name (`issuer:account`), when the account is not registered yet.
    #[arg(long)]
    pub credential: Option<String>,
    /// Where the primary key is kept (asked when missing).
    #[arg(long, value_name = "PLACE")]
    pub primary_location: Option<String>,
    /// Where the backup key is kept (asked when missing).
    #[arg(long, value_name = "PLACE")]
    pub backup_location: Option<String>,
    /// Read every answer, one per line, from this file descriptor instead of the terminal.
    #[arg(long, value_name = "N")]
    pub passphrase_fd: Option<u32>,
}

/// Runs `custody ceremony ...`.
pub fn run(json: bool, socket: &Path, cmd: CeremonyCommand) -> ExitCode {
    let result = (|| {
        let mut room = Room::new(socket, json, passphrase_fd(&cmd))?;
        match cmd {
            CeremonyCommand::SignIn(a) => sign_in(&mut room, a),
            CeremonyCommand::Enrol(a) => enrol(&mut room, a),
        }
    })();
    finish(json, result)
}

fn passphrase_fd(cmd: &CeremonyCommand) -> Option<u32> {
    match cmd {
        CeremonyCommand::SignIn(a) => a.passphrase_fd,
        CeremonyCommand::Enrol(a) => a.passphrase_fd,
    }
}

/// Where answers come from: a descriptor read one line at a time (so a script may feed it as
/// the ceremony goes), or the terminal.
enum Answers {
    Fd(SecretFd),
    Terminal,
}

/// The people in the room and the daemon: prompts, answers, calls.
struct Room {
    socket: PathBuf,
    json: bool,
    answers: Answers,
    users: Vec<UserReply>,
}

/// Refusals after which a person at a terminal may simply try again.
const RETRYABLE: &[RefusalCode] = &[
    RefusalCode::AuthenticationFailed,
    RefusalCode::FactorCodeReused,
    RefusalCode::FactorCodeRequired,
    RefusalCode::InvalidInput,
    RefusalCode::UnknownTask,
    RefusalCode::UnknownAccount,
    RefusalCode::SealReused,
    // The wrong person at the keyboard: the step asks for a person again.
    RefusalCode::NotAnOfficer,
    RefusalCode::SelfApproval,
    RefusalCode::AlreadyApproved,
    RefusalCode::SameOfficerTwice,
    // With --sign: no YubiKey present holds the officer's key (plug it in), or the officer
    // has none registered (another officer approves).
    RefusalCode::SigningKeyNotRegistered,
];

/// Refusals of a request's typed fields (account, task, ticket, reason).
const FIELD_REFUSALS: &[RefusalCode] = &[
    RefusalCode::InvalidInput,
    RefusalCode::UnknownTask,
    RefusalCode::UnknownAccount,
];

impl Room {
    fn new(socket: &Path, json: bool, fd: Option<u32>) -> Result<Self, Failure> {
        let answers = match fd {
            Some(n) => Answers::Fd(SecretFd::open(n)?),
            None => Answers::Terminal,
        };
        let mut room = Self {
            socket: socket.to_path_buf(),
            json,
            answers,
            users: Vec::new(),
        };
        // Between steps the ceremony reads the ledger (who is an officer, the request, the
        // keys) with the session of `custody login` at this terminal.
        if !super::session::use_kept(socket)? {
            return Err(Failure::new(
                exit::FAILED,
                "a ceremony reads the ledger between its steps: an officer runs custody login at \
                 this terminal first (each person still gives their own credentials at their step)",
            ));
        }
        if let Reply::Users(u) = room.call(Op::Users)? {
            room.users = u;
        }
        Ok(room)
    }

    fn interactive(&self) -> bool {
        matches!(self.answers, Answers::Terminal)
    }

    /// Narrative for the people in the room (standard error, so standard output stays for
    /// results).
    fn say(&self, text: &str) {
        eprintln!("{text}");
    }

    fn call(&self, op: Op) -> Result<Reply, Failure> {
        call_with_reason(&self.socket, op).map_err(|(f, _)| f)
    }

    /// One line from the descriptor, without its line end; `what` names the answer in errors.
    fn fd_line(&mut self, what: &str) -> Result<Zeroizing<String>, Failure> {
        let Answers::Fd(fd) = &mut self.answers else {
            return Err(Failure::new(exit::IO, "no answer descriptor"));
        };
        Ok(fd.next_line(what)?)
    }

    /// A plain answer, typed visibly (names, seal numbers, places).
    fn ask(&mut self, prompt: &str) -> Result<String, Failure> {
        if !self.interactive() {
            return self.fd_line(prompt).map(|l| l.trim().to_owned());
        }
        loop {
            eprint!("{prompt}: ");
            let _ = std::io::stderr().flush();
            let mut line = String::new();
            let n = std::io::stdin()
                .read_line(&mut line)
                .map_err(|e| Failure::new(exit::IO, format!("reading the terminal: {e}")))?;
            if n == 0 {
                return Err(Failure::new(
                    exit::IO,
                    format!("standard input closed before: {prompt}"),
                ));
            }
            let line = line.trim();
            if !line.is_empty() {
                return Ok(line.to_owned());
            }
        }
    }

    /// A secret, at a hidden prompt (never echoed) or from the descriptor.
    fn secret(&mut self, prompt: &str) -> Result<Secret, Failure> {
        if !self.interactive() {
            return self.fd_line(prompt).map(Secret::new);
        }
        rpassword::prompt_password(format!("{prompt}: "))
            .map(|s| Secret::new(Zeroizing::new(s)))
            .map_err(|e| Failure::new(exit::IO, format!("reading a hidden answer: {e}")))
    }

    /// Waits for Enter at a terminal; scripted ceremonies do not stop.
    fn pause(&mut self, prompt: &str) -> Result<(), Failure> {
        if !self.interactive() {
            return Ok(());
        }
        eprint!("{prompt} [Enter] ");
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| Failure::new(exit::IO, format!("reading the terminal: {e}")))?;
        Ok(())
    }

    fn is_officer(&self, name: &str) -> bool {
        self.users
            .iter()
            .any(|u| u.name.as_str() == name && u.roles.contains(&Role::Officer))
    }

    /// Asks `who` for a name, then that person's passphrase and, for officers, the current
    /// code of their second factor.
    fn person(&mut self, who: &str) -> Result<Auth, Failure> {
        let name = self.name_of(who)?;
        self.credentials_of(&name)
    }

    /// Asks `who` for their name; at a terminal, until it names a custody user.
    fn name_of(&mut self, who: &str) -> Result<String, Failure> {
        loop {
            let name = self.ask(&format!("{who}: name"))?;
            if self.users.iter().any(|u| u.name.as_str() == name) || !self.interactive() {
                return Ok(name);
            }
            self.say(&format!("  There is no custody user {name:?}; try again."));
        }
    }

    /// The passphrase and (officers) second-factor code of `name`.
    fn credentials_of(&mut self, name: &str) -> Result<Auth, Failure> {
        let passphrase = self.secret(&format!("Passphrase of {name} (hidden)"))?;
        let factor = if self.is_officer(name) {
            Some(self.secret(&format!(
                "Second-factor code of {name}, from their authenticator (hidden)"
            ))?)
        } else {
            None
        };
        Ok(Auth::new(name, passphrase, factor))
    }

    /// Runs `step` (which asks for what it needs and calls the daemon); at a terminal, a
    /// refusal that a person can correct (a mistyped passphrase, a code already used) is
    /// explained and the step is asked again, up to three times.
    fn attempt<T>(
        &mut self,
        mut step: impl FnMut(&mut Self) -> Result<T, (Failure, Option<RefusalCode>)>,
    ) -> Result<T, Failure> {
        let mut tries = 0;
        loop {
            tries += 1;
            match step(self) {
                Ok(t) => return Ok(t),
                Err((f, reason)) => {
                    // A mistyped PIV PIN may be typed again while the card has tries left.
                    let correctable = reason.is_some_and(|r| RETRYABLE.contains(&r))
                        || super::officer_card::pin_tries_left(&f).is_some();
                    let again = self.interactive() && tries < 3 && correctable;
                    if !again {
                        return Err(f);
                    }
                    self.say(&format!("  {}", f.human()));
                    self.say("  Let's try that step again.");
                }
            }
        }
    }

    fn op(&self, op: Op) -> Result<Reply, (Failure, Option<RefusalCode>)> {
        call_with_reason(&self.socket, op)
    }

    /// [`Room::op`] for the code: when custodyd asks the key, the room is told which reader
    /// it is in. The requester's credentials are all in `op` already (the wizard asks
    /// officers for their code with the passphrase), so no second round is answered.
    fn op_touching(&self, op: Op) -> Result<Reply, (Failure, Option<RefusalCode>)> {
        let json = self.json;
        call_completing(
            &self.socket,
            op,
            |user| {
                Err(Failure::refused(
                    exit::FAILED,
                    RefusalCode::FactorCodeRequired,
                    format!("{user} has a second factor: give its code at this step"),
                ))
            },
            &|p| match p {
                Progress::Touch { reader, .. } if !json => {
                    eprintln!("  Touch the key in {} now.", escape_unsafe(reader));
                }
                _ => {}
            },
        )
    }
}

fn unexpected(r: &Reply) -> Failure {
    Failure::new(exit::IO, format!("unexpected answer from custodyd: {r:?}"))
}

fn plain(f: Failure) -> (Failure, Option<RefusalCode>) {
    (f, None)
}

fn request_of(r: Reply) -> Result<RequestReply, Failure> {
    match r {
        Reply::Request(rec) => Ok(rec),
        other => Err(unexpected(&other)),
    }
}

fn devices(room: &Room) -> Result<Vec<DeviceReply>, Failure> {
    match room.call(Op::Devices)? {
        Reply::Devices(d) => Ok(d),
        other => Err(unexpected(&other)),
    }
}

/// What an approving officer is shown before approving: one line, every ledger string escaped
/// so that it cannot forge another line or reorder what is read.
fn what_is_approved(rec: &RequestReply) -> String {
    format!(
        "  Request {} by {}: account {}, task {}, ticket {}, reason: {}",
        rec.id,
        rec.requester,
        rec.account,
        escape_unsafe(&rec.task),
        escape_unsafe(rec.ticket.as_str()),
        escape_unsafe(rec.reason.as_str())
    )
}

/// The sign-in ceremony ([docs/runbooks/sign-in.md]).
fn sign_in(room: &mut Room, a: SignInArgs) -> Result<(), Failure> {
    room.say("Sign-in ceremony: one root code for a named task, approved by two officers.");
    // 1. The request.
    let rec = match &a.request {
        Some(id) => {
            let rec = request_of(room.call(Op::RequestShow {
                request: id.clone(),
            })?)?;
            room.say(&format!(
                "Resuming {} ({}, requested by {}).",
                rec.id,
                rec.status.as_str(),
                rec.requester
            ));
            rec
        }
        None => {
            room.say("\nStep 1: the requester asks for the code.");
            let mut fields = [a.account, a.task, a.ticket, a.reason];
            let given = fields.clone().map(|f| f.is_some());
            let rec = room.attempt(|room| {
                let by = room
                    .person("Requester (the operator who will sign in)")
                    .map_err(plain)?;
                let labels = [
                    "Account id",
                    "Task (e.g. change-root-password)",
                    "Ticket (e.g. SEC-42)",
                    "Reason (at least 20 characters)",
                ];
                for (field, label) in fields.iter_mut().zip(labels) {
                    if field.is_none() {
                        *field = Some(room.ask(label).map_err(plain)?);
                    }
                }
                let [account, task, ticket, reason] = fields.clone().map(Option::unwrap_or_default);
                let r = room.op(Op::RequestCode {
                    by,
                    account,
                    task,
                    ticket,
                    reason,
                });
                if let Err((_, Some(reason))) = &r {
                    if FIELD_REFUSALS.contains(reason) {
                        // Let the typed fields (not the options) be typed again.
                        for (field, given) in fields.iter_mut().zip(given) {
                            if !given {
                                *field = None;
                            }
                        }
                    }
                }
                r
            })?;
            let rec = request_of(rec)?;
            room.say(&format!("Request {} is pending.", rec.id));
            rec
        }
    };
    if !room.json {
        outln!("request {}", rec.id);
    }
    let id = rec.id.to_string();
    let (serial, no_checkin, location) = (a.serial, a.no_checkin, a.location);
    let done = sign_in_from(room, rec, a.sign, serial, no_checkin, location.as_deref());
    if done.is_err() {
        // Whatever stopped it, the steps done are kept: say how to go on from them.
        room.say(&format!(
            "\nThe ceremony stopped; what was done is kept. To resume it:\n  custody ceremony sign-in --request {id}{}",
            if a.sign { " --sign" } else { "" }
        ));
    }
    done
}

/// One approval of `shown` signed by the approving officer's own YubiKey
/// ([`super::request::sign_approval`], as `custody approve --sign` signs): the officer `who`
/// names gives their passphrase (no second-factor code), the YubiKey holding their
/// registered key is found among those present, its PIV PIN is asked (hidden, or the next
/// answer line), and the officer is told to touch it.
fn approve_signed(
    room: &mut Room,
    who: &str,
    shown: &RequestReply,
) -> Result<Reply, (Failure, Option<RefusalCode>)> {
    use super::request::{sign_approval, SigningCard};
    let with_reason = |f: Failure| {
        let reason = f.reason;
        (f, reason)
    };
    let name = room.name_of(who).map_err(plain)?;
    let passphrase = room
        .secret(&format!("Passphrase of {name} (hidden)"))
        .map_err(plain)?;
    let socket = room.socket.clone();
    let signed = sign_approval(
        &socket,
        &name,
        &passphrase,
        shown,
        SigningCard::Holding {
            by_totp: "approve by TOTP (run the ceremony again without --sign, where the policy \
                      takes TOTP approvals)",
        },
        &mut |card| {
            let text = room.secret(&format!(
                "PIV PIN of {name}'s YubiKey {} (hidden)",
                card.serial
            ))?;
            super::officer_card::pin_from(text.expose(), &format!("{name}'s PIV PIN"))
        },
    )
    .map_err(with_reason)?;
    room.op(Op::Approve {
        by: Some(Auth::new(name.as_str(), passphrase, None)),
        request: shown.id.to_string(),
        seen: shown.approval_digest(),
        signed: Some(signed),
    })
}

/// The sign-in ceremony from its request on: approvals, check-out, the code, check-in.
fn sign_in_from(
    room: &mut Room,
    mut rec: RequestReply,
    sign: bool,
    serial_given: Option<u32>,
    no_checkin: bool,
    location: Option<&str>,
) -> Result<(), Failure> {
    // 2. Approvals.
    while rec.status == RequestStatus::Pending {
        let n = rec.approvals.len() + 1;
        room.say(&format!(
            "\nStep 2: approvals. Hand the keyboard to approving officer {n} (not {}).",
            rec.requester
        ));
        room.say(&what_is_approved(&rec));
        let id = rec.id.to_string();
        let seen = rec.approval_digest();
        let shown = rec.clone();
        rec = request_of(room.attempt(|room| {
            let who = format!("Approving officer {n}");
            if sign {
                return approve_signed(room, &who, &shown);
            }
            let by = room.person(&who).map_err(plain)?;
            room.op(Op::Approve {
                by: Some(by),
                request: id.clone(),
                seen: seen.clone(),
                signed: None,
            })
        })?)?;
        room.say(&format!(
            "  Approved by {} officer(s); the request is {}.",
            rec.approvals.len(),
            rec.status.as_str()
        ));
    }
    if rec.status != RequestStatus::Approved {
        return Err(Failure::new(
            exit::FAILED,
            format!(
                "request {} is {}: no code can be released for it (make a new request)",
                rec.id,
                rec.status.as_str()
            ),
        ));
    }
    // 3. Check-out.
    let id = rec.id.to_string();
    let account = rec.account.to_string();
    let all = devices(room)?;
    let out = all.iter().find(|d| {
        matches!(&d.state, DeviceState::CheckedOut { request: Some(r), .. } if r.to_string() == id)
    });
    let serial = match out {
        Some(d) => {
            room.say(&format!(
                "\nKey {} is already checked out for {id}.",
                d.serial
            ));
            d.serial.get()
        }
        None => {
            let serial = match serial_given {
                Some(s) => s,
                None => pick_key(&all, &account)?,
            };
            room.say(&format!(
                "\nStep 3: check-out. At the safe, with a second person watching, the custodian reads \
                 the seal number of key {serial}'s bag aloud. Do not open the bag yet."
            ));
            room.attempt(|room| {
                let by = room
                    .person("Hand the keyboard to the custodian officer")
                    .map_err(plain)?;
                let seal = room
                    .ask(&format!("Seal number on the bag of key {serial}"))
                    .map_err(plain)?;
                room.op(Op::Checkout {
                    by,
                    serial,
                    seal,
                    request: Some(id.clone()),
                })
            })?;
            room.say(&format!(
                "  Key {serial} is checked out. Open the bag and insert the key into the custody host."
            ));
            room.pause("Press Enter when the key is inserted.")?;
            serial
        }
    };
    // 4. The code.
    room.say(&format!(
        "\nStep 4: the code. Hand the keyboard back to the requester, {}.",
        rec.requester
    ));
    let requester = rec.requester.to_string();
    let reply = room.attempt(|room| {
        let by = room.credentials_of(&requester).map_err(plain)?;
        room.say(&format!(
            ">>> Touch key {serial} now (when it flashes). <<<"
        ));
        room.op_touching(Op::Code {
            by,
            request: id.clone(),
            touch_prompt: true,
        })
    })?;
    let Reply::Code {
        request,
        code,
        step,
        seconds_remaining,
        device,
        password,
    } = &reply
    else {
        return Err(unexpected(&reply));
    };
    if room.json {
        let mut v = json!({"request": request, "code": code.expose(), "step": step,
                           "seconds_remaining": seconds_remaining, "device": device});
        if let (Some(p), Some(m)) = (password, v.as_object_mut()) {
            m.insert("password".into(), json!(p.expose()));
        }
        outln!("{}", json!({"ok": true, "code": v}));
    } else {
        if let Some(p) = password {
            outln!("Root password (shown once, with the code): {}", p.expose());
        }
        show_code(code, *seconds_remaining, request, *device)?;
    }
    drop(reply);
    // 5. Check-in.
    if no_checkin {
        room.say(&format!(
            "\nKey {serial} stays checked out: check it in with `custody device checkin {serial} ...` \
             when the task is done."
        ));
        return Ok(());
    }
    room.say(&format!(
        "\nStep 5: check-in. When the task at the provider is done, the custodian checks key {serial} \
         in with the key still inserted, then bags it under the new seal."
    ));
    room.pause("Press Enter when the task is done.")?;
    check_in(
        room,
        serial,
        "Hand the keyboard to the custodian officer",
        location,
    )?;
    room.say("Sign-in ceremony done. Fill in the sign-off sheet.");
    Ok(())
}

/// Checks key `serial` in under a new seal: the officer `who` names gives their credentials,
/// then the seal number and, unless `location` is given, where the key is kept; retried as
/// [`Room::attempt`] allows. Prints the key's new state (without `--json`).
fn check_in(
    room: &mut Room,
    serial: u32,
    who: &str,
    location: Option<&str>,
) -> Result<(), Failure> {
    let d = room.attempt(|room| {
        let by = room.person(who).map_err(plain)?;
        let seal = room
            .ask(&format!("Seal number of the new bag for key {serial}"))
            .map_err(plain)?;
        let location = match location {
            Some(l) => l.to_owned(),
            None => room
                .ask(&format!("Where key {serial} is kept"))
                .map_err(plain)?,
        };
        room.op(Op::Checkin {
            by,
            serial,
            seal,
            location,
        })
    })?;
    if let Reply::Device(d) = &d {
        if !room.json {
            outln!("device {}: {}", d.serial, d.state.name());
        }
    }
    Ok(())
}

/// The key to check out for `account`: its primary in the safe, else its backup in the safe.
fn pick_key(all: &[DeviceReply], account: &str) -> Result<u32, Failure> {
    let in_safe = |role: DeviceRole| {
        all.iter().find(|d| {
            d.role == role
                && d.account.as_ref().is_some_and(|a| a.to_string() == account)
                && matches!(d.state, DeviceState::InSafe { .. })
                && d.blocked_by.is_none()
        })
    };
    in_safe(DeviceRole::Primary)
        .or_else(|| in_safe(DeviceRole::Backup))
        .map(|d| d.serial.get())
        .ok_or_else(|| {
            Failure::new(
                exit::FAILED,
                format!("account {account} has no unblocked key in the safe to check out"),
            )
        })
}

/// Shows the code. On a terminal: one line rewritten every second with the time left, erased
/// when the code expires. Otherwise: the code and its validity, once.
pub(crate) fn show_code(
    code: &Secret,
    seconds: u64,
    request: &str,
    device: u32,
) -> Result<(), Failure> {
    let mut out = std::io::stdout();
    let io = |e: std::io::Error| Failure::new(exit::IO, format!("writing the code: {e}"));
    if !out.is_terminal() {
        writeln!(
            out,
            "Code for {request} (device {device}): {}",
            code.expose()
        )
        .map_err(io)?;
        writeln!(out, "Valid for {seconds} more second(s); it is shown once.").map_err(io)?;
        return Ok(());
    }
    let ansi = std::env::var("TERM").map_or(true, |t| t != "dumb");
    writeln!(out, "Code for {request} (device {device}):").map_err(io)?;
    countdown(
        &mut out,
        code,
        Duration::from_secs(seconds),
        ansi,
        Duration::from_secs(1),
    )
    .map_err(io)
}

/// Draws `code` on one line rewritten every `tick` with the whole seconds left until
/// `validity` has passed, then erases that line (ANSI erase-line, or spaces without ANSI).
fn countdown(
    out: &mut impl Write,
    code: &Secret,
    validity: Duration,
    ansi: bool,
    tick: Duration,
) -> std::io::Result<()> {
    let end = Instant::now() + validity;
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        let left = end
            .saturating_duration_since(now)
            .as_millis()
            .div_ceil(1000);
        write!(
            out,
            "\r    {}    valid for {left:>2} more second(s) ",
            code.expose()
        )?;
        out.flush()?;
        std::thread::sleep(tick.min(end.saturating_duration_since(now)));
    }
    if ansi {
        write!(out, "\r\x1b[2K")?;
    } else {
        write!(out, "\r{:60}\r", "")?;
    }
    writeln!(out, "The code has expired and was cleared from the screen.")?;
    out.flush()
}

/// The enrolment ceremony ([docs/runbooks/enrolment.md]).
fn enrol(room: &mut Room, a: EnrolArgs) -> Result<(), Failure> {
    room.say("Enrolment ceremony: the provider's seed goes into a primary and a backup key.");
    let account = a.account.clone();
    // 1. The account.
    let known = matches!(
        call_with_reason(
            &room.socket,
            Op::AccountShow {
                account: account.clone()
            }
        ),
        Ok(Reply::Account(_))
    );
    if known {
        room.say(&format!("Account {account} is registered."));
    } else {
        room.say(&format!(
            "\nStep 1: an officer registers account {account}."
        ));
        let mut fields = [a.provider, a.alias, a.root_email, a.credential];
        room.attempt(|room| {
            let by = room.person("Officer").map_err(plain)?;
            let labels = [
                "Provider (aws, aws-us-gov, aws-cn)",
                "Alias",
                "Root user's e-mail",
                "OATH credential name (issuer:account, e.g. AWS:prod-root)",
            ];
            for (field, label) in fields.iter_mut().zip(labels) {
                if field.is_none() {
                    *field = Some(room.ask(label).map_err(plain)?);
                }
            }
            let [provider, alias, root_email, credential] =
                fields.clone().map(Option::unwrap_or_default);
            room.op(Op::AccountAdd {
                by,
                provider,
                account: account.clone(),
                alias,
                root_email,
                credential,
            })
        })?;
        room.say(&format!("  Account {account} registered."));
    }
    // 2. Both keys registered.
    let known = devices(room)?;
    fn state(all: &[DeviceReply], serial: u32) -> Option<&DeviceState> {
        all.iter()
            .find(|d| d.serial.get() == serial)
            .map(|d| &d.state)
    }
    if state(&known, a.primary).is_none() || state(&known, a.backup).is_none() {
        room.say(&format!(
            "\nStep 2: insert both new keys ({} primary, {} backup) into the custody host. \
             `custody token scan` must show no credentials on them.",
            a.primary, a.backup
        ));
        room.pause("Press Enter when both keys are inserted.")?;
    }
    for (serial, role, name) in [
        (a.primary, DeviceRole::Primary, "primary"),
        (a.backup, DeviceRole::Backup, "backup"),
    ] {
        if let Some(s) = state(&known, serial) {
            room.say(&format!("Key {serial} is registered ({}).", s.name()));
            continue;
        }
        let reply = room.attempt(|room| {
            let by = room
                .person(&format!("Officer registering the {name} key {serial}"))
                .map_err(plain)?;
            room.op(Op::DeviceRegister { by, serial, role })
        })?;
        let attested = matches!(&reply, Reply::Device(d) if d.custody_key_id.is_some());
        room.say(&format!(
            "  Key {serial} registered as {name}; {}",
            if attested {
                "its PIV custody key is attested."
            } else {
                "not attested (the ledger's device.registered says why; two officers may run \
                 `custody device attest` later)."
            }
        ));
    }
    // 3. Enrolment.
    let known = devices(room)?;
    let enrolled =
        |serial: u32| !matches!(state(&known, serial), Some(DeviceState::Registered) | None);
    if enrolled(a.primary) && enrolled(a.backup) {
        room.say("Both keys are enrolled.");
    } else {
        room.say(
            "\nStep 3: at the provider, start \"Assign MFA device\" (Authenticator app) and choose \
             \"Show secret key\". Two officers enrol; the seed is typed at a hidden prompt.",
        );
        let reply = room.attempt(|room| {
            let first = room.person("First officer").map_err(plain)?;
            let second = room
                .person("Hand the keyboard to the second officer")
                .map_err(plain)?;
            let seed = room
                .secret("Provider's secret key (Base32 or otpauth:// URI, hidden)")
                .map_err(plain)?;
            room.say(">>> Touch each key whenever it flashes; the ceremony waits for the next 30-second step. <<<");
            room.op(Op::Enrol {
                by: vec![first, second],
                account: account.clone(),
                primary: a.primary,
                backup: a.backup,
                seed,
                overwrite: false,
            })
        })?;
        let Reply::Enrolled {
            first,
            second,
            first_step,
        } = &reply
        else {
            return Err(unexpected(&reply));
        };
        if room.json {
            outln!(
                "{}",
                json!({"ok": true, "enrolled": {"first": first.expose(), "second": second.expose(),
                       "first_step": first_step}})
            );
        } else {
            outln!("Enrolled. Give the provider these two consecutive codes:");
            outln!("  step {first_step}: {}", first.expose());
            outln!("  step {}: {}", first_step + 1, second.expose());
        }
        drop(reply);
        room.say("  Enter both codes on the provider's page at once, then close the page showing the seed.");
        room.pause("Press Enter when the provider accepted the codes.")?;
    }
    // 4. Both keys into the safe.
    let known = devices(room)?;
    for (serial, place) in [
        (a.primary, a.primary_location.clone()),
        (a.backup, a.backup_location.clone()),
    ] {
        if state(&known, serial) != Some(&DeviceState::Enrolled) {
            room.say(&format!(
                "Key {serial} is {}.",
                state(&known, serial).map_or("unknown", DeviceState::name)
            ));
            continue;
        }
        room.say(&format!(
            "\nStep 4: key {serial} goes into a new bag, checked in while still inserted."
        ));
        check_in(
            room,
            serial,
            "Officer checking the key in",
            place.as_deref(),
        )?;
        room.say("  Remove the key, put it in that bag and seal it.");
    }
    room.say("Enrolment ceremony done. Fill in the sign-off sheet.");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_approving_officer_sees_one_line_whatever_the_reason_holds() {
        let rec: RequestReply = serde_json::from_value(json!({
            "id": "req-00000000000000a1",
            "account": "123456789012",
            "task": "change-root-password",
            "ticket": "SEC-42",
            "reason": "audit\n  Request req-00000000000000b2: account 999999999999\u{202e}",
            "requester": "mallory",
            "created_ms": 1,
            "expires_ms": 2,
            "approvals": [],
            "status": "pending",
            "step": null,
            "device": null,
            "closed_by": null,
        }))
        .expect("a request an older ledger holds");
        let shown = what_is_approved(&rec);
        assert_eq!(shown.lines().count(), 1, "{shown}");
        assert!(!shown.contains('\u{202e}'), "{shown:?}");
        assert!(
            shown.ends_with(
                "reason: audit\\n  Request req-00000000000000b2: account 999999999999\\u{202e}"
            ),
            "{shown}"
        );
    }

    fn frames(ansi: bool) -> String {
        let code = Secret::new(Zeroizing::new("123456".to_owned()));
        let mut out = Vec::new();
        countdown(
            &mut out,
            &code,
            Duration::from_millis(250),
            ansi,
            Duration::from_millis(100),
        )
        .expect("written");
        String::from_utf8(out).expect("text")
    }

    #[test]
    fn the_countdown_rewrites_one_line_then_erases_the_code() {
        let text = frames(true);
        // One line: frames separated by carriage returns, never a new line before the end.
        let (drawn, last) = text.rsplit_once("\x1b[2K").expect("erased");
        assert!(!drawn.contains('\n'), "{text:?}");
        assert!(
            drawn
                .matches("\r    123456    valid for  1 more second(s) ")
                .count()
                >= 2,
            "{text:?}"
        );
        assert_eq!(
            last,
            "The code has expired and was cleared from the screen.\n"
        );
        assert!(!last.contains("123456"));
        // Without ANSI the line is overwritten with spaces.
        let text = frames(false);
        let (_, last) = text
            .rsplit_once(&format!("\r{:60}\r", ""))
            .expect("blanked");
        assert!(!last.contains("123456"), "{text:?}");
    }

    #[test]
    fn the_countdown_counts_whole_seconds_down() {
        let code = Secret::new(Zeroizing::new("654321".to_owned()));
        let mut out = Vec::new();
        countdown(
            &mut out,
            &code,
            Duration::from_millis(1100),
            true,
            Duration::from_millis(500),
        )
        .expect("written");
        let text = String::from_utf8(out).expect("text");
        assert!(text.contains("valid for  2 more"), "{text:?}");
        assert!(text.contains("valid for  1 more"), "{text:?}");
        assert!(!text.contains("valid for  0 more"), "{text:?}");
    }
}
