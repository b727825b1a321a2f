//! Failed-secret throttling per (name, peer uid): passphrases, second-factor codes, keyring
//! passphrases at bootstrap and unseal shares.
//!
//! A failure slows down only the pair it happened to: a stranger who guesses at `alice` from
//! uid 1001 delays uid 1001's next guess at `alice`, never alice herself at her own uid, so no
//! peer can lock another out. Each pair has at most one attempt in flight, so parallel
//! connections do not multiply the guessing rate: a second attempt waits (at most
//! [`IN_FLIGHT_WAIT`]) for the first to be judged, then is judged by its outcome. The first [`FREE_FAILURES`] failures cost
//! nothing; each one after doubles the wait, from [`FIRST_DELAY_MS`] up to [`MAX_DELAY_MS`];
//! a success clears the pair. Times come from the daemon's clock.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// Failures in a row that cost no wait (typing mistakes).
pub const FREE_FAILURES: u32 = 3;
/// The wait after the first failure past the free ones.
pub const FIRST_DELAY_MS: i64 = 1_000;
/// The longest wait: with it, a pair gets fewer than 100 guesses a day.
pub const MAX_DELAY_MS: i64 = 15 * 60 * 1_000;
/// How long an attempt waits for another attempt of the same pair to be judged.
pub const IN_FLIGHT_WAIT: Duration = Duration::from_secs(10);
/// A pair with no failure for this long is forgotten.
const FORGET_AFTER_MS: i64 = 24 * 60 * 60 * 1_000;
/// Most pairs remembered; past it the pairs idle longest are forgotten first.
const MAX_PAIRS: usize = 4_096;

/// What is being guessed at, by whom.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    /// The secret's kind: `auth`, `bootstrap` or `unseal`.
    pub what: &'static str,
    /// The user or officer name the secret belongs to.
    pub name: String,
    /// The peer's uid.
    pub uid: u32,
}

#[derive(Debug, Default)]
struct Entry {
    failures: u32,
    not_before_ms: i64,
    last_ms: i64,
    in_flight: bool,
}

/// Why an attempt may not be made now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Too many failures in a row: the next attempt may be made at this time.
    Wait {
        /// Failures in a row so far.
        failures: u32,
        /// When the next attempt may be made (ms since the epoch).
        until_ms: i64,
    },
    /// Another attempt for the same pair is being checked.
    InFlight,
}

/// The throttle's memory (in the daemon only: a restart, an officer's act, forgets it).
#[derive(Debug, Default)]
pub struct Throttle {
    pairs: Mutex<HashMap<Key, Entry>>,
    /// Signalled whenever an attempt ends.
    ended: Condvar,
}

impl Throttle {
    /// An empty throttle.
    pub fn new() -> Self {
        Self::default()
    }

    fn pairs(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Entry>> {
        self.pairs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts an attempt for `key` at `now_ms`, or says why not. A started attempt must be
    /// ended with [`Throttle::finish`] (the [`Attempt`] does it when dropped unfinished, as a
    /// failure: an attempt cut short must not be a free guess).
    pub fn begin<'a>(&'a self, key: Key, now_ms: i64) -> Result<Attempt<'a>, Refusal> {
        let mut pairs = self.pairs();
        let give_up = Instant::now() + IN_FLIGHT_WAIT;
        while pairs.get(&key).is_some_and(|e| e.in_flight) {
            let left = give_up.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Refusal::InFlight);
            }
            pairs = self
                .ended
                .wait_timeout(pairs, left)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        if pairs.len() >= MAX_PAIRS && !pairs.contains_key(&key) {
            pairs.retain(|_, e| e.in_flight || now_ms - e.last_ms < FORGET_AFTER_MS);
            if pairs.len() >= MAX_PAIRS {
                if let Some(oldest) = pairs
                    .iter()
                    .filter(|(_, e)| !e.in_flight)
                    .min_by_key(|(_, e)| e.last_ms)
                    .map(|(k, _)| k.clone())
                {
                    pairs.remove(&oldest);
                }
            }
        }
        let e = pairs.entry(key.clone()).or_default();
        if e.in_flight {
            return Err(Refusal::InFlight);
        }
        if now_ms < e.not_before_ms {
            return Err(Refusal::Wait {
                failures: e.failures,
                until_ms: e.not_before_ms,
            });
        }
        e.in_flight = true;
        e.last_ms = now_ms;
        Ok(Attempt {
            throttle: self,
            key: Some(key),
            now_ms,
        })
    }

    /// Ends an attempt: `Some(true)` clears the pair, `Some(false)` is one more failure,
    /// `None` leaves its count as it was (an attempt that was no guess).
    fn end(&self, key: &Key, ok: Option<bool>, now_ms: i64) {
        let mut pairs = self.pairs();
        if ok == Some(true) {
            pairs.remove(key);
        } else if ok.is_none() {
            if let Some(e) = pairs.get_mut(key) {
                e.in_flight = false;
                e.last_ms = now_ms;
            }
        } else {
            let e = pairs.entry(key.clone()).or_default();
            e.in_flight = false;
            e.failures = e.failures.saturating_add(1);
            e.last_ms = now_ms;
            e.not_before_ms = now_ms.saturating_add(delay_after(e.failures));
        }
        drop(pairs);
        self.ended.notify_all();
    }

    /// Forgets the failures of every pair guessing at `name`'s secret of kind `what`, from any
    /// uid (two officers unlocked the user); attempts in flight end as they would.
    pub fn forget(&self, what: &str, name: &str) {
        self.pairs()
            .retain(|k, e| e.in_flight || k.what != what || k.name != name);
    }

    /// How many pairs are remembered.
    pub fn len(&self) -> usize {
        self.pairs().len()
    }

    /// Whether no pair is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The wait after `failures` failures in a row.
