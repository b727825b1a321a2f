//! Two-round authentication: the continuations that carry a proven passphrase from the first
//! round (the passphrase, no code) to the second (the code), so that a person is asked for a
//! second-factor code only once custodyd knows they have one, and only after their passphrase
//! is right.
//!
//! A continuation is 256 random bits, sent as 64 hex digits with the `factor_code_required`
//! refusal that answers a right passphrase of a user with a second factor; the daemon keeps
//! only its SHA-256 digest and the domain's [`PassphraseProven`]. It serves one second round:
//! it is forgotten at its first use, whatever comes of it; it is bound to the peer that proved
//! the passphrase (uid and pid, from SO_PEERCRED) and to that person; it ends [`LIFETIME`]
//! after the first round on the daemon's clock, and when the daemon seals (the table lives in
//! the unsealed state). A stranger learns nothing from it: it is answered only after the
//! passphrase is proven, which is the same proof a successful login is.

use std::fmt;
use std::time::Duration;

use ring::rand::SecureRandom;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::peer::PeerCred;
use super::protocol::{RefusalCode, Secret};
use super::session::{token_digest, SessionError, SessionToken};
use crate::custody::{PassphraseProven, UserName};

/// How long a continuation waits for its second round: time to read an authenticator and
/// type six digits.
pub const LIFETIME: Duration = Duration::from_secs(120);
/// Continuations held at once; past it the oldest is forgotten.
pub const MAX_PENDING: usize = 256;

const TAG: &[u8] = b"mfa-custody/auth-continuation/v1\0";

/// Why a continuation was not accepted. Every case ends it; the message says to start again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ContinuationError {
    /// Not a continuation the daemon holds: never issued, already used, forgotten, or the
    /// daemon sealed since.
    #[error(
        "the continuation of {user}'s authentication is not known to custodyd (already used, \
         or the daemon was sealed since); run the command again: passphrase first, then the code"
    )]
    Unknown {
        /// Who it was offered for.
        user: UserName,
    },
    /// Older than [`LIFETIME`].
    #[error(
        "the continuation of {user}'s authentication is older than {lifetime_secs} s and has \
         ended; run the command again: passphrase first, then the code"
    )]
    Expired {
        /// Whose.
        user: UserName,
        /// The lifetime.
        lifetime_secs: u64,
    },
    /// Offered by another process or uid than the one that proved the passphrase, or for
    /// another person. It has been ended.
    #[error(
        "this continuation was issued to another process (or for another person) than the one \
         offering it for {user}; it has been ended: run the command again, passphrase first"
    )]
    WrongPeer {
        /// Who it was offered for.
        user: UserName,
    },
}

impl ContinuationError {
    /// The reason code on the wire.
    pub fn code(&self) -> RefusalCode {
        RefusalCode::ContinuationInvalid
    }
}

struct Entry {
    digest: Zeroizing<[u8; 32]>,
    proof: PassphraseProven,
    uid: u32,
    pid: i32,
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("user", self.proof.user())
            .field("uid", &self.uid)
            .field("pid", &self.pid)
            .field("at_ms", &self.proof.at_ms())
            .finish_non_exhaustive()
    }
}

/// The continuations waiting for their second round.
#[derive(Debug, Default)]
pub struct Continuations {
    entries: Vec<Entry>,
}

fn lifetime_ms() -> i64 {
    i64::try_from(LIFETIME.as_millis()).unwrap_or(i64::MAX)
}

