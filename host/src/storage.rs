//! Where a store's bytes and locks live, chosen once when the store is opened: a directory
//! ([`FileStorage`]: flock on sidecar files, atomic file replacement with a backup) or a
//! PostgreSQL database ([`PgPlatform`]: advisory locks, rows, one
//! record per tenant). Both serve the one [`NativePlatform`](crate::native::NativePlatform),
//! which adds what every store needs whatever its medium: keys, the endpoint policy, the
//! clock, randomness and a login's state.

use crate::files;
use crate::io_util::{ensure_private_dir, io_error};
use crate::layout::Layout;
use crate::locks::{self, LockGuard};
use crate::native::{Guard, LOCK_PROTOCOL};
use crate::pg::PgPlatform;
use crate::queue::Queue;
use credlock_core::platform::{
    FileError, IoError, Layout as BodyLayout, LockError, LockMode, LockTarget, RecordWrite,
    StoreFile,
};
use std::time::Duration;

/// The medium of one store: its locks and its files (or rows). Each method has the meaning
/// of the `Platform` method of the same name (`credlock_core::platform`).
pub trait Storage: Send {
    /// Where the store is, for messages (never a password).
    fn location(&self) -> String;
    /// How the store keeps its tenants: in the store file, or one record each.
    fn layout(&self) -> BodyLayout;
    /// Take a lock. Called after [`Storage::prepare_lock`] and, for the store lock, after
    /// the platform opened the data key (nothing slow runs while a lock is held).
    fn acquire(
        &mut self,
        target: &LockTarget,
        mode: LockMode,
        timeout_ms: u32,
    ) -> Result<Guard, LockError>;
    /// What must hold before any lock is taken or file read (a directory's privacy, its lock
    /// protocol); nothing by default.
    fn prepare_lock(&mut self, _target: &LockTarget, _mode: LockMode) -> Result<(), LockError> {
        Ok(())
    }
    fn read(&mut self, file: StoreFile) -> Result<Option<Vec<u8>>, FileError>;
    /// The first `limit` bytes of the store, unlocked: enough for its header.
    fn read_head(&mut self, limit: u32) -> Result<Option<Vec<u8>>, FileError>;
    fn replace(&mut self, file: StoreFile, contents: &[u8]) -> Result<(), FileError>;
    fn remove(&mut self, file: StoreFile) -> Result<(), FileError>;
    fn quarantine(&mut self, file: StoreFile, now_ms: u64) -> Result<String, FileError>;
    /// Tenant records, for a medium whose [`Storage::layout`] is `Records`. The core asks
    /// only such a medium (`credlock_core::store`), so the defaults are never reached.
    fn read_record(&mut self, _id: &str) -> Result<Option<Vec<u8>>, FileError> {
        Err(no_records())
    }
    fn read_records(&mut self) -> Result<Vec<(String, Vec<u8>)>, FileError> {
        Err(no_records())
    }
    fn write_records(&mut self, _store: &[u8], _records: &[RecordWrite]) -> Result<(), FileError> {
        Err(no_records())
    }
    /// The queue of writes (group commit), for a medium that keeps one; the core makes no
    /// queue call where [`Storage::queue`] is `None`.
    fn queue(&mut self) -> Option<&mut Queue> {
        None
    }
}

fn no_records() -> FileError {
    FileError::Io(IoError::Other(
        "tenant records are kept only by a database store".into(),
    ))
}

/// A store in a directory: the store file, its backup, and flock'd sidecar lock files.
pub struct FileStorage {
    layout: Layout,
    queue: Queue,
    /// Whether this store's `lock-protocol` marker says [`LOCK_PROTOCOL`] (checked once).
    protocol_checked: bool,
    /// Whether this platform removed dead writers' temp files (at its first write).
    swept: bool,
    /// Whether the store directory passed `privacy::check_store_dir` (checked once).
    dir_checked: bool,
}

impl FileStorage {
    pub fn new(layout: Layout) -> Self {
        FileStorage {
            queue: Queue::new(layout.dir.clone()),
            layout,
            protocol_checked: false,
            swept: false,
            dir_checked: false,
        }
    }

    /// Claim the store for our lock protocol, or refuse one that another lock protocol (the
    /// WASI build's lease files, or the other OS's locks) already uses: two protocols on one
    /// store exclude nothing.
    ///
    /// Only a writer (an exclusive lock) writes the marker, and only where it is missing: a
    /// reader never writes to the store directory, so `token` and `list` work on a full disk
    /// or a read-only directory. A reader that finds no marker reads under flock all the same
    /// (nothing has claimed the store for another protocol yet).
    fn check_protocol(&mut self, mode: LockMode) -> Result<(), LockError> {
        if self.protocol_checked {
            return Ok(());
        }
        let marker = self.layout.lock_protocol();
        let io = |e: FileError| {
            LockError::Io(match e {
                FileError::Io(e) => e,
                FileError::TooLarge(n) => {
                    IoError::Other(format!("{}: {n} bytes", marker.display()))
                }
            })
        };
        let found = match files::read(&marker, 64).map_err(io)? {
            Some(found) => found,
            None if mode == LockMode::Shared => return Ok(()),
            None => {
                files::create_exclusive(&marker, format!("{LOCK_PROTOCOL}\n").as_bytes())
                    .map_err(io)?;
                files::read(&marker, 64).map_err(io)?.unwrap_or_default()
            }
        };
        let found = String::from_utf8_lossy(&found);
        if found.trim() != LOCK_PROTOCOL {
            let what = match found.trim() {
                "flock" => "flock, as on Linux and macOS",
                "lockfileex" => "LockFileEx, as on Windows",
                _ => "the WASI build's lease files",
            };
            return Err(LockError::Io(IoError::OtherLockProtocol(format!(
                "this store is locked with {} ({what}), which {LOCK_PROTOCOL} does not exclude: use the same kind of host for this store",
                found.trim()
            ))));
        }
        self.protocol_checked = true;
        Ok(())
    }

