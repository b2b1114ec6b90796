//! `credlock migrate --to DEST`: copy a store to another place (a directory into
//! PostgreSQL, or back), atomic and verified, deleting nothing.
//!
//! The core makes the copy: the source's whole store sealed as one file (the same key,
//! slots and generation; every tenant in one body), read under its shared lock, then
//! written at the destination in that platform's layout (one file, or a header and a record
//! per tenant) in one atomic write under its exclusive lock, refused if a store or a backup
//! is there. Both ends are opened with the same keys: the source first (nothing unreadable
//! is copied), the destination then opens the copy before writing it, and afterwards is
//! read back to prove it holds the same generation, key and tenants. The source is left as
//! it was; the caller removes it once every process uses the new place.

use crate::{Config, Credlock, Error, StoreInfo};
use credlock_core::StoreError;

/// What a migration copied.
#[derive(Debug, Clone)]
pub struct MigrateReport {
    pub from: String,
    pub to: String,
    pub bytes: usize,
    pub generation: u64,
    pub tenants: u32,
}

fn refused(why: String) -> Error {
    Error::Store(StoreError::InvalidOptions(why))
}

/// Copy the store of `from` to `to`, which must hold no store (nor a backup). `to` is
/// opened with `from`'s keys.
pub fn migrate(from: &Config, to: &Config) -> Result<MigrateReport, Error> {
    let mut to = to.clone();
    to.keys = from.keys.clone();
    // Opens (and so authenticates) the source before anything is copied.
    let mut source = Credlock::open(from.clone())?;
    let from_at = source.location();
    let before: StoreInfo = source.info()?;
    let Some(bytes) = source.export_sealed()? else {
        return Err(refused(format!(
            "there is no store at {from_at} to migrate"
        )));
    };
    // The copy is the version `before` described only if nothing wrote in between.
    let again = source.info()?;
    drop(source);
    if again.generation != before.generation {
        return Err(refused(format!(
            "the store at {from_at} changed while it was being copied (another process wrote): stop its writers, or retry; nothing was changed"
        )));
    }
    let mut copy = Credlock::open(to)?;
    let to_at = copy.location();
    if to_at == from_at {
        return Err(refused(
            "the source and the destination are the same store".into(),
        ));
    }
    let written = copy.adopt_sealed(&bytes)?;
    // Prove the copy opens, with the same keys, to the same store.
    let after = copy.info()?;
    if (after.generation, &after.key_id, after.tenants)
        != (written.generation, &written.key_id, written.tenants)
    {
        return Err(refused(format!(
            "the copy at {to_at} opens as generation {} with {} tenant(s), not generation {} with {}: another process wrote to it meanwhile; the source is unchanged",
            after.generation, after.tenants, written.generation, written.tenants
        )));
    }
    debug_assert_eq!(written.generation, before.generation);
    Ok(MigrateReport {
        from: from_at,
        to: to_at,
        bytes: bytes.len(),
        generation: after.generation,
        tenants: after.tenants,
    })
}
