//! Reads of the current state on [`Custody`]: `user` / `users`, `account` / `accounts`,
//! `device` / `devices`, `request` / `requests`, `incident` / `incidents`.

use super::error::CustodyError;
use super::ids::{AccountId, IncidentId, RequestId, Serial, UserName};
use super::records::{AccountRecord, DeviceRecord, IncidentRecord, RequestRecord, UserRecord};
use super::service::Custody;
use super::store::{self, entity};

impl Custody {
    // ---- reads ----------------------------------------------------------------------------

    /// A user.
    pub fn user(&self, name: &UserName) -> Result<UserRecord, CustodyError> {
        store::get(&self.ledger, entity::USER, name.as_str())?
            .ok_or_else(|| CustodyError::UnknownUser { user: name.clone() })
    }

    /// Every user.
    pub fn users(&self) -> Result<Vec<UserRecord>, CustodyError> {
        store::all(&self.ledger, entity::USER)
    }

    /// An account.
    pub fn account(&self, id: &AccountId) -> Result<AccountRecord, CustodyError> {
        store::get(&self.ledger, entity::ACCOUNT, id.as_str())?.ok_or_else(|| {
            CustodyError::UnknownAccount {
                account: id.clone(),
            }
        })
    }

    /// Every account.
    pub fn accounts(&self) -> Result<Vec<AccountRecord>, CustodyError> {
        store::all(&self.ledger, entity::ACCOUNT)
    }

    /// A device.
    pub fn device(&self, serial: Serial) -> Result<DeviceRecord, CustodyError> {
        store::get(&self.ledger, entity::DEVICE, &serial.to_string())?
            .ok_or(CustodyError::UnknownDevice { serial })
    }

    /// Every device.
    pub fn devices(&self) -> Result<Vec<DeviceRecord>, CustodyError> {
        store::all(&self.ledger, entity::DEVICE)
    }

    /// A request.
    pub fn request(&self, id: &RequestId) -> Result<RequestRecord, CustodyError> {
        store::get(&self.ledger, entity::REQUEST, id.as_str())?.ok_or_else(|| {
            CustodyError::UnknownRequest {
                request: id.clone(),
            }
        })
    }

    /// A request as it stands now, for reading: a pending or approved request past its
    /// expiry reads as `expired` (the record changes at its next use, which is refused
    /// `request_expired`), and the end of its approval window: when the earliest of its
    /// approvals stops counting (the approval lifetime after it), never after the request
    /// expires; `None` without approvals or once the request is closed or issuing.
    pub fn request_as_seen(&self, mut r: RequestRecord) -> (RequestRecord, Option<i64>) {
        use super::records::RequestStatus as S;
        let now = self.now();
        let open = matches!(r.status, S::Pending | S::Approved);
        if open && now >= r.expires_ms {
            r.status = S::Expired;
        }
        let window = matches!(r.status, S::Pending | S::Approved)
            .then(|| r.approvals.iter().map(|a| a.at_ms).min())
            .flatten()
            .map(|first| {
                first
                    .saturating_add(super::policy::ms(self.policy.approval_ttl))
                    .min(r.expires_ms)
            });
        (r, window)
    }

    /// Every request.
    pub fn requests(&self) -> Result<Vec<RequestRecord>, CustodyError> {
        store::all(&self.ledger, entity::REQUEST)
    }

    /// An incident.
    pub fn incident(&self, id: &IncidentId) -> Result<IncidentRecord, CustodyError> {
        store::get(&self.ledger, entity::INCIDENT, id.as_str())?.ok_or_else(|| {
            CustodyError::UnknownIncident {
                incident: id.clone(),
            }
        })
    }

    /// Every incident (open and closed).
    pub fn incidents(&self) -> Result<Vec<IncidentRecord>, CustodyError> {
        store::all(&self.ledger, entity::INCIDENT)
    }
}
