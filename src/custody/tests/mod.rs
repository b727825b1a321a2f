//! Domain tests on real SQLCipher ledgers in temporary directories, with in-process software
//! YubiKeys and a controlled clock.

mod access_keys;
mod approvals;
mod attest;
mod attested_registration;
mod bootstrap;
mod device_lock;
mod flows;
mod matrix;
mod more;
mod presence;
mod props;
mod root_password;
mod signed_approvals;
mod strings;

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use zeroize::Zeroizing;

use crate::emulator::oath::{AutoTouch, OathState};
use crate::emulator::SoftKey;
use crate::ledger::{Genesis, KdfParams, Ledger, OfficerName, Passphrase};
use crate::token::management::FormFactor;
use crate::token::{CardTransport, TransportError};

use super::*;

pub(crate) const SEED_B32: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
pub(crate) const ACCOUNT: &str = "123456789012";
pub(crate) const CRED: &str = "AWS:root@example.test";
pub(crate) const PRIMARY: u32 = 10_000_001;
pub(crate) const BACKUP: u32 = 10_000_002;
pub(crate) const REASON: &str = "rotate the root password after staff change";
/// 2026-01-01T00:00:00Z, on a step boundary.
pub(crate) const T0: i64 = 1_767_225_600_000;

#[derive(Clone)]
pub(crate) struct TestClock(pub(crate) Arc<AtomicI64>);

impl Clock for TestClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
    fn wait_until(&self, until_ms: i64) {
        self.0.fetch_max(until_ms, Ordering::SeqCst);
    }
}

impl TestClock {
    pub(crate) fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

/// A transport that logs each instruction byte before passing the command on.
struct Logged<'a> {
    key: &'a mut SoftKey,
    log: &'a mut Vec<u8>,
}

impl CardTransport for Logged<'_> {
    fn transmit(&mut self, command: &[u8]) -> Result<Zeroizing<Vec<u8>>, TransportError> {
        self.log.push(command.get(1).copied().unwrap_or(0));
        self.key.transmit(command)
    }
    fn reader(&self) -> &str {
        self.key.reader()
    }
}

/// Software keys by serial; `swap` makes a serial open another key.
#[derive(Default)]
pub(crate) struct Keys {
    pub(crate) keys: BTreeMap<u32, SoftKey>,
    pub(crate) swap: BTreeMap<u32, u32>,
    pub(crate) log: Vec<u8>,
}

impl Keys {
    pub(crate) fn add(&mut self, serial: u32) {
        self.add_with_firmware(serial, [5, 4, 3]);
    }

    /// A blank key of `firmware`.
    pub(crate) fn add_with_firmware(&mut self, serial: u32, firmware: [u8; 3]) {
        self.keys.insert(
            serial,
            SoftKey::new(
                serial,
                firmware,
                FormFactor::UsbAKeychain,
                OathState::fresh(),
                Box::new(AutoTouch),
            ),
        );
    }

    /// Count of CALCULATE (A2) instructions sent so far.
    pub(crate) fn calculations(&self) -> usize {
        self.log.iter().filter(|i| **i == 0xA2).count()
    }
}

impl DeviceAccess for Keys {
    fn open(&mut self, serial: Serial) -> Result<Box<dyn CardTransport + '_>, DeviceAccessError> {
        let real = self
            .swap
            .get(&serial.get())
            .copied()
            .unwrap_or(serial.get());
        match self.keys.get_mut(&real) {
            Some(key) => Ok(Box::new(Logged {
                key,
                log: &mut self.log,
            })),
            None => Err(DeviceAccessError::NotPresent { serial }),
        }
    }
}

pub(crate) fn totp_at(seed_b32: &str, ms: i64) -> String {
    let bytes = data_encoding::BASE32_NOPAD
        .decode(seed_b32.as_bytes())
        .expect("base32");
    let t = totp_rs::TOTP::new(totp_rs::Algorithm::SHA1, 6, 0, 30, bytes).expect("totp");
    t.generate(u64::try_from(ms / 1000).expect("positive"))
}

pub(crate) fn name(s: &str) -> UserName {
    UserName::parse(s).expect("name")
}

pub(crate) fn serial(n: u32) -> Serial {
    Serial::new(n).expect("serial")
}

pub(crate) fn seal(s: &str) -> SealNumber {
    SealNumber::parse(s).expect("seal")
}

pub(crate) fn pass_of(user: &str) -> String {
    format!("{user}-passphrase-1")
}

pub(crate) struct World {
    pub(crate) _tmp: tempfile::TempDir,
    pub(crate) dir: PathBuf,
    pub(crate) custody: Custody,
    pub(crate) clock: TestClock,
    pub(crate) keys: Keys,
    pub(crate) factors: BTreeMap<String, String>,
}

pub(crate) fn test_policy() -> Policy {
    Policy {
        kdf: PassphraseKdf::insecure_for_tests(NonZeroU32::new(1000).unwrap_or(NonZeroU32::MIN)),
        ..Policy::default()
    }
}

