//! The credlock `platform`, built from WASI alone, so the credlock component can run under
//! runtimes that supply nothing but WASI (the wasmtime CLI): composed with the core and the
//! command (`scripts/build-cli-wasm.sh`), it makes `target/credlock-cli.wasm`.
//!
//! # Locks: leases, not flock
//! WASI has no advisory locks. A lock here is a *lease file* (`credentials.lease`,
//! `locks/refresh-<id>.lease`) created with exclusive create, holding an owner id and an
//! expiry. A waiter polls with backoff (WASI cannot block on a file) until the lease is gone
//! or expired; an expired lease (its holder died) is broken by renaming it away, which only
//! one breaker can win.
//!
//! Ending a lease (its holder releasing it, or a waiter breaking an expired one) is claimed
//! first, by exclusive create of `<lease>.end-<owner id>`, so that two waiters that read
//! the same expired lease can never both break it and end up both holding the lock; leases
//! and the marker are created whole (a temp file hard-linked into place), never empty.
//!
//! What it does not guarantee: a holder that runs past its lease (30 s; a refresh lease
//! 180 s, which a token-endpoint call never outlives) can be overtaken;
//! shared locks are taken exclusively; hand-over costs a poll interval (1-20 ms), not
//! microseconds; a crashed holder blocks others until its lease expires.
//!
//! # Never two lock protocols on one store
//! Flock hosts do not see leases, and leases do not see flocks. The first host to touch a
//! store creates `lock-protocol` exclusively (`flock` or `wasi-lease`); every host refuses a
//! store marked with the other protocol, and this one also refuses a store that has a
//! flock sidecar (`credentials.lock`) from before the marker existed.
//!
//! # Keys
//! Key-file and passphrase slots (`credlock-keyslots`, the formats every host shares). No OS
//! keyring is reachable from WASI: `keyring` and `kernel-keyring` slots are skipped when
//! opening and cannot be added or re-made here (`slot-unavailable`). `add-slot passphrase`
//! takes the new passphrase from `CREDLOCK_NEW_PASSPHRASE`, as the native CLI does.
//!
//! # Token endpoint
//! With the `http` feature (`target/credlock-cli-http.wasm`), `wasi:http/outgoing-handler`
//! (`http.rs`): run with `wasmtime run -S http`. Without it (`target/credlock-cli.wasm`,
//! which runs with no flags), a refresh fails with `connect`: nothing sent, nothing spent. The
//! single-flight refresh as a native host: the refresh lock is a lease held across the call,
//! and the call never runs past that lease.
//!
//! # Key files
//! WASI cannot set a file's mode, so a new key file would get the runtime's default (0644
//! seen): a new key-file slot is refused unless `CREDLOCK_ALLOW_UNPROTECTED_KEY_FILE=1`
//! (the directory is private to the user). A passphrase store needs no key file.

// Only a wasm build makes sense: exported names such as `credlock:store/files@0.1.0#read`
// are not valid in a native shared library's symbol list, so a native build (`cargo build
// --workspace`) compiles this crate empty instead of failing to link.
#![cfg(target_family = "wasm")]
#![deny(unsafe_code)]

#[allow(unsafe_code)]
mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "wasi-platform",
    });
    use super::Platform;
    export!(Platform);
}

#[cfg(feature = "http")]
mod http;
mod login;

use bindings::exports::credlock::store::{
    clock, files, locks, random, sealing, token_endpoint, types,
};
use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use zeroize::Zeroizing;

const LEASE_MS: u64 = 30_000;
/// A refresh lease: the longest token-endpoint call (`http-timeout`, at most 120 s by
/// `Options::validate`) fits in it with room to spare.
const REFRESH_LEASE_MS: u64 = 180_000;
const PROTOCOL: &str = "wasi-lease";
const MAX_STORE_BYTES: u64 = 16 * 1024 * 1024;
/// Bounds the search for a free `<name>.corrupt-<ms>-<n>` name.
const MAX_QUARANTINE_NAMES: u32 = 1000;

struct Platform;

fn store_dir() -> PathBuf {
    PathBuf::from(std::env::var("CREDLOCK_STORE").unwrap_or_else(|_| "/store".into()))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn rand<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).expect("wasi:random is available");
    b
}

