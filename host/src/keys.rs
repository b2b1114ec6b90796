//! Data keys and the key slots that wrap them (FORMAT.md, "Key slots").
//!
//! A store is sealed under a random 256-bit *data key*. The header carries that key wrapped
//! (AES-256-GCM) by each key source, like LUKS key slots: a key file, a passphrase
//! (argon2id), an OS keyring (see [`crate::oskeyring`]). Keys live only here, in the host;
//! the core holds a handle. What is unwrapped, and every keyring answer (including "no such
//! entry"), is cached for the life of the process: a passphrase costs one argon2id
//! derivation and a keyring entry one call per process.
//!
//! Never: create a key because a source is missing. `unlock` reports which slots exist and
//! which could still open the store; only `create` (which the core calls under the exclusive
//! store lock with no store file) and `rekey` make data keys.

use crate::files;
use crate::oskeyring::{self, Backend, KeyringError};
use credlock_core::platform::{slot_is_durable, IoError, KeyError, KeySlot, SealError};
use credlock_keyslots::{FileKey, SlotError, KERNEL_KEYRING_SLOT, KEYRING_SLOT};
pub use credlock_keyslots::{KdfParams, KEY_FILE_SLOT, PASSPHRASE_SLOT};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use zeroize::Zeroizing;

/// Where the host may find keys. Built from flags and the environment.
#[derive(Clone)]
pub struct KeySources {
    pub passphrase: Option<Zeroizing<String>>,
    /// Tried when opening a store, if the file exists.
    pub key_file: Option<PathBuf>,
    /// Whether a new store gets a key-file slot (creating the file if needed).
    pub create_key_file: bool,
    pub kdf: KdfParams,
    /// The keyring a new store (and `slot add keyring`) keeps its wrapping key in.
    pub keyring: Option<Backend>,
    /// Whether opening a store may ask OS keyrings (off: `CREDLOCK_KEYRING=off`).
    pub use_keyrings: bool,
    /// How long one keyring call may take before it is abandoned.
    pub keyring_timeout: Duration,
    /// The passphrase of a new passphrase slot (`slot add passphrase`).
    pub new_passphrase: Option<Zeroizing<String>>,
    /// Let a new store's only slot be volatile (the kernel keyring).
    pub allow_volatile_only: bool,
}

impl Default for KeySources {
    fn default() -> Self {
        KeySources {
            passphrase: None,
            key_file: None,
            create_key_file: false,
            kdf: KdfParams::default(),
            keyring: None,
            use_keyrings: true,
            keyring_timeout: Duration::from_secs(10),
            new_passphrase: None,
            allow_volatile_only: false,
        }
    }
}

impl std::fmt::Debug for KeySources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySources")
            .field("passphrase", &self.passphrase.as_ref().map(|_| "<set>"))
            .field("key_file", &self.key_file)
            .field("keyring", &self.keyring.map(|b| b.name()))
            .field("use_keyrings", &self.use_keyrings)
            .finish()
    }
}

/// An unwrapped data key.
pub struct DataKey {
    id: [u8; 16],
    key: Zeroizing<[u8; 32]>,
    slots: Vec<KeySlot>,
}

impl DataKey {
    pub fn id(&self) -> [u8; 16] {
        self.id
    }
    pub fn slots(&self) -> Vec<KeySlot> {
        self.slots.clone()
    }
    pub fn seal(&self, nonce: &[u8], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        credlock_keyslots::seal(&self.key, nonce, aad, plaintext).ok_or(SealError::BadNonce)
    }
    pub fn open(&self, nonce: &[u8], aad: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>, SealError> {
        if nonce.len() != 12 {
            return Err(SealError::BadNonce);
        }
        credlock_keyslots::open(&self.key, nonce, aad, ciphertext)
            .ok_or(SealError::AuthenticationFailed)
    }
}

/// A shared handle to an unwrapped data key: what the core and the component hold. It
/// keeps the process's [`Keyring`] so that `add-slot` can reach the key sources.
#[derive(Clone)]
pub struct KeyHandle {
    key: Arc<DataKey>,
    ring: Keyring,
}

impl KeyHandle {
    /// A new slot of `kind` wrapping this key, from the configured source of that kind.
    pub fn add_slot(&self, kind: &str) -> Result<KeySlot, KeyError> {
        self.ring.add_slot(&self.key, kind)
    }
}

impl std::ops::Deref for KeyHandle {
    type Target = DataKey;
    fn deref(&self) -> &DataKey {
        &self.key
    }
}

/// The process's key sources and what they have yielded so far. Cheap to clone: clones
/// share one cache.
#[derive(Clone)]
pub struct Keyring(Arc<Mutex<Inner>>);

struct Inner {
    sources: KeySources,
    cache: HashMap<[u8; 16], Arc<DataKey>>,
    file_key: Option<Arc<FileKey>>,
    /// Every keyring answer, good or bad, so each entry is asked once per process.
    keyring_answers: HashMap<(Backend, [u8; 16]), Result<Arc<FileKey>, KeyringError>>,
    /// Passphrase slots this passphrase opened: (data key id, slot bytes).
    opened_passphrase_slots: Vec<([u8; 16], Vec<u8>)>,
    /// Passphrase slots this passphrase did not open, and why (each derived once).
    failed_passphrase_slots: Vec<([u8; 16], Vec<u8>, KeyError)>,
}

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::getrandom(&mut b).expect("the OS random source is available");
    b
}

