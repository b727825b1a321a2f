//! The custody domain's error: one variant per refusal, each naming the request, user, serial
//! or account it is about.

use crate::ledger::LedgerError;
use crate::token::TokenError;

use super::ids::{AccountId, IncidentId, RequestId, SealNumber, Serial, UserName};

/// Why the custody domain refused or failed an operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CustodyError {
    /// A value from outside did not parse (user name, account id, serial, seal, ticket, ...).
    #[error("invalid {what} {input:?}: {reason}")]
    Invalid {
        /// Which kind of value.
        what: &'static str,
        /// The refused input (never a secret).
        input: String,
        /// Why it was refused.
        reason: String,
    },
    /// No such user.
    #[error("unknown user {user}")]
    UnknownUser {
        /// The name given.
        user: UserName,
    },
    /// A user with that name already exists.
    #[error("user {user} already exists")]
    UserExists {
        /// The name.
        user: UserName,
    },
    /// Wrong passphrase or second-factor code (deliberately not told apart).
    #[error("authentication failed for {user}")]
    AuthenticationFailed {
        /// The user.
        user: UserName,
    },
    /// The second-factor code was already used (its time step is spent). Not a failure: the
    /// person knows their secrets and waits for the authenticator's next code.
    #[error(
        "the second-factor code of {user} was already used: {} (this attempt does not count as \
         a failure)",
        next_code_hint(*wait_secs)
    )]
    FactorCodeReused {
        /// The user.
        user: UserName,
        /// Seconds until the first time step after the spent one begins.
        wait_secs: u64,
    },
    /// The passphrase was right and the user has a second factor: the current code of it is
    /// needed too. Never answered before the passphrase is proven.
    #[error(
        "the passphrase of {user} is right; {user} has a second factor: give its current code \
         (custody asks for it after the passphrase)"
    )]
    FactorCodeRequired {
        /// The user.
        user: UserName,
    },
    /// The keyring (unseal) passphrase given to bootstrap an officer does not open that
    /// officer's share of the keyring.
    #[error("the keyring passphrase given for {user} does not open their keyring share")]
    WrongKeyringPassphrase {
        /// The officer named.
        user: UserName,
    },
    /// Too many failed authentications: locked until a time.
    #[error(
        "{user} is locked after failed authentications until {} (two officers can lift it \
         earlier: custody user unlock {user} --by OFFICER --by OFFICER)",
        rfc3339(*until_ms)
    )]
    Locked {
        /// The user.
        user: UserName,
        /// When the lock ends (ms since the epoch).
        until_ms: i64,
    },
    /// The user is suspended.
    #[error("{user} is suspended")]
    Suspended {
        /// The user.
        user: UserName,
    },
    /// The peer's OS uid is not the one bound to the user.
    #[error("{user} is bound to another OS uid (connected as {uid})")]
    WrongUid {
        /// The user.
        user: UserName,
        /// The uid that connected.
        uid: u32,
    },
    /// The session is older than the session lifetime.
    #[error("the session of {user} has expired; authenticate again")]
    SessionExpired {
        /// The user.
        user: UserName,
    },
    /// The operation needs the officer role.
    #[error("{user} is not an officer ({operation})")]
    NotAnOfficer {
        /// The user.
        user: UserName,
        /// The operation refused.
        operation: &'static str,
    },
    /// The operation needs a role the user does not hold.
    #[error("{user} lacks a role allowed to {operation}")]
    RoleRequired {
        /// The user.
        user: UserName,
        /// The operation refused.
        operation: &'static str,
    },
    /// A two-officer operation was given the same officer twice.
    #[error("{operation} needs two different officers; {user} was given twice")]
    SameOfficerTwice {
        /// The officer.
        user: UserName,
        /// The operation refused.
        operation: &'static str,
    },
    /// An officer tried to be one of the two officers of an operation on themselves that
    /// needs two others.
    #[error("{user} may not be one of the two officers for {operation} on their own account; ask two other officers")]
    SubjectIsApprover {
        /// The user the operation is about.
        user: UserName,
        /// The operation refused.
        operation: &'static str,
    },
    /// The requester tried to approve their own request.
    #[error("{user} may not approve their own request {request}")]
    SelfApproval {
        /// The request.
        request: RequestId,
        /// The requester.
        user: UserName,
    },
    /// The officer already approved this request.
    #[error("{user} already approved request {request}")]
    AlreadyApproved {
        /// The request.
        request: RequestId,
        /// The officer.
        user: UserName,
    },
    /// An operation that takes fresh proof was given an older one (a login session opened
    /// more than a minute before).
    #[error(
        "{operation} by {user} takes fresh proof: the login behind this session is more than a \
         minute old; pass --as {user} (passphrase and second-factor code) or log in again"
    )]
    ProofNotFresh {
        /// The user.
        user: UserName,
        /// The operation.
        operation: &'static str,
    },
    /// The approval was given for other request details than the ledger holds (the officer's
    /// screen showed something else, or the approval was redirected).
    #[error(
        "request {request} is not what the approving officer was shown (the digest of its \
         account, task, ticket, reason and requester differs); show it again and approve what \
         it says"
    )]
    ApprovalMismatch {
        /// The request.
        request: RequestId,
    },
    /// A signed approval whose signature does not verify with the officer's registered key
    /// over the message the daemon computed from its own request record.
    #[error(
        "request {request}: the signature of {user}'s approval does not verify with their \
         registered key {key_id} over what the ledger holds for this request; show the \
         request again, ask for a new challenge and sign with the YubiKey registered to you"
    )]
    ApprovalSignatureInvalid {
        /// The request.
        request: RequestId,
        /// The officer.
        user: UserName,
        /// The key the approval named.
        key_id: String,
    },
    /// A signed approval named a nonce the daemon did not issue to this officer for this
    /// request, or one already used or expired.
    #[error(
        "request {request}: the challenge nonce of {user}'s approval is unknown, already used \
         or expired (or was issued to someone else or for another request); ask for a new \
         challenge (`custody approve {request} --sign` does) and sign it within its lifetime"
    )]
    ApprovalNonceUnknown {
        /// The request.
        request: RequestId,
        /// The officer.
        user: UserName,
    },
    /// The officer holds as many unused challenges as the daemon keeps for one officer.
    #[error(
        "{user} holds {cap} unused approval challenges, the most the daemon keeps for one \
         officer; use one, or wait {wait_secs} s for the oldest to expire"
    )]
    ApprovalNoncesExhausted {
        /// The officer.
        user: UserName,
        /// The cap.
        cap: usize,
        /// Seconds until the oldest expires.
        wait_secs: u64,
    },
    /// A signed approval by an officer with no registered key, or naming another key than
    /// the one registered to them.
    #[error(
        "{user} has {}; register the officer's own YubiKey with `custody user key register \
         {user} --witness OFFICER` (two officers), or approve with the TOTP code if the policy \
         allows it", match .registered { Some(k) => format!("registered key {k}, not {}", .given), None => "no registered approval key".to_owned() }
    )]
    SigningKeyNotRegistered {
        /// The officer.
        user: UserName,
        /// The key the approval named.
        given: String,
        /// The key registered to them, if any.
        registered: Option<String>,
    },
    /// The policy (`[policy] approval_proof`) forbids the kind of proof given.
    #[error(
        "{user}: the policy takes only {wanted} approvals (`approval_proof = \"{policy}\"`), \
         and this one was proved by {given}; approve {}", if *.wanted == "signature" { "with `custody approve REQUEST --sign` on your registered YubiKey" } else { "with your passphrase and TOTP code" }
    )]
    ApprovalProofRequired {
        /// The officer.
        user: UserName,
        /// The proof the policy takes (`signature` or `totp`).
        wanted: &'static str,
        /// The proof given.
        given: &'static str,
        /// The policy's value.
        policy: &'static str,
    },
    /// An officer's signature at a two-officer operation does not verify with their
    /// registered key over the digest custodyd computed from the operation it received.
    #[error(
        "{operation}: the signature of {user}'s YubiKey does not verify with their registered \
         key {key_id} over the operation custodyd received (its digest differs from what was \
         signed: another operation, or other parameters); run the command again and sign \
         what it shows with the YubiKey registered to you"
    )]
    PresenceSignatureInvalid {
        /// The operation.
        operation: &'static str,
        /// The officer.
        user: UserName,
        /// The key the signature named.
        key_id: String,
    },
    /// An officer's signature at a two-officer operation named a nonce custodyd did not issue
    /// to this officer for this operation's digest, or one already used or expired.
    #[error(
        "{operation}: the challenge nonce of {user}'s signature is unknown, already used or \
         expired (or was issued to someone else or for another operation); run the command \
         again: it asks for a new challenge, to be signed within its lifetime"
    )]
    PresenceNonceUnknown {
        /// The operation.
        operation: &'static str,
        /// The officer.
        user: UserName,
    },
    /// The policy (`[policy] approval_proof`) forbids the proof an officer of a two-officer
    /// operation gave.
    #[error(
        "{operation}: the policy takes only {wanted} from each officer (`approval_proof = \
         \"{policy}\"`), and {user} proved presence by {given}; {}",
        if *.wanted == "a signature" { "run the command with --sign and touch your registered YubiKey" } else { "run the command without --sign and give your TOTP code" }
    )]
    PresenceProofRequired {
        /// The operation.
        operation: &'static str,
        /// The officer.
        user: UserName,
        /// The proof the policy takes (`a signature` or `a TOTP code`).
        wanted: &'static str,
        /// The proof given.
        given: &'static str,
        /// The policy's value.
        policy: &'static str,
    },
    /// The officer already has a registered approval key.
    #[error(
        "{user} already has the registered approval key {key_id}; one key per officer: remove \
         it first with `custody user key remove {user} --witness OFFICER`, then register the new one"
    )]
    SigningKeyExists {
        /// The officer.
        user: UserName,
        /// The registered key.
        key_id: String,
    },
    /// The officer's key is attested but not made as approval keys must be.
    #[error(
        "{user}'s key in slot 9c has touch policy {touch}; an approval key needs touch policy \
         always (a touch per signature): generate it again with `custody user key register \
         {user} --witness OFFICER --generate`"
    )]
    SigningKeyPolicy {
        /// The officer.
        user: UserName,
        /// Its touch policy.
        touch: String,
    },
    /// The request already has its approvals; no further approval is taken.
    #[error("request {request} is already approved")]
    RequestAlreadyApproved {
        /// The request.
        request: RequestId,
    },
    /// No such request.
    #[error("unknown request {request}")]
    UnknownRequest {
        /// The id given.
        request: RequestId,
    },
    /// The request expired before it was approved or released.
    #[error("request {request} has expired")]
    RequestExpired {
        /// The request.
        request: RequestId,
    },
    /// The request was denied, cancelled or expired earlier.
    #[error("request {request} is closed ({status})")]
    RequestClosed {
        /// The request.
        request: RequestId,
        /// Its final status.
        status: &'static str,
    },
    /// The approvals are older than the approval lifetime.
    #[error("the approvals of request {request} have expired; officers may approve it again until the request itself expires")]
    ApprovalExpired {
        /// The request.
        request: RequestId,
    },
    /// The request does not have enough valid approvals.
    #[error("request {request} is not approved ({approvals} of {threshold} approvals count: those given within the approval lifetime by officers active ever since; officers may approve again)")]
    RequestNotApproved {
        /// The request.
        request: RequestId,
        /// Valid approvals so far.
        approvals: usize,
        /// Approvals needed.
        threshold: usize,
    },
    /// The request already released its code.
    #[error("request {request} already released its code")]
    AlreadyReleased {
        /// The request.
        request: RequestId,
    },
    /// Only the requester may receive the code.
    #[error("only the requester may receive the code of request {request}; {user} is not")]
    NotTheRequester {
        /// The request.
        request: RequestId,
        /// Who asked.
        user: UserName,
    },
    /// The root task is not in the catalogue.
    #[error("unknown root task {task:?}")]
    UnknownTask {
        /// The task given.
        task: String,
    },
    /// No such account.
    #[error("unknown account {account}")]
    UnknownAccount {
        /// The account id.
        account: AccountId,
    },
    /// An account with that id already exists.
    #[error("account {account} already exists")]
    AccountExists {
        /// The account id.
        account: AccountId,
    },
    /// The account's status does not allow the operation.
    #[error("account {account} is {status}; cannot {operation}")]
    AccountNotActive {
        /// The account id.
        account: AccountId,
        /// Its status.
        status: &'static str,
        /// The operation refused.
        operation: &'static str,
    },
    /// No such device.
    #[error("unknown device {serial}")]
    UnknownDevice {
        /// The serial.
        serial: Serial,
    },
    /// A device with that serial already exists.
    #[error("device {serial} already exists")]
    DeviceExists {
        /// The serial.
        serial: Serial,
    },
    /// The device is not in a state that allows the operation.
    #[error("device {serial} is {state}; cannot {operation}")]
    DeviceState {
        /// The serial.
        serial: Serial,
        /// Its current state.
        state: &'static str,
        /// The operation refused.
        operation: &'static str,
    },
    /// The device presented is not the one the ledger holds for this purpose.
    #[error("wrong device: expected {expected}, got {got}")]
    WrongDevice {
        /// The serial the ledger expects.
        expected: Serial,
        /// The serial presented (or found on the card).
        got: Serial,
    },
    /// The device does not match what the ledger knows of it.
    #[error("device {serial} does not reconcile with the ledger: {mismatch}")]
    DeviceMismatch {
        /// The serial.
        serial: Serial,
        /// What differs.
        mismatch: String,
    },
    /// The device's custody key could not be attested: the card keeps its factory PIV
    /// management key and the device stays unattested.
    #[error("device {serial}: attestation refused ({}): {detail}", .why.hint())]
    AttestationRefused {
        /// The serial.
        serial: Serial,
        /// Why, as its refusal code says.
        why: AttestationRefusal,
        /// What the verifier or the card said.
        detail: String,
    },
    /// The account's device is not checked out for this request.
    #[error("no device of account {account} is checked out for request {request}")]
    DeviceNotCheckedOut {
        /// The request.
        request: RequestId,
        /// The account.
        account: AccountId,
    },
    /// The seal number given does not match the one recorded at sealing.
    #[error(
        "seal mismatch on device {serial}: recorded {expected}, presented {got}. Do not open \
         the bag. Incident {incident} is open and blocks the device until two officers \
         acknowledge it. Read the number on the bag again with a second officer: if it was \
         mistyped, acknowledge the incident (custody incident ack {incident} --note \
         \"seal number mistyped\" --by OFFICER --by OFFICER) and check the device out with the \
         right number; if the bag does not carry {expected}, keep it closed and follow the \
         broken-seal runbook (docs/runbooks/incident.md)"
    )]
    SealMismatch {
        /// The device.
        serial: Serial,
        /// The incident the mismatch opened (it blocks the device).
        incident: IncidentId,
        /// The seal recorded.
        expected: SealNumber,
        /// The seal presented.
        got: SealNumber,
    },
    /// A seal number was already used.
    #[error("seal number {seal} was already used")]
    SealReused {
        /// The seal.
        seal: SealNumber,
    },
    /// The ledger's policy refuses codes from devices without an OATH access key, and this
    /// device has none.
    #[error(
        "device {serial} has no OATH access key, and this ledger refuses codes from unlocked \
         devices: two officers lock it first with `custody device lock {serial} --by OFFICER \
         --by OFFICER` (the key out of its bag, in an allowed reader)"
    )]
    DeviceUnlocked {
        /// The device.
        serial: Serial,
    },
    /// The policy requires attested devices (`require_attested_devices`), and this device
    /// has no attested custody key.
    #[error(
        "device {serial} has no attested custody key, and policy.require_attested_devices \
         refuses to {operation}: check it out of its bag if it is in one, then two officers \
         attest it with `custody device attest {serial} --by OFFICER --by OFFICER` (the key in \
         an allowed reader)"
    )]
    DeviceUnattested {
        /// The device.
        serial: Serial,
        /// What was refused (`check it in`, `release a code from it`, ...).
        operation: &'static str,
    },
    /// The device is blocked by an open incident.
    #[error("device {serial} is blocked by open incident {incident}")]
    DeviceBlocked {
        /// The device.
        serial: Serial,
        /// The incident.
        incident: IncidentId,
    },
    /// No such incident.
    #[error("unknown incident {incident}")]
    UnknownIncident {
        /// The id.
        incident: IncidentId,
    },
    /// The incident was already acknowledged.
    #[error("incident {incident} is already closed")]
    IncidentClosed {
        /// The id.
        incident: IncidentId,
    },
    /// The device already holds the account's credential; overwriting needs two officers'
    /// explicit agreement.
    #[error("device {serial} already holds credential {credential:?}")]
    CredentialExists {
        /// The device.
        serial: Serial,
        /// The credential name.
        credential: String,
    },
    /// Primary and backup did not produce the same code for the same step.
    #[error("devices {primary} and {backup} disagree on the code for one time step")]
    DevicesDisagree {
        /// The primary.
        primary: Serial,
        /// The backup.
        backup: Serial,
    },
    /// The seed or `otpauth://` URI is not usable.
    #[error("seed refused: {reason}")]
    BadSeed {
        /// Why (never the seed itself).
        reason: String,
    },
    /// The host clock disagrees with the time witness by more than allowed.
    #[error("host clock is {skew_ms} ms away from the time witness (allowed {allowed_ms} ms)")]
    ClockSkew {
        /// The difference.
        skew_ms: i64,
        /// The bound.
        allowed_ms: i64,
    },
    /// The time witness could not be read.
    #[error("the time witness is not available: {reason}")]
    TimeWitnessUnavailable {
        /// Why.
        reason: String,
    },
    /// The device could not be opened (not present, reader problem).
    #[error("device {serial} is not available: {reason}")]
    DeviceUnavailable {
        /// The serial.
        serial: Serial,
        /// Why.
        reason: String,
    },
    /// The device did not answer within the touch timeout: nobody touched it while it
    /// flashed (or it stopped answering).
    #[error(
        "device {serial} in reader {reader:?} was not touched within touch_timeout_secs (no answer in time)"
    )]
    TouchTimeout {
        /// The serial.
        serial: Serial,
        /// The reader it sits in.
        reader: String,
    },
    /// Talking to the device failed.
    #[error("device {serial}: {source}")]
    Token {
        /// The serial.
        serial: Serial,
        /// The token layer's error.
        #[source]
        source: Box<TokenError>,
    },
    /// The ledger could not record the event; nothing was done.
    #[error("the ledger cannot record {operation}; nothing was done: {source}")]
    LedgerUnavailable {
        /// What was being recorded.
        operation: &'static str,
        /// The ledger's error.
        #[source]
        source: Box<LedgerError>,
    },
    /// A stored record does not parse (the ledger's projection is damaged).
    #[error("stored {entity} record {id:?} is damaged: {reason}")]
    CorruptRecord {
        /// Which entity.
        entity: &'static str,
        /// Its id.
        id: String,
        /// What is wrong.
        reason: String,
    },
    /// A cryptographic operation failed.
    #[error("cryptographic operation failed: {operation}")]
    Crypto {
        /// Which one.
        operation: &'static str,
    },
    /// The export of an account's history failed.
    #[error("export of account {account} failed: {source}")]
    Export {
        /// The account.
        account: AccountId,
        /// The ledger's error.
        #[source]
        source: Box<LedgerError>,
    },
}

