//! The shipped component as a simulated process: the very `.wasm` the host embeds
//! ([`credlock::component::COMPONENT_WASM`]), as the machine code the build compiled it to
//! ([`credlock::component::COMPILED_COMPONENT`]), run by wasmtime, with its WIT imports answered
//! by the same [`SimPlatform`] the native build calls. Nothing here simulates anything: the
//! imports are the host's own (`credlock_witglue`, built against the naive core): each
//! converts its arguments to the core's types, calls the platform, and converts the answer
//! back. This module adds only the simulator's [`SimHooks`] and the process plumbing. Lock
//! guards and data keys are wasmtime resources holding the platform's own [`SimGuard`] and
//! [`crate::platform::SimKey`].
//!
//! A crash is a panic out of a platform call (see [`crate::sched::Sim::point`]). wasmtime
//! carries a host function's panic through the guest's frames and resumes it out of the
//! export call, so it unwinds to the process's top exactly as it does natively; the
//! wasmtime store is dropped on the way, and its resource table with it, which releases the
//! locks the guest held (as the kernel does for a dead process). A trap (the core panicked
//! inside the guest, which is built with `panic = "abort"`) ends the process as a native
//! panic would: the instance is poisoned and discarded with it.

use crate::platform::{SimGuard, SimPlatform};
use crate::run::Process;
use ::credlock::component::LoadedFrom;
use credlock_core::platform::{
    self as core_p, CallbackQuery, HttpReply, LoginPlatform, LoginPrompt, TransportError,
};
use credlock_core::{
    AccessToken, ImportReport, Options, RecoverReport, StoreError, StoreInfo, TenantSummary,
    WriteReceipt,
};
use credlock_witglue::{api, Credlock, CredlockPre, Held, Hooks, WitPlatform};
use std::sync::OnceLock;
use wasmtime::{Engine, Store};

/// A deliberately wrong import, for the test that shows a difference between the builds is
/// caught: never used by a real comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Perturbation {
    /// `files.read` reads the file twice (two scheduling points), as a host that checks a
    /// file before reading it would: another process may replace it in between.
    ReadTwice,
    /// `random.fill` returns one byte too few: the guest's length check traps, and the
    /// process must end as a process whose core panicked, its locks released.
    RandomShort,
}

/// What one simulated process's wasmtime store holds: the shared imports (host/witglue)
/// served from its [`SimPlatform`], with the simulator's [`SimHooks`].
pub type HostState = credlock_witglue::HostState<SimPlatform, SimHooks>;

/// Where the simulator's imports differ from the shipped host's: a simulated run reaches
/// no limit and the component hands back only handles it was given, so either is a bug here
/// and fails the run as a panic; a refresh lock's id reaches the platform as the guest sent
/// it (what the guest sends is what the run checks); and a [`Perturbation`], if any.
pub struct SimHooks {
    perturbation: Option<Perturbation>,
}

/// The component hands a host function only handles of live resources it was given: a
/// lookup that fails is a bug in this simulator, so it panics (and the run fails).
const HANDLE_BUG: &str = "credlock-sim bug: the component passed a handle this host does not hold";

/// A resource table has no limit a simulated run reaches; reaching one is a bug here.
const TABLE_BUG: &str = "credlock-sim bug: the resource table is full";

impl Hooks<SimPlatform> for SimHooks {
    const HANDLE_BUG: &'static str = HANDLE_BUG;

    fn check_refresh_id(&mut self, _id: &str) -> Result<(), core_p::IoError> {
        Ok(())
    }

    fn table_full(&mut self, _held: Held) -> core_p::IoError {
        panic!("{TABLE_BUG}")
    }

    fn release_unheld(&mut self) {
        panic!("{HANDLE_BUG}")
    }

    fn before_read(&mut self, platform: &mut SimPlatform, file: core_p::StoreFile) {
        if self.perturbation == Some(Perturbation::ReadTwice) {
            let _ = core_p::Platform::read(platform, file);
        }
    }

    fn after_fill(&mut self, buf: &mut Vec<u8>) {
        if self.perturbation == Some(Perturbation::RandomShort) {
            buf.pop();
        }
    }
}

impl WitPlatform for SimPlatform {
    fn release(guard: &mut SimGuard) {
        guard.release()
    }
}

/// The simulated world has no login flow (a plan's "login" is a put of a token response at
/// the simulated server), so no simulated process calls `login`: reaching one of these is a
/// bug in the simulator, and fails the run as a panic.
const NO_LOGIN: &str = "credlock-sim: the simulated world has no interactive login";

impl LoginPlatform for SimPlatform {
    fn get(&mut self, _url: &str, _timeout_ms: u32) -> Result<HttpReply, TransportError> {
        panic!("{NO_LOGIN}")
    }
    fn sleep_ms(&mut self, _ms: u32) {
        panic!("{NO_LOGIN}")
    }
    fn show(&mut self, _prompt: &LoginPrompt) {
        panic!("{NO_LOGIN}")
    }
    fn listen(&mut self) -> Result<u16, String> {
        panic!("{NO_LOGIN}")
    }
    fn accept_callback(&mut self, _state: &str, _timeout_ms: u32) -> Result<CallbackQuery, String> {
        panic!("{NO_LOGIN}")
    }
    fn open_browser(&mut self, _url: &str) -> bool {
        panic!("{NO_LOGIN}")
    }
}

