//! The `custodyd` socket protocol: JSON Lines over a Unix stream socket, one request per line
//! and one response line per request.
//!
//! ```text
//! → {"v":1,"id":7,"op":"status"}
//! ← {"v":1,"id":7,"result":{"ok":{"status":{"sealed":true,...}}}}
//! ← {"v":1,"id":7,"result":{"err":{"code":"sealed","message":"..."}}}
//! ```
//!
//! Pure encode/decode, no I/O. Secrets carried in requests (passphrases, TOTP codes) are
//! [`Secret`]s: zeroized on drop, and their `Debug` shows nothing of them.

use std::fmt;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

pub use crate::custody::error::RefusalCode;
use crate::custody::records::approval_digest;
use crate::custody::{
    AccountId, AccountRecord, AccountStatus, Alias, Approval, AuditReport, DeviceRecord,
    DeviceRole, DeviceState, Email, IncidentId, IncidentKind, IncidentRecord, Provider, Reason,
    RequestId, RequestRecord, RequestStatus, Role, Serial, Terminal, TicketRef, UserName,
    UserRecord,
};

/// The protocol version this build speaks.
pub const VERSION: u32 = 1;

/// The largest request line accepted, newline included.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// A secret text carried in a request: a passphrase or a one-time code. Zeroized on drop;
/// `Debug` is redacted; there is no `Display`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wraps a secret.
    pub fn new(text: Zeroizing<String>) -> Self {
        Self(text)
    }

    /// The secret's text (for handing it to the layer that checks it).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Moves the secret out as a zeroizing string.
    pub fn into_inner(self) -> Zeroizing<String> {
        self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Secret;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Secret, E> {
                Ok(Secret(Zeroizing::new(v.to_owned())))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Secret, E> {
                Ok(Secret(Zeroizing::new(v)))
            }
        }
        d.deserialize_string(V)
    }
}

/// How a person authenticates in a request: name, passphrase and (officers) the current code
/// of their personal TOTP second factor. The daemon adds the connection's uid.
///
/// In one round: `passphrase` and, for a person with a second factor, `factor`. In two
/// rounds, so that nobody is asked for a factor they lack: first `passphrase` alone; a right
/// passphrase of a person with a second factor is refused `factor_code_required` with a
/// `continuation`; the same request then goes again with `continuation` and `factor` and no
/// passphrase.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    /// The user's name.
    pub user: String,
    /// Their passphrase (absent in a second round).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passphrase: Option<Secret>,
    /// Officers: their second-factor code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factor: Option<Secret>,
    /// A second round: the continuation a first round was answered with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continuation: Option<Secret>,
    /// An officer of a two-officer operation: a signature by their registered YubiKey over
    /// the operation's digest, in the place of `factor` (with `passphrase`); see
    /// [`Op::PresenceChallenge`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed: Option<SignedApproval>,
}

impl Auth {
    /// A first round: the passphrase, and the code when it is already known.
    pub fn new(user: impl Into<String>, passphrase: Secret, factor: Option<Secret>) -> Self {
        Self {
            user: user.into(),
            passphrase: Some(passphrase),
            factor,
            continuation: None,
            signed: None,
        }
    }
}

/// One request line.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// Protocol version; must be [`VERSION`].
    pub v: u32,
    /// Chosen by the client, echoed in the response.
    pub id: u64,
    /// The ledger id (hex) the client expects to talk to; when present and not this daemon's,
    /// the request is refused `wrong_ledger` before anything else is looked at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ledger: Option<String>,
    /// What to do.
    pub op: Op,
    /// The caller's session token (from [`Op::Login`]): how reads and a person's own low-risk
    /// operations are authenticated. Absent: the request is anonymous, and only `status`,
    /// the unseal and operations carrying their own `by` credentials are served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<Secret>,
}

/// The operations a client may ask for. Externally tagged (`"status"`,
/// `{"unseal":{"officer":..,"passphrase":..}}`) so that secrets are read straight into their
/// zeroizing carriers, never into an intermediate buffer.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum Op {
    /// Whether the daemon is sealed, unseal progress, ledger head.
    Status,
    /// One officer's share of the unseal: their keyring name and passphrase.
    Unseal {
        /// The officer's name in the keyring.
        officer: String,
        /// The officer's passphrase.
        passphrase: Secret,
    },
    /// Forget the unseal shares offered so far without unsealing: a keyring officer, proving
    /// it with their keyring passphrase (checked against their own share).
    UnsealReset {
        /// The officer (their name in the keyring).
        officer: String,
        /// Their keyring (unseal) passphrase.
        passphrase: Secret,
    },
    /// Seal: an authenticated officer records the event, the ledger is closed and its keys
    /// zeroized.
    Seal {
        /// The officer (passphrase and second factor, at this moment); named in the event.
        by: Auth,
    },
    /// Sign a checkpoint over the current head.
    Checkpoint,
    /// Export the whole ledger (JSON Lines with a signed header and closing checkpoint); the
    /// export travels in the answer and the client writes it where it wants.
    Export,
    /// Enrol a genesis officer (named in the keyring) as a custody user, once; answers their
    /// second-factor seed, shown this one time. The officer proves who they are with their
    /// keyring (unseal) passphrase.
    BootstrapOfficer {
        /// The officer.
        user: String,
        /// Their keyring (unseal) passphrase, checked against their own share.
        keyring_passphrase: Secret,
        /// Their new custody passphrase.
        passphrase: Secret,
    },
    /// Add a user: one officer for operators and auditors, two for an officer.
    UserAdd {
        /// The approving officer(s).
        by: Vec<Auth>,
        /// The new user's name.
        name: String,
        /// Roles: officer, operator, auditor.
        #[serde(deserialize_with = "field::roles")]
        roles: Vec<Role>,
        /// The OS uid the user must connect as.
        #[serde(default)]
        uid: Option<u32>,
        /// Their initial passphrase.
        passphrase: Secret,
    },
    /// List users.
    Users,
    /// Register an account (one officer).
    AccountAdd {
        /// The officer.
        by: Auth,
        /// Provider (aws, aws-us-gov, aws-cn).
        provider: String,
        /// The provider's account id.
        account: String,
        /// A friendly alias.
        alias: String,
        /// The root user's e-mail.
        root_email: String,
        /// The OATH credential name on its devices (`issuer:account`).
        credential: String,
    },
    /// List accounts.
    Accounts,
    /// List devices.
    Devices,
    /// Ask for one code for a root task on an account.
    RequestCode {
        /// The requester.
        by: Auth,
        /// The account id.
        account: String,
        /// The root task's catalogue id.
        task: String,
        /// The ticket reference.
        ticket: String,
        /// Why.
        reason: String,
    },
    /// List requests.
    Requests,
    /// An officer approves a request.
    Approve {
        /// The officer (passphrase and second factor, at this moment); absent: the request's
        /// session, which must have been opened within the last minute (the approval is still
        /// authenticated at the moment it is given).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<Auth>,
        /// The request id.
        request: String,
        /// The digest of the request as the officer was shown it
        /// ([`RequestReply::approval_digest`]: id, account, task, ticket, reason, requester);
        /// refused `approval_mismatch` when the ledger's request differs.
        seen: String,
        /// A signature by the officer's registered YubiKey instead of the second-factor code
        /// (`by` then carries the passphrase and no `factor`); see [`Op::ApprovalChallenge`].
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signed: Option<SignedApproval>,
    },
    /// An officer asks for a single-use nonce to approve `request` by signature. `by`: the
    /// officer's passphrase (no second-factor code). Answered [`Reply::Challenge`].
    ApprovalChallenge {
        /// The officer (passphrase only).
        by: Auth,
        /// The request id.
        request: String,
    },
    /// An officer asks for a single-use nonce to prove presence at one two-officer operation
    /// by signature: `digest` is the operation's ([`Op::intent`]). `by`: the officer's
    /// passphrase (no second-factor code). Answered [`Reply::PresenceChallenge`].
    PresenceChallenge {
        /// The officer (passphrase only).
        by: Auth,
        /// The digest of the operation (64 lowercase hex digits).
        digest: String,
    },
    /// Two officers register the first one's approval key (PIV slot 9c of their own YubiKey).
    OfficerKeyRegister {
        /// The officer whose key it is, then the witness (passphrase and second factor each).
        by: Vec<Auth>,
        /// The serial of the officer's YubiKey.
        serial: u32,
        /// The public key the card answered (SubjectPublicKeyInfo, DER, base64).
        spki: String,
        /// ATTEST's certificate for slot 9c (DER, base64).
        slot_certificate: String,
        /// The F9 attestation certificate (DER, base64).
        device_certificate: String,
    },
    /// Two officers remove the first one's approval key.
    OfficerKeyRemove {
        /// The officer whose key it is, then the witness.
        by: Vec<Auth>,
    },
    /// An officer denies a request.
    Deny {
        /// The officer.
        by: Auth,
        /// The request id.
        request: String,
        /// Why.
        note: String,
    },
    /// The requester cancels their request.
    Cancel {
        /// The requester; absent: the request's session (cancelling is low-risk, so a session
        /// serves it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<Auth>,
        /// The request id.
        request: String,
    },
    /// List incidents.
    Incidents,
    /// Register a device presented now (one officer).
    DeviceRegister {
        /// The officer.
        by: Auth,
        /// The device's serial.
        serial: u32,
        /// primary or backup.
        #[serde(deserialize_with = "field::device_role")]
        role: DeviceRole,
    },
    /// Enrol an account's primary and backup devices with the provider's seed (two officers).
    Enrol {
        /// The two officers.
        by: Vec<Auth>,
        /// The account id.
        account: String,
        /// The primary device's serial.
        primary: u32,
        /// The backup device's serial.
        backup: u32,
        /// The provider's seed: Base32 or an `otpauth://` URI.
        seed: Secret,
        /// Overwrite an existing credential of the same name.
        #[serde(default)]
        overwrite: bool,
    },
    /// Take a device out of its sealed bag (one officer); the seal must match.
    Checkout {
        /// The officer.
        by: Auth,
        /// The device's serial.
        serial: u32,
        /// The seal number on the bag.
        seal: String,
        /// The request it is taken out for.
        #[serde(default)]
        request: Option<String>,
    },
    /// Seal a device into a new bag and put it in the safe (one officer).
    Checkin {
        /// The officer.
        by: Auth,
        /// The device's serial.
        serial: u32,
        /// The new bag's seal number.
        seal: String,
        /// Where it is kept.
        location: String,
    },
    /// Suspend or reinstate a user (two officers).
    UserSetActive {
        /// The two officers.
        by: Vec<Auth>,
        /// The user.
        name: String,
        /// false: suspend; true: reinstate.
        active: bool,
    },
    /// Clear a user's failed authentications and the daemon's waits on them (two officers,
    /// neither of them the user).
    UserUnlock {
        /// The two officers.
        by: Vec<Auth>,
        /// The user.
        name: String,
    },
    /// Acknowledge an incident (two officers).
    IncidentAck {
        /// The two officers.
        by: Vec<Auth>,
        /// The incident id.
        incident: String,
        /// What was found or done.
        note: String,
    },
    /// Put a device in a terminal state: retired, lost or destroyed (two officers). Retiring a
    /// device locked with an OATH access key clears the key from its card, which must be in an
    /// allowed reader.
    DeviceSetTerminal {
        /// The two officers.
        by: Vec<Auth>,
        /// The device's serial.
        serial: u32,
        /// retired, lost or destroyed.
        #[serde(deserialize_with = "field::terminal")]
        to: Terminal,
    },
    /// Lock a device enrolled without an OATH access key (two officers): a new access key is
    /// sealed in the ledger and set on its card, which must be out of its bag in an allowed
    /// reader.
    DeviceLock {
        /// The two officers.
        by: Vec<Auth>,
        /// The device's serial.
        serial: u32,
    },
    /// Give a device an attested PIV custody key (two officers): its card, in an allowed
    /// reader, generates a key in slot 9e whose attestation is verified against the daemon's
    /// trust anchors; a new PIV management key is sealed in the ledger first.
    DeviceAttest {
        /// The two officers.
        by: Vec<Auth>,
        /// The device's serial.
        serial: u32,
    },
    /// The requester receives the one code of an approved request.
    Code {
        /// The requester.
        by: Auth,
        /// The request id.
        request: String,
        /// Whether to be told, before the answer, when the key is asked and must be touched
        /// ([`Progress::Touch`], a line of its own with the request's id).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        touch_prompt: bool,
    },
    /// One request, by id.
    RequestShow {
        /// The request id.
        request: String,
    },
    /// One account, by id.
    AccountShow {
        /// The account id.
        account: String,
    },
    /// One device, by serial.
    DeviceShow {
        /// The device's serial.
        serial: u32,
    },
    /// Replace a user's roles (two officers). Nobody becomes an officer this way.
    UserSetRoles {
        /// The two officers.
        by: Vec<Auth>,
        /// The user.
        name: String,
        /// The new roles: operator, auditor (officer only if they already are one).
        #[serde(deserialize_with = "field::roles")]
        roles: Vec<Role>,
    },
    /// Change an account's status (two officers): active, root_credentials_removed or closed.
    /// Closing it retires its devices; a closed account changes no more.
    AccountSetStatus {
        /// The two officers.
        by: Vec<Auth>,
        /// The account id.
        account: String,
        /// The new status.
        #[serde(deserialize_with = "field::account_status")]
        status: AccountStatus,
    },
    /// Store an account's root password, sealed (two officers): the one given, or with
    /// `generate` one custodyd generates and answers once.
    AccountSetPassword {
        /// The two officers.
        by: Vec<Auth>,
        /// The account id.
        account: String,
        /// The password (absent with `generate`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password: Option<Secret>,
        /// Generate one instead.
        #[serde(default)]
        generate: bool,
    },
    /// Inventory audit (one officer): every device not in a terminal state must be among
    /// `presented`; each presented one is reconciled and its seal compared. Mismatches and
    /// missing devices open incidents.
    Inventory {
        /// The officer.
        by: Auth,
        /// The devices presented.
        presented: Vec<PresentedDevice>,
    },
    /// Release custody of an account (two officers): its devices are handed over and the
    /// answer carries a signed export of the account's history (as [`Reply::Export`]).
    Release {
        /// The two officers.
        by: Vec<Auth>,
        /// The account id.
        account: String,
    },
    /// Bind a user to the OS uid they must connect as, or move their binding (two officers,
    /// neither of them the user). Genesis officers get their uid this way.
    UserBindUid {
        /// The two officers.
        by: Vec<Auth>,
        /// The user.
        name: String,
        /// The OS uid.
        uid: u32,
    },
    /// Open a session: the person authenticates once (passphrase, and for officers their
    /// second-factor code) and gets a token for reads and their own low-risk operations,
    /// bound to them and to the connection's uid.
    Login {
        /// The person.
        by: Auth,
    },
    /// Revoke the request's session.
    Logout,
    /// The request's session: who it is for and when it ends.
    Whoami,
}

