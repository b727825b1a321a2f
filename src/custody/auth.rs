//! Authentication and user administration on [`Custody`].

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::ledger::{LedgerError, Passphrase};

use super::error::CustodyError;
use super::ids::UserName;
use super::policy::ms;
use super::records::{Role, UserRecord};
use super::secret::{FactorEnrolment, FactorSeed, UserPassphrase};
use super::service::{pair, sorted_roles, Credentials, Custody, NewUser, Session};
use super::store::{self, entity, kinds, Put};
use super::users::Credential;

impl Custody {
    /// Checks a user's passphrase (and, for officers, their second-factor code, whose time step
    /// is then spent) and returns a session. Failures are recorded in the ledger. This is
    /// [`Custody::begin_authentication`], [`AuthCheck::verify`] and
    /// [`Custody::finish_authentication`] in one call; the daemon runs the middle one, the key
    /// derivation, without holding the service.
    pub fn authenticate(&mut self, creds: &Credentials) -> Result<Session, CustodyError> {
        let check = self.begin_authentication(creds)?;
        let verdict = check.verify(creds);
        self.finish_authentication(verdict)
    }

    /// The checks of an authentication that need no key derivation: the user exists, is
    /// active, is not bound to another uid, and (officers) offered a second-factor code.
    /// Refusals are recorded. The answer carries the user's opened credential for
    /// [`AuthCheck::verify`].
    pub fn begin_authentication(&mut self, creds: &Credentials) -> Result<AuthCheck, CustodyError> {
        let who = creds.user.to_string();
        let checked = (|| {
            let c = &*self;
            let user = c.user(&creds.user)?;
            if !user.active {
                return Err(CustodyError::Suspended { user: user.name });
            }
            if let Some(bound) = user.uid {
                if creds.uid != Some(bound) {
                    return Err(CustodyError::WrongUid {
                        user: user.name,
                        uid: creds.uid.unwrap_or(u32::MAX),
                    });
                }
            }
            let officer = user.has(Role::Officer);
            if officer && creds.factor.is_none() {
                return Err(CustodyError::FactorCodeRequired { user: user.name });
            }
            let credential = c.credential(&user.name)?;
            Ok(AuthCheck {
                user: user.name,
                officer,
                credential,
                now: c.now(),
            })
        })();
        checked.map_err(|e| self.refused_from(&who, "authenticate", e, creds.uid))
    }

    /// Records the outcome of a verified authentication and, when it succeeded, answers the
    /// session. The second-factor step is checked against the user's record as it is now, so
    /// two authentications racing with one code spend it once.
    pub fn finish_authentication(&mut self, v: AuthVerdict) -> Result<Session, CustodyError> {
        let who = v.user.to_string();
        self.guarded(&who, "authenticate", |c| c.finish_inner(v))
    }

    fn finish_inner(&mut self, v: AuthVerdict) -> Result<Session, CustodyError> {
        let mut user = self.user(&v.user)?;
        if !user.active {
            return Err(CustodyError::Suspended { user: user.name });
        }
        let mut reused = false;
        let mut step = None;
        let factor_ok = match (v.factor_step, v.officer) {
            (Some(s), true) if user.last_factor_step.map_or(true, |last| s > last) => {
                step = Some(s);
                true
            }
            (Some(_), true) => {
                reused = true;
                false
            }
            (None, true) => false,
            (_, false) => true,
        };
        if v.pass_ok && factor_ok {
            user.failed_attempts = 0;
            user.locked_until_ms = None;
            if step.is_some() {
                user.last_factor_step = step;
            }
            let put = Put::new(entity::USER, &user.name, &user)?;
            self.append(
                kinds::AUTH_SUCCEEDED,
                user.name.as_str(),
                json!({"user": user.name, "factor_step": step}),
                &[put],
            )?;
            return Ok(Session {
                user: user.name,
                at_ms: v.now,
                ledger: self.ledger.ledger_id(),
            });
        }
        // Failures are counted for the record; they lock nobody out. Guessing is bounded by
        // the daemon's throttle per (user, peer uid), which a stranger cannot turn against
        // the user from another uid.
        user.failed_attempts = user.failed_attempts.saturating_add(1);
        let put = Put::new(entity::USER, &user.name, &user)?;
        let reason = if reused && v.pass_ok {
            "factor_code_reused"
        } else {
            "wrong_credentials"
        };
        self.append(
            kinds::AUTH_FAILED,
            user.name.as_str(),
            json!({"user": user.name, "reason": reason, "failed_attempts": user.failed_attempts}),
            &[put],
        )?;
        Err(if reused && v.pass_ok {
            CustodyError::FactorCodeReused { user: user.name }
        } else {
            CustodyError::AuthenticationFailed { user: user.name }
        })
    }

