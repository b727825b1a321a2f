//! Requests and the dual-control policy as types: a request moves
//! [`PendingRequest`] → [`ApprovedRequest`] → [`IssuingRequest`] → released by methods that
//! consume the old state, so a code cannot be issued for a request that was not approved, and
//! an issuing request cannot be issued again.

use super::error::CustodyError;
use super::ids::{RequestId, Serial};
use super::policy::{ms, Policy};
use super::records::{Approval, RequestRecord, RequestStatus, Role, UserRecord};

/// A request as loaded, by state.
#[derive(Debug)]
pub enum LoadedRequest {
    /// Waiting for approvals.
    Pending(PendingRequest),
    /// Approved, code not yet issued.
    Approved(ApprovedRequest),
    /// Issuing recorded, release not yet recorded.
    Issuing(IssuingRequest),
    /// Released, denied, cancelled or expired.
    Closed(RequestRecord),
}

impl LoadedRequest {
    /// Sorts a record into its state type.
    pub fn from_record(r: RequestRecord) -> Self {
        match r.status {
            RequestStatus::Pending => Self::Pending(PendingRequest(r)),
            RequestStatus::Approved => Self::Approved(ApprovedRequest(r)),
            RequestStatus::Issuing => Self::Issuing(IssuingRequest(r)),
            _ => Self::Closed(r),
        }
    }

    /// The record underneath.
    pub fn record(&self) -> &RequestRecord {
        match self {
            Self::Pending(p) => &p.0,
            Self::Approved(a) => &a.0,
            Self::Issuing(i) => &i.0,
            Self::Closed(r) => r,
        }
    }
}

/// Why a closed request refuses everything.
pub(crate) fn closed_error(r: &RequestRecord) -> CustodyError {
    match r.status {
        RequestStatus::Released | RequestStatus::Issuing => CustodyError::AlreadyReleased {
            request: r.id.clone(),
        },
        RequestStatus::Expired => CustodyError::RequestExpired {
            request: r.id.clone(),
        },
        s => CustodyError::RequestClosed {
            request: r.id.clone(),
            status: s.as_str(),
        },
    }
}

/// The outcome of one approval.
#[derive(Debug)]
pub enum AfterApproval {
    /// More approvals are needed.
    StillPending(PendingRequest),
    /// The threshold is reached.
    Approved(ApprovedRequest),
}

fn valid_approvals(r: &RequestRecord, now_ms: i64, policy: &Policy) -> Vec<Approval> {
    let ttl = ms(policy.approval_ttl);
    r.approvals
        .iter()
        .filter(|a| now_ms.saturating_sub(a.at_ms) <= ttl && a.at_ms <= now_ms)
        .cloned()
        .collect()
}

/// A request waiting for approvals.
#[derive(Debug)]
pub struct PendingRequest(RequestRecord);

impl PendingRequest {
    /// A new request (fields already parsed and checked by the caller).
    pub fn new(record: RequestRecord) -> Self {
        Self(RequestRecord {
            status: RequestStatus::Pending,
            approvals: Vec::new(),
            ..record
        })
    }

    /// The record.
    pub fn record(&self) -> &RequestRecord {
        &self.0
    }

    /// Consumes the record.
    pub fn into_record(self) -> RequestRecord {
        self.0
    }

    /// Adds `officer`'s approval at `now_ms` (the officer was authenticated just now by the
    /// caller). Refuses the requester, non-officers, suspended users, a second approval by the
    /// same officer and an expired request. Approvals older than the approval lifetime no
    /// longer count and are dropped.
    pub fn approve(
        mut self,
        officer: &UserRecord,
        now_ms: i64,
        policy: &Policy,
    ) -> Result<AfterApproval, CustodyError> {
        let id = self.0.id.clone();
        if now_ms >= self.0.expires_ms {
            return Err(CustodyError::RequestExpired { request: id });
        }
        if !officer.active {
            return Err(CustodyError::Suspended {
                user: officer.name.clone(),
            });
        }
        if !officer.has(Role::Officer) {
            return Err(CustodyError::NotAnOfficer {
                user: officer.name.clone(),
                operation: "approve",
            });
        }
        if officer.name == self.0.requester {
            return Err(CustodyError::SelfApproval {
                request: id,
                user: officer.name.clone(),
            });
        }
        self.0.approvals = valid_approvals(&self.0, now_ms, policy);
        if self.0.approvals.iter().any(|a| a.officer == officer.name) {
            return Err(CustodyError::AlreadyApproved {
                request: id,
                user: officer.name.clone(),
            });
        }
        self.0.approvals.push(Approval {
            officer: officer.name.clone(),
            at_ms: now_ms,
        });
        if self.0.approvals.len() >= policy.approval_threshold.get() {
            self.0.status = RequestStatus::Approved;
            Ok(AfterApproval::Approved(ApprovedRequest(self.0)))
        } else {
            Ok(AfterApproval::StillPending(self))
        }
    }

    /// Closes the request as denied, cancelled or expired.
    pub fn close(mut self, status: RequestStatus, by: Option<&UserRecord>) -> RequestRecord {
        self.0.status = status;
        self.0.closed_by = by.map(|u| u.name.clone());
        self.0
    }
}

/// A request with enough approvals, not yet issued.
#[derive(Debug)]
pub struct ApprovedRequest(RequestRecord);

impl ApprovedRequest {
    /// The record.
    pub fn record(&self) -> &RequestRecord {
        &self.0
    }

    /// Checks that the approvals still stand at `now_ms`: at least the threshold of distinct
    /// officers other than the requester, each within the approval lifetime, and the request
    /// not expired.
    pub fn check_valid(&self, now_ms: i64, policy: &Policy) -> Result<(), CustodyError> {
        let id = self.0.id.clone();
        if now_ms >= self.0.expires_ms {
            return Err(CustodyError::RequestExpired { request: id });
        }
        let valid = valid_approvals(&self.0, now_ms, policy);
        let mut distinct: Vec<_> = valid
            .iter()
            .map(|a| &a.officer)
            .filter(|o| **o != self.0.requester)
            .collect();
        distinct.sort();
        distinct.dedup();
        if distinct.len() < policy.approval_threshold.get() {
            return Err(CustodyError::ApprovalExpired { request: id });
        }
        Ok(())
    }

    /// Records the intent to compute the code for `step` on `device`.
    pub fn issue(mut self, step: u64, device: Serial) -> IssuingRequest {
        self.0.status = RequestStatus::Issuing;
        self.0.step = Some(step);
        self.0.device = Some(device);
        IssuingRequest(self.0)
    }

    /// Closes the request (denied or expired) before a code is issued.
    pub fn close(mut self, status: RequestStatus, by: Option<&UserRecord>) -> RequestRecord {
        self.0.status = status;
        self.0.closed_by = by.map(|u| u.name.clone());
        self.0
    }
}

/// A request whose code is being computed.
#[derive(Debug)]
pub struct IssuingRequest(RequestRecord);

impl IssuingRequest {
    /// The record.
    pub fn record(&self) -> &RequestRecord {
        &self.0
    }

    /// The code was released.
    pub fn release(mut self) -> RequestRecord {
        self.0.status = RequestStatus::Released;
        self.0
    }
}

/// The id of a record (for errors).
pub fn id_of(r: &RequestRecord) -> &RequestId {
    &r.id
}
