//! The authorization matrix through a real `custodyd` socket: every daemon operation × the
//! role of the person named in it (officer, operator, auditor, unknown, suspended) × the
//! relation that matters for it (own request or another's, oneself or another user), compared
//! cell by cell with the table "Authorization matrix" in docs/daemon.md. The table is parsed
//! from the page, so the documentation and the daemon cannot drift apart; the list of
//! operations is read from `Op::name` in src/daemon/protocol.rs, so a new operation without
//! a row fails too.
//!
//! No card is present: operations that would go on to a card after authorization show the
//! first refusal past it (`unknown_device`, `device_not_checked_out`, ...), which is what
//! proves the caller was let through. The figures line is
//! `authz: cells=N ok=N refused=N skipped=N mismatches=0`.
//!
//! `CUSTODY_AUTHZ_PRINT=1` prints the observed table in the page's form.

use crate::support;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};
use support::custodyd::{outcome, seen, user_pass, Conn, Custodyd, Factors};

const ROLES: [&str; 6] = [
    "officer",
    "operator",
    "auditor",
    "unknown",
    "suspended",
    "anonymous",
];
const ACCOUNT: &str = "123456789012";
const SEED: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
const NO_DEVICE: u32 = 99_999_999;
const NO_DEVICE_2: u32 = 99_999_998;
/// Officers in the keyring: each may authenticate twice per 30-second step, so a pool this
/// size runs the matrix without waiting for steps.
const POOL: usize = 200;

struct Matrix {
    d: Custodyd,
    c: Conn,
    f: Factors,
    /// Officers still usable as actors.
    pool: Vec<String>,
    n: u32,
    /// Requests made before their requester changed: ava's (now an auditor), sam's (now
    /// suspended), by operation.
    own: BTreeMap<(&'static str, &'static str), String>,
    /// Login sessions by person: the token, or the login's refusal.
    sessions: BTreeMap<String, Result<String, String>>,
    /// What an approving officer is shown of each request made (its `seen` digest).
    shown: BTreeMap<String, String>,
}

/// Genesis, unseal and the cast: `POOL` officers (`o00`..), `zed` in the keyring but not yet
/// a custody user, `oscar` (operator), `rita` (operator, the other requester), `ava` (made
/// requests as an operator, now an auditor), `sam` (a keyring officer who made requests, now
/// suspended), `nobody` (unknown). One account, no devices.
fn setup(dir: &std::path::Path) -> Matrix {
    let mut names: Vec<String> = (0..POOL).map(|i| format!("o{i:02}")).collect();
    names.push("sam".into());
    names.push("zed".into());
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let d = Custodyd::start(dir, &refs, "info", "");
    let mut c = d.connect();
    let mut f = d.factors();
    d.unseal_and_bootstrap(&mut c, &mut f, &["zed"]);
    let mut m = Matrix {
        d,
        c,
        f,
        pool: names[..POOL].to_vec(),
        n: 0,
        own: BTreeMap::new(),
        sessions: BTreeMap::new(),
        shown: BTreeMap::new(),
    };
    for (who, roles) in [
        ("oscar", vec!["operator"]),
        ("rita", vec!["operator"]),
        ("ava", vec!["operator"]),
    ] {
        let a = m.officer(&[]);
        let by = m.f.auth(&a);
        let r = m.c.call(json!({"user_add": {"by": [by], "name": who, "roles": roles, "passphrase": user_pass(who)}}));
        assert_eq!(outcome(&r), "ok", "add {who}: {r}");
    }
    let a = m.officer(&[]);
    let by = m.f.auth(&a);
    let r = m.c.call(json!({"account_add": {"by": by, "provider": "aws", "account": ACCOUNT, "alias": "prod", "root_email": "root@example.test", "credential": "AWS:root@example.test"}}));
    assert_eq!(outcome(&r), "ok", "{r}");
    for op in [
        "approve",
        "deny",
        "cancel",
        "code",
        "cancel_session",
        "request_show",
    ] {
        let id = m.request("ava");
        if op == "code" {
            m.approve_twice(&id);
        }
        m.own.insert(("auditor", op), id);
    }
    // Refused at authentication, sam's request never changes: one serves every cell (and
    // spares sam's second factor).
    let id = m.request("sam");
    m.approve_twice(&id);
    for op in [
        "approve",
        "deny",
        "cancel",
        "code",
        "cancel_session",
        "request_show",
    ] {
        m.own.insert(("suspended", op), id.clone());
    }
    let a = m.officer(&[]);
    let b = m.officer(&[&a]);
    let by = json!([m.f.auth(&a), m.f.auth(&b)]);
    let r =
        m.c.call(json!({"user_set_roles": {"by": by, "name": "ava", "roles": ["auditor"]}}));
    assert_eq!(outcome(&r), "ok", "{r}");
    let by = json!([m.f.auth(&a), m.f.auth(&b)]);
    let r =
        m.c.call(json!({"user_set_active": {"by": by, "name": "sam", "active": false}}));
    assert_eq!(outcome(&r), "ok", "{r}");
    m
}

