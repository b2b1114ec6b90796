//! Fuzz bodies. Each takes arbitrary bytes and panics only on a real bug.
//! - [`decode`]: the store decoder: decode, re-encode, same bytes; any file is an error or a store.
//! - [`ops`]: operation sequences on one process against a reference model, with injected
//!   write failures.

use credlock_core::format::Header;
use credlock_core::platform::*;
use credlock_core::{Options, Store, StoreError};
use std::collections::BTreeMap;

/// A single-process in-memory platform whose faults come from the fuzz input.
pub struct MemPlatform {
    pub store: Option<Vec<u8>>,
    pub backup: Option<Vec<u8>>,
    pub key: [u8; 32],
    pub key_id: [u8; 16],
    pub now_ms: u64,
    pub fail_next_write: bool,
    pub counter: u64,
}

impl MemPlatform {
    pub fn new() -> Self {
        MemPlatform {
            store: None,
            backup: None,
            key: [9; 32],
            key_id: [3; 16],
            now_ms: 1_000_000,
            fail_next_write: false,
            counter: 0,
        }
    }
}

impl Default for MemPlatform {
    fn default() -> Self {
        Self::new()
    }
}

impl Platform for MemPlatform {
    type Guard = ();
    type Key = crate::platform::SimKey;
    fn acquire(&mut self, _: &LockTarget, _: LockMode, _: u32) -> Result<(), LockError> {
        Ok(())
    }
    fn read(&mut self, f: StoreFile) -> Result<Option<Vec<u8>>, FileError> {
        Ok(match f {
            StoreFile::Store => self.store.clone(),
            StoreFile::Backup => self.backup.clone(),
        })
    }
    fn replace(&mut self, f: StoreFile, c: &[u8]) -> Result<(), FileError> {
        if std::mem::take(&mut self.fail_next_write) {
            return Err(FileError::Io(IoError::NoSpace("fuzz".into())));
        }
        match f {
            StoreFile::Store => {
                self.backup = self.store.take();
                self.store = Some(c.to_vec());
            }
            StoreFile::Backup => self.backup = Some(c.to_vec()),
        }
        Ok(())
    }
    fn remove(&mut self, f: StoreFile) -> Result<(), FileError> {
        match f {
            StoreFile::Store => self.store = None,
            StoreFile::Backup => self.backup = None,
        }
        Ok(())
    }
    fn unlock(&mut self, key_id: &[u8], slots: &[KeySlot]) -> Result<Self::Key, KeyError> {
        if key_id == self.key_id {
            Ok(crate::platform::SimKey {
                id: self.key_id,
                key: self.key,
            })
        } else {
            Err(KeyError::NoMatchingSlot(
                slots.iter().map(|s| s.kind.clone()).collect(),
            ))
        }
    }
    fn create_key(&mut self) -> Result<Self::Key, KeyError> {
        Ok(crate::platform::SimKey {
            id: self.key_id,
            key: self.key,
        })
    }
    fn post(&mut self, _: &TokenRequest) -> Result<HttpReply, TransportError> {
        Err(TransportError::Connect(
            "no network in this fuzz target".into(),
        ))
    }
    fn wall_ms(&mut self) -> u64 {
        self.now_ms
    }
    fn monotonic_ms(&mut self) -> u64 {
        self.now_ms
    }
    fn fill_random(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.counter = self
                .counter
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            *b = (self.counter >> 56) as u8;
        }
    }
}

/// The decoder: any bytes are a header or a specific error; a header re-encodes to the
/// same bytes; and a whole store file never makes the store panic, only fail.
pub fn decode(data: &[u8]) {
    if let Ok((header, len)) = Header::decode(data) {
        assert_eq!(
            header.encode(),
            &data[..len],
            "decode/encode is not the identity"
        );
    }
    let mut p = MemPlatform::new();
    p.store = Some(data.to_vec());
    let before = p.store.clone();
    let mut s = Store::new(&mut p, Options::default()).expect("default options");
    let listed = s.list();
    let put = s.put("acme", r#"{"access_token":"x"}"#);
    if listed.is_err() {
        assert!(put.is_err(), "an unreadable store was written");
        assert_eq!(p.store, before, "an unreadable store changed");
    }
}

/// Operation sequences against a reference model. Byte pairs pick an operation, a tenant,
/// and whether the write fails; the store must always equal the model.
pub fn ops(data: &[u8]) {
    let mut p = MemPlatform::new();
    let mut model: BTreeMap<String, (String, u64)> = BTreeMap::new();
    for (i, pair) in data.chunks(2).enumerate() {
        let (op, arg) = (pair[0], *pair.get(1).unwrap_or(&0));
        let tenant = format!("t{}", arg % 5);
        p.fail_next_write = op & 0x80 != 0;
        p.now_ms += u64::from(arg);
        let failing = p.fail_next_write;
        let mut s = Store::new(&mut p, Options::default()).expect("default options");
        match op % 4 {
            0 | 1 => {
                let token = format!("tok{i}");
                match s.put(&tenant, &format!(r#"{{"access_token":"{token}"}}"#)) {
                    Ok(r) => {
                        assert!(!failing);
                        let rev = model.get(&tenant).map_or(0, |e| e.1) + 1;
                        assert_eq!(r.revision, rev);
                        model.insert(tenant, (token, rev));
                    }
                    Err(StoreError::Io(_)) => assert!(failing),
                    Err(e) => panic!("put failed: {e}"),
                }
            }
            2 => match s.delete(&tenant) {
                Ok(existed) => {
                    assert_eq!(existed, model.remove(&tenant).is_some());
                }
                Err(StoreError::Io(_)) => assert!(failing),
                Err(e) => panic!("delete failed: {e}"),
            },
            _ => match s.token(&tenant, 0) {
                Ok(t) => assert_eq!(Some(&t.token), model.get(&tenant).map(|e| &e.0)),
                Err(StoreError::NotFound(_)) => assert!(!model.contains_key(&tenant)),
                Err(e) => panic!("token failed: {e}"),
            },
        }
        p.fail_next_write = false;
        let listed: Vec<(String, u64)> = Store::new(&mut p, Options::default())
            .unwrap()
            .list()
            .unwrap()
            .into_iter()
            .map(|t| (t.tenant, t.revision))
            .collect();
        let expected: Vec<(String, u64)> = model.iter().map(|(k, v)| (k.clone(), v.1)).collect();
        assert_eq!(listed, expected, "store and model disagree after op {i}");
    }
}
