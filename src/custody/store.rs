//! How the domain keeps its state in the ledger: event kinds, and the `custody_records`
//! projection (one row per entity, written in the same transaction as the event that changed
//! it, re-derivable by replaying the events).
//!
//! Every custody event body may carry `records`: an array of `{entity, id, record}` with the
//! entity's new state. The projection upserts each.

use rusqlite::{params, Connection, OptionalExtension};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

use crate::ledger::{ApplyError, Ledger, Projection, StoredEvent};

use super::error::CustodyError;

/// Event kinds the custody domain writes.
pub mod kinds {
    /// A user was added (officers: by two officers).
    pub const USER_ADDED: &str = "user.added";
    /// A user's roles changed (two officers).
    pub const USER_ROLES_CHANGED: &str = "user.roles_changed";
    /// A user was suspended (two officers).
    pub const USER_SUSPENDED: &str = "user.suspended";
    /// A suspended user was reinstated (two officers).
    pub const USER_REINSTATED: &str = "user.reinstated";
    /// A user was bound to an OS uid, or their binding moved (two officers, not the user).
    pub const USER_UID_BOUND: &str = "user.uid_bound";
    /// Two officers cleared a user's failed authentications (`custody user unlock`).
    pub const USER_UNLOCKED: &str = "user.unlocked";
    /// An authentication succeeded.
    pub const AUTH_SUCCEEDED: &str = "auth.succeeded";
    /// An authentication failed (with the count and any lock).
    pub const AUTH_FAILED: &str = "auth.failed";
    /// An account was registered.
    pub const ACCOUNT_REGISTERED: &str = "account.registered";
    /// An account's status changed.
    pub const ACCOUNT_STATUS_CHANGED: &str = "account.status_changed";
    /// A device was registered.
    pub const DEVICE_REGISTERED: &str = "device.registered";
    /// A device was programmed with its account's credential.
    pub const DEVICE_ENROLLED: &str = "device.enrolled";
    /// A device was sealed into a bag and put in the safe.
    pub const DEVICE_CHECKED_IN: &str = "device.checked_in";
    /// A device was taken out of its bag.
    pub const DEVICE_CHECKED_OUT: &str = "device.checked_out";
    /// A device reached a terminal state (retired, lost, destroyed, released).
    pub const DEVICE_STATE_CHANGED: &str = "device.state_changed";
    /// A device enrolled without an OATH access key is being locked: its new key, sealed,
    /// recorded before the card is asked to set it (two officers).
    pub const DEVICE_LOCK_STARTED: &str = "device.lock_started";
    /// A device's card proved the access key it was locked with (two officers).
    pub const DEVICE_LOCKED: &str = "device.locked";
    /// A device is being given an attested custody key: its new PIV management key, sealed,
    /// recorded before the card is touched (two officers).
    pub const DEVICE_ATTESTATION_STARTED: &str = "device.attestation_started";
    /// A device's custody key was attested and verified: its public key, the attested facts
    /// and both certificates (Base64 DER), for auditors to re-verify (two officers).
    pub const DEVICE_ATTESTED: &str = "device.attested";
    /// The OATH access key of a device leaving custody (retired, released) is about to be
    /// cleared from its card (recorded first, two officers).
    pub const DEVICE_ACCESS_KEY_CLEARING: &str = "device.access_key_clearing";
    /// Two officers stored an account's root password (sealed; never the value).
    pub const ACCOUNT_PASSWORD_SET: &str = "account.password_set";
    /// A code release handed the account's root password to its requester (never the value).
    pub const CREDENTIAL_RELEASED: &str = "credential.released";
    /// An incident was opened.
    pub const INCIDENT_OPENED: &str = "incident.opened";
    /// An officer acknowledged an incident (closed by the second).
    pub const INCIDENT_ACKNOWLEDGED: &str = "incident.acknowledged";
    /// A request was created.
    pub const REQUEST_CREATED: &str = "request.created";
    /// An officer approved a request.
    pub const REQUEST_APPROVED: &str = "request.approved";
    /// An officer denied a request.
    pub const REQUEST_DENIED: &str = "request.denied";
    /// The requester cancelled a request.
    pub const REQUEST_CANCELLED: &str = "request.cancelled";
    /// A request expired.
    pub const REQUEST_EXPIRED: &str = "request.expired";
    /// The intent to compute a code (committed before the device is asked).
    pub const CODE_ISSUING: &str = "code.issuing";
    /// A code was released (step, device, host time; never the code).
    pub const CODE_RELEASED: &str = "code.released";
    /// An enrolment ceremony is about to program devices (recorded first).
    pub const ENROLMENT_STARTED: &str = "enrolment.started";
    /// An enrolment ceremony finished.
    pub const ENROLMENT_COMPLETED: &str = "enrolment.completed";
    /// An inventory audit finished (summary).
    pub const INVENTORY_AUDITED: &str = "inventory.audited";
    /// An account's custody was released to another organisation.
    pub const CUSTODY_RELEASED: &str = "custody.released";
    /// An operation was refused (which, why, by whom).
    pub const REFUSED: &str = "custody.refused";
    /// Repeats of a refusal that costs its sender nothing, counted over a window (see
    /// `custody::refusals`).
    pub const REFUSALS_COUNTED: &str = "custody.refusals_counted";

