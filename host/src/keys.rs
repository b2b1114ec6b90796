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
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use credlock_core::platform::{IoError, KeyError, KeySlot, SealError};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use zeroize::Zeroizing;

pub const KEY_FILE_SLOT: &str = "key-file";
pub const PASSPHRASE_SLOT: &str = "passphrase";
const SLOT_VERSION: u8 = 1;
const KEY_FILE_MAGIC: &str = "credlock-key-file-v1";

/// argon2id parameters written into new passphrase slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    pub m_cost_kib: u32,
    pub t_cost: u32,
    pub p_cost: u32,
}

impl Default for KdfParams {
    /// OWASP's argon2id recommendation (m=19 MiB, t=2) raised to 64 MiB, t=3: ~0.1-0.3 s.
    fn default() -> Self {
        KdfParams {
            m_cost_kib: 64 * 1024,
            t_cost: 3,
            p_cost: 1,
        }
    }
}

impl KdfParams {
    /// Bounds on what a slot may ask for: a tampered header must not make us allocate
    /// gigabytes or spin for minutes before the (failing) authentication.
    fn check(&self) -> Result<(), KeyError> {
        let ok = (8..=1024 * 1024).contains(&self.m_cost_kib)
            && (1..=64).contains(&self.t_cost)
            && (1..=16).contains(&self.p_cost);
        if ok {
            Ok(())
        } else {
            Err(KeyError::MalformedSlot(
                "passphrase slot has out-of-range argon2id parameters".into(),
            ))
        }
    }
}

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
    cipher: Aes256Gcm,
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
        if nonce.len() != 12 {
            return Err(SealError::BadNonce);
        }
        self.cipher
            .encrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| SealError::AuthenticationFailed)
    }
    pub fn open(&self, nonce: &[u8], aad: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>, SealError> {
        if nonce.len() != 12 {
            return Err(SealError::BadNonce);
        }
        self.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .map_err(|_| SealError::AuthenticationFailed)
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

/// A key file's contents: a wrapping key and its id.
struct FileKey {
    id: [u8; 16],
    key: Zeroizing<[u8; 32]>,
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

fn wrap(kek: &[u8; 32], aad: &[u8], data_key: &[u8; 32]) -> ([u8; 12], Vec<u8>) {
    let nonce = random::<12>();
    let cipher = Aes256Gcm::new(kek.into());
    // Encryption with a valid key and nonce length cannot fail.
    let ct = cipher
        .encrypt(Nonce::from_slice(&nonce), Payload { msg: data_key, aad })
        .expect("AES-GCM encrypt");
    (nonce, ct)
}

fn unwrap(kek: &[u8; 32], aad: &[u8], nonce: &[u8], ct: &[u8]) -> Option<Zeroizing<[u8; 32]>> {
    let cipher = Aes256Gcm::new(kek.into());
    let pt = Zeroizing::new(
        cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
            .ok()?,
    );
    let key: [u8; 32] = pt.as_slice().try_into().ok()?;
    Some(Zeroizing::new(key))
}

fn slot_aad(kind: &str, data_key_id: &[u8; 16], params: &[u8]) -> Vec<u8> {
    let mut aad = format!("credlock/slot/{kind}/v1").into_bytes();
    aad.extend_from_slice(data_key_id);
    aad.extend_from_slice(params);
    aad
}

fn derive(passphrase: &str, salt: &[u8], p: KdfParams) -> Result<Zeroizing<[u8; 32]>, KeyError> {
    p.check()?;
    let params = argon2::Params::new(p.m_cost_kib, p.t_cost, p.p_cost, Some(32))
        .map_err(|_| KeyError::MalformedSlot("invalid argon2id parameters".into()))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(passphrase.as_bytes(), salt, out.as_mut())
        .map_err(|_| KeyError::MalformedSlot("argon2id failed".into()))?;
    Ok(out)
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
            let id = random::<16>();
            let key = Zeroizing::new(random::<32>());
            let text = Zeroizing::new(format!(
                "{KEY_FILE_MAGIC} {} {}\n",
                hex::encode(id),
                hex::encode(key.as_ref())
            ));
            // Loses the race gracefully: if another process made the file first, read theirs.
            files::create_exclusive(&path, text.as_bytes())
                .map_err(|e| KeyError::Io(file_io(e)))?;
        }
        let Some(bytes) = files::read(&path, 4096).map_err(|e| KeyError::Io(file_io(e)))? else {
            return Ok(None);
        };
        let bytes = Zeroizing::new(bytes);
        let text = std::str::from_utf8(&bytes).map_err(|_| KeyError::WrongKeyFile)?;
        let mut parts = text.split_whitespace();
        let (Some(KEY_FILE_MAGIC), Some(id), Some(key), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(KeyError::WrongKeyFile);
        };
        let id: [u8; 16] = hex::decode(id)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or(KeyError::WrongKeyFile)?;
        let key = Zeroizing::new(hex::decode(key).map_err(|_| KeyError::WrongKeyFile)?);
        let key: [u8; 32] = key
            .as_slice()
            .try_into()
            .map_err(|_| KeyError::WrongKeyFile)?;
        let fk = Arc::new(FileKey {
            id,
            key: Zeroizing::new(key),
        });
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
            let (nonce, ct) = wrap(&fk.key, &slot_aad(KEY_FILE_SLOT, &id, &fk.id), &data_key);
            let mut data = vec![SLOT_VERSION];
            data.extend_from_slice(&fk.id);
            data.extend_from_slice(&nonce);
            data.extend_from_slice(&ct);
            slots.push(KeySlot {
                kind: KEY_FILE_SLOT.into(),
                data,
            });
        }
        if let Some(pass) = self.sources.passphrase.clone() {
            let p = self.sources.kdf;
            let salt = random::<16>();
            let mut params = Vec::with_capacity(12);
            params.extend_from_slice(&p.m_cost_kib.to_be_bytes());
            params.extend_from_slice(&p.t_cost.to_be_bytes());
            params.extend_from_slice(&p.p_cost.to_be_bytes());
            let kek = derive(&pass, &salt, p)?;
            let (nonce, ct) = wrap(
                &kek,
                &slot_aad(PASSPHRASE_SLOT, &id, &[params.as_slice(), &salt].concat()),
                &data_key,
            );
            let mut data = vec![SLOT_VERSION];
            data.extend_from_slice(&params);
            data.extend_from_slice(&salt);
            data.extend_from_slice(&nonce);
            data.extend_from_slice(&ct);
            slots.push(KeySlot {
                kind: PASSPHRASE_SLOT.into(),
                data,
            });
        }
        let key = Arc::new(DataKey {
            id,
            cipher: Aes256Gcm::new(data_key.as_ref().into()),
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
                        cipher: Aes256Gcm::new(data_key.as_ref().into()),
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
        if data.len() != 1 + 16 + 12 + 48 || data[0] != SLOT_VERSION {
            return Err(KeyError::MalformedSlot(
                "key-file slot has an unknown layout".into(),
            ));
        }
        let Some(fk) = self.read_key_file(false)? else {
            return Ok(None);
        };
        let (kek_id, nonce, ct) = (&data[1..17], &data[17..29], &data[29..]);
        if kek_id != fk.id {
            return Err(KeyError::WrongKeyFile);
        }
        unwrap(
            &fk.key,
            &slot_aad(KEY_FILE_SLOT, data_key_id, kek_id),
            nonce,
            ct,
        )
        .map(Some)
        .ok_or(KeyError::WrongKeyFile)
    }

    fn open_passphrase_slot(
        &mut self,
        data_key_id: &[u8; 16],
        data: &[u8],
    ) -> Result<Option<Zeroizing<[u8; 32]>>, KeyError> {
        if data.len() != 1 + 12 + 16 + 12 + 48 || data[0] != SLOT_VERSION {
            return Err(KeyError::MalformedSlot(
                "passphrase slot has an unknown layout".into(),
            ));
        }
        let Some(pass) = self.sources.passphrase.clone() else {
            return Ok(None);
        };
        let be = |i: usize| u32::from_be_bytes(data[i..i + 4].try_into().expect("4 bytes"));
        let p = KdfParams {
            m_cost_kib: be(1),
            t_cost: be(5),
            p_cost: be(9),
        };
        let (params, salt, nonce, ct) = (&data[1..13], &data[13..29], &data[29..41], &data[41..]);
        let kek = derive(&pass, salt, p)?;
        unwrap(
            &kek,
            &slot_aad(PASSPHRASE_SLOT, data_key_id, &[params, salt].concat()),
            nonce,
            ct,
        )
        .map(Some)
        .ok_or(KeyError::WrongPassphrase)
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