fn slot_error(e: SlotError, wrong: KeyError) -> KeyError {
    match e {
        SlotError::Malformed(d) => KeyError::MalformedSlot(d.into()),
        SlotError::WrongKey => wrong,
    }
}

fn keyring_error(backend: Backend, e: KeyringError) -> KeyError {
    KeyError::Keyring(format!("{}: {e}", backend.name()))
}

/// The entry name of a wrapping key: its id in hex (the service is `credlock`).
fn entry_user(id: &[u8; 16]) -> String {
    hex::encode(id)
}

/// How a slot is opened, cheapest and least intrusive first: a key file is a local read; a
/// passphrase the user gave on purpose comes before a keyring, which may hang or prompt.
fn open_rank(kind: &str) -> u8 {
    match kind {
        KEY_FILE_SLOT => 0,
        PASSPHRASE_SLOT => 1,
        KEYRING_SLOT | KERNEL_KEYRING_SLOT => 2,
        _ => 3,
    }
}

impl Keyring {
    pub fn new(sources: KeySources) -> Self {
        Keyring(Arc::new(Mutex::new(Inner {
            sources,
            cache: HashMap::new(),
            file_key: None,
            keyring_answers: HashMap::new(),
            opened_passphrase_slots: Vec::new(),
            failed_passphrase_slots: Vec::new(),
        })))
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock leaves plain data behind; nothing half-done.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn sources(&self) -> KeySources {
        self.inner().sources.clone()
    }

    fn handle(&self, key: Arc<DataKey>) -> KeyHandle {
        KeyHandle {
            key,
            ring: self.clone(),
        }
    }

    /// A new data key with a slot for every configured source.
    pub fn create(&self) -> Result<KeyHandle, KeyError> {
        let key = self.inner().create()?;
        Ok(self.handle(key))
    }

    /// Whether any data key is cached (this process has opened the store before).
    pub fn has_any_key(&self) -> bool {
        !self.inner().cache.is_empty()
    }

    /// Unwrap data key `key_id` from the first slot a configured source opens.
    pub fn unlock(&self, key_id: &[u8], slots: &[KeySlot]) -> Result<KeyHandle, KeyError> {
        let key = self.inner().unlock(key_id, slots)?;
        Ok(self.handle(key))
    }

    /// A new data key wrapped by the same sources as `slots` (`sealing.rekey`).
    pub fn rekey(&self, slots: &[KeySlot]) -> Result<KeyHandle, KeyError> {
        let key = self.inner().rekey(slots)?;
        Ok(self.handle(key))
    }

    pub fn add_slot(&self, key: &DataKey, kind: &str) -> Result<KeySlot, KeyError> {
        self.inner().add_slot(key, kind)
    }

    /// Ask a keyring for a wrapping key (cached, like every keyring answer): for `doctor`.
    pub fn probe_keyring_slot(&self, slot: &KeySlot) -> Result<(), KeyError> {
        let r = credlock_keyslots::parse_keyring_slot(&slot.data)
            .map_err(|e| slot_error(e, KeyError::MalformedSlot("keyring slot".into())))?;
        let backend = Backend::parse(&r.backend)
            .ok_or_else(|| KeyError::Keyring(format!("unknown keyring backend {}", r.backend)))?;
        self.inner().wrapping_key(backend, &r.id).map(|_| ())
    }
}

impl Inner {
    fn read_key_file(&mut self, create: bool) -> Result<Option<Arc<FileKey>>, KeyError> {
        if let Some(k) = &self.file_key {
            return Ok(Some(Arc::clone(k)));
        }
        let Some(path) = self.sources.key_file.clone() else {
            return Ok(None);
        };
        if create {
            let text = credlock_keyslots::format_key_file(&random::<16>(), &random::<32>());
            // Loses the race gracefully: if another process made the file first, read theirs.
            files::create_exclusive(&path, text.as_bytes())
                .map_err(|e| KeyError::Io(file_io(e)))?;
        }
        let Some(bytes) = files::read_secret(&path, 4096).map_err(|e| KeyError::Io(file_io(e)))?
        else {
            return Ok(None);
        };
        let fk = Arc::new(
            credlock_keyslots::parse_key_file(&Zeroizing::new(bytes))
                .ok_or(KeyError::WrongKeyFile)?,
        );
        self.file_key = Some(Arc::clone(&fk));
        Ok(Some(fk))
    }

