//! Maintenance of a store's sealing and of its files: key slots, rekey, recovery.
//!
//! Each operation takes the exclusive store lock, reads the store under it, and ends in one
//! atomic replace or changes nothing, so concurrent readers see the old store or the new one
//! and concurrent writers are serialised behind it: nothing they wrote is lost.
//!
//! Two rules from the field shape this module:
//! - never make a key or a store implicitly: a missing key source is an error naming the
//!   slots that can still open the store (the platform's `unlock`), never a reason to start
//!   afresh; only `recover` and `quarantine`, on explicit request, move an unreadable file,
//!   and they move it aside rather than delete it;
//! - a restored backup may hold refresh tokens that were spent after it was written:
//!   presenting one again could make the server revoke the grant, so `recover` marks them
//!   as of unknown outcome (the refresh machine then refuses to present them).

use crate::error::{RecoverError, SlotChangeError, StoreError};
use crate::format::MAX_SLOTS;
use crate::model::{Body, RefreshIntent};
use crate::platform::{
    slot_is_durable, KeyError, KeySlot, Layout, Platform, SealingKey, StoreFile,
};
use crate::store::{Loaded, Scope, Store, StoreInfo, View};
use crate::tenant::sha256_hex;
use crate::unread::Unread;
use serde::Serialize;

/// What `recover` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecoverReport {
    /// Where the store file that was there was moved, if there was one.
    pub quarantined_as: Option<String>,
    pub generation: u64,
    pub tenants: u32,
    /// Tenants whose restored refresh token may have been spent after the backup was
    /// written; they are marked as of unknown refresh outcome.
    pub refresh_unknown: Vec<String>,
}

impl RecoverReport {
    /// What `credlock recover` tells the user, a line each: written once here because the
    /// native CLI and the WASI command both print it.
    pub fn messages(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(q) = &self.quarantined_as {
            out.push(format!("moved the store file aside to {q}"));
        }
        out.push(format!(
            "restored the backup: {} tenant(s), generation {}",
            self.tenants, self.generation
        ));
        if !self.refresh_unknown.is_empty() {
            out.push(format!(
                "warning: the refresh tokens of {} may have been spent after the backup was written; \
                 they will not be presented again (log in again if their access tokens expire)",
                self.refresh_unknown.join(", ")
            ));
        }
        out
    }
}

impl<'p, P: Platform> Store<'p, P> {
    /// The header's key slots, in order. Opens the store (so it checks the caller's keys).
    pub fn slots(&mut self) -> Result<Vec<KeySlot>, StoreError> {
        match self.read_shared(Scope::Header)? {
            Loaded::Absent => Ok(Vec::new()),
            Loaded::Present { header, .. } => Ok(header.slots),
        }
    }

    /// Add a slot of `kind`, made by the platform from its configured source of that kind.
    /// An absent store is created first (as `put` would).
    pub fn add_slot(&mut self, kind: &str) -> Result<Vec<KeySlot>, StoreError> {
        let lock = self.lock_exclusive()?;
        let read = self.read_under(&lock, Scope::Header)?;
        let (key, mut slots, generation, body, view) = match read.loaded {
            Loaded::Absent => {
                let key = self.p.create_key()?;
                let slots = key.slots();
                let view = self.new_view(&key);
                (key, slots, 0, Body::default(), view)
            }
            Loaded::Present {
                header,
                key,
                body,
                view,
            } => {
                let generation = body.generation;
                (key, header.slots, generation, body, view)
            }
        };
        if slots.len() >= MAX_SLOTS {
            return Err(StoreError::SlotChange(SlotChangeError::TooManySlots(
                MAX_SLOTS as u32,
            )));
        }
        let slot = key.add_slot(kind)?;
        check_slot(&slot)?;
        slots.push(slot);
        self.seal_and_replace(&lock, &key, slots.clone(), generation, body, &view)?;
        Ok(slots)
    }

