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

/// Why an approval no longer counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lapse {
    /// Older than the approval lifetime (or dated after now).
    Expired,
    /// Its officer is no longer an active officer, or was suspended after approving (even if
    /// reinstated since).
    NotActiveSince,
}

impl Lapse {
    /// The text form recorded in events.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Expired => "expired",
            Self::NotActiveSince => "officer_not_active_since",
        }
    }
}

/// Whether approval `a` still counts at `now_ms`: given within the approval lifetime, by an
/// officer found in `officers` (their current records) who is an active officer and has not
/// been suspended since approving. An officer missing from `officers` does not count.
pub fn lapse(a: &Approval, now_ms: i64, policy: &Policy, officers: &[UserRecord]) -> Option<Lapse> {
    let ttl = ms(policy.approval_ttl);
    if now_ms.saturating_sub(a.at_ms) > ttl || a.at_ms > now_ms {
        return Some(Lapse::Expired);
    }
    let standing = officers.iter().any(|u| {
        u.name == a.officer && u.active && u.has(Role::Officer) && u.suspensions == a.suspensions
    });
    (!standing).then_some(Lapse::NotActiveSince)
}

/// The approvals of `r` that still count at `now_ms` (see [`lapse`]), never the requester's.
pub fn standing_approvals(
    r: &RequestRecord,
    now_ms: i64,
    policy: &Policy,
    officers: &[UserRecord],
) -> Vec<Approval> {
    r.approvals
        .iter()
        .filter(|a| a.officer != r.requester && lapse(a, now_ms, policy, officers).is_none())
        .cloned()
        .collect()
}

/// The approvals of `r` that no longer count at `now_ms`, each with why.
pub fn lapsed_approvals(
    r: &RequestRecord,
    now_ms: i64,
    policy: &Policy,
    officers: &[UserRecord],
) -> Vec<(Approval, Lapse)> {
    r.approvals
        .iter()
        .filter_map(|a| lapse(a, now_ms, policy, officers).map(|l| (a.clone(), l)))
        .collect()
}

/// The approvals of `r` within the approval lifetime at `now_ms`, whoever gave them (not the
/// requester).
fn within_lifetime(r: &RequestRecord, now_ms: i64, policy: &Policy) -> Vec<Approval> {
    let ttl = ms(policy.approval_ttl);
    r.approvals
        .iter()
        .filter(|a| {
            a.officer != r.requester && now_ms.saturating_sub(a.at_ms) <= ttl && a.at_ms <= now_ms
        })
        .cloned()
        .collect()
}

fn distinct_officers(approvals: &[Approval]) -> usize {
    let mut names: Vec<_> = approvals.iter().map(|a| &a.officer).collect();
    names.sort();
    names.dedup();
    names.len()
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
    /// caller). `approvers` are the current records of the officers who approved so far.
    /// Refuses the requester, non-officers, suspended users, a second approval by the same
    /// officer and an expired request. Approvals that no longer count (older than the approval
    /// lifetime, or given by an officer suspended since) are dropped first, so an officer whose
    /// approval lapsed may approve again, replacing it.
    pub fn approve(
        mut self,
        officer: &UserRecord,
        approvers: &[UserRecord],
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
        self.0.approvals = standing_approvals(&self.0, now_ms, policy, approvers);
        if self.0.approvals.iter().any(|a| a.officer == officer.name) {
            return Err(CustodyError::AlreadyApproved {
                request: id,
                user: officer.name.clone(),
            });
        }
        self.0.approvals.push(Approval {
            officer: officer.name.clone(),
            at_ms: now_ms,
            suspensions: officer.suspensions,
        });
        // Every approval kept stands, and so does the new one (an active officer's, now).
        if distinct_officers(&self.0.approvals) >= policy.approval_threshold.get() {
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
    /// officers other than the requester, each within the approval lifetime and an active
    /// officer continuously since approving (`approvers`: the approvers' current records), and
    /// the request not expired. Too few within the lifetime is
    /// [`CustodyError::ApprovalExpired`]; enough within it but too few whose officers stand is
    /// [`CustodyError::RequestNotApproved`] with the count that does.
    pub fn check_valid(
        &self,
        now_ms: i64,
        policy: &Policy,
        approvers: &[UserRecord],
    ) -> Result<(), CustodyError> {
        let id = self.0.id.clone();
        if now_ms >= self.0.expires_ms {
            return Err(CustodyError::RequestExpired { request: id });
        }
        let threshold = policy.approval_threshold.get();
        let fresh: Vec<Approval> = within_lifetime(&self.0, now_ms, policy);
        if distinct_officers(&fresh) < threshold {
            return Err(CustodyError::ApprovalExpired { request: id });
        }
        let standing = distinct_officers(&standing_approvals(&self.0, now_ms, policy, approvers));
        if standing < threshold {
            return Err(CustodyError::RequestNotApproved {
                request: id,
                approvals: standing,
                threshold,
            });
        }
        Ok(())
    }

    /// Takes approvals again: an approved request whose approvals no longer stand at `now_ms`
    /// (see [`ApprovedRequest::check_valid`]) goes back to pending, keeping the approvals that
    /// still count, so officers may approve it again within the request's lifetime. A request
    /// whose approvals stand is refused [`CustodyError::RequestAlreadyApproved`]; an expired
    /// one [`CustodyError::RequestExpired`].
    pub fn reopen(
        self,
        now_ms: i64,
        policy: &Policy,
        approvers: &[UserRecord],
    ) -> Result<PendingRequest, CustodyError> {
        match self.check_valid(now_ms, policy, approvers) {
            Ok(()) => Err(CustodyError::RequestAlreadyApproved {
                request: self.0.id.clone(),
            }),
            Err(e @ CustodyError::RequestExpired { .. }) => Err(e),
            Err(_) => {
                let mut r = self.0;
                r.approvals = standing_approvals(&r, now_ms, policy, approvers);
                r.status = RequestStatus::Pending;
                Ok(PendingRequest(r))
            }
        }
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