/// The engine and the linked component, loaded once per simulator run and shared by every
/// process of every seed (instantiating costs microseconds).
fn runtime() -> &'static (Engine, CredlockPre<HostState>, LoadedFrom) {
    static RUNTIME: OnceLock<(Engine, CredlockPre<HostState>, LoadedFrom)> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        // The host's engine (host/engine) and the machine code the host runs: the artifact
        // the build embedded (compiled now only where wasmtime refuses it), so the seeds run
        // exactly what ships.
        let engine = ::credlock::component::engine().expect("a wasmtime engine for the component");
        let (component, loaded_from) = ::credlock::component::shipped_component(&engine, None)
            .expect("loading the shipped credlock component");
        // As in the host: WASI p2 with an empty context, and the credlock imports.
        let pre = credlock_witglue::linker(&engine, &component)
            .expect("linking the credlock imports to the component");
        (engine, pre, loaded_from)
    })
}

/// Load the component now (the first process would otherwise pay for it mid-run), and say
/// where its machine code came from.
pub fn warm_up() -> &'static str {
    match runtime().2 {
        LoadedFrom::Embedded => "loading the build's compiled artifact",
        _ => "compiling it: wasmtime refused the build's compiled artifact",
    }
}

/// A simulated process running the shipped component: one wasmtime store and instance for
/// the process's whole life, as the host keeps one per `Credlock` until a trap.
pub struct ComponentProcess {
    store: Store<HostState>,
    bindings: Credlock,
    opts: api::Options,
}

impl ComponentProcess {
    pub fn new(
        platform: SimPlatform,
        opts: Options,
        perturbation: Option<Perturbation>,
    ) -> ComponentProcess {
        let (engine, pre, _) = runtime();
        let mut store = Store::new(engine, HostState::new(platform, SimHooks { perturbation }));
        let bindings = pre
            .instantiate(&mut store)
            .expect("instantiating the credlock component");
        ComponentProcess {
            store,
            bindings,
            opts: api::Options::from(&opts),
        }
    }

    /// One export call. A trap ends the process, as a panic in the native core does.
    fn call<T, W>(
        &mut self,
        f: impl FnOnce(
            &api::Guest,
            &mut Store<HostState>,
            api::Options,
        ) -> wasmtime::Result<Result<W, api::StoreError>>,
        out: impl FnOnce(W) -> T,
    ) -> Result<T, StoreError> {
        match f(
            self.bindings.credlock_store_store(),
            &mut self.store,
            self.opts,
        ) {
            Ok(result) => result.map(out).map_err(StoreError::from),
            Err(trap) => panic!("the credlock component trapped: {trap:?}"),
        }
    }
}

impl Process for ComponentProcess {
    fn platform(&mut self) -> &mut SimPlatform {
        &mut self.store.data_mut().platform
    }

    fn put(&mut self, tenant: &str, token_response: &str) -> Result<WriteReceipt, StoreError> {
        self.call(
            |g, s, o| g.call_put(s, o, tenant, token_response),
            WriteReceipt::from,
        )
    }

    fn token(&mut self, tenant: &str, min_valid_ms: u64) -> Result<AccessToken, StoreError> {
        self.call(
            |g, s, o| g.call_token(s, o, tenant, min_valid_ms),
            AccessToken::from,
        )
    }

    fn refresh(&mut self, tenant: &str, rejected: Option<&str>) -> Result<AccessToken, StoreError> {
        self.call(
            |g, s, o| g.call_refresh(s, o, tenant, rejected),
            AccessToken::from,
        )
    }

    fn list(&mut self) -> Result<Vec<TenantSummary>, StoreError> {
        self.call(
            |g, s, o| g.call_list(s, o),
            |v| v.into_iter().map(TenantSummary::from).collect(),
        )
    }

    fn delete(&mut self, tenant: &str) -> Result<bool, StoreError> {
        self.call(|g, s, o| g.call_delete(s, o, tenant), |b| b)
    }

    fn rekey(&mut self) -> Result<StoreInfo, StoreError> {
        self.call(|g, s, o| g.call_rekey(s, o), StoreInfo::from)
    }

    fn add_slot(&mut self, kind: &str) -> Result<Vec<core_p::KeySlot>, StoreError> {
        self.call(|g, s, o| g.call_add_slot(s, o, kind), slots_in)
    }

    fn remove_slot(
        &mut self,
        index: u32,
        allow_volatile_only: bool,
    ) -> Result<Vec<core_p::KeySlot>, StoreError> {
        self.call(
            |g, s, o| g.call_remove_slot(s, o, index, allow_volatile_only),
            slots_in,
        )
    }

    fn recover(&mut self, force: bool) -> Result<RecoverReport, StoreError> {
        self.call(|g, s, o| g.call_recover(s, o, force), RecoverReport::from)
    }

    fn quarantine(&mut self, force: bool) -> Result<String, StoreError> {
        self.call(|g, s, o| g.call_quarantine(s, o, force), |name| name)
    }

    fn import_tokens(
        &mut self,
        source: &str,
        tenant: Option<&str>,
        replace: bool,
    ) -> Result<ImportReport, StoreError> {
        let how = api::ImportOptions {
            replace,
            kind: None,
            account: None,
            saved_at_ms: None,
        };
        self.call(
            |g, s, o| g.call_import_tokens(s, o, source, tenant, &how),
            ImportReport::from,
        )
    }
}

fn slots_in(v: Vec<credlock_witglue::sealing::KeySlot>) -> Vec<core_p::KeySlot> {
    v.into_iter().map(core_p::KeySlot::from).collect()
}
