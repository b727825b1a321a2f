//! The provider's record held against the ledger's: each root event of CloudTrail is explained
//! by a code release, or is a finding.
//!
//! Rules, per account the export holds:
//! - a successful root console sign-in (`ConsoleLogin`, `userIdentity.type` `Root`,
//!   `responseElements.ConsoleLogin` `Success`, `additionalEventData.MFAUsed` `Yes`) is
//!   explained by a `code.released` of that account when it happens between the release and
//!   the window after it; each release explains at most one sign-in (the earliest release
//!   whose window holds the sign-in is used, which explains the most sign-ins possible);
//! - a root API call is explained when it falls in an explained sign-in's session (from the
//!   release to the session length after the sign-in) and, when the call maps to a catalogue
//!   task ([`super::tasks::task_of`]), the request's task is that task; of several open
//!   sessions, a call belongs to the latest sign-in before it;
//! - calls of `sts:AssumeRoot` sessions (`sessionContext.assumedRoot` `"true"`) use no root
//!   credentials of the account: counted, never a finding;
//! - records of other identities are counted and dropped.
//!
//! Memory: other identities' records are dropped as they come; a root record is kept as a
//! small summary until [`Reconciler::finish`], because CloudTrail files come in no order.

use std::collections::BTreeMap;

use super::record::Record;
use super::tasks::task_of;
use crate::custody::report::{parse_utc, utc, CustodyReport};

/// An account the export holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldAccount {
    /// The provider's account id.
    pub account: String,
    /// When the ledger marked the root credentials removed, if they are at the export's end.
    pub removed_since_ms: Option<i64>,
}

/// A code release the export records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Release {
    /// The request.
    pub request: String,
    /// Its account.
    pub account: String,
    /// Its catalogue task.
    pub task: Option<String>,
    /// The officers who approved it.
    pub approvers: Vec<String>,
    /// When the code was released (ms).
    pub time_ms: i64,
    /// Ledger seq of `code.released`.
    pub seq: u64,
}

/// What the ledger export says custody held and released: reconciliation's first input.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Held {
    /// Accounts by id.
    pub accounts: BTreeMap<String, HeldAccount>,
    /// Releases, in ledger order.
    pub releases: Vec<Release>,
}

impl Held {
    /// The accounts and releases of a verified export's report.
    pub fn from_report(report: &CustodyReport) -> Self {
        let mut accounts = BTreeMap::new();
        let mut releases = Vec::new();
        for (id, a) in &report.accounts {
            // Requests of an unknown account are filed under "?" by the report; an account
            // whose registration is a stub (a filtered export) is known by its requests.
            let known = a.provider.is_some() || a.status.is_some() || !a.requests.is_empty();
            if known && id != "?" {
                let removed = a.status.as_deref() == Some("root_credentials_removed");
                accounts.insert(
                    id.clone(),
                    HeldAccount {
                        account: id.clone(),
                        removed_since_ms: if removed {
                            Some(a.status_since_ms.unwrap_or(i64::MIN))
                        } else {
                            None
                        },
                    },
                );
            }
            for r in &a.requests {
                if let Some(c) = &r.released {
                    releases.push(Release {
                        request: r.id.clone(),
                        account: r.account.clone().unwrap_or_else(|| id.clone()),
                        task: r.task.clone(),
                        approvers: r.approvals.iter().map(|d| d.who.clone()).collect(),
                        time_ms: c.time_ms,
                        seq: c.seq,
                    });
                }
            }
        }
        releases.sort_by_key(|r| r.seq);
        Self { accounts, releases }
    }
}

/// Lengths of the matching windows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Windows {
    /// How long after a release a sign-in is explained by it (ms).
    pub sign_in_ms: i64,
    /// How long after an explained sign-in its session's calls are explained (ms).
    pub session_ms: i64,
}

impl Default for Windows {
    fn default() -> Self {
        Self {
            sign_in_ms: 5 * 60 * 1000,
            session_ms: 60 * 60 * 1000,
        }
    }
}

