//! The release of one code on [`Custody`]: `release_code`, or `plan_release`,
//! [`ReleasePlan::reconcile`], `begin_issuing`, [`compute_code`], `finish_release`; and
//! `record_failure` for a release that failed at the card.
//!
//! Release order: the request is approved and its approvals still stand; the account's device
//! is checked out for this request and present; it reconciles with the ledger; `code.issuing`
//! commits; the device computes the code for the current time step only; `code.released`
//! commits; only then is the code handed back.

use serde_json::json;

use crate::token::oath::{Code, CredentialName, TimeStep};
use crate::token::CardTransport;

use super::access::{step_at, step_start_ms, DeviceAccess};
use super::device_keys::OathLock;
use super::devices::open;
use super::error::CustodyError;
use super::ids::{RequestId, Serial, UserName};
use super::policy::ms;
use super::reconcile::{reconcile, Mismatch, Reconciliation};
use super::records::{AccountRecord, AccountStatus, DeviceRecord, DeviceState, IncidentKind, Role};
use super::requests::{
    closed_error, standing_approvals, ApprovedRequest, IssuingRequest, LoadedRequest,
};
use super::service::{token_err, Custody, ReleasedCode, Session};
use super::store::{entity, kinds, Put};

impl Custody {
    /// Releases the one code of an approved request to its requester. See the module
    /// documentation for the order of checks and records. The time step is always the current
    /// one; when a code for the account's credential was already released in this step, this
    /// waits for the next (on the service's clock).
    ///
    /// This is the three phases the daemon runs with the service locked only around the first
    /// and last: [`Custody::plan_release`], [`Custody::begin_issuing`] (after the card was
    /// opened and reconciled) and [`Custody::finish_release`], with the card's
    /// [`compute_code`] between them.
    pub fn release_code(
        &mut self,
        by: &Session,
        id: &RequestId,
        access: &mut dyn DeviceAccess,
    ) -> Result<ReleasedCode, CustodyError> {
        let who = by.user().to_string();
        let plan = self.plan_release(by, id)?;
        if let Some(t) = plan.not_before_ms() {
            self.clock.wait_until(t);
        }
        let opened = open(access, plan.serial());
        let mut transport = match opened {
            Ok(t) => t,
            Err(e) => return Err(self.refused(&who, "release_code", e)),
        };
        let reading = match plan.reconcile(&mut *transport) {
            Ok(r) => r,
            Err(e) => return Err(self.refused(&who, "release_code", e)),
        };
        let ticket = loop {
            match self.begin_issuing(by, &plan, &reading)? {
                Issuing::Ready(t) => break t,
                Issuing::NotBefore(t) => self.clock.wait_until(t),
            }
        };
        let code = compute_code(&mut *transport, &ticket);
        drop(transport);
        match code {
            Ok(code) => self.finish_release(by, ticket, code),
            Err(e) => Err(self.refused(&who, "release_code", e)),
        }
    }

    /// Records a refusal or failure the caller met outside the service (a card that could not
    /// be opened or answered badly during a release) like any other, and gives it back.
    pub fn record_failure(
        &mut self,
        who: &UserName,
        operation: &'static str,
        err: CustodyError,
    ) -> CustodyError {
        self.refused(who.as_str(), operation, err)
    }

    /// The first phase of a release: every check that needs no card. Answers which device to
    /// open and, when a code for the account's credential was already released in the current
    /// step, the time before which nothing may be computed. Refusals are recorded.
    pub fn plan_release(
        &mut self,
        by: &Session,
        id: &RequestId,
    ) -> Result<ReleasePlan, CustodyError> {
        let who = by.user().to_string();
        self.guarded(&who, "release_code", |c| {
            let checked = c.release_checks(by, id)?;
            let step = step_at(c.now());
            let not_before_ms = checked
                .account
                .last_release_step
                .filter(|last| *last >= step.0)
                .map(|last| step_start_ms(crate::token::oath::TimeStep(last + 1)));
            let lock = c.oath_lock(&checked.device)?;
            Ok(ReleasePlan {
                request: id.clone(),
                lock,
                device: checked.device,
                credential_text: checked.account.credential,
                not_before_ms,
            })
        })
    }

