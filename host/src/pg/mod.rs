//! The PostgreSQL platform: one store shared by processes on many machines.
//!
//! The same core runs on it and writes the same sealed bytes as into a file; only the
//! `locks` and `files` imports change (FORMAT.md, "PostgreSQL"):
//! - A lock is an advisory lock (`pg_advisory_lock[_shared]`) taken on a database session
//!   the lock owns. The server ends a crashed process's session, and with it its locks, as
//!   the kernel drops a dead process's flock. `lock_timeout` bounds the wait.
//! - The store and its backup are the `store` and `backup` columns of the store's row, with
//!   `version`, a counter every write of the row raises. A write runs on the session that
//!   holds the exclusive store lock and is *fenced*: `UPDATE ... WHERE version = v`, where
//!   `v` is what that session read under the lock. A process whose session was terminated,
//!   or whose network was cut, can never overwrite a newer store: its session is gone (no
//!   write at all), and were it ever to write through another session, the version it read
//!   is no longer the stored one. Every session commits synchronously, so a write is
//!   durable when it returns.

pub mod database;
pub mod doctor;
pub mod schema;

pub use database::Database;

use credlock_core::platform::{
    FileError, IoError, LockError, LockMode, LockTarget, RecordWrite, StoreFile,
};
use postgres::error::SqlState;
use postgres::Client;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Instant;

/// Idle sessions a platform keeps for its next lock (a connection costs a round trip or
/// three and an authentication; a lock costs one statement).
const POOL_SIZE: usize = 4;

/// Sessions to one database, for reuse. Only sessions that hold nothing come back here.
struct Pool {
    db: Database,
    idle: Mutex<Vec<Client>>,
}

impl Pool {
    fn get(&self) -> Result<Client, IoError> {
        let reused = lock(&self.idle).pop();
        match reused {
            Some(c) if !c.is_closed() => Ok(c),
            _ => self
                .db
                .connect()
                // A refused password is a DbError: io_error tells it from a server away.
                .map_err(|e| io_error(&self.db, "could not connect", &e)),
        }
    }

    fn put(&self, client: Client) {
        let mut idle = lock(&self.idle);
        if !client.is_closed() && idle.len() < POOL_SIZE {
            idle.push(client);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere never leaves these half-updated: recover the data.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A session holding a lock, and for the store lock what it has read under it.
struct Session {
    client: Option<Client>,
    mode: LockMode,
    /// The store row's `version` as last read or written on this session under this lock
    /// (0: no row). A write is made only against it.
    seen: Option<i64>,
    /// The store row (version, contents) read in the same round trip as the lock, for the
    /// read that follows it.
    prefetched: Option<(i64, Option<Vec<u8>>)>,
}

/// A held advisory lock. Dropping it releases the lock and returns the session to the pool
/// (or closes it, if the release failed: a session whose lock state is unknown is never
/// reused).
pub struct PgGuard {
    session: Arc<Mutex<Session>>,
    key: i64,
    pool: Arc<Pool>,
}

impl PgGuard {
    pub fn release(&mut self) {
        let mut s = lock(&self.session);
        let Some(mut client) = s.client.take() else {
            return;
        };
        let unlock = match s.mode {
            LockMode::Shared => "pg_advisory_unlock_shared",
            LockMode::Exclusive => "pg_advisory_unlock",
        };
        // A simple query: one round trip.
        let released = client
            .simple_query(&format!("SELECT {unlock}({})", self.key))
            .map(|msgs| {
                msgs.iter().any(
                    |m| matches!(m, postgres::SimpleQueryMessage::Row(r) if r.get(0) == Some("t")),
                )
            });
        match released {
            Ok(true) => self.pool.put(client),
            // Not held any more (the session was reset) or the session is broken: close it.
            _ => drop(client),
        }
    }
}

impl Drop for PgGuard {
    fn drop(&mut self) {
        self.release();
    }
}

impl std::fmt::Debug for PgGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgGuard").field("key", &self.key).finish()
    }
}

/// The `locks` and `files` of one store in PostgreSQL.
pub struct PgPlatform {
    pub db: Database,
    pool: Arc<Pool>,
    /// The session holding this platform's store lock, while one is held.
    store_session: Weak<Mutex<Session>>,
    /// Whether the schema's version was checked (once per platform).
    schema_checked: bool,
}

impl PgPlatform {
    pub fn new(db: Database) -> Self {
        PgPlatform {
            pool: Arc::new(Pool {
                db: db.clone(),
                idle: Mutex::new(Vec::new()),
            }),
            db,
            store_session: Weak::new(),
            schema_checked: false,
        }
    }

