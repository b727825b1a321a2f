//! Requests, approvals and the release of one code on [`Custody`].
//!
//! Release order: the request is approved and its approvals still stand; the account's device
//! is checked out for this request and present; it reconciles with the ledger; `code.issuing`
//! commits; the device computes the code for the current time step only; `code.released`
//! commits; only then is the code handed back.

use serde_json::json;

use crate::token::oath::{CredentialName, OathSession, Selected};

use super::access::{step_at, step_start_ms, DeviceAccess};
use super::error::CustodyError;
use super::ids::{Reason, RequestId, TicketRef};
use super::inventory::open;
use super::policy::ms;
use super::reconcile::{reconcile, Mismatch};
use super::records::{
    AccountStatus, DeviceState, IncidentKind, RequestRecord, RequestStatus, Role,
};
use super::requests::{closed_error, AfterApproval, LoadedRequest, PendingRequest};
use super::service::{token_err, Credentials, Custody, NewRequest, ReleasedCode, Session};
use super::store::{entity, kinds, Put};

impl Custody {
    /// An operator (or officer) asks for one code for a root task on an account.
    pub fn create_request(
        &mut self,
        by: &Session,
        new: NewRequest,
    ) -> Result<RequestRecord, CustodyError> {
        self.guarded(by.user().as_str(), "create_request", |c| {
            let u = c.session_with_role(by, &[Role::Operator, Role::Officer], "create_request")?;
            let task = c.policy.task(&new.task)?.id.clone();
            let ticket = TicketRef::parse(&new.ticket, &c.policy.ticket)?;
            let reason = Reason::parse(&new.reason, c.policy.reason_min_chars)?;
            let account = c.account(&new.account)?;
            if account.status != AccountStatus::Active {
                return Err(CustodyError::AccountNotActive {
                    account: account.account,
                    status: account.status.as_str(),
                    operation: "request a code",
                });
            }
            let now = c.now();
            let rec = PendingRequest::new(RequestRecord {
                id: RequestId::generate()?,
                account: account.account,
                task,
                ticket,
                reason,
                requester: u.name.clone(),
                created_ms: now,
                expires_ms: now.saturating_add(ms(c.policy.request_ttl)),
                approvals: Vec::new(),
                status: RequestStatus::Pending,
                step: None,
                device: None,
                closed_by: None,
            })
            .into_record();
            c.append(
                kinds::REQUEST_CREATED,
                u.name.as_str(),
                json!({"request": rec.id, "account": rec.account, "task": rec.task,
                       "ticket": rec.ticket, "reason": rec.reason, "requester": rec.requester,
                       "expires_ms": rec.expires_ms}),
                &[Put::new(entity::REQUEST, &rec.id, &rec)?],
            )?;
            Ok(rec)
        })
    }

    fn load_request(&mut self, who: &str, id: &RequestId) -> Result<LoadedRequest, CustodyError> {
        let rec = self.request(id)?;
        let now = self.now();
        if matches!(rec.status, RequestStatus::Pending | RequestStatus::Approved)
            && now >= rec.expires_ms
        {
            let mut r = rec;
            r.status = RequestStatus::Expired;
            self.append(
                kinds::REQUEST_EXPIRED,
                who,
                json!({"request": r.id, "account": r.account}),
                &[Put::new(entity::REQUEST, &r.id, &r)?],
            )?;
            return Ok(LoadedRequest::Closed(r));
        }
        Ok(LoadedRequest::from_record(rec))
    }