impl Matrix {
    fn fresh(&mut self, prefix: &str) -> String {
        self.n += 1;
        format!("{prefix}{}", self.n)
    }

    /// An officer of the pool with a factor step left now, not in `except`.
    fn officer(&mut self, except: &[&str]) -> String {
        let pick = self
            .pool
            .iter()
            .find(|o| !except.contains(&o.as_str()) && self.f.left(o) == 2)
            .or_else(|| {
                self.pool
                    .iter()
                    .find(|o| !except.contains(&o.as_str()) && self.f.available(o))
            })
            .or_else(|| self.pool.iter().find(|o| !except.contains(&o.as_str())))
            .expect("an officer is left in the pool")
            .clone();
        pick
    }

    /// `who`'s login session (opened at the first use), or the refusal of the login.
    fn token(&mut self, who: &str) -> Result<String, String> {
        if let Some(t) = self.sessions.get(who) {
            return t.clone();
        }
        let by = self.auth(who);
        let r = self.c.call(json!({"login": {"by": by}}));
        let t = match r["result"]["ok"]["session"]["token"].as_str() {
            Some(t) => Ok(t.to_owned()),
            None => Err(outcome(&r)),
        };
        self.sessions.insert(who.to_owned(), t.clone());
        t
    }

    /// The read `op` as sent (`request_show` names a request of the `case`).
    fn read_op(&mut self, op: &'static str, case: &str, role: &'static str, actor: &str) -> Value {
        match op {
            "request_show" => {
                let id = match (case, role) {
                    ("own", "auditor" | "suspended") => self.own[&(role, op)].clone(),
                    ("own", "officer" | "operator") => self.request(actor),
                    _ => self.request("rita"),
                };
                json!({"request_show": {"request": id}})
            }
            "account_show" => json!({"account_show": {"account": ACCOUNT}}),
            "device_show" => json!({"device_show": {"serial": NO_DEVICE}}),
            _ => json!(op),
        }
    }

    /// The person acting in `role`'s column.
    fn actor(&mut self, role: &str, except: &[&str]) -> String {
        match role {
            "officer" => self.officer(except),
            "operator" => "oscar".into(),
            "auditor" => "ava".into(),
            "unknown" => "nobody".into(),
            "suspended" => "sam".into(),
            "anonymous" => String::new(),
            other => panic!("role {other}"),
        }
    }

    /// The actor's `Auth`: sam is refused for being suspended before any factor check, so
    /// sam's factor is never spent.
    fn auth(&mut self, who: &str) -> Value {
        if who == "sam" && !self.pool.iter().any(|o| o == "sam") {
            self.f.auth_unspent(who)
        } else {
            self.f.auth(who)
        }
    }

    fn request(&mut self, by: &str) -> String {
        let by = self.f.auth(by);
        let r = self.c.call(json!({"request_code": {"by": by, "account": ACCOUNT, "task": "change-root-password", "ticket": "SEC-42", "reason": "rotate the root password after the audit"}}));
        assert_eq!(outcome(&r), "ok", "request: {r}");
        let id = r["result"]["ok"]["request"]["id"]
            .as_str()
            .expect("id")
            .to_owned();
        self.shown
            .insert(id.clone(), seen(&r["result"]["ok"]["request"]));
        id
    }

    fn approve_twice(&mut self, id: &str) {
        let a = self.officer(&[]);
        let b = self.officer(&[&a]);
        for o in [a, b] {
            let by = self.f.auth(&o);
            let seen = self.shown[id].clone();
            let r = self
                .c
                .call(json!({"approve": {"by": by, "request": id, "seen": seen}}));
            assert_eq!(outcome(&r), "ok", "approve: {r}");
        }
    }