    pub fn acquire(
        &mut self,
        target: &LockTarget,
        mode: LockMode,
        timeout_ms: u32,
    ) -> Result<PgGuard, LockError> {
        let key = self.db.lock_key(target);
        let started = Instant::now();
        let waited = || u32::try_from(started.elapsed().as_millis()).unwrap_or(u32::MAX);
        // A session that ends while it waits (the server restarting, a failover) held
        // nothing: wait on in a new one, until the same deadline.
        let (client, prefetched) = loop {
            let mut client = self.session_within(started, timeout_ms)?;
            let remaining_ms = timeout_ms
                .saturating_sub(waited())
                .max(u32::from(timeout_ms > 0));
            let mut prefetched = None;
            let taken = if remaining_ms == 0 {
                // lock_timeout = 0 means "wait forever" to PostgreSQL: try instead.
                let f = match mode {
                    LockMode::Shared => "SELECT pg_try_advisory_lock_shared($1)",
                    LockMode::Exclusive => "SELECT pg_try_advisory_lock($1)",
                };
                client
                    .query_one(f, &[&key])
                    .map(|row| row.get::<_, bool>(0))
            } else {
                let f = match mode {
                    LockMode::Shared => "pg_advisory_lock_shared",
                    LockMode::Exclusive => "pg_advisory_lock",
                };
                // One round trip: bound this wait (and every statement run while the lock is
                // held) by the caller's timeout, then wait, woken by the server on release; for
                // the store lock, once the schema is known to exist, also read the row the core
                // reads next. It is its own statement, so it reads a snapshot taken after the
                // lock was granted (in one statement, the snapshot would predate the wait).
                let statement_ms = u64::from(remaining_ms) + 30_000;
                let mut sql = format!(
                    "SET lock_timeout = {remaining_ms}; SET statement_timeout = {statement_ms}; SELECT {f}({key})"
                );
                let prefetch = *target == LockTarget::Store && self.schema_checked;
                if prefetch {
                    // The store name is checked to need no quoting (database.rs).
                    sql.push_str(&format!(
                        "; SELECT version, store FROM {}.stores WHERE name = '{}'",
                        self.db.schema_ident(),
                        self.db.store
                    ));
                }
                client.simple_query(&sql).map(|msgs| {
                    if prefetch {
                        prefetched = Some(prefetched_row(&msgs));
                    }
                    true
                })
            };
            match taken {
                Ok(true) => break (client, prefetched),
                Ok(false) => {
                    self.pool.put(client);
                    return Err(LockError::Timeout(waited()));
                }
                Err(e) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => {
                    self.pool.put(client);
                    return Err(LockError::Timeout(waited()));
                }
                Err(e) if session_ended(&e) && waited() < timeout_ms => continue,
                Err(e) => {
                    return Err(LockError::Io(io_error(
                        &self.db,
                        "could not take a lock",
                        &e,
                    )))
                }
            }
        };
        let session = Arc::new(Mutex::new(Session {
            client: Some(client),
            mode,
            seen: None,
            prefetched: prefetched.flatten(),
        }));
        if *target == LockTarget::Store {
            self.store_session = Arc::downgrade(&session);
        }
        Ok(PgGuard {
            session,
            key,
            pool: Arc::clone(&self.pool),
        })
    }

    /// A session, waiting up to the lock timeout for a server that refuses connections or
    /// is starting up (a restart, a failover): to a waiter, a server coming back is one more
    /// reason the lock is not free yet. Then the last connection error.
    fn session_within(&self, started: Instant, timeout_ms: u32) -> Result<Client, LockError> {
        let deadline = started + std::time::Duration::from_millis(u64::from(timeout_ms));
        let mut pause = std::time::Duration::from_millis(20);
        loop {
            match self.pool.get() {
                Ok(c) => return Ok(c),
                Err(e) if Instant::now() + pause < deadline => {
                    let _ = e;
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(std::time::Duration::from_millis(500));
                }
                Err(e) => return Err(LockError::Io(e)),
            }
        }
    }

