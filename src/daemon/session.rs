//! Login sessions: a person authenticates once (`login`) and reads, and does their own
//! low-risk operations, with a token instead of a passphrase and a second-factor code.
//!
//! A token is 256 random bits from the operating system (ring's `SystemRandom`), sent as 64
//! lower-case hex digits. The daemon keeps only its SHA-256 digest, in zeroizing memory, and
//! compares digests in constant time. A session is bound to its person and to the peer uid
//! that logged in; it ends after `idle` without use, after `absolute` however it is used, at
//! `logout`, and when the daemon seals (the table lives in the unsealed state and goes with
//! it). Nothing of a token is ever logged or shown by `Debug`.

use std::fmt;
use std::time::Duration;

use ring::digest::{Context, SHA256};
use ring::rand::SecureRandom;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::protocol::{RefusalCode, Secret};
use crate::custody::{Session, UserName};

/// Idle lifetime of a session when the configuration does not set one.
pub const DEFAULT_IDLE: Duration = Duration::from_secs(10 * 60);
/// Absolute lifetime of a session when the configuration does not set one.
pub const DEFAULT_ABSOLUTE: Duration = Duration::from_secs(60 * 60);
/// Sessions one person may hold at once; a new login beyond it ends their oldest.
pub const MAX_PER_USER: usize = 8;
/// Sessions held at once in all; a new login beyond it ends the one idle longest.
pub const MAX_SESSIONS: usize = 1024;

const TOKEN_TAG: &[u8] = b"mfa-custody/session-token/v1\0";

/// A session token as the daemon hands it out: zeroized on drop, `Debug` redacted.
pub struct SessionToken(Zeroizing<String>);

impl SessionToken {
    /// A fresh random token.
    pub fn generate(rng: &dyn SecureRandom) -> Result<Self, SessionError> {
        let mut raw = Zeroizing::new([0u8; 32]);
        rng.fill(&mut raw[..])
            .map_err(|_| SessionError::NoRandomness)?;
        let mut text = Zeroizing::new(String::with_capacity(64));
        for b in raw.iter() {
            text.push(char::from(HEX[usize::from(b >> 4)]));
            text.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
        Ok(Self(text))
    }

    /// The token's text, to keep its digest.
    pub(super) fn expose(&self) -> &str {
        &self.0
    }

    /// The token as the protocol carries it.
    pub fn into_secret(self) -> Secret {
        Secret::new(self.0)
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken(<redacted>)")
    }
}

/// The digest the daemon keeps of a session token.
fn digest(token: &str) -> Zeroizing<[u8; 32]> {
    token_digest(TOKEN_TAG, token)
}

/// The digest kept of a random token of kind `tag` (sessions, authentication continuations).
pub(super) fn token_digest(tag: &[u8], token: &str) -> Zeroizing<[u8; 32]> {
    let mut ctx = Context::new(&SHA256);
    ctx.update(tag);
    ctx.update(token.as_bytes());
    let d = ctx.finish();
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(d.as_ref());
    out
}

/// Why a session could not be made or used. Messages name what to do next and never carry
/// the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The operating system gave no randomness.
    #[error("no randomness for a session token")]
    NoRandomness,
    /// The token is not one of the daemon's sessions (never issued, logged out, expired and
    /// forgotten, or the daemon was sealed since).
    #[error(
        "the session is not known to custodyd (logged out, expired, or the daemon was sealed \
         since it was opened); run custody login again"
    )]
    Unknown,
    /// The token is not 64 hex digits.
    #[error("a session token is 64 lower-case hex digits; run custody login again")]
    Malformed,
    /// Unused for longer than the idle lifetime.
    #[error("the session of {user} was idle for more than {idle_secs} s and has ended; run custody login again")]
    Idle {
        /// Whose.
        user: UserName,
        /// The idle lifetime.
        idle_secs: u64,
    },
    /// Older than the absolute lifetime.
    #[error("the session of {user} is older than {absolute_secs} s and has ended; run custody login again")]
    Expired {
        /// Whose.
        user: UserName,
        /// The absolute lifetime.
        absolute_secs: u64,
    },
    /// Offered from another uid than the one that logged in. The session is ended: its token
    /// has left its owner.
    #[error(
        "this session of {user} was opened by uid {bound}, not by uid {uid}; it has been ended \
         because its token left its owner: {user} must run custody login again"
    )]
    WrongUid {
        /// Whose.
        user: UserName,
        /// The uid that logged in.
        bound: u32,
        /// The uid that offered it.
        uid: u32,
    },
}