    fn new_account(&mut self) -> String {
        self.n += 1;
        let account = format!("{:012}", 200_000_000_000u64 + u64::from(self.n));
        let a = self.officer(&[]);
        let by = self.f.auth(&a);
        let r = self.c.call(json!({"account_add": {"by": by, "provider": "aws", "account": account, "alias": format!("a{}", self.n), "root_email": format!("root{}@example.test", self.n), "credential": format!("AWS:root{}@example.test", self.n)}}));
        assert_eq!(outcome(&r), "ok", "{r}");
        account
    }

    fn new_operator(&mut self) -> String {
        let name = self.fresh("t");
        let a = self.officer(&[]);
        let by = self.f.auth(&a);
        let r = self.c.call(json!({"user_add": {"by": [by], "name": name, "roles": ["operator"], "passphrase": user_pass(&name)}}));
        assert_eq!(outcome(&r), "ok", "{r}");
        name
    }

    /// The request the actor of `role` acts on: their own, or rita's.
    fn target_request(
        &mut self,
        op: &'static str,
        case: &str,
        role: &'static str,
        actor: &str,
        approved: bool,
    ) -> Option<String> {
        let id = match (case, role) {
            ("other", _) => self.request("rita"),
            ("own", "unknown") => return None,
            ("own", "auditor" | "suspended") => return self.own.get(&(role, op)).cloned(),
            ("own", _) => self.request(actor),
            _ => panic!("case {case}"),
        };
        if approved {
            self.approve_twice(&id);
        }
        Some(id)
    }

    /// Two-officer operations: a pool officer and the actor under test.
    fn pair(&mut self, actor: &str) -> Value {
        let a = self.officer(&[actor]);
        let first = self.f.auth(&a);
        json!([first, self.auth(actor)])
    }

