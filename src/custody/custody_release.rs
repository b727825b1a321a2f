//! Custody release on [`Custody`] (two officers): `release_custody`, or
//! `plan_custody_release`, [`CustodyReleasePlan::clear_access_keys`],
//! `finish_custody_release`. An account's devices are handed over (state `released`) with
//! their OATH access keys cleared from their cards, and a signed extract of the account's
//! history that says so.

use std::io::Write;

use serde_json::json;

use crate::ledger::{export_redacted, ExportFilter, ExportFormat, ExportSummary};

use super::access::DeviceAccess;
use super::error::CustodyError;
use super::ids::{AccountId, Serial};
use super::key_clearing::KeyClearing;
use super::records::{DeviceRecord, DeviceState, IncidentKind};
use super::service::{pair, Custody, Session};
use super::store::{entity, kinds, Put};

impl Custody {
    /// Custody release (two officers): the account's devices are handed over (state
    /// `released`), each locked device's OATH access key cleared from its card first (so the
    /// receiver can use it: every such key must be in an allowed reader), a `custody.released`
    /// event is recorded naming the devices and those whose access key was cleared, and a
    /// signed extract of the account's history (the ledger's export with the account filter)
    /// is written to `out`.
    pub fn release_custody(
        &mut self,
        a: &Session,
        b: &Session,
        access: &mut dyn DeviceAccess,
        account: &AccountId,
        out: &mut dyn Write,
    ) -> Result<ExportSummary, CustodyError> {
        let plan = self.plan_custody_release(a, b, account)?;
        let cleared = plan.clear_access_keys(access);
        self.finish_custody_release(a, b, &plan, cleared, out)
    }

    /// The checks of a custody release that need no card (two officers; no device of the
    /// account blocked), and the clearing of each locked device's access key, its intent
    /// recorded now ([`super::key_clearing`]). Refusals are recorded.
    pub fn plan_custody_release(
        &mut self,
        a: &Session,
        b: &Session,
        account: &AccountId,
    ) -> Result<CustodyReleasePlan, CustodyError> {
        self.guarded(&pair(a.user(), b.user()), "release_custody", |c| {
            let (who, devices) = c.custody_release_checks(a, b, account)?;
            let clearings = c.plan_key_clearings(&who, &devices, "release_custody")?;
            Ok(CustodyReleasePlan {
                account: account.clone(),
                devices: devices.iter().map(|d| d.serial).collect(),
                clearings,
            })
        })
    }

    fn custody_release_checks(
        &self,
        a: &Session,
        b: &Session,
        account: &AccountId,
    ) -> Result<(String, Vec<DeviceRecord>), CustodyError> {
        let (x, y) = self.officer_pair(a, b, "release_custody")?;
        self.account(account)?;
        let mut devices = Vec::new();
        for d in self.devices_of(account)? {
            if d.state.is_terminal() {
                continue;
            }
            if let Some(incident) = d.blocked_by.clone() {
                return Err(CustodyError::DeviceBlocked {
                    serial: d.serial,
                    incident,
                });
            }
            devices.push(d);
        }
        Ok((pair(&x.name, &y.name), devices))
    }

    /// Records the release once every locked device's card had its access key cleared
    /// ([`CustodyReleasePlan::clear_access_keys`]), checking the ledger again first, and
    /// writes the extract. A card that did not prove it holds its device's access key opens a
    /// `device_mismatch` incident and nothing is released; a card not in a reader releases
    /// nothing either (the keys already cleared are settled when the release runs again).
    pub fn finish_custody_release(
        &mut self,
        a: &Session,
        b: &Session,
        plan: &CustodyReleasePlan,
        cleared: Vec<(Serial, Result<(), CustodyError>)>,
        out: &mut dyn Write,
    ) -> Result<ExportSummary, CustodyError> {
        let account = &plan.account;
        self.guarded(&pair(a.user(), b.user()), "release_custody", |c| {
            let (who, devices) = c.custody_release_checks(a, b, account)?;
            for (_, r) in cleared.iter().filter(|(_, r)| r.is_err()) {
                if let Err(CustodyError::DeviceMismatch { serial, mismatch }) = r {
                    c.open_incident_event(
                        &who,
                        IncidentKind::DeviceMismatch,
                        Some(*serial),
                        mismatch.clone(),
                    )?;
                }
            }
            if let Some((_, Err(e))) = cleared.into_iter().find(|(_, r)| r.is_err()) {
                return Err(e);
            }
            let same = devices
                .iter()
                .map(|d| d.serial)
                .eq(plan.devices.iter().copied())
                && devices
                    .iter()
                    .filter(|d| d.oath_access_key)
                    .map(|d| d.serial)
                    .eq(plan.clearings.iter().map(KeyClearing::serial));
            let changed = devices
                .first()
                .map(|d| d.serial)
                .or_else(|| plan.devices.first().copied());
            if let (false, Some(serial)) = (same, changed) {
                return Err(CustodyError::DeviceState {
                    serial,
                    state: "changed during the release",
                    operation: "release custody (try again)",
                });
            }
            let acc = c.account(account)?;
            let mut events = Vec::new();
            let mut released = Vec::new();
            let mut keys_cleared = Vec::new();
            for mut d in devices {
                let before = d.state.name();
                d.state = DeviceState::Released;
                let mut body = json!({"device": d.serial.to_string(), "account": account,
                                      "from": before, "to": "released"});
                if d.oath_access_key {
                    // The sealed key stays in the ledger (history); the card asks for none.
                    d.oath_access_key = false;
                    d.access_key_clearing = false;
                    keys_cleared.push(d.serial.to_string());
                    if let serde_json::Value::Object(m) = &mut body {
                        m.insert("access_key_cleared".into(), json!(true));
                    }
                }
                released.push(d.serial.to_string());
                events.push(Self::event(
                    kinds::DEVICE_STATE_CHANGED,
                    &who,
                    body,
                    &[Put::new(entity::DEVICE, d.serial, &d)?],
                )?);
            }
            events.push(Self::event(
                kinds::CUSTODY_RELEASED,
                &who,
                json!({"account": account, "provider": acc.provider, "devices": released,
                       "access_keys_cleared": keys_cleared}),
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

/// A planned custody release ([`Custody::plan_custody_release`]): the account's devices and
/// the clearing of each locked one's access key. `Debug` shows no key byte.
#[derive(Debug)]
pub struct CustodyReleasePlan {
    account: AccountId,
    devices: Vec<Serial>,
    clearings: Vec<KeyClearing>,
}

impl CustodyReleasePlan {
    /// The serials of the devices released (to lock while their cards are used).
    pub fn devices(&self) -> &[Serial] {
        &self.devices
    }

    /// Clears the access key of each locked device from its card
    /// ([`KeyClearing::clear`]). Card I/O only.
    pub fn clear_access_keys(
        &self,
        access: &mut dyn DeviceAccess,
    ) -> Vec<(Serial, Result<(), CustodyError>)> {
        self.clearings
            .iter()
            .map(|k| (k.serial(), k.clear(access, "released")))
            .collect()
    }
}