    /// Run `f` on the session holding the store lock, or (no lock held: the unlocked header
    /// read before locking) on a pooled session.
    fn on_session<R>(
        &mut self,
        f: impl FnOnce(&mut Client, &mut Session) -> Result<R, FileError>,
    ) -> Result<R, FileError> {
        if let Some(held) = self.store_session.upgrade() {
            let mut s = lock(&held);
            if let Some(mut client) = s.client.take() {
                let r = f(&mut client, &mut s);
                s.client = Some(client);
                return r;
            }
        }
        let mut client = self.pool.get().map_err(FileError::Io)?;
        let mut scratch = Session {
            client: None,
            mode: LockMode::Shared,
            seen: None,
            prefetched: None,
        };
        let r = f(&mut client, &mut scratch);
        self.pool.put(client);
        r
    }

    pub fn read(&mut self, file: StoreFile) -> Result<Option<Vec<u8>>, FileError> {
        let db = self.db.clone();
        let check_schema = !self.schema_checked;
        let sql = format!(
            "SELECT version, {} FROM {}.stores WHERE name = $1",
            column(file),
            db.schema_ident()
        );
        let mut schema_ok = false;
        let (_version, bytes) = self.on_session(|client, s| {
            if file == StoreFile::Store {
                if let Some((version, bytes)) = s.prefetched.take() {
                    s.seen = Some(version);
                    return Ok((version, bytes));
                }
            }
            if check_schema && !schema::check_version(client, &db)? {
                s.seen = Some(0);
                return Ok((0, None));
            }
            schema_ok = true;
            let row = match client.query_typed(&sql, &[(&db.store, postgres::types::Type::TEXT)]) {
                Ok(rows) => rows.into_iter().next(),
                // No schema yet: no store yet. The first write creates it.
                Err(e) if schema::is_missing(&e) => None,
                Err(e) => return Err(FileError::Io(io_error(&db, "could not read the store", &e))),
            };
            let (version, bytes) = match row {
                Some(row) => (row.get::<_, i64>(0), row.get::<_, Option<Vec<u8>>>(1)),
                None => (0, None),
            };
            s.seen = Some(version);
            Ok((version, bytes))
        })?;
        self.schema_checked |= schema_ok;
        match bytes {
            Some(b) if b.len() as u64 > crate::files::MAX_STORE_BYTES => {
                Err(FileError::TooLarge(b.len() as u64))
            }
            b => Ok(b),
        }
    }

    /// The first `limit` bytes of the store, read without a lock (the header, to open the key
    /// before locking); also checks the schema's version once, so that the locks that
    /// follow can read the row in their own round trip.
    pub fn read_head(&mut self, limit: u32) -> Result<Option<Vec<u8>>, FileError> {
        let db = self.db.clone();
        let mut client = self.pool.get().map_err(FileError::Io)?;
        let result = (|| {
            if !self.schema_checked {
                if !schema::check_version(&mut client, &db)? {
                    return Ok(None);
                }
                self.schema_checked = true;
            }
            let sql = format!(
                "SELECT substring(store from 1 for {limit}) FROM {}.stores WHERE name = $1",
                db.schema_ident()
            );
            match client.query_typed(&sql, &[(&db.store, postgres::types::Type::TEXT)]) {
                Ok(rows) => Ok(rows.into_iter().next().and_then(|r| r.get(0))),
                Err(e) if schema::is_missing(&e) => Ok(None),
                Err(e) => Err(FileError::Io(io_error(&db, "could not read the store", &e))),
            }
        })();
        self.pool.put(client);
        result
    }

    /// Write `contents` as `file`, fenced by the version this session read under the
    /// exclusive lock; `None` clears the column (`remove`).
    fn write(&mut self, file: StoreFile, contents: Option<&[u8]>) -> Result<(), FileError> {
        self.fenced_write(|client, db, seen| schema::write_row(client, db, file, contents, seen))
    }

    /// Run `write` (one statement or transaction, given the version read under the lock, and
    /// answering the row's new version, or `None` if the row is no longer at it) on the
    /// session that holds the exclusive store lock.
    fn fenced_write(
        &mut self,
        write: impl FnOnce(&mut Client, &Database, i64) -> Result<Option<i64>, postgres::Error>,
    ) -> Result<(), FileError> {
        let db = self.db.clone();
        let held = self
            .store_session
            .upgrade()
            .expect("the core writes only under the exclusive store lock");
        let mut s = lock(&held);
        assert_eq!(
            s.mode,
            LockMode::Exclusive,
            "the core writes only under the exclusive store lock"
        );
        let seen = s
            .seen
            .expect("the core writes only what it read under the same lock");
        let Some(client) = s.client.as_mut() else {
            panic!("a write after the store lock was released");
        };
        // A test stops or kills the holder here: lock held, store read, nothing written.
        crate::failpoints::hit("db-write:before");
        let written = write(client, &db, seen).map_err(|e| FileError::Io(write_error(&db, &e)))?;
        let Some(version) = written else {
            return Err(FileError::Io(fenced(&db, seen)));
        };
        s.seen = Some(version);
        Ok(())
    }