    /// The wrapping key `id` from `backend`, asking the keyring at most once per process.
    fn keyring_key(
        &mut self,
        backend: Backend,
        id: &[u8; 16],
    ) -> Result<Arc<FileKey>, KeyringError> {
        if let Some(answer) = self.keyring_answers.get(&(backend, *id)) {
            return answer.clone();
        }
        let answer = oskeyring::get(backend, &entry_user(id), self.sources.keyring_timeout)
            .and_then(|secret| {
                let key: [u8; 32] = secret.as_slice().try_into().map_err(|_| {
                    KeyringError::Failed(format!(
                        "the entry holds {} bytes, not a 32-byte key",
                        secret.len()
                    ))
                })?;
                Ok(Arc::new(FileKey {
                    id: *id,
                    key: Zeroizing::new(key),
                }))
            });
        self.keyring_answers.insert((backend, *id), answer.clone());
        answer
    }

    /// [`Inner::keyring_key`] as a key error: a missing entry is `KeyringEntryMissing` (the
    /// caller fills in the other slots), anything else the keyring's failure.
    fn wrapping_key(&mut self, backend: Backend, id: &[u8; 16]) -> Result<Arc<FileKey>, KeyError> {
        self.keyring_key(backend, id).map_err(|e| match e {
            KeyringError::Missing => KeyError::KeyringEntryMissing {
                backend: backend.name().into(),
                other_slots: Vec::new(),
            },
            e => keyring_error(backend, e),
        })
    }

    /// A new wrapping key in `backend`.
    fn new_keyring_key(&mut self, backend: Backend) -> Result<Arc<FileKey>, KeyError> {
        let fk = Arc::new(FileKey {
            id: random(),
            key: Zeroizing::new(random()),
        });
        oskeyring::set(
            backend,
            &entry_user(&fk.id),
            fk.key.as_slice(),
            self.sources.keyring_timeout,
        )
        .map_err(|e| keyring_error(backend, e))?;
        self.keyring_answers
            .insert((backend, fk.id), Ok(Arc::clone(&fk)));
        Ok(fk)
    }

    fn keyring_slot(
        &mut self,
        backend: Backend,
        wk: &FileKey,
        id: &[u8; 16],
        data_key: &[u8; 32],
    ) -> KeySlot {
        let kind = backend.slot_kind();
        KeySlot {
            kind: kind.into(),
            data: credlock_keyslots::keyring_slot(kind, backend.name(), wk, id, data_key, random()),
        }
    }

    fn passphrase_slot(
        &self,
        pass: &str,
        id: &[u8; 16],
        data_key: &[u8; 32],
    ) -> Result<KeySlot, KeyError> {
        let data = credlock_keyslots::passphrase_slot(
            pass,
            self.sources.kdf,
            random(),
            id,
            data_key,
            random(),
        )
        .map_err(|e| slot_error(e, KeyError::WrongPassphrase))?;
        Ok(KeySlot {
            kind: PASSPHRASE_SLOT.into(),
            data,
        })
    }

