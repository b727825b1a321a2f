//! The daemon's state: sealed (collecting officers' unseal shares) or unsealed (the ledger
//! open), behind one mutex, and the handling of each operation.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::continuation::Continuations;
use super::peer::PeerCred;
use super::protocol::{
    Auth, ErrorCode, Op, Progress, RefusalCode, Reply, Secret, StatusReply, UnsealProgress,
};
use super::session::{Found, SessionError, SessionToken, Sessions};
use super::throttle::{Key as ThrottleKey, Refusal, Throttle};
use crate::custody::host::{CardSighting, SightingRecorded};
use crate::custody::{
    Clock, Custody, PassphraseProven, Role, Serial, Session, SystemClock, UserName, UserRecord,
};
use crate::ledger::store::{record_failed_share, KEYRING_FILE};
use crate::ledger::{Keyring, Ledger, LedgerError, OfficerName, Passphrase};
use crate::token::identity::Glimpse;
use crate::token::pcsc::ReaderEvent;
use ring::rand::SystemRandom;

/// Event kinds the daemon has the custody domain record.
pub use crate::custody::host::kinds;

/// What the daemon needs to know at run time (from the configuration file).
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    /// The ledger directory.
    pub ledger_dir: PathBuf,
    /// Reader names (prefixes) the daemon may use. Empty: none is allowed.
    pub allowed_readers: Vec<String>,
    /// How long a device may take to answer one command (waiting for a touch).
    pub touch_timeout: Duration,
    /// The dual-control policy.
    pub policy: crate::custody::Policy,
    /// A login session ends after this long without use.
    pub session_idle: Duration,
    /// A login session ends this long after the login, however it is used.
    pub session_absolute: Duration,
    /// What PIV attestations of custody keys are verified against (Yubico's roots unless the
    /// configuration names a test CA).
    pub attestation_anchors: crate::token::attestation::TrustAnchors,
}

impl DaemonOptions {
    /// Options for a ledger directory with the defaults of `packaging/custody.toml`.
    pub fn new(ledger_dir: impl Into<PathBuf>) -> Self {
        Self {
            ledger_dir: ledger_dir.into(),
            allowed_readers: vec!["Yubico YubiKey".to_owned()],
            touch_timeout: Duration::from_secs(30),
            policy: crate::custody::Policy::default(),
            session_idle: super::session::DEFAULT_IDLE,
            session_absolute: super::session::DEFAULT_ABSOLUTE,
            attestation_anchors: crate::token::attestation::TrustAnchors::yubico(),
        }
    }

    /// Whether a reader's name is allowed.
    pub fn reader_allowed(&self, reader: &str) -> bool {
        self.allowed_readers.iter().any(|p| reader.starts_with(p))
    }
}

/// A refusal or failure of one operation.
#[derive(Debug)]
pub struct OpError {
    /// The wire code.
    pub code: ErrorCode,
    /// The refusal's own code, when the domain or the daemon's checks refused.
    pub reason: Option<RefusalCode>,
    /// What went wrong (never a secret).
    pub message: String,
    /// With `factor_code_required`: the single-use continuation the second round sends with
    /// the code ([`super::continuation`]).
    pub continuation: Option<Secret>,
}

impl OpError {
    /// A new error.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            reason: None,
            message: message.into(),
            continuation: None,
        }
    }

    /// A refusal with its own code, answered with that code's [`ErrorCode`].
    pub fn refused(reason: RefusalCode, message: impl Into<String>) -> Self {
        Self {
            code: ErrorCode::of(reason),
            reason: Some(reason),
            message: message.into(),
            continuation: None,
        }
    }
}

impl From<LedgerError> for OpError {
    fn from(e: LedgerError) -> Self {
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            let t = s.to_string();
            if !message.contains(&t) {
                message.push_str(": ");
                message.push_str(&t);
            }
            source = s.source();
        }
        OpError::new(ErrorCode::Ledger, message)
    }
}

/// Whether the ledger is open: sealed (collecting unseal shares), opening, or unsealed.
enum LedgerState {
    Sealed {
        given: Vec<(OfficerName, Passphrase)>,
    },
    /// The quorum is complete and the ledger is being opened (its key derivation runs without
    /// the lock); offers wait for the outcome.
    Opening,
    /// The ledger is open. The login sessions and the authentications waiting for their
    /// second round live here, so that sealing (or any way out of this state) ends them all.
    Unsealed {
        custody: Box<Custody>,
        sessions: Sessions,
        pending: Continuations,
    },
}