pub fn delay_after(failures: u32) -> i64 {
    if failures <= FREE_FAILURES {
        return 0;
    }
    let doublings = (failures - FREE_FAILURES - 1).min(20);
    FIRST_DELAY_MS
        .saturating_mul(1_i64 << doublings)
        .min(MAX_DELAY_MS)
}

/// One attempt in flight.
#[derive(Debug)]
pub struct Attempt<'a> {
    throttle: &'a Throttle,
    key: Option<Key>,
    now_ms: i64,
}

impl Attempt<'_> {
    /// Ends the attempt: `ok` clears the pair, a failure lengthens its wait.
    pub fn finish(mut self, ok: bool) {
        if let Some(k) = self.key.take() {
            self.throttle.end(&k, Some(ok), self.now_ms);
        }
    }

    /// Ends an attempt that was no guess (a reused second-factor code with the right
    /// passphrase): the pair's failures and wait stay as they were, neither cleared nor
    /// lengthened.
    pub fn finish_uncounted(mut self) {
        if let Some(k) = self.key.take() {
            self.throttle.end(&k, None, self.now_ms);
        }
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if let Some(k) = self.key.take() {
            self.throttle.end(&k, Some(false), self.now_ms);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, uid: u32) -> Key {
        Key {
            what: "auth",
            name: name.into(),
            uid,
        }
    }

    #[test]
    fn waits_grow_after_the_free_failures_and_are_capped() {
        assert_eq!(delay_after(1), 0);
        assert_eq!(delay_after(FREE_FAILURES), 0);
        assert_eq!(delay_after(FREE_FAILURES + 1), FIRST_DELAY_MS);
        assert_eq!(delay_after(FREE_FAILURES + 2), 2 * FIRST_DELAY_MS);
        assert_eq!(delay_after(FREE_FAILURES + 30), MAX_DELAY_MS);
        assert_eq!(delay_after(u32::MAX), MAX_DELAY_MS);
    }

    #[test]
    fn a_strangers_failures_never_slow_the_user_at_their_own_uid() {
        let t = Throttle::new();
        let mut now = 1_000_000;
        for _ in 0..20 {
            let a = t.begin(key("alice", 1001), now).expect("after the wait");
            a.finish(false);
            now += MAX_DELAY_MS;
        }
        assert!(matches!(
            t.begin(key("alice", 1001), now - 1),
            Err(Refusal::Wait { .. })
        ));
        // alice herself, at her uid, is not slowed at all.
        t.begin(key("alice", 1000), now - 1)
            .expect("alice at her own uid")
            .finish(true);
    }

    #[test]
    fn one_attempt_in_flight_per_pair_and_an_abandoned_one_counts_as_failed() {
        let t = std::sync::Arc::new(Throttle::new());
        let a = t.begin(key("bob", 7), 0).expect("first");
        // A second attempt of the pair waits for the first to be judged.
        let (t2, (tx, rx)) = (t.clone(), std::sync::mpsc::channel());
        let second = std::thread::spawn(move || {
            let r = t2.begin(key("bob", 7), 0).map(|a| a.finish(true));
            tx.send(()).expect("send");
            r
        });
        assert!(
            rx.recv_timeout(Duration::from_millis(200)).is_err(),
            "the second attempt went ahead while the first was in flight"
        );
        a.finish(false);
        second
            .join()
            .expect("thread")
            .expect("judged after the first");
        let a = t.begin(key("bob", 7), 0).expect("first again");
        drop(a);
        for _ in 0..FREE_FAILURES - 1 {
            t.begin(key("bob", 7), 0).expect("free").finish(false);
        }
        t.begin(key("bob", 7), 0).expect("last free").finish(false);
        assert_eq!(
            t.begin(key("bob", 7), 0).expect_err("refused"),
            Refusal::Wait {
                failures: FREE_FAILURES + 1,
                until_ms: FIRST_DELAY_MS
            }
        );
        t.begin(key("bob", 7), FIRST_DELAY_MS)
            .expect("after the wait")
            .finish(true);
        assert!(t.is_empty(), "a success forgets the pair");
    }

    #[test]
    fn an_uncounted_attempt_neither_clears_nor_lengthens_the_wait() {
        let t = Throttle::new();
        for _ in 0..=FREE_FAILURES {
            t.begin(key("alice", 1000), 0).expect("free").finish(false);
        }
        let waiting = t.begin(key("alice", 1000), 0).expect_err("waits");
        let later = match waiting {
            Refusal::Wait { until_ms, .. } => until_ms,
            other => panic!("{other:?}"),
        };
        t.begin(key("alice", 1000), later)
            .expect("after the wait")
            .finish_uncounted();
        // Not cleared: the next attempt at once is free, the failures stay as they were.
        let a = t.begin(key("alice", 1000), later).expect("not in flight");
        a.finish(false);
        let again = t.begin(key("alice", 1000), later).map(drop);
        assert_eq!(
            again,
            Err(Refusal::Wait {
                failures: FREE_FAILURES + 2,
                until_ms: later + delay_after(FREE_FAILURES + 2),
            })
        );
    }

    #[test]
    fn memory_is_bounded() {
        let t = Throttle::new();
        for uid in 0..(MAX_PAIRS as u32 + 100) {
            t.begin(key("x", uid), i64::from(uid))
                .expect("new")
                .finish(false);
        }
        assert!(t.len() <= MAX_PAIRS);
    }
}