/// A signed approval's proof ([`Op::Approve`] `signed`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedApproval {
    /// The id of the key that signed.
    pub key_id: String,
    /// The nonce of [`Reply::Challenge`].
    pub nonce: String,
    /// The DER ECDSA P-256 signature, base64.
    pub signature: String,
}

/// A device presented at an inventory audit.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresentedDevice {
    /// Its serial.
    pub serial: u32,
    /// The seal number on its bag, when it is in one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seal: Option<String>,
}

impl Op {
    /// The one person an operation authenticates with its own `by` (not a pair, not a
    /// session): where a second round puts the continuation and the second-factor code.
    pub fn person_mut(&mut self) -> Option<&mut Auth> {
        match self {
            Op::Seal { by }
            | Op::AccountAdd { by, .. }
            | Op::RequestCode { by, .. }
            | Op::Deny { by, .. }
            | Op::DeviceRegister { by, .. }
            | Op::Checkout { by, .. }
            | Op::Checkin { by, .. }
            | Op::Code { by, .. }
            | Op::Inventory { by, .. }
            | Op::Login { by }
            | Op::ApprovalChallenge { by, .. }
            | Op::PresenceChallenge { by, .. } => Some(by),
            Op::Approve { by, .. } | Op::Cancel { by, .. } => by.as_mut(),
            _ => None,
        }
    }

    /// The operation's name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Status => "status",
            Op::Unseal { .. } => "unseal",
            Op::UnsealReset { .. } => "unseal_reset",
            Op::Seal { .. } => "seal",
            Op::Checkpoint => "checkpoint",
            Op::Export => "export",
            Op::BootstrapOfficer { .. } => "bootstrap_officer",
            Op::UserAdd { .. } => "user_add",
            Op::Users => "users",
            Op::AccountAdd { .. } => "account_add",
            Op::Accounts => "accounts",
            Op::Devices => "devices",
            Op::RequestCode { .. } => "request_code",
            Op::Requests => "requests",
            Op::Approve { .. } => "approve",
            Op::Deny { .. } => "deny",
            Op::Cancel { .. } => "cancel",
            Op::Incidents => "incidents",
            Op::DeviceRegister { .. } => "device_register",
            Op::Enrol { .. } => "enrol",
            Op::Checkout { .. } => "checkout",
            Op::Checkin { .. } => "checkin",
            Op::Code { .. } => "code",
            Op::UserSetActive { .. } => "user_set_active",
            Op::UserUnlock { .. } => "user_unlock",
            Op::IncidentAck { .. } => "incident_ack",
            Op::DeviceSetTerminal { .. } => "device_set_terminal",
            Op::DeviceLock { .. } => "device_lock",
            Op::DeviceAttest { .. } => "device_attest",
            Op::ApprovalChallenge { .. } => "approval_challenge",
            Op::PresenceChallenge { .. } => "presence_challenge",
            Op::OfficerKeyRegister { .. } => "officer_key_register",
            Op::OfficerKeyRemove { .. } => "officer_key_remove",
            Op::RequestShow { .. } => "request_show",
            Op::AccountShow { .. } => "account_show",
            Op::DeviceShow { .. } => "device_show",
            Op::UserSetRoles { .. } => "user_set_roles",
            Op::AccountSetStatus { .. } => "account_set_status",
            Op::AccountSetPassword { .. } => "account_set_password",
            Op::Release { .. } => "release",
            Op::Inventory { .. } => "inventory",
            Op::UserBindUid { .. } => "user_bind_uid",
            Op::Login { .. } => "login",
            Op::Logout => "logout",
            Op::Whoami => "whoami",
        }
    }
}

/// One response line.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Response {
    /// Protocol version of the answer.
    pub v: u32,
    /// The request's id (0 when the request could not be read far enough to know it).
    pub id: u64,
    /// The answer.
    pub result: Outcome,
}

impl Response {
    /// A successful answer.
    pub fn ok(id: u64, reply: Reply) -> Self {
        Self {
            v: VERSION,
            id,
            result: Outcome::Ok(Box::new(reply)),
        }
    }