fn io_error(e: &std::io::Error, path: &Path) -> types::IoError {
    let d = format!("{}: {e}", path.display());
    match e.kind() {
        ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem => {
            types::IoError::PermissionDenied(d)
        }
        ErrorKind::StorageFull | ErrorKind::QuotaExceeded => types::IoError::NoSpace(d),
        _ => types::IoError::Other(d),
    }
}

/// Create `path` with `contents`, whole, or find it already there (`Ok(false)`): the
/// contents go to a temp file first, which is then hard-linked to `path` (a link never
/// replaces). So nobody ever reads a file that is created but not yet written, and a crash
/// leaves either no file or the whole one (plus a temp file), never an empty one.
fn create_whole(path: &Path, contents: &[u8]) -> std::io::Result<bool> {
    let dir = path.parent().expect("store files live in a directory");
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.new-{}", hex::encode(rand::<8>())));
    let made = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
        match fs::hard_link(&tmp, path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        }
    })();
    let _ = fs::remove_file(&tmp);
    if made? {
        File::open(dir).and_then(|d| d.sync_all())?;
        return Ok(true);
    }
    Ok(false)
}

/// Make sure this store speaks the lease protocol (see the crate doc).
fn check_protocol(dir: &Path) -> Result<(), types::IoError> {
    let marker = dir.join("lock-protocol");
    if !marker.exists() {
        if dir.join("credentials.lock").exists() {
            return Err(refusal("flock (credentials.lock exists)"));
        }
        create_whole(&marker, format!("{PROTOCOL}\n").as_bytes())
            .map_err(|e| io_error(&e, &marker))?;
    }
    let found = fs::read_to_string(&marker).map_err(|e| io_error(&e, &marker))?;
    if found.trim() == PROTOCOL {
        Ok(())
    } else {
        Err(refusal(found.trim()))
    }
}

fn refusal(other: &str) -> types::IoError {
    types::IoError::OtherLockProtocol(format!(
        "this store is locked with {other}; the WASI build locks with lease files, which flock hosts do not see: use a native credlock host for this store"
    ))
}

pub struct Lease {
    path: PathBuf,
    owner: String,
    held: RefCell<bool>,
}

thread_local! {
    // Leases this instance holds, with their expiry (wall ms): a token-endpoint call never
    // runs past the refresh lease that protects it (`http::post`).
    static HELD: RefCell<Vec<(PathBuf, u64)>> = const { RefCell::new(Vec::new()) };
}

/// The lease file's owner id and expiry, if it parses.
fn read_lease(path: &Path) -> Option<(String, u64)> {
    let text = fs::read_to_string(path).ok()?;
    let mut words = text.split_whitespace();
    let owner = words.next()?.to_owned();
    let expiry = words.next()?.parse().ok()?;
    Some((owner, expiry))
}

/// End the lease `owner` holds on `path` (its holder releasing it, or a waiter breaking it
/// after it expired), safely against everyone else doing the same at once.
///
/// Removing a lease is check-then-act (read whose it is, then remove the file), and two
/// parties that read the same lease must not both act: the second would remove the lease
/// the first one's successor just took, and two processes would hold the lock. So ending
/// lease `owner` first claims `<lease>.end-<owner>` by exclusive create; only the claimant
/// removes that lease, so it is still the file at `path` after the claim (owner ids are
/// random and never reused), which the re-read confirms. The claim is removed afterwards;
/// a latecomer that claims it again finds another owner's lease (or none) and leaves it.
/// Returns whether this call removed the lease.
fn end_lease(path: &Path, owner: &str) -> bool {
    let claim = PathBuf::from(format!("{}.end-{owner}", path.display()));
    if OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&claim)
        .is_err()
    {
        return false;
    }
    let ended = read_lease(path).is_some_and(|(o, _)| o == owner) && fs::remove_file(path).is_ok();
    let _ = fs::remove_file(&claim);
    ended
}

impl Lease {
    fn release_now(&self) {
        if self.held.replace(false) {
            HELD.with(|h| h.borrow_mut().retain(|(p, _)| p != &self.path));
            // Only our own lease: after it expired someone else may hold the lock.
            end_lease(&self.path, &self.owner);
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.release_now();
    }
}

impl locks::GuestLockGuard for Lease {
    fn release(&self) {
        self.release_now();
    }
}

impl locks::Guest for Platform {
    type LockGuard = Lease;