    pub fn replace(&mut self, file: StoreFile, contents: &[u8]) -> Result<(), FileError> {
        self.write(file, Some(contents))
    }

    pub fn remove(&mut self, file: StoreFile) -> Result<(), FileError> {
        self.write(file, None)
    }

    pub fn read_record(&mut self, id: &str) -> Result<Option<Vec<u8>>, FileError> {
        let db = self.db.clone();
        self.on_session(|client, s| {
            let seen = s
                .seen
                .expect("records are read after the header, under the lock");
            schema::read_record(client, &db, id, seen)
                .map_err(|e| FileError::Io(io_error(&db, "could not read a tenant record", &e)))?
                .map_err(|_| FileError::Io(moved(&db, seen)))
        })
    }

    pub fn read_records(&mut self) -> Result<Vec<(String, Vec<u8>)>, FileError> {
        let db = self.db.clone();
        self.on_session(|client, s| {
            let seen = s
                .seen
                .expect("records are read after the header, under the lock");
            schema::read_records(client, &db, seen)
                .map_err(|e| FileError::Io(io_error(&db, "could not read the tenant records", &e)))?
                .map_err(|_| FileError::Io(moved(&db, seen)))
        })
    }

    /// The header and the records in one fenced write (see [`schema::write_records`]).
    pub fn write_records(
        &mut self,
        header: &[u8],
        records: &[RecordWrite],
    ) -> Result<(), FileError> {
        let (mut ids, mut sealed, mut gone) = (Vec::new(), Vec::new(), Vec::new());
        for r in records {
            match &r.sealed {
                Some(bytes) => {
                    ids.push(r.id.as_str());
                    sealed.push(bytes.as_slice());
                }
                None => gone.push(r.id.as_str()),
            }
        }
        self.fenced_write(|client, db, seen| {
            schema::write_records(client, db, header, (&ids, &sealed), &gone, seen)
        })
    }

