//! The enrolment ceremony on [`Custody`] (two officers): `enrol`, or `plan_enrolment`,
//! [`EnrolmentPlan::check_cards`], `begin_enrolment`, [`EnrolmentPlan::program`],
//! `finish_enrolment`. The provider's seed goes onto an account's primary and backup keys, and
//! the two codes for consecutive steps are handed back for the provider's page.

use serde_json::json;

use crate::token::oath::{
    Code, CredentialName, OathSecret, OathSession, PutRequest, Selected, TimeStep,
};

use super::access::{step_at, step_start_ms, DeviceAccess};
use super::devices::open;
use super::error::CustodyError;
use super::ids::{AccountId, Serial};
use super::reconcile::reconcile;
use super::records::{AccountStatus, DeviceRole, DeviceState};
use super::service::{pair, token_err, Custody, Enrolment, EnrolmentCodes, Session};
use super::store::{entity, kinds, Put};

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
    ///
    /// This is the phases the daemon runs holding the service only around the ones that
    /// decide and record: [`Custody::plan_enrolment`], [`EnrolmentPlan::check_cards`] (card
    /// I/O), [`Custody::begin_enrolment`] (`enrolment.started`), [`EnrolmentPlan::program`]
    /// (card I/O, touches and the wait for the next step) and [`Custody::finish_enrolment`].
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
        if let Err(e) = plan.check_cards(access) {
            return Err(self.refused(&who, "enrol", e));
        }
        self.begin_enrolment(a, b, &plan)?;
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
        Ok(EnrolmentPlan {
            who,
            account: acc,
            name,
            devices,
            overwrite,
        })
    }

    /// Checks the plan again against the ledger as it is now (another operation may have run
    /// since), then commits `enrolment.started`: nothing is programmed unless this commits.
    pub fn begin_enrolment(
        &mut self,
        a: &Session,
        b: &Session,
        plan: &EnrolmentPlan,
    ) -> Result<(), CustodyError> {
        self.guarded(&plan.who, "enrol", |c| {
            c.still_as_planned(a, b, plan)?;
            let acc = &plan.account;
            c.append(
                kinds::ENROLMENT_STARTED,
                &plan.who,
                json!({"account": acc.account, "primary": plan.primary().to_string(),
                       "backup": plan.backup().to_string(), "credential": acc.credential,
                       "overwrite": plan.overwrite}),
                &[],
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
            c.still_as_planned(a, b, plan)?;
            let acc = &plan.account;
            let mut events = Vec::new();
            for d in &plan.devices {
                let mut d = d.clone();
                d.account = Some(acc.account.clone());
                d.state = DeviceState::Enrolled;
                events.push(Self::event(
                    kinds::DEVICE_ENROLLED,
                    &plan.who,
                    json!({"device": d.serial.to_string(), "account": acc.account,
                           "role": d.role, "credential": acc.credential}),
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
                .all(|(n, p)| n.state.name() == p.state.name() && n.device_id == p.device_id);
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
    overwrite: bool,
}

impl EnrolmentPlan {
    /// The primary's serial.
    pub fn primary(&self) -> Serial {
        self.devices[0].serial
    }

    /// The backup's serial.
    pub fn backup(&self) -> Serial {
        self.devices[1].serial
    }

    /// Reconciles both keys with the ledger and looks for an existing credential of the
    /// account's name (refused unless the officers agreed to overwrite). Card I/O only.
    pub fn check_cards(&self, access: &mut dyn DeviceAccess) -> Result<(), CustodyError> {
        for d in &self.devices {
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
                .any(|e| e.name == self.name);
            if exists && !self.overwrite {
                return Err(CustodyError::CredentialExists {
                    serial: d.serial,
                    credential: self.name.to_string(),
                });
            }
        }
        Ok(())
    }

    /// Programs the seed into both keys (touch required), then asks both for the code of the
    /// current step and, once `wait_until` has let the next step begin, of that step (never a
    /// step ahead); both keys must agree. The seed is zeroized when this returns. Card I/O
    /// and waiting only: touches no shared state. `now_ms` is the time the codes start from.
    pub fn program(
        &self,
        access: &mut dyn DeviceAccess,
        seed: super::secret::ProviderSeed,
        wait_until: &dyn Fn(i64),
        now_ms: i64,
    ) -> Result<EnrolmentCodes, CustodyError> {
        for d in &self.devices {
            let t = open(access, d.serial)?;
            let mut s = ready(t, d.serial)?;
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
            let p = Custody::device_code(access, primary, &self.name, step)?;
            let q = Custody::device_code(access, backup, &self.name, step)?;
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