impl SessionError {
    /// The reason code on the wire.
    pub fn code(&self) -> RefusalCode {
        match self {
            Self::NoRandomness => RefusalCode::NoRandomness,
            Self::Unknown | Self::Malformed => RefusalCode::SessionUnknown,
            Self::Idle { .. } | Self::Expired { .. } => RefusalCode::SessionExpired,
            Self::WrongUid { .. } => RefusalCode::SessionWrongUid,
        }
    }
}

struct Entry {
    digest: Zeroizing<[u8; 32]>,
    proof: Session,
    uid: u32,
    created_ms: i64,
    last_ms: i64,
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("user", self.proof.user())
            .field("uid", &self.uid)
            .field("created_ms", &self.created_ms)
            .field("last_ms", &self.last_ms)
            .finish_non_exhaustive()
    }
}

/// A live session, as found for a request.
#[derive(Debug, Clone)]
pub struct Found {
    /// The domain's proof of the login.
    pub proof: Session,
    /// The uid it is bound to.
    pub uid: u32,
    /// When it ends unless used again.
    pub idle_expires_at_ms: i64,
    /// When it ends however it is used.
    pub expires_at_ms: i64,
    /// The daemon's time of this login or use, which the two ends are counted from.
    pub as_of_ms: i64,
}

/// The open sessions of an unsealed daemon.
pub struct Sessions {
    entries: Vec<Entry>,
    idle: Duration,
    absolute: Duration,
}

