//! Ceremonies as library functions on [`Custody`]: enrolment, inventory audit and custody
//! release. (Sign-in is the sequence `create_request` → `approve` ×2 → `check_out` →
//! `release_code` → `check_in`.)

use std::io::Write;

use serde_json::json;

use crate::ledger::{export_redacted, ExportFilter, ExportFormat, ExportSummary};
use crate::token::oath::{
    Code, CredentialName, OathSecret, OathSession, PutRequest, Selected, TimeStep,
};

use super::access::{step_at, step_start_ms, DeviceAccess};
use super::error::CustodyError;
use super::ids::{AccountId, Serial};
use super::inventory::open;
use super::reconcile::reconcile;
use super::records::{AccountStatus, DeviceRole, DeviceState, IncidentKind};
use super::service::{
    pair, token_err, AuditReport, Custody, Enrolment, EnrolmentCodes, Presented, Session,
};
use super::store::entity;
use super::store::{kinds, Put};

/// Selects the OATH applet, refusing a password-protected one.
fn ready<T: crate::token::CardTransport>(
    t: T,
    serial: Serial,
) -> Result<OathSession<T>, CustodyError> {
    match OathSession::select(t).map_err(token_err(serial))? {
        Selected::Ready(s) => Ok(s),
        Selected::Locked(_) => Err(CustodyError::DeviceMismatch {
            serial,
            mismatch: "OATH applet is password-protected".into(),
        }),
    }
}

impl Custody {
    fn device_code(
        access: &mut dyn DeviceAccess,
        serial: Serial,
        name: &CredentialName,
        step: TimeStep,
    ) -> Result<Code, CustodyError> {
        let t = open(access, serial)?;
        let mut s = ready(t, serial)?;
        s.calculate_totp(name, step).map_err(token_err(serial))
    }

    /// Enrolment (two officers): programs the provider's seed into the account's primary and
    /// backup devices (TOTP, SHA-1, 6 digits, 30 s, touch required), checks that both give the
    /// same code, and returns two consecutive codes, the second after waiting for the next
    /// step. The seed is zeroized when this returns and is never stored. An existing credential
    /// of the same name is overwritten only with `overwrite`.
    pub fn enrol(
        &mut self,
        a: &Session,
        b: &Session,
        access: &mut dyn DeviceAccess,
        enrolment: Enrolment,
    ) -> Result<EnrolmentCodes, CustodyError> {
        self.guarded(&pair(a.user(), b.user()), "enrol", |c| {
            c.enrol_inner(a, b, access, enrolment)
        })
    }

