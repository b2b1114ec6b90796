//! credlock's tables in PostgreSQL, their versions, and the statements that write them.
//! FORMAT.md ("PostgreSQL") is the specification; the DDL below is the schema's version 1.

use super::{column, Database};
use credlock_core::platform::{FileError, IoError, StoreFile};
use postgres::error::SqlState;
use postgres::types::Type;
use postgres::{Client, GenericClient};

/// The schema version this build creates and reads. A newer one is refused, never written.
pub const SCHEMA_VERSION: i32 = 1;

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
    tx.execute(
        &format!(
            "INSERT INTO {}.credlock_schema (version, applied_by) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            db.schema_ident()
        ),
        &[&SCHEMA_VERSION, &format!("credlock {}", env!("CARGO_PKG_VERSION"))],
    )?;
    Ok(())
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
        // The first write of this store, perhaps of the schema: one transaction.
        let mut tx = client.transaction()?;
        if version(&mut tx, db)?.is_none() {
            create(&mut tx, db)?;
        }
        let n = tx.execute(
            &format!(
                "INSERT INTO {s}.stores (name, version, {col}) VALUES ($1, 1, $2) ON CONFLICT (name) DO NOTHING"
            ),
            &[&db.store, &contents],
        )?;
        if n != 1 {
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
