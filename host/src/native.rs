//! The native platform: the core's seam implemented with OS file locks (flock; LockFileEx on
//! Windows), atomic files, host-side AES-GCM, ureq, the OS clock and the OS random source.
//! The wasmtime glue (`component.rs`) forwards each WIT import to this, and native embedders
//! can drive the core with it directly (`credlock_core::Store::new(&mut platform, ..)`).

use crate::endpoint::{self, EndpointPolicy};
use crate::files;
use crate::io_util::{ensure_private_dir, io_error};
use crate::keys::{DataKey, KeyHandle, Keyring};
use crate::layout::Layout;
use crate::locks::{self, LockGuard};
use crate::pg::{Database, PgGuard, PgPlatform};
use credlock_core::platform::*;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub struct NativePlatform {
    pub layout: Layout,
    pub keys: Keyring,
    pub policy: EndpointPolicy,
    origin: Instant,
    /// Whether this store's `lock-protocol` marker says [`LOCK_PROTOCOL`] (checked once).
    protocol_checked: bool,
    /// Whether this platform removed dead writers' temp files (at its first write).
    swept: bool,
    /// Whether the store directory passed `privacy::check_store_dir` (checked once).
    dir_checked: bool,
    /// A login's prompt sink and loopback listener (`login.rs`).
    pub login: crate::login::LoginState,
    /// Where the store lives when it is not `layout`'s directory: PostgreSQL (`pg/`), whose
    /// locks and rows then stand for the lock files and the store files.
    pub database: Option<PgPlatform>,
}

/// A held lock of either kind of store.
#[derive(Debug)]
pub enum Guard {
    File(LockGuard),
    Database(PgGuard),
}

impl Guard {
    pub fn release(&mut self) {
        match self {
            Guard::File(g) => g.release(),
            Guard::Database(g) => g.release(),
        }
    }
}

/// The lock protocol of every flock host (Rust, Python, Node). See FORMAT.md, "Locks".
#[cfg(unix)]
pub const LOCK_PROTOCOL: &str = "flock";

/// The lock protocol of the Windows host: `LockFileEx` on the same sidecar files. It gets its
/// own name because it and flock do not exclude each other where one directory is reachable
/// from both kinds of host (a Windows store opened from WSL through `/mnt/c`).
#[cfg(windows)]
pub const LOCK_PROTOCOL: &str = "lockfileex";

impl NativePlatform {
    pub fn new(layout: Layout, keys: Keyring, policy: EndpointPolicy) -> Self {
        NativePlatform {
            layout,
            keys,
            policy,
            origin: Instant::now(),
            protocol_checked: false,
            swept: false,
            dir_checked: false,
            login: Default::default(),
            database: None,
        }
    }

    /// Keep the store in `db` instead of the directory (which then holds only local things:
    /// the default cache, helper mappings).
    pub fn with_database(mut self, db: Option<Database>) -> Self {
        self.database = db.map(PgPlatform::new);
        self
    }

