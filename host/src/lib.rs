//! credlock: OAuth credentials that many processes share safely.
//!
//! This crate is the wasmtime host: it runs the credlock core (a WebAssembly component built
//! from `core/`) with real implementations of its `platform` imports: `flock` locks,
//! atomic durable files, host-side AES-256-GCM with key-file and passphrase slots, and an
//! HTTP client for token endpoints. [`Credlock`] is the API for Rust programs; the
//! `credlock` binary is the CLI.
//!
//! ```no_run
//! let mut store = credlock::Credlock::open(credlock::Config::for_dir("/tmp/creds"))?;
//! store.put("acme", r#"{"access_token":"...","expires_in":3600}"#)?;
//! let token = store.token("acme", 60_000)?;
//! # Ok::<(), credlock::Error>(())
//! ```
#![deny(unsafe_code)]

pub mod adapters;
pub mod build_info;
pub mod component;
pub mod endpoint;
pub mod failpoints;
pub mod files;
mod io_util;
pub mod keys;
pub mod layout;
pub mod locks;
pub mod login;
pub mod migrate;
pub mod native;
pub mod open;
// The operations that follow the bindings' conventions, generated from wit/store.wit.
mod operations;
pub mod oskeyring;
pub mod pg;
pub mod privacy;
pub mod queue;
pub mod report;
pub mod shared;
pub mod source;
pub mod storage;

pub use credlock_core::error::exit;
pub use credlock_core::login::{
    LoginFlow, LoginOutcome, LoginRequest, LogoutReport, PendingSummary, Revocation,
};
pub use credlock_core::platform::{KeySlot, LoginPrompt};
pub use credlock_core::sha256_hex;
pub use credlock_core::{
    AccessToken, ImportOptions, ImportReport, Options, RecoverReport, SourceKind, StoreError,
    StoreInfo, TenantSummary, WriteReceipt,
};
pub use open::OpenOptions;
pub use report::ErrorReport;
pub use shared::{SlotInfo, Store};
pub use source::ImportFileReport;

use component::{api, Runtime};
use endpoint::EndpointPolicy;
use keys::{KeySources, Keyring};
use layout::Layout;
use native::NativePlatform;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

/// How to open a store.
#[derive(Debug, Clone)]
pub struct Config {
    /// The store directory. For a database store, the directory of what stays on this
    /// machine: the default key file, git and docker helper mappings.
    pub store_dir: PathBuf,
    /// The store lives in PostgreSQL (a fleet's store), not in `store_dir`.
    pub database: Option<pg::Database>,
    pub keys: KeySources,
    pub options: Options,
    pub endpoint: EndpointPolicy,
    /// Where to cache the compiled component, used only where wasmtime refuses the artifact
    /// built into this binary (`None`: then compile in every process).
    pub cache_dir: Option<PathBuf>,
    pub backend: Backend,
}

/// Which build of the core runs the store logic. Both are the same source; the component
/// is what every language host embeds, the native one exists for comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    #[default]
    Component,
    Native,
}

impl Config {
    /// A store in `dir`, with the default key file `dir/key` and default timeouts.
    pub fn for_dir(dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        let layout = Layout::new(&dir);
        Config {
            keys: KeySources {
                passphrase: None,
                key_file: Some(layout.default_key_file()),
                create_key_file: true,
                kdf: Default::default(),
                ..Default::default()
            },
            store_dir: dir,
            database: None,
            options: Options::default(),
            endpoint: EndpointPolicy::default(),
            cache_dir: layout::default_cache_dir(),
            backend: Backend::Component,
        }
    }
}

/// An error from a store operation.
#[derive(Debug)]
pub enum Error {
    /// The store refused or failed the operation (see [`StoreError::recommendation`]).
    Store(StoreError),
    /// The component could not be loaded or trapped: a bug in credlock, not in your data.
    Runtime(anyhow::Error),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Store(e) => e.fmt(f),
            Error::Runtime(e) => write!(f, "internal error in the credlock runtime: {e:#}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        Error::Store(e)
    }
}

