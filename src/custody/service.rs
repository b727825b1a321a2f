//! [`Custody`]: the domain's facade. It owns the ledger, decides every operation by the
//! [`Policy`], records each decision (and each refusal) as an event, and talks to devices only
//! through [`DeviceAccess`](super::DeviceAccess).

use serde_json::{json, Value};
use zeroize::Zeroizing;

use crate::ledger::{Actor, Kind, Ledger, LedgerId, NewEvent, Projections, StoredEvent, Timestamp};
use crate::token::oath::{Code, CredentialName};

use super::access::{Clock, SystemClock, TimeWitness};
use super::error::CustodyError;
use super::ids::{
    AccountId, Alias, Email, IncidentId, Provider, RequestId, SealNumber, Serial, UserName,
};
use super::policy::Policy;
use super::records::Role;
use super::secret::{FactorCode, ProviderSeed, UserPassphrase};
use super::store::{self, entity, kinds, CustodyProjection, Put};
use super::users::{Credential, SealedCredential, CREDENTIAL_KEY_PURPOSE};

/// What a user offers to authenticate. Officers add their second-factor code; the daemon adds
/// the peer's OS uid.
#[derive(Debug)]
pub struct Credentials {
    /// Who.
    pub user: UserName,
    /// Their passphrase.
    pub passphrase: UserPassphrase,
    /// Officers: the current code of their personal TOTP second factor.
    pub factor: Option<FactorCode>,
    /// The OS uid the request came from, when known.
    pub uid: Option<u32>,
}

/// Proof that a user authenticated at a time. Only [`Custody::authenticate`] makes one; it is
/// good for the policy's session lifetime and only while the user stays active.
#[derive(Clone, Debug)]
pub struct Session {
    pub(super) user: UserName,
    pub(super) at_ms: i64,
    pub(super) ledger: LedgerId,
    /// The nonce of the signature by which the officer proved presence at the two-officer
    /// operation this session was made for ([`Custody::prove_presence`]); none after a TOTP
    /// code.
    pub(super) presence: Option<String>,
}

impl Session {
    /// The user.
    pub fn user(&self) -> &UserName {
        &self.user
    }

    /// When they authenticated (ms since the epoch).
    pub fn authenticated_at_ms(&self) -> i64 {
        self.at_ms
    }

    /// A session of `user` at `at_ms` on no ledger, for unit tests of code that keeps
    /// sessions.
    #[cfg(test)]
    pub(crate) fn for_tests(user: UserName, at_ms: i64) -> Self {
        Self {
            user,
            at_ms,
            ledger: LedgerId([0; 16]),
            presence: None,
        }
    }
}

/// A new user.
#[derive(Debug)]
pub struct NewUser {
    /// Name.
    pub name: UserName,
    /// Roles (at least one).
    pub roles: Vec<Role>,
    /// Bound OS uid.
    pub uid: Option<u32>,
    /// Initial passphrase.
    pub passphrase: UserPassphrase,
}

/// A new account.
#[derive(Clone, Debug)]
pub struct NewAccount {
    /// Provider.
    pub provider: Provider,
    /// Account id (parse it with [`Provider::parse_account_id`]).
    pub account: AccountId,
    /// Alias.
    pub alias: Alias,
    /// Root e-mail.
    pub root_email: Email,
    /// OATH credential name on its devices (`issuer:account`).
    pub credential: CredentialName,
}

/// A new request, as typed by the requester (ticket and reason are parsed against the policy).
#[derive(Clone, Debug)]
pub struct NewRequest {
    /// The account.
    pub account: AccountId,
    /// The root task's catalogue id.
    pub task: String,
    /// The ticket reference.
    pub ticket: String,
    /// Why.
    pub reason: String,
}

