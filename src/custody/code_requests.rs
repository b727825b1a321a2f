//! Code requests and their approvals on [`Custody`]: `create_request` (an operator or
//! officer), `approve` / `approve_as` (officers other than the requester), `deny`, `cancel` and
//! `expire_requests`. (The request's states are types: see [`super::requests`].)

use serde_json::json;

use super::error::CustodyError;
use super::ids::{Reason, RequestId, TicketRef};
use super::policy::ms;
use super::records::{AccountStatus, RequestRecord, RequestStatus, Role, UserRecord};
use super::requests::{
    closed_error, lapsed_approvals, AfterApproval, LoadedRequest, PendingRequest,
};
use super::service::{Credentials, Custody, NewRequest, Session};
use super::store::{entity, kinds, Put};

/// How an approval was proved, as `request.approved` records it (`proof`).
#[derive(Clone, Debug)]
pub(super) enum ApprovalProofBody {
    /// Passphrase and TOTP code.
    Totp,
    /// Passphrase and a signature by the officer's registered key.
    Signature {
        /// The key's id.
        key_id: String,
        /// The challenge nonce (hex).
        nonce: String,
        /// [`super::records::signed_approval_digest`] of the message (hex).
        digest: String,
        /// The DER signature, base64.
        signature: String,
    },
}

impl ApprovalProofBody {
    fn add_to(&self, body: &mut serde_json::Value) {
        let serde_json::Value::Object(m) = body else {
            return;
        };
        match self {
            Self::Totp => {
                m.insert("proof".into(), "totp".into());
            }
            Self::Signature {
                key_id,
                nonce,
                digest,
                signature,
            } => {
                m.insert("proof".into(), "signature".into());
                m.insert("key_id".into(), key_id.as_str().into());
                m.insert("nonce".into(), nonce.as_str().into());
                m.insert("digest".into(), digest.as_str().into());
                m.insert("signature".into(), signature.as_str().into());
            }
        }
    }
}

/// How recent the authentication behind an approval must be (ms).
pub const FRESH_AUTH_MS: i64 = 60_000;

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

    pub(super) fn load_request(
        &mut self,
        who: &str,
        id: &RequestId,
    ) -> Result<LoadedRequest, CustodyError> {
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
    /// second-factor code. Refused for the requester, a second approval by the same officer
    /// while it still counts, an approved request whose approvals still stand, a closed or
    /// expired request, and anyone not an active officer.
    ///
    /// Approvals lapse: after the approval lifetime, or when their officer is suspended (a
    /// reinstated officer's earlier approval stays lapsed). A lapsed approval is dropped when
    /// the next one is recorded, and its officer may approve again; an approved request whose
    /// approvals lapsed goes back to taking approvals. The request's own lifetime bounds all
    /// of it. The `request.approved` event records `renewed` (this officer's lapsed approval
    /// was replaced), `reopened` (the request was approved before) and `dropped` (each lapsed
    /// approval with `officer`, `at_ms` and `why`: `expired` or `officer_not_active_since`).
    pub fn approve(
        &mut self,
        id: &RequestId,
        creds: &Credentials,
    ) -> Result<RequestRecord, CustodyError> {
        let session = self.authenticate(creds)?;
        self.approve_as(id, &session, None)
    }

    /// [`Custody::approve`] with a session the officer opened for this approval (the daemon
    /// authenticates without holding the service). A session older than
    /// [`FRESH_AUTH_MS`] is refused: an approval is authenticated at the moment it is given.
    /// `seen` is [`RequestRecord::approval_digest`] as the officer's screen computed it from
    /// what it showed; a different digest is [`CustodyError::ApprovalMismatch`] (the daemon
    /// always passes one; in-process callers that showed nothing pass `None`).
    ///
    /// The session was proved with the TOTP second factor: refused `approval_proof_required`
    /// when the policy takes only signatures.
    pub fn approve_as(
        &mut self,
        id: &RequestId,
        session: &Session,
        seen: Option<&str>,
    ) -> Result<RequestRecord, CustodyError> {
        let who = session.user().to_string();
        if !self.policy.approval_proof.takes("totp") {
            let err = CustodyError::ApprovalProofRequired {
                user: session.user().clone(),
                wanted: "signature",
                given: "the TOTP code",
                policy: self.policy.approval_proof.as_str(),
            };
            return Err(self.refused(&who, "approve", err));
        }
        self.approve_proved(id, session, seen, ApprovalProofBody::Totp)
    }

    /// [`Custody::approve_as`] once the proof is checked; `proof` goes into the event.
    pub(super) fn approve_proved(
        &mut self,
        id: &RequestId,
        session: &Session,
        seen: Option<&str>,
        proof: ApprovalProofBody,
    ) -> Result<RequestRecord, CustodyError> {
        let who = session.user().to_string();
        self.guarded(&who, "approve", |c| {
            if c.now().saturating_sub(session.at_ms) > FRESH_AUTH_MS {
                return Err(CustodyError::ProofNotFresh {
                    user: session.user().clone(),
                    operation: "approve",
                });
            }
            let officer = c.session_user(session)?;
            let now = c.now();
            let loaded = c.load_request(&who, id)?;
            let before = loaded.record().clone();
            if let Some(seen) = seen {
                let held = before.approval_digest();
                if !bool::from(subtle::ConstantTimeEq::ct_eq(
                    seen.as_bytes(),
                    held.as_bytes(),
                )) {
                    return Err(CustodyError::ApprovalMismatch {
                        request: id.clone(),
                    });
                }
            }
            let approvers = c.approvers_of(&before)?;
            let (pending, reopened) = match loaded {
                LoadedRequest::Pending(p) => (p, false),
                // Approved, but its approvals may no longer stand: then it takes them again.
                LoadedRequest::Approved(a) => (a.reopen(now, &c.policy, &approvers)?, true),
                LoadedRequest::Issuing(i) => return Err(closed_error(i.record())),
                LoadedRequest::Closed(r) => return Err(closed_error(&r)),
            };
            // What this approval replaces, for the record: approvals that no longer count,
            // and whether one of them was this officer's own.
            let lapsed = lapsed_approvals(&before, now, &c.policy, &approvers);
            let renewed = lapsed.iter().any(|(a, _)| a.officer == officer.name);
            let dropped: Vec<_> = lapsed
                .iter()
                .map(
                    |(a, why)| json!({"officer": a.officer, "at_ms": a.at_ms, "why": why.as_str()}),
                )
                .collect();
            let rec = match pending.approve(&officer, &approvers, now, &c.policy)? {
                AfterApproval::StillPending(p) => p.into_record(),
                AfterApproval::Approved(a) => a.record().clone(),
            };
            let mut body = json!({"request": rec.id, "account": rec.account,
                       "officer": officer.name, "approvals": rec.approvals.len(),
                       "status": rec.status.as_str(), "reopened": reopened, "renewed": renewed,
                       "dropped": dropped});
            proof.add_to(&mut body);
            c.append(
                kinds::REQUEST_APPROVED,
                officer.name.as_str(),
                body,
                &[Put::new(entity::REQUEST, &rec.id, &rec)?],
            )?;
            Ok(rec)
        })
    }

    /// The current records of the officers who approved `r` (an approver no longer known is
    /// left out, so their approval does not count).
    pub(super) fn approvers_of(&self, r: &RequestRecord) -> Result<Vec<UserRecord>, CustodyError> {
        let mut out = Vec::new();
        for a in &r.approvals {
            match self.user(&a.officer) {
                Ok(u) => out.push(u),
                Err(CustodyError::UnknownUser { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
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
}