    /// Runs one cell; `None` when the relation cannot exist (an unknown person's own
    /// request).
    fn cell(&mut self, op: &'static str, case: &str, role: &'static str) -> Option<String> {
        const READS: &[&str] = &[
            "users",
            "accounts",
            "devices",
            "requests",
            "incidents",
            "checkpoint",
            "export",
            "request_show",
            "account_show",
            "device_show",
            "whoami",
        ];
        let actor = self.actor(role, &[]);
        if role == "anonymous" {
            // No session and no credentials: only the minimal status (and forgetting unseal
            // shares) is served.
            let r = match (op, case) {
                ("status" | "logout", "-") => self.c.call(json!(op)),
                ("unseal_reset", "-") => {
                    let name = self.d.officers[0].clone();
                    self.c.call(json!({"unseal_reset": {"officer": name, "passphrase": support::custodyd::unseal_pass(&name)}}))
                }
                (op, _) if READS.contains(&op) => {
                    let req = self.read_op(op, case, role, "");
                    self.c.call(req)
                }
                ("cancel", "session") => {
                    let id = self.request("rita");
                    self.c.call(json!({"cancel": {"request": id}}))
                }
                _ => return None,
            };
            return Some(outcome(&r));
        }
        if READS.contains(&op) || op == "logout" || (op, case) == ("cancel", "session") {
            let token = match self.token(&actor) {
                Ok(t) => t,
                Err(refusal) => return Some(refusal),
            };
            let req = match (op, case) {
                ("logout", _) => json!("logout"),
                ("cancel", _) => {
                    let id = match (case, role) {
                        (_, "auditor" | "suspended") => self.own[&(role, "cancel_session")].clone(),
                        _ => self.request(&actor),
                    };
                    json!({"cancel": {"request": id}})
                }
                _ => self.read_op(op, case, role, &actor),
            };
            let r = self.c.call_as(req, &token);
            if op == "logout" {
                self.sessions.remove(&actor);
            }
            return Some(outcome(&r));
        }
        let r = match (op, case) {
            ("status", "-") => self.c.call(json!(op)),
            ("unseal_reset", "-") => {
                let name = self.d.officers[0].clone();
                self.c.call(json!({"unseal_reset": {"officer": name, "passphrase": support::custodyd::unseal_pass(&name)}}))
            }
            ("login", "-") => {
                let by = self.auth(&actor);
                let r = self.c.call(json!({"login": {"by": by}}));
                if let Some(t) = r["result"]["ok"]["session"]["token"].as_str() {
                    self.sessions.insert(actor.clone(), Ok(t.to_owned()));
                }
                r
            }
            ("seal", "-") => {
                let by = self.auth(&actor);
                let r = self.c.call(json!({"seal": {"by": by}}));
                if outcome(&r) == "ok" {
                    // Sealing ended every session.
                    self.sessions.clear();
                    self.d.unseal(&mut self.c);
                }
                r
            }
            ("unseal", "-") => {
                let o = self.officer(&[]);
                let by = self.f.auth(&o);
                let r = self.c.call(json!({"seal": {"by": by}}));
                assert_eq!(outcome(&r), "ok", "{r}");
                self.sessions.clear();
                let name = if role == "officer" {
                    "zed".to_owned()
                } else {
                    actor.clone()
                };
                let r = self.c.call(json!({"unseal": {"officer": name, "passphrase": support::custodyd::unseal_pass(&name)}}));
                let keyring_officer = self.d.officers[0].clone();
                let reset = self.c.call(json!({"unseal_reset": {"officer": keyring_officer, "passphrase": support::custodyd::unseal_pass(&keyring_officer)}}));
                assert_eq!(outcome(&reset), "ok", "{reset}");
                self.d.unseal(&mut self.c);
                r
            }
            ("bootstrap_officer", "-") => {
                let name = if role == "officer" {
                    "zed".to_owned()
                } else {
                    actor.clone()
                };
                self.c.call(
                    json!({"bootstrap_officer": {"user": name, "keyring_passphrase": support::custodyd::unseal_pass(&name), "passphrase": user_pass(&name)}}),
                )
            }
            ("user_add", "operator") => {
                let by = self.auth(&actor);
                let name = self.fresh("u");
                self.c.call(json!({"user_add": {"by": [by], "name": name, "roles": ["operator"], "passphrase": user_pass(&name)}}))
            }
            ("user_add", "officer") => {
                let by = self.pair(&actor);
                let name = self.fresh("u");
                self.c.call(json!({"user_add": {"by": by, "name": name, "roles": ["officer"], "passphrase": user_pass(&name)}}))
            }
            ("account_add", "-") => {
                self.n += 1;
                let n = self.n;
                let by = self.auth(&actor);
                self.c.call(json!({"account_add": {"by": by, "provider": "aws", "account": format!("{:012}", 300_000_000_000u64 + u64::from(n)), "alias": format!("b{n}"), "root_email": format!("r{n}@example.test"), "credential": format!("AWS:r{n}@example.test")}}))
            }
            ("request_code", "-") => {
                let by = self.auth(&actor);
                self.c.call(json!({"request_code": {"by": by, "account": ACCOUNT, "task": "change-root-password", "ticket": "SEC-42", "reason": "rotate the root password after the audit"}}))
            }
            ("approve" | "deny" | "cancel" | "code", "own" | "other") => {
                let id = self.target_request(op, case, role, &actor, op == "code")?;
                let by = self.auth(&actor);
                match op {
                    "deny" => self
                        .c
                        .call(json!({"deny": {"by": by, "request": id, "note": "not now"}})),
                    "approve" => {
                        let seen = self.shown.get(&id).cloned().unwrap_or_default();
                        self.c
                            .call(json!({"approve": {"by": by, "request": id, "seen": seen}}))
                    }
                    _ => self.c.call(json!({ op: {"by": by, "request": id}})),
                }
            }
            ("device_register", "-") => {
                let by = self.auth(&actor);
                self.c.call(
                    json!({"device_register": {"by": by, "serial": NO_DEVICE, "role": "primary"}}),
                )
            }
            ("enrol", "-") => {
                let by = self.pair(&actor);
                self.c.call(json!({"enrol": {"by": by, "account": ACCOUNT, "primary": NO_DEVICE_2, "backup": NO_DEVICE, "seed": SEED}}))
            }
            ("checkout", "-") => {
                let by = self.auth(&actor);
                self.c
                    .call(json!({"checkout": {"by": by, "serial": NO_DEVICE, "seal": "SEAL-1"}}))
            }
            ("checkin", "-") => {
                let by = self.auth(&actor);
                self.c.call(json!({"checkin": {"by": by, "serial": NO_DEVICE, "seal": "SEAL-2", "location": "safe 1"}}))
            }
            ("inventory", "-") => {
                let by = self.auth(&actor);
                self.c
                    .call(json!({"inventory": {"by": by, "presented": []}}))
            }
            ("user_set_active" | "user_set_roles", "self" | "other") => {
                let target = if case == "self" {
                    actor.clone()
                } else {
                    self.new_operator()
                };
                let by = self.pair(&actor);
                let r = if op == "user_set_active" {
                    self.c.call(
                        json!({"user_set_active": {"by": by, "name": target, "active": false}}),
                    )
                } else {
                    self.c.call(json!({"user_set_roles": {"by": by, "name": target, "roles": ["operator"]}}))
                };
                if role == "officer" && case == "self" && outcome(&r) == "ok" {
                    // No longer an active officer: out of the pool.
                    self.pool.retain(|o| o != &actor);
                    self.sessions.remove(&actor);
                }
                r
            }
            ("user_bind_uid" | "user_unlock", "self" | "other") => {
                let target = if case == "self" {
                    actor.clone()
                } else {
                    self.new_operator()
                };
                let by = self.pair(&actor);
                if op == "user_bind_uid" {
                    self.c
                        .call(json!({"user_bind_uid": {"by": by, "name": target, "uid": 4242}}))
                } else {
                    self.c
                        .call(json!({"user_unlock": {"by": by, "name": target}}))
                }
            }
            ("incident_ack", "-") => {
                let by = self.pair(&actor);
                self.c.call(json!({"incident_ack": {"by": by, "incident": "inc-00000000000000aa", "note": "checked"}}))
            }
            ("device_lock", "-") => {
                let by = self.pair(&actor);
                self.c
                    .call(json!({"device_lock": {"by": by, "serial": NO_DEVICE}}))
            }
            ("approval_challenge", "-") => {
                // Passphrase only: the signature takes the second factor's place.
                let by = json!({"user": actor, "passphrase": user_pass(&actor)});
                self.c.call(
                    json!({"approval_challenge": {"by": by, "request": "req-00000000000000aa"}}),
                )
            }
            ("presence_challenge", "-") => {
                let by = json!({"user": actor, "passphrase": user_pass(&actor)});
                let digest = "0".repeat(64);
                self.c
                    .call(json!({"presence_challenge": {"by": by, "digest": digest}}))
            }
            ("officer_key_register", "-") => {
                let by = self.pair(&actor);
                self.c.call(json!({"officer_key_register": {"by": by, "serial": NO_DEVICE, "spki": "AAAA", "slot_certificate": "AAAA", "device_certificate": "AAAA"}}))
            }
            ("officer_key_remove", "-") => {
                let by = self.pair(&actor);
                self.c.call(json!({"officer_key_remove": {"by": by}}))
            }
            ("device_attest", "-") => {
                let by = self.pair(&actor);
                self.c
                    .call(json!({"device_attest": {"by": by, "serial": NO_DEVICE}}))
            }
            ("device_set_terminal", "-") => {
                let by = self.pair(&actor);
                self.c.call(json!({"device_set_terminal": {"by": by, "serial": NO_DEVICE, "to": "retired"}}))
            }
            ("account_set_password", "-") => {
                let account = self.new_account();
                let by = self.pair(&actor);
                self.c.call(json!({"account_set_password": {"by": by, "account": account, "generate": true}}))
            }
            ("account_set_status" | "release", "-") => {
                let account = self.new_account();
                let by = self.pair(&actor);
                if op == "release" {
                    self.c
                        .call(json!({"release": {"by": by, "account": account}}))
                } else {
                    self.c.call(json!({"account_set_status": {"by": by, "account": account, "status": "root_credentials_removed"}}))
                }
            }
            _ => panic!("no driver for the row {op} / {case}: add one to tests/it/daemon/authz.rs"),
        };
        Some(outcome(&r))
    }
}