/// A released code: shown to the requester once.
#[derive(Debug)]
pub struct ReleasedCode {
    /// The request.
    pub request: RequestId,
    /// The code (zeroized on drop; `Debug` hides it).
    pub code: Code,
    /// The TOTP step it is for.
    pub step: u64,
    /// Seconds until the step ends.
    pub seconds_remaining: u64,
    /// The device that computed it.
    pub device: Serial,
    /// The root user's console password, when the task needs it and the ledger holds one
    /// (zeroized on drop; `Debug` hides it).
    pub password: Option<super::root_password::RootPassword>,
}

/// What an enrolment ceremony programs.
#[derive(Debug)]
pub struct Enrolment {
    /// The account.
    pub account: AccountId,
    /// Its primary device.
    pub primary: Serial,
    /// Its backup device.
    pub backup: Serial,
    /// The provider's seed (consumed; zeroized when the ceremony ends).
    pub seed: ProviderSeed,
    /// Both officers agree to overwrite an existing credential of that name.
    pub overwrite: bool,
}

/// Two consecutive codes for the provider's confirmation.
#[derive(Debug)]
pub struct EnrolmentCodes {
    /// Code for `first_step`.
    pub first: Code,
    /// Code for `first_step + 1`.
    pub second: Code,
    /// The first step.
    pub first_step: u64,
}

/// A device presented at an inventory audit.
#[derive(Clone, Debug)]
pub struct Presented {
    /// Its serial.
    pub serial: Serial,
    /// The seal on its bag, when it is in one.
    pub seal: Option<SealNumber>,
}

/// What an inventory audit found.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct AuditReport {
    /// Devices checked and fine.
    pub ok: Vec<Serial>,
    /// Incidents opened.
    pub incidents: Vec<IncidentId>,
    /// Serials presented that the ledger does not know.
    pub unknown: Vec<Serial>,
    /// Devices among `ok` without an OATH access key (enrolled before devices were locked):
    /// any OATH tool lists and computes their codes. Two officers lock each with `custody
    /// device lock`. Absent in replies of daemons that did not check it.
    #[serde(default)]
    pub unlocked: Vec<Serial>,
}

/// A terminal state an officer pair may put a device in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Terminal {
    /// No longer used.
    Retired,
    /// Lost (opens an incident).
    Lost,
    /// Destroyed.
    Destroyed,
}

/// The custody service.
pub struct Custody {
    pub(super) ledger: Ledger,
    pub(super) policy: Policy,
    pub(super) clock: Box<dyn Clock>,
    pub(super) witness: Option<Box<dyn TimeWitness>>,
    pub(super) credential_key: Zeroizing<[u8; 32]>,
    pub(super) refusals: super::refusals::RefusalCounts,
    /// Approval challenges issued and not yet used (memory only, never in the ledger).
    pub(super) challenges: super::approval_keys::Challenges,
    /// Presence signatures verified for two-officer operations, until the operation's event
    /// records them (memory only; see [`super::presence`]). A cell: the checks of an officer
    /// pair, which take `&self`, hand them to the next event.
    pub(super) presence: std::cell::RefCell<super::presence::Proofs>,
}

impl std::fmt::Debug for Custody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Custody")
            .field("ledger", &self.ledger)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

pub(super) fn actor(name: &str) -> Actor {
    Actor::parse(name).unwrap_or_else(|_| {
        Actor::parse("custody").unwrap_or_else(|_| unreachable!("\"custody\" is a valid actor"))
    })
}

pub(super) fn pair(a: &UserName, b: &UserName) -> String {
    format!("{a}+{b}")
}

pub(super) fn op_err(
    operation: &'static str,
) -> impl FnOnce(crate::ledger::LedgerError) -> CustodyError {
    move |source| CustodyError::LedgerUnavailable {
        operation,
        source: Box::new(source),
    }
}

pub(super) fn token_err(serial: Serial) -> impl FnOnce(crate::token::TokenError) -> CustodyError {
    move |source| match source {
        // The device access gives a card no longer than the touch timeout to answer.
        crate::token::TokenError::Transport {
            reader,
            source: crate::token::TransportError::Timeout { .. },
            ..
        } => CustodyError::TouchTimeout { serial, reader },
        source => CustodyError::Token {
            serial,
            source: Box::new(source),
        },
    }
}

