//! Clearing devices' OATH access keys from their cards when they leave custody (retiring a
//! locked device, the custody release of an account), so whoever holds them next can use them.
//!
//! The card is told UNSET CODE before the ledger records the device retired or released, so a
//! daemon that stops in between would leave a card without its key that the ledger still holds
//! locked: at its next use it would look like a clone. The intent is therefore recorded first
//! (`device.access_key_clearing`, the record's `access_key_clearing`), under the plan's lock,
//! before any card is touched, and the interrupted operation, run again, settles it: a card that
//! then asks for no access key is the one that took UNSET CODE (its serial came from the reader
//! the ledger's serial was found in), and the clearing is recorded as done. Without the intent
//! on record, a card that asks for no key is refused `device_mismatch` as before. This is the
//! re-share's way (the ledger records the intent before the new keyring is written, and the next
//! open settles it), with the settling left to the operation itself because only it has the
//! card in a reader.

use serde_json::json;

use crate::token::oath::{OathSession, Selected};

use super::access::DeviceAccess;
use super::device_keys::{OathLock, NOT_SET};
use super::error::CustodyError;
use super::ids::Serial;
use super::records::DeviceRecord;
use super::service::{token_err, Custody};
use super::store::{entity, kinds, Put};

/// One device whose access key is to be cleared from its card. `Debug` shows no key byte.
#[derive(Debug)]
pub struct KeyClearing {
    serial: Serial,
    lock: OathLock,
    /// The intent was recorded by an earlier, interrupted operation.
    resumed: bool,
}

impl KeyClearing {
    /// The device's serial.
    pub fn serial(&self) -> Serial {
        self.serial
    }

    /// SELECT, VALIDATE with the ledger's key, UNSET CODE, then SELECT again to check the
    /// applet asks for no key. A card that asks for no key at the first SELECT is accepted only
    /// when an earlier operation recorded the intent (it reached UNSET CODE and stopped); a card
    /// that fails VALIDATE, or asks for no key without that intent, is
    /// [`CustodyError::DeviceMismatch`]. `why` ends the hint of a card not in a reader
    /// (`retired`, `released`). Card I/O only.
    pub fn clear(&self, access: &mut dyn DeviceAccess, why: &str) -> Result<(), CustodyError> {
        let serial = self.serial;
        let t = access
            .open(serial)
            .map_err(|e| CustodyError::DeviceUnavailable {
                serial,
                reason: format!(
                    "{e}; put key {serial} in a reader: its access key is cleared when it is {why}"
                ),
            })?;
        let s = match OathSession::select(t).map_err(token_err(serial))? {
            Selected::Ready(_) if self.resumed => return Ok(()),
            Selected::Ready(_) => {
                return Err(CustodyError::DeviceMismatch {
                    serial,
                    mismatch: NOT_SET.to_owned(),
                })
            }
            Selected::Locked(l) => self.lock.validated(l, serial)?,
        };
        let mut s = s;
        s.unset_code().map_err(token_err(serial))?;
        let t = s.into_transport();
        let reader = t.reader().to_owned();
        match OathSession::select(t).map_err(token_err(serial))? {
            Selected::Ready(_) => Ok(()),
            Selected::Locked(_) => Err(CustodyError::Token {
                serial,
                source: Box::new(crate::token::TokenError::Malformed {
                    reader,
                    ins: crate::token::oath::ins::SET_CODE,
                    what: "UNSET CODE succeeded but the OATH applet still asks for an access key"
                        .into(),
                }),
            }),
        }
    }
}

impl Custody {
    /// The clearings `devices` need (those locked with an access key), with the intent of each
    /// not yet on record committed now, in one transaction, as `device.access_key_clearing`
    /// (`operation` names what clears them). Call under the plan's lock, before any card.
    pub(super) fn plan_key_clearings(
        &mut self,
        who: &str,
        devices: &[DeviceRecord],
        operation: &'static str,
    ) -> Result<Vec<KeyClearing>, CustodyError> {
        let mut clearings = Vec::new();
        let mut events = Vec::new();
        for d in devices.iter().filter(|d| d.oath_access_key) {
            clearings.push(KeyClearing {
                serial: d.serial,
                lock: self.oath_lock(d)?,
                resumed: d.access_key_clearing,
            });
            if !d.access_key_clearing {
                let mut d = d.clone();
                d.access_key_clearing = true;
                events.push(Self::event(
                    kinds::DEVICE_ACCESS_KEY_CLEARING,
                    who,
                    json!({"device": d.serial.to_string(), "account": d.account,
                           "operation": operation}),
                    &[Put::new(entity::DEVICE, d.serial, &d)?],
                )?);
            }
        }
        if !events.is_empty() {
            self.append_batch(operation, events)?;
        }
        Ok(clearings)
    }
}
