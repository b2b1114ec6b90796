//! [`Store`]: one open store that any number of threads may call at once. Every language
//! binding holds one of these.
//!
//! A call borrows an idle [`Credlock`] (a component instance with its own platform, so its
//! own lock descriptors) from a pool, or makes one (~16 µs from the shared compiled
//! component). Two threads of one process therefore exclude each other through the store's
//! flock protocol exactly as two processes do: there is no process-local lock whose check
//! and act could drift apart. The key cache is shared by the pool, so a passphrase is
//! derived and a keyring asked once per process, not once per thread.

use crate::keys::{describe_slot, Keyring};
use crate::source::{self, ImportFileReport};
use crate::{
    AccessToken, Config, Credlock, Error, ImportOptions, ImportReport, KeySlot, RecoverReport,
    StoreInfo, TenantSummary, WriteReceipt,
};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use zeroize::Zeroizing;

/// Idle instances kept for reuse; more concurrent calls than this make throwaway ones.
const MAX_IDLE: usize = 64;

/// One key slot as every front end lists it: never the wrapped key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotInfo {
    /// Its position in the header: what `remove_slot` takes.
    pub index: u32,
    pub kind: String,
    /// Which source opens it, as `credlock slot list` says.
    pub describe: String,
    /// False for kinds lost at reboot (`kernel-keyring`).
    pub durable: bool,
}

pub fn slot_infos(slots: &[KeySlot]) -> Vec<SlotInfo> {
    slots
        .iter()
        .enumerate()
        .map(|(i, s)| SlotInfo {
            index: i as u32,
            kind: s.kind.clone(),
            describe: describe_slot(s),
            durable: credlock_core::platform::slot_is_durable(&s.kind),
        })
        .collect()
}

/// An open credential store, safe to share between threads (`Send + Sync`).
pub struct Store {
    config: Config,
    keyring: Keyring,
    idle: Mutex<Vec<Credlock>>,
    /// The process the idle instances belong to: after `fork` a child starts afresh.
    pid: u32,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("store_dir", &self.config.store_dir)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Open the store `config` describes. Touches no store file (the first call does), but
    /// loads the component, so a broken installation fails here.
    pub fn open(config: Config) -> Result<Store, Error> {
        let keyring = Keyring::new(config.keys.clone());
        let first = Credlock::open_with_keyring(config.clone(), keyring.clone())?;
        Ok(Store {
            config,
            keyring,
            idle: Mutex::new(vec![first]),
            pid: std::process::id(),
        })
    }

    /// Open from [`crate::OpenOptions`] (explicit settings, then the environment).
    pub fn open_with(options: &crate::OpenOptions) -> Result<Store, Error> {
        Self::open(options.resolve()?)
    }