    /// A refusal or failure.
    pub fn err(id: u64, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            v: VERSION,
            id,
            result: Outcome::Err(ErrorBody {
                code,
                reason: None,
                message: message.into(),
                continuation: None,
            }),
        }
    }

    /// A line that comes before the answer, telling the client what the operation waits for.
    pub fn progress(id: u64, progress: Progress) -> Self {
        Self {
            v: VERSION,
            id,
            result: Outcome::Progress(progress),
        }
    }

    /// Encodes the response as one line, newline included.
    pub fn to_line(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec(self).unwrap_or_else(|_| {
            // Serializing these types cannot fail (no maps with non-string keys, no custom
            // serializers that error); keep a well-formed line even so.
            br#"{"v":1,"id":0,"result":{"err":{"code":"internal","message":"encoding failed"}}}"#
                .to_vec()
        });
        out.push(b'\n');
        out
    }
}

/// Success or failure of a request, or (before either, when the request asked for it) what the
/// operation is waiting for.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Done.
    Ok(Box<Reply>),
    /// Refused or failed.
    Err(ErrorBody),
    /// Not done yet: the answer follows on a later line.
    Progress(Progress),
}

/// What a long operation tells its client while it runs (only when the request asked for it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum Progress {
    /// custodyd is asking the device for the code now; it flashes until it is touched.
    Touch {
        /// The device.
        serial: u32,
        /// The PC/SC reader custodyd opened it in.
        reader: String,
        /// How long custodyd waits for the touch.
        timeout_secs: u64,
    },
}

/// Why a request was refused or failed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    /// A stable machine-readable code.
    pub code: ErrorCode,
    /// The refusal's own code when the domain or the daemon's checks refused
    /// (`self_approval`, `unknown_account`, `authentication_required`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<RefusalCode>,
    /// A human explanation (never contains a secret).
    pub message: String,
    /// With reason `factor_code_required` only: the single-use continuation (64 hex digits)
    /// the second round sends, as [`Auth::continuation`], with the second-factor code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continuation: Option<Secret>,
}

/// The kind of a refusal or failure, as the `code` of an answer on the wire (a refusal of
/// the domain or of the daemon's own checks also carries its [`RefusalCode`] as the `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The line is not a valid request (bad JSON, unknown op, missing field).
    BadRequest,
    /// The line exceeds [`MAX_REQUEST_BYTES`].
    TooLarge,
    /// The request's `v` is not one this daemon speaks.
    UnsupportedVersion,
    /// Too many connections; try again.
    Busy,
    /// The daemon is shutting down.
    ShuttingDown,
    /// The operation needs an unsealed ledger.
    Sealed,
    /// The ledger is already unsealed.
    AlreadyUnsealed,
    /// The officer is not in the keyring, or already offered a share.
    UnknownOfficer,
    /// The quorum's passphrases did not unseal the ledger.
    UnsealFailed,
    /// The peer may not do this (wrong OS user for the named person, wrong role, ...).
    Forbidden,
    /// The thing named does not exist.
    NotFound,
    /// The request is understood but refused by policy or state.
    Refused,
    /// A card, reader or pcscd could not be used.
    Token,
    /// The ledger could not be read or written.
    Ledger,
    /// A file could not be written.
    Io,
    /// Something unexpected inside the daemon.
    Internal,
    /// The request named a ledger id that is not this daemon's ledger.
    WrongLedger,
    /// A code this build does not know (from a newer daemon).
    #[serde(other)]
    Unrecognized,
}

impl ErrorCode {
    /// The code a refusal is answered with.
    pub fn of(refusal: RefusalCode) -> Self {
        use RefusalCode as R;
        match refusal {
            R::InvalidInput | R::UnknownTask | R::BadSeed => Self::BadRequest,
            R::UnknownUser
            | R::UnknownRequest
            | R::UnknownAccount
            | R::UnknownDevice
            | R::UnknownIncident => Self::NotFound,
            R::UserExists
            | R::ApprovalMismatch
            | R::ApprovalSignatureInvalid
            | R::ApprovalNonceUnknown
            | R::ApprovalNoncesExhausted
            | R::SigningKeyNotRegistered
            | R::ApprovalProofRequired
            | R::SigningKeyExists
            | R::SigningKeyPolicy
            | R::AlreadyApproved
            | R::RequestAlreadyApproved
            | R::RequestExpired
            | R::RequestClosed
            | R::ApprovalExpired
            | R::RequestNotApproved
            | R::AlreadyReleased
            | R::AccountExists
            | R::AccountNotActive
            | R::DeviceExists
            | R::DeviceState
            | R::WrongDevice
            | R::DeviceMismatch
            | R::AttestationUntrusted
            | R::AttestationSerialMismatch
            | R::AttestationUnsupported
            | R::DeviceNotCheckedOut
            | R::SealMismatch
            | R::SealReused
            | R::DeviceBlocked
            | R::DeviceUnlocked
            | R::DeviceUnattested
            | R::IncidentClosed
            | R::CredentialExists
            | R::DevicesDisagree
            | R::ClockSkew
            | R::TimeWitnessUnavailable
            | R::Crypto
            | R::ExportFailed
            | R::Unrecognized => Self::Refused,
            R::AuthenticationFailed
            | R::FactorCodeReused
            | R::FactorCodeRequired
            | R::WrongKeyringPassphrase
            | R::Locked
            | R::Suspended
            | R::WrongUid
            | R::SessionExpired
            | R::NotAnOfficer
            | R::RoleRequired
            | R::SameOfficerTwice
            | R::ProofNotFresh
            | R::SubjectIsApprover
            | R::SelfApproval
            | R::NotTheRequester
            | R::AuthenticationRequired
            | R::Throttled
            | R::SessionUnknown
            | R::ContinuationInvalid
            | R::SessionWrongUid => Self::Forbidden,
            R::DeviceUnavailable | R::TokenError | R::TouchTimeout => Self::Token,
            R::LedgerUnavailable | R::CorruptRecord => Self::Ledger,
            R::NoRandomness => Self::Internal,
        }
    }

