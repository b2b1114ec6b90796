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
//! What it does not guarantee: a holder that runs past its lease (30 s) can be overtaken;
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
//! Not available: WASI p2 has no HTTP client we can rely on in every runtime. A refresh
//! fails with `connect` (nothing was sent, so nothing is spent); use a native host to refresh.

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

/// Make sure this store speaks the lease protocol (see the crate doc).
fn check_protocol(dir: &Path) -> Result<(), types::IoError> {
    let marker = dir.join("lock-protocol");
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&marker)
    {
        Ok(mut f) => {
            if dir.join("credentials.lock").exists() {
                let _ = fs::remove_file(&marker);
                return Err(refusal("flock (credentials.lock exists)"));
            }
            f.write_all(format!("{PROTOCOL}\n").as_bytes())
                .and_then(|()| f.sync_all())
                .map_err(|e| io_error(&e, &marker))
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            let found = fs::read_to_string(&marker).map_err(|e| io_error(&e, &marker))?;
            if found.trim() == PROTOCOL {
                Ok(())
            } else {
                Err(refusal(found.trim()))
            }
        }
        Err(e) => Err(io_error(&e, &marker)),
    }
}

fn refusal(other: &str) -> types::IoError {
    types::IoError::Other(format!(
        "this store is locked with {other}; the WASI build locks with lease files, which flock hosts do not see: use a native credlock host for this store"
    ))
}

pub struct Lease {
    path: PathBuf,
    owner: String,
    held: RefCell<bool>,
}

impl Lease {
    fn release_now(&self) {
        if self.held.replace(false) {
            // Remove only our own lease: after an expiry someone else may hold it.
            if fs::read_to_string(&self.path).is_ok_and(|t| t.starts_with(&self.owner)) {
                let _ = fs::remove_file(&self.path);
            }
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
        let started = Instant::now();
        let mut backoff_ms = 1;
        loop {
            let record = format!("{owner} {}\n", now_ms() + LEASE_MS);
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    f.write_all(record.as_bytes())
                        .map_err(|e| locks::LockError::Io(io_error(&e, &path)))?;
                    return Ok(locks::LockGuard::new(Lease {
                        path,
                        owner,
                        held: RefCell::new(true),
                    }));
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    let expired = fs::read_to_string(&path)
                        .ok()
                        .and_then(|t| {
                            t.split_whitespace()
                                .nth(1)
                                .and_then(|v| v.parse::<u64>().ok())
                        })
                        .is_some_and(|exp| exp < now_ms());
                    if expired {
                        // Its holder died: break it. Renaming is atomic, so one breaker wins.
                        let aside =
                            path.with_extension(format!("stale-{}", hex::encode(rand::<8>())));
                        if fs::rename(&path, &aside).is_ok() {
                            let _ = fs::remove_file(&aside);
                        }
                        continue;
                    }
                }
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
        // Exclusive create: two first writers end up with one key file.
        if let Ok(mut f) = OpenOptions::new().write(true).create_new(true).open(&path) {
            let text = credlock_keyslots::format_key_file(&rand::<16>(), &rand::<32>());
            f.write_all(text.as_bytes())
                .and_then(|()| f.sync_all())
                .map_err(|e| sealing::KeyError::Io(io_error(&e, &path)))?;
        }
    }
    read_key_file()?.ok_or(sealing::KeyError::NoKeySource)
}

impl token_endpoint::Guest for Platform {
    fn post(
        _: token_endpoint::TokenRequest,
    ) -> Result<token_endpoint::HttpReply, token_endpoint::TransportError> {
        Err(token_endpoint::TransportError::Connect(
            "the WASI build has no HTTP client; refresh with a native credlock host".into(),
        ))
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