/// The rows of the table "Authorization matrix" in docs/daemon.md: (op, case) → cells.
fn documented() -> Vec<(String, String, Vec<String>)> {
    let page =
        std::fs::read_to_string(support::repo().join("docs/daemon.md")).expect("docs/daemon.md");
    let start = page
        .find("## Authorization matrix")
        .expect("docs/daemon.md has a section \"Authorization matrix\"");
    let mut rows = Vec::new();
    let mut header_seen = false;
    for line in page[start..].lines().skip(1) {
        if line.starts_with("## ") {
            break;
        }
        let Some(inner) = line.trim().strip_prefix('|') else {
            continue;
        };
        let cells: Vec<String> = inner
            .trim_end_matches('|')
            .split('|')
            .map(|c| c.trim().trim_matches('`').to_owned())
            .collect();
        if !header_seen {
            assert_eq!(
                cells,
                [
                    "op",
                    "case",
                    "officer",
                    "operator",
                    "auditor",
                    "unknown",
                    "suspended",
                    "anonymous"
                ],
                "the matrix's header"
            );
            header_seen = true;
            continue;
        }
        if cells
            .iter()
            .all(|c| c.chars().all(|ch| ch == '-' || ch == ':'))
        {
            continue;
        }
        assert_eq!(cells.len(), 8, "a row of 8 cells: {line}");
        rows.push((cells[0].clone(), cells[1].clone(), cells[2..].to_vec()));
    }
    assert!(header_seen, "the matrix has a table");
    rows
}