    /// The active user behind a session, refusing expired sessions, sessions of another ledger
    /// and suspended users.
    pub(super) fn session_user(&self, s: &Session) -> Result<UserRecord, CustodyError> {
        let user = self.user(&s.user)?;
        if s.ledger != self.ledger.ledger_id()
            || self.now().saturating_sub(s.at_ms) > ms(self.policy.session_ttl)
            || self.now() < s.at_ms
        {
            return Err(CustodyError::SessionExpired { user: user.name });
        }
        if !user.active {
            return Err(CustodyError::Suspended { user: user.name });
        }
        Ok(user)
    }

    /// The active user behind a session (a login kept by the daemon): refused when the session
    /// is older than the policy's session lifetime, of another ledger, or its user is
    /// suspended. Nothing is recorded: this serves reads.
    pub fn session_holder(&self, s: &Session) -> Result<UserRecord, CustodyError> {
        self.session_user(s)
    }

    /// The session's user, who must hold one of `roles`.
    pub(super) fn session_with_role(
        &self,
        s: &Session,
        roles: &[Role],
        operation: &'static str,
    ) -> Result<UserRecord, CustodyError> {
        let user = self.session_user(s)?;
        if !roles.iter().any(|r| user.has(*r)) {
            return Err(if roles == [Role::Officer] {
                CustodyError::NotAnOfficer {
                    user: user.name,
                    operation,
                }
            } else {
                CustodyError::RoleRequired {
                    user: user.name,
                    operation,
                }
            });
        }
        Ok(user)
    }

    /// Two different active officers with live sessions.
    pub(super) fn officer_pair(
        &self,
        a: &Session,
        b: &Session,
        operation: &'static str,
    ) -> Result<(UserRecord, UserRecord), CustodyError> {
        let ua = self.session_with_role(a, &[Role::Officer], operation)?;
        let ub = self.session_with_role(b, &[Role::Officer], operation)?;
        if ua.name == ub.name {
            return Err(CustodyError::SameOfficerTwice {
                user: ua.name,
                operation,
            });
        }
        Ok((ua, ub))
    }

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
            let (user, mut puts, e) = c.new_user_puts(name, vec![Role::Officer], None, prepared)?;
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

    /// Refuses a session whose user is not an active officer (for a daemon operation such as
    /// `seal` that acts on its own, outside the domain); the refusal is recorded.
    pub fn require_officer(
        &mut self,
        s: &Session,
        operation: &'static str,
    ) -> Result<(), CustodyError> {
        self.guarded(s.user().as_str(), operation, |c| {
            c.session_with_role(s, &[Role::Officer], operation)?;
            Ok(())
        })
    }

    /// Authenticates a person who must be an officer (for a daemon operation such as `seal`
    /// that acts on its own, outside the domain). A person who authenticates but is not an
    /// officer is refused [`CustodyError::NotAnOfficer`], recorded like every refusal.
    pub fn authenticate_officer(
        &mut self,
        creds: &Credentials,
        operation: &'static str,
    ) -> Result<Session, CustodyError> {
        let s = self.authenticate(creds)?;
        self.guarded(creds.user.as_str(), operation, |c| {
            c.session_with_role(&s, &[Role::Officer], operation)?;
            Ok(s)
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
            let (x, y) = c.officer_pair(a, b, "bind_uid")?;
            if x.name == *name || y.name == *name {
                return Err(CustodyError::SubjectIsApprover {
                    user: name.clone(),
                    operation: "bind_uid",
                });
            }
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

/// An authentication that passed every check but the passphrase and second factor; see
/// [`Custody::begin_authentication`]. Holds the user's opened credential (zeroized on drop).
pub struct AuthCheck {
    user: UserName,
    officer: bool,
    credential: Credential,
    now: i64,
}

impl std::fmt::Debug for AuthCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthCheck")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl AuthCheck {
    /// The user being authenticated.
    pub fn user(&self) -> &UserName {
        &self.user
    }

    /// Derives the passphrase verifier and matches the second-factor code: the slow part,
    /// which touches no shared state.
    pub fn verify(self, creds: &Credentials) -> AuthVerdict {
        let pass_ok = self.credential.verify_passphrase(&creds.passphrase);
        let factor_step = match (&creds.factor, self.officer) {
            (Some(code), true) => self.credential.factor_step(code, self.now),
            _ => None,
        };
        AuthVerdict {
            user: self.user,
            officer: self.officer,
            pass_ok,
            factor_step,
            now: self.now,
        }
    }
}

/// What [`AuthCheck::verify`] found, for [`Custody::finish_authentication`] to record.
#[derive(Debug)]
pub struct AuthVerdict {
    user: UserName,
    officer: bool,
    pass_ok: bool,
    factor_step: Option<u64>,
    now: i64,
}

impl AuthVerdict {
    /// Whether both the passphrase and (officers) the second factor matched; a matched
    /// factor can still be refused as reused when recorded.
    pub fn matched(&self) -> bool {
        self.pass_ok && (!self.officer || self.factor_step.is_some())
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
