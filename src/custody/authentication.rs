//! Authentication on [`Custody`]: `authenticate`, or `begin_authentication`,
//! [`AuthCheck::verify`] (the key derivation, without the domain), `finish_authentication`
//! (or, for two rounds, `finish_authentication_rounds`, whose [`PassphraseProven`] a second
//! round completes with `begin_second_round` and [`AuthCheck::verify_factor`]);
//! `authenticate_officer`, `require_officer`, and `session_holder` (whom a session stands for).

use serde_json::json;

use super::error::CustodyError;
use super::ids::UserName;
use super::policy::ms;
use super::records::{Role, UserRecord};
use super::secret::FactorCode;
use super::service::{Credentials, Custody, Session};
use super::store::{entity, kinds, Put};
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
    /// active and is not bound to another uid. Refusals are recorded. Whether the user has a
    /// second factor is not looked at here: it is told only once the passphrase is proven
    /// ([`Custody::finish_authentication_rounds`]). The answer carries the user's opened
    /// credential for [`AuthCheck::verify`].
    pub fn begin_authentication(&mut self, creds: &Credentials) -> Result<AuthCheck, CustodyError> {
        let who = creds.user.to_string();
        let checked = self.auth_checks(&creds.user, creds.uid, false);
        checked.map_err(|e| self.refused_from(&who, "authenticate", e, creds.uid))
    }

    /// The second round of an authentication whose first round proved the passphrase and
    /// answered [`Authenticated::FactorRequired`]: the same checks as
    /// [`Custody::begin_authentication`] on the user as they are now (still active, still
    /// bound to this uid), with no passphrase to derive. [`AuthCheck::verify_factor`] then
    /// matches the code.
    pub fn begin_second_round(
        &mut self,
        proven: &PassphraseProven,
        uid: Option<u32>,
    ) -> Result<AuthCheck, CustodyError> {
        let who = proven.user.to_string();
        let checked = self.auth_checks(&proven.user, uid, true);
        checked.map_err(|e| self.refused_from(&who, "authenticate", e, uid))
    }

    fn auth_checks(
        &self,
        name: &UserName,
        uid: Option<u32>,
        proven: bool,
    ) -> Result<AuthCheck, CustodyError> {
        let user = self.user(name)?;
        if !user.active {
            return Err(CustodyError::Suspended { user: user.name });
        }
        if let Some(bound) = user.uid {
            if uid != Some(bound) {
                return Err(CustodyError::WrongUid {
                    user: user.name,
                    uid: uid.unwrap_or(u32::MAX),
                });
            }
        }
        let officer = user.has(Role::Officer);
        let credential = self.credential(&user.name)?;
        Ok(AuthCheck {
            user: user.name,
            officer,
            proven,
            credential,
            now: self.now(),
        })
    }

    /// Records the outcome of a verified authentication and, when it succeeded, answers the
    /// session. The second-factor step is checked against the user's record as it is now, so
    /// two authentications racing with one code spend it once. A right passphrase of a user
    /// with a second factor but no code is refused [`CustodyError::FactorCodeRequired`]
    /// (recorded like the refusals that cost nothing); the daemon, which can hold a second
    /// round, uses [`Custody::finish_authentication_rounds`] instead.
    pub fn finish_authentication(&mut self, v: AuthVerdict) -> Result<Session, CustodyError> {
        let who = v.user.to_string();
        self.guarded(&who, "authenticate", |c| match c.finish_inner(v)? {
            Authenticated::Session(s) => Ok(s),
            Authenticated::FactorRequired(p) => {
                Err(CustodyError::FactorCodeRequired { user: p.user })
            }
        })
    }

    /// As [`Custody::finish_authentication`], but a right passphrase of a user with a second
    /// factor and no code answers [`Authenticated::FactorRequired`]: nothing is recorded and
    /// nothing counts against the user (the passphrase was right, the code was not offered),
    /// and the proof lets a second round ([`Custody::begin_second_round`]) add the code
    /// without deriving the passphrase again. A wrong passphrase never gets that far: it is a
    /// failure, told apart from nothing else.
    pub fn finish_authentication_rounds(
        &mut self,
        v: AuthVerdict,
    ) -> Result<Authenticated, CustodyError> {
        let who = v.user.to_string();
        self.guarded(&who, "authenticate", |c| c.finish_inner(v))
    }

    fn finish_inner(&mut self, v: AuthVerdict) -> Result<Authenticated, CustodyError> {
        let mut user = self.user(&v.user)?;
        if !user.active {
            return Err(CustodyError::Suspended { user: user.name });
        }
        if v.pass_ok && v.officer && !v.factor_offered {
            return Ok(Authenticated::FactorRequired(PassphraseProven {
                user: user.name,
                at_ms: v.now,
            }));
        }
        let mut reused = false;
        let mut step = None;
        let factor_ok = match (v.factor_step, v.officer) {
            (Some(s), true) if user.last_factor_step.map_or(true, |last| s > last) => {
                step = Some(s);
                true
            }
            (Some(_), true) => {
                reused = v.pass_ok;
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
            return Ok(Authenticated::Session(Session {
                user: user.name,
                at_ms: v.now,
                ledger: self.ledger.ledger_id(),
                presence: None,
            }));
        }
        // Failures are counted for the record; they lock nobody out. Guessing is bounded by
        // the daemon's throttle per (user, peer uid), which a stranger cannot turn against
        // the user from another uid. A reused code with the right passphrase is no guess (the
        // code was right, for a step already spent): recorded, not counted.
        if !reused {
            user.failed_attempts = user.failed_attempts.saturating_add(1);
        }
        let put = Put::new(entity::USER, &user.name, &user)?;
        let reason = if reused {
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
        Err(if reused {
            CustodyError::FactorCodeReused {
                wait_secs: next_step_wait_secs(user.last_factor_step, v.now),
                user: user.name,
            }
        } else {
            CustodyError::AuthenticationFailed { user: user.name }
        })
    }

    /// Records the authentication of an officer whose approval a YubiKey signature just
    /// proved, as [`Custody::finish_authentication`] records one proved by a second-factor
    /// code: `auth.succeeded` (with no factor step, and `"proof": "signature"`: the signature
    /// took the code's place, so no step is spent) and the officer's failed attempts cleared.
    pub(super) fn record_signed_authentication(
        &mut self,
        name: &UserName,
    ) -> Result<(), CustodyError> {
        let mut user = self.user(name)?;
        user.failed_attempts = 0;
        user.locked_until_ms = None;
        let put = Put::new(entity::USER, &user.name, &user)?;
        self.append(
            kinds::AUTH_SUCCEEDED,
            user.name.as_str(),
            json!({"user": user.name, "factor_step": null, "proof": "signature"}),
            &[put],
        )?;
        Ok(())
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
        self.officers_present(a, b, operation)?;
        Ok((ua, ub))
    }

    /// Two different active officers acting on user `subject`, neither of them that user
    /// (`subject_is_approver` otherwise).
    pub(super) fn officer_pair_about(
        &self,
        a: &Session,
        b: &Session,
        subject: &UserName,
        operation: &'static str,
    ) -> Result<(UserRecord, UserRecord), CustodyError> {
        let (x, y) = self.officer_pair(a, b, operation)?;
        if x.name == *subject || y.name == *subject {
            return Err(CustodyError::SubjectIsApprover {
                user: subject.clone(),
                operation,
            });
        }
        Ok((x, y))
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
}

/// An authentication that passed every check but the passphrase and second factor; see
/// [`Custody::begin_authentication`]. Holds the user's opened credential (zeroized on drop).
pub struct AuthCheck {
    user: UserName,
    officer: bool,
    /// The passphrase was proven by a first round ([`PassphraseProven`]).
    proven: bool,
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
        self.judge(pass_ok, creds.factor.as_ref())
    }

    /// Matches the second-factor code of a second round, whose passphrase a first round
    /// proved ([`Custody::begin_second_round`]); no key derivation. A check not made for a
    /// second round proves no passphrase here.
    pub fn verify_factor(self, code: &FactorCode) -> AuthVerdict {
        let pass_ok = self.proven;
        self.judge(pass_ok, Some(code))
    }

    fn judge(self, pass_ok: bool, factor: Option<&FactorCode>) -> AuthVerdict {
        let factor_step = match (factor, self.officer) {
            (Some(code), true) => self.credential.factor_step(code, self.now),
            _ => None,
        };
        AuthVerdict {
            user: self.user,
            officer: self.officer,
            pass_ok,
            factor_offered: factor.is_some(),
            factor_step,
            now: self.now,
        }
    }
}

/// What an authentication came to when it was not refused: a session, or (a right passphrase
/// of a user with a second factor, no code offered) the proof a second round completes.
#[derive(Debug)]
pub enum Authenticated {
    /// Authenticated.
    Session(Session),
    /// The passphrase is right; the second factor's code is still to come.
    FactorRequired(PassphraseProven),
}

/// Proof that a user's passphrase was right at a time, made only by
/// [`Custody::finish_authentication_rounds`] and good for one second round
/// ([`Custody::begin_second_round`]). It carries nothing secret; the daemon keeps it behind a
/// single-use continuation bound to the peer, with its own lifetime.
#[derive(Debug, Clone)]
pub struct PassphraseProven {
    user: UserName,
    at_ms: i64,
}

impl PassphraseProven {
    /// Whose passphrase.
    pub fn user(&self) -> &UserName {
        &self.user
    }

    /// When it was proven (ms since the epoch, the daemon's clock).
    pub fn at_ms(&self) -> i64 {
        self.at_ms
    }

    /// A proof for `user` at `at_ms`, for unit tests of code that keeps proofs.
    #[cfg(test)]
    pub(crate) fn for_tests(user: UserName, at_ms: i64) -> Self {
        Self { user, at_ms }
    }
}

/// What [`AuthCheck::verify`] found, for [`Custody::finish_authentication`] to record.
#[derive(Debug)]
pub struct AuthVerdict {
    user: UserName,
    officer: bool,
    pass_ok: bool,
    factor_offered: bool,
    factor_step: Option<u64>,
    now: i64,
}

/// Seconds from `now_ms` until the time step after `spent` begins (30-second steps, rounded
/// up; 0 when it has begun): when an officer's next code will be accepted.
pub(crate) fn next_step_wait_secs(spent: Option<u64>, now_ms: i64) -> u64 {
    let next_ms = spent.map_or(0, |s| s.saturating_add(1).saturating_mul(30_000));
    let now = u64::try_from(now_ms).unwrap_or(0);
    next_ms.saturating_sub(now).div_ceil(1000)
}

impl AuthVerdict {
    /// Whether both the passphrase and (officers) the second factor matched; a matched
    /// factor can still be refused as reused when recorded.
    pub fn matched(&self) -> bool {
        self.pass_ok && (!self.officer || self.factor_step.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::next_step_wait_secs;

    #[test]
    fn the_wait_after_a_reused_code_runs_to_the_next_step() {
        // Step 10 is 300 000..330 000 ms: the next code is accepted from 330 000 ms.
        assert_eq!(next_step_wait_secs(Some(10), 300_000), 30);
        assert_eq!(next_step_wait_secs(Some(10), 317_500), 13, "rounded up");
        assert_eq!(next_step_wait_secs(Some(10), 329_001), 1);
        assert_eq!(next_step_wait_secs(Some(10), 330_000), 0);
        // The spent step was the one before the current: the current code is accepted now.
        assert_eq!(next_step_wait_secs(Some(9), 317_500), 0);
        assert_eq!(next_step_wait_secs(None, 317_500), 0);
    }
}