impl fmt::Debug for Sessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sessions")
            .field("open", &self.entries.len())
            .field("idle", &self.idle)
            .field("absolute", &self.absolute)
            .finish()
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Sessions {
    /// No sessions yet; new ones live `idle` without use and `absolute` at most.
    pub fn new(idle: Duration, absolute: Duration) -> Self {
        Self {
            entries: Vec::new(),
            idle,
            absolute,
        }
    }

    /// Sessions open now (expired ones are forgotten at the next login or use).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none is open.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn found(&self, e: &Entry) -> Found {
        Found {
            proof: e.proof.clone(),
            uid: e.uid,
            idle_expires_at_ms: e
                .last_ms
                .saturating_add(ms(self.idle))
                .min(e.created_ms.saturating_add(ms(self.absolute))),
            expires_at_ms: e.created_ms.saturating_add(ms(self.absolute)),
            as_of_ms: e.last_ms,
        }
    }

    fn live(&self, e: &Entry, now_ms: i64) -> bool {
        now_ms.saturating_sub(e.last_ms) <= ms(self.idle)
            && now_ms.saturating_sub(e.created_ms) <= ms(self.absolute)
            && now_ms >= e.created_ms
    }

    /// Opens a session for `proof` (a login just made from `uid`) and answers its token, shown
    /// this once. Expired sessions are forgotten first; a person beyond [`MAX_PER_USER`] loses
    /// their oldest, and beyond [`MAX_SESSIONS`] the one idle longest ends.
    pub fn open(
        &mut self,
        rng: &dyn SecureRandom,
        proof: Session,
        uid: u32,
        now_ms: i64,
    ) -> Result<(SessionToken, Found), SessionError> {
        self.entries.retain(|e| {
            now_ms.saturating_sub(e.last_ms) <= ms(self.idle)
                && now_ms.saturating_sub(e.created_ms) <= ms(self.absolute)
        });
        let mine = self
            .entries
            .iter()
            .filter(|e| e.proof.user() == proof.user())
            .count();
        if mine >= MAX_PER_USER {
            if let Some(i) = self
                .entries
                .iter()
                .enumerate()
                .filter(|(_, e)| e.proof.user() == proof.user())
                .min_by_key(|(_, e)| e.created_ms)
                .map(|(i, _)| i)
            {
                self.entries.remove(i);
            }
        }
        if self.entries.len() >= MAX_SESSIONS {
            if let Some(i) = self
                .entries
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.last_ms)
                .map(|(i, _)| i)
            {
                self.entries.remove(i);
            }
        }
        let token = SessionToken::generate(rng)?;
        let entry = Entry {
            digest: digest(&token.0),
            proof,
            uid,
            created_ms: now_ms,
            last_ms: now_ms,
        };
        let found = self.found(&entry);
        self.entries.push(entry);
        Ok((token, found))
    }

    /// The index of the session whose digest matches `token`, comparing every digest in
    /// constant time.
    fn index(&self, token: &Secret) -> Result<Option<usize>, SessionError> {
        let text = token.expose();
        if text.len() != 64 || !text.bytes().all(|b| HEX.contains(&b)) {
            return Err(SessionError::Malformed);
        }
        let d = digest(text);
        let mut at = None;
        for (i, e) in self.entries.iter().enumerate() {
            if bool::from(e.digest.ct_eq(&*d)) {
                at = Some(i);
            }
        }
        Ok(at)
    }

    /// The live session of `token` offered from `uid`, its idle time restarted. An expired
    /// session is forgotten and refused; a session offered from another uid is ended.
    pub fn use_token(
        &mut self,
        token: &Secret,
        uid: u32,
        now_ms: i64,
    ) -> Result<Found, SessionError> {
        let i = self.index(token)?.ok_or(SessionError::Unknown)?;
        let Some(e) = self.entries.get(i) else {
            return Err(SessionError::Unknown);
        };
        if e.uid != uid {
            let err = SessionError::WrongUid {
                user: e.proof.user().clone(),
                bound: e.uid,
                uid,
            };
            self.entries.remove(i);
            return Err(err);
        }
        if !self.live(e, now_ms) {
            let user = e.proof.user().clone();
            let err = if now_ms.saturating_sub(e.created_ms) > ms(self.absolute) {
                SessionError::Expired {
                    user,
                    absolute_secs: self.absolute.as_secs(),
                }
            } else {
                SessionError::Idle {
                    user,
                    idle_secs: self.idle.as_secs(),
                }
            };
            self.entries.remove(i);
            return Err(err);
        }
        let Some(e) = self.entries.get_mut(i) else {
            return Err(SessionError::Unknown);
        };
        e.last_ms = now_ms;
        let e = &self.entries[i];
        Ok(self.found(e))
    }

    /// Ends the session of `token` (offered from `uid`, which must be its own) and answers
    /// whose it was.
    pub fn close(
        &mut self,
        token: &Secret,
        uid: u32,
        now_ms: i64,
    ) -> Result<UserName, SessionError> {
        let found = self.use_token(token, uid, now_ms)?;
        if let Some(i) = self.index(token)? {
            self.entries.remove(i);
        }
        Ok(found.proof.user().clone())
    }

    /// Ends every session of `user` (suspended, or their roles changed).
    pub fn close_user(&mut self, user: &UserName) {
        self.entries.retain(|e| e.proof.user() != user);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::custody::Session;
    use ring::rand::SystemRandom;

    fn proof(name: &str) -> Session {
        Session::for_tests(UserName::parse(name).expect("name"), 0)
    }

    fn table() -> Sessions {
        Sessions::new(Duration::from_secs(10), Duration::from_secs(60))
    }

    #[test]
    fn a_token_serves_its_uid_until_idle_or_absolute_end() {
        let rng = SystemRandom::new();
        let mut t = table();
        let (tok, f) = t.open(&rng, proof("alice"), 1000, 0).expect("open");
        assert_eq!(f.expires_at_ms, 60_000);
        let tok = tok.into_secret();
        assert_eq!(tok.expose().len(), 64);
        for now in [5_000, 14_000, 23_000] {
            let f = t.use_token(&tok, 1000, now).expect("live");
            assert_eq!(f.proof.user().as_str(), "alice");
        }
        assert!(matches!(
            t.use_token(&tok, 1000, 34_000),
            Err(SessionError::Idle { .. })
        ));
        assert_eq!(
            t.use_token(&tok, 1000, 34_001).err(),
            Some(SessionError::Unknown),
            "an ended session is forgotten"
        );
        let (tok, _) = t.open(&rng, proof("alice"), 1000, 0).expect("open");
        let tok = tok.into_secret();
        for now in (9_000..=54_000).step_by(9_000) {
            t.use_token(&tok, 1000, now).expect("kept alive");
        }
        assert!(matches!(
            t.use_token(&tok, 1000, 61_000),
            Err(SessionError::Expired { .. })
        ));
    }

    #[test]
    fn another_uid_is_refused_and_ends_the_session() {
        let rng = SystemRandom::new();
        let mut t = table();
        let (tok, _) = t.open(&rng, proof("alice"), 1000, 0).expect("open");
        let tok = tok.into_secret();
        let e = t.use_token(&tok, 1001, 1).expect_err("other uid");
        assert_eq!(e.code(), RefusalCode::SessionWrongUid);
        assert!(e.to_string().contains("uid 1000") && e.to_string().contains("uid 1001"));
        assert_eq!(
            t.use_token(&tok, 1000, 2).err(),
            Some(SessionError::Unknown)
        );
    }

    #[test]
    fn logout_ends_only_that_session_and_garbage_is_refused() {
        let rng = SystemRandom::new();
        let mut t = table();
        let (a, _) = t.open(&rng, proof("alice"), 1000, 0).expect("open");
        let (b, _) = t.open(&rng, proof("alice"), 1000, 0).expect("open");
        let (a, b) = (a.into_secret(), b.into_secret());
        assert_ne!(a.expose(), b.expose());
        assert_eq!(t.close(&a, 1000, 1).expect("close").as_str(), "alice");
        assert_eq!(t.use_token(&a, 1000, 2).err(), Some(SessionError::Unknown));
        t.use_token(&b, 1000, 2).expect("the other stays");
        let junk = Secret::new(Zeroizing::new("not a token".into()));
        assert_eq!(
            t.use_token(&junk, 1000, 2).err(),
            Some(SessionError::Malformed)
        );
        let upper = Secret::new(Zeroizing::new(b.expose().to_uppercase()));
        assert!(t.use_token(&upper, 1000, 2).is_err());
    }

    #[test]
    fn a_person_holds_at_most_max_per_user() {
        let rng = SystemRandom::new();
        let mut t = table();
        let first = t
            .open(&rng, proof("bob"), 1000, 0)
            .expect("open")
            .0
            .into_secret();
        for i in 1..=MAX_PER_USER {
            t.open(&rng, proof("bob"), 1000, i as i64).expect("open");
        }
        assert_eq!(t.len(), MAX_PER_USER);
        assert_eq!(
            t.use_token(&first, 1000, 20).err(),
            Some(SessionError::Unknown)
        );
    }

    #[test]
    fn debug_shows_no_token_or_digest() {
        let rng = SystemRandom::new();
        let mut t = table();
        let (tok, found) = t.open(&rng, proof("alice"), 1000, 0).expect("open");
        let text = tok.0.to_string();
        let d = digest(&text);
        let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
        let shown = format!("{tok:?} {t:?} {:?} {found:?}", t.entries);
        assert!(!shown.contains(&text) && !shown.contains(&hex), "{shown}");
    }
}
