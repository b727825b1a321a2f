//! Locking a device enrolled before devices got OATH access keys (two officers): `lock_device`,
//! or `plan_lock`, [`LockPlan::lock_card`], `finish_lock`; and the ledger's policy on such
//! unlocked devices ([`Custody::refuses_unlocked_devices`]).
//!
//! The new access key is sealed into the ledger (`device.lock_started`) before SET CODE reaches
//! the card, and the device is recorded locked (`device.locked`) only after the card proved it
//! with VALIDATE. A lock that stops in between (crash, card pulled) leaves the ledger holding a
//! key the card may or may not have: the next `custody device lock` finds it and uses it again,
//! so a card that took SET CODE is never left with a key the ledger lost.

use serde_json::json;

use super::access::DeviceAccess;
use super::device_keys::OathLock;
use super::devices::open;
use super::error::CustodyError;
use super::ids::Serial;
use super::policy::LedgerPolicy;
use super::reconcile::{reconcile, Mismatch};
use super::records::{DeviceRecord, DeviceState};
use super::service::{pair, token_err, Custody, Session};
use super::store::{self, entity, kinds, Put};
use crate::token::oath::AccessKey;

impl Custody {
    /// Whether codes are refused from devices without an OATH access key: the daemon's
    /// `policy.refuse_unlocked_devices` when set, else the ledger's own policy (on for ledgers
    /// created since enrolment locks devices; off for older ledgers).
    pub fn refuses_unlocked_devices(&self) -> Result<bool, CustodyError> {
        if let Some(on) = self.policy.refuse_unlocked_devices {
            return Ok(on);
        }
        let p: Option<LedgerPolicy> = store::get(&self.ledger, entity::POLICY, LedgerPolicy::ID)?;
        Ok(p.unwrap_or_default().refuse_unlocked_devices)
    }

    /// Locks an enrolled device that has no OATH access key (two officers): a new random key,
    /// sealed in the ledger first, is set on the card (SET CODE), and the card must then prove
    /// it with VALIDATE. The key must be out of its bag (enrolled or checked out) and in an
    /// allowed reader; the card is reconciled (serial, OATH device id, the account's
    /// credential) before anything is set, and a card that is not the device opens a
    /// `device_mismatch` incident.
    pub fn lock_device(
        &mut self,
        a: &Session,
        b: &Session,
        access: &mut dyn DeviceAccess,
        serial: Serial,
    ) -> Result<DeviceRecord, CustodyError> {
        let plan = self.plan_lock(a, b, serial)?;
        let locked = plan.lock_card(access);
        self.finish_lock(a, b, &plan, locked)
    }

    /// The checks of a lock that need no card, and the key: the one an earlier lock of this
    /// device sealed and did not finish, or a new one sealed now with `device.lock_started`
    /// (committed before the card is touched). Refusals are recorded.
    pub fn plan_lock(
        &mut self,
        a: &Session,
        b: &Session,
        serial: Serial,
    ) -> Result<LockPlan, CustodyError> {
        self.guarded(&pair(a.user(), b.user()), "lock_device", |c| {
            let (who, device, credential) = c.lock_checks(a, b, serial)?;
            let (key, resumed) = match c.access_key(serial)? {
                Some(key) => (key, true),
                None => {
                    let key = super::device_keys::generate()?;
                    let sealed = c.seal_access_key(serial, &key)?;
                    c.append(
                        kinds::DEVICE_LOCK_STARTED,
                        &who,
                        json!({"device": serial.to_string(), "account": device.account}),
                        &[Put::new(entity::ACCESS_KEY, serial, &sealed)?],
                    )?;
                    (key, false)
                }
            };
            Ok(LockPlan {
                device,
                credential,
                lock: OathLock::locked(key),
                resumed,
            })
        })
    }

    fn lock_checks(
        &self,
        a: &Session,
        b: &Session,
        serial: Serial,
    ) -> Result<(String, DeviceRecord, String), CustodyError> {
        let (x, y) = self.officer_pair(a, b, "lock_device")?;
        let d = self.device(serial)?;
        if let Some(incident) = d.blocked_by.clone() {
            return Err(CustodyError::DeviceBlocked { serial, incident });
        }
        if d.oath_access_key {
            return Err(CustodyError::DeviceState {
                serial,
                state: "locked",
                operation: "lock (it already has its OATH access key)",
            });
        }
        if !matches!(
            d.state,
            DeviceState::Enrolled | DeviceState::CheckedOut { .. }
        ) {
            return Err(CustodyError::DeviceState {
                serial,
                state: d.state.name(),
                operation: "lock (only an enrolled key out of its bag is locked: check it out \
                            first; a registered key is locked when it is enrolled)",
            });
        }
        let account = d
            .account
            .clone()
            .ok_or_else(|| CustodyError::CorruptRecord {
                entity: entity::DEVICE,
                id: serial.to_string(),
                reason: "enrolled without an account".into(),
            })?;
        let credential = self.account(&account)?.credential;
        Ok((pair(&x.name, &y.name), d, credential))
    }