impl CustodyError {
    /// The refusal's code: recorded in `custody.refused` events and carried on the wire as
    /// the refusal's `reason`.
    pub fn refusal(&self) -> RefusalCode {
        match self {
            Self::Invalid { .. } => RefusalCode::InvalidInput,
            Self::UnknownUser { .. } => RefusalCode::UnknownUser,
            Self::UserExists { .. } => RefusalCode::UserExists,
            Self::AuthenticationFailed { .. } => RefusalCode::AuthenticationFailed,
            Self::FactorCodeReused { .. } => RefusalCode::FactorCodeReused,
            Self::FactorCodeRequired { .. } => RefusalCode::FactorCodeRequired,
            Self::WrongKeyringPassphrase { .. } => RefusalCode::WrongKeyringPassphrase,
            Self::Locked { .. } => RefusalCode::Locked,
            Self::Suspended { .. } => RefusalCode::Suspended,
            Self::WrongUid { .. } => RefusalCode::WrongUid,
            Self::SessionExpired { .. } => RefusalCode::SessionExpired,
            Self::NotAnOfficer { .. } => RefusalCode::NotAnOfficer,
            Self::RoleRequired { .. } => RefusalCode::RoleRequired,
            Self::SameOfficerTwice { .. } => RefusalCode::SameOfficerTwice,
            Self::ApprovalMismatch { .. } => RefusalCode::ApprovalMismatch,
            Self::ApprovalSignatureInvalid { .. } => RefusalCode::ApprovalSignatureInvalid,
            Self::ApprovalNonceUnknown { .. } => RefusalCode::ApprovalNonceUnknown,
            Self::ApprovalNoncesExhausted { .. } => RefusalCode::ApprovalNoncesExhausted,
            Self::SigningKeyNotRegistered { .. } => RefusalCode::SigningKeyNotRegistered,
            Self::ApprovalProofRequired { .. } => RefusalCode::ApprovalProofRequired,
            Self::PresenceSignatureInvalid { .. } => RefusalCode::ApprovalSignatureInvalid,
            Self::PresenceNonceUnknown { .. } => RefusalCode::ApprovalNonceUnknown,
            Self::PresenceProofRequired { .. } => RefusalCode::ApprovalProofRequired,
            Self::SigningKeyExists { .. } => RefusalCode::SigningKeyExists,
            Self::SigningKeyPolicy { .. } => RefusalCode::SigningKeyPolicy,
            Self::ProofNotFresh { .. } => RefusalCode::ProofNotFresh,
            Self::SubjectIsApprover { .. } => RefusalCode::SubjectIsApprover,
            Self::SelfApproval { .. } => RefusalCode::SelfApproval,
            Self::AlreadyApproved { .. } => RefusalCode::AlreadyApproved,
            Self::RequestAlreadyApproved { .. } => RefusalCode::RequestAlreadyApproved,
            Self::UnknownRequest { .. } => RefusalCode::UnknownRequest,
            Self::RequestExpired { .. } => RefusalCode::RequestExpired,
            Self::RequestClosed { .. } => RefusalCode::RequestClosed,
            Self::ApprovalExpired { .. } => RefusalCode::ApprovalExpired,
            Self::RequestNotApproved { .. } => RefusalCode::RequestNotApproved,
            Self::AlreadyReleased { .. } => RefusalCode::AlreadyReleased,
            Self::NotTheRequester { .. } => RefusalCode::NotTheRequester,
            Self::UnknownTask { .. } => RefusalCode::UnknownTask,
            Self::UnknownAccount { .. } => RefusalCode::UnknownAccount,
            Self::AccountExists { .. } => RefusalCode::AccountExists,
            Self::AccountNotActive { .. } => RefusalCode::AccountNotActive,
            Self::UnknownDevice { .. } => RefusalCode::UnknownDevice,
            Self::DeviceExists { .. } => RefusalCode::DeviceExists,
            Self::DeviceState { .. } => RefusalCode::DeviceState,
            Self::WrongDevice { .. } => RefusalCode::WrongDevice,
            Self::DeviceMismatch { .. } => RefusalCode::DeviceMismatch,
            Self::AttestationRefused { why, .. } => why.refusal(),
            Self::DeviceUnattested { .. } => RefusalCode::DeviceUnattested,
            Self::DeviceNotCheckedOut { .. } => RefusalCode::DeviceNotCheckedOut,
            Self::SealMismatch { .. } => RefusalCode::SealMismatch,
            Self::SealReused { .. } => RefusalCode::SealReused,
            Self::DeviceBlocked { .. } => RefusalCode::DeviceBlocked,
            Self::DeviceUnlocked { .. } => RefusalCode::DeviceUnlocked,
            Self::UnknownIncident { .. } => RefusalCode::UnknownIncident,
            Self::IncidentClosed { .. } => RefusalCode::IncidentClosed,
            Self::CredentialExists { .. } => RefusalCode::CredentialExists,
            Self::DevicesDisagree { .. } => RefusalCode::DevicesDisagree,
            Self::BadSeed { .. } => RefusalCode::BadSeed,
            Self::ClockSkew { .. } => RefusalCode::ClockSkew,
            Self::TimeWitnessUnavailable { .. } => RefusalCode::TimeWitnessUnavailable,
            Self::DeviceUnavailable { .. } => RefusalCode::DeviceUnavailable,
            Self::Token { .. } => RefusalCode::TokenError,
            Self::TouchTimeout { .. } => RefusalCode::TouchTimeout,
            Self::LedgerUnavailable { .. } => RefusalCode::LedgerUnavailable,
            Self::CorruptRecord { .. } => RefusalCode::CorruptRecord,
            Self::Crypto { .. } => RefusalCode::Crypto,
            Self::Export { .. } => RefusalCode::ExportFailed,
        }
    }