    /// The code's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::Busy => "busy",
            ErrorCode::ShuttingDown => "shutting_down",
            ErrorCode::Sealed => "sealed",
            ErrorCode::AlreadyUnsealed => "already_unsealed",
            ErrorCode::UnknownOfficer => "unknown_officer",
            ErrorCode::UnsealFailed => "unseal_failed",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Refused => "refused",
            ErrorCode::Token => "token",
            ErrorCode::Ledger => "ledger",
            ErrorCode::Io => "io",
            ErrorCode::Internal => "internal",
            ErrorCode::WrongLedger => "wrong_ledger",
            ErrorCode::Unrecognized => "unrecognized",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Successful answers (externally tagged, like [`Op`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Reply {
    /// Answer to [`Op::Status`].
    Status(StatusReply),
    /// Answer to [`Op::Unseal`] and [`Op::UnsealReset`].
    Unseal(UnsealProgress),
    /// Answer to [`Op::Seal`].
    Sealed {
        /// The sequence number of the seal event.
        seq: u64,
    },
    /// Answer to [`Op::Checkpoint`].
    Checkpoint {
        /// The sequence number the checkpoint covers.
        seq: u64,
        /// The head hash (hex).
        head: String,
        /// The checkpoint public key (hex).
        public_key: String,
    },
    /// Answer to [`Op::Export`] and [`Op::Release`].
    Export {
        /// Events in the export.
        events: u64,
        /// The sequence number of the closing checkpoint.
        seq: u64,
        /// The checkpoint public key (hex) to verify it with.
        public_key: String,
        /// The export itself (JSON Lines).
        content: String,
    },
    /// A new officer's second factor, shown this one time.
    Factor {
        /// The officer.
        user: String,
        /// The `otpauth://` URI to load into their authenticator.
        uri: Secret,
        /// The seed in Base32.
        base32: Secret,
    },
    /// One user.
    User(UserReply),
    /// Users.
    Users(Vec<UserReply>),
    /// One account.
    Account(AccountReply),
    /// Accounts.
    Accounts(Vec<AccountReply>),
    /// Devices.
    Devices(Vec<DeviceReply>),
    /// One request.
    Request(RequestReply),
    /// Requests.
    Requests(Vec<RequestReply>),
    /// Incidents.
    Incidents(Vec<IncidentReply>),
    /// One device.
    Device(DeviceReply),
    /// One incident.
    Incident(IncidentReply),
    /// Answer to [`Op::Inventory`].
    Audit(AuditReport),
    /// Two consecutive codes for the provider's confirmation of an enrolment.
    Enrolled {
        /// Code of `first_step`.
        first: Secret,
        /// Code of `first_step + 1`.
        second: Secret,
        /// The first TOTP step.
        first_step: u64,
    },
    /// Answer to [`Op::Login`] and [`Op::Whoami`].
    Session(SessionReply),
    /// Answer to [`Op::ApprovalChallenge`].
    Challenge {
        /// The request.
        request: String,
        /// The officer it was issued to.
        officer: String,
        /// The officer's registered key, which must sign.
        key_id: String,
        /// The nonce (64 lowercase hex digits), used once.
        nonce: String,
        /// When it stops being accepted (ms since the epoch).
        expires_ms: i64,
    },
    /// Answer to [`Op::PresenceChallenge`].
    PresenceChallenge {
        /// The officer it was issued to.
        officer: String,
        /// The digest of the operation it is for.
        digest: String,
        /// The officer's registered key, which must sign.
        key_id: String,
        /// The nonce (64 lowercase hex digits), used once.
        nonce: String,
        /// When it stops being accepted (ms since the epoch).
        expires_ms: i64,
    },
    /// Answer to [`Op::OfficerKeyRegister`] and [`Op::OfficerKeyRemove`].
    OfficerKey {
        /// The officer.
        officer: String,
        /// The key's id.
        key_id: String,
        /// Whether the key is now registered (false: removed).
        registered: bool,
    },
    /// Answer to [`Op::Logout`].
    LoggedOut {
        /// The person whose session ended.
        user: String,
    },
    /// The released code, shown once.
    Code {
        /// The request.
        request: String,
        /// The code.
        code: Secret,
        /// The TOTP step it is for.
        step: u64,
        /// Seconds until the step ends.
        seconds_remaining: u64,
        /// The device that computed it.
        device: u32,
        /// The root user's console password, when the request's task needs it and the ledger
        /// holds one: shown once, with the code.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password: Option<Secret>,
    },
    /// Answer to [`Op::AccountSetPassword`]: the account, and the generated password (shown
    /// once) when custodyd generated it.
    PasswordSet {
        /// The account.
        account: AccountReply,
        /// The generated password.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password: Option<Secret>,
    },
}

/// Answers built from the domain's records, one for each; a reply carries what a client is
/// shown of a record, and a change to what the ledger stores does not change the answer.
pub fn replies<R, T: From<R>>(records: Vec<R>) -> Vec<T> {
    records.into_iter().map(T::from).collect()
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A user, as answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserReply {
    /// The name.
    pub name: UserName,
    /// Roles held (sorted, at least one).
    pub roles: Vec<Role>,
    /// The OS uid the user must connect as, if bound.
    pub uid: Option<u32>,
    /// False once suspended.
    pub active: bool,
    /// Failed authentications in a row.
    pub failed_attempts: u32,
    /// Locked until this time (ms since the epoch).
    pub locked_until_ms: Option<i64>,
    /// The last second-factor time step accepted.
    pub last_factor_step: Option<u64>,
    /// How many times the user has been suspended (absent: never).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub suspensions: u32,
    /// The id of the officer's registered approval key (SHA-256 hex of its
    /// SubjectPublicKeyInfo), in the `users` listing; absent when none is registered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_key: Option<String>,
}

impl From<UserRecord> for UserReply {
    fn from(r: UserRecord) -> Self {
        Self {
            name: r.name,
            roles: r.roles,
            uid: r.uid,
            active: r.active,
            failed_attempts: r.failed_attempts,
            locked_until_ms: r.locked_until_ms,
            last_factor_step: r.last_factor_step,
            suspensions: r.suspensions,
            approval_key: None,
        }
    }
}

/// An account, as answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountReply {
    /// The provider.
    pub provider: Provider,
    /// The account id.
    pub account: AccountId,
    /// A human name.
    pub alias: Alias,
    /// The root user's e-mail.
    pub root_email: Email,
    /// The OATH credential name on its devices (`issuer:account`).
    pub credential: String,
    /// Status.
    pub status: AccountStatus,
    /// The last TOTP step a code was released for.
    pub last_release_step: Option<u64>,
    /// True once the ledger holds the root user's console password (sealed).
    #[serde(default, skip_serializing_if = "is_false")]
    pub root_password: bool,
    /// True after a release handed the root password out, until a new one is set.
    #[serde(default, skip_serializing_if = "is_false")]
    pub password_rotation_due: bool,
}

impl From<AccountRecord> for AccountReply {
    fn from(r: AccountRecord) -> Self {
        Self {
            provider: r.provider,
            account: r.account,
            alias: r.alias,
            root_email: r.root_email,
            credential: r.credential,
            status: r.status,
            last_release_step: r.last_release_step,
            root_password: r.root_password,
            password_rotation_due: r.password_rotation_due,
        }
    }
}

/// A device, as answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceReply {
    /// Serial.
    pub serial: Serial,
    /// Firmware `X.Y.Z`, as read at registration.
    pub firmware: String,
    /// OATH device id, as read at registration (`oath_device_id`, the name `custody token
    /// scan` gives it too; `device_id` is still read).
    #[serde(rename = "oath_device_id", alias = "device_id")]
    pub device_id: String,
    /// Primary or backup.
    pub role: DeviceRole,
    /// The account it holds the credential of.
    pub account: Option<AccountId>,
    /// Its state.
    pub state: DeviceState,
    /// An open incident that blocks it.
    pub blocked_by: Option<IncidentId>,
    /// True when enrolment locked its OATH applet with an access key only the ledger holds
    /// (absent: not locked, a device enrolled before access keys existed or not enrolled yet).
    #[serde(default, skip_serializing_if = "is_false")]
    pub oath_access_key: bool,
    /// The key id (SHA-256 of the public key, hex) of its attested PIV custody key, which
    /// every use challenges (absent: not attested).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custody_key_id: Option<String>,
}

impl From<DeviceRecord> for DeviceReply {
    fn from(r: DeviceRecord) -> Self {
        Self {
            serial: r.serial,
            firmware: r.firmware,
            device_id: r.device_id,
            role: r.role,
            account: r.account,
            state: r.state,
            blocked_by: r.blocked_by,
            oath_access_key: r.oath_access_key,
            custody_key_id: r.custody_key.map(|k| k.key_id),
        }
    }
}

/// One officer's approval, as answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalReply {
    /// The officer.
    pub officer: UserName,
    /// When (ms since the epoch).
    pub at_ms: i64,
    /// The officer's suspension count when they approved (absent: 0).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub suspensions: u32,
}

impl From<Approval> for ApprovalReply {
    fn from(a: Approval) -> Self {
        Self {
            officer: a.officer,
            at_ms: a.at_ms,
            suspensions: a.suspensions,
        }
    }
}

/// A request, as answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestReply {
    /// Id.
    pub id: RequestId,
    /// The account.
    pub account: AccountId,
    /// The root task's catalogue id.
    pub task: String,
    /// The ticket.
    pub ticket: TicketRef,
    /// Why.
    pub reason: Reason,
    /// Who asked.
    pub requester: UserName,
    /// Created (ms since the epoch).
    pub created_ms: i64,
    /// Expires (ms since the epoch).
    pub expires_ms: i64,
    /// Approvals in order.
    pub approvals: Vec<ApprovalReply>,
    /// Status.
    pub status: RequestStatus,
    /// The step the code was computed for, once issuing.
    pub step: Option<u64>,
    /// The device that computed it, once issuing.
    pub device: Option<Serial>,
    /// Who denied or cancelled it.
    pub closed_by: Option<UserName>,
    /// The end of the approval window (ms since the epoch): when the earliest approval stops
    /// counting, at the latest when the request expires; absent without approvals or once
    /// the request is closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approvals_valid_until_ms: Option<i64>,
}

impl RequestReply {
    /// The digest of what an approving officer is shown of this request, as [`Op::Approve`]
    /// carries it in `seen`.
    pub fn approval_digest(&self) -> String {
        approval_digest([
            self.id.as_str(),
            self.account.as_str(),
            self.task.as_str(),
            self.ticket.as_str(),
            self.reason.as_str(),
            self.requester.as_str(),
        ])
    }
}

impl From<RequestRecord> for RequestReply {
    fn from(r: RequestRecord) -> Self {
        Self {
            approvals_valid_until_ms: None,
            id: r.id,
            account: r.account,
            task: r.task,
            ticket: r.ticket,
            reason: r.reason,
            requester: r.requester,
            created_ms: r.created_ms,
            expires_ms: r.expires_ms,
            approvals: replies(r.approvals),
            status: r.status,
            step: r.step,
            device: r.device,
            closed_by: r.closed_by,
        }
    }
}

/// An incident, as answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentReply {
    /// Id.
    pub id: IncidentId,
    /// Kind.
    pub kind: IncidentKind,
    /// The device concerned.
    pub device: Option<Serial>,
    /// What happened.
    pub detail: String,
    /// Opened (ms since the epoch).
    pub opened_ms: i64,
    /// Open until two officers acknowledge.
    pub open: bool,
    /// Officers who acknowledged.
    pub acknowledged_by: Vec<UserName>,
}

impl From<IncidentRecord> for IncidentReply {
    fn from(r: IncidentRecord) -> Self {
        Self {
            id: r.id,
            kind: r.kind,
            device: r.device,
            detail: r.detail,
            opened_ms: r.opened_ms,
            open: r.open,
            acknowledged_by: r.acknowledged_by,
        }
    }
}

/// Each record answers as its reply, in the [`Reply`] for it.
macro_rules! reply_from_records {
    ($($record:ty => $one:ident($reply:ty), $many:ident;)*) => {$(
        impl From<$record> for Reply {
            fn from(r: $record) -> Self {
                Reply::$one(<$reply>::from(r))
            }
        }

        impl From<Vec<$record>> for Reply {
            fn from(rs: Vec<$record>) -> Self {
                Reply::$many(replies(rs))
            }
        }
    )*};
}

reply_from_records! {
    UserRecord => User(UserReply), Users;
    AccountRecord => Account(AccountReply), Accounts;
    DeviceRecord => Device(DeviceReply), Devices;
    RequestRecord => Request(RequestReply), Requests;
    IncidentRecord => Incident(IncidentReply), Incidents;
}