    /// Remove slot `index`. The backup still holds the removed slot (a passphrase that leaked
    /// would still open it), so it goes once the new file is durable.
    pub fn remove_slot(
        &mut self,
        index: u32,
        allow_volatile_only: bool,
    ) -> Result<Vec<KeySlot>, StoreError> {
        let lock = self.lock_exclusive()?;
        let read = self.read_under(&lock, Scope::Header)?;
        let Loaded::Present {
            header,
            key,
            body,
            view,
        } = read.loaded
        else {
            return Err(StoreError::SlotChange(SlotChangeError::NoSuchSlot(index)));
        };
        let i = index as usize;
        if i >= header.slots.len() {
            return Err(StoreError::SlotChange(SlotChangeError::NoSuchSlot(index)));
        }
        if header.slots.len() == 1 {
            return Err(StoreError::SlotChange(SlotChangeError::LastSlot));
        }
        let mut slots = header.slots;
        slots.remove(i);
        if !allow_volatile_only && !slots.iter().any(|s| slot_is_durable(&s.kind)) {
            return Err(StoreError::SlotChange(SlotChangeError::OnlyVolatileLeft(
                slots.iter().map(|s| s.kind.clone()).collect(),
            )));
        }
        let generation = body.generation;
        self.seal_and_replace(&lock, &key, slots.clone(), generation, body, &view)?;
        self.p.remove(StoreFile::Backup)?;
        Ok(slots)
    }

    /// Re-seal the store under a new data key wrapped by the same sources, in one atomic
    /// replace; then remove the backup, which is sealed under the old key (retiring that
    /// key is usually why one rekeys).
    pub fn rekey(&mut self) -> Result<StoreInfo, StoreError> {
        let lock = self.lock_exclusive()?;
        // Every tenant: each record is sealed again under the new key.
        let read = self.read_under(&lock, Scope::All)?;
        let Loaded::Present {
            header, body, view, ..
        } = read.loaded
        else {
            drop(lock);
            return self.info();
        };
        let new_key = self.p.rekey(&header.slots)?;
        let slots = new_key.slots();
        // The platform's contract: one new slot per old one, same kinds, same order, a new key.
        assert_eq!(
            slots.iter().map(|s| &s.kind).collect::<Vec<_>>(),
            header.slots.iter().map(|s| &s.kind).collect::<Vec<_>>(),
            "platform rekey must re-make every slot, in order"
        );
        assert_ne!(
            new_key.key_id(),
            header.key_id,
            "platform rekey returned the old key"
        );
        for slot in &slots {
            check_slot(slot)?;
        }
        let tenants = u32::try_from(body.tenants.len()).unwrap_or(u32::MAX);
        let generation = body.generation;
        let generation =
            self.seal_and_replace(&lock, &new_key, slots.clone(), generation, body, &view)?;
        self.p.remove(StoreFile::Backup)?;
        Ok(StoreInfo {
            exists: true,
            generation,
            format_version: crate::format::FORMAT_VERSION,
            key_id: crate::tenant::hex(&new_key.key_id()),
            slot_kinds: slots.into_iter().map(|s| s.kind).collect(),
            tenants,
        })
    }

