//! User administration on [`Custody`]: the genesis officers' `bootstrap_officer` (or
//! `begin_bootstrap`, [`bootstrap_check`], `bootstrap_officer_checked`), `add_user` (or
//! `add_user_prepared` with a [`PreparedCredential`]), `set_roles`, `set_active` and `bind_uid`.

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::ledger::{LedgerError, Passphrase};

use super::error::CustodyError;
use super::ids::UserName;
use super::policy::LedgerPolicy;
use super::records::{Role, UserRecord};
use super::secret::{FactorEnrolment, FactorSeed, UserPassphrase};
use super::service::{pair, sorted_roles, Custody, NewUser, Session};
use super::store::{self, entity, kinds, Put};
use super::users::Credential;

impl Custody {
    fn new_user_puts(
        &self,
        name: &UserName,
        roles: Vec<Role>,
        uid: Option<u32>,
        prepared: PreparedCredential,
    ) -> Result<(UserRecord, Vec<Put>, Option<FactorEnrolment>), CustodyError> {
        if store_has_user(self, name)? {
            return Err(CustodyError::UserExists { user: name.clone() });
        }
        let roles = sorted_roles(roles)?;
        if prepared.name != *name || prepared.officer != roles.contains(&Role::Officer) {
            return Err(CustodyError::invalid(
                "credential",
                name.as_str(),
                "prepared for another user or role",
            ));
        }
        let PreparedCredential {
            credential,
            enrolment,
            ..
        } = prepared;
        let sealed = credential.seal(&self.credential_key, name)?;
        let user = UserRecord {
            name: name.clone(),
            roles,
            uid,
            active: true,
            failed_attempts: 0,
            locked_until_ms: None,
            last_factor_step: None,
            suspensions: 0,
        };
        let puts = vec![
            Put::new(entity::USER, name, &user)?,
            Put::new(entity::CREDENTIAL, name, &sealed)?,
        ];
        Ok((user, puts, enrolment))
    }

    /// Enrols one of the ledger's genesis officers (named in its keyring) as a custody officer,
    /// once. The caller proves to be that officer with their keyring (unseal) passphrase,
    /// checked against their own share of the keyring; `passphrase` becomes their custody
    /// passphrase. Returns their second-factor seed, shown this one time.
    ///
    /// A wrong keyring passphrase is [`CustodyError::WrongKeyringPassphrase`], recorded as an
    /// `auth.failed` event and a refusal. Repeated guesses are slowed by the daemon's throttle
    /// per (name, peer uid), as for authentication.
    pub fn bootstrap_officer(
        &mut self,
        name: &UserName,
        keyring_passphrase: &Passphrase,
        passphrase: &UserPassphrase,
    ) -> Result<FactorEnrolment, CustodyError> {
        let keyring = self.begin_bootstrap(name)?;
        let checked = bootstrap_check(&keyring, name, keyring_passphrase);
        let prepared = match checked {
            Ok(()) => Some(PreparedCredential::new(
                name,
                true,
                passphrase,
                self.policy.kdf,
            )?),
            Err(_) => None,
        };
        self.bootstrap_officer_checked(name, checked, prepared)
    }

    /// The checks of a bootstrap that need no key derivation (a keyring officer, not yet
    /// enrolled), recorded when they refuse; answers the keyring to check the passphrase
    /// against ([`bootstrap_check`]).
    pub fn begin_bootstrap(
        &mut self,
        name: &UserName,
    ) -> Result<crate::ledger::Keyring, CustodyError> {
        self.guarded(name.as_str(), "bootstrap_officer", |c| {
            c.bootstrap_prechecks(name)?;
            Ok(c.ledger.keyring().clone())
        })
    }

    fn bootstrap_prechecks(&self, name: &UserName) -> Result<(), CustodyError> {
        // The keyring header lists its officers for anyone (`status`), so saying that a
        // name is not among them tells nothing new.
        if !self
            .ledger
            .keyring()
            .officers()
            .iter()
            .any(|o| o.as_str() == name.as_str())
        {
            return Err(CustodyError::NotAnOfficer {
                user: name.clone(),
                operation: "bootstrap_officer",
            });
        }
        if store_has_user(self, name)? {
            return Err(CustodyError::UserExists { user: name.clone() });
        }
        Ok(())
    }