    /// The refusal's code as text (its wire name).
    pub fn code(&self) -> &'static str {
        self.refusal().as_str()
    }

    pub(crate) fn invalid(what: &'static str, input: &str, reason: impl Into<String>) -> Self {
        let mut shown: String = input.chars().take(80).collect();
        if input.chars().count() > 80 {
            shown.push('…');
        }
        Self::Invalid {
            what,
            input: shown,
            reason: reason.into(),
        }
    }
}

/// Why a custody key's attestation was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttestationRefusal {
    /// The chain does not verify up to the configured trust anchors (not a genuine YubiKey,
    /// or a certificate that is malformed, expired or of another slot).
    Untrusted,
    /// The attestation names another serial than the device's.
    SerialMismatch,
    /// The card is not a YubiKey with PIV that can generate and attest a P-256 key with its
    /// factory management key.
    Unsupported,
}

impl AttestationRefusal {
    /// Its refusal code.
    pub fn refusal(self) -> RefusalCode {
        match self {
            Self::Untrusted => RefusalCode::AttestationUntrusted,
            Self::SerialMismatch => RefusalCode::AttestationSerialMismatch,
            Self::Unsupported => RefusalCode::AttestationUnsupported,
        }
    }

    /// Its refusal code as text (`attestation_untrusted`, ...).
    pub fn code(self) -> &'static str {
        self.refusal().as_str()
    }

    /// What the refusal means for the officers, and what to do.
    pub fn hint(self) -> &'static str {
        match self {
            Self::Untrusted => {
                "the attestation does not chain to a trusted Yubico root: treat the key as \
                 counterfeit until shown otherwise"
            }
            Self::SerialMismatch => {
                "the attestation belongs to another device than the serial the key reports"
            }
            Self::Unsupported => "the key cannot be given an attested custody key",
        }
    }
}

