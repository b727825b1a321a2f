//! The ledger store: an SQLCipher database of hash-chained events, projections and checkpoints,
//! opened with a key derived from the master secret that a quorum of officers unseals.
//!
//! Files in the ledger directory (mode 0700): `ledger.db` (+ `-wal`, `-shm`; mode 0600),
//! `keyring.json` (mode 0600) and, while failed unseal attempts are waiting to be recorded,
//! `unseal-failures.log` (mode 0600). Only a creation or a re-share that a crash interrupted
//! leaves `ledger.db.creating` (see [`Ledger::create`]) or `keyring.json.next` (see
//! [`super::reshare`]).

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ring::rand::{SecureRandom, SystemRandom};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use serde_json::json;
use zeroize::Zeroizing;

use super::chain::{
    body_hash, event_hash, Checkpoint, CheckpointPublicKey, CheckpointSigner, Hash, LedgerId,
    SignedCheckpoint,
};
use super::error::{ChainProblem, LedgerError};
use super::event::{
    kinds, Actor, CanonicalJson, EventHeader, Kind, NewEvent, StoredEvent, Timestamp,
};
use super::projection::Projections;
use super::reshare::{self, STAGED_KEYRING_FILE};
use super::seal::{
    sync_dir, KdfParams, Keyring, LedgerKeys, MasterSecret, OfficerName, Passphrase,
};

/// The database file's name inside the ledger directory.
pub const DB_FILE: &str = "ledger.db";
/// The keyring file's name inside the ledger directory.
pub const KEYRING_FILE: &str = "keyring.json";
/// The database while [`Ledger::create`] builds it, before it is renamed to [`DB_FILE`].
pub const CREATING_FILE: &str = "ledger.db.creating";
/// Failed unseal attempts not yet recorded as an event.
pub const FAILURES_FILE: &str = "unseal-failures.log";

/// The newest schema version this build writes.
pub const SCHEMA_VERSION: u32 = 1;

/// Forward migrations; entry `i` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 0 → 1
    "CREATE TABLE meta (
        key TEXT PRIMARY KEY NOT NULL,
        value TEXT NOT NULL
     ) STRICT;
     CREATE TABLE events (
        seq INTEGER PRIMARY KEY NOT NULL,
        time INTEGER NOT NULL,
        actor TEXT NOT NULL,
        kind TEXT NOT NULL,
        body BLOB NOT NULL,
        body_hash BLOB NOT NULL,
        prev_hash BLOB NOT NULL,
        hash BLOB NOT NULL
     ) STRICT;
     CREATE TRIGGER events_no_update BEFORE UPDATE ON events
        BEGIN SELECT RAISE(ABORT, 'ledger events are append-only'); END;
     CREATE TRIGGER events_no_delete BEFORE DELETE ON events
        BEGIN SELECT RAISE(ABORT, 'ledger events are append-only'); END;
     CREATE TABLE checkpoints (
        seq INTEGER NOT NULL,
        time INTEGER NOT NULL,
        head BLOB NOT NULL,
        signature BLOB NOT NULL
     ) STRICT;
     CREATE TRIGGER checkpoints_no_update BEFORE UPDATE ON checkpoints
        BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only'); END;
     CREATE TRIGGER checkpoints_no_delete BEFORE DELETE ON checkpoints
        BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only'); END;",
];

/// An open, unsealed ledger.
pub struct Ledger {
    conn: Connection,
    dir: PathBuf,
    db_path: PathBuf,
    ledger_id: LedgerId,
    keys: LedgerKeys,
    keyring: Keyring,
    projections: Projections,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("dir", &self.dir)
            .field("ledger_id", &self.ledger_id)
            .field("projections", &self.projections)
            .finish_non_exhaustive()
    }
}

/// What `Ledger::create` needs.
#[derive(Debug)]
pub struct Genesis<'a> {
    /// The officers, in keyring order, with their newly chosen passphrases.
    pub officers: &'a [(OfficerName, Passphrase)],
    /// How many must take part to unseal (at least 2).
    pub threshold: usize,
    /// PBKDF2 parameters ([`KdfParams::production`] outside tests).
    pub kdf: KdfParams,
}

pub(crate) fn check_not_writable_by_others(path: &Path) -> Result<(), LedgerError> {
    let meta = std::fs::metadata(path).map_err(LedgerError::io_or_missing("stat", path))?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(LedgerError::InsecurePermissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

fn open_connection(
    db_path: &Path,
    keys: &LedgerKeys,
    create: bool,
) -> Result<Connection, LedgerError> {
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if create {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let sql = LedgerError::sql(db_path, "open");
    let conn = Connection::open_with_flags(db_path, flags).map_err(sql)?;
    // SQLCipher logs decryption failures to standard error by default; the caller reports them.
    conn.execute_batch("PRAGMA cipher_log_level = NONE;")
        .map_err(LedgerError::sql(db_path, "set cipher log level"))?;
    let mut stmt = Zeroizing::new(String::with_capacity(80));
    stmt.push_str("PRAGMA key = \"");
    stmt.push_str(&keys.sqlcipher_key);
    stmt.push_str("\";");
    conn.execute_batch(&stmt)
        .map_err(LedgerError::sql(db_path, "set key"))?;
    drop(stmt);
    // Reading the schema is the first access to an encrypted page: a wrong key or a damaged
    // first page fails here.
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    })
    .map_err(LedgerError::sql(db_path, "read schema"))?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(LedgerError::sql(db_path, "enable WAL"))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(LedgerError::Sqlite {
            operation: "enable WAL",
            source: rusqlite::Error::InvalidQuery,
        });
    }
    conn.execute_batch(
        "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;",
    )
    .map_err(LedgerError::sql(db_path, "set pragmas"))?;
    Ok(conn)
}

fn migrate(conn: &mut Connection, db_path: &Path) -> Result<(), LedgerError> {
    let found: u32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(LedgerError::sql(db_path, "read schema version"))?;
    if found > SCHEMA_VERSION {
        return Err(LedgerError::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for (from, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(LedgerError::sql(db_path, "begin migration"))?;
        tx.execute_batch(sql)
            .map_err(LedgerError::sql(db_path, "migrate schema"))?;
        tx.pragma_update(None, "user_version", from as u32 + 1)
            .map_err(LedgerError::sql(db_path, "set schema version"))?;
        tx.commit()
            .map_err(LedgerError::sql(db_path, "commit migration"))?;
    }
    Ok(())
}

/// An event row as read from the database, before any check.
pub(crate) struct RawRow {
    pub(crate) seq: i64,
    pub(crate) time: i64,
    pub(crate) actor: String,
    pub(crate) kind: String,
    pub(crate) body: Vec<u8>,
    /// The three hashes; `None` for a blob that is not 32 bytes long.
    pub(crate) body_hash: Option<Hash>,
    pub(crate) prev: Option<Hash>,
    pub(crate) hash: Option<Hash>,
}

/// A hash column: a 32-byte blob read without a copy; `None` for a blob of another length,
/// and for any other type the error reading it as bytes gives.
fn hash_column(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Option<Hash>> {
    match r.get_ref(i)? {
        rusqlite::types::ValueRef::Blob(b) => Ok(Hash::from_slice(b)),
        _ => r.get::<_, Vec<u8>>(i).map(|b| Hash::from_slice(&b)),
    }
}

pub(crate) const SELECT_EVENTS: &str =
    "SELECT seq, time, actor, kind, body, body_hash, prev_hash, hash FROM events";

impl RawRow {
    pub(crate) fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            seq: r.get(0)?,
            time: r.get(1)?,
            actor: r.get(2)?,
            kind: r.get(3)?,
            body: r.get(4)?,
            body_hash: hash_column(r, 5)?,
            prev: hash_column(r, 6)?,
            hash: hash_column(r, 7)?,
        })
    }

    /// Parses the row's fields (without checking hashes).
    pub(crate) fn into_event(self) -> Result<StoredEvent, LedgerError> {
        let seq = u64::try_from(self.seq).unwrap_or(0);
        let chain = |problem| LedgerError::Chain { seq, problem };
        let actor =
            Actor::parse_owned(self.actor).map_err(|source| LedgerError::InvalidStoredName {
                seq,
                field: "actor",
                source,
            })?;
        let kind =
            Kind::parse_owned(self.kind).map_err(|source| LedgerError::InvalidStoredName {
                seq,
                field: "kind",
                source,
            })?;
        let body = CanonicalJson::parse_owned(self.body)
            .map_err(|_| chain(ChainProblem::NonCanonicalBody))?;
        let h = |b: Option<Hash>| b.ok_or(chain(ChainProblem::MalformedHash));
        Ok(StoredEvent {
            header: EventHeader {
                seq,
                time: Timestamp(self.time),
                actor,
                kind,
                body_hash: h(self.body_hash)?,
                prev: h(self.prev)?,
                hash: h(self.hash)?,
            },
            body,
        })
    }
}

