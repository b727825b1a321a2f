//! Custody release on [`Custody`] (two officers): `release_custody` hands an account's devices
//! over (state `released`) with a signed extract of the account's history.

use std::io::Write;

use serde_json::json;

use crate::ledger::{export_redacted, ExportFilter, ExportFormat, ExportSummary};

use super::error::CustodyError;
use super::ids::AccountId;
use super::records::DeviceState;
use super::service::{pair, Custody, Session};
use super::store::{entity, kinds, Put};

impl Custody {
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