/// The daemon: options, the clock, and the sealed/unsealed state.
///
/// Locking: `ledger` (the service lock) is held only for decisions and ledger writes, never across a key
/// derivation, a card, a touch or a wait. Card I/O runs under the lock of that one device
/// (see [`Daemon::device_locks`]), taken before `ledger` whenever both are held.
pub struct Daemon {
    opts: DaemonOptions,
    clock: Arc<dyn Clock + Sync>,
    ledger: Mutex<LedgerState>,
    /// Serial → the lock its card I/O runs under.
    devices: Mutex<BTreeMap<u32, Arc<Mutex<()>>>>,
    throttle: Throttle,
    /// What `status` answers, published whenever the service lock is released, so `status`
    /// never waits for the service.
    view: Mutex<StatusView>,
    /// The ledger's id (hex), once read from the keyring.
    ledger_id: std::sync::OnceLock<String>,
    /// Allowed reader → the serial of the card seen in it (`None`: unreadable).
    cards: Mutex<BTreeMap<String, Option<u32>>>,
    /// The source of session tokens.
    rng: SystemRandom,
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon")
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

fn sealed_error() -> OpError {
    OpError::new(
        ErrorCode::Sealed,
        "the ledger is sealed; officers must unseal it first (custody unseal)",
    )
}

fn opening_error() -> OpError {
    OpError::new(
        ErrorCode::Busy,
        "the quorum is complete and the ledger is being opened; try again in a moment",
    )
}

/// A session refusal on the wire: `forbidden` with the session's reason.
pub fn session_error(e: SessionError) -> OpError {
    OpError::refused(e.code(), e.to_string())
}

/// The refusal of a throttled attempt: says when to try again, never whether the secret was
/// close.
pub fn throttled(what: &str, name: &str, peer: &PeerCred, r: &Refusal, now_ms: i64) -> OpError {
    match r {
        Refusal::Wait { failures, until_ms } => OpError::refused(
            RefusalCode::Throttled,
            format!(
                "{failures} failed {what} attempts in a row for {name} from uid {}; try again \
                 in {} s",
                peer.uid,
                ((until_ms - now_ms).max(0) + 999) / 1000
            ),
        ),
        Refusal::InFlight => OpError {
            code: ErrorCode::Busy,
            reason: Some(RefusalCode::Throttled),
            message: format!(
                "another {what} attempt for {name} from uid {} is being checked; try again",
                peer.uid
            ),
            continuation: None,
        },
    }
}

/// The sealed/unsealed state as `status` shows it.
#[derive(Debug, Clone, Default)]
struct StatusView {
    unsealed: bool,
    given: Vec<String>,
    head_seq: Option<u64>,
    public_key: Option<String>,
}

impl StatusView {
    fn of(s: &LedgerState) -> Self {
        match s {
            LedgerState::Sealed { given } => Self {
                given: given.iter().map(|(n, _)| n.as_str().to_owned()).collect(),
                ..Self::default()
            },
            LedgerState::Opening => Self::default(),
            LedgerState::Unsealed { custody, .. } => Self {
                unsealed: true,
                given: Vec::new(),
                head_seq: custody.ledger().head().ok().map(|h| h.map_or(0, |h| h.seq)),
                public_key: Some(custody.ledger().public_key().to_hex()),
            },
        }
    }
}

/// The service lock held; when it is released, what `status` shows is published.
struct ServiceGuard<'a> {
    g: MutexGuard<'a, LedgerState>,
    view: &'a Mutex<StatusView>,
}

impl std::ops::Deref for ServiceGuard<'_> {
    type Target = LedgerState;
    fn deref(&self) -> &LedgerState {
        &self.g
    }
}

impl std::ops::DerefMut for ServiceGuard<'_> {
    fn deref_mut(&mut self) -> &mut LedgerState {
        &mut self.g
    }
}

impl Drop for ServiceGuard<'_> {
    fn drop(&mut self) {
        let v = StatusView::of(&self.g);
        *self.view.lock().unwrap_or_else(|p| p.into_inner()) = v;
    }
}

/// Resets a daemon stuck in [`LedgerState::Opening`] (the opening thread failed) back to sealed.
struct OpeningGuard<'a> {
    daemon: &'a Daemon,
    armed: bool,
}

impl Drop for OpeningGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            let mut g = self.daemon.lock();
            if matches!(*g, LedgerState::Opening) {
                *g = LedgerState::Sealed { given: Vec::new() };
            }
        }
    }
}

impl Daemon {
    /// A sealed daemon over the ledger in `opts.ledger_dir`, on the host's clock.
    pub fn new(opts: DaemonOptions) -> Self {
        Self::with_clock(opts, Arc::new(SystemClock))
    }