/// An event row borrowed from the database: what [`RawRow`] holds, read without a copy.
pub(crate) struct RowRef<'r> {
    pub(crate) seq: i64,
    pub(crate) time: i64,
    pub(crate) actor: &'r str,
    pub(crate) kind: &'r str,
    pub(crate) body: &'r [u8],
    pub(crate) body_hash: Option<Hash>,
    pub(crate) prev: Option<Hash>,
    pub(crate) hash: Option<Hash>,
}

/// The three hashes of a row whose fields [`RowRef::check`] accepted.
pub(crate) struct RowHashes {
    pub(crate) body_hash: Hash,
    pub(crate) prev: Hash,
    pub(crate) hash: Hash,
}

impl<'r> RowRef<'r> {
    /// The row, when every column has the type the schema gives it (integers, text, blobs);
    /// `None` otherwise, and the caller reads it as a [`RawRow`], which gives the error.
    pub(crate) fn from_row(r: &'r rusqlite::Row<'_>) -> rusqlite::Result<Option<Self>> {
        use rusqlite::types::ValueRef;
        let int = |i| match r.get_ref(i) {
            Ok(ValueRef::Integer(n)) => Ok(Some(n)),
            Ok(_) => Ok(None),
            Err(e) => Err(e),
        };
        let text = |i| match r.get_ref(i) {
            Ok(ValueRef::Text(t)) => Ok(std::str::from_utf8(t).ok()),
            Ok(_) => Ok(None),
            Err(e) => Err(e),
        };
        let blob = |i| match r.get_ref(i) {
            Ok(ValueRef::Blob(b)) => Ok(Some(b)),
            Ok(_) => Ok(None),
            Err(e) => Err(e),
        };
        let hash = |i| blob(i).map(|b| b.map(Hash::from_slice));
        let (Some(seq), Some(time), Some(actor), Some(kind), Some(body)) =
            (int(0)?, int(1)?, text(2)?, text(3)?, blob(4)?)
        else {
            return Ok(None);
        };
        let (Some(body_hash), Some(prev), Some(hash)) = (hash(5)?, hash(6)?, hash(7)?) else {
            return Ok(None);
        };
        Ok(Some(Self {
            seq,
            time,
            actor,
            kind,
            body,
            body_hash,
            prev,
            hash,
        }))
    }

    /// The row's seq as [`RawRow::into_event`] reports it.
    pub(crate) fn seq(&self) -> u64 {
        u64::try_from(self.seq).unwrap_or(0)
    }

    /// The event, owned, of a row [`RowRef::check`] accepted (its checks run again).
    pub(crate) fn to_event(&self) -> Result<StoredEvent, LedgerError> {
        RawRow {
            seq: self.seq,
            time: self.time,
            actor: self.actor.to_owned(),
            kind: self.kind.to_owned(),
            body: self.body.to_vec(),
            body_hash: self.body_hash,
            prev: self.prev,
            hash: self.hash,
        }
        .into_event()
    }

    /// The checks of [`RawRow::into_event`], in its order and with its errors, on the
    /// borrowed fields: actor and kind names, a canonical body, three 32-byte hashes.
    pub(crate) fn check(&self) -> Result<RowHashes, LedgerError> {
        let seq = self.seq();
        let chain = |problem| LedgerError::Chain { seq, problem };
        Actor::check(self.actor).map_err(|source| LedgerError::InvalidStoredName {
            seq,
            field: "actor",
            source,
        })?;
        Kind::check(self.kind).map_err(|source| LedgerError::InvalidStoredName {
            seq,
            field: "kind",
            source,
        })?;
        CanonicalJson::check(self.body).map_err(|_| chain(ChainProblem::NonCanonicalBody))?;
        let h = |b: Option<Hash>| b.ok_or(chain(ChainProblem::MalformedHash));
        Ok(RowHashes {
            body_hash: h(self.body_hash)?,
            prev: h(self.prev)?,
            hash: h(self.hash)?,
        })
    }
}

/// Seals a stored event from a new one at a chain position.
pub(crate) fn chain_event(seq: u64, prev: Hash, time: Timestamp, ev: NewEvent) -> StoredEvent {
    let bh = body_hash(ev.body.as_bytes());
    let hash = event_hash(seq, &prev, time, &ev.actor, &ev.kind, &bh);
    StoredEvent {
        header: EventHeader {
            seq,
            time,
            actor: ev.actor,
            kind: ev.kind,
            body_hash: bh,
            prev,
            hash,
        },
        body: ev.body,
    }
}

fn actor_ledger() -> Actor {
    Actor::parse("ledger").unwrap_or_else(|_| unreachable!("\"ledger\" is a valid actor"))
}

fn kind_of(s: &'static str) -> Kind {
    Kind::parse(s).unwrap_or_else(|_| unreachable!("ledger kinds are valid"))
}

