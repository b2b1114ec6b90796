//! credlock's tables in PostgreSQL, their versions, and the statements that write them.
//! FORMAT.md ("PostgreSQL") is the specification. Version 1: the store rows. Version 2 adds
//! the tenant records; a version 1 schema is upgraded by the first write of records.

use super::{column, Database};
use credlock_core::platform::{FileError, IoError, StoreFile};
use postgres::error::SqlState;
use postgres::types::Type;
use postgres::{Client, GenericClient};

/// The schema version this build creates and reads. A newer one is refused, never written.
pub const SCHEMA_VERSION: i32 = 2;

/// The DDL of version 1. `{s}` is the schema (a checked identifier, quoted).
const SCHEMA_V1: &str = r#"
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}.credlock_schema (
    version    integer PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now(),
    applied_by text NOT NULL
);
CREATE TABLE IF NOT EXISTS {s}.stores (
    name       text PRIMARY KEY,
    version    bigint NOT NULL CHECK (version > 0),
    store      bytea,
    backup     bytea,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {s}.quarantined (
    name       text NOT NULL,
    moved_as   text NOT NULL,
    file       text NOT NULL,
    contents   bytea NOT NULL,
    moved_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, moved_as)
);
"#;

/// Version 2: each tenant of a store is a sealed record of its own (FORMAT.md, "Tenant
/// records"); a store's row holds its header. Records go with their store.
const SCHEMA_V2: &str = r#"
CREATE TABLE IF NOT EXISTS {s}.records (
    store      text NOT NULL REFERENCES {s}.stores (name) ON DELETE CASCADE,
    id         text NOT NULL,
    sealed     bytea NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (store, id)
);
"#;

/// Whether `e` says the schema or a table of it does not exist (no store yet).
pub fn is_missing(e: &postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(c) if *c == SqlState::UNDEFINED_TABLE || *c == SqlState::INVALID_SCHEMA_NAME
    )
}

/// The schema's version: `None` if there is no schema yet. Asks `to_regclass` first, which
/// never fails for a missing schema, so that this can run inside a transaction.
pub fn version(
    client: &mut impl GenericClient,
    db: &Database,
) -> Result<Option<i32>, postgres::Error> {
    let table = format!("{}.credlock_schema", db.schema_ident());
    let exists: bool = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])?
        .get(0);
    if !exists {
        return Ok(None);
    }
    let sql = format!("SELECT max(version) FROM {table}");
    Ok(client
        .query_one(sql.as_str(), &[])?
        .get::<_, Option<i32>>(0))
}

/// Whether the schema exists; an error if it is newer than this build (it would be written
/// with rules this build does not know).
pub fn check_version(client: &mut Client, db: &Database) -> Result<bool, FileError> {
    match version(client, db) {
        Ok(None) => Ok(false),
        Ok(Some(v)) if v > SCHEMA_VERSION => Err(FileError::Io(newer(db, v))),
        Ok(Some(_)) => Ok(true),
        Err(e) => Err(FileError::Io(super::io_error(
            db,
            "could not read the schema version",
            &e,
        ))),
    }
}

fn newer(db: &Database, v: i32) -> IoError {
    IoError::Other(format!(
        "{db}: credlock's schema is at version {v}, newer than this credlock knows ({SCHEMA_VERSION}): upgrade credlock on this machine; nothing was changed"
    ))
}

/// Create the schema (idempotent), in the caller's transaction. Two first writers of two
/// stores in one schema serialise on a transaction-level advisory lock.
fn create(tx: &mut postgres::Transaction<'_>, db: &Database) -> Result<(), postgres::Error> {
    let key = super::database::advisory_key(&format!("credlock-ddl\0{}", db.schema));
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&key])?;
    tx.batch_execute(&SCHEMA_V1.replace("{s}", &db.schema_ident()))?;
    tx.batch_execute(&SCHEMA_V2.replace("{s}", &db.schema_ident()))?;
    tx.execute(
        &format!(
            "INSERT INTO {}.credlock_schema (version, applied_by) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            db.schema_ident()
        ),
        &[&SCHEMA_VERSION, &format!("credlock {}", env!("CARGO_PKG_VERSION"))],
    )?;
    Ok(())
}

