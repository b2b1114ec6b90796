//! The native platform: the core's seam implemented over a store's medium (`storage.rs`: a
//! directory with OS file locks, or PostgreSQL), with host-side AES-GCM keys, ureq, the OS
//! clock and the OS random source.
//! The component's imports (`credlock_witglue`, linked by `component.rs`) forward to this,
//! and native embedders can drive the core with it directly
//! (`credlock_core::Store::new(&mut platform, ..)`).

use crate::endpoint::{self, EndpointPolicy};
use crate::keys::{DataKey, KeyHandle, Keyring};
use crate::layout::Layout;
use crate::locks::LockGuard;
use crate::pg::{Database, PgGuard, PgPlatform};
use crate::storage::{FileStorage, Storage};
use credlock_core::platform::*;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

pub struct NativePlatform {
    /// The store's directory. A database store keeps only local things there (the default
    /// compiled-component cache, helper mappings).
    pub layout: Layout,
    pub keys: Keyring,
    pub policy: EndpointPolicy,
    origin: Instant,
    /// A login's prompt sink and loopback listener (`login.rs`).
    pub login: crate::login::LoginState,
    /// Where the store's bytes and locks live (`storage.rs`): the directory, or PostgreSQL.
    storage: Box<dyn Storage>,
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

/// What the WIT asks beyond the core's seam, for the component's imports
/// (`credlock_witglue`).
impl credlock_witglue::WitPlatform for NativePlatform {
    fn release(guard: &mut Guard) {
        guard.release()
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
            storage: Box::new(FileStorage::new(layout.clone())),
            layout,
            keys,
            policy,
            origin: Instant::now(),
            login: Default::default(),
        }
    }

    /// Keep the store in `db` instead of the directory (which then holds only local things:
    /// the default cache, helper mappings).
    pub fn with_database(mut self, db: Option<Database>) -> Self {
        if let Some(db) = db {
            self.storage = Box::new(PgPlatform::new(db));
        }
        self
    }

    /// Where the store is, for messages: its directory's store file, or its database.
    pub fn location(&self) -> String {
        self.storage.location()
    }

    /// Open the store's data key before its lock is taken, so that the slow part of opening
    /// (argon2id for a passphrase, ~0.2 s; a keyring call over D-Bus) never runs while the
    /// lock is held and other processes wait (promise 7). Reads the header alone, unlocked:
    /// the file (or row) is only ever replaced, so any header read is one version's. Errors
    /// are left for the read under the lock to report. Done until a key is cached, so the hot
    /// path pays nothing; a process that meets another's rekey opens the new key under the
    /// lock, once (BENCHMARKS.md).
    /// The store's queue of writes; the core calls for it only where `queue_enabled`.
    fn queue(&mut self) -> Result<&mut crate::queue::Queue, FileError> {
        self.storage.queue().ok_or_else(no_queue)
    }

    fn open_key_before_locking(&mut self) {
        if self.keys.has_any_key() {
            return;
        }
        // The header length is a u16: the whole header is within the first 64 KiB.
        let Ok(Some(prefix)) = self.storage.read_head(1 << 16) else {
            return;
        };
        let Ok((header, _)) = credlock_core::format::Header::decode(&prefix) else {
            return;
        };
        let _ = self.keys.unlock(&header.key_id, &header.slots);
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
        self.storage.prepare_lock(target, mode)?;
        if *target == LockTarget::Store {
            self.open_key_before_locking();
        }
        self.storage.acquire(target, mode, timeout_ms)
    }

    fn read(&mut self, file: StoreFile) -> Result<Option<Vec<u8>>, FileError> {
        self.storage.read(file)
    }

    fn replace(&mut self, file: StoreFile, contents: &[u8]) -> Result<(), FileError> {
        self.storage.replace(file, contents)
    }

    fn remove(&mut self, file: StoreFile) -> Result<(), FileError> {
        self.storage.remove(file)
    }

    fn quarantine(&mut self, file: StoreFile) -> Result<String, FileError> {
        let now = self.wall_ms();
        self.storage.quarantine(file, now)
    }

    fn layout(&mut self) -> credlock_core::platform::Layout {
        self.storage.layout()
    }

    fn read_record(&mut self, id: &str) -> Result<Option<Vec<u8>>, FileError> {
        self.storage.read_record(id)
    }

    fn read_records(&mut self) -> Result<Vec<(String, Vec<u8>)>, FileError> {
        self.storage.read_records()
    }

    fn write_records(&mut self, store: &[u8], records: &[RecordWrite]) -> Result<(), FileError> {
        self.storage.write_records(store, records)
    }

    fn queue_enabled(&mut self) -> bool {
        self.storage.queue().is_some_and(|q| q.enabled())
    }

    fn queue_post(&mut self, id: &str, sealed: &[u8]) -> Result<(), FileError> {
        self.queue()?.post(id, sealed)
    }

    fn queue_take(&mut self) -> Result<Vec<(String, Vec<u8>)>, FileError> {
        self.queue()?.take()
    }

    fn queue_settle(&mut self, id: &str, receipt: Option<&[u8]>) -> Result<(), FileError> {
        self.queue()?.settle(id, receipt)
    }

    fn queue_collect(&mut self, id: &str, acknowledged_only: bool) -> Result<Queued, FileError> {
        self.queue()?.collect(id, acknowledged_only)
    }

    fn queue_withdraw(&mut self, id: &str) -> Result<bool, FileError> {
        self.queue()?.withdraw(id)
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