impl Ledger {
    /// Creates a new ledger in `dir` (created with mode 0700 if missing; it must not already
    /// hold a ledger), writes the keyring and the genesis event.
    ///
    /// Creation is atomic as seen from outside: the database is built, genesis included, as
    /// `ledger.db.creating`; the keyring is written; only then is the database renamed to
    /// `ledger.db`, which is the commit point. A crash before it leaves no `ledger.db`, which
    /// [`Ledger::open`] explains ([`LedgerError::CreationInterrupted`]) and a new `create` in
    /// the same directory redoes: a `keyring.json` beside `ledger.db.creating` is the
    /// interrupted creation's own (a creation starts only where there is no keyring) and is
    /// replaced. A `ledger.db`, or a `keyring.json` with no creation in progress (a ledger whose
    /// database is missing), is never touched: [`LedgerError::AlreadyExists`].
    pub fn create(
        dir: &Path,
        genesis: &Genesis<'_>,
        projections: Projections,
    ) -> Result<Self, LedgerError> {
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(LedgerError::io("create ledger directory", dir))?;
        }
        check_not_writable_by_others(dir)?;
        let db_path = dir.join(DB_FILE);
        let keyring_path = dir.join(KEYRING_FILE);
        let building = dir.join(CREATING_FILE);
        for p in [db_path.clone(), dir.join(format!("{DB_FILE}-wal"))] {
            if p.exists() {
                return Err(LedgerError::AlreadyExists { path: p });
            }
        }
        if keyring_path.exists() {
            if !building.exists() {
                return Err(LedgerError::AlreadyExists { path: keyring_path });
            }
            // The keyring of an interrupted creation: it goes first, so that until the new one
            // is written a crash leaves a state this same rule recognises.
            std::fs::remove_file(&keyring_path).map_err(LedgerError::io(
                "remove the interrupted keyring",
                &keyring_path,
            ))?;
            sync_dir(dir)?;
        }
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let stale = dir.join(format!("{CREATING_FILE}{suffix}"));
            match std::fs::remove_file(&stale) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(LedgerError::io("remove", &stale)(e))
                }
                _ => {}
            }
        }
        let rng = SystemRandom::new();
        let master = MasterSecret::generate(&rng)?;
        let mut id = [0u8; 16];
        rng.fill(&mut id).map_err(|_| LedgerError::Crypto {
            operation: "generate ledger id",
        })?;
        let ledger_id = LedgerId(id);
        let officer_refs: Vec<(OfficerName, &Passphrase)> = genesis
            .officers
            .iter()
            .map(|(n, p)| (n.clone(), p))
            .collect();
        let keyring = Keyring::seal(
            ledger_id,
            1,
            &master,
            &officer_refs,
            genesis.threshold,
            genesis.kdf,
            &rng,
        )?;
        let keys = LedgerKeys::derive(&master, &ledger_id)?;
        drop(master);

        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&building)
            .map_err(LedgerError::io("create ledger file", &building))?;
        let mut conn = open_connection(&building, &keys, false)?;
        migrate(&mut conn, &building)?;
        projections
            .create_tables(&conn)
            .map_err(LedgerError::sql(&building, "create projection tables"))?;
        conn.execute(
            "INSERT INTO meta (key, value) VALUES ('ledger_id', ?1)",
            params![ledger_id.to_hex()],
        )
        .map_err(LedgerError::sql(&building, "write ledger id"))?;
        let mut ledger = Ledger {
            conn,
            dir: dir.to_path_buf(),
            db_path: building.clone(),
            ledger_id,
            keys,
            keyring,
            projections,
        };
        ledger.append_genesis(genesis)?;
        let Ledger {
            conn,
            keys,
            keyring,
            projections,
            ..
        } = ledger;
        // Back from WAL to a rollback journal: the checkpoint puts every page in the file
        // itself, so the file alone is the whole ledger when it is renamed.
        let mode: String = conn
            .query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))
            .map_err(LedgerError::sql(&building, "checkpoint"))?;
        conn.close()
            .map_err(|(_, e)| LedgerError::sql(&building, "close")(e))?;
        let wal = dir.join(format!("{CREATING_FILE}-wal"));
        if !mode.eq_ignore_ascii_case("delete") || wal.exists() {
            return Err(LedgerError::Sqlite {
                operation: "checkpoint the new ledger",
                source: rusqlite::Error::InvalidQuery,
            });
        }
        std::fs::File::open(&building)
            .and_then(|f| f.sync_all())
            .map_err(LedgerError::io("fsync", &building))?;
        #[cfg(test)]
        super::fault::reached(super::fault::Step::CreateBuilt)?;
        keyring.store(&keyring_path)?;
        #[cfg(test)]
        super::fault::reached(super::fault::Step::CreateKeyringStored)?;
        std::fs::rename(&building, &db_path)
            .map_err(LedgerError::io("rename into place", &db_path))?;
        sync_dir(dir)?;
        let conn = open_connection(&db_path, &keys, false)?;
        Ok(Ledger {
            conn,
            dir: dir.to_path_buf(),
            db_path,
            ledger_id,
            keys,
            keyring,
            projections,
        })
    }

    fn append_genesis(&mut self, genesis: &Genesis<'_>) -> Result<StoredEvent, LedgerError> {
        let names = self.keyring.officers();
        let body = json!({
            "ledger_id": self.ledger_id.to_hex(),
            "officers": names.iter().map(OfficerName::as_str).collect::<Vec<_>>(),
            "threshold": genesis.threshold,
            "generation": 1,
            "kdf_iterations": genesis.kdf.iterations(),
            "checkpoint_public_key": self.public_key().to_hex(),
            "schema_version": SCHEMA_VERSION,
        });
        let actor = OfficerName::joined_actor(&names).unwrap_or_else(|_| actor_ledger());
        let ev = NewEvent::new(actor, kind_of(kinds::GENESIS), &body).map_err(|source| {
            LedgerError::InvalidBody {
                kind: kinds::GENESIS.to_owned(),
                source,
            }
        })?;
        self.append(ev)
    }

    /// Opens and unseals the ledger in `dir` with the passphrases of at least `threshold`
    /// officers. A failed unseal is appended to `unseal-failures.log`; the next successful open
    /// records the count as a `ledger.unseal_failed` event and clears the file.
    pub fn open(
        dir: &Path,
        officers: &[(OfficerName, Passphrase)],
        projections: Projections,
    ) -> Result<Self, LedgerError> {
        check_not_writable_by_others(dir)?;
        let db_path = dir.join(DB_FILE);
        let keyring_path = dir.join(KEYRING_FILE);
        if !db_path.exists() && dir.join(CREATING_FILE).exists() {
            return Err(LedgerError::CreationInterrupted {
                dir: dir.to_path_buf(),
            });
        }
        check_not_writable_by_others(&db_path)?;
        check_not_writable_by_others(&keyring_path)?;
        let keyring = Keyring::load(&keyring_path)?;
        let staged = reshare::load_staged(dir)?;
        let staged_path = dir.join(STAGED_KEYRING_FILE);
        // The quorum may be of the current keyring or, after a crash in a re-share, of the
        // staged one; which of them is valid is the ledger's to say, once it is open.
        let unsealed = match keyring.unseal(&keyring_path, officers) {
            Ok(m) => Ok((m, &keyring, keyring_path.as_path())),
            Err(e) => match &staged {
                Some(s) if counts_as_failed_unseal(&e) => match s.unseal(&staged_path, officers) {
                    Ok(m) => Ok((m, s, staged_path.as_path())),
                    // Officers unknown to the current keyring were meant for the staged one.
                    Err(se) if matches!(e, LedgerError::UnknownOfficer { .. }) => Err(se),
                    Err(_) => Err(e),
                },
                _ => Err(e),
            },
        };
        let (master, by, by_path) = match unsealed {
            Ok(u) => u,
            Err(e) => {
                if counts_as_failed_unseal(&e) {
                    record_failure(dir, officers, &e)?;
                }
                return Err(e);
            }
        };
        let (ledger_id, unsealed_generation, by_path) =
            (by.ledger_id(), by.generation(), by_path.to_path_buf());
        let keys = LedgerKeys::derive(&master, &ledger_id)?;
        let mut conn = open_connection(&db_path, &keys, false)?;
        migrate(&mut conn, &db_path)?;
        let stored_id: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key = 'ledger_id'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(LedgerError::sql(&db_path, "read ledger id"))?;
        if stored_id.as_deref() != Some(ledger_id.to_hex().as_str()) {
            return Err(LedgerError::KeyringMismatch {
                keyring: ledger_id.to_hex(),
                database: stored_id.unwrap_or_default(),
            });
        }
        projections
            .create_tables(&conn)
            .map_err(LedgerError::sql(&db_path, "create projection tables"))?;
        let keyring = match reshare::recorded_generation(&conn, &db_path)? {
            Some(recorded) => {
                let installed = staged.is_some();
                let settled = reshare::settle(dir, keyring, staged, &master, recorded)?;
                if let Err(e) = reshare::check_generation(&by_path, unsealed_generation, recorded) {
                    // The old keyring opened, and the staged one just moved into place: the
                    // same officers may hold the new generation too (a re-share that kept
                    // them and their passphrases).
                    let also_current = installed
                        && by_path == keyring_path
                        && settled.generation() == recorded
                        && settled.unseal(&keyring_path, officers).is_ok();
                    if !also_current {
                        record_failure(dir, officers, &e)?;
                        return Err(e);
                    }
                }
                settled
            }
            None => return Err(LedgerError::NoGenesis { path: db_path }),
        };
        drop(master);
        let mut ledger = Ledger {
            conn,
            dir: dir.to_path_buf(),
            db_path,
            ledger_id: keyring.ledger_id(),
            keys,
            keyring,
            projections,
        };
        ledger.record_pending_failures()?;
        Ok(ledger)
    }

    fn record_pending_failures(&mut self) -> Result<(), LedgerError> {
        let path = self.dir.join(FAILURES_FILE);
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(LedgerError::io("read", &path)(e)),
        };
        let mut attempts = 0u64;
        let mut first: Option<i64> = None;
        let mut last: Option<i64> = None;
        let mut peer_uids = std::collections::BTreeSet::new();
        for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            attempts += 1;
            // The file is outside bytes: a line that does not parse still counts as an attempt.
            let v = serde_json::from_slice::<serde_json::Value>(line).ok();
            if let Some(t) = v
                .as_ref()
                .and_then(|v| v.get("time").and_then(serde_json::Value::as_i64))
            {
                first = Some(first.map_or(t, |f| f.min(t)));
                last = Some(last.map_or(t, |l| l.max(t)));
            }
            if let Some(uid) = v
                .as_ref()
                .and_then(|v| v.get("peer_uid").and_then(serde_json::Value::as_u64))
            {
                if peer_uids.len() < MAX_RECORDED_PEERS {
                    peer_uids.insert(uid);
                }
            }
        }
        if attempts > 0 {
            let mut body = json!({"attempts": attempts, "first_time": first, "last_time": last});
            if !peer_uids.is_empty() {
                body["peer_uids"] = json!(peer_uids);
            }
            let ev = NewEvent::new(actor_ledger(), kind_of(kinds::UNSEAL_FAILED), &body).map_err(
                |source| LedgerError::InvalidBody {
                    kind: kinds::UNSEAL_FAILED.to_owned(),
                    source,
                },
            )?;
            self.append(ev)?;
        }
        std::fs::remove_file(&path).map_err(LedgerError::io("remove", &path))?;
        Ok(())
    }

    /// The ledger's id.
    pub fn ledger_id(&self) -> LedgerId {
        self.ledger_id
    }

    /// The ledger directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The keyring as loaded or last re-shared.
    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// A 32-byte secret key for one purpose of a layer above (for instance encrypting data
    /// that must stay confidential even in exports), derived with HKDF-SHA256 from the master
    /// secret. The same purpose always gives the same key for this ledger; different purposes
    /// give independent keys.
    pub fn derive_key(&self, purpose: &str) -> Result<Zeroizing<[u8; 32]>, LedgerError> {
        self.keys.purpose_key(purpose)
    }

    /// The checkpoint public key auditors pin.
    pub fn public_key(&self) -> CheckpointPublicKey {
        self.keys.signer.public_key()
    }

    /// Signs an export header (the bytes start with the export header tag, so they can never
    /// be mistaken for a checkpoint).
    pub(crate) fn sign_export_header(&self, signed: &[u8]) -> [u8; 64] {
        self.keys.signer.sign_raw(signed)
    }

    /// The checkpoint signing key, for the export's reader threads to sign redacted lines
    /// with ([`Ledger::sign_export_header`]'s key).
    pub(crate) fn signer(&self) -> &CheckpointSigner {
        &self.keys.signer
    }

    /// Another connection to the ledger's database, with the same key and pragmas, for a
    /// read that runs beside the ledger's own connection (verify checks pages on it).
    pub(crate) fn second_connection(&self) -> Result<Connection, LedgerError> {
        open_connection(&self.db_path, &self.keys, false)
    }

    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    pub(crate) fn db_path(&self) -> &Path {
        &self.db_path
    }

    pub(crate) fn projections(&self) -> &Projections {
        &self.projections
    }

    /// Appends one event and its projection rows in one transaction; returns after the commit
    /// is durable (WAL, `synchronous=FULL`).
    pub fn append(&mut self, event: NewEvent) -> Result<StoredEvent, LedgerError> {
        self.append_at(event, Timestamp::now())
    }

    /// [`Ledger::append`] stamped `now` (the domain's clock) instead of the host's.
    pub fn append_at(
        &mut self,
        event: NewEvent,
        now: Timestamp,
    ) -> Result<StoredEvent, LedgerError> {
        let mut out = self.append_batch_at(std::iter::once(event), now)?;
        out.pop().ok_or(LedgerError::Sqlite {
            operation: "append",
            source: rusqlite::Error::QueryReturnedNoRows,
        })
    }

    /// Appends several events (and their projection rows) in one transaction: all or none.
    pub fn append_batch(
        &mut self,
        events: impl IntoIterator<Item = NewEvent>,
    ) -> Result<Vec<StoredEvent>, LedgerError> {
        self.append_batch_at(events, Timestamp::now())
    }

    /// [`Ledger::append_batch`] stamped `now` (the domain's clock) instead of the host's.
    pub fn append_batch_at(
        &mut self,
        events: impl IntoIterator<Item = NewEvent>,
        now: Timestamp,
    ) -> Result<Vec<StoredEvent>, LedgerError> {
        let db_path = self.db_path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(LedgerError::sql(&db_path, "begin append"))?;
        let head: Option<(i64, Vec<u8>, i64)> = tx
            .query_row(
                "SELECT seq, hash, time FROM events ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(LedgerError::sql(&db_path, "read head"))?;
        // Event times never go backwards within a ledger: a host clock set back (by hand or
        // by a time sync) stamps new events with the head's time until it catches up.
        let not_before = head.as_ref().map_or(i64::MIN, |(_, _, t)| *t);
        let (mut seq, mut prev) = match head {
            None => (0u64, Hash::ZERO),
            Some((s, h, _)) => {
                let s = u64::try_from(s).unwrap_or(0);
                let h = Hash::from_slice(&h).ok_or(LedgerError::Chain {
                    seq: s,
                    problem: ChainProblem::MalformedHash,
                })?;
                (s, h)
            }
        };
        let mut out = Vec::new();
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO events (seq, time, actor, kind, body, body_hash, prev_hash, hash)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )
                .map_err(LedgerError::sql(&db_path, "prepare append"))?;
            for ev in events {
                seq += 1;
                let stored = chain_event(seq, prev, Timestamp(now.0.max(not_before)), ev);
                let h = &stored.header;
                insert
                    .execute(params![
                        i64::try_from(h.seq).unwrap_or(i64::MAX),
                        h.time.0,
                        h.actor.as_str(),
                        h.kind.as_str(),
                        stored.body.as_bytes(),
                        &h.body_hash.0[..],
                        &h.prev.0[..],
                        &h.hash.0[..],
                    ])
                    .map_err(LedgerError::sql(&db_path, "insert event"))?;
                self.projections.apply(&tx, &stored)?;
                prev = stored.header.hash;
                out.push(stored);
            }
        }
        tx.commit()
            .map_err(LedgerError::sql(&db_path, "commit append"))?;
        Ok(out)
    }

    /// The newest event's header, if any.
    pub fn head(&self) -> Result<Option<EventHeader>, LedgerError> {
        Ok(self
            .event_where("ORDER BY seq DESC LIMIT 1", [])?
            .map(|e| e.header))
    }

    /// One event by seq.
    pub fn event(&self, seq: u64) -> Result<Option<StoredEvent>, LedgerError> {
        self.event_where("WHERE seq = ?1", [i64::try_from(seq).unwrap_or(i64::MAX)])
    }

    fn event_where<P: rusqlite::Params>(
        &self,
        tail: &str,
        p: P,
    ) -> Result<Option<StoredEvent>, LedgerError> {
        let row = self
            .conn
            .query_row(&format!("{SELECT_EVENTS} {tail}"), p, RawRow::from_row)
            .optional()
            .map_err(LedgerError::sql(&self.db_path, "read event"))?;
        row.map(RawRow::into_event).transpose()
    }

    /// Streams events with `from <= seq <= to` in order to `f`, one row in memory at a time.
    pub fn for_each_event(
        &self,
        from: u64,
        to: u64,
        mut f: impl FnMut(StoredEvent) -> Result<(), LedgerError>,
    ) -> Result<(), LedgerError> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "{SELECT_EVENTS} WHERE seq BETWEEN ?1 AND ?2 ORDER BY seq"
            ))
            .map_err(LedgerError::sql(&self.db_path, "query events"))?;
        let mut rows = stmt
            .query(params![
                i64::try_from(from).unwrap_or(i64::MAX),
                i64::try_from(to).unwrap_or(i64::MAX)
            ])
            .map_err(LedgerError::sql(&self.db_path, "query events"))?;
        while let Some(row) = rows
            .next()
            .map_err(LedgerError::sql(&self.db_path, "read events"))?
        {
            let raw =
                RawRow::from_row(row).map_err(LedgerError::sql(&self.db_path, "read events"))?;
            f(raw.into_event()?)?;
        }
        Ok(())
    }

    /// The rows with `from <= seq <= to` in seq order, each turned by `decode` into a `T` on
    /// reader threads and handed to `f` in order on this thread: what a single
    /// `SELECT … WHERE seq BETWEEN from AND to ORDER BY seq` would give, row for row, and the
    /// same errors at the same row.
    ///
    /// `readers` threads (at least one), each on its own connection, read interleaved chunks
    /// of [`CHUNK`] consecutive seqs (reader `r` takes chunks `r`, `r + readers`, …), so the
    /// page decryption and `decode` run beside `f`; each reader holds at most two chunks
    /// ahead. A chunk with fewer rows than seqs in its range (a gap, or seqs
    /// past the end) ends the chunked reading: after its rows, the rest of the range is read
    /// on the ledger's own connection, so a ledger with holes or stray seqs gives the rows
    /// a single scan gives.
    #[cfg(test)]
    pub(crate) fn scan_events<T: Send>(
        &self,
        readers: usize,
        from: i64,
        to: i64,
        decode: impl Fn(RawRow) -> T + Sync,
        f: impl FnMut(T) -> Result<(), LedgerError>,
    ) -> Result<(), LedgerError> {
        let conns = (0..readers.max(1))
            .map(|_| self.second_connection())
            .collect::<Result<Vec<_>, _>>()?;
        self.scan_events_on(conns, from, to, decode, f)
    }

    /// [`Ledger::scan_events`] with one reader thread on each of `conns` (connections to this
    /// ledger's database, such as one whose page cache an earlier pass filled); with none, one
    /// of its own.
    #[cfg(test)]
    pub(crate) fn scan_events_on<T: Send>(
        &self,
        conns: Vec<Connection>,
        from: i64,
        to: i64,
        decode: impl Fn(RawRow) -> T + Sync,
        mut f: impl FnMut(T) -> Result<(), LedgerError>,
    ) -> Result<(), LedgerError> {
        self.scan_batches_on(
            conns,
            from,
            to,
            || Vec::with_capacity(CHUNK_ROWS),
            |batch: &mut Vec<T>, row| {
                batch.push(decode(RawRow::from_row(row)?));
                Ok(())
            },
            |batch| batch.into_iter().try_for_each(&mut f),
        )
    }

    /// [`Ledger::scan_events_on`] by batches: each reader starts a batch per chunk with
    /// `new_batch` and folds each row of it in with `add` (straight from the row, so a batch can
    /// hold its rows without a copy per row, such as lines already encoded), and `f` gets the
    /// batches in seq order. A row `add` fails on ends the batch (that row is not in it) and
    /// the scan: `f` gets the batch of the rows before it, then the scan returns the error.
    /// Past a short chunk, the rest of the range comes on the ledger's own connection in
    /// batches of at most [`CHUNK`] rows.
    pub(crate) fn scan_batches_on<B: Send>(
        &self,
        mut conns: Vec<Connection>,
        from: i64,
        to: i64,
        new_batch: impl Fn() -> B + Sync,
        add: impl Fn(&mut B, &rusqlite::Row<'_>) -> rusqlite::Result<()> + Sync,
        mut f: impl FnMut(B) -> Result<(), LedgerError>,
    ) -> Result<(), LedgerError> {
        let db_path = self.db_path.as_path();
        let read = || LedgerError::sql(db_path, "read events");
        let query = || LedgerError::sql(db_path, "query events");
        if conns.is_empty() {
            conns.push(self.second_connection()?);
        }
        let readers = conns.len();
        let fold = Fold {
            new_batch: &new_batch,
            add: &add,
        };
        let rest = std::thread::scope(|s| -> Result<Option<i64>, LedgerError> {
            let mut inboxes = Vec::with_capacity(readers);
            for (r, conn) in conns.into_iter().enumerate() {
                let (tx, rx) = std::sync::mpsc::sync_channel::<Chunk<B>>(2);
                inboxes.push(rx);
                let at = Stride { r, readers };
                s.spawn(move || read_chunks(&conn, at, from, to, fold, &tx, db_path));
            }
            let mut k = 0usize;
            loop {
                let Some(inbox) = inboxes.get(k % readers) else {
                    return Ok(None);
                };
                // A reader that hung up has no chunk left: the range is read.
                let Ok(chunk) = inbox.recv() else {
                    return Ok(None);
                };
                f(chunk.rows)?;
                match chunk.end {
                    ChunkEnd::Whole => k += 1,
                    ChunkEnd::Short { last } => return Ok(last.checked_add(1)),
                    ChunkEnd::Failed(e) => return Err(e),
                }
            }
        })?;
        let Some(rest) = rest.filter(|r| *r <= to) else {
            return Ok(());
        };
        let mut stmt = self.conn.prepare(&ranged_select()).map_err(query())?;
        let mut rows = stmt.query(params![rest, to]).map_err(query())?;
        let mut batch = new_batch();
        let mut in_batch = 0i64;
        loop {
            let added = match rows.next() {
                Ok(Some(row)) => add(&mut batch, row).map(|()| true),
                Ok(None) => Ok(false),
                Err(e) => Err(e),
            };
            match added {
                Ok(true) => in_batch += 1,
                Ok(false) => return f(batch),
                Err(e) => {
                    f(batch)?;
                    return Err(read()(e));
                }
            }
            if in_batch == CHUNK {
                f(std::mem::replace(&mut batch, new_batch()))?;
                in_batch = 0;
            }
        }
    }

    /// Runs a read-only query against the projection tables (writes are refused).
    pub fn query<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, LedgerError> {
        let sql = || LedgerError::sql(&self.db_path, "query");
        self.conn
            .pragma_update(None, "query_only", true)
            .map_err(sql())?;
        let out = f(&self.conn);
        self.conn
            .pragma_update(None, "query_only", false)
            .map_err(sql())?;
        out.map_err(sql())
    }

    /// Signs the current head and records the checkpoint.
    pub fn checkpoint(&mut self) -> Result<SignedCheckpoint, LedgerError> {
        self.checkpoint_at(Timestamp::now())
    }

    /// [`Ledger::checkpoint`] stamped `now` (the domain's clock) instead of the host's.
    pub fn checkpoint_at(&mut self, now: Timestamp) -> Result<SignedCheckpoint, LedgerError> {
        let head = self.head()?.ok_or(LedgerError::Chain {
            seq: 1,
            problem: ChainProblem::SeqGap { expected: 1 },
        })?;
        let signed = self.keys.signer.sign(Checkpoint {
            ledger_id: self.ledger_id,
            seq: head.seq,
            head: head.hash,
            time: now,
        });
        self.conn
            .execute(
                "INSERT INTO checkpoints (seq, time, head, signature) VALUES (?1, ?2, ?3, ?4)",
                params![
                    i64::try_from(signed.checkpoint.seq).unwrap_or(i64::MAX),
                    signed.checkpoint.time.0,
                    &signed.checkpoint.head.0[..],
                    &signed.signature[..]
                ],
            )
            .map_err(LedgerError::sql(&self.db_path, "record checkpoint"))?;
        Ok(signed)
    }

    /// The checkpoints recorded so far, oldest first.
    pub fn checkpoints(&self) -> Result<Vec<SignedCheckpoint>, LedgerError> {
        let sql = || LedgerError::sql(&self.db_path, "read checkpoints");
        let mut stmt = self
            .conn
            .prepare("SELECT seq, time, head, signature FROM checkpoints ORDER BY rowid")
            .map_err(sql())?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                    r.get::<_, Vec<u8>>(3)?,
                ))
            })
            .map_err(sql())?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, time, head, sig) = row.map_err(sql())?;
            let seq = u64::try_from(seq).unwrap_or(0);
            let bad = |problem| LedgerError::BadCheckpoint { seq, problem };
            out.push(SignedCheckpoint {
                checkpoint: Checkpoint {
                    ledger_id: self.ledger_id,
                    seq,
                    head: Hash::from_slice(&head).ok_or(bad("head is not 32 bytes"))?,
                    time: Timestamp(time),
                },
                signature: sig
                    .try_into()
                    .map_err(|_| bad("signature is not 64 bytes"))?,
            });
        }
        Ok(out)
    }

    /// Re-shares the master secret among `officers` with `threshold` (officers added or removed,
    /// threshold changed). `quorum` proves the current threshold again. Each new officer's
    /// passphrase is taken from `passphrases`, or else, for an officer in the quorum, the
    /// passphrase they just gave. KDF parameters stay those of the current keyring. The new
    /// keyring is staged, the `ledger.reshare` event committed (from then on only the new
    /// generation unseals), then the keyring moved into place; an open after a crash between
    /// these steps settles it (see [`super::reshare`]).
    pub fn reshare(
        &mut self,
        quorum: &[(OfficerName, Passphrase)],
        officers: &[OfficerName],
        passphrases: &[(OfficerName, Passphrase)],
        threshold: usize,
    ) -> Result<StoredEvent, LedgerError> {
        let keyring_path = self.dir.join(KEYRING_FILE);
        let master = match self.keyring.unseal(&keyring_path, quorum) {
            Ok(m) => m,
            Err(e) => {
                if counts_as_failed_unseal(&e) {
                    record_failure(&self.dir, quorum, &e)?;
                }
                return Err(e);
            }
        };
        let rng = SystemRandom::new();
        let mut refs: Vec<(OfficerName, &Passphrase)> = Vec::with_capacity(officers.len());
        for name in officers {
            let pass = passphrases
                .iter()
                .chain(quorum)
                .find(|(n, _)| n == name)
                .map(|(_, p)| p)
                .ok_or_else(|| LedgerError::MissingPassphrase {
                    name: name.as_str().to_owned(),
                })?;
            refs.push((name.clone(), pass));
        }
        let kdf = self.keyring.kdf();
        let generation = self.keyring.generation() + 1;
        let new = Keyring::seal(
            self.ledger_id,
            generation,
            &master,
            &refs,
            threshold,
            kdf,
            &rng,
        )?;
        drop(master);
        let old_names = self.keyring.officers();
        let new_names = new.officers();
        let strs = |v: &[OfficerName]| v.iter().map(|n| n.as_str().to_owned()).collect::<Vec<_>>();
        let added: Vec<OfficerName> = new_names
            .iter()
            .filter(|n| !old_names.contains(n))
            .cloned()
            .collect();
        let removed: Vec<OfficerName> = old_names
            .iter()
            .filter(|n| !new_names.contains(n))
            .cloned()
            .collect();
        let approvers: Vec<OfficerName> = quorum.iter().map(|(n, _)| n.clone()).collect();
        let body = json!({
            "generation": generation,
            "threshold": threshold,
            "officers": strs(&new_names),
            "added": strs(&added),
            "removed": strs(&removed),
            "approved_by": strs(&approvers),
            "kdf_iterations": kdf.iterations(),
        });
        let actor = OfficerName::joined_actor(&approvers).unwrap_or_else(|_| actor_ledger());
        let ev = NewEvent::new(actor, kind_of(kinds::RESHARE), &body).map_err(|source| {
            LedgerError::InvalidBody {
                kind: kinds::RESHARE.to_owned(),
                source,
            }
        })?;
        // See `reshare` for why the event, between staging and installing, is the commit point.
        reshare::stage(&self.dir, &new)?;
        #[cfg(test)]
        super::fault::reached(super::fault::Step::ReshareStaged)?;
        let stored = match self.append(ev) {
            Ok(stored) => stored,
            Err(e) => {
                // Nothing committed: the staged keyring is void (the next open removes it too).
                let _ = reshare::discard_staged(&self.dir);
                return Err(e);
            }
        };
        self.keyring = new;
        #[cfg(test)]
        super::fault::reached(super::fault::Step::ReshareCommitted)?;
        reshare::install_staged(&self.dir)?;
        Ok(stored)
    }
}