    /// An officer's own YubiKey key (PIV slot 9c, attested) was registered for signing approvals.
    pub const OFFICER_KEY_REGISTERED: &str = "officer.key_registered";
    /// An officer's approval-signing key was removed.
    pub const OFFICER_KEY_REMOVED: &str = "officer.key_removed";

    /// Every kind above.
    pub const ALL: &[&str] = &[
        USER_ADDED,
        USER_ROLES_CHANGED,
        USER_SUSPENDED,
        USER_REINSTATED,
        USER_UID_BOUND,
        USER_UNLOCKED,
        AUTH_SUCCEEDED,
        AUTH_FAILED,
        ACCOUNT_REGISTERED,
        ACCOUNT_STATUS_CHANGED,
        DEVICE_REGISTERED,
        DEVICE_ENROLLED,
        DEVICE_CHECKED_IN,
        DEVICE_CHECKED_OUT,
        DEVICE_STATE_CHANGED,
        DEVICE_LOCK_STARTED,
        DEVICE_LOCKED,
        DEVICE_ATTESTATION_STARTED,
        DEVICE_ATTESTED,
        DEVICE_ACCESS_KEY_CLEARING,
        ACCOUNT_PASSWORD_SET,
        CREDENTIAL_RELEASED,
        INCIDENT_OPENED,
        INCIDENT_ACKNOWLEDGED,
        REQUEST_CREATED,
        REQUEST_APPROVED,
        REQUEST_DENIED,
        REQUEST_CANCELLED,
        REQUEST_EXPIRED,
        CODE_ISSUING,
        CODE_RELEASED,
        ENROLMENT_STARTED,
        ENROLMENT_COMPLETED,
        INVENTORY_AUDITED,
        CUSTODY_RELEASED,
        REFUSED,
        REFUSALS_COUNTED,
        OFFICER_KEY_REGISTERED,
        OFFICER_KEY_REMOVED,
    ];
}

/// Entity names in the `custody_records` table.
pub mod entity {
    /// [`super::super::records::UserRecord`].
    pub const USER: &str = "user";
    /// Sealed passphrase verifier and second-factor seed of a user.
    pub const CREDENTIAL: &str = "credential";
    /// [`super::super::records::AccountRecord`].
    pub const ACCOUNT: &str = "account";
    /// [`super::super::records::DeviceRecord`].
    pub const DEVICE: &str = "device";
    /// A used seal number (`{serial}`).
    pub const SEAL: &str = "seal";
    /// [`super::super::records::RequestRecord`].
    pub const REQUEST: &str = "request";
    /// [`super::super::records::IncidentRecord`].
    pub const INCIDENT: &str = "incident";
    /// Failed bootstrap attempts of a keyring officer not yet enrolled (`{officer}`).
    pub const BOOTSTRAP: &str = "bootstrap";
    /// A device's sealed OATH access key (`{sealed}`), by serial.
    pub const ACCESS_KEY: &str = "access_key";
    /// A device's sealed PIV management key (`{sealed}`), by serial.
    pub const MANAGEMENT_KEY: &str = "management_key";
    /// An account's sealed root password (`{sealed}`), by account id.
    pub const ROOT_PASSWORD: &str = "root_password";
    /// An officer's approval key ([`super::super::approval_keys::OfficerKeyEntry`]), by officer.
    pub const OFFICER_KEY: &str = "officer_key";
    /// [`super::super::policy::LedgerPolicy`], the policy the ledger carries (`ledger`).
    pub const POLICY: &str = "policy";
}