pub(super) fn sorted_roles(mut roles: Vec<Role>) -> Result<Vec<Role>, CustodyError> {
    roles.sort();
    roles.dedup();
    if roles.is_empty() {
        return Err(CustodyError::invalid("roles", "", "at least one role"));
    }
    Ok(roles)
}

impl Custody {
    /// The projections a ledger must be opened (or created) with for the custody domain.
    pub fn projections() -> Result<Projections, CustodyError> {
        let mut p = Projections::ledger_only();
        p.register(Box::new(CustodyProjection))
            .map_err(op_err("register projections"))?;
        Ok(p)
    }

    /// The service over an unsealed ledger (opened with [`Custody::projections`]), with the
    /// system clock.
    pub fn new(ledger: Ledger, policy: Policy) -> Result<Self, CustodyError> {
        Self::with_clock(ledger, policy, Box::new(SystemClock))
    }

    /// The service with another clock (tests that control time steps).
    pub fn with_clock(
        ledger: Ledger,
        policy: Policy,
        clock: Box<dyn Clock>,
    ) -> Result<Self, CustodyError> {
        let credential_key = ledger
            .derive_key(CREDENTIAL_KEY_PURPOSE)
            .map_err(op_err("derive credential key"))?;
        Ok(Self {
            ledger,
            policy,
            clock,
            witness: None,
            credential_key,
            refusals: super::refusals::RefusalCounts::default(),
            challenges: super::approval_keys::Challenges::default(),
            presence: Default::default(),
        })
    }