    /// A sealed daemon that reads the time from `clock` (its domain, throttle and waits).
    pub fn with_clock(mut opts: DaemonOptions, clock: Arc<dyn Clock + Sync>) -> Self {
        // The domain honours a login's proof for as long as the daemon keeps its session.
        opts.policy.session_ttl = opts.policy.session_ttl.max(opts.session_absolute);
        Self {
            opts,
            clock,
            ledger: Mutex::new(LedgerState::Sealed { given: Vec::new() }),
            devices: Mutex::new(BTreeMap::new()),
            throttle: Throttle::new(),
            view: Mutex::new(StatusView::default()),
            ledger_id: std::sync::OnceLock::new(),
            cards: Mutex::new(BTreeMap::new()),
            rng: SystemRandom::new(),
        }
    }

    /// The options.
    pub fn options(&self) -> &DaemonOptions {
        &self.opts
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock + Sync> {
        &self.clock
    }

    /// The failed-secret throttle.
    pub fn throttle(&self) -> &Throttle {
        &self.throttle
    }

    fn lock(&self) -> ServiceGuard<'_> {
        // A panic while holding the lock leaves the state as it was before the operation
        // (every change is a whole assignment), so the poisoned value is still coherent.
        ServiceGuard {
            g: self.ledger.lock().unwrap_or_else(|p| p.into_inner()),
            view: &self.view,
        }
    }

    /// The locks of the devices with these serials, taken in serial order (so two operations
    /// on overlapping devices never wait for each other in a circle). Held for card I/O; the
    /// service lock may be taken while they are held, never the other way round.
    pub fn device_locks(&self, serials: &[u32]) -> Vec<Arc<Mutex<()>>> {
        let mut sorted = serials.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let mut map = self.devices.lock().unwrap_or_else(|p| p.into_inner());
        sorted
            .into_iter()
            .map(|s| map.entry(s).or_default().clone())
            .collect()
    }

    fn keyring(&self) -> Result<Keyring, OpError> {
        Keyring::load(&self.opts.ledger_dir.join(KEYRING_FILE)).map_err(OpError::from)
    }

    /// Refuses a request meant for another ledger (the client pinned `expected`, hex).
    pub fn check_ledger(&self, expected: &str) -> Result<(), OpError> {
        // A ledger's id never changes (a re-share keeps it): the keyring is read for it once.
        let ours = match self.ledger_id.get() {
            Some(id) => id.clone(),
            None => {
                let id = self.keyring()?.ledger_id().to_hex();
                self.ledger_id.get_or_init(|| id).clone()
            }
        };
        if expected.eq_ignore_ascii_case(&ours) {
            return Ok(());
        }
        Err(OpError::new(
            ErrorCode::WrongLedger,
            format!(
                "this custodyd holds ledger {ours}, not the ledger the client expects; nothing \
                 was done. Check --socket, CUSTODY_SOCKET and CUSTODY_LEDGER_ID"
            ),
        ))
    }

    /// Whether the ledger is unsealed.
    pub fn is_unsealed(&self) -> bool {
        matches!(*self.lock(), LedgerState::Unsealed { .. })
    }

    /// Handles one anonymous operation from `peer` (no session).
    pub fn handle(&self, op: Op, peer: &PeerCred) -> Result<Reply, OpError> {
        self.handle_as(op, None, peer)
    }

    /// Handles one operation from `peer`, with the request's session token when it has one.
    pub fn handle_as(
        &self,
        op: Op,
        session: Option<&Secret>,
        peer: &PeerCred,
    ) -> Result<Reply, OpError> {
        self.handle_notifying(op, session, peer, &|_| {})
    }

    /// [`Daemon::handle_as`], telling `notify` what the operation waits for when its request
    /// asked for it (the touch of `code`: [`Progress::Touch`]).
    pub fn handle_notifying(
        &self,
        op: Op,
        session: Option<&Secret>,
        peer: &PeerCred,
        notify: &dyn Fn(Progress),
    ) -> Result<Reply, OpError> {
        match op {
            Op::Status => self.status(peer),
            Op::Unseal {
                officer,
                passphrase,
            } => self.unseal(&officer, passphrase, peer),
            Op::UnsealReset {
                officer,
                passphrase,
            } => self.unseal_reset(&officer, passphrase, peer),
            Op::Seal { by } => self.seal_now(by, peer),
            Op::Checkpoint => {
                // Each checkpoint is a row in the ledger: only an accountable reader adds one.
                self.reader(session, peer, "checkpoint", super::authz::AUDIT)?;
                self.with_custody(|c| {
                    let cp = c.checkpoint()?;
                    Ok(Reply::Checkpoint {
                        seq: cp.checkpoint.seq,
                        head: cp.checkpoint.head.to_hex(),
                        public_key: c.ledger().public_key().to_hex(),
                    })
                })
            }
            Op::Export => {
                self.reader(session, peer, "export", super::authz::AUDIT)?;
                self.with_custody(|c| {
                    let mut out = Vec::new();
                    // Users' sealed credentials never leave the ledger: their events are
                    // exported redacted (signed, still in the chain).
                    let s = c.export_redacted(&mut out)?;
                    let content = String::from_utf8(out).map_err(|_| {
                        OpError::new(ErrorCode::Internal, "export is not UTF-8".to_owned())
                    })?;
                    Ok(Reply::Export {
                        events: s.events,
                        seq: s.checkpoint.checkpoint.seq,
                        public_key: c.ledger().public_key().to_hex(),
                        content,
                    })
                })
            }
            op => super::ops::handle(self, op, session, peer, notify),
        }
    }

