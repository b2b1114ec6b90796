//! Group commit for `put`: a writer that finds the store lock busy posts its change, sealed
//! under the store's key, and the next holder of the lock writes every posted change together
//! with its own in one durable write (FORMAT.md, "Queued writes").
//!
//! Why: a durable write costs a file fsync and a directory fsync, and under the exclusive
//! lock writers take turns, so N writers paid N of them one after another. Now they pay one
//! per turn of the lock, and a waiter's turn is a short read of its receipt.
//!
//! What keeps the promises:
//! - A poster returns success only with the receipt its entry was settled with, and a holder
//!   settles an entry only after the write that carries it returned (durable, the claims
//!   with it: `wit/files.wit`). No receipt, no acknowledgement (promise 1).
//! - A change that was claimed but not acknowledged (its holder died, or its write failed)
//!   is written again by its poster under the lock, as a `put` that never returned may be:
//!   it was never acknowledged, and it is applied again whole (a new revision), never
//!   partly.
//! - A poster whose wait times out withdraws its entry; the host makes that atomic against a
//!   holder's claim, so a withdrawn change is never written. A claimed one is being written:
//!   the poster waits for that holder's outcome once more before giving up.
//! - An entry a holder cannot open (sealed under a key the store no longer has, or from
//!   another version) is removed unwritten, and its poster writes it itself. So is one
//!   whose poster is gone or stopped waiting (the host removes a gone poster's entries; an
//!   entry carries the time after which its poster no longer waits): a change is never
//!   written long after its caller gave up, over newer tokens.
//! - Everything slow happens before the lock: parsing, sealing, the post. Under the lock a
//!   holder opens and applies each entry, in the order they were posted.

use crate::error::StoreError;
use crate::expiry::Reading;
use crate::format::{Header, NONCE_LEN};
use crate::model::Body;
use crate::oauth::{parse_refresh_config, parse_token_response, RefreshConfig, TokenGrant};
use crate::platform::{Platform, Queued, SealingKey};
use crate::store::{
    check_refresh_endpoints, login_entry, ExclusiveStoreLock, Loaded, Scope, Store, WriteReceipt,
};
use crate::tenant::TenantName;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// A `put`, parsed and checked: what a writer applies to a body under the lock.
pub(crate) struct PutChange {
    pub(crate) tenant: TenantName,
    grant: TokenGrant,
    config: RefreshConfig,
    config_given: bool,
}

impl PutChange {
    /// Parse and check a token response received at `received_at_ms` (what `expires_in`
    /// counts from), as `put` does whoever applies it.
    pub(crate) fn parse(
        tenant: TenantName,
        token_response: &str,
        received_at_ms: u64,
        allow_insecure_http: bool,
    ) -> Result<PutChange, StoreError> {
        let (grant, config) =
            parse_token_response(token_response.as_bytes(), Reading::kept(received_at_ms))
                .map_err(StoreError::InvalidTokenResponse)?;
        let config_given = !config.is_empty();
        let config = parse_refresh_config(config).map_err(StoreError::InvalidTokenResponse)?;
        check_refresh_endpoints(&config, allow_insecure_http)
            .map_err(StoreError::InvalidTokenResponse)?;
        Ok(PutChange {
            tenant,
            grant,
            config,
            config_given,
        })
    }

    /// Store the tokens as the tenant's new login; returns the entry's revision.
    pub(crate) fn apply(self, body: &mut Body, now: u64) -> u64 {
        let old = body.tenants.remove(self.tenant.as_str());
        let entry = login_entry(old, self.grant, self.config, self.config_given, now);
        let revision = entry.revision;
        body.tenants.insert(self.tenant.as_str().to_owned(), entry);
        revision
    }
}