/// A session, as answered by [`Op::Login`] (with its token, shown this once) and
/// [`Op::Whoami`] (without).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionReply {
    /// The token to send as the request's `session`; only in the answer to `login`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret>,
    /// The person.
    pub user: String,
    /// Their roles now.
    pub roles: Vec<Role>,
    /// The uid the session is bound to.
    pub uid: u32,
    /// When the session ends unless used again (ms since the epoch).
    pub idle_expires_at_ms: i64,
    /// When the session ends however it is used (ms since the epoch).
    pub expires_at_ms: i64,
    /// The daemon's clock when it answered (ms since the epoch): how long the session has left
    /// is counted from it, never from the client's clock, which may differ.
    pub as_of_ms: i64,
}

/// The daemon's state as seen by [`Op::Status`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusReply {
    /// True while the ledger is sealed.
    pub sealed: bool,
    /// The ledger id (hex), from the keyring.
    pub ledger_id: String,
    /// Officers needed to unseal.
    pub threshold: u8,
    /// Officers in the keyring.
    pub officers: Vec<String>,
    /// Officers who offered their share so far (while sealed).
    pub unseal_given: Vec<String>,
    /// The last event's sequence number (while unsealed).
    pub head_seq: Option<u64>,
    /// The checkpoint public key (hex, while unsealed).
    pub public_key: Option<String>,
    /// The peer's uid as the daemon sees it.
    pub peer_uid: u32,
}

/// Progress of an unseal.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UnsealProgress {
    /// True when the quorum was reached and the ledger is open.
    pub unsealed: bool,
    /// Officers who offered their share so far (empty once unsealed).
    pub given: Vec<String>,
    /// Officers needed.
    pub threshold: u8,
}

/// Why a line is not a request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// Longer than [`MAX_REQUEST_BYTES`].
    #[error("request of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// The length seen (at least).
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A field that takes one of a few names holds another. The message names the field and
    /// the names it takes, never the value given (a mistyped secret may sit in any field).
    #[error("the request's {field} takes one of {accepted} (line {line} column {column})")]
    BadField {
        /// The field.
        field: &'static str,
        /// The names it takes, comma-separated.
        accepted: &'static str,
        /// Line of the error.
        line: usize,
        /// Column of the error.
        column: usize,
    },
    /// Not UTF-8 JSON of a request's shape. The message names what was wrong and where; it
    /// never quotes the input, which may hold a secret.
    #[error("malformed request: {category} at line {line} column {column}")]
    Malformed {
        /// serde_json's category (syntax, data, eof, io).
        category: &'static str,
        /// Line of the error.
        line: usize,
        /// Column of the error.
        column: usize,
    },
    /// A version this daemon does not speak.
    #[error("protocol version {got} is not supported (this daemon speaks {supported})")]
    UnsupportedVersion {
        /// The request's version.
        got: u32,
        /// Ours.
        supported: u32,
        /// The request's id, to answer it.
        id: u64,
    },
}

impl ProtocolError {
    /// The error code to answer with.
    pub fn code(&self) -> ErrorCode {
        match self {
            ProtocolError::TooLarge { .. } => ErrorCode::TooLarge,
            ProtocolError::Malformed { .. } | ProtocolError::BadField { .. } => {
                ErrorCode::BadRequest
            }
            ProtocolError::UnsupportedVersion { .. } => ErrorCode::UnsupportedVersion,
        }
    }

    /// The request id to answer with, when known.
    pub fn id(&self) -> u64 {
        match self {
            ProtocolError::UnsupportedVersion { id, .. } => *id,
            _ => 0,
        }
    }
}

fn category(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Io => "io error",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "unexpected data",
        serde_json::error::Category::Eof => "unexpected end",
    }
}

#[derive(Deserialize)]
struct Envelope {
    v: u32,
    #[serde(default)]
    id: u64,
}

/// Parses one request line (a trailing `\n` or `\r\n` is allowed). Never panics.
pub fn parse_request(line: &[u8]) -> Result<Request, ProtocolError> {
    if line.len() > MAX_REQUEST_BYTES {
        return Err(ProtocolError::TooLarge {
            len: line.len(),
            max: MAX_REQUEST_BYTES,
        });
    }
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    match serde_json::from_slice::<Request>(line) {
        Ok(req) if req.v == VERSION => Ok(req),
        Ok(req) => Err(ProtocolError::UnsupportedVersion {
            got: req.v,
            supported: VERSION,
            id: req.id,
        }),
        Err(e) => {
            // A request of another version may not match this version's shapes: say so
            // rather than "malformed" when its envelope reads.
            if let Ok(env) = serde_json::from_slice::<Envelope>(line) {
                if env.v != VERSION {
                    return Err(ProtocolError::UnsupportedVersion {
                        got: env.v,
                        supported: VERSION,
                        id: env.id,
                    });
                }
            }
            if let Some((field, accepted)) = field::refused(&e) {
                return Err(ProtocolError::BadField {
                    field,
                    accepted,
                    line: e.line(),
                    column: e.column(),
                });
            }
            Err(ProtocolError::Malformed {
                category: category(&e),
                line: e.line(),
                column: e.column(),
            })
        }
    }
}

/// The value of a domain enum (a [`Role`], [`DeviceRole`], [`AccountStatus`], ...) whose wire
/// name is `text`, if it has one.
pub fn named<T: serde::de::DeserializeOwned>(text: &str) -> Option<T> {
    use serde::de::IntoDeserializer;
    let d: serde::de::value::StrDeserializer<'_, serde::de::value::Error> =
        text.into_deserializer();
    T::deserialize(d).ok()
}

/// The request fields that take one of a few names (the domain's enums). A value they do
/// not take is refused with a message naming the field and the names it takes, never the
/// value, so [`parse_request`] can answer [`ProtocolError::BadField`].
mod field {
    use serde::de::{DeserializeOwned, Deserializer, Error};
    use serde::Deserialize;

    use crate::custody::{AccountStatus, DeviceRole, Role, Terminal};

    /// Each typed field: its name and the names it takes.
    const FIELDS: &[(&str, &str)] = &[ROLES, DEVICE_ROLE, TERMINAL, ACCOUNT_STATUS];
    const ROLES: (&str, &str) = ("roles", "officer, operator, auditor");
    const DEVICE_ROLE: (&str, &str) = ("role", "primary, backup");
    const TERMINAL: (&str, &str) = ("to", "retired, lost, destroyed");
    const ACCOUNT_STATUS: (&str, &str) = ("status", "active, root_credentials_removed, closed");

    fn message((field, accepted): (&str, &str)) -> String {
        format!("{field} takes one of {accepted}")
    }

    fn one<T: DeserializeOwned, E: Error>(text: &str, spec: (&str, &str)) -> Result<T, E> {
        super::named(text).ok_or_else(|| E::custom(message(spec)))
    }

    /// Which typed field refused the request, when one did.
    pub(super) fn refused(e: &serde_json::Error) -> Option<(&'static str, &'static str)> {
        if e.classify() != serde_json::error::Category::Data {
            return None;
        }
        let shown = e.to_string();
        FIELDS.iter().copied().find(|spec| {
            shown
                == format!(
                    "{} at line {} column {}",
                    message(*spec),
                    e.line(),
                    e.column()
                )
        })
    }

    pub(super) fn roles<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Role>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|r| one(r, ROLES))
            .collect()
    }

    pub(super) fn device_role<'de, D: Deserializer<'de>>(d: D) -> Result<DeviceRole, D::Error> {
        one(&String::deserialize(d)?, DEVICE_ROLE)
    }

    pub(super) fn terminal<'de, D: Deserializer<'de>>(d: D) -> Result<Terminal, D::Error> {
        one(&String::deserialize(d)?, TERMINAL)
    }

    pub(super) fn account_status<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<AccountStatus, D::Error> {
        one(&String::deserialize(d)?, ACCOUNT_STATUS)
    }
}

/// Encodes a request as one line, newline included.
pub fn encode_request(req: &Request) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(serde_json::to_vec(req).unwrap_or_default());
    out.push(b'\n');
    out
}