/// Bring the schema to this build's version (create it, or add what a version 1 schema
/// lacks), in one transaction.
pub fn upgrade(client: &mut Client, db: &Database) -> Result<(), postgres::Error> {
    let mut tx = client.transaction()?;
    match version(&mut tx, db)? {
        Some(v) if v >= SCHEMA_VERSION => {}
        _ => create(&mut tx, db)?,
    }
    tx.commit()
}

/// Create the schema if it is missing; true if this call created it.
pub fn ensure(client: &mut Client, db: &Database) -> Result<bool, IoError> {
    let run = |client: &mut Client| -> Result<bool, postgres::Error> {
        let mut tx = client.transaction()?;
        let before = version(&mut tx, db)?;
        if before.is_none() {
            create(&mut tx, db)?;
        }
        tx.commit()?;
        Ok(before.is_none())
    };
    let created =
        run(client).map_err(|e| super::io_error(db, "could not create the schema", &e))?;
    match version(client, db) {
        Ok(Some(v)) if v > SCHEMA_VERSION => Err(newer(db, v)),
        Ok(_) => Ok(created),
        Err(e) => Err(super::io_error(db, "could not read the schema version", &e)),
    }
}

/// The first write of a store, in the caller's transaction: the schema if it is missing (or
/// what an older version lacks), then the store's row at version 1 with `contents` in column
/// `col`. False if another process made the row first (fenced: the caller writes nothing).
fn insert_row(
    tx: &mut postgres::Transaction<'_>,
    db: &Database,
    col: &str,
    contents: &[u8],
) -> Result<bool, postgres::Error> {
    if version(tx, db)?.is_none_or(|v| v < SCHEMA_VERSION) {
        create(tx, db)?;
    }
    let n = tx.execute(
        &format!(
            "INSERT INTO {}.stores (name, version, {col}) VALUES ($1, 1, $2) ON CONFLICT (name) DO NOTHING",
            db.schema_ident()
        ),
        &[&db.store, &contents],
    )?;
    Ok(n == 1)
}

/// Write `file`'s column of the store row, only if the row is still at `seen` (0: no row).
/// Returns the row's new version, or `None` if it was not at `seen` (fenced: nothing
/// written). Replacing `store` keeps its previous contents as `backup`, in the same
/// statement, as the file platform keeps `credentials.sealed.bak`.
pub fn write_row(
    client: &mut Client,
    db: &Database,
    file: StoreFile,
    contents: Option<&[u8]>,
    seen: i64,
) -> Result<Option<i64>, postgres::Error> {
    let s = db.schema_ident();
    let col = column(file);
    if seen == 0 {
        let Some(contents) = contents else {
            // Removing from a store that has no row: nothing to do.
            return Ok(Some(0));
        };
        let mut tx = client.transaction()?;
        if !insert_row(&mut tx, db, col, contents)? {
            return Ok(None);
        }
        tx.commit()?;
        return Ok(Some(1));
    }
    let set = match (file, contents) {
        (StoreFile::Store, Some(_)) => "backup = COALESCE(store, backup), store = $2",
        (StoreFile::Store, None) => "store = $2",
        (StoreFile::Backup, _) => "backup = $2",
    };
    // One round trip (no prepared statement): the statement, its parameters and the commit
    // travel together, and the answer is the commit's.
    let rows = client.query_typed(
        &format!(
            "UPDATE {s}.stores SET {set}, version = version + 1, updated_at = now() WHERE name = $1 AND version = $3 RETURNING version"
        ),
        &[(&db.store, Type::TEXT), (&contents, Type::BYTEA), (&seen, Type::INT8)],
    )?;
    Ok(rows.first().map(|r| r.get::<_, i64>(0)))
}