    /// Runs `f` with the open ledger, or refuses while sealed: for tests that look into the
    /// ledger (the daemon's own writes go through the custody service).
    pub fn with_ledger<T>(
        &self,
        f: impl FnOnce(&mut Ledger) -> Result<T, OpError>,
    ) -> Result<T, OpError> {
        self.with_custody(|c| f(c.ledger_mut()))
    }

    /// Runs `f` with the custody service, or refuses while sealed. `f` must be short: no key
    /// derivation, card or wait (those run between two calls of this).
    pub fn with_custody<T>(
        &self,
        f: impl FnOnce(&mut Custody) -> Result<T, OpError>,
    ) -> Result<T, OpError> {
        let mut g = self.lock();
        match &mut *g {
            LedgerState::Unsealed { custody, .. } => f(custody),
            LedgerState::Sealed { .. } => Err(sealed_error()),
            LedgerState::Opening => Err(opening_error()),
        }
    }

    /// Runs `f` with the custody service and the login sessions, or refuses while sealed.
    /// Short, like [`Daemon::with_custody`].
    pub fn with_sessions<T>(
        &self,
        f: impl FnOnce(&mut Custody, &mut Sessions) -> Result<T, OpError>,
    ) -> Result<T, OpError> {
        let mut g = self.lock();
        match &mut *g {
            LedgerState::Unsealed {
                custody, sessions, ..
            } => f(custody, sessions),
            LedgerState::Sealed { .. } => Err(sealed_error()),
            LedgerState::Opening => Err(opening_error()),
        }
    }

    /// Keeps `proof` (a passphrase `peer` proved just now, of a person with a second factor)
    /// for one second round, and answers the continuation that round must send.
    pub fn open_continuation(
        &self,
        proof: PassphraseProven,
        peer: &PeerCred,
    ) -> Result<SessionToken, OpError> {
        let now = self.clock.now_ms();
        self.with_pending(|p| p.open(&self.rng, proof, peer, now).map_err(session_error))
    }

    /// The proven passphrase behind the continuation `token` that `peer` offers for `user`;
    /// the continuation ends here whatever the answer.
    pub fn take_continuation(
        &self,
        token: &Secret,
        user: &UserName,
        peer: &PeerCred,
    ) -> Result<PassphraseProven, OpError> {
        let now = self.clock.now_ms();
        self.with_pending(|p| {
            p.take(token, user, peer, now)
                .map_err(|e| OpError::refused(e.code(), e.to_string()))
        })
    }

    fn with_pending<T>(
        &self,
        f: impl FnOnce(&mut Continuations) -> Result<T, OpError>,
    ) -> Result<T, OpError> {
        match &mut *self.lock() {
            LedgerState::Unsealed { pending, .. } => f(pending),
            LedgerState::Sealed { .. } => Err(sealed_error()),
            LedgerState::Opening => Err(opening_error()),
        }
    }

    /// Opens a login session for `proof` (just authenticated from `peer`).
    pub fn open_session(
        &self,
        proof: Session,
        peer: &PeerCred,
    ) -> Result<(super::session::SessionToken, Found, UserRecord), OpError> {
        let now = self.clock.now_ms();
        self.with_sessions(|c, sessions| {
            let user = c.session_holder(&proof)?;
            let (token, found) = sessions
                .open(&self.rng, proof, peer.uid, now)
                .map_err(session_error)?;
            Ok((token, found, user))
        })
    }

    /// The person behind the request's session, whose session is live, bound to `peer`'s uid,
    /// and who is still active. An anonymous request is refused with what to do.
    pub fn caller(
        &self,
        session: Option<&Secret>,
        peer: &PeerCred,
        operation: &str,
    ) -> Result<(UserRecord, Found), OpError> {
        let Some(token) = session else {
            // While sealed nobody can authenticate: say what is actually in the way.
            if !self.is_unsealed() {
                return Err(sealed_error());
            }
            return Err(super::authz::anonymous(operation));
        };
        let now = self.clock.now_ms();
        self.with_sessions(|c, sessions| {
            let found = match sessions.use_token(token, peer.uid, now) {
                Ok(f) => f,
                Err(e) => {
                    if let SessionError::WrongUid { user, bound, uid } = &e {
                        tracing::warn!(
                            user = user.as_str(),
                            bound,
                            peer_uid = uid,
                            "session token offered by another uid; the session is ended"
                        );
                    }
                    return Err(session_error(e));
                }
            };
            match c.session_holder(&found.proof) {
                Ok(user) => Ok((user, found)),
                Err(e) => {
                    // Suspended since the login: the session goes too.
                    sessions.close_user(found.proof.user());
                    Err(OpError::from(e))
                }
            }
        })
    }

