//! Refusals a stranger can provoke at no cost, counted instead of recorded one by one.
//!
//! Every refusal is a `custody.refused` event, except the ones that need no secret and so
//! cost a peer nothing to repeat: an unknown user name, a bootstrap for a name that is not a
//! keyring officer or is already enrolled, a person bound to another uid, a suspended one, an
//! officer without a code. For those, the first refusal of a kind (operation, refusal, peer
//! uid when known) in a [`WINDOW_MS`] window is recorded as usual; the repeats are counted,
//! and recorded as one `custody.refusals_counted` event (count, first and last time, up to
//! [`MAX_NAMES`] names) when the window has passed, at the next refusal or write, or when the
//! ledger is sealed. So a flood of such requests writes a few events a minute, not thousands a
//! second. Refusals that follow a checked secret (a wrong passphrase or code) are recorded
//! each time; their rate is bounded by the daemon's throttle.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::error::CustodyError;

/// How long repeats of one kind of refusal are counted before they are recorded.
pub const WINDOW_MS: i64 = 60_000;
/// Most names one counted event lists (the count goes on past them).
pub const MAX_NAMES: usize = 16;
/// Most kinds counted at once; past it every window is recorded and started afresh.
const MAX_KINDS: usize = 256;

/// What is counted together.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Kind {
    operation: &'static str,
    refusal: &'static str,
    peer_uid: Option<u32>,
}

#[derive(Debug)]
struct Window {
    first_ms: i64,
    last_ms: i64,
    repeats: u64,
    names: BTreeSet<String>,
}

/// The open counting windows.
#[derive(Debug, Default)]
pub struct RefusalCounts {
    windows: BTreeMap<Kind, Window>,
}

/// Whether a refusal is one that costs its sender nothing (see the module documentation).
pub fn costs_nothing(err: &CustodyError) -> bool {
    matches!(
        err,
        CustodyError::UnknownUser { .. }
            | CustodyError::NotAnOfficer { .. }
            | CustodyError::UserExists { .. }
            | CustodyError::WrongUid { .. }
            | CustodyError::Suspended { .. }
            | CustodyError::FactorCodeRequired { .. }
    )
}

impl RefusalCounts {
    /// Decides for one refusal at `now_ms`: `true` to record it as usual, `false` when it is
    /// a repeat within its window (then counted).
    pub fn admit(
        &mut self,
        operation: &'static str,
        err: &CustodyError,
        who: &str,
        peer_uid: Option<u32>,
        now_ms: i64,
    ) -> bool {
        if !costs_nothing(err) {
            return true;
        }
        let kind = Kind {
            operation,
            refusal: err.code(),
            peer_uid,
        };
        match self.windows.get_mut(&kind) {
            Some(w) if now_ms.saturating_sub(w.first_ms) < WINDOW_MS => {
                w.repeats = w.repeats.saturating_add(1);
                w.last_ms = now_ms;
                if w.names.len() < MAX_NAMES {
                    w.names.insert(who.to_owned());
                }
                false
            }
            // An ended window is taken out by `due` before this is asked; a new one starts.
            _ => {
                self.windows.insert(
                    kind,
                    Window {
                        first_ms: now_ms,
                        last_ms: now_ms,
                        repeats: 0,
                        names: BTreeSet::new(),
                    },
                );
                true
            }
        }
    }

    /// Takes out the windows that ended by `now_ms` (all of them when `all`, or when too many
    /// kinds are open) and answers the bodies of the `custody.refusals_counted` events to
    /// record for those that counted repeats.
    pub fn due(&mut self, now_ms: i64, all: bool) -> Vec<Value> {
        let all = all || self.windows.len() >= MAX_KINDS;
        let ended: Vec<Kind> = self
            .windows
            .iter()
            .filter(|(_, w)| all || now_ms.saturating_sub(w.first_ms) >= WINDOW_MS)
            .map(|(k, _)| k.clone())
            .collect();
        ended
            .into_iter()
            .filter_map(|k| {
                let w = self.windows.remove(&k)?;
                (w.repeats > 0).then(|| {
                    json!({"operation": k.operation, "refusal": k.refusal,
                           "peer_uid": k.peer_uid, "count": w.repeats,
                           "first_ms": w.first_ms, "last_ms": w.last_ms,
                           "names": w.names})
                })
            })
            .collect()
    }

    /// Whether any window is open.
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::custody::ids::UserName;

    fn unknown(n: &str) -> CustodyError {
        CustodyError::UnknownUser {
            user: UserName::parse(n).expect("name"),
        }
    }

    #[test]
    fn repeats_within_a_window_are_counted_then_recorded_once() {
        let mut c = RefusalCounts::default();
        assert!(c.admit("authenticate", &unknown("zed"), "zed", Some(7), 0));
        for i in 1..=1000 {
            assert!(!c.admit(
                "authenticate",
                &unknown("zed"),
                &format!("u{i}"),
                Some(7),
                i
            ));
        }
        // Another peer is its own kind.
        assert!(c.admit("authenticate", &unknown("zed"), "zed", Some(8), 5));
        assert!(
            c.due(WINDOW_MS - 1, false).is_empty(),
            "the window is still open"
        );
        let due = c.due(WINDOW_MS, false);
        assert_eq!(due.len(), 1, "{due:?}");
        assert_eq!(due[0]["count"], 1000);
        assert_eq!(due[0]["peer_uid"], 7);
        assert_eq!(due[0]["names"].as_array().map(Vec::len), Some(MAX_NAMES));
        // After the window the next one is recorded again.
        assert!(c.admit(
            "authenticate",
            &unknown("zed"),
            "zed",
            Some(7),
            WINDOW_MS + 1
        ));
        // The peer 8 window had no repeats: nothing to record, and it is forgotten.
        assert!(c.due(2 * WINDOW_MS + 10, true).is_empty());
        assert!(c.is_empty());
    }

    #[test]
    fn refusals_after_a_checked_secret_are_always_recorded() {
        let mut c = RefusalCounts::default();
        let wrong = CustodyError::AuthenticationFailed {
            user: UserName::parse("alice").expect("name"),
        };
        for i in 0..10 {
            assert!(c.admit("authenticate", &wrong, "alice", Some(7), i));
        }
        assert!(c.is_empty());
    }
}