    fn enrol_inner(
        &mut self,
        a: &Session,
        b: &Session,
        access: &mut dyn DeviceAccess,
        enrolment: Enrolment,
    ) -> Result<EnrolmentCodes, CustodyError> {
        let (x, y) = self.officer_pair(a, b, "enrol")?;
        let who = pair(&x.name, &y.name);
        let Enrolment {
            account,
            primary,
            backup,
            seed,
            overwrite,
        } = enrolment;
        let acc = self.account(&account)?;
        if acc.status != AccountStatus::Active {
            return Err(CustodyError::AccountNotActive {
                account,
                status: acc.status.as_str(),
                operation: "enrol",
            });
        }
        if primary == backup {
            return Err(CustodyError::WrongDevice {
                expected: primary,
                got: backup,
            });
        }
        let name =
            CredentialName::parse(&acc.credential).map_err(|e| CustodyError::CorruptRecord {
                entity: entity::ACCOUNT,
                id: account.to_string(),
                reason: e.to_string(),
            })?;
        let mut devices = Vec::new();
        for (serial, role) in [(primary, DeviceRole::Primary), (backup, DeviceRole::Backup)] {
            let d = self.device(serial)?;
            if let Some(incident) = d.blocked_by.clone() {
                return Err(CustodyError::DeviceBlocked { serial, incident });
            }
            let allowed = matches!(d.state, DeviceState::Registered)
                || (overwrite && matches!(d.state, DeviceState::Enrolled));
            if !allowed {
                return Err(CustodyError::DeviceState {
                    serial,
                    state: d.state.name(),
                    operation: "enrol",
                });
            }
            if d.role != role {
                return Err(CustodyError::DeviceMismatch {
                    serial,
                    mismatch: format!("registered as {:?}, enrolled as {role:?}", d.role),
                });
            }
            devices.push(d);
        }
        // Reconcile both and look for an existing credential before anything is written.
        for d in &devices {
            let mut t = open(access, d.serial)?;
            let rec = reconcile(d, None, &mut t).map_err(token_err(d.serial))?;
            if !rec.is_ok() {
                return Err(CustodyError::DeviceMismatch {
                    serial: d.serial,
                    mismatch: rec.describe(),
                });
            }
            let mut s = ready(t, d.serial)?;
            let exists = s
                .list()
                .map_err(token_err(d.serial))?
                .iter()
                .any(|e| e.name == name);
            if exists && !overwrite {
                return Err(CustodyError::CredentialExists {
                    serial: d.serial,
                    credential: name.to_string(),
                });
            }
        }
        self.append(
            kinds::ENROLMENT_STARTED,
            &who,
            json!({"account": account, "primary": primary.to_string(), "backup": backup.to_string(),
                   "credential": acc.credential, "overwrite": overwrite}),
            &[],
        )?;
        for d in &devices {
            let t = open(access, d.serial)?;
            let mut s = ready(t, d.serial)?;
            let mut put = PutRequest::totp(name.clone(), seed.secret.clone());
            put.touch = true;
            s.put(&put).map_err(token_err(d.serial))?;
        }
        let secret: OathSecret = seed.secret.clone();
        drop(seed);
        drop(secret);
        // Two consecutive codes: the current step, then wait for the next (never ask ahead).
        let first_step = step_at(self.now());
        let mut codes = Vec::new();
        for step in [first_step, TimeStep(first_step.0 + 1)] {
            self.clock.wait_until(step_start_ms(step));
            let p = Self::device_code(access, primary, &name, step)?;
            let q = Self::device_code(access, backup, &name, step)?;
            if p != q {
                return Err(CustodyError::DevicesDisagree { primary, backup });
            }
            codes.push(p);
        }
        let mut events = Vec::new();
        for mut d in devices {
            d.account = Some(account.clone());
            d.state = DeviceState::Enrolled;
            events.push(Self::event(
                kinds::DEVICE_ENROLLED,
                &who,
                json!({"device": d.serial.to_string(), "account": account, "role": d.role,
                       "credential": acc.credential}),
                &[Put::new(entity::DEVICE, d.serial, &d)?],
            )?);
        }
        events.push(Self::event(
            kinds::ENROLMENT_COMPLETED,
            &who,
            json!({"account": account, "primary": primary.to_string(), "backup": backup.to_string(),
                   "first_step": first_step.0}),
            &[],
        )?);
        self.append_batch("enrol", events)?;
        let mut it = codes.into_iter();
        match (it.next(), it.next()) {
            (Some(first), Some(second)) => Ok(EnrolmentCodes {
                first,
                second,
                first_step: first_step.0,
            }),
            _ => Err(CustodyError::Crypto {
                operation: "enrolment codes",
            }),
        }
    }