/// A keyring officer's keyring (unseal) passphrase in these tests.
pub(crate) fn keyring_pass(officer: &str) -> Passphrase {
    Passphrase::for_unseal(Zeroizing::new(format!("{officer}-unseal-1"))).expect("pass")
}

pub(crate) fn ledger_officers() -> Vec<(OfficerName, Passphrase)> {
    ["alice", "bob"]
        .iter()
        .map(|n| (OfficerName::parse(n).expect("name"), keyring_pass(n)))
        .collect()
}

impl World {
    /// A ledger with officers alice and bob (bootstrapped), carol (officer), oscar and olga
    /// (operators), audrey (auditor).
    pub(crate) fn new() -> Self {
        let mut w = Self::genesis_only();
        for o in ["alice", "bob"] {
            let e = w
                .custody
                .bootstrap_officer(&name(o), &keyring_pass(o), &w.passphrase(o))
                .expect("bootstrap");
            w.factors.insert(o.to_owned(), e.base32().to_owned());
        }
        w.with_staff()
    }

    /// The ledger just after genesis: keyring officers alice and bob, no custody user yet.
    pub(crate) fn genesis_only() -> Self {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("ledger");
        let officers = ledger_officers();
        let genesis = Genesis {
            officers: &officers,
            threshold: 2,
            kdf: KdfParams::insecure_for_tests(NonZeroU32::new(1000).unwrap_or(NonZeroU32::MIN)),
        };
        let ledger =
            Ledger::create(&dir, &genesis, Custody::projections().expect("proj")).expect("ledger");
        let clock = TestClock(Arc::new(AtomicI64::new(T0)));
        let custody =
            Custody::with_clock(ledger, test_policy(), Box::new(clock.clone())).expect("custody");
        World {
            _tmp: tmp,
            dir,
            custody,
            clock,
            keys: Keys::default(),
            factors: BTreeMap::new(),
        }
    }

    /// Adds carol (officer, by alice and bob), oscar and olga (operators) and audrey (auditor).
    fn with_staff(mut self) -> Self {
        let w = &mut self;
        let (a, b) = (w.login("alice"), w.login("bob"));
        let e = w
            .custody
            .add_user(
                &[&a, &b],
                NewUser {
                    name: name("carol"),
                    roles: vec![Role::Officer],
                    uid: None,
                    passphrase: w.passphrase("carol"),
                },
            )
            .expect("add carol")
            .expect("officer factor");
        w.factors.insert("carol".into(), e.base32().to_owned());
        for (n, r) in [
            ("oscar", Role::Operator),
            ("olga", Role::Operator),
            ("audrey", Role::Auditor),
        ] {
            let none = w
                .custody
                .add_user(
                    &[&a],
                    NewUser {
                        name: name(n),
                        roles: vec![r],
                        uid: None,
                        passphrase: w.passphrase(n),
                    },
                )
                .expect("add user");
            assert!(none.is_none(), "no factor for {n}");
        }
        self
    }

    pub(crate) fn passphrase(&self, user: &str) -> UserPassphrase {
        UserPassphrase::new_checked(Zeroizing::new(pass_of(user))).expect("pass")
    }

    /// Credentials for `user`; officers get the factor code of a fresh step (the clock moves
    /// on one step first so no step is reused).
    pub(crate) fn creds(&mut self, user: &str) -> Credentials {
        let factor = self.factors.get(user).cloned().map(|seed| {
            self.clock.advance(30_000);
            FactorCode::parse(&totp_at(&seed, self.clock.now_ms())).expect("code")
        });
        Credentials {
            user: name(user),
            passphrase: self.passphrase(user),
            factor,
            uid: None,
        }
    }

    pub(crate) fn login(&mut self, user: &str) -> Session {
        let c = self.creds(user);
        self.custody.authenticate(&c).expect("login")
    }

    pub(crate) fn kinds(&self) -> Vec<String> {
        let mut out = Vec::new();
        let head = self
            .custody
            .ledger()
            .head()
            .expect("head")
            .map_or(0, |h| h.seq);
        self.custody
            .ledger()
            .for_each_event(1, head, |e| {
                out.push(e.header.kind.as_str().to_owned());
                Ok(())
            })
            .expect("events");
        out
    }

