//! Incidents on [`Custody`]: `report_incident` (an officer) and `acknowledge_incident` (two
//! officers, which unblocks the device); the domain opens the others itself.

use serde_json::json;

use super::error::CustodyError;
use super::ids::{IncidentId, Note, Serial};
use super::records::{IncidentKind, IncidentRecord, Role};
use super::service::{pair, Custody, Session};
use super::store::{entity, kinds, Put};

impl Custody {
    /// The outcome of card I/O done outside the service: a [`CustodyError::DeviceMismatch`]
    /// (not the device the ledger holds) opens a device-mismatch incident, which blocks the
    /// device, before the error is returned; anything else passes through unchanged.
    pub(super) fn incident_on_mismatch<T>(
        &mut self,
        who: &str,
        outcome: Result<T, CustodyError>,
    ) -> Result<T, CustodyError> {
        match outcome {
            Err(CustodyError::DeviceMismatch { serial, mismatch }) => {
                self.open_incident_event(
                    who,
                    IncidentKind::DeviceMismatch,
                    Some(serial),
                    mismatch.clone(),
                )?;
                Err(CustodyError::DeviceMismatch { serial, mismatch })
            }
            other => other,
        }
    }

    /// Opens an incident; when it concerns a device, the device is blocked until two officers
    /// acknowledge it. Returns the id.
    pub(super) fn open_incident_event(
        &mut self,
        who: &str,
        kind: IncidentKind,
        device: Option<Serial>,
        detail: String,
    ) -> Result<IncidentId, CustodyError> {
        let id = IncidentId::generate()?;
        let rec = IncidentRecord {
            id: id.clone(),
            kind,
            device,
            detail: detail.clone(),
            opened_ms: self.now(),
            open: true,
            acknowledged_by: Vec::new(),
        };
        let mut puts = vec![Put::new(entity::INCIDENT, &id, &rec)?];
        let mut body = json!({"incident": id, "kind": kind, "detail": detail});
        if let Some(serial) = device {
            let mut d = self.device(serial)?;
            if d.blocked_by.is_none() {
                d.blocked_by = Some(id.clone());
            }
            if let serde_json::Value::Object(m) = &mut body {
                m.insert("device".into(), json!(serial.to_string()));
                if let Some(a) = &d.account {
                    m.insert("account".into(), json!(a));
                }
            }
            puts.push(Put::new(entity::DEVICE, serial, &d)?);
        }
        self.append(kinds::INCIDENT_OPENED, who, body, &puts)?;
        Ok(id)
    }

    /// An officer reports an incident (optionally about a device, which it then blocks).
    pub fn report_incident(
        &mut self,
        by: &Session,
        device: Option<Serial>,
        detail: &str,
    ) -> Result<IncidentId, CustodyError> {
        self.guarded(by.user().as_str(), "report_incident", |c| {
            let u = c.session_with_role(by, &[Role::Officer], "report_incident")?;
            if let Some(s) = device {
                c.device(s)?;
            }
            let detail = Note::parse("incident detail", detail)?;
            c.open_incident_event(
                u.name.as_str(),
                IncidentKind::Other,
                device,
                detail.as_str().to_owned(),
            )
        })
    }

    /// Two officers acknowledge an incident: it closes, and the device it blocked is unblocked.
    pub fn acknowledge_incident(
        &mut self,
        a: &Session,
        b: &Session,
        id: &IncidentId,
        note: &str,
    ) -> Result<IncidentRecord, CustodyError> {
        self.guarded(&pair(a.user(), b.user()), "acknowledge_incident", |c| {
            let note = Note::parse("note", note)?;
            let (x, y) = c.officer_pair(a, b, "acknowledge_incident")?;
            let mut rec = c.incident(id)?;
            if !rec.open {
                return Err(CustodyError::IncidentClosed {
                    incident: id.clone(),
                });
            }
            rec.open = false;
            rec.acknowledged_by = vec![x.name.clone(), y.name.clone()];
            let mut puts = vec![Put::new(entity::INCIDENT, id, &rec)?];
            let mut body = json!({"incident": id, "note": note});
            if let Some(serial) = rec.device {
                let mut d = c.device(serial)?;
                if d.blocked_by.as_ref() == Some(id) {
                    d.blocked_by = None;
                }
                if let serde_json::Value::Object(m) = &mut body {
                    m.insert("device".into(), json!(serial.to_string()));
                }
                puts.push(Put::new(entity::DEVICE, serial, &d)?);
            }
            c.append(
                kinds::INCIDENT_ACKNOWLEDGED,
                &pair(&x.name, &y.name),
                body,
                &puts,
            )?;
            Ok(rec)
        })
    }
}
