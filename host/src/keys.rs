//! Data keys and the key slots that wrap them (FORMAT.md, "Key slots").
//!
//! A store is sealed under a random 256-bit *data key*. The header carries that key wrapped
//! (AES-256-GCM) by each configured key source: a key file, a passphrase (argon2id). Keys
//! live only here, in the host; the core holds a handle. Unwrapped keys are cached for the
//! life of the process, so a passphrase costs one argon2id derivation per process.
//!
//! Never: create a key because a source is missing. `unlock` reports which slots exist;
//! only `create`, which the core calls under the exclusive store lock with no store file,
//! makes a key.

use crate::files;
use credlock_core::platform::{IoError, KeyError, KeySlot, SealError};
use credlock_keyslots::{FileKey, SlotError};
pub use credlock_keyslots::{KdfParams, KEY_FILE_SLOT, PASSPHRASE_SLOT};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use zeroize::Zeroizing;

/// Where the host may find keys. Built from flags and the environment.
#[derive(Clone, Default)]
pub struct KeySources {
    pub passphrase: Option<Zeroizing<String>>,
    /// Tried when opening a store, if the file exists.
    pub key_file: Option<PathBuf>,
    /// Whether a new store gets a key-file slot (creating the file if needed).
    pub create_key_file: bool,
    pub kdf: KdfParams,
}

impl std::fmt::Debug for KeySources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySources")
            .field("passphrase", &self.passphrase.as_ref().map(|_| "<set>"))
            .field("key_file", &self.key_file)
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

/// A shared handle to an unwrapped data key: what the core and the component hold.
#[derive(Clone)]
pub struct KeyHandle(pub Arc<DataKey>);

impl std::ops::Deref for KeyHandle {
    type Target = DataKey;
    fn deref(&self) -> &DataKey {
        &self.0
    }
}

/// The process's key sources and the keys unwrapped so far.
pub struct Keyring {
    sources: KeySources,
    cache: HashMap<[u8; 16], Arc<DataKey>>,
    file_key: Option<Arc<FileKey>>,
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

impl Keyring {
    pub fn new(sources: KeySources) -> Self {
        Keyring {
            sources,
            cache: HashMap::new(),
            file_key: None,
        }
    }

    pub fn sources(&self) -> &KeySources {
        &self.sources
    }

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
        let Some(bytes) = files::read(&path, 4096).map_err(|e| KeyError::Io(file_io(e)))? else {
            return Ok(None);
        };
        let fk = Arc::new(
            credlock_keyslots::parse_key_file(&Zeroizing::new(bytes))
                .ok_or(KeyError::WrongKeyFile)?,
        );
        self.file_key = Some(Arc::clone(&fk));
        Ok(Some(fk))
    }

    /// A new data key with a slot for every configured source.
    pub fn create(&mut self) -> Result<Arc<DataKey>, KeyError> {
        let use_key_file = self.sources.create_key_file && self.sources.key_file.is_some();
        if self.sources.passphrase.is_none() && !use_key_file {
            return Err(KeyError::NoKeySource);
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
            let data = credlock_keyslots::passphrase_slot(
                &pass,
                self.sources.kdf,
                random(),
                &id,
                &data_key,
                random(),
            )
            .map_err(|e| slot_error(e, KeyError::WrongPassphrase))?;
            slots.push(KeySlot {
                kind: PASSPHRASE_SLOT.into(),
                data,
            });
        }
        let key = Arc::new(DataKey {
            id,
            key: data_key,
            slots,
        });
        self.cache.insert(id, Arc::clone(&key));
        Ok(key)
    }