/// The kinds of finding. Informational ones do not fail the reconciliation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum FindingKind {
    /// A successful root sign-in no release explains.
    UnexplainedRootSignIn,
    /// A root call outside every explained session.
    RootActionOutsideSession,
    /// A root call of one catalogue task in the session of a request for another.
    TaskMismatch,
    /// A successful root sign-in without MFA: the custody key was not used.
    RootSignInWithoutMfa,
    /// A failed root sign-in (informational).
    FailedRootSignIn,
    /// A root event of an account the export does not hold.
    AccountNotInCustody,
    /// A release no sign-in followed (informational).
    ReleaseWithoutSignIn,
    /// Root activity other than `AssumeRoot` sessions after the ledger marked the account's
    /// root credentials removed.
    RootCredentialsRemovedButUsed,
}

impl FindingKind {
    /// The stable name (`--json`, the table).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnexplainedRootSignIn => "unexplained_root_sign_in",
            Self::RootActionOutsideSession => "root_action_outside_session",
            Self::TaskMismatch => "task_mismatch",
            Self::RootSignInWithoutMfa => "root_sign_in_without_mfa",
            Self::FailedRootSignIn => "failed_root_sign_in",
            Self::AccountNotInCustody => "account_not_in_custody",
            Self::ReleaseWithoutSignIn => "release_without_sign_in",
            Self::RootCredentialsRemovedButUsed => "root_credentials_removed_but_used",
        }
    }

    /// True for findings that need no action.
    pub fn informational(self) -> bool {
        matches!(self, Self::FailedRootSignIn | Self::ReleaseWithoutSignIn)
    }
}

/// One record (or release) that needs attention.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// What kind.
    pub kind: FindingKind,
    /// The CloudTrail `eventID` (none for `release_without_sign_in`).
    pub event_id: Option<String>,
    /// The event's time, or the release's (ms).
    pub time_ms: i64,
    /// The account.
    pub account: String,
    /// The request concerned, if any.
    pub request: Option<String>,
    /// What happened and what it means, in one sentence.
    pub sentence: String,
}

/// A root event a release explains.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explained {
    /// The CloudTrail `eventID`.
    pub event_id: String,
    /// When (ms).
    pub time_ms: i64,
    /// The account.
    pub account: String,
    /// `eventName`.
    pub event_name: String,
    /// The request whose release explains it.
    pub request: String,
    /// The request's task.
    pub task: Option<String>,
    /// Its approvers.
    pub approvers: Vec<String>,
}

/// The outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reconciliation {
    /// Records read.
    pub records: u64,
    /// Root records among them.
    pub root_records: u64,
    /// Records of other identities (counted, ignored).
    pub other_identities: u64,
    /// Calls of `AssumeRoot` sessions (counted, never findings).
    pub assume_root: u64,
    /// Earliest and latest `eventTime` of any record (ms): the period the input covers.
    pub covered_ms: Option<(i64, i64)>,
    /// Releases whose sign-in window lies outside that period (not judged).
    pub releases_outside_period: u64,
    /// Explained root events, by time.
    pub explained: Vec<Explained>,
    /// Findings, by time.
    pub findings: Vec<Finding>,
}

impl Reconciliation {
    /// True when no finding needs action.
    pub fn clean(&self) -> bool {
        self.findings.iter().all(|f| f.kind.informational())
    }
}

/// A root record that cannot be reconciled.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordProblem {
    /// A field reconciliation needs is missing.
    #[error("a root record (eventID {event_id}) has no {field}: it cannot be matched; CloudTrail writes it in every record, so the file was altered or is not from CloudTrail")]
    Missing {
        /// The record's `eventID`, or `?`.
        event_id: String,
        /// The field.
        field: &'static str,
    },
    /// `eventTime` is not `YYYY-MM-DDTHH:MM:SSZ`.
    #[error("a root record (eventID {event_id}) has eventTime {time:?}, not YYYY-MM-DDTHH:MM:SSZ")]
    BadTime {
        /// The record's `eventID`.
        event_id: String,
        /// What it held (shortened).
        time: String,
    },
}