    /// [`Daemon::caller`], who must also hold one of `roles` for `operation`.
    pub fn reader(
        &self,
        session: Option<&Secret>,
        peer: &PeerCred,
        operation: &str,
        roles: &[Role],
    ) -> Result<(UserRecord, Found), OpError> {
        let (user, found) = self.caller(session, peer, operation)?;
        super::authz::require(&user, operation, roles)?;
        Ok((user, found))
    }

    /// Answers from the published view and the keyring file: never waits for the service.
    fn status(&self, peer: &PeerCred) -> Result<Reply, OpError> {
        let kr = self.keyring()?;
        let v = self.view.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let (sealed, given, head_seq, public_key) =
            (!v.unsealed, v.given, v.head_seq, v.public_key);
        Ok(Reply::Status(StatusReply {
            sealed,
            ledger_id: kr.ledger_id().to_hex(),
            threshold: kr.threshold(),
            officers: kr
                .officers()
                .iter()
                .map(|o| o.as_str().to_owned())
                .collect(),
            unseal_given: given,
            head_seq,
            public_key,
            peer_uid: peer.uid,
        }))
    }

    fn given_names(given: &[(OfficerName, Passphrase)]) -> Vec<String> {
        given.iter().map(|(n, _)| n.as_str().to_owned()).collect()
    }

    /// Checks one officer's keyring passphrase against their own share of the keyring (a key
    /// derivation, run without the service lock), throttled per (officer, peer uid); a wrong
    /// one is counted for the next unseal's `ledger.unseal_failed`, with the peer's uid.
    fn check_share(
        &self,
        kr: &Keyring,
        officer: &str,
        passphrase: Secret,
        peer: &PeerCred,
    ) -> Result<(OfficerName, Passphrase), OpError> {
        let name = OfficerName::parse(officer).map_err(|e| {
            OpError::new(
                ErrorCode::UnknownOfficer,
                format!("officer {officer:?}: {e}"),
            )
        })?;
        if !kr.officers().contains(&name) {
            return Err(OpError::new(
                ErrorCode::UnknownOfficer,
                format!(
                    "{name} is not an officer of this ledger's keyring{}",
                    self.interrupted_reshare(&name)
                ),
            ));
        }
        let pass = Passphrase::for_unseal(passphrase.into_inner())
            .map_err(|e| OpError::new(ErrorCode::BadRequest, e.to_string()))?;
        let now = self.clock.now_ms();
        let key = ThrottleKey {
            what: "unseal",
            name: name.as_str().to_owned(),
            uid: peer.uid,
        };
        let attempt = self
            .throttle
            .begin(key, now)
            .map_err(|r| throttled("unseal", name.as_str(), peer, &r, now))?;
        match kr.check_officer_passphrase(&name, &pass) {
            Ok(()) => {
                attempt.finish(true);
                Ok((name, pass))
            }
            Err(LedgerError::WrongPassphrase { .. }) => {
                attempt.finish(false);
                if let Err(e) = record_failed_share(&self.opts.ledger_dir, &name, peer.uid) {
                    tracing::error!("recording the failed unseal share: {e}");
                }
                tracing::warn!(
                    officer = name.as_str(),
                    peer_uid = peer.uid,
                    "unseal share refused: wrong keyring passphrase"
                );
                Err(OpError::new(
                    ErrorCode::UnsealFailed,
                    format!(
                        "the keyring passphrase offered for {name} does not open {name}'s share; \
                         nothing was kept: offer it again{}",
                        self.interrupted_reshare(&name)
                    ),
                ))
            }
            Err(e) => {
                attempt.finish(false);
                let mut err = OpError::from(e);
                err.code = ErrorCode::UnsealFailed;
                Err(err)
            }
        }
    }

    /// What to do when a re-share naming `name` was interrupted between its event and the move
    /// of its keyring into place (`keyring.json.next` is still staged): custodyd checks shares
    /// against `keyring.json` until the ledger is opened once, which settles the re-share.
    fn interrupted_reshare(&self, name: &OfficerName) -> String {
        match crate::ledger::reshare::load_staged(&self.opts.ledger_dir) {
            Ok(Some(staged)) if staged.officers().contains(name) => format!(
                ". A re-share to keyring generation {} that names {name} was interrupted before \
                 its keyring was moved into place: if it was committed, opening the ledger once \
                 with that generation's officers settles it (custody ledger verify --ledger {} \
                 --officer NAME ..., with custodyd stopped); then unseal again",
                staged.generation(),
                self.opts.ledger_dir.display()
            ),
            _ => String::new(),
        }
    }

