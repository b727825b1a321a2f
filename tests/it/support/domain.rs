//! The custody domain in this process, for the tests that drive it without a daemon: genesis
//! with officers alice and bob, the domain on a clock that skips ahead where people would wait
//! (the skip clock), each person's credentials with a code of a fresh second-factor step, and
//! emulated keys found by serial.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use mfa_custody::custody::{
    AccountId, Alias, Clock, Credentials, Custody, DeviceAccess, DeviceAccessError, Email,
    Enrolment, FactorCode, FactorEnrolment, NewAccount, NewRequest, NewUser, PassphraseKdf, Policy,
    Provider, ProviderSeed, Role, Serial, Session, UserName, UserPassphrase,
};
use mfa_custody::emulator::oath::{AutoTouch, OathState};
use mfa_custody::emulator::SoftKey;
use mfa_custody::ledger::{Ledger, OfficerName, Passphrase};
use mfa_custody::token::management::FormFactor;
use mfa_custody::token::oath::CredentialName;
use mfa_custody::token::CardTransport;
use zeroize::Zeroizing;

use super::clock::{host_step, step_of_ms, totp, STEP_MS};
use super::ledger::{genesis, keyring_of, low_kdf};

/// The genesis officers.
pub const OFFICERS: [&str; 2] = ["alice", "bob"];

/// The keyring (unseal) passphrase of a genesis officer.
pub fn unseal_pass(officer: &str) -> String {
    format!("{officer}-unseal-1")
}

/// The keyring of alice and bob, each with [`unseal_pass`].
pub fn officers() -> Vec<(OfficerName, Passphrase)> {
    keyring_of(&OFFICERS, unseal_pass)
}

/// A new ledger in `dir` for `officers`, with the domain's projections.
pub fn ledger(dir: &Path, officers: &[(OfficerName, Passphrase)]) -> Ledger {
    genesis(dir, officers, Custody::projections().expect("projections"))
}

/// The domain's policy with the test-only passphrase cost.
pub fn policy() -> Policy {
    Policy {
        kdf: PassphraseKdf::insecure_for_tests(low_kdf()),
        ..Policy::default()
    }
}

/// Host time plus an offset that only grows: fresh second-factor steps without sleeping.
#[derive(Clone, Default)]
pub struct SkipClock(Arc<AtomicI64>);

impl Clock for SkipClock {
    fn now_ms(&self) -> i64 {
        let d = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970");
        i64::try_from(d.as_millis()).expect("fits") + self.0.load(Ordering::SeqCst)
    }
    fn wait_until(&self, until_ms: i64) {
        let behind = until_ms - self.now_ms();
        if behind > 0 {
            self.0.fetch_add(behind, Ordering::SeqCst);
        }
    }
}

impl SkipClock {
    /// Skips to the start of the next second-factor step.
    pub fn next_step(&self) {
        let now = self.now_ms();
        self.wait_until((now / STEP_MS + 1) * STEP_MS);
    }
}

pub fn name(s: &str) -> UserName {
    UserName::parse(s).expect("name")
}

/// The custody passphrase of `user`.
pub fn pass(user: &str) -> UserPassphrase {
    UserPassphrase::new_checked(Zeroizing::new(format!("{user}-passphrase-1"))).expect("pass")
}

/// The people of a scenario: their second-factor seeds, on the domain's clock.
pub struct People {
    pub clock: SkipClock,
    /// Base32 seeds by user.
    pub factors: BTreeMap<String, String>,
}

impl People {
    /// `user`'s passphrase and, when they have a second factor, a code of the next step (the
    /// clock skips to it, so no code is ever used twice).
    pub fn creds(&self, user: &str) -> Credentials {
        let factor = self.factors.get(user).map(|seed| {
            self.clock.next_step();
            FactorCode::parse(&totp(seed, step_of_ms(self.clock.now_ms()))).expect("code")
        });
        Credentials {
            user: name(user),
            passphrase: pass(user),
            factor,
            uid: None,
        }
    }
}

/// Genesis of alice and bob in `dir` (the ledger directory), the domain on a [`SkipClock`],
/// and both bootstrapped as custody officers with their second factors.
pub fn bootstrapped(dir: &Path) -> (Custody, People) {
    let officers = officers();
    let clock = SkipClock::default();
    let mut custody =
        Custody::with_clock(ledger(dir, &officers), policy(), Box::new(clock.clone()))
            .expect("custody");
    let mut people = People {
        clock,
        factors: BTreeMap::new(),
    };
    for (officer, keyring) in &officers {
        let o = officer.as_str();
        let e = custody
            .bootstrap_officer(&name(o), keyring, &pass(o))
            .expect("bootstrap");
        people.factors.insert(o.into(), e.base32().to_owned());
    }
    (custody, people)
}