    fn create(&mut self) -> Result<Arc<DataKey>, KeyError> {
        let use_key_file = self.sources.create_key_file && self.sources.key_file.is_some();
        if self.sources.passphrase.is_none() && !use_key_file && self.sources.keyring.is_none() {
            return Err(KeyError::NoKeySource);
        }
        let durable = use_key_file
            || self.sources.passphrase.is_some()
            || self
                .sources
                .keyring
                .is_some_and(|b| slot_is_durable(b.slot_kind()));
        if !durable && !self.sources.allow_volatile_only {
            return Err(KeyError::SlotUnavailable(
                "the kernel keyring alone would lose the store at the next reboot or after 3 idle days: add a passphrase or key file, or allow volatile-only explicitly".into(),
            ));
        }
        let id = random::<16>();
        let data_key = Zeroizing::new(random::<32>());
        let mut slots = Vec::new();
        if use_key_file {
            let fk = self.read_key_file(true)?.ok_or(KeyError::NoKeySource)?;
            let data = credlock_keyslots::key_file_slot(&fk, &id, &data_key, random());
            slots.push(KeySlot {
                kind: KEY_FILE_SLOT.into(),
                data,
            });
        }
        if let Some(pass) = self.sources.passphrase.clone() {
            slots.push(self.passphrase_slot(&pass, &id, &data_key)?);
        }
        if let Some(backend) = self.sources.keyring {
            let wk = self.new_keyring_key(backend)?;
            slots.push(self.keyring_slot(backend, &wk, &id, &data_key));
        }
        let key = Arc::new(DataKey {
            id,
            key: data_key,
            slots,
        });
        self.cache.insert(id, Arc::clone(&key));
        Ok(key)
    }

