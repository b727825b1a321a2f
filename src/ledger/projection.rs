//! Current-state projections: tables derived from events, written in the same transaction as
//! the event, and re-derivable by replaying the events (`custody ledger verify` proves they are).
//!
//! A [`Projection`] declares its tables (DDL), the event kinds it consumes, and an applier that
//! must be a pure function of the event and the projection's own tables. The [`Projections`]
//! registry maps each kind to at most one projection. [`LedgerProjection`] is the ledger's own:
//! `users` (fed by genesis and re-share) and `keyring_generations`.

use std::collections::BTreeMap;

use rusqlite::{params, Connection};
use serde_json::Value;

use super::error::LedgerError;
use super::event::{kinds, StoredEvent};

/// Why a projection could not apply an event.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    /// SQL failed.
    #[error("SQL failed: {0}")]
    Sql(#[from] rusqlite::Error),
    /// The event body lacks a field or has the wrong shape for this kind.
    #[error("body field {field}: {reason}")]
    Body {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
}

/// A current-state projection of events.
pub trait Projection: Send + Sync {
    /// A short stable name, used in errors.
    fn name(&self) -> &'static str;
    /// `CREATE TABLE IF NOT EXISTS ...` statements for its tables.
    fn schema(&self) -> &'static str;
    /// The tables it owns; compared against a replay by `verify`.
    fn tables(&self) -> &'static [&'static str];
    /// The event kinds it consumes.
    fn kinds(&self) -> &'static [&'static str];
    /// Writes the event's effect into its tables. Runs inside the append transaction.
    fn apply(&self, conn: &Connection, event: &StoredEvent) -> Result<(), ApplyError>;
}

/// The registry of projections; one applier per event kind.
pub struct Projections {
    all: Vec<Box<dyn Projection>>,
    by_kind: BTreeMap<&'static str, usize>,
}

impl std::fmt::Debug for Projections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.all.iter().map(|p| p.name()))
            .finish()
    }
}

impl Projections {
    /// Only the ledger's own projection.
    pub fn ledger_only() -> Self {
        let mut p = Self {
            all: Vec::new(),
            by_kind: BTreeMap::new(),
        };
        // The first registration cannot conflict.
        let _ = p.register(Box::new(LedgerProjection));
        p
    }

    /// Adds a projection; fails if one of its kinds is already claimed.
    pub fn register(&mut self, projection: Box<dyn Projection>) -> Result<(), LedgerError> {
        for kind in projection.kinds() {
            if let Some(&i) = self.by_kind.get(kind) {
                return Err(LedgerError::ProjectionConflict {
                    kind: (*kind).to_owned(),
                    first: self.all.get(i).map(|p| p.name()).unwrap_or("?"),
                    second: projection.name(),
                });
            }
        }
        let index = self.all.len();
        for kind in projection.kinds() {
            self.by_kind.insert(kind, index);
        }
        self.all.push(projection);
        Ok(())
    }

    /// Creates every projection's tables.
    pub(crate) fn create_tables(&self, conn: &Connection) -> Result<(), rusqlite::Error> {
        for p in &self.all {
            conn.execute_batch(p.schema())?;
        }
        Ok(())
    }

    /// Applies the event to the projection registered for its kind (none: no effect).
    pub(crate) fn apply(&self, conn: &Connection, event: &StoredEvent) -> Result<(), LedgerError> {
        let Some(p) = self
            .by_kind
            .get(event.header.kind.as_str())
            .and_then(|&i| self.all.get(i))
        else {
            return Ok(());
        };
        p.apply(conn, event)
            .map_err(|source| LedgerError::Projection {
                projection: p.name(),
                seq: event.header.seq,
                kind: event.header.kind.as_str().to_owned(),
                source,
            })
    }

    /// All projection tables.
    /// Whether a projection is registered for events of `kind` (an event of another kind
    /// changes no table, and a replay can pass it by).
    pub(crate) fn consumes(&self, kind: &str) -> bool {
        self.by_kind.contains_key(kind)
    }

    pub(crate) fn tables(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.all.iter().flat_map(|p| p.tables().iter().copied())
    }
}

/// The ledger's own projection: officers as users, and keyring generations.
#[derive(Debug, Clone, Copy)]
pub struct LedgerProjection;

fn body_field<'a>(body: &'a Value, field: &'static str) -> Result<&'a Value, ApplyError> {
    body.get(field).ok_or(ApplyError::Body {
        field,
        reason: "missing",
    })
}

fn names(body: &Value, field: &'static str) -> Result<Vec<String>, ApplyError> {
    match body.get(field) {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str().map(str::to_owned).ok_or(ApplyError::Body {
                    field,
                    reason: "expected an array of strings",
                })
            })
            .collect(),
        Some(_) => Err(ApplyError::Body {
            field,
            reason: "expected an array of strings",
        }),
    }
}

fn int(body: &Value, field: &'static str) -> Result<i64, ApplyError> {
    body_field(body, field)?.as_i64().ok_or(ApplyError::Body {
        field,
        reason: "expected an integer",
    })
}

impl Projection for LedgerProjection {
    fn name(&self) -> &'static str {
        "ledger"
    }

    fn schema(&self) -> &'static str {
        "CREATE TABLE IF NOT EXISTS users (
            name TEXT PRIMARY KEY NOT NULL,
            roles TEXT NOT NULL,
            active INTEGER NOT NULL,
            since_seq INTEGER NOT NULL
         ) STRICT;
         CREATE TABLE IF NOT EXISTS keyring_generations (
            generation INTEGER PRIMARY KEY NOT NULL,
            threshold INTEGER NOT NULL,
            officers TEXT NOT NULL,
            seq INTEGER NOT NULL
         ) STRICT;"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["users", "keyring_generations"]
    }

    fn kinds(&self) -> &'static [&'static str] {
        &[kinds::GENESIS, kinds::RESHARE]
    }

    fn apply(&self, conn: &Connection, event: &StoredEvent) -> Result<(), ApplyError> {
        let body = event.body.to_value();
        let seq = i64::try_from(event.header.seq).unwrap_or(i64::MAX);
        let officers = names(&body, "officers")?;
        let generation = int(&body, "generation")?;
        let threshold = int(&body, "threshold")?;
        if event.header.kind.as_str() == kinds::RESHARE {
            for removed in names(&body, "removed")? {
                conn.execute(
                    "UPDATE users SET active = 0, since_seq = ?2 WHERE name = ?1",
                    params![removed, seq],
                )?;
            }
        }
        for name in &officers {
            conn.execute(
                "INSERT INTO users (name, roles, active, since_seq) VALUES (?1, 'officer', 1, ?2)
                 ON CONFLICT(name) DO UPDATE SET active = 1,
                   since_seq = CASE WHEN active = 1 THEN since_seq ELSE excluded.since_seq END",
                params![name, seq],
            )?;
        }
        conn.execute(
            "INSERT INTO keyring_generations (generation, threshold, officers, seq)
             VALUES (?1, ?2, ?3, ?4)",
            params![generation, threshold, officers.join(","), seq],
        )?;
        Ok(())
    }
}