#[derive(Clone, Debug)]
enum Action {
    SignIn { success: bool, mfa: bool },
    Call { task: Option<&'static str> },
}

/// An explained sign-in's session.
#[derive(Clone, Debug)]
struct Session {
    account: String,
    /// The release (calls between the release and the sign-in belong to it too).
    start_ms: i64,
    signed_in_ms: i64,
    end_ms: i64,
    /// Index of the release in time order.
    release: usize,
}

#[derive(Clone, Debug)]
struct RootEvent {
    event_id: String,
    time_ms: i64,
    account: String,
    name: String,
    action: Action,
}

/// Reconciles records fed one at a time against [`Held`].
#[derive(Debug)]
pub struct Reconciler {
    custody: Held,
    windows: Windows,
    records: u64,
    other: u64,
    assume_root: u64,
    covered: Option<(i64, i64)>,
    root: Vec<RootEvent>,
}

fn short(s: &str) -> String {
    s.chars().take(64).collect()
}

impl Reconciler {
    /// A reconciler of `custody` with `windows`.
    pub fn new(custody: Held, windows: Windows) -> Self {
        Self {
            custody,
            windows,
            records: 0,
            other: 0,
            assume_root: 0,
            covered: None,
            root: Vec::new(),
        }
    }

    /// Takes the next record.
    pub fn push(&mut self, r: Record) -> Result<(), RecordProblem> {
        self.records += 1;
        let time = r
            .event_time
            .as_deref()
            .and_then(|t| parse_utc(t).ok())
            .map(|t| t.0);
        if let Some(t) = time {
            self.covered = Some(match self.covered {
                None => (t, t),
                Some((a, b)) => (a.min(t), b.max(t)),
            });
        }
        if r.user_identity.kind.as_deref() != Some("Root") {
            self.other += 1;
            return Ok(());
        }
        if r.user_identity.assumed_root.get() == Some("true") {
            self.assume_root += 1;
            return Ok(());
        }
        let event_id = r.event_id.clone().ok_or(RecordProblem::Missing {
            event_id: "?".to_owned(),
            field: "eventID",
        })?;
        let missing = |field| RecordProblem::Missing {
            event_id: short(&event_id),
            field,
        };
        let time_ms = match (time, r.event_time.as_deref()) {
            (Some(t), _) => t,
            (None, None) => return Err(missing("eventTime")),
            (None, Some(t)) => {
                return Err(RecordProblem::BadTime {
                    event_id: short(&event_id),
                    time: short(t),
                })
            }
        };
        let account = r
            .recipient_account_id
            .clone()
            .or_else(|| r.user_identity.account_id.clone())
            .ok_or_else(|| missing("recipientAccountId"))?;
        let name = r.event_name.clone().ok_or_else(|| missing("eventName"))?;
        let source = r.event_source.as_deref().unwrap_or_default();
        let action = if source == "signin.amazonaws.com" && name == "ConsoleLogin" {
            Action::SignIn {
                success: r.console_login.get() == Some("Success"),
                mfa: r.mfa_used.get() == Some("Yes"),
            }
        } else {
            Action::Call {
                task: task_of(source, &name, r.read_only.0),
            }
        };
        // Shown on screens and in reports: bounded (real ones are far shorter).
        self.root.push(RootEvent {
            event_id: short(&event_id),
            time_ms,
            account: short(&account),
            name: short(&name),
            action,
        });
        Ok(())
    }