    /// An officer approves a request, authenticating at this moment with passphrase and
    /// second-factor code. Refused for the requester, a second approval by the same officer,
    /// an approved, closed or expired request, and anyone not an active officer.
    pub fn approve(
        &mut self,
        id: &RequestId,
        creds: &Credentials,
    ) -> Result<RequestRecord, CustodyError> {
        let session = self.authenticate(creds)?;
        let who = session.user().to_string();
        self.guarded(&who, "approve", |c| {
            let officer = c.session_user(&session)?;
            let pending = match c.load_request(&who, id)? {
                LoadedRequest::Pending(p) => p,
                LoadedRequest::Approved(_) => {
                    return Err(CustodyError::RequestAlreadyApproved {
                        request: id.clone(),
                    })
                }
                LoadedRequest::Issuing(i) => return Err(closed_error(i.record())),
                LoadedRequest::Closed(r) => return Err(closed_error(&r)),
            };
            let now = c.now();
            let rec = match pending.approve(&officer, now, &c.policy)? {
                AfterApproval::StillPending(p) => p.into_record(),
                AfterApproval::Approved(a) => a.record().clone(),
            };
            c.append(
                kinds::REQUEST_APPROVED,
                officer.name.as_str(),
                json!({"request": rec.id, "account": rec.account, "officer": officer.name,
                       "approvals": rec.approvals.len(), "status": rec.status.as_str()}),
                &[Put::new(entity::REQUEST, &rec.id, &rec)?],
            )?;
            Ok(rec)
        })
    }

    /// An officer denies a request; it ends.
    pub fn deny(
        &mut self,
        by: &Session,
        id: &RequestId,
        note: &str,
    ) -> Result<RequestRecord, CustodyError> {
        self.close_request(by, id, note, RequestStatus::Denied)
    }

    /// The requester cancels their request.
    pub fn cancel(&mut self, by: &Session, id: &RequestId) -> Result<RequestRecord, CustodyError> {
        self.close_request(by, id, "", RequestStatus::Cancelled)
    }

    fn close_request(
        &mut self,
        by: &Session,
        id: &RequestId,
        note: &str,
        status: RequestStatus,
    ) -> Result<RequestRecord, CustodyError> {
        let op = if status == RequestStatus::Denied {
            "deny"
        } else {
            "cancel"
        };
        let who = by.user().to_string();
        self.guarded(&who, op, |c| {
            let u = if status == RequestStatus::Denied {
                c.session_with_role(by, &[Role::Officer], "deny")?
            } else {
                c.session_user(by)?
            };
            let loaded = c.load_request(&who, id)?;
            if status == RequestStatus::Cancelled && loaded.record().requester != u.name {
                return Err(CustodyError::NotTheRequester {
                    request: id.clone(),
                    user: u.name,
                });
            }
            let rec = match loaded {
                LoadedRequest::Pending(p) => p.close(status, Some(&u)),
                LoadedRequest::Approved(a) => a.close(status, Some(&u)),
                LoadedRequest::Issuing(i) => return Err(closed_error(i.record())),
                LoadedRequest::Closed(r) => return Err(closed_error(&r)),
            };
            let kind = if status == RequestStatus::Denied {
                kinds::REQUEST_DENIED
            } else {
                kinds::REQUEST_CANCELLED
            };
            c.append(
                kind,
                u.name.as_str(),
                json!({"request": rec.id, "account": rec.account, "by": u.name,
                       "note": super::ids::Note::parse("note", note)?}),
                &[Put::new(entity::REQUEST, &rec.id, &rec)?],
            )?;
            Ok(rec)
        })
    }