    /// Restore the backup. Only when the store file is damaged (corrupt, not a store, a
    /// damaged key slot) or missing, unless `force`: then also when it opens (a deliberate
    /// rollback) or fails for a reason that may be damage we cannot prove (a header that
    /// reads as another key or a newer format). The store file, if any, is quarantined
    /// first: never deleted, never overwritten. Without `force`, a wrong key or a newer
    /// format is returned as is: the file may be fine.
    pub fn recover(&mut self, force: bool) -> Result<RecoverReport, StoreError> {
        self.refuse_records()?;
        let lock = self.lock_exclusive()?;
        // Not `load`: a missing store beside its backup (an interrupted recover) is exactly
        // what this restores.
        let live = self.load_file(StoreFile::Store);
        let backup = self.load_file(StoreFile::Backup);
        let (live_exists, live_body) = match live {
            Ok(Loaded::Present { .. }) if !force => {
                return Err(StoreError::Recover(RecoverError::StoreReadable))
            }
            Ok(Loaded::Present { body, .. }) => (true, Some(body)),
            Ok(Loaded::Absent) => (false, None),
            // A damaged file: that is what recover is for.
            Err(e) if self.movable(&e, &backup, force)? => (true, None),
            // A wrong or missing key, a lock or I/O failure, a newer format: the file may be
            // perfectly good. Moving it aside would hide it; report why it did not open.
            Err(e) => return Err(e),
        };
        let (bak_header, bak_key, mut body) = match backup {
            Ok(Loaded::Present {
                header, key, body, ..
            }) => (header, key, body),
            Ok(Loaded::Absent) => return Err(StoreError::Recover(RecoverError::NoBackup)),
            Err(e) => {
                return Err(StoreError::Recover(RecoverError::BackupUnreadable(
                    e.to_string(),
                )))
            }
        };
        let now = self.p.wall_ms();
        let refresh_unknown = mark_spent_refresh_tokens(&mut body, live_body.as_ref(), now);
        // Every write bumps the generation by one and keeps the file before it as the backup,
        // so the store we replace had at most the backup's generation + 1 (or we read it).
        let above = live_body
            .as_ref()
            .map_or(0, |b| b.generation)
            .max(body.generation.saturating_add(1));
        let tenants = u32::try_from(body.tenants.len()).unwrap_or(u32::MAX);
        // First the restored store becomes the backup, then the damaged file goes aside, then
        // the store is written (with no store file, that write keeps no backup). A crash at any
        // point leaves a backup above every generation written so far, so recovering again
        // never repeats a generation.
        let backup_generation = self.seal_into(
            &lock,
            StoreFile::Backup,
            &bak_key,
            bak_header.slots.clone(),
            above,
            body.clone(),
            &Unread::default(),
        )?;
        let quarantined_as = if live_exists {
            Some(self.p.quarantine(StoreFile::Store)?)
        } else {
            None
        };
        let generation = self.seal_and_replace(
            &lock,
            &bak_key,
            bak_header.slots,
            backup_generation,
            body,
            &View::Blob(Unread::default()),
        )?;
        Ok(RecoverReport {
            quarantined_as,
            generation,
            tenants,
            refresh_unknown,
        })
    }

    /// Move a damaged store aside so that a new one can be made. Refuses a store that opens
    /// (there is nothing to quarantine), an absent one, and, unless `force`, one that fails
    /// for any reason but damage (a wrong key, a newer format): those are returned as they
    /// are. With `force`, any store that does not open for a reason of its own (not a lock,
    /// an I/O error, a keyring that failed or no key configured) is moved aside: the way out
    /// of header damage no check can prove, when there is no backup to restore.
    ///
    /// With no store file, a backup that cannot be restored is what is moved aside (no new
    /// store is ever started beside a backup, see [`Store::load`]); one that can is left
    /// for `recover`.
    pub fn quarantine(&mut self, force: bool) -> Result<String, StoreError> {
        self.refuse_records()?;
        let _lock = self.lock_exclusive()?;
        let file = match self.load_file(StoreFile::Store) {
            Ok(Loaded::Present { .. }) => {
                return Err(StoreError::Recover(RecoverError::StoreReadable))
            }
            Ok(Loaded::Absent) => match self.load_file(StoreFile::Backup) {
                Ok(Loaded::Absent) => {
                    return Err(StoreError::Io(crate::platform::FileError::Io(
                        crate::platform::IoError::Other(
                            "there is no store file to quarantine".into(),
                        ),
                    )))
                }
                Ok(Loaded::Present { .. }) => {
                    return Err(StoreError::Corrupt(
                        crate::store::MISSING_BESIDE_BACKUP.into(),
                    ))
                }
                Err(e) if self.movable(&e, &Ok(Loaded::Absent), force)? => StoreFile::Backup,
                Err(e) => return Err(e),
            },
            Err(e) => {
                let backup = self.load_file(StoreFile::Backup);
                if !self.movable(&e, &backup, force)? {
                    return Err(e);
                }
                StoreFile::Store
            }
        };
        Ok(self.p.quarantine(file)?)
    }

    /// The whole store as one sealed file (the `blob` format: every tenant in one body), read
    /// under the shared lock, with the same key, slots and generation: what `migrate`
    /// copies. `None` if there is no store.
    pub fn export_sealed(&mut self) -> Result<Option<Vec<u8>>, StoreError> {
        let Loaded::Present {
            header, key, body, ..
        } = self.read_shared(Scope::All)?
        else {
            return Ok(None);
        };
        let mut body = body;
        body.tenant_records = false;
        Ok(Some(self.seal_header(
            &key,
            header.slots,
            &body,
            &Unread::default(),
        )))
    }