    /// Matches everything taken, and answers the outcome.
    pub fn finish(self) -> Reconciliation {
        let Self {
            custody,
            windows,
            records,
            other,
            assume_root,
            covered,
            mut root,
        } = self;
        root.sort_by(|a, b| (a.time_ms, &a.event_id).cmp(&(b.time_ms, &b.event_id)));
        let mut findings = Vec::new();
        let mut explained = Vec::new();
        let mut releases: Vec<&Release> = custody.releases.iter().collect();
        releases.sort_by_key(|r| (r.time_ms, r.seq));
        let mut used = vec![false; releases.len()];
        // Explained sign-ins, in sign-in order.
        let mut sessions: Vec<Session> = Vec::new();
        let finding = |kind, e: &RootEvent, request: Option<String>, sentence: String| Finding {
            kind,
            event_id: Some(e.event_id.clone()),
            time_ms: e.time_ms,
            account: e.account.clone(),
            request,
            sentence,
        };

        // Events that no release can explain, whatever else they are.
        let mut rest = Vec::new();
        for e in root {
            match custody.accounts.get(&e.account) {
                None => findings.push(finding(
                    FindingKind::AccountNotInCustody,
                    &e,
                    None,
                    format!(
                        "root {} at {} in account {}, which this export holds no record of: find who holds that account's root credentials",
                        e.name, utc(e.time_ms), e.account
                    ),
                )),
                Some(HeldAccount {
                    removed_since_ms: Some(since),
                    ..
                }) if e.time_ms >= *since => findings.push(finding(
                    FindingKind::RootCredentialsRemovedButUsed,
                    &e,
                    None,
                    format!(
                        "root {} at {} in account {}, whose root credentials the ledger marks removed since {}: the credentials exist again or were never removed; treat as an incident",
                        e.name, utc(e.time_ms), e.account, utc(*since)
                    ),
                )),
                Some(_) => rest.push(e),
            }
        }

        // Sign-ins, in time order, each with the earliest unused release whose window holds it.
        for e in rest.iter() {
            let Action::SignIn { success, mfa } = e.action else {
                continue;
            };
            if !success {
                findings.push(finding(
                    FindingKind::FailedRootSignIn,
                    e,
                    None,
                    format!(
                        "failed root sign-in at {} to account {}: expected now and then; many in a row mean someone is trying",
                        utc(e.time_ms),
                        e.account
                    ),
                ));
                continue;
            }
            if !mfa {
                findings.push(finding(
                    FindingKind::RootSignInWithoutMfa,
                    e,
                    None,
                    format!(
                        "root signed in to account {} at {} without MFA: the key in custody was not used, so the account's MFA is off or bypassed; treat as an incident",
                        e.account,
                        utc(e.time_ms)
                    ),
                ));
                continue;
            }
            let pick = releases.iter().enumerate().position(|(i, r)| {
                !used[i]
                    && r.account == e.account
                    && r.time_ms <= e.time_ms
                    && e.time_ms <= r.time_ms.saturating_add(windows.sign_in_ms)
            });
            match pick {
                Some(i) => {
                    used[i] = true;
                    let r = releases[i];
                    sessions.push(Session {
                        account: e.account.clone(),
                        start_ms: r.time_ms,
                        signed_in_ms: e.time_ms,
                        end_ms: e.time_ms.saturating_add(windows.session_ms),
                        release: i,
                    });
                    explained.push(explain(e, r));
                }
                None => findings.push(finding(
                    FindingKind::UnexplainedRootSignIn,
                    e,
                    None,
                    format!(
                        "root signed in to account {} at {} and no code release in the {} s before explains it: find out who signed in and how they had a code",
                        e.account,
                        utc(e.time_ms),
                        windows.sign_in_ms / 1000
                    ),
                )),
            }
        }

        // Calls, against the sessions.
        for e in rest.iter() {
            let Action::Call { task } = e.action else {
                continue;
            };
            let open: Vec<&Session> = sessions
                .iter()
                .filter(|s| {
                    s.account == e.account && s.start_ms <= e.time_ms && e.time_ms <= s.end_ms
                })
                .collect();
            // Of several open sessions, a call belongs to the latest sign-in before it (or, before
            // any sign-in, to the first session).
            let current = |list: &[&Session]| -> Option<&'_ Release> {
                let s = list
                    .iter()
                    .rev()
                    .find(|s| s.signed_in_ms <= e.time_ms)
                    .or(list.first())?;
                releases.get(s.release).copied()
            };
            let Some(latest) = current(&open) else {
                findings.push(finding(
                    FindingKind::RootActionOutsideSession,
                    e,
                    None,
                    format!(
                        "root called {} at {} in account {} outside every session a release explains: someone holds root credentials (a password session or access keys) custody did not release",
                        e.name,
                        utc(e.time_ms),
                        e.account
                    ),
                ));
                continue;
            };
            let fitting: Vec<&Session> = open
                .iter()
                .copied()
                .filter(|s| {
                    task.map_or(true, |t| {
                        releases.get(s.release).and_then(|r| r.task.as_deref()) == Some(t)
                    })
                })
                .collect();
            let fits = current(&fitting);
            match fits {
                Some(r) => explained.push(explain(e, r)),
                None => findings.push(finding(
                    FindingKind::TaskMismatch,
                    e,
                    Some(latest.request.clone()),
                    format!(
                        "root called {} (task {}) at {} in account {} in the session of request {}, approved for task {}: ask the requester why, and check what else the session did",
                        e.name,
                        task.unwrap_or("?"),
                        utc(e.time_ms),
                        e.account,
                        latest.request,
                        latest.task.as_deref().unwrap_or("?")
                    ),
                )),
            }
        }