/// Consecutive seqs per chunk of [`Ledger::scan_events`].
const CHUNK: i64 = 2048;
/// [`CHUNK`] as a count of rows.
#[cfg(test)]
const CHUNK_ROWS: usize = CHUNK as usize;

/// A batch of one reader of [`Ledger::scan_batches_on`] (the rows of a chunk), and how it
/// ended.
struct Chunk<B> {
    rows: B,
    end: ChunkEnd,
}

enum ChunkEnd {
    /// Every seq of the chunk's range had its row.
    Whole,
    /// Fewer rows than seqs: the chunked reading stops; the rest of the range is what comes
    /// after `last`, the last seq of the chunk's range.
    Short { last: i64 },
    /// Reading failed after the chunk's rows.
    Failed(LedgerError),
}

/// The events with `?1 <= seq <= ?2`, in order.
fn ranged_select() -> String {
    format!("{SELECT_EVENTS} WHERE seq BETWEEN ?1 AND ?2 ORDER BY seq")
}

/// Which chunks a reader of [`Ledger::scan_events`] takes: `r`, `r + readers`, …
#[derive(Clone, Copy)]
struct Stride {
    r: usize,
    readers: usize,
}

/// How a reader of [`Ledger::scan_batches_on`] makes its batches.
struct Fold<'a, N, A> {
    new_batch: &'a N,
    add: &'a A,
}

