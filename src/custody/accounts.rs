//! Accounts on [`Custody`]: `register_account` (one officer), `set_account_status` (two
//! officers), and `devices_of` an account.

use serde_json::json;

use super::error::CustodyError;
use super::ids::{check_display_safe, AccountId};
use super::records::{AccountRecord, AccountStatus, DeviceRecord, DeviceState, Role};
use super::service::{pair, Custody, NewAccount, Session};
use super::store::{self, entity, kinds, Put};

impl Custody {
    /// Registers an account (one officer).
    pub fn register_account(
        &mut self,
        by: &Session,
        new: NewAccount,
    ) -> Result<AccountRecord, CustodyError> {
        self.guarded(by.user().as_str(), "register_account", |c| {
            let u = c.session_with_role(by, &[Role::Officer], "register_account")?;
            check_display_safe("credential", new.credential.as_str())?;
            if store::get::<AccountRecord>(&c.ledger, entity::ACCOUNT, new.account.as_str())?
                .is_some()
            {
                return Err(CustodyError::AccountExists {
                    account: new.account,
                });
            }
            let rec = AccountRecord {
                provider: new.provider,
                account: new.account,
                alias: new.alias,
                root_email: new.root_email,
                credential: new.credential.as_str().to_owned(),
                status: AccountStatus::Active,
                last_release_step: None,
                root_password: false,
                password_rotation_due: false,
            };
            let put = Put::new(entity::ACCOUNT, &rec.account, &rec)?;
            c.append(
                kinds::ACCOUNT_REGISTERED,
                u.name.as_str(),
                json!({"account": rec.account, "provider": rec.provider, "alias": rec.alias,
                       "credential": rec.credential}),
                &[put],
            )?;
            Ok(rec)
        })
    }

    /// Changes an account's status (two officers). Closing it retires its devices.
    pub fn set_account_status(
        &mut self,
        a: &Session,
        b: &Session,
        account: &AccountId,
        status: AccountStatus,
    ) -> Result<AccountRecord, CustodyError> {
        self.guarded(&pair(a.user(), b.user()), "set_account_status", |c| {
            let (x, y) = c.officer_pair(a, b, "set_account_status")?;
            let mut rec = c.account(account)?;
            if rec.status == AccountStatus::Closed {
                return Err(CustodyError::AccountNotActive {
                    account: account.clone(),
                    status: rec.status.as_str(),
                    operation: "change status",
                });
            }
            let from = rec.status;
            rec.status = status;
            let who = pair(&x.name, &y.name);
            let mut events = vec![Self::event(
                kinds::ACCOUNT_STATUS_CHANGED,
                &who,
                json!({"account": account, "from": from.as_str(), "to": status.as_str()}),
                &[Put::new(entity::ACCOUNT, account, &rec)?],
            )?];
            if status == AccountStatus::Closed {
                for mut d in c.devices_of(account)? {
                    if d.state.is_terminal() {
                        continue;
                    }
                    let before = d.state.name();
                    d.state = DeviceState::Retired;
                    events.push(Self::event(
                        kinds::DEVICE_STATE_CHANGED,
                        &who,
                        json!({"device": d.serial.to_string(), "account": account,
                               "from": before, "to": "retired", "why": "account closed"}),
                        &[Put::new(entity::DEVICE, d.serial, &d)?],
                    )?);
                }
            }
            c.append_batch("set_account_status", events)?;
            Ok(rec)
        })
    }

    /// The devices holding an account's credential.
    pub fn devices_of(&self, account: &AccountId) -> Result<Vec<DeviceRecord>, CustodyError> {
        Ok(self
            .devices()?
            .into_iter()
            .filter(|d| d.account.as_ref() == Some(account))
            .collect())
    }
}