    fn unlock(&mut self, key_id: &[u8], slots: &[KeySlot]) -> Result<Arc<DataKey>, KeyError> {
        let id: [u8; 16] = key_id
            .try_into()
            .map_err(|_| KeyError::MalformedSlot("key id is not 16 bytes".into()))?;
        if let Some(k) = self.cache.get(&id) {
            return Ok(Arc::clone(k));
        }
        let mut order: Vec<usize> = (0..slots.len()).collect();
        order.sort_by_key(|&i| open_rank(&slots[i].kind));
        // Failures, to report the most useful one if no slot opens.
        let mut wrong: Option<KeyError> = None;
        let mut keyring_failed: Option<KeyError> = None;
        let mut keyring_missing: Option<(usize, String)> = None;
        for i in order {
            let slot = &slots[i];
            let opened = match slot.kind.as_str() {
                KEY_FILE_SLOT => self.open_key_file_slot(&id, &slot.data),
                PASSPHRASE_SLOT => self.open_passphrase_slot(&id, &slot.data),
                KEYRING_SLOT | KERNEL_KEYRING_SLOT if self.sources.use_keyrings => {
                    self.open_keyring_slot(&slot.kind, &id, &slot.data)
                }
                // Kinds this host does not know are kept verbatim and skipped.
                _ => Ok(None),
            };
            match opened {
                Ok(Some(data_key)) => {
                    let key = Arc::new(DataKey {
                        id,
                        key: data_key,
                        slots: slots.to_vec(),
                    });
                    self.cache.insert(id, Arc::clone(&key));
                    return Ok(key);
                }
                Ok(None) => {}
                Err(KeyError::KeyringEntryMissing { backend, .. }) => {
                    keyring_missing.get_or_insert((i, backend));
                }
                Err(e @ KeyError::Keyring(_)) => {
                    keyring_failed.get_or_insert(e);
                }
                Err(e) => {
                    wrong.get_or_insert(e);
                }
            }
        }
        if let Some(e) = wrong.or(keyring_failed) {
            return Err(e);
        }
        Err(match keyring_missing {
            Some((i, backend)) => KeyError::KeyringEntryMissing {
                backend,
                other_slots: slots
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, s)| s.kind.clone())
                    .collect(),
            },
            None => KeyError::NoMatchingSlot(slots.iter().map(|s| s.kind.clone()).collect()),
        })
    }

    fn open_key_file_slot(
        &mut self,
        data_key_id: &[u8; 16],
        data: &[u8],
    ) -> Result<Option<Zeroizing<[u8; 32]>>, KeyError> {
        credlock_keyslots::key_file_slot_id(data)
            .map_err(|e| slot_error(e, KeyError::WrongKeyFile))?;
        let Some(fk) = self.read_key_file(false)? else {
            return Ok(None);
        };
        credlock_keyslots::open_key_file_slot(&fk, data_key_id, data)
            .map(Some)
            .map_err(|e| slot_error(e, KeyError::WrongKeyFile))
    }

    fn open_passphrase_slot(
        &mut self,
        data_key_id: &[u8; 16],
        data: &[u8],
    ) -> Result<Option<Zeroizing<[u8; 32]>>, KeyError> {
        let Some(pass) = self.sources.passphrase.clone() else {
            return Ok(None);
        };
        // A slot this passphrase already failed to open fails again at once: the check
        // before the store lock paid the KDF, the read under it must not pay it again.
        if let Some((_, _, e)) = self
            .failed_passphrase_slots
            .iter()
            .find(|(id, d, _)| id == data_key_id && d == data)
        {
            return Err(e.clone());
        }
        let key = credlock_keyslots::open_passphrase_slot(&pass, data_key_id, data)
            .map_err(|e| slot_error(e, KeyError::WrongPassphrase))
            .inspect_err(|e| {
                self.failed_passphrase_slots
                    .push((*data_key_id, data.to_vec(), e.clone()))
            })?;
        self.opened_passphrase_slots
            .push((*data_key_id, data.to_vec()));
        Ok(Some(key))
    }

    fn open_keyring_slot(
        &mut self,
        kind: &str,
        data_key_id: &[u8; 16],
        data: &[u8],
    ) -> Result<Option<Zeroizing<[u8; 32]>>, KeyError> {
        let r = credlock_keyslots::parse_keyring_slot(data)
            .map_err(|e| slot_error(e, KeyError::MalformedSlot("keyring slot".into())))?;
        let Some(backend) = Backend::parse(&r.backend).filter(|b| b.compiled_in()) else {
            // A keyring of another platform (a store copied from a Mac): not ours to open.
            return Ok(None);
        };
        let wk = self.wrapping_key(backend, &r.id)?;
        credlock_keyslots::open_keyring_slot(kind, &wk, data_key_id, data)
            .map(Some)
            // The entry exists but holds another key: as good as a wrong key file.
            .map_err(|e| {
                slot_error(
                    e,
                    KeyError::Keyring(format!(
                        "{}: the keyring entry does not open this slot",
                        backend.name()
                    )),
                )
            })
    }

    /// Whether the configured passphrase opens this passphrase slot of key `id`.
    fn passphrase_opens(&mut self, id: &[u8; 16], data: &[u8]) -> Result<bool, KeyError> {
        if self
            .opened_passphrase_slots
            .iter()
            .any(|(k, d)| k == id && d == data)
        {
            return Ok(true);
        }
        match self.open_passphrase_slot(id, data) {
            Ok(Some(_)) => Ok(true),
            Ok(None) | Err(KeyError::WrongPassphrase) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn add_slot(&mut self, key: &DataKey, kind: &str) -> Result<KeySlot, KeyError> {
        let unavailable = |why: &str| Err(KeyError::SlotUnavailable(format!("{kind}: {why}")));
        match kind {
            KEY_FILE_SLOT => {
                if self.sources.key_file.is_none() {
                    return unavailable("no key file is configured");
                }
                let fk = self
                    .read_key_file(true)?
                    .ok_or(KeyError::NoKeySource)?;
                let dup = key.slots.iter().any(|s| {
                    s.kind == KEY_FILE_SLOT
                        && credlock_keyslots::key_file_slot_id(&s.data).is_ok_and(|i| i == fk.id)
                });
                if dup {
                    return unavailable("the store already has a slot for this key file");
                }
                Ok(KeySlot {
                    kind: KEY_FILE_SLOT.into(),
                    data: credlock_keyslots::key_file_slot(&fk, &key.id, &key.key, random()),
                })
            }
            PASSPHRASE_SLOT => {
                let Some(pass) = self.sources.new_passphrase.clone() else {
                    return unavailable("no new passphrase was given");
                };
                self.passphrase_slot(&pass, &key.id, &key.key)
            }
            KEYRING_SLOT | KERNEL_KEYRING_SLOT => {
                let backend = match self.sources.keyring {
                    Some(b) if b.slot_kind() == kind => b,
                    _ if kind == KERNEL_KEYRING_SLOT => Backend::Keyutils,
                    _ => Backend::platform_default(),
                };
                // A slot whose entry is gone (wiped keyring) is no duplicate: adding a fresh
                // one is how the keyring slot is restored (then remove the dead one).
                let live: Vec<[u8; 16]> = key
                    .slots
                    .iter()
                    .filter(|s| s.kind == kind)
                    .filter_map(|s| credlock_keyslots::parse_keyring_slot(&s.data).ok())
                    .filter(|r| r.backend == backend.name())
                    .map(|r| r.id)
                    .collect();
                let dup = live
                    .iter()
                    .any(|id| !matches!(self.keyring_key(backend, id), Err(KeyringError::Missing)));
                if dup {
                    return Err(KeyError::SlotUnavailable(format!(
                        "{kind}: the store already has a {} slot",
                        backend.name()
                    )));
                }
                let wk = self.new_keyring_key(backend)?;
                Ok(self.keyring_slot(backend, &wk, &key.id, &key.key))
            }
            other => unavailable(&format!("unknown slot kind (known: {KEY_FILE_SLOT}, {PASSPHRASE_SLOT}, {KEYRING_SLOT}, {KERNEL_KEYRING_SLOT}); {other:?}")),
        }
    }

    /// A new data key, wrapped by the same source as each of `slots`: the same key file,
    /// the same passphrase (checked against the old slot), the same keyring entry.
    fn rekey(&mut self, slots: &[KeySlot]) -> Result<Arc<DataKey>, KeyError> {
        let old_id: Option<[u8; 16]> = self
            .cache
            .iter()
            .find(|(_, k)| k.slots == slots)
            .map(|(id, _)| *id);
        let id = random::<16>();
        let data_key = Zeroizing::new(random::<32>());
        let mut new = Vec::with_capacity(slots.len());
        for slot in slots {
            let unavailable =
                |why: String| KeyError::SlotUnavailable(format!("{}: {why}", slot.kind));
            let made = match slot.kind.as_str() {
                KEY_FILE_SLOT => {
                    let want = credlock_keyslots::key_file_slot_id(&slot.data)
                        .map_err(|e| slot_error(e, KeyError::WrongKeyFile))?;
                    match self.read_key_file(false)? {
                        Some(fk) if fk.id == want => KeySlot {
                            kind: KEY_FILE_SLOT.into(),
                            data: credlock_keyslots::key_file_slot(&fk, &id, &data_key, random()),
                        },
                        _ => {
                            return Err(unavailable(format!(
                                "the key file {} is not available here; remove the slot first or provide the file",
                                hex::encode(want)
                            )))
                        }
                    }
                }
                PASSPHRASE_SLOT => {
                    let Some(pass) = self.sources.passphrase.clone() else {
                        return Err(unavailable("the passphrase was not given".into()));
                    };
                    let Some(old) = old_id else {
                        return Err(unavailable("the store was not opened first".into()));
                    };
                    if !self.passphrase_opens(&old, &slot.data)? {
                        // Another passphrase would change what opens the store, silently.
                        return Err(KeyError::WrongPassphrase);
                    }
                    self.passphrase_slot(&pass, &id, &data_key)?
                }
                KEYRING_SLOT | KERNEL_KEYRING_SLOT => {
                    let r = credlock_keyslots::parse_keyring_slot(&slot.data).map_err(|e| {
                        slot_error(e, KeyError::MalformedSlot("keyring slot".into()))
                    })?;
                    let Some(backend) = Backend::parse(&r.backend).filter(|b| b.compiled_in())
                    else {
                        return Err(unavailable(format!(
                            "the {} keyring is not on this platform",
                            r.backend
                        )));
                    };
                    let wk = self.keyring_key(backend, &r.id).map_err(|e| match e {
                        KeyringError::Missing => {
                            unavailable(format!("the {} entry is gone", backend.name()))
                        }
                        e => keyring_error(backend, e),
                    })?;
                    self.keyring_slot(backend, &wk, &id, &data_key)
                }
                other => {
                    return Err(unavailable(format!(
                        "this host cannot re-make a {other} slot"
                    )))
                }
            };
            new.push(made);
        }
        let key = Arc::new(DataKey {
            id,
            key: data_key,
            slots: new,
        });
        self.cache.insert(id, Arc::clone(&key));
        Ok(key)
    }
}

/// One line about a slot, for `slot list` and `doctor`: never key material.
pub fn describe_slot(slot: &KeySlot) -> String {
    credlock_keyslots::describe_slot(&slot.kind, &slot.data)
}

/// The keyring entry a keyring slot names, for tests and tools that manage entries.
pub fn keyring_entry(slot: &KeySlot) -> Option<(Backend, String)> {
    let r = credlock_keyslots::parse_keyring_slot(&slot.data).ok()?;
    Some((Backend::parse(&r.backend)?, entry_user(&r.id)))
}

fn file_io(e: credlock_core::platform::FileError) -> IoError {
    match e {
        credlock_core::platform::FileError::Io(io) => io,
        credlock_core::platform::FileError::TooLarge(n) => {
            IoError::Other(format!("key file too large ({n} bytes)"))
        }
    }
}

#[cfg(test)]
mod tests {
    //! Guards promise 4 and 5 for keys: a missing source never mints a key; wrong sources
    //! give specific errors.
    use super::*;

    fn fast() -> KdfParams {
        KdfParams {
            m_cost_kib: 64,
            t_cost: 1,
            p_cost: 1,
        }
    }

    #[test]
    fn key_file_and_passphrase_slots_open_independently() {
        let dir = tempfile::tempdir().unwrap();
        let kf = dir.path().join("key");
        let k = Keyring::new(KeySources {
            passphrase: Some(Zeroizing::new("pw".into())),
            key_file: Some(kf.clone()),
            create_key_file: true,
            kdf: fast(),
            ..Default::default()
        });
        let key = k.create().unwrap();
        let slots = key.slots();
        assert_eq!(
            slots.iter().map(|s| s.kind.as_str()).collect::<Vec<_>>(),
            ["key-file", "passphrase"]
        );
        let ct = key.seal(&[1; 12], b"aad", b"hello").unwrap();

        let only_file = Keyring::new(KeySources {
            passphrase: None,
            key_file: Some(kf.clone()),
            create_key_file: true,
            kdf: fast(),
            ..Default::default()
        });
        assert_eq!(
            only_file
                .unlock(&key.id(), &slots)
                .unwrap()
                .open(&[1; 12], b"aad", &ct)
                .unwrap(),
            b"hello"
        );
        let only_pass = Keyring::new(KeySources {
            passphrase: Some(Zeroizing::new("pw".into())),
            key_file: None,
            create_key_file: true,
            kdf: fast(),
            ..Default::default()
        });
        assert_eq!(
            only_pass
                .unlock(&key.id(), &slots)
                .unwrap()
                .open(&[1; 12], b"aad", &ct)
                .unwrap(),
            b"hello"
        );
    }

    #[test]
    fn specific_errors_and_no_implicit_key() {
        let dir = tempfile::tempdir().unwrap();
        let kf = dir.path().join("key");
        let k = Keyring::new(KeySources {
            passphrase: Some(Zeroizing::new("pw".into())),
            key_file: None,
            create_key_file: true,
            kdf: fast(),
            ..Default::default()
        });
        let key = k.create().unwrap();
        let slots = key.slots();
        let wrong = Keyring::new(KeySources {
            passphrase: Some(Zeroizing::new("nope".into())),
            key_file: None,
            create_key_file: true,
            kdf: fast(),
            ..Default::default()
        });
        assert_eq!(
            wrong.unlock(&key.id(), &slots).err(),
            Some(KeyError::WrongPassphrase)
        );
        let none = Keyring::new(KeySources {
            passphrase: None,
            key_file: Some(kf.clone()),
            create_key_file: true,
            kdf: fast(),
            ..Default::default()
        });
        assert_eq!(
            none.unlock(&key.id(), &slots).err(),
            Some(KeyError::NoMatchingSlot(vec!["passphrase".into()]))
        );
        assert!(!kf.exists(), "unlock must never create a key file");

        let a = Keyring::new(KeySources {
            passphrase: None,
            key_file: Some(kf.clone()),
            create_key_file: true,
            kdf: fast(),
            ..Default::default()
        });
        let ka = a.create().unwrap();
        std::fs::remove_file(&kf).unwrap();
        let b = Keyring::new(KeySources {
            passphrase: None,
            key_file: Some(kf.clone()),
            create_key_file: true,
            kdf: fast(),
            ..Default::default()
        });
        assert_eq!(
            b.unlock(&ka.id(), &ka.slots()).err(),
            Some(KeyError::NoMatchingSlot(vec!["key-file".into()]))
        );
        let _ = b.create().unwrap(); // a new key file appears only through create
        let c = Keyring::new(KeySources {
            passphrase: None,
            key_file: Some(kf),
            create_key_file: true,
            kdf: fast(),
            ..Default::default()
        });
        assert_eq!(
            c.unlock(&ka.id(), &ka.slots()).err(),
            Some(KeyError::WrongKeyFile)
        );
    }
}
