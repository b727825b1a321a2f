//! The domain's current-state records, as kept in the `custody_records` projection table and
//! carried in event bodies. They hold no secret: credentials are sealed (see `users`).

use serde::{Deserialize, Serialize};

use super::ids::{
    AccountId, Alias, Email, IncidentId, Location, Provider, Reason, RequestId, SealNumber, Serial,
    TicketRef, UserName,
};

/// A role a user holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Enrols, approves, runs ceremonies, keeps the safe.
    Officer,
    /// Requests codes for root tasks.
    Operator,
    /// Reads and exports.
    Auditor,
}

impl Role {
    /// Parses `officer`, `operator` or `auditor`.
    pub fn parse(s: &str) -> Result<Self, super::error::CustodyError> {
        match s {
            "officer" => Ok(Self::Officer),
            "operator" => Ok(Self::Operator),
            "auditor" => Ok(Self::Auditor),
            _ => Err(super::error::CustodyError::invalid(
                "role",
                s,
                "must be officer, operator or auditor",
            )),
        }
    }

    /// The text form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Officer => "officer",
            Self::Operator => "operator",
            Self::Auditor => "auditor",
        }
    }
}

/// A user as the domain knows them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
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
    /// The last second-factor time step accepted (never accepted again).
    pub last_factor_step: Option<u64>,
    /// How many times the user has been suspended. An approval records the count its officer
    /// had when giving it and counts only while the count is unchanged, so a suspension ends
    /// every approval given before it, reinstatement or not. Absent (0) in records written
    /// before the count existed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub suspensions: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl UserRecord {
    /// Whether the user holds `role`.
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

/// An account's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountStatus {
    /// In use; codes may be requested.
    Active,
    /// The root user's credentials were removed at the provider; devices kept.
    RootCredentialsRemoved,
    /// Closed; its devices are retired.
    Closed,
}

impl AccountStatus {
    /// The text form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::RootCredentialsRemoved => "root_credentials_removed",
            Self::Closed => "closed",
        }
    }
}

/// A cloud account whose root user's MFA seed is held on devices.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRecord {
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
    /// The last TOTP step a code was released for (never twice in one step).
    pub last_release_step: Option<u64>,
    /// True once two officers stored the root user's console password (sealed, never here).
    /// Absent in records written before root passwords were held.
    #[serde(default, skip_serializing_if = "is_false")]
    pub root_password: bool,
    /// True after a release handed the root password out, until a new one is set.
    #[serde(default, skip_serializing_if = "is_false")]
    pub password_rotation_due: bool,
}

/// Primary or backup device of an account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceRole {
    /// Used for sign-ins.
    Primary,
    /// Kept apart; used when the primary is lost.
    Backup,
}

/// Where a device is in its life.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum DeviceState {
    /// Known to the ledger, not yet programmed.
    Registered,
    /// Programmed with its account's credential, not yet sealed.
    Enrolled,
    /// In a sealed bag in the safe.
    InSafe {
        /// Where.
        location: Location,
        /// The bag's seal.
        seal: SealNumber,
    },
    /// Out of the safe with a custodian.
    CheckedOut {
        /// Who holds it.
        custodian: UserName,
        /// The request it was taken out for.
        request: Option<RequestId>,
        /// Since when (ms since the epoch).
        since_ms: i64,
    },
    /// No longer used (account closed or replaced).
    Retired,
    /// Lost.
    Lost,
    /// Destroyed.
    Destroyed,
    /// Custody handed to another organisation.
    Released,
}

impl DeviceState {
    /// The state's name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Registered => "registered",
            Self::Enrolled => "enrolled",
            Self::InSafe { .. } => "in_safe",
            Self::CheckedOut { .. } => "checked_out",
            Self::Retired => "retired",
            Self::Lost => "lost",
            Self::Destroyed => "destroyed",
            Self::Released => "released",
        }
    }

    /// True for `retired`, `lost`, `destroyed`, `released`.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Self::Retired | Self::Lost | Self::Destroyed | Self::Released
        )
    }
}

/// A YubiKey in custody.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRecord {
    /// Serial.
    pub serial: Serial,
    /// Firmware `X.Y.Z`, as read at registration.
    pub firmware: String,
    /// OATH device id, as read at registration.
    pub device_id: String,
    /// Primary or backup.
    pub role: DeviceRole,
    /// The account it holds the credential of (from enrolment).
    pub account: Option<AccountId>,
    /// Its state.
    pub state: DeviceState,
    /// An open incident that blocks it.
    pub blocked_by: Option<IncidentId>,
    /// True once enrolment locked its OATH applet with an access key that only the ledger
    /// holds (sealed); every later use then starts with VALIDATE. The key is never here.
    #[serde(default, skip_serializing_if = "is_false")]
    pub oath_access_key: bool,
    /// True while the clearing of its access key from the card (retire, custody release) is
    /// recorded as intended and not yet done: the operation, run again, accepts a card that
    /// already asks for no key. Absent in records written before.
    #[serde(default, skip_serializing_if = "is_false")]
    pub access_key_clearing: bool,
    /// The attested custody key every reconciliation challenges (see
    /// [`crate::token::piv::custody`]). Absent for devices registered before attestation: those
    /// are not challenged until attested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custody_key: Option<CustodyKey>,
}

