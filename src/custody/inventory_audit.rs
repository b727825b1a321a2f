//! The inventory audit on [`Custody`] (one officer): `inventory_audit`, or `plan_inventory`,
//! [`InventoryPlan::read`] of the cards presented, `finish_inventory`. Every device not in a
//! terminal state must be presented, is reconciled and its seal compared; every mismatch and
//! every missing device opens an incident, and a summary event ends the audit. The audit
//! reconciles each card starting with VALIDATE when the device is locked (nothing is
//! computed) and reports the devices that have no OATH access key (`unlocked`).

use serde_json::json;

use super::access::DeviceAccess;
use super::error::CustodyError;
use super::ids::Serial;
use super::records::{DeviceState, IncidentKind};
use super::service::{AuditReport, Custody, Presented, Session};
use super::store::kinds;

impl Custody {
    /// Inventory audit (one officer): every device not in a terminal state must be presented;
    /// each is reconciled and its seal compared. Every mismatch and every missing device opens
    /// an incident; a summary event ends the audit.
    pub fn inventory_audit(
        &mut self,
        by: &Session,
        access: &mut dyn DeviceAccess,
        presented: &[Presented],
    ) -> Result<AuditReport, CustodyError> {
        let plan = self.plan_inventory(by, presented)?;
        let readings = plan.read(access);
        self.finish_inventory(by, presented, readings)
    }

    /// The first phase of an inventory audit: an officer, and the devices presented that the
    /// ledger holds in a state to read. Refusals are recorded.
    pub fn plan_inventory(
        &mut self,
        by: &Session,
        presented: &[Presented],
    ) -> Result<InventoryPlan, CustodyError> {
        self.guarded(by.user().as_str(), "inventory_audit", |c| {
            c.session_with_role(by, &[super::records::Role::Officer], "inventory_audit")?;
            let mut checks = Vec::new();
            for d in c.devices()?.into_iter().filter(|d| !d.state.is_terminal()) {
                if presented.iter().any(|p| p.serial == d.serial) {
                    c.require_attested(&d, "audit it")?;
                    checks.push(c.device_check(d)?);
                }
            }
            Ok(InventoryPlan { checks })
        })
    }

    /// The last phase: judges every device against the ledger as it is now and what its card
    /// answered ([`InventoryPlan::read`]); every mismatch and every missing device opens an
    /// incident, and a summary event ends the audit.
    pub fn finish_inventory(
        &mut self,
        by: &Session,
        presented: &[Presented],
        mut readings: Vec<(
            Serial,
            Result<super::reconcile::Reconciliation, CustodyError>,
        )>,
    ) -> Result<AuditReport, CustodyError> {
        self.guarded(by.user().as_str(), "inventory_audit", |c| {
            let u = c.session_with_role(by, &[super::records::Role::Officer], "inventory_audit")?;
            let who = u.name.to_string();
            let mut report = AuditReport {
                ok: Vec::new(),
                incidents: Vec::new(),
                unknown: Vec::new(),
                unlocked: Vec::new(),
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
                let reading = readings
                    .iter()
                    .position(|(s, _)| *s == d.serial)
                    .map(|i| readings.swap_remove(i).1);
                let rec = match reading {
                    Some(Ok(r)) if r.is_ok() => {
                        report.ok.push(d.serial);
                        if !d.oath_access_key {
                            report.unlocked.push(d.serial);
                        }
                        continue;
                    }
                    Some(Ok(r)) => r.describe(),
                    Some(Err(e)) => e.to_string(),
                    None => format!(
                        "device {} was not read at this audit (its record changed meanwhile)",
                        d.serial
                    ),
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
                       "unknown": report.unknown.iter().map(ToString::to_string).collect::<Vec<_>>(),
                       "unlocked": report.unlocked.iter().map(ToString::to_string).collect::<Vec<_>>()}),
                &[],
            )?;
            Ok(report)
        })
    }
}

/// The devices an inventory audit reads (see [`Custody::plan_inventory`]).
#[derive(Debug)]
pub struct InventoryPlan {
    checks: Vec<super::devices::DeviceCheck>,
}

impl InventoryPlan {
    /// Reads each presented device's card and compares it with the ledger. Card I/O only.
    pub fn read(
        &self,
        access: &mut dyn DeviceAccess,
    ) -> Vec<(
        Serial,
        Result<super::reconcile::Reconciliation, CustodyError>,
    )> {
        self.checks
            .iter()
            .map(|c| (c.serial(), c.reconcile(access)))
            .collect()
    }
}