    /// Marks every open request past its expiry as expired; returns how many.
    pub fn expire_requests(&mut self) -> Result<usize, CustodyError> {
        let mut n = 0;
        for r in self.requests()? {
            if matches!(r.status, RequestStatus::Pending | RequestStatus::Approved)
                && self.now() >= r.expires_ms
            {
                self.load_request("custody", &r.id)?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Releases the one code of an approved request to its requester. See the module
    /// documentation for the order of checks and records. The time step is always the current
    /// one; when a code for the account's credential was already released in this step, this
    /// waits for the next.
    pub fn release_code(
        &mut self,
        by: &Session,
        id: &RequestId,
        access: &mut dyn DeviceAccess,
    ) -> Result<ReleasedCode, CustodyError> {
        let who = by.user().to_string();
        self.guarded(&who, "release_code", |c| c.release_inner(by, id, access))
    }

    fn release_inner(
        &mut self,
        by: &Session,
        id: &RequestId,
        access: &mut dyn DeviceAccess,
    ) -> Result<ReleasedCode, CustodyError> {
        let who = by.user().to_string();
        let u = c_session(self, by)?;
        let approved = match self.load_request(&who, id)? {
            LoadedRequest::Approved(a) => a,
            LoadedRequest::Pending(p) => {
                let now = self.now();
                let ttl = ms(self.policy.approval_ttl);
                let approvals = p
                    .record()
                    .approvals
                    .iter()
                    .filter(|a| now.saturating_sub(a.at_ms) <= ttl)
                    .count();
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
        approved.check_valid(self.now(), &self.policy)?;
        // Approvers must still be active officers when the code is released.
        let mut standing = 0;
        for a in &approved.record().approvals {
            let u = self.user(&a.officer)?;
            if u.active && u.has(Role::Officer) {
                standing += 1;
            }
        }
        if standing < self.policy.approval_threshold.get() {
            return Err(CustodyError::RequestNotApproved {
                request: id.clone(),
                approvals: standing,
                threshold: self.policy.approval_threshold.get(),
            });
        }
        let mut account = self.account(&approved.record().account)?;
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
        let serial = device.serial;
        let mut transport = open(access, serial)?;
        let rec = reconcile(&device, Some(&account.credential), &mut transport)
            .map_err(token_err(serial))?;
        if !rec.is_ok() {
            drop(transport);
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
        // Never two codes for one credential in one step: wait for the next step.
        let mut now = self.now();
        let mut step = step_at(now);
        if account.last_release_step.is_some_and(|last| last >= step.0) {
            self.clock
                .wait_until(step_start_ms(crate::token::oath::TimeStep(
                    account.last_release_step.unwrap_or(step.0) + 1,
                )));
            now = self.now();
            step = step_at(now);
        }
        let issuing = approved.issue(step.0, serial);
        let body = json!({"request": id, "account": account.account, "device": serial.to_string(),
                          "step": step.0, "host_time_ms": now, "requester": u.name});
        // Forced audit: nothing is computed unless this commits.
        self.append(
            kinds::CODE_ISSUING,
            &who,
            body,
            &[Put::new(entity::REQUEST, id, issuing.record())?],
        )?;
        let mut session = match OathSession::select(&mut transport).map_err(token_err(serial))? {
            Selected::Ready(s) => s,
            Selected::Locked(_) => {
                return Err(CustodyError::DeviceMismatch {
                    serial,
                    mismatch: "OATH applet is password-protected".into(),
                })
            }
        };
        let code = session
            .calculate_totp(&credential, step)
            .map_err(token_err(serial))?;
        drop(transport);
        let after = self.now();
        let released = issuing.release();
        account.last_release_step = Some(step.0);
        self.append(
            kinds::CODE_RELEASED,
            &who,
            json!({"request": id, "account": account.account, "device": serial.to_string(),
                   "step": step.0, "host_time_ms": after, "requester": u.name}),
            &[
                Put::new(entity::REQUEST, id, &released)?,
                Put::new(entity::ACCOUNT, &account.account, &account)?,
            ],
        )?;
        let end = step_start_ms(crate::token::oath::TimeStep(step.0 + 1));
        Ok(ReleasedCode {
            request: id.clone(),
            code,
            step: step.0,
            seconds_remaining: u64::try_from((end - after).max(0) / 1000).unwrap_or(0),
            device: serial,
        })
    }
}

fn c_session(c: &Custody, by: &Session) -> Result<super::records::UserRecord, CustodyError> {
    c.session_with_role(by, &[Role::Operator, Role::Officer], "release_code")
}