    /// The second phase: the opened card reconciled with the ledger. Checks everything again
    /// (another release may have run meanwhile), records a mismatch as an incident, and
    /// commits `code.issuing` for the current step: nothing may be computed unless this
    /// commits. Answers [`Issuing::NotBefore`] while the current step is already spent.
    pub fn begin_issuing(
        &mut self,
        by: &Session,
        plan: &ReleasePlan,
        reading: &CardReading,
    ) -> Result<Issuing, CustodyError> {
        let who = by.user().to_string();
        self.guarded(&who, "release_code", |c| {
            c.begin_issuing_inner(by, plan, reading)
        })
    }

    fn begin_issuing_inner(
        &mut self,
        by: &Session,
        plan: &ReleasePlan,
        reading: &CardReading,
    ) -> Result<Issuing, CustodyError> {
        let who = by.user().to_string();
        let id = &plan.request;
        let checked = self.release_checks(by, id)?;
        let serial = checked.device.serial;
        if serial != plan.device.serial {
            // The request's device changed since the plan: the card that was read is not it.
            return Err(CustodyError::DeviceNotCheckedOut {
                request: id.clone(),
                account: checked.account.account.clone(),
            });
        }
        let rec = &reading.0;
        if !rec.is_ok() {
            let detail = rec.describe();
            self.open_incident_event(
                &who,
                IncidentKind::DeviceMismatch,
                Some(serial),
                detail.clone(),
            )?;
            if let Some(Mismatch::Serial { got: Some(got), .. }) = rec
                .mismatches
                .iter()
                .find(|m| matches!(m, Mismatch::Serial { .. }))
            {
                return Err(CustodyError::WrongDevice {
                    expected: serial,
                    got: super::ids::Serial::new(*got).unwrap_or(serial),
                });
            }
            return Err(CustodyError::DeviceMismatch {
                serial,
                mismatch: detail,
            });
        }
        // Never two codes for one credential in one step: the caller waits for the next.
        let now = self.now();
        let step = step_at(now);
        if let Some(last) = checked
            .account
            .last_release_step
            .filter(|last| *last >= step.0)
        {
            return Ok(Issuing::NotBefore(step_start_ms(
                crate::token::oath::TimeStep(last + 1),
            )));
        }
        // Nor a code too close to its step's end to be typed in time: the caller waits for
        // the next step (the card stays open; nothing is recorded for this one).
        let next = step_start_ms(crate::token::oath::TimeStep(step.0 + 1));
        let min_ms = i64::try_from(self.policy.min_code_seconds.min(29) * 1000).unwrap_or(0);
        if next - now < min_ms {
            return Ok(Issuing::NotBefore(next));
        }
        let issuing = checked.approved.issue(step.0, serial);
        let body = json!({"request": id, "account": checked.account.account,
                          "device": serial.to_string(), "step": step.0, "host_time_ms": now,
                          "requester": checked.requester});
        // The step is spent for the account's credential as soon as the intent commits, so a
        // release on the account's other key, planned while this one waits for its touch,
        // waits for the next step; a computation that fails spends it too.
        let mut account = checked.account;
        account.last_release_step = Some(step.0);
        // Forced audit: nothing is computed unless this commits.
        self.append(
            kinds::CODE_ISSUING,
            &who,
            body,
            &[
                Put::new(entity::REQUEST, id, issuing.record())?,
                Put::new(entity::ACCOUNT, &account.account, &account)?,
            ],
        )?;
        Ok(Issuing::Ready(Box::new(IssuingTicket {
            issuing,
            account,
            requester: checked.requester,
            serial,
            credential: checked.credential,
            step,
            lock: plan.lock.clone(),
        })))
    }

