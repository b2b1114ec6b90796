//! `credlock migrate --to DEST`: copy a store to another place (a directory into
//! PostgreSQL, or back), atomic and verified, deleting nothing.
//!
//! The sealed bytes are the same on every platform (the header is the only additional
//! authenticated data; nothing binds a store to where it lies), so the copy is the store's
//! bytes, read under the source's shared lock and written with one atomic replace under
//! the destination's exclusive lock. Both ends are opened with the same keys: the source
//! first (so nothing unreadable is copied), the destination afterwards (so the copy is
//! proven to open and to hold the same generation, key and tenants). The source is left as
//! it was; the caller removes it once every process uses the new place.

use crate::native::NativePlatform;
use crate::{Config, Credlock, Error, StoreInfo};
use credlock_core::platform::{FileError, LockError, LockMode, LockTarget, Platform, StoreFile};
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

fn platform(config: &Config) -> NativePlatform {
    NativePlatform::new(
        crate::layout::Layout::new(&config.store_dir),
        crate::keys::Keyring::new(config.keys.clone()),
        config.endpoint,
    )
    .with_database(config.database.clone())
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
    let before: StoreInfo = source.info()?;
    let from_at = source.location();
    if !before.exists {
        return Err(refused(format!(
            "there is no store at {from_at} to migrate"
        )));
    }
    let timeout = from.options.lock_timeout_ms;
    let lock_error = |e| {
        Error::Store(match e {
            LockError::Timeout(waited_ms) => StoreError::LockTimeout {
                lock: "store".into(),
                waited_ms,
            },
            LockError::Io(io) => StoreError::Io(FileError::Io(io)),
        })
    };
    let mut src = platform(from);
    let bytes = {
        let _shared = src
            .acquire(&LockTarget::Store, LockMode::Shared, timeout)
            .map_err(lock_error)?;
        src.read(StoreFile::Store)
            .map_err(StoreError::from)?
            .ok_or_else(|| refused(format!("the store at {from_at} vanished while migrating")))?
    };
    // The bytes are the version `before` described only if nothing wrote in between.
    let again = source.info()?;
    drop(source);
    if again.generation != before.generation {
        return Err(refused(format!(
            "the store at {from_at} changed while it was being copied (another process wrote): stop its writers, or retry; nothing was changed"
        )));
    }
    let mut dst = platform(&to);
    let to_at = dst.location();
    if to_at == from_at {
        return Err(refused(
            "the source and the destination are the same store".into(),
        ));
    }
    {
        let _exclusive = dst
            .acquire(&LockTarget::Store, LockMode::Exclusive, timeout)
            .map_err(lock_error)?;
        for file in [StoreFile::Store, StoreFile::Backup] {
            if dst.read(file).map_err(StoreError::from)?.is_some() {
                return Err(refused(format!(
                    "{to_at} already holds a store{}: migrate never replaces one; nothing was changed",
                    if file == StoreFile::Backup { " backup" } else { "" }
                )));
            }
        }
        dst.replace(StoreFile::Store, &bytes)
            .map_err(StoreError::from)?;
        let back = dst.read(StoreFile::Store).map_err(StoreError::from)?;
        assert_eq!(
            back.as_deref(),
            Some(bytes.as_slice()),
            "a store read back right after its write under the same lock differs"
        );
    }
    // Prove the copy opens, with the same keys, to the same store.
    let mut copy = Credlock::open(to)?;
    let after = copy.info()?;
    if (after.generation, &after.key_id, after.tenants)
        != (before.generation, &before.key_id, before.tenants)
    {
        return Err(refused(format!(
            "the copy at {to_at} opens as generation {} with {} tenant(s), not generation {} with {}: another process wrote to it meanwhile; the source is unchanged",
            after.generation, after.tenants, before.generation, before.tenants
        )));
    }
    Ok(MigrateReport {
        from: from_at,
        to: to_at,
        bytes: bytes.len(),
        generation: after.generation,
        tenants: after.tenants,
    })
}