        // Releases no sign-in used, judged only when the input covers their window.
        let mut outside = 0;
        for (i, r) in releases.iter().enumerate() {
            if used[i] {
                continue;
            }
            let inside = covered.is_some_and(|(a, b)| {
                a <= r.time_ms && r.time_ms.saturating_add(windows.sign_in_ms) <= b
            });
            if !inside {
                outside += 1;
                continue;
            }
            findings.push(Finding {
                kind: FindingKind::ReleaseWithoutSignIn,
                event_id: None,
                time_ms: r.time_ms,
                account: r.account.clone(),
                request: Some(r.request.clone()),
                sentence: format!(
                    "the code of request {} was released at {} and no root sign-in to account {} followed within {} s: the code went unused or expired; nothing to do unless it happens often",
                    r.request,
                    utc(r.time_ms),
                    r.account,
                    windows.sign_in_ms / 1000
                ),
            });
        }
        findings.sort_by(|a, b| (a.time_ms, &a.event_id).cmp(&(b.time_ms, &b.event_id)));
        explained.sort_by(|a, b| (a.time_ms, &a.event_id).cmp(&(b.time_ms, &b.event_id)));
        Reconciliation {
            records,
            root_records: records - other,
            other_identities: other,
            assume_root,
            covered_ms: covered,
            releases_outside_period: outside,
            explained,
            findings,
        }
    }
}

fn explain(e: &RootEvent, r: &Release) -> Explained {
    Explained {
        event_id: e.event_id.clone(),
        time_ms: e.time_ms,
        account: e.account.clone(),
        event_name: e.name.clone(),
        request: r.request.clone(),
        task: r.task.clone(),
        approvers: r.approvers.clone(),
    }
}