/// Every operation's wire name, from `Op::name` in the protocol's source.
fn protocol_ops() -> BTreeSet<String> {
    let src = std::fs::read_to_string(support::repo().join("src/daemon/protocol.rs"))
        .expect("protocol.rs");
    let start = src.find("pub fn name(&self)").expect("Op::name");
    let end = start + src[start..].find("\n    }\n").expect("end of Op::name");
    src[start..end]
        .lines()
        .filter_map(|l| l.split("=> \"").nth(1))
        .map(|s| s.trim_end_matches("\",").to_owned())
        .collect()
}

#[test]
fn authz_matrix_over_the_socket_matches_the_documented_table() {
    let rows = documented();
    let ops = protocol_ops();
    assert!(ops.len() >= 30, "read the operations: {ops:?}");
    let in_doc: BTreeSet<String> = rows.iter().map(|r| r.0.clone()).collect();
    let missing: Vec<&String> = ops.difference(&in_doc).collect();
    assert!(
        missing.is_empty(),
        "operations without a row in docs/daemon.md's matrix: {missing:?}"
    );
    let unknown: Vec<&String> = in_doc.difference(&ops).collect();
    assert!(
        unknown.is_empty(),
        "rows for operations the protocol does not have: {unknown:?}"
    );

    let tmp = tempfile::tempdir().expect("tmp");
    let started = std::time::Instant::now();
    let mut m = setup(tmp.path());
    let print = std::env::var_os("CUSTODY_AUTHZ_PRINT").is_some();
    let (mut cells, mut oks, mut refused, mut skipped) = (0, 0, 0, 0);
    let mut mismatches = Vec::new();
    let mut table = Vec::new();
    for (op, case, expected) in &rows {
        let op: &'static str = ops
            .get(op)
            .map(|s| &*Box::leak(s.clone().into_boxed_str()))
            .expect("op");
        // The officer column last: its successes change state the others must not see.
        let mut got = vec![String::new(); ROLES.len()];
        for i in [1, 2, 3, 4, 5, 0] {
            let role = ROLES[i];
            if print {
                eprintln!("{:?} {op} {case} {role}", started.elapsed());
            }
            got[i] = match m.cell(op, case, role) {
                Some(o) => o,
                None => "-".into(),
            };
        }
        for (i, role) in ROLES.iter().enumerate() {
            cells += 1;
            match got[i].as_str() {
                "-" => skipped += 1,
                "ok" => oks += 1,
                _ => refused += 1,
            }
            if got[i] != expected[i] {
                mismatches.push(format!(
                    "{op} / {case} / {role}: documented {:?}, the daemon answered {:?}",
                    expected[i], got[i]
                ));
            }
        }
        table.push(format!(
            "| `{op}` | {case} | {} |",
            got.iter()
                .map(|g| format!("`{g}`"))
                .collect::<Vec<_>>()
                .join(" | ")
        ));
    }
    if print {
        println!("{}", table.join("\n"));
    }
    println!(
        "authz: cells={cells} ok={oks} refused={refused} skipped={skipped} mismatches={}",
        mismatches.len()
    );
    assert!(
        mismatches.is_empty(),
        "docs/daemon.md's matrix differs:\n{}",
        mismatches.join("\n")
    );
    let verify = std::process::Command::new(env!("CARGO_BIN_EXE_custody"))
        .args(["--socket", &m.d.socket.to_string_lossy(), "status"])
        .output()
        .expect("custody status");
    assert!(verify.status.success(), "the daemon still answers");
    m.d.stop();
}