/// Records as read, or `Err(version)` if the store's row is no longer at the version read
/// under the lock (the header and these records would be of two versions).
pub type Versioned<T> = Result<T, i64>;

/// Sealed records by tenant id.
pub type Records = Vec<(String, Vec<u8>)>;

/// The sealed record `id` of the store, in one statement with the row's version, which must
/// still be `seen`: records are read as of the header read under the same lock.
pub fn read_record(
    client: &mut impl GenericClient,
    db: &Database,
    id: &str,
    seen: i64,
) -> Result<Versioned<Option<Vec<u8>>>, postgres::Error> {
    let s = db.schema_ident();
    let rows = client.query_typed(
        &format!(
            "SELECT s.version, r.sealed FROM {s}.stores s LEFT JOIN {s}.records r ON r.store = s.name AND r.id = $2 WHERE s.name = $1"
        ),
        &[(&db.store, Type::TEXT), (&id, Type::TEXT)],
    );
    match rows {
        Ok(rows) => Ok(match rows.first() {
            Some(r) if r.get::<_, i64>(0) != seen => Err(r.get(0)),
            Some(r) => Ok(r.get(1)),
            None if seen != 0 => Err(0),
            None => Ok(None),
        }),
        // A version 1 schema: no records yet.
        Err(e) if is_missing(&e) => Ok(Ok(None)),
        Err(e) => Err(e),
    }
}

/// Every record of the store, checked against `seen` as [`read_record`] does.
pub fn read_records(
    client: &mut impl GenericClient,
    db: &Database,
    seen: i64,
) -> Result<Versioned<Records>, postgres::Error> {
    let s = db.schema_ident();
    let rows = client.query_typed(
        &format!(
            "SELECT s.version, r.id, r.sealed FROM {s}.stores s LEFT JOIN {s}.records r ON r.store = s.name WHERE s.name = $1"
        ),
        &[(&db.store, Type::TEXT)],
    );
    let rows = match rows {
        Ok(rows) => rows,
        Err(e) if is_missing(&e) => return Ok(Ok(Vec::new())),
        Err(e) => return Err(e),
    };
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let version: i64 = r.get(0);
        if version != seen {
            return Ok(Err(version));
        }
        if let (Some(id), Some(sealed)) = (r.get::<_, Option<String>>(1), r.get(2)) {
            out.push((id, sealed));
        }
    }
    if rows.is_empty() && seen != 0 {
        return Ok(Err(0));
    }
    Ok(Ok(out))
}