    /// Inventory audit (one officer): every device not in a terminal state must be presented;
    /// each is reconciled and its seal compared. Every mismatch and every missing device opens
    /// an incident; a summary event ends the audit.
    pub fn inventory_audit(
        &mut self,
        by: &Session,
        access: &mut dyn DeviceAccess,
        presented: &[Presented],
    ) -> Result<AuditReport, CustodyError> {
        self.guarded(by.user().as_str(), "inventory_audit", |c| {
            let u = c.session_with_role(by, &[super::records::Role::Officer], "inventory_audit")?;
            let who = u.name.to_string();
            let mut report = AuditReport {
                ok: Vec::new(),
                incidents: Vec::new(),
                unknown: Vec::new(),
            };
            let known = c.devices()?;
            for p in presented {
                if !known.iter().any(|d| d.serial == p.serial) {
                    report.unknown.push(p.serial);
                }
            }
            for d in known.into_iter().filter(|d| !d.state.is_terminal()) {
                let Some(p) = presented.iter().find(|p| p.serial == d.serial) else {
                    let id = c.open_incident_event(
                        &who,
                        IncidentKind::DeviceMissing,
                        Some(d.serial),
                        format!("device {} not presented at inventory audit", d.serial),
                    )?;
                    report.incidents.push(id);
                    continue;
                };
                if let DeviceState::InSafe { seal, .. } = &d.state {
                    if p.seal.as_ref() != Some(seal) {
                        let id = c.open_incident_event(
                            &who,
                            IncidentKind::SealMismatch,
                            Some(d.serial),
                            format!(
                                "seal {} presented, {seal} recorded",
                                p.seal.as_ref().map_or("none", |s| s.as_str())
                            ),
                        )?;
                        report.incidents.push(id);
                        continue;
                    }
                }
                let rec = match c.reconcile_device(access, d.serial) {
                    Ok(r) if r.is_ok() => {
                        report.ok.push(d.serial);
                        continue;
                    }
                    Ok(r) => r.describe(),
                    Err(e) => e.to_string(),
                };
                let id = c.open_incident_event(
                    &who,
                    IncidentKind::DeviceMismatch,
                    Some(d.serial),
                    rec,
                )?;
                report.incidents.push(id);
            }
            c.append(
                kinds::INVENTORY_AUDITED,
                &who,
                json!({"ok": report.ok.iter().map(ToString::to_string).collect::<Vec<_>>(),
                       "incidents": report.incidents,
                       "unknown": report.unknown.iter().map(ToString::to_string).collect::<Vec<_>>()}),
                &[],
            )?;
            Ok(report)
        })
    }

    /// Custody release (two officers): the account's devices are handed over (state
    /// `released`), a `custody.released` event is recorded, and a signed extract of the
    /// account's history (the ledger's export with the account filter) is written to `out`.
    pub fn release_custody(
        &mut self,
        a: &Session,
        b: &Session,
        account: &AccountId,
        out: &mut dyn Write,
    ) -> Result<ExportSummary, CustodyError> {
        self.guarded(&pair(a.user(), b.user()), "release_custody", |c| {
            let (x, y) = c.officer_pair(a, b, "release_custody")?;
            let who = pair(&x.name, &y.name);
            let acc = c.account(account)?;
            let mut events = Vec::new();
            let mut released = Vec::new();
            for mut d in c.devices_of(account)? {
                if d.state.is_terminal() {
                    continue;
                }
                if let Some(incident) = d.blocked_by.clone() {
                    return Err(CustodyError::DeviceBlocked {
                        serial: d.serial,
                        incident,
                    });
                }
                let before = d.state.name();
                d.state = DeviceState::Released;
                released.push(d.serial.to_string());
                events.push(Self::event(
                    kinds::DEVICE_STATE_CHANGED,
                    &who,
                    json!({"device": d.serial.to_string(), "account": account, "from": before,
                           "to": "released"}),
                    &[Put::new(entity::DEVICE, d.serial, &d)?],
                )?);
            }
            events.push(Self::event(
                kinds::CUSTODY_RELEASED,
                &who,
                json!({"account": account, "provider": acc.provider, "devices": released}),
                &[],
            )?);
            c.append_batch("release_custody", events)?;
            let filter = ExportFilter {
                account: Some(account.to_string()),
                ..ExportFilter::default()
            };
            export_redacted(
                c.ledger_mut(),
                &filter,
                ExportFormat::JsonLines,
                super::store::SECRET_ENTITIES,
                out,
            )
            .map_err(|source| CustodyError::Export {
                account: account.clone(),
                source: Box::new(source),
            })
        })
    }
}