/// Bootstraps genesis officer `officer` (keyring passphrase [`unseal_pass`], custody passphrase
/// [`pass`]) and signs them in with a code of the host's current step: the first officer of a
/// domain on the host's clock.
pub fn first_officer(custody: &mut Custody, officer: &str) -> Session {
    let keyring = Passphrase::for_unseal(Zeroizing::new(unseal_pass(officer))).expect("keyring");
    let factor = custody
        .bootstrap_officer(&name(officer), &keyring, &pass(officer))
        .expect("bootstrap");
    custody
        .authenticate(&Credentials {
            user: name(officer),
            passphrase: pass(officer),
            factor: Some(FactorCode::parse(&totp(factor.base32(), host_step())).expect("code")),
            uid: None,
        })
        .expect("the officer signs in")
}

/// The provider's seed of the account the domain stories enrol: the public RFC 6238 test seed.
pub const SEED_B32: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
/// The AWS account of the domain stories.
pub const ACCOUNT: &str = "123456789012";

/// A new operator, added by `by` (one officer suffices): what `add_user` answered (an
/// operator gets no second factor).
pub fn add_operator(
    custody: &mut Custody,
    by: &Session,
    operator: &str,
) -> Option<FactorEnrolment> {
    custody
        .add_user(
            &[by],
            NewUser {
                name: name(operator),
                roles: vec![Role::Operator],
                uid: None,
                passphrase: pass(operator),
            },
        )
        .expect("operator")
}

/// [`ACCOUNT`], registered by `by`: alias `prod`, its root user's credential on the keys.
pub fn register_aws_account(custody: &mut Custody, by: &Session) {
    custody
        .register_account(
            by,
            NewAccount {
                provider: Provider::Aws,
                account: Provider::Aws.parse_account_id(ACCOUNT).expect("id"),
                alias: Alias::parse("prod").expect("alias"),
                root_email: Email::parse("root@example.test").expect("email"),
                credential: CredentialName::parse("AWS:root@example.test").expect("cred"),
            },
        )
        .expect("account");
}

/// The enrolment of [`SEED_B32`] for [`ACCOUNT`] on keys `primary` and `backup`.
pub fn enrolment(primary: u32, backup: u32) -> Enrolment {
    Enrolment {
        account: AccountId::parse(ACCOUNT).expect("id"),
        primary: Serial::new(primary).expect("serial"),
        backup: Serial::new(backup).expect("serial"),
        seed: ProviderSeed::parse(SEED_B32).expect("seed"),
        overwrite: false,
    }
}

/// A request for a code of [`ACCOUNT`] to change its root password, ticket SEC-42, for
/// `reason`.
pub fn new_request(reason: &str) -> NewRequest {
    NewRequest {
        account: AccountId::parse(ACCOUNT).expect("id"),
        task: "change-root-password".into(),
        ticket: "SEC-42".into(),
        reason: reason.into(),
    }
}

/// Emulated keys in this process, by serial.
#[derive(Default)]
pub struct Keys(pub BTreeMap<u32, SoftKey>);

/// An emulated YubiKey 5 keychain with serial `serial`, OATH state `oath`, touched at once.
pub fn soft_key(serial: u32, oath: OathState) -> SoftKey {
    SoftKey::new(
        serial,
        [5, 4, 3],
        FormFactor::UsbAKeychain,
        oath,
        Box::new(AutoTouch),
    )
}

impl Keys {
    /// One key, `key`.
    pub fn one(key: SoftKey) -> Self {
        let mut keys = Keys::default();
        keys.0.insert(key.serial(), key);
        keys
    }

    /// A fresh key with serial `serial`.
    pub fn add(&mut self, serial: u32) {
        self.0.insert(serial, soft_key(serial, OathState::fresh()));
    }
}

impl DeviceAccess for Keys {
    fn open(&mut self, serial: Serial) -> Result<Box<dyn CardTransport + '_>, DeviceAccessError> {
        match self.0.get_mut(&serial.get()) {
            Some(k) => Ok(Box::new(k)),
            None => Err(DeviceAccessError::NotPresent { serial }),
        }
    }
}