    /// Where the store is, for messages: its directory's store file, or its database.
    pub fn location(&self) -> String {
        match &self.database {
            Some(pg) => pg.db.to_string(),
            None => self.layout.store().display().to_string(),
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

    /// Open the store's data key before its lock is taken, so that the slow part of opening
    /// (argon2id for a passphrase, ~0.2 s; a keyring call over D-Bus) never runs while the
    /// lock is held and other processes wait (promise 7). Reads the header alone, unlocked:
    /// the file is only ever replaced, so any header read is one version's. Errors are left
    /// for the read under the lock to report. Done until a key is cached, so the hot path
    /// pays nothing; a process that meets another's rekey opens the new key under the lock,
    /// once (BENCHMARKS.md).
    fn open_key_before_locking(&mut self) {
        if self.keys.has_any_key() {
            return;
        }
        // The header length is a u16: the whole header is within the first 64 KiB. The same
        // refusals as the read under the lock (no symlink, a regular file). A database row is
        // read whole, as under the lock (no lock is held: any version's header will do).
        let prefix = match &mut self.database {
            Some(pg) => pg.read_head(1 << 16),
            None => files::read_head(&self.layout.store(), 1 << 16),
        };
        let Ok(Some(prefix)) = prefix else {
            return;
        };
        let Ok((header, _)) = credlock_core::format::Header::decode(&prefix) else {
            return;
        };
        let _ = self.keys.unlock(&header.key_id, &header.slots);
    }

    fn path(&self, file: StoreFile) -> std::path::PathBuf {
        match file {
            StoreFile::Store => self.layout.store(),
            StoreFile::Backup => self.layout.backup(),
        }
    }
}

impl SealingKey for KeyHandle {
    fn key_id(&self) -> Vec<u8> {
        self.id().to_vec()
    }
    fn slots(&self) -> Vec<KeySlot> {
        DataKey::slots(self)
    }
    fn seal(&self, nonce: &[u8], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        DataKey::seal(self, nonce, aad, plaintext)
    }
    fn open(&self, nonce: &[u8], aad: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>, SealError> {
        DataKey::open(self, nonce, aad, ciphertext)
    }
    fn add_slot(&self, kind: &str) -> Result<KeySlot, KeyError> {
        KeyHandle::add_slot(self, kind)
    }
}

impl Platform for NativePlatform {
    type Guard = Guard;
    type Key = KeyHandle;

    fn acquire(
        &mut self,
        target: &LockTarget,
        mode: LockMode,
        timeout_ms: u32,
    ) -> Result<Guard, LockError> {
        if self.database.is_some() {
            if *target == LockTarget::Store {
                self.open_key_before_locking();
            }
            let pg = self.database.as_mut().expect("checked above");
            return pg.acquire(target, mode, timeout_ms).map(Guard::Database);
        }
        let path = match target {
            LockTarget::Store => {
                if !self.dir_checked {
                    // Before anything is created or read: a directory others can write is
                    // refused whatever the operation (promise 6).
                    crate::privacy::check_store_dir(&self.layout.dir).map_err(LockError::Io)?;
                    self.dir_checked = true;
                }
                ensure_private_dir(&self.layout.dir)
                    .map_err(|e| LockError::Io(io_error(&e, &self.layout.dir)))?;
                self.check_protocol(mode)?;
                self.open_key_before_locking();
                self.layout.store_lock()
            }
            LockTarget::Refresh(id) => {
                let dir = self.layout.lock_dir();
                ensure_private_dir(&dir).map_err(|e| LockError::Io(io_error(&e, &dir)))?;
                self.layout.refresh_lock(id)
            }
        };
        locks::acquire(&path, mode, Duration::from_millis(u64::from(timeout_ms))).map(Guard::File)
    }

    fn read(&mut self, file: StoreFile) -> Result<Option<Vec<u8>>, FileError> {
        if let Some(pg) = &mut self.database {
            return pg.read(file);
        }
        files::read(&self.path(file), files::MAX_STORE_BYTES)
    }

    fn replace(&mut self, file: StoreFile, contents: &[u8]) -> Result<(), FileError> {
        if let Some(pg) = &mut self.database {
            return pg.replace(file, contents);
        }
        ensure_private_dir(&self.layout.dir)
            .map_err(|e| FileError::Io(io_error(&e, &self.layout.dir)))?;
        // The core writes only under the exclusive store lock: the one moment when every
        // store temp file is a dead writer's. Once per platform (each pooled instance of a
        // `Store`, each CLI process) is enough for crash litter.
        if !self.swept {
            files::sweep_litter(&self.layout.dir);
            self.swept = true;
        }
        let backup = (file == StoreFile::Store).then(|| self.layout.backup());
        files::replace(&self.path(file), contents, backup.as_deref())
    }

    fn remove(&mut self, file: StoreFile) -> Result<(), FileError> {
        if let Some(pg) = &mut self.database {
            return pg.remove(file);
        }
        files::remove(&self.path(file))
    }

    fn quarantine(&mut self, file: StoreFile) -> Result<String, FileError> {
        let now = self.wall_ms();
        if let Some(pg) = &mut self.database {
            return pg.quarantine(file, now);
        }
        files::quarantine(&self.path(file), now)
    }

    fn layout(&mut self) -> credlock_core::platform::Layout {
        match self.database {
            Some(_) => credlock_core::platform::Layout::Records,
            None => credlock_core::platform::Layout::Blob,
        }
    }

    fn read_record(&mut self, id: &str) -> Result<Option<Vec<u8>>, FileError> {
        match &mut self.database {
            Some(pg) => pg.read_record(id),
            None => Err(no_records()),
        }
    }

    fn read_records(&mut self) -> Result<Vec<(String, Vec<u8>)>, FileError> {
        match &mut self.database {
            Some(pg) => pg.read_records(),
            None => Err(no_records()),
        }
    }

    fn write_records(&mut self, store: &[u8], records: &[RecordWrite]) -> Result<(), FileError> {
        match &mut self.database {
            Some(pg) => pg.write_records(store, records),
            None => Err(no_records()),
        }
    }

    fn unlock(&mut self, key_id: &[u8], slots: &[KeySlot]) -> Result<KeyHandle, KeyError> {
        self.keys.unlock(key_id, slots)
    }

    fn create_key(&mut self) -> Result<KeyHandle, KeyError> {
        self.keys.create()
    }

    fn rekey(&mut self, slots: &[KeySlot]) -> Result<KeyHandle, KeyError> {
        self.keys.rekey(slots)
    }

    fn post(&mut self, request: &TokenRequest) -> Result<HttpReply, TransportError> {
        crate::failpoints::hit("post:before");
        let reply = endpoint::post(request, self.policy);
        crate::failpoints::hit("post:after");
        reply
    }

    fn wall_ms(&mut self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }

    fn monotonic_ms(&mut self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    fn fill_random(&mut self, buf: &mut [u8]) {
        getrandom::getrandom(buf).expect("the OS random source is available");
    }
}
