//! `credlock migrate --to DEST`: copy the store to another directory or a database, open
//! the copy, and leave the source unchanged.

use crate::Failure;
use credlock::{Config, Error, OpenOptions, StoreError};
use credlock_core::error::exit;
use std::path::Path;

pub fn run(config: &Config, to: &Path) -> Result<(), Failure> {
    let dest = OpenOptions {
        store_dir: Some(to.to_path_buf()),
        ..Default::default()
    }
    .resolve()
    .map_err(|e| Failure::from(Error::Store(e)))?;
    // Its own refusals (a store already there, a source that changed) are neither
    // bad options nor damage: say that nothing changed.
    let r = credlock::migrate::migrate(config, &dest).map_err(|e| match e {
        Error::Store(StoreError::InvalidOptions(why)) => Failure {
            code: exit::REFUSED,
            message: why,
            hint: Some("the source store is unchanged, and nothing was written"),
        },
        e => Failure::from(e),
    })?;
    eprintln!(
        "credlock: copied {} ({} bytes, generation {}, {} tenant(s)) to {}, and opened the copy; {} is unchanged: point every process at the new store, then remove the old one",
        r.from, r.bytes, r.generation, r.tenants, r.to, r.from
    );
    if dest.database.is_some() && config.keys.passphrase.is_none() {
        if let Some(k) = &config.keys.key_file {
            eprintln!(
                "credlock: every machine opens it with the same key: give each a copy of {} (a mounted secret) as CREDLOCK_KEY_FILE",
                k.display()
            );
        }
    }
    Ok(())
}