    /// The last phase: records `code.released` and only then hands the code back. When the
    /// request's task needs the console password and the ledger holds one for the account, it
    /// is handed back beside the code, recorded in the same transaction as
    /// `credential.released` (never the value), and the account becomes
    /// `password_rotation_due`.
    pub fn finish_release(
        &mut self,
        by: &Session,
        ticket: Box<IssuingTicket>,
        code: Code,
    ) -> Result<ReleasedCode, CustodyError> {
        let who = by.user().to_string();
        self.guarded(&who, "release_code", |c| {
            let IssuingTicket {
                issuing,
                mut account,
                requester,
                serial,
                step,
                ..
            } = *ticket;
            let id = issuing.record().id.clone();
            let after = c.now();
            let released = issuing.release();
            account.last_release_step = Some(step.0);
            let password = match c.policy.task(&released.task) {
                Ok(t) if t.needs_password && account.root_password => {
                    c.root_password(&account.account)?
                }
                _ => None,
            };
            if password.is_some() {
                account.password_rotation_due = true;
            }
            let mut events = vec![Self::event(
                kinds::CODE_RELEASED,
                &who,
                json!({"request": id, "account": account.account, "device": serial.to_string(),
                       "step": step.0, "host_time_ms": after, "requester": requester}),
                &[
                    Put::new(entity::REQUEST, &id, &released)?,
                    Put::new(entity::ACCOUNT, &account.account, &account)?,
                ],
            )?];
            if password.is_some() {
                events.push(Self::event(
                    kinds::CREDENTIAL_RELEASED,
                    &who,
                    json!({"request": id, "account": account.account, "requester": requester,
                           "credential": "root_password", "task": released.task}),
                    &[],
                )?);
            }
            c.append_batch("release_code", events)?;
            let end = step_start_ms(crate::token::oath::TimeStep(step.0 + 1));
            Ok(ReleasedCode {
                request: id,
                code,
                step: step.0,
                seconds_remaining: u64::try_from((end - after).max(0) / 1000).unwrap_or(0),
                device: serial,
                password,
            })
        })
    }

    /// The checks every phase of a release makes against the ledger as it is now.
    fn release_checks(
        &mut self,
        by: &Session,
        id: &RequestId,
    ) -> Result<ReleaseChecked, CustodyError> {
        let who = by.user().to_string();
        let u = c_session(self, by)?;
        let approved = match self.load_request(&who, id)? {
            LoadedRequest::Approved(a) => a,
            LoadedRequest::Pending(p) => {
                let approvers = self.approvers_of(p.record())?;
                let approvals =
                    standing_approvals(p.record(), self.now(), &self.policy, &approvers).len();
                return Err(CustodyError::RequestNotApproved {
                    request: id.clone(),
                    approvals,
                    threshold: self.policy.approval_threshold.get(),
                });
            }
            LoadedRequest::Issuing(i) => return Err(closed_error(i.record())),
            LoadedRequest::Closed(r) => return Err(closed_error(&r)),
        };
        if approved.record().requester != u.name {
            return Err(CustodyError::NotTheRequester {
                request: id.clone(),
                user: u.name,
            });
        }
        // Each approval counts only if given within the approval lifetime by an officer who
        // has been an active officer ever since (not suspended in between, even if reinstated).
        let approvers = self.approvers_of(approved.record())?;
        approved.check_valid(self.now(), &self.policy, &approvers)?;
        let account = self.account(&approved.record().account)?;
        if account.status != AccountStatus::Active {
            return Err(CustodyError::AccountNotActive {
                account: account.account,
                status: account.status.as_str(),
                operation: "release a code",
            });
        }
        let device = self
            .devices_of(&account.account)?
            .into_iter()
            .find(
                |d| matches!(&d.state, DeviceState::CheckedOut { request: Some(r), .. } if r == id),
            )
            .ok_or_else(|| CustodyError::DeviceNotCheckedOut {
                request: id.clone(),
                account: account.account.clone(),
            })?;
        if let Some(incident) = device.blocked_by.clone() {
            return Err(CustodyError::DeviceBlocked {
                serial: device.serial,
                incident,
            });
        }
        self.require_attested(&device, "release a code from it")?;
        if !device.oath_access_key && self.refuses_unlocked_devices()? {
            return Err(CustodyError::DeviceUnlocked {
                serial: device.serial,
            });
        }
        if let (Some(bound), Some(w)) = (self.policy.max_clock_skew, &self.witness) {
            let theirs = w
                .now_ms()
                .map_err(|reason| CustodyError::TimeWitnessUnavailable { reason })?;
            let skew = (self.now() - theirs).abs();
            if skew > ms(bound) {
                return Err(CustodyError::ClockSkew {
                    skew_ms: skew,
                    allowed_ms: ms(bound),
                });
            }
        }
        let credential = CredentialName::parse(&account.credential).map_err(|e| {
            CustodyError::CorruptRecord {
                entity: entity::ACCOUNT,
                id: account.account.to_string(),
                reason: e.to_string(),
            }
        })?;
        Ok(ReleaseChecked {
            requester: u.name,
            approved,
            account,
            device,
            credential,
        })
    }
}