impl<N, A> Clone for Fold<'_, N, A> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<N, A> Copy for Fold<'_, N, A> {}

/// One reader of [`Ledger::scan_batches_on`]: its chunks of `from..=to`, until the range ends,
/// a chunk is short or fails, or the consumer stops listening.
fn read_chunks<B>(
    conn: &Connection,
    Stride { r, readers }: Stride,
    from: i64,
    to: i64,
    fold: Fold<'_, impl Fn() -> B, impl Fn(&mut B, &rusqlite::Row<'_>) -> rusqlite::Result<()>>,
    tx: &std::sync::mpsc::SyncSender<Chunk<B>>,
    db_path: &Path,
) {
    let read = || LedgerError::sql(db_path, "read events");
    let mut stmt = match conn.prepare(&ranged_select()) {
        Ok(stmt) => stmt,
        Err(e) => {
            let _ = tx.send(Chunk {
                rows: (fold.new_batch)(),
                end: ChunkEnd::Failed(LedgerError::sql(db_path, "query events")(e)),
            });
            return;
        }
    };
    let stride = CHUNK.saturating_mul(i64::try_from(readers).unwrap_or(i64::MAX));
    let mut start = i64::try_from(r)
        .ok()
        .and_then(|r| r.checked_mul(CHUNK))
        .and_then(|o| from.checked_add(o));
    while let Some(a) = start.filter(|a| *a <= to) {
        let b = a.saturating_add(CHUNK - 1).min(to);
        let mut rows = (fold.new_batch)();
        let end = (|| {
            let mut cursor = stmt
                .query(params![a, b])
                .map_err(LedgerError::sql(db_path, "query events"))?;
            let mut n = 0i64;
            while let Some(row) = cursor.next().map_err(read())? {
                (fold.add)(&mut rows, row).map_err(read())?;
                n += 1;
            }
            let whole = Some(n) == b.checked_sub(a).and_then(|n| n.checked_add(1));
            Ok(if whole {
                ChunkEnd::Whole
            } else {
                ChunkEnd::Short { last: b }
            })
        })()
        .unwrap_or_else(ChunkEnd::Failed);
        let stop = !matches!(end, ChunkEnd::Whole);
        if tx.send(Chunk { rows, end }).is_err() || stop {
            return;
        }
        start = a.checked_add(stride);
    }
}