    fn acquire(
        target: locks::LockTarget,
        _mode: locks::LockMode,
        timeout_ms: u32,
    ) -> Result<locks::LockGuard, locks::LockError> {
        let dir = store_dir();
        fs::create_dir_all(&dir).map_err(|e| locks::LockError::Io(io_error(&e, &dir)))?;
        check_protocol(&dir).map_err(locks::LockError::Io)?;
        let path = match &target {
            locks::LockTarget::Store => dir.join("credentials.lease"),
            locks::LockTarget::Refresh(id) => {
                if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(locks::LockError::Io(types::IoError::Other(
                        "invalid refresh lock id".into(),
                    )));
                }
                let locks = dir.join("locks");
                fs::create_dir_all(&locks)
                    .map_err(|e| locks::LockError::Io(io_error(&e, &locks)))?;
                locks.join(format!("refresh-{id}.lease"))
            }
        };
        let owner = hex::encode(rand::<16>());
        let lease_ms = match target {
            locks::LockTarget::Store => LEASE_MS,
            // Held across a token-endpoint call: long enough for the longest one allowed
            // (`post` never runs past it).
            locks::LockTarget::Refresh(_) => REFRESH_LEASE_MS,
        };
        let started = Instant::now();
        let mut backoff_ms = 1;
        loop {
            let expiry = now_ms() + lease_ms;
            let record = format!("{owner} {expiry}\n");
            // Created whole (never empty for a moment), and never over another's lease.
            match create_whole(&path, record.as_bytes()) {
                Ok(true) => {
                    HELD.with(|h| h.borrow_mut().push((path.clone(), expiry)));
                    return Ok(locks::LockGuard::new(Lease {
                        path,
                        owner,
                        held: RefCell::new(true),
                    }));
                }
                Ok(false) => match read_lease(&path) {
                    // Its holder died or overran: break it, once (see `end_lease`).
                    Some((other, expiry)) if expiry < now_ms() && end_lease(&path, &other) => {
                        continue
                    }
                    Some(_) => {}
                    // Gone meanwhile: try again at once. (A lease that does not parse was
                    // not written by this protocol's create_whole; it waits like any other
                    // until its file is removed by hand, which the timeout error names.)
                    None if !path.exists() => continue,
                    None => {}
                },
                Err(e) => return Err(locks::LockError::Io(io_error(&e, &path))),
            }
            let waited = started.elapsed().as_millis() as u64;
            if waited >= u64::from(timeout_ms) {
                return Err(locks::LockError::Timeout(waited as u32));
            }
            std::thread::sleep(Duration::from_millis(
                backoff_ms.min(u64::from(timeout_ms) - waited),
            ));
            backoff_ms = (backoff_ms * 2).min(20);
        }
    }
}

fn file_path(f: files::StoreFile) -> PathBuf {
    store_dir().join(match f {
        files::StoreFile::Store => "credentials.sealed",
        files::StoreFile::Backup => "credentials.sealed.bak",
    })
}

fn not_regular(path: &Path) -> Result<(), files::FileError> {
    match fs::symlink_metadata(path) {
        Ok(m) if !m.is_file() => Err(files::FileError::Io(types::IoError::NotARegularFile(
            format!("{}: not a regular file (refused)", path.display()),
        ))),
        _ => Ok(()),
    }
}

impl files::Guest for Platform {
    fn read(file: files::StoreFile) -> Result<files::Blob, files::FileError> {
        let path = file_path(file);
        not_regular(&path)?;
        match fs::metadata(&path) {
            Ok(m) if m.len() > MAX_STORE_BYTES => return Err(files::FileError::TooLarge(m.len())),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(files::Blob::Absent),
            _ => {}
        }
        match fs::read(&path) {
            Ok(b) => Ok(files::Blob::Present(b)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(files::Blob::Absent),
            Err(e) => Err(files::FileError::Io(io_error(&e, &path))),
        }
    }

    fn replace(file: files::StoreFile, contents: Vec<u8>) -> Result<(), files::FileError> {
        let path = file_path(file);
        let dir = store_dir();
        not_regular(&path)?;
        let tmp = dir.join(format!(
            ".{}.tmp-{}",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
            hex::encode(rand::<8>())
        ));
        let write = (|| {
            let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
            f.write_all(&contents)?;
            f.sync_all()
        })();
        if let Err(e) = write {
            let _ = fs::remove_file(&tmp);
            return Err(files::FileError::Io(io_error(&e, &path)));
        }
        if file == files::StoreFile::Store && path.exists() {
            // Keep the previous version as the backup: link, then rename the link into place.
            let bak = file_path(files::StoreFile::Backup);
            let link = dir.join(format!(".bak.tmp-{}", hex::encode(rand::<8>())));
            if fs::hard_link(&path, &link)
                .and_then(|()| fs::rename(&link, &bak))
                .is_err()
            {
                let _ = fs::remove_file(&link);
                let _ = fs::remove_file(&tmp);
                return Err(files::FileError::Io(types::IoError::Other(
                    "could not keep the backup".into(),
                )));
            }
        }
        fs::rename(&tmp, &path).map_err(|e| {
            let _ = fs::remove_file(&tmp);
            files::FileError::Io(io_error(&e, &path))
        })?;
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| files::FileError::Io(io_error(&e, &dir)))
    }