    pub(crate) fn bodies(&self, kind: &str) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        let head = self
            .custody
            .ledger()
            .head()
            .expect("head")
            .map_or(0, |h| h.seq);
        self.custody
            .ledger()
            .for_each_event(1, head, |e| {
                if e.header.kind.as_str() == kind {
                    out.push(e.body.to_value());
                }
                Ok(())
            })
            .expect("events");
        out
    }

    /// Every event body as one text, and the redacted export: where no secret may be.
    pub(crate) fn bodies_and_export(&mut self) -> (String, String) {
        let mut plain = String::new();
        for k in self
            .kinds()
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
        {
            for b in self.bodies(k) {
                plain.push_str(&b.to_string());
            }
        }
        let mut out = Vec::new();
        self.custody.export_redacted(&mut out).expect("export");
        (plain, String::from_utf8(out).expect("utf8"))
    }

    /// Account registered, both keys registered, enrolled and checked in under seals
    /// `SEAL-P1` and `SEAL-B1`.
    pub(crate) fn with_enrolled_account(self) -> Self {
        self.with_enrolled_keys_in_hand().checked_in()
    }

    /// Both keys, enrolled and in hand, checked in under seals `SEAL-P1` and `SEAL-B1`.
    pub(crate) fn checked_in(mut self) -> Self {
        let a = self.login("alice");
        for (s, sl) in [(PRIMARY, "SEAL-P1"), (BACKUP, "SEAL-B1")] {
            self.custody
                .check_in(
                    &a,
                    &mut self.keys,
                    serial(s),
                    seal(sl),
                    Location::parse("safe 1").expect("loc"),
                )
                .expect("check in");
        }
        self
    }

    /// Account registered, both keys registered and enrolled, not yet checked in.
    pub(crate) fn with_enrolled_keys_in_hand(self) -> Self {
        self.with_registered_keys().enrolled()
    }

    /// Both registered keys enrolled by alice and bob, checked against `SEED_B32`.
    pub(crate) fn enrolled(self) -> Self {
        let mut w = self;
        let codes = w.enrol_both(false).expect("enrol");
        let s = codes.first_step;
        assert_eq!(
            codes.first.as_str(),
            totp_at(SEED_B32, i64::try_from(s * 30_000).expect("t"))
        );
        assert_eq!(
            codes.second.as_str(),
            totp_at(SEED_B32, i64::try_from((s + 1) * 30_000).expect("t"))
        );
        w
    }

    /// Account registered, both keys registered (their attestations checked against Yubico's
    /// roots, which the emulator's test CA is not: unattested), not yet enrolled.
    pub(crate) fn with_registered_keys(self) -> Self {
        self.with_registered_keys_trusting(&crate::token::attestation::TrustAnchors::yubico())
    }

    /// [`World::with_registered_keys`], the custody keys' attestations checked against
    /// `anchors`.
    pub(crate) fn with_registered_keys_trusting(
        mut self,
        anchors: &crate::token::attestation::TrustAnchors,
    ) -> Self {
        let a = self.login("alice");
        self.custody
            .register_account(
                &a,
                NewAccount {
                    provider: Provider::Aws,
                    account: Provider::Aws.parse_account_id(ACCOUNT).expect("id"),
                    alias: Alias::parse("prod").expect("alias"),
                    root_email: Email::parse("root@example.test").expect("email"),
                    credential: crate::token::oath::CredentialName::parse(CRED).expect("cred"),
                },
            )
            .expect("account");
        for (s, role) in [(PRIMARY, DeviceRole::Primary), (BACKUP, DeviceRole::Backup)] {
            self.keys.add(s);
            self.custody
                .register_device_with(&a, &mut self.keys, serial(s), role, anchors)
                .expect("register");
        }
        self
    }

    /// Alice and Bob enrol the account's primary and backup with `SEED_B32`.
    pub(crate) fn enrol_both(&mut self, overwrite: bool) -> Result<EnrolmentCodes, CustodyError> {
        let (a, b) = (self.login("alice"), self.login("bob"));
        self.custody.enrol(
            &a,
            &b,
            &mut self.keys,
            Enrolment {
                account: AccountId::parse(ACCOUNT).expect("id"),
                primary: serial(PRIMARY),
                backup: serial(BACKUP),
                seed: ProviderSeed::parse(SEED_B32).expect("seed"),
                overwrite,
            },
        )
    }

    /// A request by Oscar approved by Alice and Bob, its primary checked out for it by Alice.
    pub(crate) fn approved_and_out(&mut self) -> RequestRecord {
        let r = self.new_request("oscar");
        self.approve(&r.id, "alice").expect("first");
        self.approve(&r.id, "bob").expect("second");
        let a = self.login("alice");
        self.custody
            .check_out(&a, serial(PRIMARY), &seal("SEAL-P1"), Some(&r.id))
            .expect("check out");
        r
    }

    pub(crate) fn new_request(&mut self, requester: &str) -> RequestRecord {
        let s = self.login(requester);
        self.custody
            .create_request(
                &s,
                NewRequest {
                    account: AccountId::parse(ACCOUNT).expect("id"),
                    task: "change-root-password".into(),
                    ticket: "SEC-42".into(),
                    reason: REASON.into(),
                },
            )
            .expect("request")
    }

    pub(crate) fn approve(
        &mut self,
        id: &RequestId,
        officer: &str,
    ) -> Result<RequestRecord, CustodyError> {
        let c = self.creds(officer);
        self.custody.approve(id, &c)
    }

    pub(crate) fn refusals(&self) -> Vec<String> {
        self.bodies(store::kinds::REFUSED)
            .iter()
            .filter_map(|b| b.get("refusal").and_then(|r| r.as_str()).map(str::to_owned))
            .collect()
    }
}