/// Entities whose records never leave the ledger: exports carry their digests instead.
pub const SECRET_ENTITIES: &[&str] = &[
    entity::CREDENTIAL,
    entity::ACCESS_KEY,
    entity::MANAGEMENT_KEY,
    entity::ROOT_PASSWORD,
];

/// The projection of custody events into `custody_records`.
#[derive(Debug, Clone, Copy)]
pub struct CustodyProjection;

impl Projection for CustodyProjection {
    fn name(&self) -> &'static str {
        "custody"
    }

    fn schema(&self) -> &'static str {
        "CREATE TABLE IF NOT EXISTS custody_records (
            entity TEXT NOT NULL,
            id TEXT NOT NULL,
            record TEXT NOT NULL,
            seq INTEGER NOT NULL,
            PRIMARY KEY (entity, id)
         ) STRICT;"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["custody_records"]
    }

    fn kinds(&self) -> &'static [&'static str] {
        kinds::ALL
    }

    fn apply(&self, conn: &Connection, event: &StoredEvent) -> Result<(), ApplyError> {
        let body = event.body.to_value();
        let Some(records) = body.get("records") else {
            return Ok(());
        };
        let bad = |reason| ApplyError::Body {
            field: "records",
            reason,
        };
        let records = records.as_array().ok_or(bad("expected an array"))?;
        let seq = i64::try_from(event.header.seq).unwrap_or(i64::MAX);
        for r in records {
            let entity = r
                .get("entity")
                .and_then(Value::as_str)
                .ok_or(bad("entity missing"))?;
            let id = r
                .get("id")
                .and_then(Value::as_str)
                .ok_or(bad("id missing"))?;
            let record = r.get("record").ok_or(bad("record missing"))?;
            let text = serde_json::to_string(record).map_err(|_| bad("record not encodable"))?;
            conn.execute(
                "INSERT INTO custody_records (entity, id, record, seq) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(entity, id) DO UPDATE SET record = excluded.record, seq = excluded.seq",
                params![entity, id, text, seq],
            )?;
        }
        Ok(())
    }
}

/// One entity's new state for an event's `records`.
pub(crate) struct Put {
    pub(crate) entity: &'static str,
    pub(crate) id: String,
    pub(crate) record: Value,
}

impl Put {
    pub(crate) fn new<T: Serialize>(
        entity: &'static str,
        id: impl ToString,
        record: &T,
    ) -> Result<Self, CustodyError> {
        let record = serde_json::to_value(record).map_err(|e| CustodyError::CorruptRecord {
            entity,
            id: id.to_string(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            entity,
            id: id.to_string(),
            record,
        })
    }

    pub(crate) fn to_json(&self) -> Value {
        json!({"entity": self.entity, "id": self.id, "record": self.record})
    }
}

/// Reads one record.
pub(crate) fn get<T: DeserializeOwned>(
    ledger: &Ledger,
    entity: &'static str,
    id: &str,
) -> Result<Option<T>, CustodyError> {
    let text: Option<String> = ledger
        .query(|c| {
            c.query_row(
                "SELECT record FROM custody_records WHERE entity = ?1 AND id = ?2",
                params![entity, id],
                |r| r.get(0),
            )
            .optional()
        })
        .map_err(|source| CustodyError::LedgerUnavailable {
            operation: "read",
            source: Box::new(source),
        })?;
    text.map(|t| {
        serde_json::from_str(&t).map_err(|e| CustodyError::CorruptRecord {
            entity,
            id: id.to_owned(),
            reason: e.to_string(),
        })
    })
    .transpose()
}

/// Reads every record of an entity, ordered by id.
pub(crate) fn all<T: DeserializeOwned>(
    ledger: &Ledger,
    entity: &'static str,
) -> Result<Vec<T>, CustodyError> {
    let rows: Vec<(String, String)> = ledger
        .query(|c| {
            let mut st =
                c.prepare("SELECT id, record FROM custody_records WHERE entity = ?1 ORDER BY id")?;
            let rows = st.query_map(params![entity], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
        .map_err(|source| CustodyError::LedgerUnavailable {
            operation: "read",
            source: Box::new(source),
        })?;
    rows.into_iter()
        .map(|(id, t)| {
            serde_json::from_str(&t).map_err(|e| CustodyError::CorruptRecord {
                entity,
                id,
                reason: e.to_string(),
            })
        })
        .collect()
}