/// A device's attested custody key as the ledger records it (public material only).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustodyKey {
    /// The PIV slot it lives in (`9e`).
    pub slot: String,
    /// Its SubjectPublicKeyInfo, DER, standard Base64.
    pub spki: String,
    /// SHA-256 of the SPKI, lowercase hex (the attestation's key id).
    pub key_id: String,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A request's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestStatus {
    /// Waiting for approvals.
    Pending,
    /// Approved by enough officers.
    Approved,
    /// The intent to compute the code is recorded.
    Issuing,
    /// The code was released.
    Released,
    /// An officer denied it.
    Denied,
    /// It expired.
    Expired,
    /// The requester cancelled it.
    Cancelled,
}

impl RequestStatus {
    /// The text form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Issuing => "issuing",
            Self::Released => "released",
            Self::Denied => "denied",
            Self::Expired => "expired",
            Self::Cancelled => "cancelled",
        }
    }
}

/// One officer's approval.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// The officer.
    pub officer: UserName,
    /// When (ms since the epoch).
    pub at_ms: i64,
    /// The officer's suspension count ([`UserRecord::suspensions`]) when they approved: the
    /// approval counts only while the officer's count is still this (never suspended since).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub suspensions: u32,
}

/// A request for one root code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecord {
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
    pub approvals: Vec<Approval>,
    /// Status.
    pub status: RequestStatus,
    /// The step the code was computed for, once issuing.
    pub step: Option<u64>,
    /// The device that computed it, once issuing.
    pub device: Option<Serial>,
    /// Who denied or cancelled it.
    pub closed_by: Option<UserName>,
}

impl RequestRecord {
    /// The digest of what an approving officer is shown: the request id, account, task,
    /// ticket, reason and requester (SHA-256, hex). An approval carries the digest the
    /// officer's screen computed, and is refused when it differs from the record's, so an
    /// approval cannot land on anything but what the officer read.
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

/// The approval digest ([`RequestRecord::approval_digest`]) of a request's id, account, task,
/// ticket, reason and requester, in that order: what a screen showing a request computes.
pub fn approval_digest(shown: [&str; 6]) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(b"mfa-custody approval v1");
    for field in shown {
        // Length-prefixed: no two field lists encode alike.
        ctx.update(&(field.len() as u64).to_be_bytes());
        ctx.update(field.as_bytes());
    }
    data_encoding::HEXLOWER.encode(ctx.finish().as_ref())
}

/// What an officer's YubiKey signs to approve a request (ECDSA P-256 over SHA-256 of these
/// bytes): what the approving screen showed (as for [`approval_digest`]: request id, account,
/// task, ticket, reason, requester), then the officer, the id of the officer's registered key
/// (SHA-256 hex of its SubjectPublicKeyInfo) and the daemon's single-use nonce (hex), each
/// length-prefixed. The card is given the SHA-256 of this message; an auditor checks the
/// signature against the message offline with the officer's registered public key.
pub fn signed_approval_message(
    shown: [&str; 6],
    officer: &str,
    key_id: &str,
    nonce_hex: &str,
) -> Vec<u8> {
    length_prefixed(
        b"mfa-custody approval signature v1",
        shown.into_iter().chain([officer, key_id, nonce_hex]),
    )
}

/// `tag`, then each field length-prefixed (8 bytes, big-endian): no two field lists encode
/// alike, and no message of one tag is one of another.
fn length_prefixed<'a>(tag: &[u8], fields: impl IntoIterator<Item = &'a str>) -> Vec<u8> {
    let mut m = tag.to_vec();
    for field in fields {
        m.extend_from_slice(&(field.len() as u64).to_be_bytes());
        m.extend_from_slice(field.as_bytes());
    }
    m
}