/// The runtime is shared by every store of a process: loading it (the embedded artifact, or
/// a compile where that is refused) is the expensive part. A child of `fork` loads its own
/// (once): the parent's instance pool may have been locked by another thread at the fork, a
/// lock no thread of the child would ever release.
fn runtime(cache_dir: Option<&std::path::Path>) -> Result<Arc<Runtime>, Error> {
    static FIRST: OnceLock<(u32, Arc<Runtime>)> = OnceLock::new();
    static FORKED: OnceLock<(u32, Arc<Runtime>)> = OnceLock::new();
    let pid = std::process::id();
    for cell in [&FIRST, &FORKED] {
        if let Some((p, r)) = cell.get() {
            if *p == pid {
                return Ok(Arc::clone(r));
            }
        }
    }
    let r = Arc::new(Runtime::load(cache_dir).map_err(Error::Runtime)?);
    let cell = if FIRST.get().is_none() {
        &FIRST
    } else {
        &FORKED
    };
    let (p, kept) = cell.get_or_init(|| (pid, Arc::clone(&r)));
    // A grandchild of the first loader finds both taken: its runtime is its store's own.
    Ok(if *p == pid { Arc::clone(kept) } else { r })
}

/// An open credential store.
pub struct Credlock {
    engine: Engine,
    options: Options,
}

/// Where the core runs, and the platform it runs on.
// One per `Credlock`, kept for its whole life: boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
enum Engine {
    /// `instance` is `None` only between a trap and the next call, or while lent out.
    Component {
        runtime: Arc<Runtime>,
        instance: Option<component::Instance>,
        spare: Option<NativePlatform>,
    },
    Native(NativePlatform),
}

impl Credlock {
    pub fn open(config: Config) -> Result<Self, Error> {
        let keyring = Keyring::new(config.keys.clone());
        Self::open_with_keyring(config, keyring)
    }

    /// Open with a key cache shared with other `Credlock`s of this process (a
    /// [`shared::Store`]'s pool): a passphrase is derived, and a keyring asked, once.
    pub(crate) fn open_with_keyring(config: Config, keyring: Keyring) -> Result<Self, Error> {
        config.options.validate()?;
        let platform = NativePlatform::new(Layout::new(config.store_dir), keyring, config.endpoint)
            .with_database(config.database);
        let engine = match config.backend {
            Backend::Component => Engine::Component {
                runtime: runtime(config.cache_dir.as_deref())?,
                instance: None,
                spare: Some(platform),
            },
            Backend::Native => Engine::Native(platform),
        };
        // One setting, the endpoint policy: the core refuses at `put` and `import` exactly
        // the endpoints this host's HTTP client would refuse at refresh.
        let options = Options {
            allow_insecure_http: config.endpoint.allow_insecure_http,
            ..config.options
        };
        Ok(Credlock { engine, options })
    }

    pub fn layout(&self) -> &Layout {
        match &self.engine {
            Engine::Native(p) => &p.layout,
            Engine::Component {
                instance: Some(i), ..
            } => &i.platform().layout,
            Engine::Component { spare: Some(p), .. } => &p.layout,
            Engine::Component { .. } => {
                unreachable!("the platform is either in the instance or spare")
            }
        }
    }

    /// Where the store is, for messages: the store file's path, or the database (without
    /// its password).
    pub fn location(&self) -> String {
        match &self.engine {
            Engine::Native(p) => p.location(),
            Engine::Component {
                instance: Some(i), ..
            } => i.platform().location(),
            Engine::Component { spare: Some(p), .. } => p.location(),
            Engine::Component { .. } => {
                unreachable!("the platform is either in the instance or spare")
            }
        }
    }

    pub fn runtime(&self) -> Option<&Runtime> {
        match &self.engine {
            Engine::Component { runtime, .. } => Some(runtime),
            Engine::Native(_) => None,
        }
    }

