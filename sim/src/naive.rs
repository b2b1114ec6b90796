//! Naive maintenance procedures for the bug zoo: what scripts and hand-written tools did
//! before credlock had `rekey` and `recover`, written here against the same platform (the
//! core's own operations have no naive switch for them). Each one makes exactly one of the
//! mistakes the real operation avoids:
//! - [`rekey_outside_lock`] reads the store under the shared lock, mints a key, and writes
//!   the re-sealed copy under the exclusive lock without reading again: a write that lands
//!   in between is lost.
//! - [`recover_unmarked`] restores the backup as `recover` does (only an unreadable store,
//!   moved aside first, a generation above) but keeps its refresh tokens as they were: one
//!   spent after the backup was written is presented again.

use crate::platform::{SimKey, SimPlatform};
use credlock_core::format::{Header, NONCE_LEN};
use credlock_core::model::Body;
use credlock_core::platform::{KeySlot, LockMode, LockTarget, Platform, SealingKey, StoreFile};

/// Which naive procedures replace the core's operations in a plan.
#[derive(Debug, Clone, Copy, Default)]
pub struct NaiveOps {
    pub rekey_outside_lock: bool,
    pub recover_unmarked: bool,
}

/// Open a store file's bytes: its header, key and body.
fn open_file(p: &mut SimPlatform, bytes: &[u8]) -> Result<(Header, SimKey, Body), String> {
    let (header, len) = Header::decode(bytes).map_err(|e| format!("{e:?}"))?;
    let key = p
        .unlock(&header.key_id, &header.slots)
        .map_err(|e| format!("{e:?}"))?;
    let plain = key
        .open(&header.nonce, &bytes[..len], &bytes[len..])
        .map_err(|e| format!("{e:?}"))?;
    let body = serde_json::from_slice(&plain).map_err(|e| e.to_string())?;
    Ok((header, key, body))
}

/// Seal `body` under `key` with a header of `slots`, as the core does.
fn seal_file(p: &mut SimPlatform, key: &SimKey, slots: Vec<KeySlot>, body: &Body) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    p.fill_random(&mut nonce);
    let header = Header {
        key_id: key.id,
        slots,
        nonce,
    };
    let mut out = header.encode();
    let plain = serde_json::to_vec(body).expect("a Body always serialises");
    let ct = key.seal(&nonce, &out, &plain).expect("a 12-byte nonce");
    out.extend_from_slice(&ct);
    out
}

pub fn rekey_outside_lock(p: &mut SimPlatform, timeout_ms: u32) -> Result<(), String> {
    let (header, _, mut body) = {
        let _shared = p
            .acquire(&LockTarget::Store, LockMode::Shared, timeout_ms)
            .map_err(|e| format!("{e:?}"))?;
        let Some(bytes) = p.read(StoreFile::Store).map_err(|e| format!("{e:?}"))? else {
            return Ok(());
        };
        open_file(p, &bytes)?
    };
    let key = p.rekey(&header.slots).map_err(|e| format!("{e:?}"))?;
    body.generation += 1;
    let _exclusive = p
        .acquire(&LockTarget::Store, LockMode::Exclusive, timeout_ms)
        .map_err(|e| format!("{e:?}"))?;
    let slots = key.slots.clone();
    let out = seal_file(p, &key, slots, &body);
    p.replace(StoreFile::Store, &out)
        .map_err(|e| format!("{e:?}"))?;
    p.remove(StoreFile::Backup).map_err(|e| format!("{e:?}"))
}

pub fn recover_unmarked(p: &mut SimPlatform, timeout_ms: u32) -> Result<(), String> {
    let _exclusive = p
        .acquire(&LockTarget::Store, LockMode::Exclusive, timeout_ms)
        .map_err(|e| format!("{e:?}"))?;
    let live = p.read(StoreFile::Store).map_err(|e| format!("{e:?}"))?;
    if let Some(bytes) = &live {
        if open_file(p, bytes).is_ok() {
            return Err("the store is readable".into());
        }
    }
    let Some(bak) = p.read(StoreFile::Backup).map_err(|e| format!("{e:?}"))? else {
        return Err("no backup".into());
    };
    let (header, key, mut body) = open_file(p, &bak)?;
    if live.is_some() {
        p.quarantine(StoreFile::Store)
            .map_err(|e| format!("{e:?}"))?;
    }
    // Above the store it replaces (which was at most the backup's generation + 1).
    body.generation += 2;
    let out = seal_file(p, &key, header.slots, &body);
    p.replace(StoreFile::Store, &out)
        .map_err(|e| format!("{e:?}"))
}