/// Write the store's header and records in one statement (one transaction, one round
/// trip), only if the row is still at `seen`: the header replaces `store` (the old one kept
/// as `backup`), each record in `put` is inserted or replaced, each id in `gone` deleted.
/// Returns the row's new version, or `None` if it was not at `seen` (fenced: nothing
/// written). `seen` 0 (no row yet) creates the row, and the schema if need be.
pub fn write_records(
    client: &mut Client,
    db: &Database,
    header: &[u8],
    put: (&[&str], &[&[u8]]),
    gone: &[&str],
    seen: i64,
) -> Result<Option<i64>, postgres::Error> {
    let s = db.schema_ident();
    let records_sql = format!(
        "INSERT INTO {s}.records (store, id, sealed) SELECT $1, u.id, u.sealed FROM unnest($2::text[], $3::bytea[]) AS u(id, sealed) ON CONFLICT (store, id) DO UPDATE SET sealed = EXCLUDED.sealed, updated_at = now()"
    );
    if seen == 0 {
        let mut tx = client.transaction()?;
        if !insert_row(&mut tx, db, "store", header)? {
            return Ok(None);
        }
        tx.execute(&records_sql, &[&db.store, &put.0, &put.1])?;
        tx.commit()?;
        return Ok(Some(1));
    }
    // Every part runs only if the fenced header update matched (`h` has its one row), and
    // the statement is one transaction: all of it or nothing.
    let sql = format!(
        "WITH h AS (UPDATE {s}.stores SET backup = COALESCE(store, backup), store = $4, version = version + 1, updated_at = now() WHERE name = $1 AND version = $5 RETURNING version), \
         w AS (INSERT INTO {s}.records (store, id, sealed) SELECT $1, u.id, u.sealed FROM unnest($2::text[], $3::bytea[]) AS u(id, sealed), h ON CONFLICT (store, id) DO UPDATE SET sealed = EXCLUDED.sealed, updated_at = now()), \
         d AS (DELETE FROM {s}.records WHERE store = $1 AND id = ANY($6::text[]) AND EXISTS (SELECT 1 FROM h)) \
         SELECT version FROM h"
    );
    let run = |client: &mut Client| {
        client.query_typed(
            &sql,
            &[
                (&db.store, Type::TEXT),
                (&put.0, Type::TEXT_ARRAY),
                (&put.1, Type::BYTEA_ARRAY),
                (&header, Type::BYTEA),
                (&seen, Type::INT8),
                (&gone, Type::TEXT_ARRAY),
            ],
        )
    };
    let rows = match run(client) {
        // A version 1 schema: add the records table, then write.
        Err(e) if is_missing(&e) => {
            upgrade(client, db)?;
            run(client)?
        }
        other => other?,
    };
    Ok(rows.first().map(|r| r.get::<_, i64>(0)))
}

/// Why a quarantine moved nothing.
pub enum NotMoved {
    /// The row is no longer at the version read under the lock.
    Fenced,
    /// There is nothing in that column.
    Absent,
}

/// Move `file`'s column into `quarantined` as `<file name>.corrupt-<ms>` (adding `-1`,
/// `-2`, ... rather than replace one), in one transaction, fenced like a write.
pub fn quarantine_row(
    client: &mut Client,
    db: &Database,
    file: StoreFile,
    seen: i64,
    now_ms: u64,
) -> Result<Result<String, NotMoved>, postgres::Error> {
    let s = db.schema_ident();
    let col = column(file);
    let mut tx = client.transaction()?;
    let row = tx.query_opt(
        &format!("SELECT version, {col} IS NULL FROM {s}.stores WHERE name = $1 FOR UPDATE"),
        &[&db.store],
    )?;
    match row {
        Some(r) if r.get::<_, i64>(0) != seen => return Ok(Err(NotMoved::Fenced)),
        Some(r) if r.get::<_, bool>(1) => return Ok(Err(NotMoved::Absent)),
        None => return Ok(Err(NotMoved::Absent)),
        Some(_) => {}
    }
    let base = match file {
        StoreFile::Store => "credentials.sealed",
        StoreFile::Backup => "credentials.sealed.bak",
    };
    let mut moved_as = format!("{base}.corrupt-{now_ms}");
    for i in 1.. {
        let taken = tx
            .query_opt(
                &format!("SELECT 1 FROM {s}.quarantined WHERE name = $1 AND moved_as = $2"),
                &[&db.store, &moved_as],
            )?
            .is_some();
        if !taken {
            break;
        }
        moved_as = format!("{base}.corrupt-{now_ms}-{i}");
    }
    tx.execute(
        &format!(
            "INSERT INTO {s}.quarantined (name, moved_as, file, contents) SELECT name, $2, $3, {col} FROM {s}.stores WHERE name = $1"
        ),
        &[&db.store, &moved_as, &base],
    )?;
    tx.execute(
        &format!(
            "UPDATE {s}.stores SET {col} = NULL, version = version + 1, updated_at = now() WHERE name = $1"
        ),
        &[&db.store],
    )?;
    tx.commit()?;
    Ok(Ok(moved_as))
}