    pub fn store_dir(&self) -> &Path {
        &self.config.store_dir
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    fn idle(&self) -> MutexGuard<'_, Vec<Credlock>> {
        // The pool holds whole instances only; a panic elsewhere leaves nothing half-done.
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Run `f` on an instance of this process's own.
    fn with<R>(&self, f: impl FnOnce(&mut Credlock) -> Result<R, Error>) -> Result<R, Error> {
        let forked = std::process::id() != self.pid;
        let pooled = if forked { None } else { self.idle().pop() };
        let mut c = match pooled {
            Some(c) => c,
            None => Credlock::open_with_keyring(self.config.clone(), self.keyring.clone())?,
        };
        let result = f(&mut c);
        if !forked {
            let mut idle = self.idle();
            if idle.len() < MAX_IDLE {
                idle.push(c);
            }
        }
        result
    }

    pub fn init(&self) -> Result<bool, Error> {
        self.with(|c| c.init())
    }

    pub fn put(&self, tenant: &str, token_response: &str) -> Result<WriteReceipt, Error> {
        self.with(|c| c.put(tenant, token_response))
    }

    pub fn token(&self, tenant: &str, min_valid_ms: u64) -> Result<AccessToken, Error> {
        self.with(|c| c.token(tenant, min_valid_ms))
    }

    /// Refresh now; with `rejected_sha256` (hex SHA-256, or a 16+ character prefix, of an
    /// access token a server refused), only if the stored token is still that one.
    pub fn refresh(
        &self,
        tenant: &str,
        rejected_sha256: Option<&str>,
    ) -> Result<AccessToken, Error> {
        self.with(|c| c.refresh(tenant, rejected_sha256))
    }

    /// `refresh` given the refused access token itself (hashed here, never stored).
    pub fn refresh_rejected(&self, tenant: &str, rejected: &str) -> Result<AccessToken, Error> {
        let digest = crate::sha256_hex(rejected.as_bytes());
        self.refresh(tenant, Some(&digest))
    }

    pub fn list(&self) -> Result<Vec<TenantSummary>, Error> {
        self.with(|c| c.list())
    }

    pub fn delete(&self, tenant: &str) -> Result<bool, Error> {
        self.with(|c| c.delete(tenant))
    }

    pub fn info(&self) -> Result<StoreInfo, Error> {
        self.with(|c| c.info())
    }

    pub fn slots(&self) -> Result<Vec<SlotInfo>, Error> {
        self.with(|c| c.slots()).map(|s| slot_infos(&s))
    }

    /// Add a slot of `kind`; for `passphrase`, `new_passphrase` is the slot's (new)
    /// passphrase, else the configured `CREDLOCK_NEW_PASSPHRASE`.
    pub fn add_slot(
        &self,
        kind: &str,
        new_passphrase: Option<Zeroizing<String>>,
    ) -> Result<Vec<SlotInfo>, Error> {
        let slots = match new_passphrase {
            None => self.with(|c| c.add_slot(kind))?,
            Some(p) => {
                if p.is_empty() {
                    return Err(crate::StoreError::InvalidOptions(
                        "the new passphrase is empty".into(),
                    )
                    .into());
                }
                // A one-off instance whose sources carry the new passphrase: it is seen by
                // this call only, and the pool's instances never hold it.
                let mut config = self.config.clone();
                config.keys.new_passphrase = Some(p);
                Credlock::open_with_keyring(config.clone(), Keyring::new(config.keys))?
                    .add_slot(kind)?
            }
        };
        Ok(slot_infos(&slots))
    }

    pub fn remove_slot(
        &self,
        index: u32,
        allow_volatile_only: bool,
    ) -> Result<Vec<SlotInfo>, Error> {
        self.with(|c| c.remove_slot(index, allow_volatile_only))
            .map(|s| slot_infos(&s))
    }

    pub fn rekey(&self) -> Result<StoreInfo, Error> {
        self.with(|c| c.rekey())
    }

    pub fn import_tokens(
        &self,
        source: &str,
        tenant: Option<&str>,
        how: &ImportOptions,
    ) -> Result<ImportReport, Error> {
        self.with(|c| c.import_tokens(source, tenant, how))
    }

    /// `import_tokens` of a file; with `remove_source`, the file is removed once the import
    /// is durable, only if everything in it was imported and it is still the file read.
    pub fn import_file(
        &self,
        path: &Path,
        tenant: Option<&str>,
        how: &ImportOptions,
        remove_source: bool,
    ) -> Result<ImportFileReport, Error> {
        source::import_file(path, how, remove_source, |text, how| {
            self.import_tokens(text, tenant, how)
        })
    }

    pub fn recover(&self, force: bool) -> Result<RecoverReport, Error> {
        self.with(|c| c.recover(force))
    }

    pub fn quarantine(&self, force: bool) -> Result<String, Error> {
        self.with(|c| c.quarantine(force))
    }

    /// The key sources and caches (for `doctor`).
    /// Log `tenant` in, or join the login in progress for it (see [`Credlock::login`]).
    /// `on_prompt` shows the code or URL (`None`: standard error).
    pub fn login(
        &self,
        tenant: &str,
        request: &crate::LoginRequest,
        on_prompt: Option<crate::login::PromptSink>,
    ) -> Result<crate::LoginOutcome, Error> {
        self.with(|c| c.login(tenant, request, on_prompt))
    }

    /// Revoke where the server offers it, then delete (see [`Credlock::logout`]).
    pub fn logout(&self, tenant: &str, local: bool) -> Result<crate::LogoutReport, Error> {
        self.with(|c| c.logout(tenant, local))
    }

    /// The logins in progress.
    pub fn pending_logins(&self) -> Result<Vec<crate::PendingSummary>, Error> {
        self.with(|c| c.pending_logins())
    }

    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn store_is_send_and_sync() {
        assert_send_sync::<Store>();
    }
}