/// `ms` since the epoch as RFC 3339 UTC to the second (`2026-12-01T18:47:45Z`), as every
/// message and human output shows a time.
pub(crate) fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).map_or_else(
        |_| format!("{ms} ms since the epoch (out of range)"),
        |t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
    )
}

/// What an officer whose code was already used does next.
fn next_code_hint(wait_secs: u64) -> String {
    if wait_secs == 0 {
        "give the authenticator's current code instead".to_owned()
    } else {
        format!("wait {wait_secs} s for the authenticator's next code and give that one")
    }
}

/// The code of a refusal: one name per reason the domain or the daemon refuses, as the
/// `reason` of a refusal on the wire and the `refusal` of a `custody.refused` event. The wire
/// name is the snake_case form of the variant. A code this build does not know (from a newer
/// daemon) reads as [`RefusalCode::Unrecognized`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RefusalCode {
    /// A value from outside did not parse (user name, account id, serial, seal, ticket, ...).
    InvalidInput,
    /// No such user.
    UnknownUser,
    /// A user with that name already exists.
    UserExists,
    /// Wrong passphrase or second-factor code (deliberately not told apart).
    AuthenticationFailed,
    /// The second-factor code was already used (its time step is spent).
    FactorCodeReused,
    /// The passphrase was right; the user's second-factor code is needed too (answered with a
    /// single-use continuation for the second round).
    FactorCodeRequired,
    /// The keyring (unseal) passphrase given to bootstrap an officer does not open that officer's share of the keyring.
    WrongKeyringPassphrase,
    /// Too many failed authentications: locked until a time.
    Locked,
    /// The user is suspended.
    Suspended,
    /// The peer's OS uid is not the one bound to the user.
    WrongUid,
    /// The session is older than the session lifetime.
    SessionExpired,
    /// The operation needs the officer role.
    NotAnOfficer,
    /// The operation needs a role the user does not hold.
    RoleRequired,
    /// A two-officer operation was given the same officer twice.
    SameOfficerTwice,
    /// The approval was given for other request details than the ledger holds (the officer's screen showed something else, or the approval was redirected).
    ApprovalMismatch,
    /// A signed approval's signature does not verify with the officer's registered key.
    ApprovalSignatureInvalid,
    /// A signed approval's nonce was not issued to this officer for this request, or is used or expired.
    ApprovalNonceUnknown,
    /// The officer holds as many unused approval challenges as the daemon keeps for one officer.
    ApprovalNoncesExhausted,
    /// The officer has no registered approval key, or the approval named another key.
    SigningKeyNotRegistered,
    /// The policy (`approval_proof`) forbids the kind of proof the approval gave.
    ApprovalProofRequired,
    /// The officer already has a registered approval key (remove it first).
    SigningKeyExists,
    /// The officer's key is not made as approval keys must be (touch policy always).
    SigningKeyPolicy,
    /// An operation that takes fresh proof was given an older one (a login session opened more than a minute before).
    ProofNotFresh,
    /// An officer tried to be one of the two officers of an operation on themselves that needs two others.
    SubjectIsApprover,
    /// The requester tried to approve their own request.
    SelfApproval,
    /// The officer already approved this request.
    AlreadyApproved,
    /// The request already has its approvals; no further approval is taken.
    RequestAlreadyApproved,
    /// No such request.
    UnknownRequest,
    /// The request expired before it was approved or released.
    RequestExpired,
    /// The request was denied, cancelled or expired earlier.
    RequestClosed,
    /// The approvals are older than the approval lifetime.
    ApprovalExpired,
    /// The request does not have enough valid approvals.
    RequestNotApproved,
    /// The request already released its code.
    AlreadyReleased,
    /// Only the requester may receive the code.
    NotTheRequester,
    /// The root task is not in the catalogue.
    UnknownTask,
    /// No such account.
    UnknownAccount,
    /// An account with that id already exists.
    AccountExists,
    /// The account's status does not allow the operation.
    AccountNotActive,
    /// No such device.
    UnknownDevice,
    /// A device with that serial already exists.
    DeviceExists,
    /// The device is not in a state that allows the operation.
    DeviceState,
    /// The device presented is not the one the ledger holds for this purpose.
    WrongDevice,
    /// The device does not match what the ledger knows of it.
    DeviceMismatch,
    /// A custody key's attestation does not chain to the configured trust anchors.
    AttestationUntrusted,
    /// A custody key's attestation names another serial than the device's.
    AttestationSerialMismatch,
    /// The card cannot be given an attested custody key (no PIV applet, or not P-256).
    AttestationUnsupported,
    /// The account's device is not checked out for this request.
    DeviceNotCheckedOut,
    /// The seal number given does not match the one recorded at sealing.
    SealMismatch,
    /// A seal number was already used.
    SealReused,
    /// The device is blocked by an open incident.
    DeviceBlocked,
    /// The policy refuses codes from a device without an OATH access key.
    DeviceUnlocked,
    /// The policy requires attested devices and the device has no attested custody key.
    DeviceUnattested,
    /// No such incident.
    UnknownIncident,
    /// The incident was already acknowledged.
    IncidentClosed,
    /// The device already holds the account's credential; overwriting needs two officers' explicit agreement.
    CredentialExists,
    /// Primary and backup did not produce the same code for the same step.
    DevicesDisagree,
    /// The seed or `otpauth://` URI is not usable.
    BadSeed,
    /// The host clock disagrees with the time witness by more than allowed.
    ClockSkew,
    /// The time witness could not be read.
    TimeWitnessUnavailable,
    /// The device could not be opened (not present, reader problem).
    DeviceUnavailable,
    /// Talking to the device failed.
    TokenError,
    /// The device did not answer within the touch timeout: nobody touched it while it flashed (or it stopped answering).
    TouchTimeout,
    /// The ledger could not record the event; nothing was done.
    LedgerUnavailable,
    /// A stored record does not parse (the ledger's projection is damaged).
    CorruptRecord,
    /// A cryptographic operation failed.
    Crypto,
    /// The export of an account's history failed.
    ExportFailed,
    /// An anonymous request for an operation that needs a login session.
    AuthenticationRequired,
    /// Too many failed attempts in a row, or another attempt of the same person is being checked.
    Throttled,
    /// The session token is not one the daemon knows (never issued, ended, or malformed).
    SessionUnknown,
    /// The session token was offered by another OS uid than the one that logged in.
    SessionWrongUid,
    /// The continuation of a two-round authentication is not one the daemon holds for this
    /// person and peer (never issued, already used, expired, or offered by another process).
    ContinuationInvalid,
    /// The daemon could not draw a session token.
    NoRandomness,
    /// A code this build does not know.
    #[serde(other)]
    Unrecognized,
}