    /// A keyring officer forgets the shares offered so far (an unseal abandoned half-way).
    fn unseal_reset(
        &self,
        officer: &str,
        passphrase: Secret,
        peer: &PeerCred,
    ) -> Result<Reply, OpError> {
        let kr = self.keyring()?;
        if !matches!(*self.lock(), LedgerState::Sealed { .. }) {
            return Err(OpError::new(
                ErrorCode::AlreadyUnsealed,
                "the ledger is not sealed: there is no unseal to reset",
            ));
        }
        let (name, _) = self.check_share(&kr, officer, passphrase, peer)?;
        let mut g = self.lock();
        let forgotten = match &mut *g {
            LedgerState::Sealed { given } => Self::given_names(&std::mem::take(given)),
            _ => Vec::new(),
        };
        drop(g);
        tracing::info!(
            officer = name.as_str(),
            peer_uid = peer.uid,
            forgotten = ?forgotten,
            "unseal reset"
        );
        Ok(Reply::Unseal(UnsealProgress {
            unsealed: false,
            given: Vec::new(),
            threshold: kr.threshold(),
        }))
    }

    /// An officer offers their unseal share. The share is checked at once against the
    /// officer's slot of the keyring (a key derivation, without the lock), so the officer
    /// learns immediately whether theirs opened, and a wrong one is never kept to fail on
    /// someone else's screen. Wrong shares are throttled per (officer, peer uid) and counted
    /// with the peer's uid, in the ledger at the next unseal (`ledger.unseal_failed`).
    fn unseal(&self, officer: &str, passphrase: Secret, peer: &PeerCred) -> Result<Reply, OpError> {
        let kr = self.keyring()?;
        // Refuse what needs no key derivation first.
        match &*self.lock() {
            LedgerState::Unsealed { .. } => {
                return Err(OpError::new(
                    ErrorCode::AlreadyUnsealed,
                    "the ledger is already unsealed",
                ))
            }
            LedgerState::Opening => return Err(opening_error()),
            LedgerState::Sealed { given } if given.iter().any(|(n, _)| n.as_str() == officer) => {
                return Err(OpError::new(
                    ErrorCode::UnknownOfficer,
                    format!("{officer} already offered a share to this unseal"),
                ))
            }
            LedgerState::Sealed { .. } => {}
        }
        let (name, pass) = self.check_share(&kr, officer, passphrase, peer)?;
        let threshold = kr.threshold();
        let shares = {
            let mut g = self.lock();
            let given = match &mut *g {
                LedgerState::Sealed { given } => given,
                LedgerState::Opening => return Err(opening_error()),
                LedgerState::Unsealed { .. } => {
                    return Err(OpError::new(
                        ErrorCode::AlreadyUnsealed,
                        "the ledger is already unsealed",
                    ))
                }
            };
            if given.iter().any(|(n, _)| n == &name) {
                return Err(OpError::new(
                    ErrorCode::UnknownOfficer,
                    format!("{name} already offered a share to this unseal"),
                ));
            }
            given.push((name, pass));
            if given.len() < usize::from(threshold) {
                tracing::info!(
                    officer = officer,
                    peer_uid = peer.uid,
                    have = given.len(),
                    threshold,
                    "unseal share offered"
                );
                return Ok(Reply::Unseal(UnsealProgress {
                    unsealed: false,
                    given: Self::given_names(given),
                    threshold,
                }));
            }
            let shares = std::mem::take(given);
            *g = LedgerState::Opening;
            shares
        };
        let mut guard = OpeningGuard {
            daemon: self,
            armed: true,
        };
        let names = Self::given_names(&shares);
        let projections = crate::custody::Custody::projections()
            .map_err(|e| OpError::new(ErrorCode::Internal, e.to_string()))?;
        let opened = Ledger::open(&self.opts.ledger_dir, &shares, projections);
        drop(shares);
        let ledger = match opened {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(officers = ?names, "unseal failed: {e}");
                let code = match e {
                    LedgerError::WrongPassphrase { .. }
                    | LedgerError::KeyringTampered { .. }
                    | LedgerError::NotEnoughOfficers { .. } => ErrorCode::UnsealFailed,
                    _ => ErrorCode::Ledger,
                };
                let mut err = OpError::from(e);
                err.code = code;
                return Err(err);
            }
        };
        let mut custody = Custody::with_clock(
            ledger,
            self.opts.policy.clone(),
            Box::new(self.clock.clone()),
        )
        .map_err(|e| OpError::new(ErrorCode::Ledger, e.to_string()))?;
        custody.record_unsealed(&names, peer.uid)?;
        tracing::info!(officers = ?names, "unsealed");
        guard.armed = false;
        *self.lock() = LedgerState::Unsealed {
            custody: Box::new(custody),
            sessions: Sessions::new(self.opts.session_idle, self.opts.session_absolute),
            pending: Continuations::new(),
        };
        Ok(Reply::Unseal(UnsealProgress {
            unsealed: true,
            given: Vec::new(),
            threshold,
        }))
    }

    /// Seals at the request of an authenticated officer. While sealed the request is answered
    /// `sealed` and changes nothing (it cannot be authenticated then); an unauthenticated or
    /// non-officer request leaves the daemon unsealed, and the refusal is in the ledger.
    fn seal_now(&self, by: Auth, peer: &PeerCred) -> Result<Reply, OpError> {
        if !self.is_unsealed() {
            return Err(OpError::new(
                ErrorCode::Sealed,
                "the ledger is already sealed",
            ));
        }
        let session = super::ops::session(self, by, peer)?;
        let mut g = self.lock();
        let (seq, officer) = match &mut *g {
            LedgerState::Sealed { .. } => {
                return Err(OpError::new(
                    ErrorCode::Sealed,
                    "the ledger is already sealed",
                ));
            }
            LedgerState::Opening => return Err(opening_error()),
            LedgerState::Unsealed { custody, .. } => {
                let seq = custody.record_sealed(&session, peer.uid)?;
                (seq, session.user().clone())
            }
        };
        // Dropping the ledger closes the database and zeroizes its keys.
        *g = LedgerState::Sealed { given: Vec::new() };
        tracing::info!(
            officer = officer.as_str(),
            seq,
            peer_uid = peer.uid,
            "sealed"
        );
        Ok(Reply::Sealed { seq })
    }

    /// Seals without an operator (shutdown): no event, the ledger is closed and its keys
    /// zeroized.
    pub fn close(&self) {
        let mut g = self.lock();
        if let LedgerState::Unsealed { custody, .. } = &mut *g {
            custody.record_counted_refusals(self.clock.now_ms(), true);
        }
        *g = LedgerState::Sealed { given: Vec::new() };
    }

    /// The serial last seen in each allowed reader (from reader events), for opening devices.
    pub fn card_hints(&self) -> BTreeMap<String, Option<u32>> {
        self.cards().clone()
    }

    /// The devices custodyd's operations open: pcscd's readers that the configuration allows,
    /// with the touch timeout and the serial last seen in each reader.
    pub fn device_access(&self) -> super::access::PcscAccess {
        super::access::PcscAccess::new(self.options()).with_hints(self.card_hints())
    }

    fn cards(&self) -> MutexGuard<'_, BTreeMap<String, Option<u32>>> {
        self.cards.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a reader event (best effort: while sealed it is only logged). A card that
    /// appears in an allowed reader is identified by `identify` (a short look, see
    /// [`super::access::identify_in_reader`]) before the daemon's lock is taken, so an
    /// operation in progress is not held up by the card; a failure is recorded as
    /// `unreadable`.
    pub fn reader_event(
        &self,
        ev: &ReaderEvent,
        identify: impl FnOnce(&str) -> Result<Glimpse, String>,
    ) {
        match ev {
            ReaderEvent::CardInserted { reader, atr } if !self.opts.reader_allowed(reader) => {
                tracing::warn!(
                    reader = reader.as_str(),
                    "card in a reader that is not allowed; it is never used"
                );
                let r = self.with_custody(|c| {
                    Ok(c.record_sighting(CardSighting::InForbiddenReader { reader, atr })?)
                });
                self.after_record(r, reader, "not identified", "card inserted");
            }
            ReaderEvent::CardInserted { reader, .. } => {
                let started = std::time::Instant::now();
                let seen = identify(reader);
                tracing::info!(
                    reader = reader.as_str(),
                    micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
                    readable = seen.is_ok(),
                    "card identified"
                );
                self.card_inserted(reader, seen);
            }
            ReaderEvent::CardRemoved { reader } if self.opts.reader_allowed(reader) => {
                self.card_removed(reader);
            }
            ReaderEvent::ReaderRemoved { reader } if self.cards().contains_key(reader) => {
                self.card_removed(reader);
            }
            _ => tracing::debug!(?ev, "reader change"),
        }
    }

    /// Remembers the card already in `reader` when the watch starts (nothing is recorded: it
    /// did not just appear), so that its removal names it.
    pub fn card_present(
        &self,
        reader: &str,
        identify: impl FnOnce(&str) -> Result<Glimpse, String>,
    ) {
        if !self.opts.reader_allowed(reader) {
            return;
        }
        let serial = identify(reader)
            .ok()
            .and_then(|g| g.serial)
            .filter(|s| *s != 0);
        tracing::info!(
            reader,
            serial = serial.map_or_else(|| "unreadable".to_owned(), |s| s.to_string()),
            "card present"
        );
        self.cards().insert(reader.to_owned(), serial);
    }

    fn card_inserted(&self, reader: &str, seen: Result<Glimpse, String>) {
        let serial = seen
            .as_ref()
            .ok()
            .and_then(|g| g.serial)
            .and_then(|s| Serial::new(s).ok());
        self.cards()
            .insert(reader.to_owned(), serial.map(Serial::get));
        let problem = match (&seen, serial) {
            (Err(e), _) => Some(e.clone()),
            (Ok(_), None) => Some("the card reports no serial".to_owned()),
            (Ok(_), Some(_)) => None,
        };
        let read_id = seen.ok().and_then(|g| g.oath_device_id);
        let shown = serial.map_or_else(|| "unreadable".to_owned(), |s| s.to_string());
        let r = self.with_custody(|c| {
            Ok(c.record_sighting(CardSighting::Inserted {
                reader,
                serial,
                device_id: read_id.as_deref(),
                problem: problem.as_deref(),
            })?)
        });
        match &r {
            Ok(rec) if rec.device_id_matches == Some(false) => tracing::warn!(
                reader,
                serial = shown.as_str(),
                "device {shown} answers with another OATH device id than at registration"
            ),
            Ok(rec) if rec.kind == kinds::UNKNOWN_DEVICE => tracing::warn!(
                reader,
                serial = shown.as_str(),
                problem = problem.as_deref().unwrap_or(""),
                "unknown device {shown} in {reader}; it is never used"
            ),
            _ => {}
        }
        self.after_record(r, reader, &shown, "card inserted");
    }

    fn card_removed(&self, reader: &str) {
        let card = self.cards().remove(reader);
        let r =
            self.with_custody(|c| Ok(c.record_sighting(CardSighting::Removed { reader, card })?));
        let shown = match card {
            Some(Some(s)) => s.to_string(),
            Some(None) => "unreadable".to_owned(),
            None => "not identified".to_owned(),
        };
        self.after_record(r, reader, &shown, "card removed");
    }

    fn after_record(
        &self,
        r: Result<SightingRecorded, OpError>,
        reader: &str,
        serial: &str,
        what: &str,
    ) {
        match r {
            Ok(rec) => tracing::info!(reader, serial, kind = rec.kind, "reader event recorded"),
            Err(e) if e.code == ErrorCode::Sealed => tracing::info!(
                reader,
                serial,
                "{what} while the ledger is sealed: not recorded"
            ),
            Err(e) => tracing::warn!(reader, serial, "recording reader event: {}", e.message),
        }
    }

    /// The ledger directory.
    pub fn ledger_dir(&self) -> &Path {
        &self.opts.ledger_dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::fault::Step;
    use crate::ledger::reshare::tests::{crashed_at, new_quorum};
    use crate::ledger::Projections;

    fn offer(d: &Daemon, officer: &str, passphrase: &str) -> Result<Reply, OpError> {
        let peer = PeerCred {
            uid: 0,
            gid: 0,
            pid: 1,
        };
        let secret = Secret::new(zeroize::Zeroizing::new(passphrase.to_owned()));
        d.unseal(officer, secret, &peer)
    }

    /// A re-share that crashed after its event committed, before its keyring was moved into
    /// place: custodyd still checks shares against the keyring it replaced, so an officer the
    /// re-share added is told what happened and how to settle it, and is let in once it is.
    #[test]
    fn an_interrupted_reshare_is_named_to_its_officers_and_settled_by_one_open() {
        let (_tmp, dir) = crashed_at(Step::ReshareCommitted);
        let d = Daemon::new(DaemonOptions::new(&dir));
        let e = offer(&d, "carol", "carol-new-pass-2").expect_err("carol is not in keyring.json");
        assert_eq!(e.code, ErrorCode::UnknownOfficer);
        assert!(
            e.message
                .contains("re-share to keyring generation 2 that names carol was interrupted"),
            "{}",
            e.message
        );
        assert!(e.message.contains("custody ledger verify"), "{}", e.message);
        // The remedy the message names: one open with the new generation's officers.
        drop(Ledger::open(&dir, &new_quorum(), Projections::ledger_only()).expect("settled"));
        let progress = offer(&d, "carol", "carol-new-pass-2").expect("carol's share is taken");
        match progress {
            Reply::Unseal(p) => assert_eq!(p.given, vec!["carol".to_owned()]),
            other => panic!("expected unseal progress, got {other:?}"),
        }
    }
}