/// What every phase of a release checked.
struct ReleaseChecked {
    requester: UserName,
    approved: ApprovedRequest,
    account: AccountRecord,
    device: DeviceRecord,
    credential: CredentialName,
}

/// A release that passed every check that needs no card (see [`Custody::plan_release`]).
#[derive(Debug)]
pub struct ReleasePlan {
    request: RequestId,
    device: DeviceRecord,
    lock: OathLock,
    credential_text: String,
    not_before_ms: Option<i64>,
}

impl ReleasePlan {
    /// The device to open.
    pub fn serial(&self) -> Serial {
        self.device.serial
    }

    /// When a code for this credential was already released in the current step: the time
    /// (ms since the epoch) the next step begins, before which no code may be computed.
    pub fn not_before_ms(&self) -> Option<i64> {
        self.not_before_ms
    }

    /// Reads the opened card and compares it with the ledger's record of the device (serial,
    /// OATH device id, the access key by VALIDATE when the device is locked, the account's
    /// credential). Card I/O only; decides nothing.
    pub fn reconcile(
        &self,
        transport: &mut dyn CardTransport,
    ) -> Result<CardReading, CustodyError> {
        let serial = self.device.serial;
        reconcile(
            &self.device,
            Some(&self.credential_text),
            &self.lock,
            &mut &mut *transport,
        )
        .map(CardReading)
        .map_err(token_err(serial))
    }
}

/// What the card answered when reconciled; [`Custody::begin_issuing`] judges it.
#[derive(Debug)]
pub struct CardReading(Reconciliation);

/// The answer of [`Custody::begin_issuing`].
#[derive(Debug)]
pub enum Issuing {
    /// `code.issuing` is committed: compute the code for this ticket's step.
    Ready(Box<IssuingTicket>),
    /// The current step is spent: try again from this time (ms since the epoch).
    NotBefore(i64),
}

/// A committed intent to compute one code: the device, credential and time step.
#[derive(Debug)]
pub struct IssuingTicket {
    issuing: IssuingRequest,
    account: AccountRecord,
    requester: UserName,
    serial: Serial,
    credential: CredentialName,
    step: TimeStep,
    lock: OathLock,
}

impl IssuingTicket {
    /// The device that must compute the code.
    pub fn serial(&self) -> Serial {
        self.serial
    }

    /// The time step the code is for.
    pub fn step(&self) -> u64 {
        self.step.0
    }
}

/// The card's part of a release, after `code.issuing` committed: selects OATH (with VALIDATE
/// when the device is locked) and computes the ticket's credential for the ticket's step only
/// (the touch happens here). Card I/O only; touches no shared state.
pub fn compute_code(
    transport: &mut dyn CardTransport,
    ticket: &IssuingTicket,
) -> Result<Code, CustodyError> {
    let serial = ticket.serial;
    let mut session = ticket.lock.unlock(transport, serial)?;
    session
        .calculate_totp(&ticket.credential, ticket.step)
        .map_err(token_err(serial))
}

fn c_session(c: &Custody, by: &Session) -> Result<super::records::UserRecord, CustodyError> {
    c.session_with_role(by, &[Role::Operator, Role::Officer], "release_code")
}