    /// [`Custody::bootstrap_officer`] with the keyring passphrase already checked
    /// ([`bootstrap_check`]) and, when it was right, the new passphrase's verifier already
    /// derived ([`PreparedCredential`]): the daemon runs those two key derivations without
    /// holding the service.
    pub fn bootstrap_officer_checked(
        &mut self,
        name: &UserName,
        checked: Result<(), LedgerError>,
        prepared: Option<PreparedCredential>,
    ) -> Result<FactorEnrolment, CustodyError> {
        self.guarded(name.as_str(), "bootstrap_officer", |c| {
            c.bootstrap_prechecks(name)?;
            let mut attempts: BootstrapAttempts =
                store::get(&c.ledger, entity::BOOTSTRAP, name.as_str())?.unwrap_or_default();
            match checked {
                Ok(()) => {}
                Err(LedgerError::WrongPassphrase { .. }) => {
                    // Counted for the record; guessing is bounded by the daemon's throttle.
                    attempts.failed_attempts = attempts.failed_attempts.saturating_add(1);
                    attempts.locked_until_ms = None;
                    let put = Put::new(entity::BOOTSTRAP, name, &attempts)?;
                    c.append(
                        kinds::AUTH_FAILED,
                        name.as_str(),
                        json!({"user": name, "operation": "bootstrap_officer",
                               "reason": "wrong_keyring_passphrase",
                               "failed_attempts": attempts.failed_attempts}),
                        &[put],
                    )?;
                    return Err(CustodyError::WrongKeyringPassphrase { user: name.clone() });
                }
                Err(_) => {
                    return Err(CustodyError::Crypto {
                        operation: "check keyring passphrase",
                    })
                }
            }
            let prepared = prepared.ok_or_else(|| {
                CustodyError::invalid("credential", name.as_str(), "no verifier was derived")
            })?;
            let first = store::all::<serde_json::Value>(&c.ledger, entity::USER)?.is_empty();
            let (user, mut puts, e) = c.new_user_puts(name, vec![Role::Officer], None, prepared)?;
            if first {
                // The ledger's own policy, recorded with its first officer.
                puts.push(Put::new(
                    entity::POLICY,
                    LedgerPolicy::ID,
                    &LedgerPolicy::for_new_ledgers(),
                )?);
            }
            if attempts != BootstrapAttempts::default() {
                puts.push(Put::new(
                    entity::BOOTSTRAP,
                    name,
                    &BootstrapAttempts::default(),
                )?);
            }
            c.append(
                kinds::USER_ADDED,
                name.as_str(),
                json!({"user": user.name, "roles": user.roles, "uid": user.uid, "bootstrap": true}),
                &puts,
            )?;
            e.ok_or(CustodyError::Crypto {
                operation: "officer factor",
            })
        })
    }

    /// Adds a user. Adding an officer needs two officers (`by` holds both sessions); other roles
    /// need one officer. Officers get a second-factor seed, returned this one time.
    pub fn add_user(
        &mut self,
        by: &[&Session],
        new: NewUser,
    ) -> Result<Option<FactorEnrolment>, CustodyError> {
        let prepared = PreparedCredential::new(
            &new.name,
            new.roles.contains(&Role::Officer),
            &new.passphrase,
            self.policy.kdf,
        )?;
        self.add_user_prepared(by, new, prepared)
    }