/// Reconciles `records` against `custody`: [`Reconciler`] over an iterator.
pub fn reconcile(
    custody: Held,
    windows: Windows,
    records: impl IntoIterator<Item = Record>,
) -> Result<Reconciliation, RecordProblem> {
    let mut r = Reconciler::new(custody, windows);
    for rec in records {
        r.push(rec)?;
    }
    Ok(r.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::custody::cloudtrail::record::{Identity, Pick};

    const ACC: &str = "123456789012";
    const T0: i64 = 1_796_040_000_000; // 2026-11-30 12:00:00Z

    fn iso(ms: i64) -> String {
        utc(ms).replace(' ', "T")
    }

    fn rec(id: &str, ms: i64, source: &str, name: &str) -> Record {
        Record {
            event_id: Some(id.to_owned()),
            event_time: Some(iso(ms)),
            event_source: Some(source.to_owned()),
            event_name: Some(name.to_owned()),
            recipient_account_id: Some(ACC.to_owned()),
            user_identity: Identity {
                kind: Some("Root".to_owned()),
                account_id: Some(ACC.to_owned()),
                ..Identity::default()
            },
            ..Record::default()
        }
    }

    fn pick<K>(v: &str) -> Pick<K> {
        Pick::of(v)
    }

    fn sign_in(id: &str, ms: i64, result: &str, mfa: &str) -> Record {
        let mut r = rec(id, ms, "signin.amazonaws.com", "ConsoleLogin");
        r.console_login = pick(result);
        r.mfa_used = pick(mfa);
        r
    }

    fn custody(releases: &[(&str, i64, &str)]) -> Held {
        let mut accounts = BTreeMap::new();
        accounts.insert(
            ACC.to_owned(),
            HeldAccount {
                account: ACC.to_owned(),
                removed_since_ms: None,
            },
        );
        Held {
            accounts,
            releases: releases
                .iter()
                .enumerate()
                .map(|(i, (id, t, task))| Release {
                    request: (*id).to_owned(),
                    account: ACC.to_owned(),
                    task: Some((*task).to_owned()),
                    approvers: vec!["alice".into(), "bob".into()],
                    time_ms: *t,
                    seq: i as u64 + 1,
                })
                .collect(),
        }
    }

    fn kinds(r: &Reconciliation) -> Vec<&'static str> {
        r.findings.iter().map(|f| f.kind.as_str()).collect()
    }

    fn run(c: Held, records: Vec<Record>) -> Reconciliation {
        reconcile(c, Windows::default(), records).expect("reconciles")
    }

    #[test]
    fn a_sign_in_after_a_release_is_explained_with_its_session() {
        let c = custody(&[("r1", T0, "create-root-access-keys")]);
        let r = run(
            c,
            vec![
                sign_in("s1", T0 + 60_000, "Success", "Yes"),
                rec("c1", T0 + 120_000, "iam.amazonaws.com", "CreateAccessKey"),
                rec("c2", T0 + 130_000, "ec2.amazonaws.com", "DescribeRegions"),
            ],
        );
        assert!(r.findings.is_empty(), "{:?}", r.findings);
        assert_eq!(r.explained.len(), 3);
        assert!(r.explained.iter().all(|e| e.request == "r1"));
        assert!(r.clean());
    }

    #[test]
    fn window_boundaries_are_inclusive_and_a_second_past_is_not() {
        let w = Windows::default();
        for (at, explained) in [
            (T0, true),
            (T0 + w.sign_in_ms, true),
            (T0 + w.sign_in_ms + 1000, false),
            (T0 - 1000, false),
        ] {
            let c = custody(&[("r1", T0, "change-contact")]);
            let r = run(c, vec![sign_in("s", at, "Success", "Yes")]);
            assert_eq!(r.explained.len() == 1, explained, "sign-in at {}", iso(at));
        }
        // The session ends `session_ms` after the sign-in, inclusive.
        let c = custody(&[("r1", T0, "change-contact")]);
        let r = run(
            c,
            vec![
                sign_in("s", T0, "Success", "Yes"),
                rec("in", T0 + w.session_ms, "ec2.amazonaws.com", "RunInstances"),
                rec(
                    "out",
                    T0 + w.session_ms + 1000,
                    "ec2.amazonaws.com",
                    "RunInstances",
                ),
            ],
        );
        assert_eq!(kinds(&r), ["root_action_outside_session"]);
        assert_eq!(r.findings[0].event_id.as_deref(), Some("out"));
    }

    #[test]
    fn one_release_explains_one_sign_in_only() {
        let c = custody(&[("r1", T0, "change-contact")]);
        let r = run(
            c,
            vec![
                sign_in("s2", T0 + 90_000, "Success", "Yes"),
                sign_in("s1", T0 + 30_000, "Success", "Yes"),
            ],
        );
        assert_eq!(r.explained.len(), 1);
        assert_eq!(
            r.explained[0].event_id, "s1",
            "the earliest sign-in uses it"
        );
        assert_eq!(kinds(&r), ["unexplained_root_sign_in"]);
        assert!(!r.clean());
        // Two releases, two sign-ins: both explained, each by its own.
        let c = custody(&[
            ("r1", T0, "change-contact"),
            ("r2", T0 + 60_000, "change-contact"),
        ]);
        let r = run(
            c,
            vec![
                sign_in("s1", T0 + 70_000, "Success", "Yes"),
                sign_in("s2", T0 + 80_000, "Success", "Yes"),
            ],
        );
        assert!(r.findings.is_empty(), "{:?}", r.findings);
        let reqs: Vec<&str> = r.explained.iter().map(|e| e.request.as_str()).collect();
        assert_eq!(reqs, ["r1", "r2"]);
    }

    #[test]
    fn each_finding_kind_comes_from_its_record() {
        let mut c = custody(&[
            ("r1", T0, "change-contact"),
            ("r9", T0 + 3_000_000, "other"),
        ]);
        c.accounts.insert(
            "210987654321".into(),
            HeldAccount {
                account: "210987654321".into(),
                removed_since_ms: Some(T0 - 1),
            },
        );
        let mut stranger = sign_in("x1", T0 + 10, "Success", "Yes");
        stranger.recipient_account_id = Some("999999999999".into());
        let mut removed = rec("x2", T0 + 20, "iam.amazonaws.com", "ListUsers");
        removed.recipient_account_id = Some("210987654321".into());
        let mut assumed = removed.clone();
        assumed.event_id = Some("x3".into());
        assumed.user_identity.assumed_root = pick("true");
        let mut other = rec("x4", T0 + 3_900_000, "iam.amazonaws.com", "ListUsers");
        other.user_identity.kind = Some("IAMUser".into());
        let r = run(
            c,
            vec![
                sign_in("a", T0 + 1000, "Success", "Yes"),
                rec("b", T0 + 2000, "iam.amazonaws.com", "CreateAccessKey"),
                sign_in("c", T0 + 3000, "Failure", "No"),
                sign_in("d", T0 + 4000, "Success", "No"),
                rec("e", T0 - 5000, "ec2.amazonaws.com", "RunInstances"),
                stranger,
                removed,
                assumed,
                other,
            ],
        );
        let mut got = kinds(&r);
        got.sort_unstable();
        assert_eq!(
            got,
            [
                "account_not_in_custody",
                "failed_root_sign_in",
                "release_without_sign_in",
                "root_action_outside_session",
                "root_credentials_removed_but_used",
                "root_sign_in_without_mfa",
                "task_mismatch",
            ]
        );
        let mismatch = r
            .findings
            .iter()
            .find(|f| f.kind == FindingKind::TaskMismatch)
            .expect("mismatch");
        assert_eq!(mismatch.request.as_deref(), Some("r1"));
        assert!(
            mismatch.sentence.contains("create-root-access-keys"),
            "{}",
            mismatch.sentence
        );
        assert!(
            mismatch.sentence.contains("change-contact"),
            "{}",
            mismatch.sentence
        );
        assert_eq!(r.assume_root, 1);
        assert_eq!(r.other_identities, 1);
        assert_eq!(r.records, 9);
        assert_eq!(r.explained.len(), 1);
    }

    #[test]
    fn informational_findings_alone_leave_it_clean_and_uncovered_releases_are_not_judged() {
        let c = custody(&[
            ("r1", T0, "change-contact"),
            ("old", T0 - 86_400_000, "change-contact"),
        ]);
        let r = run(
            c,
            vec![
                sign_in("f", T0 - 1000, "Failure", "No"),
                sign_in("late", T0 + 400_000, "Failure", "No"),
            ],
        );
        assert_eq!(
            kinds(&r),
            [
                "failed_root_sign_in",
                "release_without_sign_in",
                "failed_root_sign_in"
            ]
        );
        assert!(r.clean());
        assert_eq!(r.releases_outside_period, 1);
    }

    #[test]
    fn fail_root_records_without_what_matching_needs() {
        let c = custody(&[]);
        let mut no_time = rec("n", T0, "iam.amazonaws.com", "ListUsers");
        no_time.event_time = None;
        let e = reconcile(c.clone(), Windows::default(), [no_time]).expect_err("refused");
        assert!(e.to_string().contains("eventTime"), "{e}");
        let mut bad_time = rec("n", T0, "iam.amazonaws.com", "ListUsers");
        bad_time.event_time = Some("yesterday".into());
        assert!(matches!(
            reconcile(c.clone(), Windows::default(), [bad_time]),
            Err(RecordProblem::BadTime { .. })
        ));
        let mut no_id = rec("n", T0, "iam.amazonaws.com", "ListUsers");
        no_id.event_id = None;
        assert!(reconcile(c.clone(), Windows::default(), [no_id]).is_err());
        // Other identities need none of it.
        let mut other = Record::default();
        other.user_identity.kind = Some("AssumedRole".into());
        assert!(reconcile(c, Windows::default(), [other, Record::default()]).is_ok());
    }
}