/// Parses one response line. Never panics.
pub fn parse_response(line: &[u8]) -> Result<Response, ProtocolError> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    serde_json::from_slice(line).map_err(|e| ProtocolError::Malformed {
        category: category(&e),
        line: e.line(),
        column: e.column(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_request_parses() {
        let r = parse_request(b"{\"v\":1,\"id\":3,\"op\":\"status\"}\n").expect("ok");
        assert_eq!(r.id, 3);
        assert!(matches!(r.op, Op::Status));
    }

    #[test]
    fn unseal_round_trips_and_debug_redacts() {
        let req = Request {
            ledger: None,
            v: VERSION,
            id: 9,
            session: None,
            op: Op::Unseal {
                officer: "alice".into(),
                passphrase: Secret::new(Zeroizing::new("Correct-Horse-77".into())),
            },
        };
        let line = encode_request(&req);
        let back = parse_request(&line).expect("parses");
        let dbg = format!("{back:?} {req:?}");
        assert!(!dbg.contains("Correct-Horse-77"), "{dbg}");
        match back.op {
            Op::Unseal { passphrase, .. } => assert_eq!(passphrase.expose(), "Correct-Horse-77"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn debug_of_auth_enrol_and_code_shows_no_secret() {
        let s = |t: &str| Secret::new(Zeroizing::new(t.to_owned()));
        let req = Request {
            ledger: None,
            v: VERSION,
            id: 1,
            session: None,
            op: Op::Enrol {
                by: vec![Auth {
                    user: "alice".into(),
                    passphrase: Some(s("Alice-Secret-Phrase-1")),
                    factor: Some(s("492039")),
                    continuation: Some(s(
                        "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00",
                    )),
                    signed: None,
                }],
                account: "123456789012".into(),
                primary: 1,
                backup: 2,
                seed: s("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"),
                overwrite: false,
            },
        };
        let reply = Reply::Code {
            request: "req-0000000000000001".into(),
            code: s("287082"),
            step: 1,
            seconds_remaining: 20,
            device: 10_000_001,
            password: Some(s("Root-Pass-Word-9")),
        };
        let set = Request {
            ledger: None,
            session: None,
            v: VERSION,
            id: 2,
            op: Op::AccountSetPassword {
                by: vec![],
                account: "123456789012".into(),
                password: Some(s("Typed-Root-Pass-8")),
                generate: false,
            },
        };
        let dbg = format!(
            "{req:?} {reply:?} {:?} {set:?}",
            Response::ok(1, reply.clone())
        );
        for secret in [
            "Alice-Secret-Phrase-1",
            "492039",
            "GEZDGNBV",
            "287082",
            "Root-Pass-Word-9",
            "Typed-Root-Pass-8",
            "c0ffee00",
        ] {
            assert!(!dbg.contains(secret), "{secret} in {dbg}");
        }
        let line = String::from_utf8_lossy(&Response::ok(1, reply).to_line()).into_owned();
        assert!(
            line.contains("287082") && line.contains("Root-Pass-Word-9"),
            "the wire carries the code and the password to its requester"
        );
    }

    #[test]
    fn bootstrap_and_seal_carry_their_secrets_redacted() {
        let s = |t: &str| Secret::new(Zeroizing::new(t.to_owned()));
        let reqs = [
            Request {
                ledger: None,
                v: VERSION,
                id: 1,
                session: None,
                op: Op::BootstrapOfficer {
                    user: "alice".into(),
                    keyring_passphrase: s("Alice-Keyring-Phrase-1"),
                    passphrase: s("Alice-Custody-Phrase-2"),
                },
            },
            Request {
                ledger: None,
                v: VERSION,
                id: 2,
                session: None,
                op: Op::Seal {
                    by: Auth::new("alice", s("Alice-Custody-Phrase-2"), Some(s("492039"))),
                },
            },
        ];
        for req in &reqs {
            let back = parse_request(&encode_request(req)).expect("round trip");
            let dbg = format!("{req:?} {back:?}");
            for secret in ["Alice-Keyring-Phrase-1", "Alice-Custody-Phrase-2", "492039"] {
                assert!(!dbg.contains(secret), "{secret} in {dbg}");
            }
        }
        match parse_request(&encode_request(&reqs[0])).expect("parses").op {
            Op::BootstrapOfficer {
                keyring_passphrase,
                passphrase,
                ..
            } => {
                assert_eq!(keyring_passphrase.expose(), "Alice-Keyring-Phrase-1");
                assert_eq!(passphrase.expose(), "Alice-Custody-Phrase-2");
            }
            other => panic!("{other:?}"),
        }
        // The former shapes (no keyring passphrase; a seal naming an actor) are refused.
        for old in [
            &br#"{"v":1,"id":3,"op":{"bootstrap_officer":{"user":"alice","passphrase":"x"}}}"#[..],
            br#"{"v":1,"id":4,"op":{"seal":{"actor":"alice"}}}"#,
        ] {
            assert_eq!(
                parse_request(old).expect_err("old shape").code(),
                ErrorCode::BadRequest
            );
        }
    }

    #[test]
    fn malformed_error_does_not_quote_the_input() {
        let e = parse_request(b"{\"v\":1,\"id\":1,\"op\":{\"unseal\":{\"officer\":\"a\",\"passphrase\":\"Sekrit-Passw0rd\",\"x\":1}}}")
            .expect_err("unknown field");
        assert!(!e.to_string().contains("Sekrit"), "{e}");
        assert_eq!(e.code(), ErrorCode::BadRequest);
    }

    #[test]
    fn refusals() {
        assert_eq!(
            parse_request(b"garbage").expect_err("bad").code(),
            ErrorCode::BadRequest
        );
        let big = vec![b' '; MAX_REQUEST_BYTES + 1];
        assert_eq!(
            parse_request(&big).expect_err("big").code(),
            ErrorCode::TooLarge
        );
        let e = parse_request(b"{\"v\":2,\"id\":5,\"op\":\"warp\"}").expect_err("v2");
        assert_eq!(e.code(), ErrorCode::UnsupportedVersion);
        assert_eq!(e.id(), 5);
        assert_eq!(
            parse_request(b"{\"v\":1,\"id\":1,\"op\":\"nope\"}")
                .expect_err("op")
                .code(),
            ErrorCode::BadRequest
        );
    }

    #[test]
    fn responses_round_trip() {
        let r = Response::err(4, ErrorCode::Sealed, "the ledger is sealed");
        let line = r.to_line();
        assert!(line.ends_with(b"\n"));
        let back = parse_response(&line).expect("parses");
        assert_eq!(back.id, 4);
        match back.result {
            Outcome::Err(e) => assert_eq!(e.code, ErrorCode::Sealed),
            other => panic!("expected an error, got {other:?}"),
        }
        let text = String::from_utf8_lossy(&line).into_owned();
        assert!(text.contains("\"err\":{\"code\":\"sealed\""), "{text}");
    }

    /// Every refusal code and its wire name, as clients have read them since version 1.
    const REFUSALS: &[(RefusalCode, &str)] = &[
        (RefusalCode::InvalidInput, "invalid_input"),
        (RefusalCode::UnknownUser, "unknown_user"),
        (RefusalCode::UserExists, "user_exists"),
        (RefusalCode::AuthenticationFailed, "authentication_failed"),
        (RefusalCode::FactorCodeReused, "factor_code_reused"),
        (RefusalCode::FactorCodeRequired, "factor_code_required"),
        (
            RefusalCode::WrongKeyringPassphrase,
            "wrong_keyring_passphrase",
        ),
        (RefusalCode::Locked, "locked"),
        (RefusalCode::Suspended, "suspended"),
        (RefusalCode::WrongUid, "wrong_uid"),
        (RefusalCode::SessionExpired, "session_expired"),
        (RefusalCode::NotAnOfficer, "not_an_officer"),
        (RefusalCode::RoleRequired, "role_required"),
        (RefusalCode::SameOfficerTwice, "same_officer_twice"),
        (RefusalCode::ApprovalMismatch, "approval_mismatch"),
        (
            RefusalCode::ApprovalSignatureInvalid,
            "approval_signature_invalid",
        ),
        (RefusalCode::ApprovalNonceUnknown, "approval_nonce_unknown"),
        (
            RefusalCode::ApprovalNoncesExhausted,
            "approval_nonces_exhausted",
        ),
        (
            RefusalCode::SigningKeyNotRegistered,
            "signing_key_not_registered",
        ),
        (
            RefusalCode::ApprovalProofRequired,
            "approval_proof_required",
        ),
        (RefusalCode::SigningKeyExists, "signing_key_exists"),
        (RefusalCode::SigningKeyPolicy, "signing_key_policy"),
        (RefusalCode::ProofNotFresh, "proof_not_fresh"),
        (RefusalCode::SubjectIsApprover, "subject_is_approver"),
        (RefusalCode::SelfApproval, "self_approval"),
        (RefusalCode::AlreadyApproved, "already_approved"),
        (
            RefusalCode::RequestAlreadyApproved,
            "request_already_approved",
        ),
        (RefusalCode::UnknownRequest, "unknown_request"),
        (RefusalCode::RequestExpired, "request_expired"),
        (RefusalCode::RequestClosed, "request_closed"),
        (RefusalCode::ApprovalExpired, "approval_expired"),
        (RefusalCode::RequestNotApproved, "request_not_approved"),
        (RefusalCode::AlreadyReleased, "already_released"),
        (RefusalCode::NotTheRequester, "not_the_requester"),
        (RefusalCode::UnknownTask, "unknown_task"),
        (RefusalCode::UnknownAccount, "unknown_account"),
        (RefusalCode::AccountExists, "account_exists"),
        (RefusalCode::AccountNotActive, "account_not_active"),
        (RefusalCode::UnknownDevice, "unknown_device"),
        (RefusalCode::DeviceExists, "device_exists"),
        (RefusalCode::DeviceState, "device_state"),
        (RefusalCode::WrongDevice, "wrong_device"),
        (RefusalCode::DeviceMismatch, "device_mismatch"),
        (RefusalCode::DeviceNotCheckedOut, "device_not_checked_out"),
        (RefusalCode::SealMismatch, "seal_mismatch"),
        (RefusalCode::SealReused, "seal_reused"),
        (RefusalCode::DeviceBlocked, "device_blocked"),
        (RefusalCode::DeviceUnlocked, "device_unlocked"),
        (RefusalCode::DeviceUnattested, "device_unattested"),
        (RefusalCode::AttestationUntrusted, "attestation_untrusted"),
        (
            RefusalCode::AttestationSerialMismatch,
            "attestation_serial_mismatch",
        ),
        (
            RefusalCode::AttestationUnsupported,
            "attestation_unsupported",
        ),
        (RefusalCode::UnknownIncident, "unknown_incident"),
        (RefusalCode::IncidentClosed, "incident_closed"),
        (RefusalCode::CredentialExists, "credential_exists"),
        (RefusalCode::DevicesDisagree, "devices_disagree"),
        (RefusalCode::BadSeed, "bad_seed"),
        (RefusalCode::ClockSkew, "clock_skew"),
        (
            RefusalCode::TimeWitnessUnavailable,
            "time_witness_unavailable",
        ),
        (RefusalCode::DeviceUnavailable, "device_unavailable"),
        (RefusalCode::TokenError, "token_error"),
        (RefusalCode::TouchTimeout, "touch_timeout"),
        (RefusalCode::LedgerUnavailable, "ledger_unavailable"),
        (RefusalCode::CorruptRecord, "corrupt_record"),
        (RefusalCode::Crypto, "crypto"),
        (RefusalCode::ExportFailed, "export_failed"),
        (
            RefusalCode::AuthenticationRequired,
            "authentication_required",
        ),
        (RefusalCode::Throttled, "throttled"),
        (RefusalCode::SessionUnknown, "session_unknown"),
        (RefusalCode::SessionWrongUid, "session_wrong_uid"),
        (RefusalCode::ContinuationInvalid, "continuation_invalid"),
        (RefusalCode::NoRandomness, "no_randomness"),
        (RefusalCode::Unrecognized, "unrecognized"),
    ];

    /// Every error code and its wire name.
    const ERRORS: &[(ErrorCode, &str)] = &[
        (ErrorCode::BadRequest, "bad_request"),
        (ErrorCode::TooLarge, "too_large"),
        (ErrorCode::UnsupportedVersion, "unsupported_version"),
        (ErrorCode::Busy, "busy"),
        (ErrorCode::ShuttingDown, "shutting_down"),
        (ErrorCode::Sealed, "sealed"),
        (ErrorCode::AlreadyUnsealed, "already_unsealed"),
        (ErrorCode::UnknownOfficer, "unknown_officer"),
        (ErrorCode::UnsealFailed, "unseal_failed"),
        (ErrorCode::Forbidden, "forbidden"),
        (ErrorCode::NotFound, "not_found"),
        (ErrorCode::Refused, "refused"),
        (ErrorCode::Token, "token"),
        (ErrorCode::Ledger, "ledger"),
        (ErrorCode::Io, "io"),
        (ErrorCode::Internal, "internal"),
        (ErrorCode::WrongLedger, "wrong_ledger"),
        (ErrorCode::Unrecognized, "unrecognized"),
    ];

    /// A new variant does not compile until it is pinned above.
    fn pinned(r: RefusalCode, e: ErrorCode) -> bool {
        let r = match r {
            RefusalCode::InvalidInput
            | RefusalCode::UnknownUser
            | RefusalCode::UserExists
            | RefusalCode::AuthenticationFailed
            | RefusalCode::FactorCodeReused
            | RefusalCode::FactorCodeRequired
            | RefusalCode::WrongKeyringPassphrase
            | RefusalCode::Locked
            | RefusalCode::Suspended
            | RefusalCode::WrongUid
            | RefusalCode::SessionExpired
            | RefusalCode::NotAnOfficer
            | RefusalCode::RoleRequired
            | RefusalCode::SameOfficerTwice
            | RefusalCode::ApprovalMismatch
            | RefusalCode::ApprovalSignatureInvalid
            | RefusalCode::ApprovalNonceUnknown
            | RefusalCode::ApprovalNoncesExhausted
            | RefusalCode::SigningKeyNotRegistered
            | RefusalCode::ApprovalProofRequired
            | RefusalCode::SigningKeyExists
            | RefusalCode::SigningKeyPolicy
            | RefusalCode::ProofNotFresh
            | RefusalCode::SubjectIsApprover
            | RefusalCode::SelfApproval
            | RefusalCode::AlreadyApproved
            | RefusalCode::RequestAlreadyApproved
            | RefusalCode::UnknownRequest
            | RefusalCode::RequestExpired
            | RefusalCode::RequestClosed
            | RefusalCode::ApprovalExpired
            | RefusalCode::RequestNotApproved
            | RefusalCode::AlreadyReleased
            | RefusalCode::NotTheRequester
            | RefusalCode::UnknownTask
            | RefusalCode::UnknownAccount
            | RefusalCode::AccountExists
            | RefusalCode::AccountNotActive
            | RefusalCode::UnknownDevice
            | RefusalCode::DeviceExists
            | RefusalCode::DeviceState
            | RefusalCode::WrongDevice
            | RefusalCode::DeviceMismatch
            | RefusalCode::AttestationUntrusted
            | RefusalCode::AttestationSerialMismatch
            | RefusalCode::AttestationUnsupported
            | RefusalCode::DeviceNotCheckedOut
            | RefusalCode::SealMismatch
            | RefusalCode::SealReused
            | RefusalCode::DeviceBlocked
            | RefusalCode::DeviceUnlocked
            | RefusalCode::DeviceUnattested
            | RefusalCode::UnknownIncident
            | RefusalCode::IncidentClosed
            | RefusalCode::CredentialExists
            | RefusalCode::DevicesDisagree
            | RefusalCode::BadSeed
            | RefusalCode::ClockSkew
            | RefusalCode::TimeWitnessUnavailable
            | RefusalCode::DeviceUnavailable
            | RefusalCode::TokenError
            | RefusalCode::TouchTimeout
            | RefusalCode::LedgerUnavailable
            | RefusalCode::CorruptRecord
            | RefusalCode::Crypto
            | RefusalCode::ExportFailed
            | RefusalCode::AuthenticationRequired
            | RefusalCode::Throttled
            | RefusalCode::SessionUnknown
            | RefusalCode::SessionWrongUid
            | RefusalCode::ContinuationInvalid
            | RefusalCode::NoRandomness
            | RefusalCode::Unrecognized => REFUSALS.iter().any(|(c, _)| *c == r),
        };
        let e = match e {
            ErrorCode::BadRequest
            | ErrorCode::TooLarge
            | ErrorCode::UnsupportedVersion
            | ErrorCode::Busy
            | ErrorCode::ShuttingDown
            | ErrorCode::Sealed
            | ErrorCode::AlreadyUnsealed
            | ErrorCode::UnknownOfficer
            | ErrorCode::UnsealFailed
            | ErrorCode::Forbidden
            | ErrorCode::NotFound
            | ErrorCode::Refused
            | ErrorCode::Token
            | ErrorCode::Ledger
            | ErrorCode::Io
            | ErrorCode::Internal
            | ErrorCode::WrongLedger
            | ErrorCode::Unrecognized => ERRORS.iter().any(|(c, _)| *c == e),
        };
        r && e
    }

    /// `code` is written as `"name"` and read back as itself.
    fn keeps_its_name<C>(code: C, name: &str, as_str: &str)
    where
        C: Serialize + serde::de::DeserializeOwned + PartialEq + fmt::Debug,
    {
        let wire = serde_json::to_string(&code).expect("encodes");
        assert_eq!(wire, format!("\"{name}\""), "{code:?}");
        assert_eq!(as_str, name);
        let back: C = serde_json::from_str(&wire).expect("decodes");
        assert_eq!(back, code);
    }

    #[test]
    fn every_refusal_and_error_code_keeps_its_wire_name() {
        for &(code, name) in REFUSALS {
            assert!(pinned(code, ErrorCode::Refused), "{name}");
            keeps_its_name(code, name, code.as_str());
        }
        for &(code, name) in ERRORS {
            assert!(pinned(RefusalCode::Unrecognized, code), "{name}");
            keeps_its_name(code, name, code.as_str());
        }
    }

    #[test]
    fn a_touch_progress_line_precedes_the_answer_and_is_asked_for_by_code_only() {
        let p = Progress::Touch {
            serial: 10_000_001,
            reader: "Yubico YubiKey OTP+FIDO+CCID 00 00".into(),
            timeout_secs: 30,
        };
        let line = Response::progress(7, p.clone()).to_line();
        assert_eq!(
            std::str::from_utf8(&line).expect("utf-8"),
            "{\"v\":1,\"id\":7,\"result\":{\"progress\":{\"touch\":{\"serial\":10000001,\
             \"reader\":\"Yubico YubiKey OTP+FIDO+CCID 00 00\",\"timeout_secs\":30}}}}\n"
        );
        match parse_response(&line).expect("parses").result {
            Outcome::Progress(back) => assert_eq!(back, p),
            other => panic!("expected progress, got {other:?}"),
        }
        // A code request asks for it by a field that is absent when false.
        let code = |prompt: bool| {
            encode_request(&Request {
                v: VERSION,
                id: 1,
                ledger: None,
                session: None,
                op: Op::Code {
                    by: Auth::new("dave", Secret::new(Zeroizing::new("x".into())), None),
                    request: "req-0000000000000001".into(),
                    touch_prompt: prompt,
                },
            })
        };
        let (asked, quiet) = (code(true), code(false));
        let asked = String::from_utf8_lossy(&asked).into_owned();
        assert!(asked.contains("\"touch_prompt\":true"), "{asked}");
        assert!(!String::from_utf8_lossy(&quiet).contains("touch_prompt"));
        match parse_request(asked.as_bytes()).expect("parses").op {
            Op::Code { touch_prompt, .. } => assert!(touch_prompt),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn codes_a_newer_daemon_sends_decode_to_the_fallback() {
        let line = br#"{"v":1,"id":2,"result":{"err":{"code":"overheated","reason":"reactor_hot","message":"cool down"}}}"#;
        let back = parse_response(line).expect("an unknown code still reads");
        match back.result {
            Outcome::Err(e) => {
                assert_eq!(e.code, ErrorCode::Unrecognized);
                assert_eq!(e.reason, Some(RefusalCode::Unrecognized));
                assert_eq!(e.message, "cool down");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        // A code that is not even a string is a malformed answer, not a panic.
        let bad = br#"{"v":1,"id":2,"result":{"err":{"code":7,"message":"x"}}}"#;
        assert!(parse_response(bad).is_err());
    }

    #[test]
    fn a_domain_refusal_travels_as_its_class_and_its_own_code() {
        let r = Response {
            v: VERSION,
            id: 8,
            result: Outcome::Err(ErrorBody {
                code: ErrorCode::of(RefusalCode::SelfApproval),
                reason: Some(RefusalCode::SelfApproval),
                message: "no".into(),
                continuation: None,
            }),
        };
        assert_eq!(
            String::from_utf8_lossy(&r.to_line()),
            "{\"v\":1,\"id\":8,\"result\":{\"err\":{\"code\":\"forbidden\",\"reason\":\"self_approval\",\"message\":\"no\"}}}\n"
        );
        assert_eq!(ErrorCode::of(RefusalCode::SealMismatch), ErrorCode::Refused);
        assert_eq!(
            ErrorCode::of(RefusalCode::UnknownAccount),
            ErrorCode::NotFound
        );
        assert_eq!(
            ErrorCode::of(RefusalCode::InvalidInput),
            ErrorCode::BadRequest
        );
        assert_eq!(ErrorCode::of(RefusalCode::TouchTimeout), ErrorCode::Token);
        assert_eq!(ErrorCode::of(RefusalCode::CorruptRecord), ErrorCode::Ledger);
    }

    #[test]
    fn typed_fields_keep_their_wire_names() {
        let s = |t: &str| Secret::new(Zeroizing::new(t.to_owned()));
        let request = |op: Op| Request {
            ledger: None,
            v: VERSION,
            id: 1,
            session: None,
            op,
        };
        let cases = [
            (
                Op::UserSetRoles {
                    by: vec![],
                    name: "dave".into(),
                    roles: vec![Role::Operator, Role::Auditor],
                },
                r#""roles":["operator","auditor"]"#,
            ),
            (
                Op::DeviceRegister {
                    by: Auth::new("alice", s("x"), None),
                    serial: 10_000_001,
                    role: DeviceRole::Backup,
                },
                r#""role":"backup""#,
            ),
            (
                Op::DeviceSetTerminal {
                    by: vec![],
                    serial: 10_000_002,
                    to: Terminal::Lost,
                },
                r#""to":"lost""#,
            ),
            (
                Op::AccountSetStatus {
                    by: vec![],
                    account: "123456789012".into(),
                    status: AccountStatus::RootCredentialsRemoved,
                },
                r#""status":"root_credentials_removed""#,
            ),
        ];
        for (op, field) in cases {
            let line = encode_request(&request(op));
            let text = String::from_utf8_lossy(&line).into_owned();
            assert!(text.contains(field), "{field} in {text}");
            let back = parse_request(&line).expect("parses");
            assert_eq!(
                String::from_utf8_lossy(&encode_request(&back)),
                text,
                "decodes to the same values"
            );
        }
    }

    #[test]
    fn a_typed_field_with_another_value_is_refused_naming_the_field_and_its_values() {
        for (line, field, accepted) in [
            (
                &br#"{"v":1,"id":1,"op":{"user_set_roles":{"by":[],"name":"d","roles":["operator","Hunter2-Secret"]}}}"#[..],
                "roles",
                "officer, operator, auditor",
            ),
            (
                br#"{"v":1,"id":1,"op":{"device_register":{"by":{"user":"a","passphrase":"p"},"serial":1,"role":"Hunter2-Secret"}}}"#,
                "role",
                "primary, backup",
            ),
            (
                br#"{"v":1,"id":1,"op":{"device_set_terminal":{"by":[],"serial":1,"to":"Hunter2-Secret"}}}"#,
                "to",
                "retired, lost, destroyed",
            ),
            (
                br#"{"v":1,"id":1,"op":{"account_set_status":{"by":[],"account":"1","status":"Hunter2-Secret"}}}"#,
                "status",
                "active, root_credentials_removed, closed",
            ),
        ] {
            let e = parse_request(line).expect_err("refused");
            assert_eq!(e.code(), ErrorCode::BadRequest);
            let shown = e.to_string();
            assert!(
                matches!(e, ProtocolError::BadField { field: f, accepted: a, .. } if f == field && a == accepted),
                "{shown}"
            );
            assert!(
                shown.contains(&format!("{field} takes one of {accepted}")),
                "{shown}"
            );
            assert!(!shown.contains("Hunter2"), "{shown}");
        }
        // A value of another type in such a field makes a malformed request.
        let e = parse_request(
            br#"{"v":1,"id":1,"op":{"device_set_terminal":{"by":[],"serial":1,"to":7}}}"#,
        )
        .expect_err("refused");
        assert!(matches!(e, ProtocolError::Malformed { .. }), "{e}");
    }

    /// `record` (a stored record's JSON) answered as its reply: the reply's JSON.
    fn answered<R: serde::de::DeserializeOwned>(record: &str) -> String
    where
        Reply: From<R>,
    {
        let rec: R = serde_json::from_str(record).expect("a record");
        let line =
            String::from_utf8_lossy(&Response::ok(1, Reply::from(rec)).to_line()).into_owned();
        line.strip_prefix(r#"{"v":1,"id":1,"result":{"ok":"#)
            .and_then(|l| l.strip_suffix("}}\n"))
            .unwrap_or_else(|| panic!("an answer line: {line}"))
            .to_owned()
    }

    #[test]
    fn replies_answer_each_record_with_the_fields_clients_read() {
        let user = r#"{"name":"alice","roles":["officer"],"uid":1001,"active":true,"failed_attempts":0,"locked_until_ms":null,"last_factor_step":59000000}"#;
        assert_eq!(
            answered::<UserRecord>(user),
            format!(r#"{{"user":{user}}}"#)
        );
        let suspended = r#"{"name":"dave","roles":["auditor","operator"],"uid":null,"active":false,"failed_attempts":2,"locked_until_ms":7,"last_factor_step":null,"suspensions":1}"#;
        assert_eq!(
            answered::<UserRecord>(suspended),
            format!(r#"{{"user":{suspended}}}"#)
        );
        let account = r#"{"provider":"aws","account":"123456789012","alias":"prod","root_email":"root@example.com","credential":"aws:prod","status":"root_credentials_removed","last_release_step":null}"#;
        assert_eq!(
            answered::<AccountRecord>(account),
            format!(r#"{{"account":{account}}}"#)
        );
        for state in [
            r#"{"state":"registered"}"#,
            r#"{"state":"in_safe","location":"safe A","seal":"BAG-0001"}"#,
            r#"{"state":"checked_out","custodian":"alice","request":"req-00000000000000a1","since_ms":5}"#,
            r#"{"state":"lost"}"#,
        ] {
            let device = format!(
                r#"{{"serial":10000001,"firmware":"5.7.1","device_id":"0a1b","role":"primary","account":"123456789012","state":{state},"blocked_by":null}}"#
            );
            // The stored record's `device_id` is answered as `oath_device_id`, the name
            // `custody token scan` gives it.
            let shown = device.replace(r#""device_id""#, r#""oath_device_id""#);
            assert_eq!(
                answered::<DeviceRecord>(&device),
                format!(r#"{{"device":{shown}}}"#)
            );
            assert_eq!(
                answered::<Vec<DeviceRecord>>(&format!("[{device}]")),
                format!(r#"{{"devices":[{shown}]}}"#)
            );
            // A reply of the older name still reads.
            let old: DeviceReply = serde_json::from_str(&device).expect("device_id still read");
            assert_eq!(old.device_id, "0a1b");
        }
        let locked = r#"{"serial":10000001,"firmware":"5.7.1","device_id":"0a1b","role":"primary","account":"123456789012","state":{"state":"enrolled"},"blocked_by":null,"oath_access_key":true}"#;
        assert_eq!(
            answered::<DeviceRecord>(locked),
            format!(
                r#"{{"device":{}}}"#,
                locked.replace(r#""device_id""#, r#""oath_device_id""#)
            )
        );
        let request = r#"{"id":"req-00000000000000a1","account":"123456789012","task":"change-root-password","ticket":"SEC-42","reason":"rotate the root password after the audit","requester":"dave","created_ms":1,"expires_ms":2,"approvals":[{"officer":"alice","at_ms":3},{"officer":"bob","at_ms":4,"suspensions":2}],"status":"approved","step":null,"device":null,"closed_by":null}"#;
        assert_eq!(
            answered::<RequestRecord>(request),
            format!(r#"{{"request":{request}}}"#)
        );
        let incident = r#"{"id":"inc-00000000000000a1","kind":"seal_mismatch","device":10000001,"detail":"recorded BAG-1, presented BAG-2","opened_ms":9,"open":true,"acknowledged_by":["alice"]}"#;
        assert_eq!(
            answered::<IncidentRecord>(incident),
            format!(r#"{{"incident":{incident}}}"#)
        );
        assert_eq!(answered::<Vec<IncidentRecord>>("[]"), r#"{"incidents":[]}"#);
    }

    #[test]
    fn a_request_reply_digests_what_the_record_digests() {
        let rec: RequestRecord = serde_json::from_str(r#"{"id":"req-00000000000000a1","account":"123456789012","task":"change-root-password","ticket":"SEC-42","reason":"rotate the root password after the audit","requester":"dave","created_ms":1,"expires_ms":2,"approvals":[],"status":"pending","step":null,"device":null,"closed_by":null}"#).expect("record");
        let reply = RequestReply::from(rec.clone());
        assert_eq!(reply.approval_digest(), rec.approval_digest());
        let mut other = reply.clone();
        other.task = "close-account".into();
        assert_ne!(other.approval_digest(), rec.approval_digest());
    }
}