    fn remove(file: files::StoreFile) -> Result<(), files::FileError> {
        let path = file_path(file);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(files::FileError::Io(io_error(&e, &path))),
        }
    }

    fn quarantine(file: files::StoreFile) -> Result<String, files::FileError> {
        let path = file_path(file);
        let dir = store_dir();
        not_regular(&path)?;
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("store files have names");
        let now = now_ms();
        // WASI has no rename that refuses to replace; a hard link does refuse, so link the
        // file under its new name first, then unlink the old name. A crash in between
        // leaves both names on one file: nothing is lost or rewritten.
        for n in 0..MAX_QUARANTINE_NAMES {
            let aside = if n == 0 {
                format!("{name}.corrupt-{now}")
            } else {
                format!("{name}.corrupt-{now}-{n}")
            };
            match fs::hard_link(&path, dir.join(&aside)) {
                Ok(()) => {
                    fs::remove_file(&path)
                        .map_err(|e| files::FileError::Io(io_error(&e, &path)))?;
                    File::open(&dir)
                        .and_then(|d| d.sync_all())
                        .map_err(|e| files::FileError::Io(io_error(&e, &dir)))?;
                    return Ok(aside);
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(files::FileError::Io(io_error(&e, &path))),
            }
        }
        Err(files::FileError::Io(types::IoError::Other(format!(
            "{}: {MAX_QUARANTINE_NAMES} quarantined copies already exist for this moment",
            path.display()
        ))))
    }

    // A directory store: one sealed file. The record functions are never called here.
    fn store_layout() -> files::Layout {
        files::Layout::Blob
    }

    fn read_record(_id: String) -> Result<files::Blob, files::FileError> {
        Err(no_records())
    }

    fn read_records() -> Result<Vec<(String, Vec<u8>)>, files::FileError> {
        Err(no_records())
    }

    fn write_records(
        _store: Vec<u8>,
        _records: Vec<files::RecordWrite>,
    ) -> Result<(), files::FileError> {
        Err(no_records())
    }

    // No queue of writes (group commit) under WASI: its waiters poll a lease file with
    // backoff, so a waiter cannot be woken to collect its receipt, and a store it serves is
    // served by WASI hosts only (the lock-protocol marker). The queue calls are never made.
    fn queue_enabled() -> bool {
        false
    }

    fn queue_post(_id: String, _sealed: Vec<u8>) -> Result<(), files::FileError> {
        Err(no_queue())
    }

    fn queue_take() -> Result<Vec<(String, Vec<u8>)>, files::FileError> {
        Err(no_queue())
    }

    fn queue_settle(_id: String, _receipt: Option<Vec<u8>>) -> Result<(), files::FileError> {
        Err(no_queue())
    }

    fn queue_collect(
        _id: String,
        _acknowledged_only: bool,
    ) -> Result<files::Queued, files::FileError> {
        Err(no_queue())
    }

    fn queue_withdraw(_id: String) -> Result<bool, files::FileError> {
        Err(no_queue())
    }
}

fn no_queue() -> files::FileError {
    files::FileError::Io(types::IoError::Other(
        "the WASI build keeps no queue of writes".into(),
    ))
}

fn no_records() -> files::FileError {
    files::FileError::Io(types::IoError::Other(
        "a directory store is one sealed file and has no tenant records".into(),
    ))
}

pub struct Key {
    id: [u8; 16],
    key: Zeroizing<[u8; 32]>,
    slots: Vec<sealing::KeySlot>,
}