    /// Adds a time witness; releases then refuse when the host clock is further from it than
    /// the policy's `max_clock_skew`.
    pub fn set_time_witness(&mut self, witness: Box<dyn TimeWitness>) {
        self.witness = Some(witness);
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The ledger (read access: export, verify, checkpoints).
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The ledger, for operations that write ledger-level records (checkpoints, re-share).
    pub fn ledger_mut(&mut self) -> &mut Ledger {
        &mut self.ledger
    }

    /// Gives the ledger back.
    pub fn into_ledger(self) -> Ledger {
        self.ledger
    }

    pub(super) fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    // ---- recording ------------------------------------------------------------------------

    pub(super) fn event(
        kind: &'static str,
        who: &str,
        mut body: Value,
        puts: &[Put],
    ) -> Result<NewEvent, CustodyError> {
        if !puts.is_empty() {
            if let Value::Object(m) = &mut body {
                m.insert(
                    "records".into(),
                    Value::Array(puts.iter().map(Put::to_json).collect()),
                );
            }
        }
        let k = Kind::parse(kind)
            .map_err(|e| CustodyError::invalid("event kind", kind, e.to_string()))?;
        NewEvent::new(actor(who), k, &body)
            .map_err(|e| CustodyError::invalid("event body", kind, e.to_string()))
    }

    pub(super) fn append(
        &mut self,
        kind: &'static str,
        who: &str,
        body: Value,
        puts: &[Put],
    ) -> Result<StoredEvent, CustodyError> {
        let mut body = body;
        self.presence.get_mut().attach_to(&mut body);
        let ev = Self::event(kind, who, body, puts)?;
        let now = Timestamp(self.clock.now_ms());
        self.ledger.append_at(ev, now).map_err(op_err(kind))
    }

    pub(super) fn append_batch(
        &mut self,
        operation: &'static str,
        mut events: Vec<NewEvent>,
    ) -> Result<Vec<StoredEvent>, CustodyError> {
        if let Some(first) = events.first_mut() {
            self.presence.get_mut().attach_to_event(first)?;
        }
        let now = Timestamp(self.clock.now_ms());
        self.ledger
            .append_batch_at(events, now)
            .map_err(op_err(operation))
    }

    /// Records a refusal (best effort: when the ledger cannot write, the refusal is still
    /// returned) and gives the error back.
    pub(super) fn refused(
        &mut self,
        who: &str,
        operation: &'static str,
        err: CustodyError,
    ) -> CustodyError {
        self.refused_from(who, operation, err, None)
    }

    /// [`Custody::refused`] for a refusal from a known peer uid. Refusals that cost their
    /// sender nothing are counted per (operation, refusal, peer) instead of recorded each
    /// time (see [`super::refusals`]).
    pub(super) fn refused_from(
        &mut self,
        who: &str,
        operation: &'static str,
        err: CustodyError,
        peer_uid: Option<u32>,
    ) -> CustodyError {
        let now = self.now();
        self.record_counted_refusals(now, false);
        if !self.refusals.admit(operation, &err, who, peer_uid, now) {
            return err;
        }
        let mut body = json!({
            "operation": operation,
            "refusal": err.code(),
            "detail": err.to_string(),
        });
        let extra: Option<(&str, String)> = match &err {
            CustodyError::SelfApproval { request, .. }
            | CustodyError::AlreadyApproved { request, .. }
            | CustodyError::RequestAlreadyApproved { request }
            | CustodyError::RequestExpired { request }
            | CustodyError::RequestClosed { request, .. }
            | CustodyError::ApprovalExpired { request }
            | CustodyError::RequestNotApproved { request, .. }
            | CustodyError::AlreadyReleased { request }
            | CustodyError::NotTheRequester { request, .. }
            | CustodyError::UnknownRequest { request }
            | CustodyError::DeviceNotCheckedOut { request, .. } => {
                Some(("request", request.to_string()))
            }
            CustodyError::WrongDevice { expected, .. } => Some(("device", expected.to_string())),
            CustodyError::SealMismatch { serial, .. }
            | CustodyError::DeviceMismatch { serial, .. }
            | CustodyError::AttestationRefused { serial, .. }
            | CustodyError::DeviceBlocked { serial, .. }
            | CustodyError::DeviceUnlocked { serial }
            | CustodyError::DeviceUnattested { serial, .. }
            | CustodyError::DeviceState { serial, .. }
            | CustodyError::UnknownDevice { serial }
            | CustodyError::DeviceUnavailable { serial, .. }
            | CustodyError::Token { serial, .. }
            | CustodyError::CredentialExists { serial, .. } => Some(("device", serial.to_string())),
            CustodyError::UnknownAccount { account }
            | CustodyError::AccountNotActive { account, .. } => {
                Some(("account", account.to_string()))
            }
            _ => None,
        };
        if let (Some((k, v)), Value::Object(m)) = (extra, &mut body) {
            m.insert(k.into(), Value::String(v));
        }
        let _ = self.append(kinds::REFUSED, who, body, &[]);
        err
    }

    /// Records the counted refusals whose window ended (all of them when `all`: before the
    /// ledger is sealed). Best effort, like every refusal record.
    pub fn record_counted_refusals(&mut self, now_ms: i64, all: bool) {
        if self.refusals.is_empty() {
            return;
        }
        for body in self.refusals.due(now_ms, all) {
            let _ = self.append(kinds::REFUSALS_COUNTED, "custody", body, &[]);
        }
    }

    pub(super) fn guarded<T>(
        &mut self,
        who: &str,
        operation: &'static str,
        f: impl FnOnce(&mut Self) -> Result<T, CustodyError>,
    ) -> Result<T, CustodyError> {
        self.presence.get_mut().enter();
        let r = f(self).map_err(|e| self.refused(who, operation, e));
        // Proofs no event of this call recorded wait for the operation's next step.
        self.presence.get_mut().leave();
        r
    }

    pub(super) fn credential(&self, user: &UserName) -> Result<Credential, CustodyError> {
        let sealed: SealedCredential = store::get(&self.ledger, entity::CREDENTIAL, user.as_str())?
            .ok_or_else(|| CustodyError::CorruptRecord {
                entity: entity::CREDENTIAL,
                id: user.to_string(),
                reason: "missing".into(),
            })?;
        Credential::open(&sealed, &self.credential_key, user)
    }
}