    /// [`Custody::add_user`] with the new passphrase's verifier already derived
    /// ([`PreparedCredential`], without holding the service); `new.passphrase` is not used.
    pub fn add_user_prepared(
        &mut self,
        by: &[&Session],
        new: NewUser,
        prepared: PreparedCredential,
    ) -> Result<Option<FactorEnrolment>, CustodyError> {
        let who = by
            .iter()
            .map(|s| s.user.as_str())
            .collect::<Vec<_>>()
            .join("+");
        let who = if who.is_empty() {
            "unknown".to_owned()
        } else {
            who
        };
        self.guarded(&who, "add_user", |c| {
            let approvers: Vec<UserName> = match (new.roles.contains(&Role::Officer), by) {
                (true, [a, b]) => {
                    let (x, y) = c.officer_pair(a, b, "add_officer")?;
                    vec![x.name, y.name]
                }
                (true, [a, ..]) => {
                    let u = c.session_with_role(a, &[Role::Officer], "add_officer")?;
                    return Err(CustodyError::SameOfficerTwice {
                        user: u.name,
                        operation: "add_officer",
                    });
                }
                (false, [a, ..]) => {
                    vec![c.session_with_role(a, &[Role::Officer], "add_user")?.name]
                }
                (_, []) => {
                    return Err(CustodyError::invalid("sessions", "", "no officer session given"))
                }
            };
            let (user, puts, e) = c.new_user_puts(&new.name, new.roles, new.uid, prepared)?;
            c.append(
                kinds::USER_ADDED,
                &approvers
                    .iter()
                    .map(UserName::as_str)
                    .collect::<Vec<_>>()
                    .join("+"),
                json!({"user": user.name, "roles": user.roles, "uid": user.uid, "approved_by": approvers}),
                &puts,
            )?;
            Ok(e)
        })
    }

    /// Changes a user's roles (two officers). Becoming an officer this way is refused: officers
    /// are added with [`Custody::add_user`] so they get a second factor.
    pub fn set_roles(
        &mut self,
        a: &Session,
        b: &Session,
        name: &UserName,
        roles: Vec<Role>,
    ) -> Result<UserRecord, CustodyError> {
        self.guarded(&pair(&a.user, &b.user), "set_roles", |c| {
            let (x, y) = c.officer_pair(a, b, "set_roles")?;
            let mut user = c.user(name)?;
            let roles = sorted_roles(roles)?;
            if roles.contains(&Role::Officer) && !user.has(Role::Officer) {
                return Err(CustodyError::invalid(
                    "roles",
                    "officer",
                    "officers are added as new users (they need a second factor)",
                ));
            }
            let before = user.roles.clone();
            user.roles = roles;
            let put = Put::new(entity::USER, name, &user)?;
            c.append(
                kinds::USER_ROLES_CHANGED,
                &pair(&x.name, &y.name),
                json!({"user": name, "from": before, "to": user.roles}),
                &[put],
            )?;
            Ok(user)
        })
    }

    /// Suspends (`active = false`) or reinstates a user (two officers).
    pub fn set_active(
        &mut self,
        a: &Session,
        b: &Session,
        name: &UserName,
        active: bool,
    ) -> Result<UserRecord, CustodyError> {
        let op = if active { "reinstate" } else { "suspend" };
        self.guarded(&pair(&a.user, &b.user), op, |c| {
            let (x, y) = c.officer_pair(a, b, op)?;
            let mut user = c.user(name)?;
            if user.active && !active {
                // Ends every approval this user gave so far, whether or not reinstated later.
                user.suspensions = user.suspensions.saturating_add(1);
            }
            user.active = active;
            user.failed_attempts = 0;
            user.locked_until_ms = None;
            let put = Put::new(entity::USER, name, &user)?;
            let kind = if active {
                kinds::USER_REINSTATED
            } else {
                kinds::USER_SUSPENDED
            };
            c.append(
                kind,
                &pair(&x.name, &y.name),
                json!({"user": name, "suspensions": user.suspensions}),
                &[put],
            )?;
            Ok(user)
        })
    }

    /// Clears a user's failed authentications (two officers, neither of them the user): their
    /// count in the user record, and (the daemon does it after this) the waits its throttle
    /// imposes on them. Recorded as `user.unlocked` with the count cleared and the officers.
    pub fn unlock_user(
        &mut self,
        a: &Session,
        b: &Session,
        name: &UserName,
    ) -> Result<UserRecord, CustodyError> {
        self.guarded(&pair(&a.user, &b.user), "unlock", |c| {
            let (x, y) = c.officer_pair_about(a, b, name, "unlock")?;
            let mut user = c.user(name)?;
            let cleared = user.failed_attempts;
            user.failed_attempts = 0;
            user.locked_until_ms = None;
            let put = Put::new(entity::USER, name, &user)?;
            c.append(
                kinds::USER_UNLOCKED,
                &pair(&x.name, &y.name),
                json!({"user": name, "failed_attempts": cleared, "approved_by": [x.name, y.name]}),
                &[put],
            )?;
            Ok(user)
        })
    }

