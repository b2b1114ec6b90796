//! [`Store`]: one open store that any number of threads may call at once. Every language
//! binding holds one of these.
//!
//! A call borrows an idle [`Credlock`] (a component instance with its own platform, so its
//! own lock descriptors) from a pool, or makes one (~16 µs from the shared compiled
//! component). Two threads of one process therefore exclude each other through the store's
//! flock protocol exactly as two processes do: there is no process-local lock whose check
//! and act could drift apart. The key cache is shared by the pool, so a passphrase is
//! derived and a keyring asked once per process, not once per thread.
//!
//! After `fork` the child never touches the parent's pool, key cache or runtime: another
//! thread of the parent may have held their locks at the moment of the fork, and in the child
//! no thread would ever release them (a pre-forking server that opened the store before
//! forking its workers hung in its first call, or at exit). The child builds its own, once.

use crate::keys::{describe_slot, Keyring};
use crate::source::{self, ImportFileReport};
use crate::{
    AccessToken, Config, Credlock, Error, ImportOptions, ImportReport, KeySlot, TenantSummary,
    WriteReceipt,
};
use std::path::Path;
use std::sync::{Mutex, MutexGuard, OnceLock};
use zeroize::Zeroizing;

/// Idle instances kept for reuse; more concurrent calls than this make throwaway ones.
const MAX_IDLE: usize = 64;

/// One key slot as every front end lists it: never the wrapped key. `Serialize` gives the
/// bindings its fields by name (the C ABI's JSON, Python's dict).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
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
    /// The pool of the process that opened the store.
    home: Pool,
    /// The pool of a child of `fork` (the first child process to call; a grandchild, whose
    /// parent's pool this would be, pools nothing).
    forked: OnceLock<Pool>,
}

/// The instances and the key cache of one process.
struct Pool {
    pid: u32,
    keyring: Keyring,
    idle: Mutex<Vec<Credlock>>,
}

impl Pool {
    fn new(config: &Config) -> Pool {
        Pool {
            pid: std::process::id(),
            keyring: Keyring::new(config.keys.clone()),
            idle: Mutex::new(Vec::new()),
        }
    }

    fn idle(&self) -> MutexGuard<'_, Vec<Credlock>> {
        // The pool holds whole instances only; a panic elsewhere leaves nothing half-done.
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        // In a child of `fork`, the parent's instances belong to the parent's runtime, whose
        // locks may be held by a thread the child does not have: dropping them could hang.
        // The child's memory goes with it when it exits; leaking them is what is safe.
        let pid = std::process::id();
        for pool in std::iter::once(&mut self.home).chain(self.forked.get_mut()) {
            if pool.pid != pid {
                // get_mut takes no lock.
                let idle = pool.idle.get_mut().unwrap_or_else(|p| p.into_inner());
                std::mem::forget(std::mem::take(idle));
                // A clone that is never dropped keeps the count above zero, so the parent's
                // keyring (its cache's lock, its D-Bus connection) is never torn down here,
                // whichever handle to it goes last.
                std::mem::forget(pool.keyring.clone());
            }
        }
    }
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
        let home = Pool::new(&config);
        let first = Credlock::open_with_keyring(config.clone(), home.keyring.clone())?;
        home.idle().push(first);
        Ok(Store {
            config,
            home,
            forked: OnceLock::new(),
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

    /// This process's pool: the opener's, or the one a child of `fork` made for itself.
    fn pool(&self) -> Option<&Pool> {
        let pid = std::process::id();
        if self.home.pid == pid {
            return Some(&self.home);
        }
        let pool = self.forked.get_or_init(|| Pool::new(&self.config));
        (pool.pid == pid).then_some(pool)
    }

    /// Run `f` on an instance of this process's own.
    pub(crate) fn with<R>(
        &self,
        f: impl FnOnce(&mut Credlock) -> Result<R, Error>,
    ) -> Result<R, Error> {
        let Some(pool) = self.pool() else {
            // A grandchild of the opener: an instance and a key cache for this call only.
            let keyring = Keyring::new(self.config.keys.clone());
            return f(&mut Credlock::open_with_keyring(
                self.config.clone(),
                keyring,
            )?);
        };
        let pooled = pool.idle().pop();
        let mut c = match pooled {
            Some(c) => c,
            None => Credlock::open_with_keyring(self.config.clone(), pool.keyring.clone())?,
        };
        let result = f(&mut c);
        let mut idle = pool.idle();
        if idle.len() < MAX_IDLE {
            idle.push(c);
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

    /// The attachment `name` of `tenant`: a small value kept, sealed, with the tenant (an MCP
    /// client's registration, a PKCE verifier); none when the tenant or attachment is absent.
    pub fn attachment(&self, tenant: &str, name: &str) -> Result<Option<String>, Error> {
        self.with(|c| c.attachment(tenant, name))
    }

    /// Set (`Some`) or remove (`None`) an attachment, leaving the tenant's tokens as they are.
    pub fn set_attachment(
        &self,
        tenant: &str,
        name: &str,
        value: Option<&str>,
    ) -> Result<WriteReceipt, Error> {
        self.with(|c| c.set_attachment(tenant, name, value))
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

    /// This process's key cache (a fresh one in a grandchild of the opener).
    pub fn keyring(&self) -> Keyring {
        match self.pool() {
            Some(pool) => pool.keyring.clone(),
            None => Keyring::new(self.config.keys.clone()),
        }
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
