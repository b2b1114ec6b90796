//! Fuzz bodies. Each takes arbitrary bytes and panics only on a real bug.
//! - [`decode`]: the store decoder: decode, re-encode, same bytes; any file is an error or a store.
//! - [`ops`]: operation sequences on one process against a reference model, with injected
//!   write failures: puts, deletes, reads, imports, rekeys, slot changes and forced recovers
//!   (the model keeps the backup too, so it knows what a recover restores).

use credlock_core::format::Header;
use credlock_core::platform::*;
use credlock_core::{Options, RecoverError, SlotChangeError, Store, StoreError};
use std::collections::BTreeMap;

/// A single-process in-memory platform whose faults come from the fuzz input.
pub struct MemPlatform {
    pub store: Option<Vec<u8>>,
    pub backup: Option<Vec<u8>>,
    /// Files `quarantine` moved aside: (name, contents).
    pub aside: Vec<(String, Vec<u8>)>,
    pub key: [u8; 32],
    pub key_id: [u8; 16],
    /// Keys made by `rekey`: (id, key). Every one of them opens.
    pub rekeyed: Vec<([u8; 16], [u8; 32])>,
    pub now_ms: u64,
    pub fail_next_write: bool,
    pub counter: u64,
}

impl MemPlatform {
    pub fn new() -> Self {
        MemPlatform {
            store: None,
            backup: None,
            aside: Vec::new(),
            key: [9; 32],
            key_id: [3; 16],
            rekeyed: Vec::new(),
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
                // The previous version becomes the backup; with none, the backup stays.
                if let Some(old) = self.store.take() {
                    self.backup = Some(old);
                }
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
    fn quarantine(&mut self, f: StoreFile) -> Result<String, FileError> {
        let (base, file) = match f {
            StoreFile::Store => ("credentials.sealed", &mut self.store),
            StoreFile::Backup => ("credentials.sealed.bak", &mut self.backup),
        };
        let bytes = file
            .take()
            .ok_or_else(|| FileError::Io(IoError::Other("no such file".into())))?;
        let stem = format!("{base}.corrupt-{}", self.now_ms);
        let mut name = stem.clone();
        let mut n = 0;
        while self.aside.iter().any(|(a, _)| *a == name) {
            n += 1;
            name = format!("{stem}-{n}");
        }
        self.aside.push((name.clone(), bytes));
        Ok(name)
    }
    fn unlock(&mut self, key_id: &[u8], slots: &[KeySlot]) -> Result<Self::Key, KeyError> {
        let found = std::iter::once((self.key_id, self.key))
            .chain(self.rekeyed.iter().copied())
            .find(|(id, _)| id.as_slice() == key_id);
        match found {
            Some((id, key)) => Ok(crate::platform::SimKey {
                id,
                key,
                slots: slots.to_vec(),
                ctx: None,
            }),
            None => Err(KeyError::NoMatchingSlot(
                slots.iter().map(|s| s.kind.clone()).collect(),
            )),
        }
    }
    fn create_key(&mut self) -> Result<Self::Key, KeyError> {
        Ok(crate::platform::SimKey::plain(self.key_id, self.key))
    }
    fn rekey(&mut self, slots: &[KeySlot]) -> Result<Self::Key, KeyError> {
        let mut id = [0u8; 16];
        let mut key = [0u8; 32];
        self.fill_random(&mut id);
        self.fill_random(&mut key);
        self.rekeyed.push((id, key));
        Ok(crate::platform::SimKey {
            id,
            key,
            slots: slots
                .iter()
                .map(|s| KeySlot {
                    kind: s.kind.clone(),
                    data: id.to_vec(),
                })
                .collect(),
            ctx: None,
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
/// same bytes; and a whole store file never makes the store panic, only fail. A file that
/// does not open is never written; `recover` without a backup changes nothing; `quarantine`
/// moves a damaged one aside byte for byte and leaves any other (wrong key, newer format)
/// exactly as it was. One that opens is never quarantined.
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
    if let Err(e) = listed {
        assert!(put.is_err(), "an unreadable store was written");
        // Only a damaged file is moved aside (never a store a wrong key or a newer format
        // cannot open), and never restored over without a backup.
        let damaged = matches!(
            e,
            StoreError::Corrupt(_)
                | StoreError::NotAStore(_)
                | StoreError::Key(KeyError::MalformedSlot(_))
        );
        match s.recover(false) {
            Err(StoreError::Recover(RecoverError::NoBackup)) => assert!(damaged, "{e:?}"),
            Err(other) => assert!(!damaged && other == e, "recover: {other:?} after {e:?}"),
            Ok(r) => panic!("recover without a backup restored something: {r:?}"),
        }
        let moved = s.quarantine(false);
        if damaged {
            assert_eq!(p.store, None, "quarantine left the damaged store in place");
            let name = moved.expect("a damaged store can be quarantined");
            assert_eq!(p.aside, [(name, before.expect("set above"))]);
        } else {
            assert!(
                moved.is_err(),
                "a store a key or version cannot open was moved"
            );
            assert_eq!(
                p.store, before,
                "a store a key or version cannot open changed"
            );
            assert!(p.aside.is_empty());
            // `quarantine --force`: a store that fails for a reason of its own (damage no
            // check can prove reads as another key or a newer format) is moved aside byte for
            // byte; one failing for its environment is left alone.
            let forceable = matches!(
                e,
                StoreError::UnsupportedVersion(_)
                    | StoreError::Key(
                        KeyError::WrongKeyFile
                            | KeyError::WrongPassphrase
                            | KeyError::NoMatchingSlot(_)
                            | KeyError::KeyringEntryMissing { .. }
                    )
            );
            let forced = Store::new(&mut p, Options::default())
                .expect("default options")
                .quarantine(true);
            if forceable {
                let name = forced.expect("quarantine --force moves a store that does not open");
                assert_eq!(p.store, None, "quarantine --force left the store in place");
                assert_eq!(p.aside, [(name, before.expect("set above"))]);
            } else {
                assert!(forced.is_err(), "{e:?}");
                assert_eq!(p.store, before);
            }
        }
    } else {
        assert!(matches!(
            s.quarantine(true),
            Err(StoreError::Recover(RecoverError::StoreReadable))
        ));
        assert!(p.aside.is_empty(), "a readable store was moved aside");
    }
}

/// What the store holds, as the model sees it: tenants (token, revision) and slot kinds.
#[derive(Debug, Clone, Default, PartialEq)]
struct Model {
    tenants: BTreeMap<String, (String, u64)>,
    slots: Vec<String>,
}

/// Operation sequences against a reference model. Byte pairs pick an operation, a tenant,
/// and whether the write fails; the store (and its backup, which `recover` restores) must
/// always equal the model.
pub fn ops(data: &[u8]) {
    let mut p = MemPlatform::new();
    // `None`: there is no store file.
    let mut model: Option<Model> = None;
    let mut backup: Option<Model> = None;
    for (i, pair) in data.chunks(2).enumerate() {
        let (op, arg) = (pair[0], *pair.get(1).unwrap_or(&0));
        let tenant = format!("t{}", arg % 5);
        p.fail_next_write = op & 0x80 != 0;
        p.now_ms += u64::from(arg);
        let failing = p.fail_next_write;
        let (store_before, aside_before) = (p.store.clone(), p.aside.len());
        let mut moved_aside = false;
        let mut s = Store::new(&mut p, Options::default()).expect("default options");
        // A successful write of `next`: the file it replaced, if any, becomes the backup.
        let mut wrote = |model: &mut Option<Model>, next: Model| {
            if let Some(old) = model.replace(next) {
                backup = Some(old);
            }
        };
        let current = model.clone().unwrap_or_default();
        match op % 10 {
            0 | 1 => {
                let token = format!("tok{i}");
                match s.put(&tenant, &format!(r#"{{"access_token":"{token}"}}"#)) {
                    Ok(r) => {
                        assert!(!failing);
                        let mut next = current.clone();
                        if model.is_none() {
                            next.slots = vec!["sim".into()];
                        }
                        let rev = next.tenants.get(&tenant).map_or(0, |e| e.1) + 1;
                        assert_eq!(r.revision, rev);
                        next.tenants.insert(tenant, (token, rev));
                        wrote(&mut model, next);
                    }
                    Err(StoreError::Io(_)) => assert!(failing),
                    Err(e) => panic!("put failed: {e}"),
                }
            }
            2 => match s.delete(&tenant) {
                Ok(existed) => {
                    assert_eq!(existed, current.tenants.contains_key(&tenant));
                    if existed {
                        let mut next = current.clone();
                        next.tenants.remove(&tenant);
                        // Written twice, so the backup forgets the tenant too.
                        wrote(&mut model, next.clone());
                        wrote(&mut model, next);
                    }
                }
                Err(StoreError::Io(_)) => assert!(failing),
                Err(e) => panic!("delete failed: {e}"),
            },
            3 => match s.token(&tenant, 0) {
                Ok(t) => assert_eq!(Some(&t.token), current.tenants.get(&tenant).map(|e| &e.0)),
                Err(StoreError::NotFound(_)) => assert!(!current.tenants.contains_key(&tenant)),
                Err(e) => panic!("token failed: {e}"),
            },
            4 => match s.rekey() {
                Ok(info) => {
                    // An absent store is not created: nothing to write, nothing to fail.
                    assert!(!failing || model.is_none());
                    assert_eq!(info.exists, model.is_some());
                    if model.is_some() {
                        assert_eq!(info.slot_kinds, current.slots);
                        wrote(&mut model, current.clone());
                        // The backup is sealed under the old key: rekey removes it.
                        backup = None;
                    }
                }
                Err(StoreError::Io(_)) => assert!(failing && model.is_some()),
                Err(e) => panic!("rekey failed: {e}"),
            },
            5 => {
                let kind = ["passphrase", "kernel-keyring", "sim", "foreign"][arg as usize % 4];
                match s.add_slot(kind) {
                    Ok(slots) => {
                        assert!(!failing);
                        let mut next = current.clone();
                        if model.is_none() {
                            next.slots = vec!["sim".into()];
                        }
                        next.slots.push(kind.into());
                        let kinds: Vec<String> = slots.iter().map(|s| s.kind.clone()).collect();
                        assert_eq!(kinds, next.slots);
                        wrote(&mut model, next);
                    }
                    Err(StoreError::Key(KeyError::SlotUnavailable(_))) => {
                        assert_eq!(kind, "foreign")
                    }
                    Err(StoreError::SlotChange(SlotChangeError::TooManySlots(n))) => {
                        assert_eq!(current.slots.len(), n as usize)
                    }
                    Err(StoreError::Io(_)) => assert!(failing),
                    Err(e) => panic!("add-slot failed: {e}"),
                }
            }
            6 => {
                let index = u32::from(arg % 4);
                let allow = op & 0x40 != 0;
                let mut left = current.slots.clone();
                let expected = if model.is_none() || index as usize >= left.len() {
                    Err(SlotChangeError::NoSuchSlot(index))
                } else if left.len() == 1 {
                    Err(SlotChangeError::LastSlot)
                } else {
                    left.remove(index as usize);
                    if !allow && !left.iter().any(|k| slot_is_durable(k)) {
                        Err(SlotChangeError::OnlyVolatileLeft(left.clone()))
                    } else {
                        Ok(left)
                    }
                };
                match (s.remove_slot(index, allow), expected) {
                    (Ok(slots), Ok(left)) => {
                        assert!(!failing);
                        let kinds: Vec<String> = slots.iter().map(|s| s.kind.clone()).collect();
                        assert_eq!(kinds, left);
                        let mut next = current.clone();
                        next.slots = left;
                        wrote(&mut model, next);
                        // The backup still holds the removed slot: it goes too.
                        backup = None;
                    }
                    (Err(StoreError::SlotChange(e)), Err(want)) => assert_eq!(e, want),
                    (Err(StoreError::Io(_)), Ok(_)) => assert!(failing),
                    (got, want) => panic!("remove-slot: got {got:?}, expected {want:?}"),
                }
            }
            7 => {
                let replace = op & 0x40 != 0;
                let other = format!("t{}", (arg / 5) % 5);
                let names: Vec<&String> = if other == tenant {
                    vec![&tenant]
                } else {
                    vec![&tenant, &other]
                };
                let token = format!("imp{i}");
                let source = format!(
                    "{{{}, \"api\": {{\"type\": \"api\", \"key\": \"k\"}}}}",
                    names
                        .iter()
                        .map(|n| format!(r#""{n}": {{"type": "oauth", "access": "{token}"}}"#))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                let conflicts: Vec<String> = names
                    .iter()
                    .filter(|n| current.tenants.contains_key(n.as_str()))
                    .map(|n| n.to_string())
                    .collect();
                let how = credlock_core::ImportOptions {
                    replace,
                    ..Default::default()
                };
                match s.import_tokens(&source, None, &how) {
                    Ok(report) => {
                        assert!(!failing && (replace || conflicts.is_empty()));
                        let mut next = current.clone();
                        if model.is_none() {
                            next.slots = vec!["sim".into()];
                        }
                        for n in &names {
                            let rev = next.tenants.get(n.as_str()).map_or(0, |e| e.1) + 1;
                            next.tenants.insert(n.to_string(), (token.clone(), rev));
                        }
                        let mut imported: Vec<String> =
                            names.iter().map(|n| n.to_string()).collect();
                        imported.sort();
                        assert_eq!(report.imported, imported);
                        assert_eq!(report.skipped.len(), 1, "the API key is skipped");
                        wrote(&mut model, next);
                    }
                    Err(StoreError::ImportConflict(names)) => {
                        assert!(!replace);
                        let mut want = conflicts.clone();
                        want.sort();
                        let mut got = names;
                        got.sort();
                        assert_eq!(got, want);
                    }
                    Err(StoreError::Io(_)) => assert!(failing),
                    Err(e) => panic!("import failed: {e}"),
                }
            }
            8 => {
                let force = op & 0x40 != 0;
                match s.recover(force) {
                    Ok(r) => {
                        // Without force, only where there is no store (a failed recover).
                        assert!(!failing && (force || model.is_none()));
                        assert_eq!(model.is_some(), r.quarantined_as.is_some());
                        let restored = backup.clone().expect("recover restored a backup");
                        moved_aside = r.quarantined_as.is_some();
                        // The restored store became the backup first, then the store.
                        backup = Some(restored.clone());
                        model = Some(restored);
                    }
                    Err(StoreError::Recover(RecoverError::StoreReadable)) => {
                        assert!(!force && model.is_some())
                    }
                    Err(StoreError::Recover(RecoverError::NoBackup)) => assert!(backup.is_none()),
                    Err(StoreError::Io(_)) => {
                        // The first write (the restored store as the new backup) failed:
                        // nothing was moved aside or changed.
                        assert!(failing && (force || model.is_none()));
                    }
                    Err(e) => panic!("recover failed: {e}"),
                }
            }
            _ => match s.quarantine(op & 0x40 != 0) {
                Err(StoreError::Recover(RecoverError::StoreReadable)) => assert!(model.is_some()),
                Err(StoreError::Io(_)) => assert!(model.is_none()),
                other => panic!("quarantine of a readable or absent store: {other:?}"),
            },
        }
        p.fail_next_write = false;
        // Only a forced recover moved the store aside here, and byte for byte.
        if moved_aside {
            assert_eq!(p.aside.len(), aside_before + 1);
            assert_eq!(Some(&p.aside[aside_before].1), store_before.as_ref());
        } else {
            assert_eq!(p.aside.len(), aside_before, "op {i} moved a file aside");
        }
        let mut s = Store::new(&mut p, Options::default()).unwrap();
        let listed: Vec<(String, u64)> = s
            .list()
            .unwrap()
            .into_iter()
            .map(|t| (t.tenant, t.revision))
            .collect();
        let expected = model.clone().unwrap_or_default();
        let want: Vec<(String, u64)> = expected
            .tenants
            .iter()
            .map(|(k, v)| (k.clone(), v.1))
            .collect();
        assert_eq!(listed, want, "store and model disagree after op {i}");
        let kinds: Vec<String> = s.slots().unwrap().into_iter().map(|s| s.kind).collect();
        assert_eq!(
            kinds, expected.slots,
            "slots and model disagree after op {i}"
        );
        assert_eq!(p.backup.is_some(), backup.is_some(), "backup after op {i}");
    }
}