    /// Make `sealed` (a whole store, as [`Store::export_sealed`] gives it) this store, at
    /// its generation, sealed under its key with its slots. Refused if this store or its
    /// backup exists (nothing is ever replaced), and if `sealed` does not open with the
    /// keys configured here (nothing unreadable is written).
    pub fn adopt_sealed(&mut self, sealed: &[u8]) -> Result<StoreInfo, StoreError> {
        // Opened before the lock: unlocking may derive a passphrase key or ask a keyring,
        // and nothing slow runs inside the store lock (promise 7).
        let (header, key, body, _) = self.open_sealed(sealed, Scope::All)?;
        if body.tenant_records {
            return Err(StoreError::Corrupt(
                crate::store::RECORDS_HEADER_AS_FILE.into(),
            ));
        }
        let lock = self.lock_exclusive()?;
        for (file, what) in [
            (StoreFile::Store, "a store"),
            (StoreFile::Backup, "a store backup"),
        ] {
            if self.p.read(file)?.is_some() {
                return Err(StoreError::InvalidOptions(format!(
                    "the destination already holds {what}: a copy never replaces one; nothing was changed"
                )));
            }
        }
        let view = self.new_view(&key);
        let generation = body.generation;
        let tenants = u32::try_from(body.tenants.len()).unwrap_or(u32::MAX);
        let slot_kinds = header.slots.iter().map(|s| s.kind.clone()).collect();
        let generation = self.seal_and_replace(
            &lock,
            &key,
            header.slots,
            generation.saturating_sub(1),
            body,
            &view,
        )?;
        Ok(StoreInfo {
            exists: true,
            generation,
            format_version: crate::format::FORMAT_VERSION,
            key_id: crate::tenant::hex(&header.key_id),
            slot_kinds,
            tenants,
        })
    }

    /// `recover` and `quarantine` restore or move a store file and its backup; a `records`
    /// platform has neither (its header's backup is not a store: its tenants are records).
    fn refuse_records(&mut self) -> Result<(), StoreError> {
        match self.p.layout() {
            Layout::Blob => Ok(()),
            Layout::Records => Err(StoreError::Recover(RecoverError::TenantRecords)),
        }
    }

    /// Whether a file that failed to open with `e` may be moved aside: damage we can prove,
    /// or, with `force`, any failure of the file itself rather than of the environment.
    fn movable(
        &mut self,
        e: &StoreError,
        backup: &Result<Loaded<P::Key>, StoreError>,
        force: bool,
    ) -> Result<bool, StoreError> {
        if self.damaged(e, backup)? {
            return Ok(true);
        }
        let own_failure = matches!(
            e,
            StoreError::UnsupportedVersion(_)
                | StoreError::Key(
                    KeyError::WrongKeyFile
                        | KeyError::WrongPassphrase
                        | KeyError::NoMatchingSlot(_)
                        | KeyError::KeyringEntryMissing { .. }
                )
        );
        // A backup our keys cannot open either: it is the caller's key that is wrong, not
        // the store, even when forced.
        let caller_key_wrong =
            matches!(e, StoreError::Key(_)) && matches!(backup, Err(StoreError::Key(_)));
        Ok(force && own_failure && !caller_key_wrong)
    }

    /// Whether the store failed to read because the file itself is damaged, rather than
    /// because of the caller's keys, the environment, or a format this build does not know.
    /// Only damaged files are moved aside: a store a wrong passphrase cannot open is fine.
    ///
    /// A key error is damage in one case only: the backup opens with this process's keys
    /// and names the same data key as the store's header. Then the same sources failed on
    /// the same key, so the store's header (a slot, the key id) must be what changed.
    pub(crate) fn damaged(
        &mut self,
        e: &StoreError,
        backup: &Result<Loaded<P::Key>, StoreError>,
    ) -> Result<bool, StoreError> {
        match e {
            StoreError::Corrupt(_)
            | StoreError::NotAStore(_)
            | StoreError::Key(crate::platform::KeyError::MalformedSlot(_)) => Ok(true),
            // Only "this key does not open that slot": never a keyring that failed or timed
            // out, an I/O error or a missing source, which may pass (the backup's read, a
            // moment later, could succeed where the store's did not).
            StoreError::Key(
                KeyError::WrongKeyFile | KeyError::WrongPassphrase | KeyError::NoMatchingSlot(_),
            ) => {
                let Ok(Loaded::Present { header: bak, .. }) = backup else {
                    return Ok(false);
                };
                let Some(bytes) = self.p.read(StoreFile::Store)? else {
                    return Ok(false);
                };
                // A header too damaged to parse was reported as corrupt above. One that parses
                // must have the backup's slot kinds (a slot added or removed since changes
                // them) and its key id, or one a flipped bit away (another key's random id
                // differs in about every byte).
                Ok(crate::format::Header::decode(&bytes).is_ok_and(|(h, _)| {
                    h.slots.len() == bak.slots.len()
                        && h.slots
                            .iter()
                            .zip(&bak.slots)
                            .all(|(a, b)| a.kind == b.kind)
                        && (h.key_id == bak.key_id || differs_in_one_byte(&h.key_id, &bak.key_id))
                }))
            }
            _ => Ok(false),
        }
    }
}