    /// Binds a user to the OS uid they must connect as, or moves their binding to another uid
    /// (two officers, neither of them the user). This is how genesis officers, enrolled by
    /// [`Custody::bootstrap_officer`] without a uid, get one. Neither officer may be the user:
    /// the binding limits where the user's passphrase and second factor work, so it is vouched
    /// for by two people it does not constrain, as a request is approved by two officers who
    /// did not make it; otherwise one officer with one helper could move their own binding to
    /// a shared or foreign account. Takes effect at the user's next authentication; sessions
    /// already open are not affected. Recorded as `user.uid_bound` with `from` and `to`.
    pub fn bind_uid(
        &mut self,
        a: &Session,
        b: &Session,
        name: &UserName,
        uid: u32,
    ) -> Result<UserRecord, CustodyError> {
        self.guarded(&pair(&a.user, &b.user), "bind_uid", |c| {
            let (x, y) = c.officer_pair_about(a, b, name, "bind_uid")?;
            if uid == u32::MAX {
                return Err(CustodyError::invalid(
                    "uid",
                    &uid.to_string(),
                    "4294967295 is (uid_t)-1, which no process runs as",
                ));
            }
            let mut user = c.user(name)?;
            if user.uid == Some(uid) {
                return Err(CustodyError::invalid(
                    "uid",
                    &uid.to_string(),
                    format!("{name} is already bound to this uid; nothing to change"),
                ));
            }
            let from = user.uid;
            user.uid = Some(uid);
            let put = Put::new(entity::USER, name, &user)?;
            c.append(
                kinds::USER_UID_BOUND,
                &pair(&x.name, &y.name),
                json!({"user": name, "from": from, "to": uid, "approved_by": [x.name, y.name]}),
                &[put],
            )?;
            Ok(user)
        })
    }
}

/// Failed bootstrap attempts of a keyring officer not yet enrolled, counted for the record
/// (there is no user record yet to hold them). `locked_until_ms` is kept for ledgers written
/// when failures locked the name; it is no longer set.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct BootstrapAttempts {
    failed_attempts: u32,
    locked_until_ms: Option<i64>,
}

fn store_has_user(c: &Custody, name: &UserName) -> Result<bool, CustodyError> {
    match c.user(name) {
        Ok(_) => Ok(true),
        Err(CustodyError::UnknownUser { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Checks a genesis officer's keyring passphrase against their own share of `keyring` (one key
/// derivation; a name not in the keyring costs the same). Touches no shared state.
pub fn bootstrap_check(
    keyring: &crate::ledger::Keyring,
    name: &UserName,
    keyring_passphrase: &Passphrase,
) -> Result<(), LedgerError> {
    let officer = crate::ledger::OfficerName::parse(name.as_str()).map_err(|_| {
        LedgerError::UnknownOfficer {
            name: name.to_string(),
        }
    })?;
    keyring.check_officer_passphrase(&officer, keyring_passphrase)
}

/// A new user's passphrase verifier and, for an officer, a fresh second-factor seed: the slow
/// part of adding a user (a key derivation), made without the service. Zeroized on drop.
pub struct PreparedCredential {
    name: UserName,
    officer: bool,
    credential: Credential,
    enrolment: Option<FactorEnrolment>,
}

impl std::fmt::Debug for PreparedCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedCredential")
            .field("name", &self.name)
            .field("officer", &self.officer)
            .finish_non_exhaustive()
    }
}

impl PreparedCredential {
    /// Derives the verifier of `passphrase` for `name` with `kdf` (the policy's), and for an
    /// officer generates their second-factor seed.
    pub fn new(
        name: &UserName,
        officer: bool,
        passphrase: &UserPassphrase,
        kdf: super::policy::PassphraseKdf,
    ) -> Result<Self, CustodyError> {
        let (factor, enrolment) = if officer {
            let seed = FactorSeed::generate()?;
            let e = FactorEnrolment::new(name.as_str(), &seed);
            (Some(seed), Some(e))
        } else {
            (None, None)
        };
        Ok(Self {
            name: name.clone(),
            officer,
            credential: Credential::new(passphrase, kdf, factor)?,
            enrolment,
        })
    }
}
