//! The enrolment ceremony on [`Custody`] (two officers): `enrol`, or `plan_enrolment`,
//! [`EnrolmentPlan::check_cards`], `begin_enrolment`, [`EnrolmentPlan::program`],
//! `finish_enrolment`. The provider's seed goes onto an account's primary and backup keys, and
//! the two codes for consecutive steps are handed back for the provider's page.

use serde_json::json;

use crate::token::oath::{AccessKey, Code, CredentialName, OathSecret, PutRequest, TimeStep};

use super::access::{step_at, step_start_ms, DeviceAccess};
use super::device_keys::OathLock;
use super::devices::open;
use super::error::CustodyError;
use super::ids::{AccountId, Serial};
use super::reconcile::{reconcile, Mismatch, Reconciliation};
use super::records::{AccountStatus, DeviceRole, DeviceState, IncidentKind};
use super::service::{pair, token_err, Custody, Enrolment, EnrolmentCodes, Session};
use super::store::{entity, kinds, Put};

impl Custody {
    fn device_code(
        access: &mut dyn DeviceAccess,
        serial: Serial,
        lock: &OathLock,
        name: &CredentialName,
        step: TimeStep,
    ) -> Result<Code, CustodyError> {
        let t = open(access, serial)?;
        let mut s = lock.unlock(t, serial)?;
        s.calculate_totp(name, step).map_err(token_err(serial))
    }

    /// Enrolment (two officers): programs the provider's seed into the account's primary and
    /// backup devices (TOTP, SHA-1, 6 digits, 30 s, touch required), checks that both give the
    /// same code, and returns two consecutive codes, the second after waiting for the next
    /// step. The seed is zeroized when this returns and is never stored. An existing credential
    /// of the same name is overwritten only with `overwrite`.
    ///
    /// This is the phases the daemon runs holding the service only around the ones that
    /// decide and record: [`Custody::plan_enrolment`], [`EnrolmentPlan::check_cards`] (card
    /// I/O), [`Custody::begin_enrolment`] (`enrolment.started`, with the devices' sealed OATH
    /// access keys), [`EnrolmentPlan::program`] (card I/O: SET CODE, the credential, touches
    /// and the wait for the next step) and [`Custody::finish_enrolment`].
    ///
    /// Each device gets its own random OATH access key, stored only sealed in the ledger; a
    /// device that already has one (a re-enrolment, or an enrolment that stopped after
    /// `enrolment.started`) keeps it and must prove it with VALIDATE.
    pub fn enrol(
        &mut self,
        a: &Session,
        b: &Session,
        access: &mut dyn DeviceAccess,
        enrolment: Enrolment,
    ) -> Result<EnrolmentCodes, CustodyError> {
        let who = pair(a.user(), b.user());
        let Enrolment {
            account,
            primary,
            backup,
            seed,
            overwrite,
        } = enrolment;
        let plan = self.plan_enrolment(a, b, &account, primary, backup, overwrite)?;
        let reading = match plan.check_cards(access) {
            Ok(r) => r,
            Err(e) => return Err(self.refused(&who, "enrol", e)),
        };
        self.begin_enrolment(a, b, &plan, &reading)?;
        let clock = &*self.clock;
        let programmed = plan.program(access, seed, &|t| clock.wait_until(t), self.now());
        let codes = match programmed {
            Ok(c) => c,
            Err(e) => return Err(self.refused(&who, "enrol", e)),
        };
        self.finish_enrolment(a, b, &plan, codes)
    }

    /// The first phase of an enrolment: every check that needs no card. Refusals are recorded.
    pub fn plan_enrolment(
        &mut self,
        a: &Session,
        b: &Session,
        account: &AccountId,
        primary: Serial,
        backup: Serial,
        overwrite: bool,
    ) -> Result<EnrolmentPlan, CustodyError> {
        self.guarded(&pair(a.user(), b.user()), "enrol", |c| {
            c.enrolment_checks(a, b, account, primary, backup, overwrite)
        })
    }