/// Whether two key ids differ in a single byte: a flipped bit, not another key (random ids
/// of different keys differ in ~all 16 bytes).
fn differs_in_one_byte(a: &[u8; 16], b: &[u8; 16]) -> bool {
    a.iter().zip(b).filter(|(x, y)| x != y).count() == 1
}

/// Mark each restored refresh token that may have been spent after the backup was written:
/// every one, if the newer store could not be read; otherwise those the newer store no longer
/// holds. Returns the tenants marked, sorted.
fn mark_spent_refresh_tokens(
    restored: &mut Body,
    newer: Option<&Body>,
    now_ms: u64,
) -> Vec<String> {
    let mut marked = Vec::new();
    for (name, entry) in restored.tenants.iter_mut() {
        let Some(rt) = &entry.refresh_token else {
            continue;
        };
        // Still current: the newer store holds the same token and no refresh of it is under
        // way (an intent means it may be being spent right now, or was, with the reply lost).
        let still_current = newer.and_then(|b| b.tenants.get(name)).is_some_and(|n| {
            n.refresh_token.as_deref() == Some(rt.as_str()) && n.refresh_intent.is_none()
        });
        if still_current {
            continue;
        }
        let sha = sha256_hex(rt.as_bytes());
        if entry
            .refresh_intent
            .as_ref()
            .is_none_or(|i| i.refresh_token_sha256 != sha)
        {
            entry.refresh_intent = Some(RefreshIntent {
                refresh_token_sha256: sha,
                started_at_ms: now_ms,
                attempts: 1,
            });
        }
        marked.push(name.clone());
    }
    marked
}

/// A slot the platform made must fit the header format (a host bug otherwise).
fn check_slot(slot: &KeySlot) -> Result<(), StoreError> {
    let kind_ok = !slot.kind.is_empty()
        && slot.kind.len() <= crate::format::MAX_SLOT_KIND_LEN
        && slot
            .kind
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !kind_ok || slot.data.len() > u16::MAX as usize {
        return Err(StoreError::Key(crate::platform::KeyError::MalformedSlot(
            "the platform made a slot the header cannot hold".into(),
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Entry;

    fn entry(rt: Option<&str>) -> Entry {
        serde_json::from_value(serde_json::json!({
            "access_token": "a", "token_type": "Bearer", "revision": 1, "updated_at_ms": 0,
            "refresh_token": rt,
        }))
        .unwrap()
    }

    #[test]
    fn restored_refresh_tokens_are_marked_unless_still_current() {
        let mut restored = Body::default();
        restored.tenants.insert("a".into(), entry(Some("rt-a")));
        restored.tenants.insert("b".into(), entry(Some("rt-b")));
        restored.tenants.insert("c".into(), entry(None));
        // The newer store could not be read: every refresh token may be spent.
        let mut all = restored.clone();
        assert_eq!(mark_spent_refresh_tokens(&mut all, None, 5), ["a", "b"]);
        assert_eq!(
            all.tenants["a"]
                .refresh_intent
                .as_ref()
                .unwrap()
                .refresh_token_sha256,
            sha256_hex(b"rt-a")
        );
        // The newer store still holds b's token: only a's was rotated since.
        let mut newer = restored.clone();
        newer.tenants.insert("a".into(), entry(Some("rt-a2")));
        let mut some = restored.clone();
        assert_eq!(mark_spent_refresh_tokens(&mut some, Some(&newer), 5), ["a"]);
        assert!(some.tenants["b"].refresh_intent.is_none());
    }
}