/// Most distinct peer uids a `ledger.unseal_failed` event names.
const MAX_RECORDED_PEERS: usize = 64;

/// Records an unseal share that did not open, offered by `officer` from `peer_uid` (checked
/// alone, before a quorum was complete). The next successful unseal records the count and the
/// peers' uids as a `ledger.unseal_failed` event.
pub fn record_failed_share(
    dir: &Path,
    officer: &OfficerName,
    peer_uid: u32,
) -> Result<(), LedgerError> {
    let path = dir.join(FAILURES_FILE);
    let line = json!({
        "time": Timestamp::now().0,
        "officers": [officer.as_str()],
        "reason": "wrong_passphrase",
        "peer_uid": peer_uid,
    });
    append_failure_line(&path, &line)
}

fn append_failure_line(path: &Path, line: &serde_json::Value) -> Result<(), LedgerError> {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .map_err(LedgerError::io("open", path))?;
    writeln!(f, "{line}").map_err(LedgerError::io("write", path))?;
    f.sync_all().map_err(LedgerError::io("fsync", path))?;
    Ok(())
}

/// Unseal failures that are counted (and later recorded as a `ledger.unseal_failed` event).
fn counts_as_failed_unseal(e: &LedgerError) -> bool {
    matches!(
        e,
        LedgerError::WrongPassphrase { .. }
            | LedgerError::NotEnoughOfficers { .. }
            | LedgerError::UnknownOfficer { .. }
            | LedgerError::KeyringTampered { .. }
            | LedgerError::KeyringSuperseded { .. }
            | LedgerError::KeyringNotCommitted { .. }
    )
}