    fn enrolment_checks(
        &mut self,
        a: &Session,
        b: &Session,
        account: &AccountId,
        primary: Serial,
        backup: Serial,
        overwrite: bool,
    ) -> Result<EnrolmentPlan, CustodyError> {
        let (x, y) = self.officer_pair(a, b, "enrol")?;
        let who = pair(&x.name, &y.name);
        let acc = self.account(account)?;
        if acc.status != AccountStatus::Active {
            return Err(CustodyError::AccountNotActive {
                account: account.clone(),
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
        let mut locks = Vec::new();
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
            self.require_attested(&d, "enrol it")?;
            if d.role != role {
                return Err(CustodyError::DeviceMismatch {
                    serial,
                    mismatch: format!("registered as {:?}, enrolled as {role:?}", d.role),
                });
            }
            let stored = self.oath_lock(&d)?;
            let new_key = match stored.key() {
                Some(_) => None,
                None => Some(super::device_keys::generate()?),
            };
            locks.push((stored, new_key));
            devices.push(d);
        }
        Ok(EnrolmentPlan {
            who,
            account: acc,
            name,
            devices,
            locks,
            overwrite,
        })
    }

    /// Judges what the cards answered ([`EnrolmentPlan::check_cards`]) and checks the plan
    /// again against the ledger as it is now (another operation may have run since), then
    /// commits `enrolment.started` with the sealed OATH access keys of the devices that have
    /// none yet: nothing is programmed unless this commits. A card that fails the access-key
    /// check of a device the ledger holds a key for opens a `device_mismatch` incident.
    pub fn begin_enrolment(
        &mut self,
        a: &Session,
        b: &Session,
        plan: &EnrolmentPlan,
        reading: &EnrolmentReading,
    ) -> Result<(), CustodyError> {
        self.guarded(&plan.who, "enrol", |c| {
            c.still_as_planned(a, b, plan, false)?;
            for rec in &reading.0 {
                if rec.is_ok() {
                    continue;
                }
                let detail = rec.describe();
                let not_the_device = rec.mismatches.iter().any(|m| {
                    matches!(
                        m,
                        Mismatch::AccessKeyNotSet
                            | Mismatch::AccessKeyNotProven
                            | Mismatch::CustodyKeyNotProven
                    )
                });
                if not_the_device {
                    c.open_incident_event(
                        &plan.who,
                        IncidentKind::DeviceMismatch,
                        Some(rec.expected),
                        detail.clone(),
                    )?;
                }
                return Err(CustodyError::DeviceMismatch {
                    serial: rec.expected,
                    mismatch: detail,
                });
            }
            let acc = &plan.account;
            let mut puts = Vec::new();
            for (d, (_, new_key)) in plan.devices.iter().zip(&plan.locks) {
                if let Some(key) = new_key {
                    let sealed = c.seal_access_key(d.serial, key)?;
                    puts.push(Put::new(entity::ACCESS_KEY, d.serial, &sealed)?);
                }
            }
            c.append(
                kinds::ENROLMENT_STARTED,
                &plan.who,
                json!({"account": acc.account, "primary": plan.primary().to_string(),
                       "backup": plan.backup().to_string(), "credential": acc.credential,
                       "overwrite": plan.overwrite}),
                &puts,
            )?;
            Ok(())
        })
    }

    /// The last phase: both keys are programmed and agree; records them enrolled and answers
    /// the two codes for the provider.
    pub fn finish_enrolment(
        &mut self,
        a: &Session,
        b: &Session,
        plan: &EnrolmentPlan,
        codes: EnrolmentCodes,
    ) -> Result<EnrolmentCodes, CustodyError> {
        self.guarded(&plan.who, "enrol", |c| {
            c.still_as_planned(a, b, plan, true)?;
            let acc = &plan.account;
            let mut events = Vec::new();
            for d in &plan.devices {
                let mut d = d.clone();
                d.account = Some(acc.account.clone());
                d.state = DeviceState::Enrolled;
                d.oath_access_key = true;
                events.push(Self::event(
                    kinds::DEVICE_ENROLLED,
                    &plan.who,
                    json!({"device": d.serial.to_string(), "account": acc.account,
                           "role": d.role, "credential": acc.credential,
                           "oath_access_key": true}),
                    &[Put::new(entity::DEVICE, d.serial, &d)?],
                )?);
            }
            events.push(Self::event(
                kinds::ENROLMENT_COMPLETED,
                &plan.who,
                json!({"account": acc.account, "primary": plan.primary().to_string(),
                       "backup": plan.backup().to_string(), "first_step": codes.first_step}),
                &[],
            )?);
            c.append_batch("enrol", events)?;
            Ok(codes)
        })
    }

    fn still_as_planned(
        &mut self,
        a: &Session,
        b: &Session,
        plan: &EnrolmentPlan,
        started: bool,
    ) -> Result<(), CustodyError> {
        let now = self.enrolment_checks(
            a,
            b,
            &plan.account.account,
            plan.primary(),
            plan.backup(),
            plan.overwrite,
        )?;
        let same = now.account.credential == plan.account.credential
            && now
                .devices
                .iter()
                .zip(&plan.devices)
                .all(|(n, p)| n.state.name() == p.state.name() && n.device_id == p.device_id)
            && now
                .locks
                .iter()
                .zip(&plan.locks)
                .all(|(n, (stored, new_key))| {
                    // Once `enrolment.started` committed, the ledger holds the new keys too.
                    let expected = match started {
                        true => stored.key().or(new_key.as_ref()),
                        false => stored.key(),
                    };
                    n.0.key() == expected
                });
        if !same {
            return Err(CustodyError::DeviceState {
                serial: plan.primary(),
                state: "changed during the enrolment",
                operation: "enrol",
            });
        }
        Ok(())
    }
}

/// An enrolment that passed every check that needs no card (see [`Custody::plan_enrolment`]).
#[derive(Debug)]
pub struct EnrolmentPlan {
    who: String,
    account: super::records::AccountRecord,
    name: CredentialName,
    devices: Vec<super::records::DeviceRecord>,
    /// Per device: what the ledger holds of its access key, and a new key when it holds none.
    locks: Vec<(OathLock, Option<AccessKey>)>,
    overwrite: bool,
}

/// What the cards answered at [`EnrolmentPlan::check_cards`]; [`Custody::begin_enrolment`]
/// judges it.
#[derive(Debug)]
pub struct EnrolmentReading(Vec<Reconciliation>);

impl EnrolmentPlan {
    /// The primary's serial.
    pub fn primary(&self) -> Serial {
        self.devices[0].serial
    }

    /// The backup's serial.
    pub fn backup(&self) -> Serial {
        self.devices[1].serial
    }

    /// Reconciles both keys with the ledger (VALIDATE first for a device the ledger holds an
    /// access key for) and looks for an existing credential of the account's name (refused
    /// unless the officers agreed to overwrite). Card I/O only; a card that does not reconcile
    /// is neither listed further nor programmed, and [`Custody::begin_enrolment`] judges it.
    pub fn check_cards(
        &self,
        access: &mut dyn DeviceAccess,
    ) -> Result<EnrolmentReading, CustodyError> {
        let mut readings = Vec::new();
        for (d, (stored, _)) in self.devices.iter().zip(&self.locks) {
            let mut t = open(access, d.serial)?;
            let rec = reconcile(d, None, stored, &mut t).map_err(token_err(d.serial))?;
            if !rec.is_ok() {
                readings.push(rec);
                break;
            }
            readings.push(rec);
            let mut s = stored.unlock(t, d.serial)?;
            let exists = s
                .list()
                .map_err(token_err(d.serial))?
                .iter()
                .any(|e| e.name == self.name);
            if exists && !self.overwrite {
                return Err(CustodyError::CredentialExists {
                    serial: d.serial,
                    credential: self.name.to_string(),
                });
            }
        }
        Ok(EnrolmentReading(readings))
    }

    /// The access key each device ends up locked with: the one the ledger holds, or the new
    /// one `enrolment.started` sealed.
    fn locked_with(&self, i: usize) -> Option<OathLock> {
        let (stored, new_key) = self.locks.get(i)?;
        let key = stored.key().or(new_key.as_ref())?.clone();
        Some(OathLock::locked(key))
    }

    /// Locks each key's OATH applet with its access key (SET CODE; a key already locked proves
    /// its own with VALIDATE instead) and programs the seed into it (touch required), then asks
    /// both keys, each after VALIDATE, for the code of the current step and, once `wait_until`
    /// has let the next step begin, of that step (never a step ahead); both keys must agree.
    /// The seed is zeroized when this returns. Card I/O and waiting only: touches no shared
    /// state. `now_ms` is the time the codes start from.
    pub fn program(
        &self,
        access: &mut dyn DeviceAccess,
        seed: super::secret::ProviderSeed,
        wait_until: &dyn Fn(i64),
        now_ms: i64,
    ) -> Result<EnrolmentCodes, CustodyError> {
        let mut locked = Vec::new();
        for (i, (d, (stored, _))) in self.devices.iter().zip(&self.locks).enumerate() {
            let lock = self.locked_with(i).ok_or(CustodyError::Crypto {
                operation: "OATH access key of the enrolment",
            })?;
            let t = open(access, d.serial)?;
            let mut s = stored.unlock(t, d.serial)?;
            if !s.info().locked() {
                // Locked before the seed goes on: from here on the applet answers nobody
                // without the key the ledger holds.
                if let Some(key) = lock.key() {
                    s.set_code(key).map_err(token_err(d.serial))?;
                }
            }
            locked.push(lock);
            let mut put = PutRequest::totp(self.name.clone(), seed.secret.clone());
            put.touch = true;
            s.put(&put).map_err(token_err(d.serial))?;
        }
        let secret: OathSecret = seed.secret.clone();
        drop(seed);
        drop(secret);
        let (primary, backup) = (self.primary(), self.backup());
        // Two consecutive codes: the current step, then wait for the next (never ask ahead).
        let first_step = step_at(now_ms);
        let mut codes = Vec::new();
        for step in [first_step, TimeStep(first_step.0 + 1)] {
            wait_until(step_start_ms(step));
            let (Some(pl), Some(bl)) = (locked.first(), locked.get(1)) else {
                return Err(CustodyError::Crypto {
                    operation: "OATH access key of the enrolment",
                });
            };
            let p = Custody::device_code(access, primary, pl, &self.name, step)?;
            let q = Custody::device_code(access, backup, bl, &self.name, step)?;
            if p != q {
                return Err(CustodyError::DevicesDisagree { primary, backup });
            }
            codes.push(p);
        }
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
}