impl Continuations {
    /// None yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many are held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Keeps `proof` (a passphrase proven just now by `peer`) for one second round and answers
    /// its continuation. Ended ones are forgotten first, and a person's earlier continuation
    /// from the same peer is replaced.
    pub fn open(
        &mut self,
        rng: &dyn SecureRandom,
        proof: PassphraseProven,
        peer: &PeerCred,
        now_ms: i64,
    ) -> Result<SessionToken, SessionError> {
        self.entries.retain(|e| {
            now_ms.saturating_sub(e.proof.at_ms()) <= lifetime_ms()
                && !(e.proof.user() == proof.user() && e.uid == peer.uid && e.pid == peer.pid)
        });
        if self.entries.len() >= MAX_PENDING {
            if let Some(i) = self
                .entries
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.proof.at_ms())
                .map(|(i, _)| i)
            {
                self.entries.remove(i);
            }
        }
        let token = SessionToken::generate(rng)?;
        self.entries.push(Entry {
            digest: token_digest(TAG, token.expose()),
            proof,
            uid: peer.uid,
            pid: peer.pid,
        });
        Ok(token)
    }

    /// Takes the continuation `token` that `peer` offers for `user`: it is forgotten whatever
    /// the answer, and answers the proof only for the same person, the same peer (uid and
    /// pid) and within [`LIFETIME`].
    pub fn take(
        &mut self,
        token: &Secret,
        user: &UserName,
        peer: &PeerCred,
        now_ms: i64,
    ) -> Result<PassphraseProven, ContinuationError> {
        let text = token.expose();
        let unknown = || ContinuationError::Unknown { user: user.clone() };
        if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(unknown());
        }
        let d = token_digest(TAG, text);
        let mut at = None;
        for (i, e) in self.entries.iter().enumerate() {
            if bool::from(e.digest.ct_eq(&*d)) {
                at = Some(i);
            }
        }
        let e = self.entries.remove(at.ok_or_else(unknown)?);
        if e.uid != peer.uid || e.pid != peer.pid || e.proof.user() != user {
            tracing::warn!(
                user = user.as_str(),
                issued_uid = e.uid,
                issued_pid = e.pid,
                peer_uid = peer.uid,
                peer_pid = peer.pid,
                "an authentication continuation was offered by another peer or for another \
                 person; it is ended"
            );
            return Err(ContinuationError::WrongPeer { user: user.clone() });
        }
        let age = now_ms.saturating_sub(e.proof.at_ms());
        if age > lifetime_ms() || age < 0 {
            return Err(ContinuationError::Expired {
                user: user.clone(),
                lifetime_secs: LIFETIME.as_secs(),
            });
        }
        Ok(e.proof)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;

    fn name(s: &str) -> UserName {
        UserName::parse(s).expect("name")
    }

    fn peer(uid: u32, pid: i32) -> PeerCred {
        PeerCred { uid, gid: uid, pid }
    }

    fn proof(user: &str, at_ms: i64) -> PassphraseProven {
        PassphraseProven::for_tests(name(user), at_ms)
    }

    #[test]
    fn a_continuation_serves_one_second_round_of_its_peer_and_person() {
        let rng = SystemRandom::new();
        let mut t = Continuations::new();
        let me = peer(1000, 42);
        let tok = t
            .open(&rng, proof("alice", 0), &me, 0)
            .expect("open")
            .into_secret();
        assert_eq!(tok.expose().len(), 64);
        let p = t.take(&tok, &name("alice"), &me, 5_000).expect("first use");
        assert_eq!(p.user().as_str(), "alice");
        assert_eq!(
            t.take(&tok, &name("alice"), &me, 5_001).expect_err("twice"),
            ContinuationError::Unknown {
                user: name("alice")
            },
            "a continuation is forgotten at its first use"
        );
        assert!(t.is_empty());
    }

    #[test]
    fn another_peer_another_person_or_a_late_round_is_refused_and_ends_it() {
        let rng = SystemRandom::new();
        let mut t = Continuations::new();
        let me = peer(1000, 42);
        for (who, by, at, want) in [
            (
                "alice",
                peer(1001, 42),
                1,
                ContinuationError::WrongPeer {
                    user: name("alice"),
                },
            ),
            (
                "alice",
                peer(1000, 43),
                1,
                ContinuationError::WrongPeer {
                    user: name("alice"),
                },
            ),
            (
                "bob",
                me,
                1,
                ContinuationError::WrongPeer { user: name("bob") },
            ),
            (
                "alice",
                me,
                lifetime_ms() + 1,
                ContinuationError::Expired {
                    user: name("alice"),
                    lifetime_secs: 120,
                },
            ),
        ] {
            let tok = t
                .open(&rng, proof("alice", 0), &me, 0)
                .expect("open")
                .into_secret();
            let e = t.take(&tok, &name(who), &by, at).expect_err("refused");
            assert_eq!(e, want);
            assert_eq!(e.code(), RefusalCode::ContinuationInvalid);
            assert!(e.to_string().contains("run the command again"), "{e}");
            // Ended: not even its own peer may use it now.
            assert!(matches!(
                t.take(&tok, &name("alice"), &me, 2),
                Err(ContinuationError::Unknown { .. })
            ));
        }
        let junk = Secret::new(Zeroizing::new("not a continuation".into()));
        assert!(matches!(
            t.take(&junk, &name("alice"), &me, 0),
            Err(ContinuationError::Unknown { .. })
        ));
    }

    #[test]
    fn the_table_is_bounded_and_a_new_first_round_replaces_the_last() {
        let rng = SystemRandom::new();
        let mut t = Continuations::new();
        let me = peer(1000, 42);
        let old = t
            .open(&rng, proof("alice", 0), &me, 0)
            .expect("open")
            .into_secret();
        let new = t
            .open(&rng, proof("alice", 1), &me, 1)
            .expect("open")
            .into_secret();
        assert_eq!(t.len(), 1);
        assert!(t.take(&old, &name("alice"), &me, 2).is_err());
        assert!(t.take(&new, &name("alice"), &me, 2).is_ok());
        for pid in 0..(MAX_PENDING as i32 + 10) {
            t.open(&rng, proof("alice", 5), &peer(1000, pid), 5)
                .expect("open");
        }
        assert!(t.len() <= MAX_PENDING);
        let debug = format!("{t:?}");
        assert!(
            debug.contains("alice") && !debug.contains("digest"),
            "{debug}"
        );
    }
}