    /// Records the device locked once its card proved the key ([`LockPlan::lock_card`]),
    /// checking the ledger again first. A card that is not the device opens a
    /// `device_mismatch` incident and the device stays unlocked.
    pub fn finish_lock(
        &mut self,
        a: &Session,
        b: &Session,
        plan: &LockPlan,
        locked: Result<(), CustodyError>,
    ) -> Result<DeviceRecord, CustodyError> {
        let serial = plan.serial();
        self.guarded(&pair(a.user(), b.user()), "lock_device", |c| {
            let (who, mut d, _) = c.lock_checks(a, b, serial)?;
            let same = c.access_key(serial)?.as_ref() == plan.lock.key()
                && d.state.name() == plan.device.state.name();
            if !same {
                return Err(CustodyError::DeviceState {
                    serial,
                    state: d.state.name(),
                    operation: "lock (the device changed during the lock; try again)",
                });
            }
            c.incident_on_mismatch(&who, locked)?;
            d.oath_access_key = true;
            c.append(
                kinds::DEVICE_LOCKED,
                &who,
                json!({"device": serial.to_string(), "account": d.account,
                       "oath_access_key": true, "resumed": plan.resumed}),
                &[Put::new(entity::DEVICE, serial, &d)?],
            )?;
            Ok(d)
        })
    }
}

/// A planned lock ([`Custody::plan_lock`]): the device as the ledger holds it, its account's
/// credential, and the access key to set. `Debug` shows no key byte.
#[derive(Debug)]
pub struct LockPlan {
    device: DeviceRecord,
    credential: String,
    lock: OathLock,
    resumed: bool,
}

impl LockPlan {
    /// The device's serial.
    pub fn serial(&self) -> Serial {
        self.device.serial
    }

    /// Reconciles the card with the ledger (serial, OATH device id, the account's credential
    /// with touch), sets the access key (SET CODE) and checks the card then asks for it and
    /// proves it (VALIDATE, and the credential listed after it). A card that already asks for
    /// an access key must prove it holds this one (a lock that stopped after SET CODE). A
    /// card that does not reconcile, or asks for another key, is
    /// [`CustodyError::DeviceMismatch`] and nothing is set on it. Card I/O only.
    pub fn lock_card(&self, access: &mut dyn DeviceAccess) -> Result<(), CustodyError> {
        let serial = self.serial();
        let unavailable = |e: CustodyError| match e {
            CustodyError::DeviceUnavailable { serial, reason } => CustodyError::DeviceUnavailable {
                serial,
                reason: format!(
                    "{reason}; take key {serial} out of its bag and put it in a reader to \
                         lock it"
                ),
            },
            e => e,
        };
        let mismatch = |detail: String| CustodyError::DeviceMismatch {
            serial,
            mismatch: detail,
        };
        let cred = Some(self.credential.as_str());
        let mut t = open(access, serial).map_err(unavailable)?;
        let unlocked = OathLock::default();
        let rec = reconcile(&self.device, cred, &unlocked, &mut t).map_err(token_err(serial))?;
        let set_before = rec.mismatches == [Mismatch::OathLocked];
        if !rec.is_ok() && !set_before {
            return Err(mismatch(rec.describe()));
        }
        if !set_before {
            let mut s = unlocked.unlock(t, serial)?;
            let key: &AccessKey = self.lock.key().ok_or(CustodyError::Crypto {
                operation: "OATH access key of the lock",
            })?;
            s.set_code(key).map_err(token_err(serial))?;
            drop(s);
            t = open(access, serial).map_err(unavailable)?;
        }
        let rec = reconcile(&self.device, cred, &self.lock, &mut t).map_err(token_err(serial))?;
        if !rec.is_ok() {
            return Err(mismatch(rec.describe()));
        }
        Ok(())
    }
}