impl RefusalCode {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidInput => "invalid_input",
            Self::UnknownUser => "unknown_user",
            Self::UserExists => "user_exists",
            Self::AuthenticationFailed => "authentication_failed",
            Self::FactorCodeReused => "factor_code_reused",
            Self::FactorCodeRequired => "factor_code_required",
            Self::WrongKeyringPassphrase => "wrong_keyring_passphrase",
            Self::Locked => "locked",
            Self::Suspended => "suspended",
            Self::WrongUid => "wrong_uid",
            Self::SessionExpired => "session_expired",
            Self::NotAnOfficer => "not_an_officer",
            Self::RoleRequired => "role_required",
            Self::SameOfficerTwice => "same_officer_twice",
            Self::ApprovalMismatch => "approval_mismatch",
            Self::ApprovalSignatureInvalid => "approval_signature_invalid",
            Self::ApprovalNonceUnknown => "approval_nonce_unknown",
            Self::ApprovalNoncesExhausted => "approval_nonces_exhausted",
            Self::SigningKeyNotRegistered => "signing_key_not_registered",
            Self::ApprovalProofRequired => "approval_proof_required",
            Self::SigningKeyExists => "signing_key_exists",
            Self::SigningKeyPolicy => "signing_key_policy",
            Self::ProofNotFresh => "proof_not_fresh",
            Self::SubjectIsApprover => "subject_is_approver",
            Self::SelfApproval => "self_approval",
            Self::AlreadyApproved => "already_approved",
            Self::RequestAlreadyApproved => "request_already_approved",
            Self::UnknownRequest => "unknown_request",
            Self::RequestExpired => "request_expired",
            Self::RequestClosed => "request_closed",
            Self::ApprovalExpired => "approval_expired",
            Self::RequestNotApproved => "request_not_approved",
            Self::AlreadyReleased => "already_released",
            Self::NotTheRequester => "not_the_requester",
            Self::UnknownTask => "unknown_task",
            Self::UnknownAccount => "unknown_account",
            Self::AccountExists => "account_exists",
            Self::AccountNotActive => "account_not_active",
            Self::UnknownDevice => "unknown_device",
            Self::DeviceExists => "device_exists",
            Self::DeviceState => "device_state",
            Self::WrongDevice => "wrong_device",
            Self::DeviceMismatch => "device_mismatch",
            Self::AttestationUntrusted => "attestation_untrusted",
            Self::AttestationSerialMismatch => "attestation_serial_mismatch",
            Self::AttestationUnsupported => "attestation_unsupported",
            Self::DeviceNotCheckedOut => "device_not_checked_out",
            Self::SealMismatch => "seal_mismatch",
            Self::SealReused => "seal_reused",
            Self::DeviceBlocked => "device_blocked",
            Self::DeviceUnlocked => "device_unlocked",
            Self::DeviceUnattested => "device_unattested",
            Self::UnknownIncident => "unknown_incident",
            Self::IncidentClosed => "incident_closed",
            Self::CredentialExists => "credential_exists",
            Self::DevicesDisagree => "devices_disagree",
            Self::BadSeed => "bad_seed",
            Self::ClockSkew => "clock_skew",
            Self::TimeWitnessUnavailable => "time_witness_unavailable",
            Self::DeviceUnavailable => "device_unavailable",
            Self::TokenError => "token_error",
            Self::TouchTimeout => "touch_timeout",
            Self::LedgerUnavailable => "ledger_unavailable",
            Self::CorruptRecord => "corrupt_record",
            Self::Crypto => "crypto",
            Self::ExportFailed => "export_failed",
            Self::AuthenticationRequired => "authentication_required",
            Self::Throttled => "throttled",
            Self::SessionUnknown => "session_unknown",
            Self::SessionWrongUid => "session_wrong_uid",
            Self::ContinuationInvalid => "continuation_invalid",
            Self::NoRandomness => "no_randomness",
            Self::Unrecognized => "unrecognized",
        }
    }
}

impl std::fmt::Display for RefusalCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