/// The digest (SHA-256, hex) of what a two-officer operation does: its name, then each
/// parameter's name and value as the command line shows them (never a secret), in order.
/// The officers' screens compute it from the operation they send; custodyd computes it again
/// from the operation it received; an auditor computes it from the `presence` an event
/// records.
pub fn operation_digest(operation: &str, parameters: &[(String, String)]) -> String {
    let fields = std::iter::once(operation)
        .chain(
            parameters
                .iter()
                .flat_map(|(k, v)| [k.as_str(), v.as_str()]),
        )
        .collect::<Vec<_>>();
    let m = length_prefixed(b"mfa-custody operation v1", fields);
    signed_approval_digest(&m)
}

/// What an officer's YubiKey signs to prove their presence at a two-officer operation (ECDSA
/// P-256 over SHA-256 of these bytes): the [`operation_digest`], the officer, the id of their
/// registered key and the daemon's single-use nonce (hex), each length-prefixed, under a tag of
/// its own (a presence signature is never an approval signature, nor the reverse).
pub fn signed_presence_message(
    operation_digest: &str,
    officer: &str,
    key_id: &str,
    nonce_hex: &str,
) -> Vec<u8> {
    length_prefixed(
        b"mfa-custody presence signature v1",
        [operation_digest, officer, key_id, nonce_hex],
    )
}

/// The SHA-256 (hex) of [`signed_approval_message`]: the `digest` a signed `request.approved`
/// records, and what the card signs.
pub fn signed_approval_digest(message: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(ring::digest::digest(&ring::digest::SHA256, message).as_ref())
}

/// What an incident is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentKind {
    /// The seal presented did not match the one recorded.
    SealMismatch,
    /// The device did not reconcile with the ledger.
    DeviceMismatch,
    /// A device was not presented at an inventory audit.
    DeviceMissing,
    /// A device was reported lost.
    DeviceLost,
    /// Anything else an officer reports.
    Other,
}

impl IncidentKind {
    /// The text form (as in JSON).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SealMismatch => "seal_mismatch",
            Self::DeviceMismatch => "device_mismatch",
            Self::DeviceMissing => "device_missing",
            Self::DeviceLost => "device_lost",
            Self::Other => "other",
        }
    }
}

/// An incident and its acknowledgements.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentRecord {
    /// Id.
    pub id: IncidentId,
    /// Kind.
    pub kind: IncidentKind,
    /// The device concerned.
    pub device: Option<Serial>,
    /// What happened (no secrets).
    pub detail: String,
    /// Opened (ms since the epoch).
    pub opened_ms: i64,
    /// Open until two officers acknowledge.
    pub open: bool,
    /// Officers who acknowledged.
    pub acknowledged_by: Vec<UserName>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHOWN: [&str; 6] = ["r1", "acct", "support_plan", "T-1", "why", "olivia"];

    #[test]
    fn every_signed_field_changes_the_message_and_none_can_slide_into_its_neighbour() {
        let base = signed_approval_message(SHOWN, "alice", "kid", "00ff");
        for i in 0..6 {
            let mut shown = SHOWN;
            let changed = format!("{}x", shown[i]);
            shown[i] = &changed;
            assert_ne!(signed_approval_message(shown, "alice", "kid", "00ff"), base);
        }
        assert_ne!(signed_approval_message(SHOWN, "bob", "kid", "00ff"), base);
        assert_ne!(signed_approval_message(SHOWN, "alice", "kie", "00ff"), base);
        assert_ne!(signed_approval_message(SHOWN, "alice", "kid", "00fe"), base);
        // Moving a character across a field boundary is a different message.
        assert_ne!(signed_approval_message(SHOWN, "alicek", "id", "00ff"), base);
        // Not the TOTP approval digest's domain either.
        assert_ne!(signed_approval_digest(&base), approval_digest(SHOWN));
        assert_eq!(signed_approval_digest(&base).len(), 64);
    }

    #[test]
    fn every_operation_parameter_changes_its_digest_and_presence_is_not_approval() {
        let p = |v: &[(&str, &str)]| {
            v.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<Vec<_>>()
        };
        let base = operation_digest(
            "user_set_active",
            &p(&[("name", "bob"), ("active", "false")]),
        );
        for other in [
            operation_digest("user_unlock", &p(&[("name", "bob"), ("active", "false")])),
            operation_digest(
                "user_set_active",
                &p(&[("name", "bob"), ("active", "true")]),
            ),
            operation_digest(
                "user_set_active",
                &p(&[("name", "bo"), ("bactive", "false")]),
            ),
            operation_digest("user_set_active", &p(&[("name", "bob")])),
        ] {
            assert_ne!(other, base);
        }
        let m = signed_presence_message(&base, "alice", "kid", "00ff");
        assert_ne!(m, signed_presence_message(&base, "carol", "kid", "00ff"));
        assert_ne!(m, signed_presence_message(&base, "alice", "kid", "00fe"));
        assert!(!m.starts_with(b"mfa-custody approval"));
    }
}