/// What a queue entry holds, sealed: the `put` as its caller gave it. (`Cow`: a token
/// response is JSON inside JSON, escaped, so it cannot be borrowed from the entry.)
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Posted<'a> {
    #[serde(borrow)]
    tenant: Cow<'a, str>,
    #[serde(borrow)]
    token_response: Cow<'a, str>,
    received_at_ms: u64,
    /// After this (Unix ms) its poster no longer waits (its wait timed out, and it withdrew
    /// the entry unless a holder had claimed it): an entry still posted then belongs to a
    /// poster that was stopped or is gone, and is removed, not written.
    stale_after_ms: u64,
}

/// How long past its poster's lock timeout an entry stays writable: room for clocks that
/// disagree by a little, never for a change written long after its caller gave up.
const STALE_MARGIN_MS: u64 = 60_000;

/// The associated data of an entry: what it is, under which key, and its id, so that an
/// entry cannot pass for another one or for a store.
fn entry_aad(key_id: &[u8], id: &str) -> Vec<u8> {
    let mut aad = b"credlock queued put 1\0".to_vec();
    aad.extend_from_slice(key_id);
    aad.extend_from_slice(id.as_bytes());
    aad
}

/// A receipt as a holder leaves it: revision and generation, little-endian.
fn receipt_bytes(r: WriteReceipt) -> Vec<u8> {
    let mut out = r.revision.to_le_bytes().to_vec();
    out.extend_from_slice(&r.generation.to_le_bytes());
    out
}

/// The receipt a holder left, or the error for one that is damaged.
fn receipt_in(bytes: &[u8]) -> Result<WriteReceipt, StoreError> {
    receipt_from(bytes).ok_or_else(|| {
        StoreError::Io(crate::platform::FileError::Io(crate::platform::IoError::Other(
            "a queued write's receipt is damaged; the write may have happened: run `credlock list`"
                .into(),
        )))
    })
}

fn receipt_from(bytes: &[u8]) -> Option<WriteReceipt> {
    let (rev, gen) = (bytes.get(..8)?, bytes.get(8..16)?);
    (bytes.len() == 16).then(|| WriteReceipt {
        revision: u64::from_le_bytes(rev.try_into().expect("8 bytes")),
        generation: u64::from_le_bytes(gen.try_into().expect("8 bytes")),
    })
}