    pub fn quarantine(&mut self, file: StoreFile, now_ms: u64) -> Result<String, FileError> {
        let db = self.db.clone();
        let held = self
            .store_session
            .upgrade()
            .expect("the core quarantines only under the exclusive store lock");
        let mut s = lock(&held);
        let seen = s.seen.expect("quarantine follows a read under the lock");
        let Some(client) = s.client.as_mut() else {
            panic!("a quarantine after the store lock was released");
        };
        let moved_as = schema::quarantine_row(client, &db, file, seen, now_ms)
            .map_err(|e| FileError::Io(io_error(&db, "could not quarantine the store", &e)))?;
        match moved_as {
            Ok(name) => {
                s.seen = Some(seen + 1);
                Ok(name)
            }
            Err(schema::NotMoved::Fenced) => Err(FileError::Io(IoError::Fenced(format!(
                "{db}: the store changed since this process read it under its lock; nothing was moved"
            )))),
            Err(schema::NotMoved::Absent) => Err(FileError::Io(IoError::Other(format!(
                "{db}: there is no {} to move aside",
                column(file)
            )))),
        }
    }
}

/// A write that failed: lost with its session (not acknowledged, perhaps applied), or refused.
fn write_error(db: &Database, e: &postgres::Error) -> IoError {
    if e.is_closed() || e.as_db_error().is_none() {
        unreachable_error(
            db,
            "the session holding the store lock was lost during a write, which was not acknowledged (it may or may not have been applied; the next read shows which)",
            e,
        )
    } else {
        io_error(db, "could not write the store", e)
    }
}

/// Records that would be of another version than the header read under the same lock: the
/// lock was lost (its session ended) and another process wrote. (With advisory locks a lost
/// lock is a lost session, whose reads fail anyway; this holds whatever the cause.)
fn moved(db: &Database, seen: i64) -> IoError {
    IoError::Fenced(format!(
        "{db}: the store changed since this process read its header under its lock (version {seen}): its lock was lost; nothing was read, retry"
    ))
}

fn fenced(db: &Database, seen: i64) -> IoError {
    IoError::Fenced(format!(
        "{db}: the store changed since this process read it under its lock (version {seen}): its lock was lost (its database session ended) and another process wrote; nothing was written"
    ))
}

/// The store row from the prefetching lock batch: the rows after its first three statements
/// (two `SET`s and the lock). `None` if the answer is not what was asked (then the read goes
/// to the server as usual).
fn prefetched_row(msgs: &[postgres::SimpleQueryMessage]) -> Option<(i64, Option<Vec<u8>>)> {
    use postgres::SimpleQueryMessage::{CommandComplete, Row};
    let mut done = 0;
    let mut row = None;
    for m in msgs {
        match m {
            CommandComplete(_) => done += 1,
            Row(r) if done == 3 => row = Some(r),
            _ => {}
        }
    }
    if done != 4 {
        return None;
    }
    let Some(r) = row else {
        return Some((0, None));
    };
    let version: i64 = r.get(0)?.parse().ok()?;
    let bytes = match r.get(1) {
        None => None,
        // bytea's text form: \x and hex.
        Some(text) => Some(hex::decode(text.strip_prefix("\\x")?).ok()?),
    };
    Some((version, bytes))
}

/// Whether the session itself is gone (closed, or ended by the server: a shutdown, a
/// restart, a terminated backend), as opposed to a statement that failed in a live session.
fn session_ended(e: &postgres::Error) -> bool {
    e.is_closed()
        || match e.code() {
            Some(c) => c.code().starts_with("57P") || c.code().starts_with("08"),
            None => e.as_db_error().is_none(),
        }
}

/// The column of the store row that holds `file`.
pub(crate) fn column(file: StoreFile) -> &'static str {
    match file {
        StoreFile::Store => "store",
        StoreFile::Backup => "backup",
    }
}

/// A database failure as the store error that says what to do. The server's message never
/// holds a password; it is cut to one line all the same.
pub(crate) fn io_error(db: &Database, what: &str, e: &postgres::Error) -> IoError {
    let Some(dbe) = e.as_db_error() else {
        return unreachable_error(db, what, e);
    };
    let detail = format!(
        "{db}: {what}: {} (SQLSTATE {})",
        one_line(dbe.message()),
        dbe.code().code()
    );
    let code = dbe.code();
    if *code == SqlState::INVALID_PASSWORD || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
    {
        // Refused at the door (a wrong password, an unknown role, pg_hba.conf): grants are
        // not the problem, and the advice must not send the user to them.
        IoError::AuthFailed(detail)
    } else if *code == SqlState::INSUFFICIENT_PRIVILEGE {
        IoError::PermissionDenied(format!(
            "{detail}; the database role needs USAGE and CREATE on the schema, SELECT, INSERT, UPDATE on its tables, and DELETE on its records (FORMAT.md, \"PostgreSQL\")"
        ))
    } else if *code == SqlState::DISK_FULL || *code == SqlState::OUT_OF_MEMORY {
        IoError::NoSpace(detail)
    } else if code.code().starts_with("08")
        || code.code().starts_with("57P")
        || *code == SqlState::QUERY_CANCELED
    {
        IoError::Unreachable(detail)
    } else {
        IoError::Other(detail)
    }
}

fn unreachable_error(db: &Database, what: &str, e: &postgres::Error) -> IoError {
    // tokio-postgres's own errors (connect, I/O, TLS, closed) name no secrets either; their
    // causes (which TLS check failed, which socket error) are in the source chain.
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    IoError::Unreachable(format!("{db}: {what}: {}", one_line(&text)))
}

/// A server's text as one bounded line: it goes into error messages and JSON reports.
fn one_line(s: &str) -> String {
    let line: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(300)
        .collect();
    line.trim().to_owned()
}

/// The text of an I/O error, for `doctor`.
pub(crate) fn io_text(e: &IoError) -> String {
    match e {
        IoError::NotARegularFile(d)
        | IoError::PermissionDenied(d)
        | IoError::NoSpace(d)
        | IoError::UnsafePermissions(d)
        | IoError::OtherLockProtocol(d)
        | IoError::Unreachable(d)
        | IoError::Fenced(d)
        | IoError::AuthFailed(d)
        | IoError::Other(d) => d.clone(),
    }
}