impl sealing::GuestSealingKey for Key {
    fn key_id(&self) -> Vec<u8> {
        self.id.to_vec()
    }
    fn slots(&self) -> Vec<sealing::KeySlot> {
        self.slots.clone()
    }
    fn seal(
        &self,
        nonce: Vec<u8>,
        aad: Vec<u8>,
        plaintext: Vec<u8>,
    ) -> Result<Vec<u8>, sealing::SealError> {
        credlock_keyslots::seal(&self.key, &nonce, &aad, &plaintext)
            .ok_or(sealing::SealError::BadNonce)
    }
    fn open(
        &self,
        nonce: Vec<u8>,
        aad: Vec<u8>,
        ciphertext: Vec<u8>,
    ) -> Result<Vec<u8>, sealing::SealError> {
        if nonce.len() != 12 {
            return Err(sealing::SealError::BadNonce);
        }
        credlock_keyslots::open(&self.key, &nonce, &aad, &ciphertext)
            .ok_or(sealing::SealError::AuthenticationFailed)
    }
    fn add_slot(&self, kind: String) -> Result<sealing::KeySlot, sealing::KeyError> {
        let unavailable =
            |why: &str| Err(sealing::KeyError::SlotUnavailable(format!("{kind}: {why}")));
        match kind.as_str() {
            credlock_keyslots::KEY_FILE_SLOT => {
                let fk = key_file(true)?;
                let dup = self.slots.iter().any(|s| {
                    s.kind == credlock_keyslots::KEY_FILE_SLOT
                        && credlock_keyslots::key_file_slot_id(&s.data).is_ok_and(|i| i == fk.id)
                });
                if dup {
                    return unavailable("the store already has a slot for this key file");
                }
                Ok(sealing::KeySlot {
                    kind,
                    data: credlock_keyslots::key_file_slot(&fk, &self.id, &self.key, rand()),
                })
            }
            credlock_keyslots::PASSPHRASE_SLOT => {
                let Some(pass) = env_secret("CREDLOCK_NEW_PASSPHRASE") else {
                    return unavailable("no new passphrase was given (CREDLOCK_NEW_PASSPHRASE)");
                };
                passphrase_slot(&pass, &self.id, &self.key)
            }
            credlock_keyslots::KEYRING_SLOT | credlock_keyslots::KERNEL_KEYRING_SLOT => {
                unavailable("the WASI build cannot reach an OS keyring; use a native credlock host")
            }
            _ => unavailable(&format!(
                "unknown slot kind (this host makes {} and {})",
                credlock_keyslots::KEY_FILE_SLOT,
                credlock_keyslots::PASSPHRASE_SLOT
            )),
        }
    }
}

/// A passphrase slot for data key `id`, with the default argon2id parameters.
fn passphrase_slot(
    pass: &str,
    id: &[u8; 16],
    data_key: &[u8; 32],
) -> Result<sealing::KeySlot, sealing::KeyError> {
    let data =
        credlock_keyslots::passphrase_slot(pass, Default::default(), rand(), id, data_key, rand())
            .map_err(|e| key_error(e, sealing::KeyError::WrongPassphrase))?;
    Ok(sealing::KeySlot {
        kind: credlock_keyslots::PASSPHRASE_SLOT.into(),
        data,
    })
}

/// An unwrapped data key and the slots it came from.
type CachedKey = (Zeroizing<[u8; 32]>, Vec<sealing::KeySlot>);

thread_local! {
    /// Keys unwrapped in this instance: argon2id once per process, not per call.
    static KEYS: RefCell<HashMap<[u8; 16], CachedKey>> = RefCell::new(HashMap::new());
}