    /// Run one operation, in the component or natively.
    fn call<R, W>(
        &mut self,
        wasm: impl FnOnce(
            &component::Credlock,
            &mut wasmtime::Store<component::HostState>,
            &api::Options,
        ) -> wasmtime::Result<Result<W, api::StoreError>>,
        native: impl FnOnce(&mut credlock_core::Store<'_, NativePlatform>) -> Result<R, StoreError>,
        convert: impl FnOnce(W) -> R,
    ) -> Result<R, Error> {
        match &mut self.engine {
            Engine::Native(platform) => credlock_core::Store::new(platform, self.options)
                .and_then(|mut s| native(&mut s))
                .map_err(Error::Store),
            Engine::Component {
                runtime,
                instance,
                spare,
            } => {
                if instance.is_none() {
                    let platform = spare
                        .take()
                        .expect("platform is spare when there is no instance");
                    match runtime.instantiate(platform) {
                        Ok(i) => *instance = Some(i),
                        Err(failed) => {
                            let (platform, e) = *failed;
                            *spare = Some(platform);
                            return Err(Error::Runtime(e.into()));
                        }
                    }
                }
                let live = instance.as_mut().expect("instantiated above");
                let opts = api::Options::from(&self.options);
                // A panic in a host function (a host bug: a broken platform contract) unwinds
                // through wasmtime to here; it fails this call as an internal error, like a
                // trap, instead of taking the embedding process down.
                let called = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    wasm(&live.bindings, &mut live.store, &opts)
                }));
                let called = called.unwrap_or_else(|panic| {
                    let why = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "a panic".into());
                    Err(wasmtime::Error::msg(why))
                });
                match called {
                    Ok(Ok(w)) => Ok(convert(w)),
                    Ok(Err(e)) => Err(Error::Store(e.into())),
                    Err(trap) => {
                        // A trapped instance may not be entered again: start afresh next call.
                        *spare = Some(instance.take().expect("live").into_platform());
                        Err(Error::Runtime(trap.into()))
                    }
                }
            }
        }
    }

    /// Create the store if it does not exist; true if created.
    pub fn init(&mut self) -> Result<bool, Error> {
        self.call(
            |i, s, o| i.credlock_store_store().call_init(s, *o),
            |s| s.init(),
            |b| b,
        )
    }

    /// Store a token response (JSON) for `tenant`.
    pub fn put(&mut self, tenant: &str, token_response: &str) -> Result<WriteReceipt, Error> {
        self.call(
            |i, s, o| {
                i.credlock_store_store()
                    .call_put(s, *o, tenant, token_response)
            },
            |s| s.put(tenant, token_response),
            WriteReceipt::from,
        )
    }

    /// An access token valid for at least `min_valid_ms` more, refreshed if needed.
    pub fn token(&mut self, tenant: &str, min_valid_ms: u64) -> Result<AccessToken, Error> {
        self.call(
            |i, s, o| {
                i.credlock_store_store()
                    .call_token(s, *o, tenant, min_valid_ms)
            },
            |s| s.token(tenant, min_valid_ms),
            AccessToken::from,
        )
    }

    /// Refresh now; with `rejected` (hex SHA-256 prefix of a refused access token), only if
    /// the stored token is still that one.
    pub fn refresh(&mut self, tenant: &str, rejected: Option<&str>) -> Result<AccessToken, Error> {
        self.call(
            |i, s, o| {
                i.credlock_store_store()
                    .call_refresh(s, *o, tenant, rejected)
            },
            |s| s.refresh(tenant, rejected),
            AccessToken::from,
        )
    }

    pub fn list(&mut self) -> Result<Vec<TenantSummary>, Error> {
        self.call(
            |i, s, o| i.credlock_store_store().call_list(s, *o),
            |s| s.list(),
            |v| v.into_iter().map(TenantSummary::from).collect(),
        )
    }

    /// Remove a tenant; false if it did not exist.
    pub fn delete(&mut self, tenant: &str) -> Result<bool, Error> {
        self.call(
            |i, s, o| i.credlock_store_store().call_delete(s, *o, tenant),
            |s| s.delete(tenant),
            |b| b,
        )
    }

    /// The attachment `name` of `tenant` (`credlock_core::attachment`); none when the tenant
    /// or the attachment is absent.
    pub fn attachment(&mut self, tenant: &str, name: &str) -> Result<Option<String>, Error> {
        self.call(
            |i, s, o| {
                i.credlock_store_store()
                    .call_attachment(s, *o, tenant, name)
            },
            |s| s.attachment(tenant, name),
            |v| v,
        )
    }

    /// Set (`Some`) or remove (`None`) an attachment, leaving the tenant's tokens as they are.
    pub fn set_attachment(
        &mut self,
        tenant: &str,
        name: &str,
        value: Option<&str>,
    ) -> Result<WriteReceipt, Error> {
        self.call(
            |i, s, o| {
                i.credlock_store_store()
                    .call_set_attachment(s, *o, tenant, name, value)
            },
            |s| s.set_attachment(tenant, name, value),
            WriteReceipt::from,
        )
    }

    // ----- maintenance -----

    /// The store header's key slots, in order. Opens the store with the configured keys.
    pub fn slots(&mut self) -> Result<Vec<KeySlot>, Error> {
        self.call(
            |i, s, o| i.credlock_store_store().call_slots(s, *o),
            |s| s.slots(),
            slots_in,
        )
    }

    /// Add a slot of `kind` (`key-file`, `passphrase`, `keyring`, `kernel-keyring`) from the
    /// configured source (`KeySources::new_passphrase` for a passphrase, `keyring` for the
    /// backend). Returns the new slot list.
    pub fn add_slot(&mut self, kind: &str) -> Result<Vec<KeySlot>, Error> {
        self.call(
            |i, s, o| i.credlock_store_store().call_add_slot(s, *o, kind),
            |s| s.add_slot(kind),
            slots_in,
        )
    }

    /// Remove slot `index`: never the last one, never leaving only volatile slots unless
    /// `allow_volatile_only`. Returns the new slot list.
    pub fn remove_slot(
        &mut self,
        index: u32,
        allow_volatile_only: bool,
    ) -> Result<Vec<KeySlot>, Error> {
        self.call(
            |i, s, o| {
                i.credlock_store_store()
                    .call_remove_slot(s, *o, index, allow_volatile_only)
            },
            |s| s.remove_slot(index, allow_volatile_only),
            slots_in,
        )
    }

    /// Import plaintext tokens (one tenant's file for `tenant`, or a map of tenants) in one
    /// atomic write; durable when this returns.
    pub fn import_tokens(
        &mut self,
        source: &str,
        tenant: Option<&str>,
        how: &ImportOptions,
    ) -> Result<ImportReport, Error> {
        let wit = api::ImportOptions::from(how);
        self.call(
            |i, s, o| {
                i.credlock_store_store()
                    .call_import_tokens(s, *o, source, tenant, &wit)
            },
            |s| s.import_tokens(source, tenant, how),
            ImportReport::from,
        )
    }

    /// Move an unreadable store aside; returns its new name.
    pub fn quarantine(&mut self, force: bool) -> Result<String, Error> {
        self.call(
            |i, s, o| i.credlock_store_store().call_quarantine(s, *o, force),
            |s| s.quarantine(force),
            |n| n,
        )
    }

    /// The whole store as one sealed file (every tenant in one body), read under the shared
    /// lock, with the same key, slots and generation; `None` if there is no store. What
    /// `migrate` copies.
    pub fn export_sealed(&mut self) -> Result<Option<Vec<u8>>, Error> {
        self.call(
            |i, s, o| i.credlock_store_store().call_export_sealed(s, *o),
            |s| s.export_sealed(),
            |b| b,
        )
    }

    /// Make `sealed` (as [`Credlock::export_sealed`] gives it) this store, in this
    /// platform's layout; refused if a store or a backup is here already.
    pub fn adopt_sealed(&mut self, sealed: &[u8]) -> Result<StoreInfo, Error> {
        self.call(
            |i, s, o| i.credlock_store_store().call_adopt_sealed(s, *o, sealed),
            |s| s.adopt_sealed(sealed),
            StoreInfo::from,
        )
    }

    /// The process's key sources and caches (for `doctor`).
    pub fn keyring(&self) -> &keys::Keyring {
        match &self.engine {
            Engine::Native(p) => &p.keys,
            Engine::Component {
                instance: Some(i), ..
            } => &i.platform().keys,
            Engine::Component { spare: Some(p), .. } => &p.keys,
            Engine::Component { .. } => {
                unreachable!("the platform is either in the instance or spare")
            }
        }
    }
}

fn slots_in(v: Vec<component::sealing_types::KeySlot>) -> Vec<KeySlot> {
    v.into_iter().map(KeySlot::from).collect()
}