    fn path(&self, file: StoreFile) -> std::path::PathBuf {
        match file {
            StoreFile::Store => self.layout.store(),
            StoreFile::Backup => self.layout.backup(),
        }
    }
}

impl Storage for FileStorage {
    fn location(&self) -> String {
        self.layout.store().display().to_string()
    }

    fn layout(&self) -> BodyLayout {
        BodyLayout::Blob
    }

    fn prepare_lock(&mut self, target: &LockTarget, mode: LockMode) -> Result<(), LockError> {
        if *target != LockTarget::Store {
            return Ok(());
        }
        if !self.dir_checked {
            // Before anything is created or read: a directory others can write is refused
            // whatever the operation (promise 6).
            crate::privacy::check_store_dir(&self.layout.dir).map_err(LockError::Io)?;
            self.dir_checked = true;
        }
        ensure_private_dir(&self.layout.dir)
            .map_err(|e| LockError::Io(io_error(&e, &self.layout.dir)))?;
        self.check_protocol(mode)
    }

    fn acquire(
        &mut self,
        target: &LockTarget,
        mode: LockMode,
        timeout_ms: u32,
    ) -> Result<Guard, LockError> {
        let path = match target {
            LockTarget::Store => self.layout.store_lock(),
            LockTarget::Refresh(id) => {
                let dir = self.layout.lock_dir();
                ensure_private_dir(&dir).map_err(|e| LockError::Io(io_error(&e, &dir)))?;
                self.layout.refresh_lock(id)
            }
        };
        locks::acquire(&path, mode, Duration::from_millis(u64::from(timeout_ms)))
            .map(|g: LockGuard| Guard::File(g))
    }

    fn read(&mut self, file: StoreFile) -> Result<Option<Vec<u8>>, FileError> {
        files::read(&self.path(file), files::MAX_STORE_BYTES)
    }

    fn read_head(&mut self, limit: u32) -> Result<Option<Vec<u8>>, FileError> {
        files::read_head(&self.layout.store(), u64::from(limit))
    }

    fn replace(&mut self, file: StoreFile, contents: &[u8]) -> Result<(), FileError> {
        // The core writes only under the exclusive store lock. So the directory needs no
        // check here (`prepare_lock` made and checked it, and the lock file lives in it), and
        // this is the one moment when every store temp file is a dead writer's: sweeping
        // once per platform (each pooled instance of a `Store`, each CLI process) is enough
        // for crash litter.
        if !self.swept {
            files::sweep_litter(&self.layout.dir);
            self.swept = true;
        }
        let backup = (file == StoreFile::Store).then(|| self.layout.backup());
        files::replace(&self.path(file), contents, backup.as_deref())
    }

    fn remove(&mut self, file: StoreFile) -> Result<(), FileError> {
        files::remove(&self.path(file))
    }

    fn quarantine(&mut self, file: StoreFile, now_ms: u64) -> Result<String, FileError> {
        files::quarantine(&self.path(file), now_ms)
    }

    // A database store has none: each `put` writes one tenant's record, and the server
    // commits its own log in groups.
    fn queue(&mut self) -> Option<&mut Queue> {
        Some(&mut self.queue)
    }
}

impl Storage for PgPlatform {
    fn location(&self) -> String {
        self.db.to_string()
    }

    fn layout(&self) -> BodyLayout {
        BodyLayout::Records
    }

    fn acquire(
        &mut self,
        target: &LockTarget,
        mode: LockMode,
        timeout_ms: u32,
    ) -> Result<Guard, LockError> {
        PgPlatform::acquire(self, target, mode, timeout_ms).map(Guard::Database)
    }

    fn read(&mut self, file: StoreFile) -> Result<Option<Vec<u8>>, FileError> {
        PgPlatform::read(self, file)
    }

    fn read_head(&mut self, limit: u32) -> Result<Option<Vec<u8>>, FileError> {
        PgPlatform::read_head(self, limit)
    }

    fn replace(&mut self, file: StoreFile, contents: &[u8]) -> Result<(), FileError> {
        PgPlatform::replace(self, file, contents)
    }

    fn remove(&mut self, file: StoreFile) -> Result<(), FileError> {
        PgPlatform::remove(self, file)
    }

    fn quarantine(&mut self, file: StoreFile, now_ms: u64) -> Result<String, FileError> {
        PgPlatform::quarantine(self, file, now_ms)
    }

    fn read_record(&mut self, id: &str) -> Result<Option<Vec<u8>>, FileError> {
        PgPlatform::read_record(self, id)
    }

    fn read_records(&mut self) -> Result<Vec<(String, Vec<u8>)>, FileError> {
        PgPlatform::read_records(self)
    }

    fn write_records(&mut self, store: &[u8], records: &[RecordWrite]) -> Result<(), FileError> {
        PgPlatform::write_records(self, store, records)
    }
}