    /// Unwrap data key `key_id` from the first slot a configured source opens.
    pub fn unlock(&mut self, key_id: &[u8], slots: &[KeySlot]) -> Result<Arc<DataKey>, KeyError> {
        let id: [u8; 16] = key_id
            .try_into()
            .map_err(|_| KeyError::MalformedSlot("key id is not 16 bytes".into()))?;
        if let Some(k) = self.cache.get(&id) {
            return Ok(Arc::clone(k));
        }
        // Remember the most specific failure to report if no slot opens.
        let mut failure: Option<KeyError> = None;
        for slot in slots {
            let opened = match slot.kind.as_str() {
                KEY_FILE_SLOT => self.open_key_file_slot(&id, &slot.data),
                PASSPHRASE_SLOT => self.open_passphrase_slot(&id, &slot.data),
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
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
        }
        Err(failure.unwrap_or_else(|| {
            KeyError::NoMatchingSlot(slots.iter().map(|s| s.kind.clone()).collect())
        }))
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
        credlock_keyslots::open_passphrase_slot(&pass, data_key_id, data)
            .map(Some)
            .map_err(|e| slot_error(e, KeyError::WrongPassphrase))
    }
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
        let mut k = Keyring::new(KeySources {
            passphrase: Some(Zeroizing::new("pw".into())),
            key_file: Some(kf.clone()),
            create_key_file: true,
            kdf: fast(),
        });
        let key = k.create().unwrap();
        let slots = key.slots();
        assert_eq!(
            slots.iter().map(|s| s.kind.as_str()).collect::<Vec<_>>(),
            ["key-file", "passphrase"]
        );
        let ct = key.seal(&[1; 12], b"aad", b"hello").unwrap();

        let mut only_file = Keyring::new(KeySources {
            passphrase: None,
            key_file: Some(kf.clone()),
            create_key_file: true,
            kdf: fast(),
        });
        assert_eq!(
            only_file
                .unlock(&key.id(), &slots)
                .unwrap()
                .open(&[1; 12], b"aad", &ct)
                .unwrap(),
            b"hello"
        );
        let mut only_pass = Keyring::new(KeySources {
            passphrase: Some(Zeroizing::new("pw".into())),
            key_file: None,
            create_key_file: true,
            kdf: fast(),
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
        let mut k = Keyring::new(KeySources {
            passphrase: Some(Zeroizing::new("pw".into())),
            key_file: None,
            create_key_file: true,
            kdf: fast(),
        });
        let key = k.create().unwrap();
        let slots = key.slots();
        let mut wrong = Keyring::new(KeySources {
            passphrase: Some(Zeroizing::new("nope".into())),
            key_file: None,
            create_key_file: true,
            kdf: fast(),
        });
        assert_eq!(
            wrong.unlock(&key.id(), &slots).err(),
            Some(KeyError::WrongPassphrase)
        );
        let mut none = Keyring::new(KeySources {
            passphrase: None,
            key_file: Some(kf.clone()),
            create_key_file: true,
            kdf: fast(),
        });
        assert_eq!(
            none.unlock(&key.id(), &slots).err(),
            Some(KeyError::NoMatchingSlot(vec!["passphrase".into()]))
        );
        assert!(!kf.exists(), "unlock must never create a key file");

        let mut a = Keyring::new(KeySources {
            passphrase: None,
            key_file: Some(kf.clone()),
            create_key_file: true,
            kdf: fast(),
        });
        let ka = a.create().unwrap();
        std::fs::remove_file(&kf).unwrap();
        let mut b = Keyring::new(KeySources {
            passphrase: None,
            key_file: Some(kf.clone()),
            create_key_file: true,
            kdf: fast(),
        });
        assert_eq!(
            b.unlock(&ka.id(), &ka.slots()).err(),
            Some(KeyError::NoMatchingSlot(vec!["key-file".into()]))
        );
        let _ = b.create().unwrap(); // a new key file appears only through create
        let mut c = Keyring::new(KeySources {
            passphrase: None,
            key_file: Some(kf),
            create_key_file: true,
            kdf: fast(),
        });
        assert_eq!(
            c.unlock(&ka.id(), &ka.slots()).err(),
            Some(KeyError::WrongKeyFile)
        );
    }
}