/// Whether `id` is an entry id as [`Store::post`] makes them: 32 lowercase hex characters.
pub fn valid_entry_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl<P: Platform> Store<'_, P> {
    /// `put` on a platform with a queue: write now if the lock is free, else post the
    /// change and wait for the holder to write it (or for the lock, and write it here).
    pub(crate) fn put_grouped(
        &mut self,
        put: PutChange,
        token_response: &str,
        received_at_ms: u64,
    ) -> Result<WriteReceipt, StoreError> {
        if let Some(lock) = self.try_lock_exclusive()? {
            // Free at once: not looking for posted changes saves a directory listing on
            // every uncontended write, the common case. A poster between its waits (its
            // change not taken, now waiting to write it itself) carries what others posted.
            return self.lead(lock, put, false);
        }
        let Some(id) = self.post(&put.tenant, token_response, received_at_ms) else {
            // Nothing to seal it under (no store yet) or no room to post: the usual way.
            let lock = self.lock_exclusive()?;
            return self.lead(lock, put, true);
        };
        // Wait in shared mode first: while any process holds the lock shared, no holder is
        // between taking entries and settling them, so a receipt found then is final; and
        // every poster of one write wakes and reads its receipt at once, instead of each
        // taking the lock in turn. An entry not written yet stays posted for the next holder.
        let shared = self.wait_posted(&id, Self::lock_shared)?;
        if let Queued::Acknowledged(receipt) = self.p.queue_collect(&id, true)? {
            return receipt_in(&receipt);
        }
        drop(shared);
        let lock = self.wait_posted(&id, Self::lock_exclusive)?;
        match self.p.queue_collect(&id, false)? {
            Queued::Acknowledged(receipt) => receipt_in(&receipt),
            // Not written, and now removed (posted: no holder took it; claimed: its holder
            // died before acknowledging; absent: a holder could not use it): write it here.
            Queued::Posted | Queued::Claimed | Queued::Absent => self.lead(lock, put, true),
        }
    }

    /// Take the store lock (`how`) for a poster of entry `id`. If the wait times out, the
    /// entry is withdrawn and the timeout returned: never written. If it cannot be withdrawn,
    /// a holder claimed it and is writing it now: wait for its outcome once more (if that
    /// times out too, the change may still land, as a `put` whose caller stopped waiting).
    fn wait_posted<G>(
        &mut self,
        id: &str,
        how: fn(&mut Self) -> Result<G, StoreError>,
    ) -> Result<G, StoreError> {
        match how(self) {
            Ok(guard) => Ok(guard),
            Err(e) => {
                let withdrawn = self.p.queue_withdraw(id)?;
                if withdrawn || !matches!(e, StoreError::LockTimeout { .. }) {
                    return Err(e);
                }
                how(self)
            }
        }
    }

    /// Seal and post `put`; its entry id, or `None` if it cannot be posted (no store yet to
    /// take a key from, a key that does not open now, no room): then the caller writes it
    /// itself, and any error worth reporting comes from that write.
    fn post(
        &mut self,
        tenant: &TenantName,
        token_response: &str,
        received_at_ms: u64,
    ) -> Option<String> {
        // Unlocked: a store is replaced atomically, so this is one version's header; the
        // key it names is already open (hosts open it before taking a lock).
        let bytes = self.p.read(crate::platform::StoreFile::Store).ok()??;
        let (header, _) = Header::decode(&bytes).ok()?;
        let key = self.p.unlock(&header.key_id, &header.slots).ok()?;
        let mut random = [0u8; 10];
        self.p.fill_random(&mut random);
        // Time first, so that a holder applies entries in about the order they were posted
        // (concurrent writes may land in any order; replays of one batch in the same one).
        let id = format!(
            "{:012x}{}",
            received_at_ms & 0xffff_ffff_ffff,
            crate::tenant::hex(&random)
        );
        debug_assert!(valid_entry_id(&id));
        let plaintext = serde_json::to_vec(&Posted {
            tenant: Cow::Borrowed(tenant.as_str()),
            token_response: Cow::Borrowed(token_response),
            received_at_ms,
            stale_after_ms: received_at_ms
                .saturating_add(u64::from(self.opts.lock_timeout_ms))
                .saturating_add(STALE_MARGIN_MS),
        })
        .expect("an entry always serialises");
        let mut entry = Vec::new();
        self.seal_fresh(&key, &entry_aad(&key.key_id(), &id), &plaintext, &mut entry);
        self.p.queue_post(&id, &entry).ok()?;
        Some(id)
    }

    /// Holding the lock: write `own` and (with `take`) every change posted so far in one
    /// durable write, then acknowledge each posted change with its receipt.
    fn lead(
        &mut self,
        lock: ExclusiveStoreLock<P::Guard>,
        own: PutChange,
        take: bool,
    ) -> Result<WriteReceipt, StoreError> {
        let mut taken = if take {
            self.p.queue_take()?
        } else {
            Vec::new()
        };
        taken.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let scope = if taken.is_empty() {
            Scope::Tenant(&own.tenant)
        } else {
            Scope::All
        };
        let mut read = match self.read_under(&lock, scope) {
            Ok(read) => read,
            Err(e) => {
                // Each poster meets the same store, and the same error, itself.
                self.remove_unwritten(taken.iter().map(|(id, _)| id.as_str()));
                return Err(e);
            }
        };
        let mut changes = Vec::new();
        let mut returned = Vec::new();
        let now = self.p.wall_ms();
        for (id, sealed) in &taken {
            let key = match &read.loaded {
                Loaded::Present { key, .. } => Some(key),
                Loaded::Absent => None,
            };
            match key.and_then(|k| self.open_entry(k, id, sealed, now)) {
                Some(change) => changes.push((id.as_str(), change)),
                None => returned.push(id.as_str()),
            }
        }
        let mut body = read.take_body();
        #[cfg_attr(not(feature = "naive"), allow(unused_mut))]
        let mut revisions: Vec<(&str, u64)> = changes
            .into_iter()
            .map(|(id, change)| (id, change.apply(&mut body, now)))
            .collect();
        let revision = own.apply(&mut body, now);
        crate::model::collect_expired_logins(&mut body, now);
        #[cfg(feature = "naive")]
        if self.naive.ack_before_write {
            // The bug: receipts for a write that has not happened (the generation it will
            // have, if it happens).
            let generation = read.loaded.body().map_or(0, |b| b.generation) + 1;
            for (id, revision) in &revisions {
                let receipt = receipt_bytes(WriteReceipt {
                    revision: *revision,
                    generation,
                });
                let _ = self.p.queue_settle(id, Some(&receipt));
            }
            revisions.clear();
        }
        let generation = match self.commit(&lock, read, body) {
            Ok(generation) => generation,
            Err(e) => {
                // Not written: every poster writes its own (and meets this error itself).
                self.remove_unwritten(revisions.iter().map(|(id, _)| *id).chain(returned));
                return Err(e);
            }
        };
        for (id, revision) in revisions {
            let receipt = receipt_bytes(WriteReceipt {
                revision,
                generation,
            });
            // A receipt that cannot be left leaves the entry claimed: its poster writes it
            // again (never acknowledged twice, never lost).
            let _ = self.p.queue_settle(id, Some(&receipt));
        }
        self.remove_unwritten(returned);
        drop(lock);
        Ok(WriteReceipt {
            revision,
            generation,
        })
    }

    /// Remove entries unwritten: each poster finds its own absent and writes it itself.
    fn remove_unwritten<'a>(&mut self, ids: impl IntoIterator<Item = &'a str>) {
        for id in ids {
            // One left claimed is written by its poster all the same.
            let _ = self.p.queue_settle(id, None);
        }
    }

    /// An entry as its poster sealed it, checked as its `put` was; `None` if this holder
    /// cannot open or accept it, or it is stale (its poster, if still waiting, then writes
    /// it itself, and reports what is wrong).
    fn open_entry(&mut self, key: &P::Key, id: &str, sealed: &[u8], now: u64) -> Option<PutChange> {
        if !valid_entry_id(id) || sealed.len() < NONCE_LEN {
            return None;
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let plaintext = key
            .open(nonce, &entry_aad(&key.key_id(), id), ciphertext)
            .ok()?;
        let posted: Posted<'_> = serde_json::from_slice(&plaintext).ok()?;
        if now > posted.stale_after_ms {
            return None;
        }
        let tenant = TenantName::new(&posted.tenant).ok()?;
        PutChange::parse(
            tenant,
            &posted.token_response,
            posted.received_at_ms,
            self.opts.allow_insecure_http,
        )
        .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipts_round_trip_and_refuse_damage() {
        let r = WriteReceipt {
            revision: 7,
            generation: u64::MAX - 1,
        };
        assert_eq!(receipt_from(&receipt_bytes(r)), Some(r));
        assert_eq!(receipt_from(&receipt_bytes(r)[..15]), None);
        let mut long = receipt_bytes(r);
        long.push(0);
        assert_eq!(receipt_from(&long), None);
    }

    #[test]
    fn entry_ids_are_path_safe() {
        assert!(valid_entry_id("0123456789abcdef0123456789abcdef"));
        assert!(!valid_entry_id("0123456789ABCDEF0123456789abcdef"));
        assert!(!valid_entry_id("../../../../etc/passwd0123456789ab"));
        assert!(!valid_entry_id("0123456789abcdef"));
    }
}