fn record_failure(
    dir: &Path,
    officers: &[(OfficerName, Passphrase)],
    e: &LedgerError,
) -> Result<(), LedgerError> {
    let path = dir.join(FAILURES_FILE);
    let reason = match e {
        LedgerError::WrongPassphrase { .. } => "wrong_passphrase",
        LedgerError::NotEnoughOfficers { .. } => "not_enough_officers",
        LedgerError::UnknownOfficer { .. } => "unknown_officer",
        LedgerError::KeyringSuperseded { .. } => "superseded_keyring",
        LedgerError::KeyringNotCommitted { .. } => "uncommitted_keyring",
        _ => "keyring_integrity",
    };
    let line = json!({
        "time": Timestamp::now().0,
        "officers": officers.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        "reason": reason,
    });
    append_failure_line(&path, &line)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::ledger::fault::{self, Step};
    use crate::ledger::verify::verify_ledger;
    use std::num::NonZeroU32;

    pub(crate) fn officers() -> Vec<(OfficerName, Passphrase)> {
        ["alice", "bob"]
            .iter()
            .map(|n| {
                (
                    OfficerName::parse(n).expect("name"),
                    Passphrase::for_unseal(Zeroizing::new(format!("{n}-passphrase-1")))
                        .expect("pass"),
                )
            })
            .collect()
    }

    fn create(dir: &Path) -> Result<Ledger, LedgerError> {
        let officers = officers();
        let genesis = Genesis {
            officers: &officers,
            threshold: 2,
            kdf: KdfParams::insecure_for_tests(NonZeroU32::new(1000).unwrap_or(NonZeroU32::MIN)),
        };
        Ledger::create(dir, &genesis, Projections::ledger_only())
    }

    pub(crate) fn new_ledger(dir: &Path) -> Ledger {
        create(dir).expect("create")
    }

    pub(crate) fn open(dir: &Path) -> Result<Ledger, LedgerError> {
        Ledger::open(dir, &officers(), Projections::ledger_only())
    }

    /// A creation in `dir` that stops at `step` as if the process died there.
    fn crash_creating(dir: &Path, step: Step) {
        fault::arm(step);
        match create(dir) {
            Err(LedgerError::Io { operation, .. }) => assert_eq!(operation, "crash injected"),
            other => panic!("expected the injected crash, got {other:?}"),
        }
        assert!(!dir.join(DB_FILE).exists(), "{step:?}: no ledger.db yet");
        assert!(dir.join(CREATING_FILE).exists(), "{step:?}");
        assert_eq!(
            dir.join(KEYRING_FILE).exists(),
            step == Step::CreateKeyringStored
        );
        let err = open(dir).expect_err("there is no ledger yet");
        assert!(
            matches!(err, LedgerError::CreationInterrupted { .. }),
            "{step:?}: {err:?}"
        );
        assert!(err.to_string().contains("create it again"), "{err}");
    }

    #[test]
    fn a_creation_that_crashed_is_explained_and_redone() {
        for (first, then) in [
            (Step::CreateBuilt, Step::CreateKeyringStored),
            (Step::CreateKeyringStored, Step::CreateBuilt),
            (Step::CreateKeyringStored, Step::CreateKeyringStored),
        ] {
            let tmp = tempfile::tempdir().expect("tmp");
            let dir = tmp.path().join("l");
            crash_creating(&dir, first);
            // The redo can crash too, and is redone in turn.
            crash_creating(&dir, then);
            let id = create(&dir).expect("created again").ledger_id();
            assert!(!dir.join(CREATING_FILE).exists());
            let l = open(&dir).expect("open");
            assert_eq!(l.ledger_id(), id);
            assert_eq!(l.keyring().ledger_id(), id);
            let genesis = l.event(1).expect("read").expect("genesis");
            assert_eq!(genesis.header.kind.as_str(), kinds::GENESIS);
            assert_eq!(verify_ledger(&l).expect("verify").events, 1);
        }
    }

    #[test]
    fn a_created_ledger_is_never_replaced() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("l");
        let id = new_ledger(&dir).ledger_id();
        let keyring = std::fs::read(dir.join(KEYRING_FILE)).expect("keyring");
        let refused = |dir: &Path, file: &str| match create(dir) {
            Err(LedgerError::AlreadyExists { path }) => assert_eq!(path, dir.join(file)),
            other => panic!("expected {file} to be kept, got {other:?}"),
        };
        refused(&dir, DB_FILE);
        // Not even beside a leftover temporary database.
        std::fs::write(dir.join(CREATING_FILE), b"left over").expect("write");
        refused(&dir, DB_FILE);
        std::fs::remove_file(dir.join(CREATING_FILE)).expect("remove");
        assert_eq!(open(&dir).expect("open").ledger_id(), id);
        // A keyring whose database is missing (moved or lost) is the only key to its backups.
        let moved = tmp.path().join("ledger.db.moved");
        std::fs::rename(dir.join(DB_FILE), &moved).expect("move away");
        refused(&dir, KEYRING_FILE);
        assert_eq!(
            std::fs::read(dir.join(KEYRING_FILE)).expect("keyring"),
            keyring
        );
        std::fs::rename(&moved, dir.join(DB_FILE)).expect("move back");
        assert_eq!(open(&dir).expect("open").ledger_id(), id);
    }

    #[test]
    fn a_ledger_without_genesis_is_explained_and_kept() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("l");
        // The files a creation leaves that stops between its keyring and its genesis.
        let l = new_ledger(&dir);
        l.conn
            .execute_batch(
                "DROP TRIGGER events_no_delete; DELETE FROM events;
                 DELETE FROM users; DELETE FROM keyring_generations;",
            )
            .expect("empty the ledger");
        drop(l);
        let err = open(&dir).expect_err("no genesis");
        assert!(matches!(err, LedgerError::NoGenesis { .. }), "{err:?}");
        assert!(err.to_string().contains("move the ledger directory aside"));
        assert!(matches!(
            create(&dir),
            Err(LedgerError::AlreadyExists { .. })
        ));
    }

    fn ev(kind: &str, body: serde_json::Value) -> NewEvent {
        NewEvent::new(
            Actor::parse("tester").expect("actor"),
            Kind::parse(kind).expect("kind"),
            &body,
        )
        .expect("body")
    }

    #[test]
    fn event_times_never_go_backwards() {
        let tmp = tempfile::tempdir().expect("tmp");
        let mut l = new_ledger(&tmp.path().join("l"));
        let first = l
            .append(ev("test.one", serde_json::json!({})))
            .expect("append");
        // As if the head had been written before the host clock was set back an hour (the
        // append-only trigger is dropped for this, as only an insider with the key could).
        let ahead = first.header.time.0 + 3_600_000;
        l.conn
            .execute_batch("DROP TRIGGER events_no_update")
            .expect("drop trigger");
        l.conn
            .execute(
                "UPDATE events SET time = ?1 WHERE seq = ?2",
                rusqlite::params![ahead, i64::try_from(first.header.seq).expect("seq")],
            )
            .expect("move the head's time");
        let next = l
            .append(ev("test.two", serde_json::json!({})))
            .expect("append");
        assert!(
            next.header.time.0 >= ahead,
            "{} is before the head's {ahead}",
            next.header.time.0
        );
    }

    #[test]
    fn ledger_debug_shows_no_key() {
        let tmp = tempfile::tempdir().expect("tmp");
        let l = new_ledger(&tmp.path().join("l"));
        let shown = format!("{l:?} {:?}", l.keys);
        let key_hex = &l.keys.sqlcipher_key[2..66];
        assert!(!shown.contains(key_hex), "{shown}");
        assert!(!shown.contains("passphrase-1"), "{shown}");
    }

    #[test]
    fn triggers_refuse_update_and_delete() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("l");
        let mut l = new_ledger(&dir);
        l.append(ev("test.one", json!({"a": 1}))).expect("append");
        l.checkpoint().expect("checkpoint");
        for sql in [
            "UPDATE events SET actor = 'mallory' WHERE seq = 1",
            "DELETE FROM events WHERE seq = 2",
            "DELETE FROM checkpoints",
        ] {
            let err = l.conn.execute(sql, []).expect_err(sql);
            assert!(err.to_string().contains("append-only"), "{err}");
        }
        assert!(
            l.query(|c| c.execute("DELETE FROM users", [])).is_err(),
            "query() is read-only"
        );
    }

    #[test]
    fn projection_edit_is_detected_by_verify() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("l");
        let l = new_ledger(&dir);
        let report = verify_ledger(&l).expect("verify");
        assert_eq!(report.events, 1);
        assert_eq!(
            report.tables,
            vec!["users".to_owned(), "keyring_generations".to_owned()]
        );
        l.conn
            .execute("UPDATE users SET active = 0 WHERE name = 'bob'", [])
            .expect("edit projection");
        match verify_ledger(&l) {
            Err(LedgerError::ProjectionMismatch { table, .. }) => assert_eq!(table, "users"),
            other => panic!("unexpected {other:?}"),
        }
        l.conn
            .execute("UPDATE users SET active = 1 WHERE name = 'bob'", [])
            .expect("restore");
        l.conn
            .execute("INSERT INTO users VALUES ('mallory', 'officer', 1, 1)", [])
            .expect("insert");
        assert!(matches!(
            verify_ledger(&l),
            Err(LedgerError::ProjectionMismatch { .. })
        ));
    }

    #[test]
    fn newer_schema_is_refused_naming_both_versions() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("l");
        let l = new_ledger(&dir);
        l.conn.pragma_update(None, "user_version", 7).expect("bump");
        drop(l);
        let err = Ledger::open(&dir, &officers(), Projections::ledger_only()).expect_err("too new");
        assert!(
            matches!(
                err,
                LedgerError::SchemaTooNew {
                    found: 7,
                    supported: 1
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains('7') && err.to_string().contains('1'));
    }

    #[test]
    fn dropping_the_triggers_does_not_hide_edits() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("l");
        let mut l = new_ledger(&dir);
        l.append(ev("test.one", json!({"account": "123456789012"})))
            .expect("append");
        l.conn.execute_batch("DROP TRIGGER events_no_update; UPDATE events SET body = CAST('{\"account\":\"999999999999\"}' AS BLOB) WHERE seq = 2;").expect("edit");
        assert!(matches!(
            verify_ledger(&l),
            Err(LedgerError::Chain {
                seq: 2,
                problem: ChainProblem::BodyHashMismatch
            })
        ));
    }

    /// Every seq `scan_events` hands over, in order, against a single ordered scan.
    fn scanned(l: &Ledger, readers: usize, from: i64, to: i64) -> Vec<i64> {
        let mut seen = Vec::new();
        l.scan_events(
            readers,
            from,
            to,
            |raw| raw.seq,
            |seq| {
                seen.push(seq);
                Ok(())
            },
        )
        .expect("scan");
        seen
    }

    fn single_scan(l: &Ledger, from: i64, to: i64) -> Vec<i64> {
        let mut stmt = l
            .conn
            .prepare("SELECT seq FROM events WHERE seq BETWEEN ?1 AND ?2 ORDER BY seq")
            .expect("prepare");
        let rows = stmt
            .query_map(params![from, to], |r| r.get(0))
            .expect("query");
        rows.collect::<Result<_, _>>().expect("rows")
    }

    #[test]
    fn scan_events_gives_the_rows_of_one_ordered_scan_even_with_holes_and_stray_seqs() {
        let tmp = tempfile::tempdir().expect("tmp");
        let mut l = new_ledger(&tmp.path().join("l"));
        let n = 3 * CHUNK as usize + 100;
        l.append_batch((0..n).map(|i| ev("test.one", json!({ "i": i }))))
            .expect("append");
        let last = i64::try_from(n).expect("n") + 1;
        // Dense: the chunked readers deliver everything, in order.
        for readers in [1, 2, 3] {
            assert_eq!(
                scanned(&l, readers, 1, last),
                (1..=last).collect::<Vec<_>>()
            );
            assert_eq!(scanned(&l, readers, 1, 5), vec![1, 2, 3, 4, 5]);
            assert_eq!(
                scanned(&l, readers, 2 * CHUNK, last),
                single_scan(&l, 2 * CHUNK, last)
            );
            assert!(scanned(&l, readers, last + 1, i64::MAX).is_empty());
        }
        // Holes in the second and fourth chunk, stray seqs far beyond the end and before 1,
        // as an insider with the key could leave them.
        l.conn
            .execute_batch(
                "DROP TRIGGER events_no_delete;
                 DELETE FROM events WHERE seq IN (2100, 2101, 6200);
                 INSERT INTO events SELECT seq + 4611686018427387904, time, actor, kind, body,
                   body_hash, prev_hash, hash FROM events WHERE seq = 7;
                 INSERT INTO events SELECT -5, time, actor, kind, body, body_hash, prev_hash,
                   hash FROM events WHERE seq = 8;",
            )
            .expect("tamper");
        let ranges = [
            (-5, i64::MAX),
            (1, last),
            (i64::MIN, i64::MAX),
            (2101, 6300),
        ];
        for readers in [1, 2, 3] {
            for (from, to) in ranges {
                let single = single_scan(&l, from, to);
                let got = scanned(&l, readers, from, to);
                assert_eq!(got, single, "{readers} readers, {from}..={to}");
            }
        }
    }

    #[test]
    fn scan_events_stops_at_the_first_error_of_its_consumer() {
        let tmp = tempfile::tempdir().expect("tmp");
        let mut l = new_ledger(&tmp.path().join("l"));
        l.append_batch((0..3 * CHUNK).map(|i| ev("test.one", json!({ "i": i }))))
            .expect("append");
        let mut seen = 0i64;
        let err = l
            .scan_events(
                2,
                1,
                i64::MAX,
                |raw| raw.seq,
                |seq| {
                    seen = seq;
                    if seq == CHUNK + 7 {
                        return Err(LedgerError::NoGenesis {
                            path: PathBuf::from("stop"),
                        });
                    }
                    Ok(())
                },
            )
            .expect_err("the consumer's error");
        assert!(matches!(err, LedgerError::NoGenesis { .. }), "{err:?}");
        assert_eq!(seen, CHUNK + 7);
    }
}