fn key_file_path() -> PathBuf {
    std::env::var("CREDLOCK_KEY_FILE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| store_dir().join("key"))
}

fn env_secret(name: &str) -> Option<Zeroizing<String>> {
    std::env::var(name)
        .ok()
        .filter(|p| !p.is_empty())
        .map(Zeroizing::new)
}

fn passphrase() -> Option<Zeroizing<String>> {
    env_secret("CREDLOCK_PASSPHRASE")
}

fn key_error(e: credlock_keyslots::SlotError, wrong: sealing::KeyError) -> sealing::KeyError {
    match e {
        credlock_keyslots::SlotError::Malformed(d) => sealing::KeyError::MalformedSlot(d.into()),
        credlock_keyslots::SlotError::WrongKey => wrong,
    }
}

fn read_key_file() -> Result<Option<credlock_keyslots::FileKey>, sealing::KeyError> {
    let path = key_file_path();
    match fs::read(&path) {
        Ok(b) => credlock_keyslots::parse_key_file(&Zeroizing::new(b))
            .map(Some)
            .ok_or(sealing::KeyError::WrongKeyFile),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(sealing::KeyError::Io(io_error(&e, &path))),
    }
}

impl sealing::Guest for Platform {
    type SealingKey = Key;

    fn unlock(
        key_id: Vec<u8>,
        slots: Vec<sealing::KeySlot>,
    ) -> Result<sealing::SealingKey, sealing::KeyError> {
        let id: [u8; 16] = key_id
            .as_slice()
            .try_into()
            .map_err(|_| sealing::KeyError::MalformedSlot("key id is not 16 bytes".into()))?;
        if let Some((key, _)) = KEYS.with(|k| k.borrow().get(&id).cloned()) {
            // The header's slots now (a slot may have been added since the key was cached):
            // `rekey` finds the key by them.
            return Ok(remember(id, key, slots));
        }
        let mut failure = None;
        for slot in &slots {
            let opened = match slot.kind.as_str() {
                credlock_keyslots::KEY_FILE_SLOT => match read_key_file()? {
                    Some(fk) => credlock_keyslots::open_key_file_slot(&fk, &id, &slot.data)
                        .map(Some)
                        .map_err(|e| key_error(e, sealing::KeyError::WrongKeyFile)),
                    None => Ok(None),
                },
                credlock_keyslots::PASSPHRASE_SLOT => match passphrase() {
                    Some(p) => credlock_keyslots::open_passphrase_slot(&p, &id, &slot.data)
                        .map(Some)
                        .map_err(|e| key_error(e, sealing::KeyError::WrongPassphrase)),
                    None => Ok(None),
                },
                _ => Ok(None),
            };
            match opened {
                Ok(Some(key)) => {
                    KEYS.with(|k| k.borrow_mut().insert(id, (key.clone(), slots.clone())));
                    return Ok(sealing::SealingKey::new(Key { id, key, slots }));
                }
                Ok(None) => {}
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
        }
        Err(failure.unwrap_or_else(|| {
            sealing::KeyError::NoMatchingSlot(slots.iter().map(|s| s.kind.clone()).collect())
        }))
    }

    fn create() -> Result<sealing::SealingKey, sealing::KeyError> {
        let id = rand::<16>();
        let data_key = Zeroizing::new(rand::<32>());
        let mut slots = Vec::new();
        let pass = passphrase();
        if pass.is_none() || std::env::var("CREDLOCK_KEY_FILE").is_ok() {
            let fk = key_file(true)?;
            slots.push(sealing::KeySlot {
                kind: credlock_keyslots::KEY_FILE_SLOT.into(),
                data: credlock_keyslots::key_file_slot(&fk, &id, &data_key, rand()),
            });
        }
        if let Some(p) = pass {
            slots.push(passphrase_slot(&p, &id, &data_key)?);
        }
        Ok(remember(id, data_key, slots))
    }

    fn rekey(slots: Vec<sealing::KeySlot>) -> Result<sealing::SealingKey, sealing::KeyError> {
        // The store was opened (under the same lock) just before: its key is the cached
        // one with exactly these slots. A passphrase slot is bound to that key's id.
        let old_id = KEYS.with(|k| {
            k.borrow()
                .iter()
                .find(|(_, (_, s))| same_slots(s, &slots))
                .map(|(id, _)| *id)
        });
        let id = rand::<16>();
        let data_key = Zeroizing::new(rand::<32>());
        let mut new = Vec::with_capacity(slots.len());
        // One new slot per old slot, from the same source, or nothing: never drop a way in.
        for slot in &slots {
            let unavailable =
                |why: String| sealing::KeyError::SlotUnavailable(format!("{}: {why}", slot.kind));
            match slot.kind.as_str() {
                credlock_keyslots::KEY_FILE_SLOT => {
                    let want = credlock_keyslots::key_file_slot_id(&slot.data)
                        .map_err(|e| key_error(e, sealing::KeyError::WrongKeyFile))?;
                    match read_key_file()? {
                        Some(fk) if fk.id == want => new.push(sealing::KeySlot {
                            kind: slot.kind.clone(),
                            data: credlock_keyslots::key_file_slot(&fk, &id, &data_key, rand()),
                        }),
                        _ => {
                            return Err(unavailable(format!(
                                "the key file {} is not available here; remove the slot first or provide the file (CREDLOCK_KEY_FILE)",
                                hex::encode(want)
                            )))
                        }
                    }
                }
                credlock_keyslots::PASSPHRASE_SLOT => {
                    let Some(pass) = passphrase() else {
                        return Err(unavailable(
                            "the passphrase was not given (CREDLOCK_PASSPHRASE)".into(),
                        ));
                    };
                    let Some(old_id) = old_id else {
                        return Err(unavailable("the store was not opened first".into()));
                    };
                    // Another passphrase would silently change what opens the store.
                    credlock_keyslots::open_passphrase_slot(&pass, &old_id, &slot.data)
                        .map_err(|e| key_error(e, sealing::KeyError::WrongPassphrase))?;
                    new.push(passphrase_slot(&pass, &id, &data_key)?);
                }
                other => {
                    return Err(unavailable(format!(
                        "the WASI build cannot re-make a {other} slot; use a native credlock host"
                    )))
                }
            }
        }
        Ok(remember(id, data_key, new))
    }
}

fn same_slots(a: &[sealing::KeySlot], b: &[sealing::KeySlot]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.kind == y.kind && x.data == y.data)
}

/// Cache a new data key for this instance and hand it out.
fn remember(
    id: [u8; 16],
    data_key: Zeroizing<[u8; 32]>,
    slots: Vec<sealing::KeySlot>,
) -> sealing::SealingKey {
    KEYS.with(|k| k.borrow_mut().insert(id, (data_key.clone(), slots.clone())));
    sealing::SealingKey::new(Key {
        id,
        key: data_key,
        slots,
    })
}

/// The configured key file; with `create`, made first (with a random key) if absent.
fn key_file(create: bool) -> Result<credlock_keyslots::FileKey, sealing::KeyError> {
    if create {
        let path = key_file_path();
        if !path.exists() {
            // WASI has no file modes: a new file gets whatever the runtime's umask gives
            // (0644 seen under wasmtime), and a key file any local user can read protects
            // nothing. Refuse unless the user says the directory itself is private.
            if std::env::var("CREDLOCK_ALLOW_UNPROTECTED_KEY_FILE").as_deref() != Ok("1") {
                return Err(sealing::KeyError::SlotUnavailable(format!(
                    "key-file: WASI cannot set a file's mode, so a new key file {} would get the runtime's default (often 0644, readable by every local user); use a passphrase (CREDLOCK_PASSPHRASE), create the store with a native credlock, or set CREDLOCK_ALLOW_UNPROTECTED_KEY_FILE=1 if the directory is private to you",
                    path.display()
                )));
            }
            // Created whole: two first writers end up with one key file, and no reader
            // ever sees it empty.
            let text = credlock_keyslots::format_key_file(&rand::<16>(), &rand::<32>());
            create_whole(&path, text.as_bytes())
                .map_err(|e| sealing::KeyError::Io(io_error(&e, &path)))?;
        }
    }
    read_key_file()?.ok_or(sealing::KeyError::NoKeySource)
}

impl token_endpoint::Guest for Platform {
    fn post(
        request: token_endpoint::TokenRequest,
    ) -> Result<token_endpoint::HttpReply, token_endpoint::TransportError> {
        #[cfg(feature = "http")]
        return http::post(request);
        #[cfg(not(feature = "http"))]
        {
            let _ = request;
            // Nothing was sent, so nothing is spent.
            Err(token_endpoint::TransportError::Connect(
                "this build has no HTTP client: refresh with target/credlock-cli-http.wasm under `wasmtime run -S http`, or a native credlock".into(),
            ))
        }
    }
}

impl clock::Guest for Platform {
    fn wall_ms() -> u64 {
        now_ms()
    }
    fn monotonic_ms() -> u64 {
        thread_local!(static ORIGIN: Instant = Instant::now());
        ORIGIN.with(|o| o.elapsed().as_millis() as u64)
    }
}

impl random::Guest for Platform {
    fn fill(len: u32) -> Vec<u8> {
        let mut v = vec![0u8; len as usize];
        getrandom::fill(&mut v).expect("wasi:random is available");
        v
    }
}
