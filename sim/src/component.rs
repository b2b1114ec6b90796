//! The shipped component as a simulated process: the very `.wasm` the host embeds
//! ([`credlock::component::COMPONENT_WASM`]), as the machine code the build compiled it to
//! ([`credlock::component::COMPILED_COMPONENT`]), run by wasmtime, with its WIT imports answered
//! by the same [`SimPlatform`] the native build calls. Nothing here simulates anything: each
//! import converts its arguments to the core's types, calls the platform, and converts the
//! answer back, as `host/src/component.rs` does for the native platform. Lock guards and
//! data keys are wasmtime resources holding the platform's own [`SimGuard`] and [`SimKey`].
//!
//! A crash is a panic out of a platform call (see [`crate::sched::Sim::point`]). wasmtime
//! carries a host function's panic through the guest's frames and resumes it out of the
//! export call, so it unwinds to the process's top exactly as it does natively; the
//! wasmtime store is dropped on the way, and its resource table with it, which releases the
//! locks the guest held (as the kernel does for a dead process). A trap (the core panicked
//! inside the guest, which is built with `panic = "abort"`) ends the process as a native
//! panic would: the instance is poisoned and discarded with it.

use crate::platform::{SimGuard, SimKey, SimPlatform};
use crate::run::Process;
use ::credlock::component::LoadedFrom;
use credlock_core::platform::{self as core_p, Layout, Platform, RecordWrite, SealingKey};
use credlock_core::{
    AccessToken, ImportReport, Options, RecoverReport, StoreError, StoreInfo, TenantSummary,
    WriteReceipt,
};
use std::sync::OnceLock;
use wasmtime::component::{HasSelf, Linker, Resource, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

wasmtime::component::bindgen!({
    path: "../wit",
    world: "credlock",
    with: {
        "credlock:store/locks.lock-guard": crate::platform::SimGuard,
        "credlock:store/sealing.sealing-key": crate::platform::SimKey,
    },
});

use self::credlock::store::{clock, files, locks, login, random, sealing, token_endpoint, types};
use exports::credlock::store::store as api;

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

/// What one simulated process's wasmtime store holds.
pub struct HostState {
    pub platform: SimPlatform,
    table: ResourceTable,
    wasi: WasiCtx,
    perturbation: Option<Perturbation>,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
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
        let mut linker = Linker::<HostState>::new(&engine);
        // As in the host: Rust's std makes the guest import WASI p2; it gets an empty
        // context (no files, no clock it may use, no network). The world comes only
        // through credlock's own imports.
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).expect("linking WASI");
        Credlock::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
            .expect("linking the credlock imports");
        let pre = linker
            .instantiate_pre(&component)
            .expect("the component's imports are all linked");
        let pre = CredlockPre::new(pre).expect("the component exports the credlock world");
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
        let mut store = Store::new(
            engine,
            HostState {
                platform,
                table: ResourceTable::new(),
                wasi: WasiCtx::builder().build(),
                perturbation,
            },
        );
        let bindings = pre
            .instantiate(&mut store)
            .expect("instantiating the credlock component");
        ComponentProcess {
            store,
            bindings,
            opts: api::Options {
                lock_timeout_ms: opts.lock_timeout_ms,
                http_timeout_ms: opts.http_timeout_ms,
                allow_insecure_http: opts.allow_insecure_http,
            },
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
            Ok(result) => result.map(out).map_err(store_error),
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
            |r| WriteReceipt {
                revision: r.revision,
                generation: r.generation,
            },
        )
    }

    fn token(&mut self, tenant: &str, min_valid_ms: u64) -> Result<AccessToken, StoreError> {
        self.call(
            |g, s, o| g.call_token(s, o, tenant, min_valid_ms),
            access_token,
        )
    }

    fn refresh(&mut self, tenant: &str, rejected: Option<&str>) -> Result<AccessToken, StoreError> {
        self.call(
            |g, s, o| g.call_refresh(s, o, tenant, rejected),
            access_token,
        )
    }

    fn list(&mut self) -> Result<Vec<TenantSummary>, StoreError> {
        self.call(
            |g, s, o| g.call_list(s, o),
            |v| {
                v.into_iter()
                    .map(|t| TenantSummary {
                        tenant: t.tenant,
                        token_type: t.token_type,
                        expires_at_ms: t.expires_at_ms,
                        has_refresh_token: t.has_refresh_token,
                        scope: t.scope,
                        token_endpoint: t.token_endpoint,
                        client_id: t.client_id,
                        revision: t.revision,
                        needs_reauth: t.needs_reauth,
                        refresh_intent: t.refresh_intent,
                    })
                    .collect()
            },
        )
    }

    fn delete(&mut self, tenant: &str) -> Result<bool, StoreError> {
        self.call(|g, s, o| g.call_delete(s, o, tenant), |b| b)
    }

    fn rekey(&mut self) -> Result<StoreInfo, StoreError> {
        self.call(|g, s, o| g.call_rekey(s, o), store_info)
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
        self.call(
            |g, s, o| g.call_recover(s, o, force),
            |r| RecoverReport {
                quarantined_as: r.quarantined_as,
                generation: r.generation,
                tenants: r.tenants,
                refresh_unknown: r.refresh_unknown,
            },
        )
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
            |r| ImportReport {
                imported: r.imported,
                skipped: r.skipped,
                generation: r.generation,
            },
        )
    }
}

// ----- imports: each forwards to the simulated platform -----

fn io_error(e: core_p::IoError) -> types::IoError {
    match e {
        core_p::IoError::NotARegularFile(d) => types::IoError::NotARegularFile(d),
        core_p::IoError::PermissionDenied(d) => types::IoError::PermissionDenied(d),
        core_p::IoError::NoSpace(d) => types::IoError::NoSpace(d),
        core_p::IoError::UnsafePermissions(d) => types::IoError::UnsafePermissions(d),
        core_p::IoError::OtherLockProtocol(d) => types::IoError::OtherLockProtocol(d),
        core_p::IoError::Unreachable(d) => types::IoError::Unreachable(d),
        core_p::IoError::Fenced(d) => types::IoError::Fenced(d),
        core_p::IoError::AuthFailed(d) => types::IoError::AuthFailed(d),
        core_p::IoError::Other(d) => types::IoError::Other(d),
    }
}

fn file_error(e: core_p::FileError) -> files::FileError {
    match e {
        core_p::FileError::Io(io) => files::FileError::Io(io_error(io)),
        core_p::FileError::TooLarge(n) => files::FileError::TooLarge(n),
    }
}

fn key_error(e: core_p::KeyError) -> sealing::KeyError {
    match e {
        core_p::KeyError::NoKeySource => sealing::KeyError::NoKeySource,
        core_p::KeyError::NoMatchingSlot(k) => sealing::KeyError::NoMatchingSlot(k),
        core_p::KeyError::WrongPassphrase => sealing::KeyError::WrongPassphrase,
        core_p::KeyError::WrongKeyFile => sealing::KeyError::WrongKeyFile,
        core_p::KeyError::MalformedSlot(d) => sealing::KeyError::MalformedSlot(d),
        core_p::KeyError::Io(io) => sealing::KeyError::Io(io_error(io)),
        core_p::KeyError::KeyringEntryMissing {
            backend,
            other_slots,
        } => sealing::KeyError::KeyringEntryMissing(sealing::KeyringMissing {
            backend,
            other_slots,
        }),
        core_p::KeyError::Keyring(d) => sealing::KeyError::Keyring(d),
        core_p::KeyError::SlotUnavailable(d) => sealing::KeyError::SlotUnavailable(d),
    }
}

fn seal_error(e: core_p::SealError) -> sealing::SealError {
    match e {
        core_p::SealError::BadNonce => sealing::SealError::BadNonce,
        core_p::SealError::AuthenticationFailed => sealing::SealError::AuthenticationFailed,
    }
}

fn slot_in(s: sealing::KeySlot) -> core_p::KeySlot {
    core_p::KeySlot {
        kind: s.kind,
        data: s.data,
    }
}

fn slots_in(v: Vec<sealing::KeySlot>) -> Vec<core_p::KeySlot> {
    v.into_iter().map(slot_in).collect()
}

fn slot_out(s: core_p::KeySlot) -> sealing::KeySlot {
    sealing::KeySlot {
        kind: s.kind,
        data: s.data,
    }
}

fn store_file(f: files::StoreFile) -> core_p::StoreFile {
    match f {
        files::StoreFile::Store => core_p::StoreFile::Store,
        files::StoreFile::Backup => core_p::StoreFile::Backup,
    }
}

/// The component hands a host function only handles of live resources it was given: a
/// lookup that fails is a bug in this simulator, so it panics (and the run fails).
const HANDLE_BUG: &str = "credlock-sim bug: the component passed a handle this host does not hold";

/// A resource table has no limit a simulated run reaches; reaching one is a bug here.
const TABLE_BUG: &str = "credlock-sim bug: the resource table is full";

impl types::Host for HostState {}

impl locks::Host for HostState {
    fn acquire(
        &mut self,
        target: locks::LockTarget,
        mode: locks::LockMode,
        timeout_ms: u32,
    ) -> Result<Resource<SimGuard>, locks::LockError> {
        let target = match target {
            locks::LockTarget::Store => core_p::LockTarget::Store,
            locks::LockTarget::Refresh(id) => core_p::LockTarget::Refresh(id),
        };
        let mode = match mode {
            locks::LockMode::Shared => core_p::LockMode::Shared,
            locks::LockMode::Exclusive => core_p::LockMode::Exclusive,
        };
        let guard = self
            .platform
            .acquire(&target, mode, timeout_ms)
            .map_err(|e| match e {
                core_p::LockError::Timeout(ms) => locks::LockError::Timeout(ms),
                core_p::LockError::Io(io) => locks::LockError::Io(io_error(io)),
            })?;
        Ok(self.table.push(guard).expect(TABLE_BUG))
    }
}

impl locks::HostLockGuard for HostState {
    fn release(&mut self, guard: Resource<SimGuard>) {
        self.table.get_mut(&guard).expect(HANDLE_BUG).release();
    }

    fn drop(&mut self, guard: Resource<SimGuard>) -> wasmtime::Result<()> {
        self.table.delete(guard)?;
        Ok(())
    }
}

impl files::Host for HostState {
    fn read(&mut self, file: files::StoreFile) -> Result<files::Blob, files::FileError> {
        if self.perturbation == Some(Perturbation::ReadTwice) {
            let _ = self.platform.read(store_file(file));
        }
        match self.platform.read(store_file(file)).map_err(file_error)? {
            Some(bytes) => Ok(files::Blob::Present(bytes)),
            None => Ok(files::Blob::Absent),
        }
    }

    fn replace(
        &mut self,
        file: files::StoreFile,
        contents: Vec<u8>,
    ) -> Result<(), files::FileError> {
        self.platform
            .replace(store_file(file), &contents)
            .map_err(file_error)
    }

    fn remove(&mut self, file: files::StoreFile) -> Result<(), files::FileError> {
        self.platform.remove(store_file(file)).map_err(file_error)
    }

    fn quarantine(&mut self, file: files::StoreFile) -> Result<String, files::FileError> {
        self.platform
            .quarantine(store_file(file))
            .map_err(file_error)
    }

    fn store_layout(&mut self) -> files::Layout {
        match self.platform.layout() {
            Layout::Blob => files::Layout::Blob,
            Layout::Records => files::Layout::Records,
        }
    }

    fn read_record(&mut self, id: String) -> Result<files::Blob, files::FileError> {
        match self.platform.read_record(&id).map_err(file_error)? {
            Some(bytes) => Ok(files::Blob::Present(bytes)),
            None => Ok(files::Blob::Absent),
        }
    }

    fn read_records(&mut self) -> Result<Vec<(String, Vec<u8>)>, files::FileError> {
        self.platform.read_records().map_err(file_error)
    }

    fn write_records(
        &mut self,
        store: Vec<u8>,
        records: Vec<files::RecordWrite>,
    ) -> Result<(), files::FileError> {
        let records: Vec<RecordWrite> = records
            .into_iter()
            .map(|r| RecordWrite {
                id: r.id,
                sealed: r.sealed,
            })
            .collect();
        self.platform
            .write_records(&store, &records)
            .map_err(file_error)
    }
}

impl sealing::Host for HostState {
    fn unlock(
        &mut self,
        key_id: Vec<u8>,
        slots: Vec<sealing::KeySlot>,
    ) -> Result<Resource<SimKey>, sealing::KeyError> {
        let slots: Vec<core_p::KeySlot> = slots_in(slots);
        let key = self.platform.unlock(&key_id, &slots).map_err(key_error)?;
        Ok(self.table.push(key).expect(TABLE_BUG))
    }

    fn create(&mut self) -> Result<Resource<SimKey>, sealing::KeyError> {
        let key = self.platform.create_key().map_err(key_error)?;
        Ok(self.table.push(key).expect(TABLE_BUG))
    }

    fn rekey(
        &mut self,
        slots: Vec<sealing::KeySlot>,
    ) -> Result<Resource<SimKey>, sealing::KeyError> {
        let slots: Vec<core_p::KeySlot> = slots_in(slots);
        let key = self.platform.rekey(&slots).map_err(key_error)?;
        Ok(self.table.push(key).expect(TABLE_BUG))
    }
}

impl sealing::HostSealingKey for HostState {
    fn key_id(&mut self, key: Resource<SimKey>) -> Vec<u8> {
        self.table.get(&key).expect(HANDLE_BUG).key_id()
    }

    fn slots(&mut self, key: Resource<SimKey>) -> Vec<sealing::KeySlot> {
        let k = self.table.get(&key).expect(HANDLE_BUG);
        SealingKey::slots(k).into_iter().map(slot_out).collect()
    }

    fn add_slot(
        &mut self,
        key: Resource<SimKey>,
        kind: String,
    ) -> Result<sealing::KeySlot, sealing::KeyError> {
        let k = self.table.get(&key).expect(HANDLE_BUG);
        k.add_slot(&kind).map(slot_out).map_err(key_error)
    }

    fn seal(
        &mut self,
        key: Resource<SimKey>,
        nonce: Vec<u8>,
        aad: Vec<u8>,
        plaintext: Vec<u8>,
    ) -> Result<Vec<u8>, sealing::SealError> {
        let k = self.table.get(&key).expect(HANDLE_BUG);
        SealingKey::seal(k, &nonce, &aad, &plaintext).map_err(seal_error)
    }

    fn open(
        &mut self,
        key: Resource<SimKey>,
        nonce: Vec<u8>,
        aad: Vec<u8>,
        ciphertext: Vec<u8>,
    ) -> Result<Vec<u8>, sealing::SealError> {
        let k = self.table.get(&key).expect(HANDLE_BUG);
        SealingKey::open(k, &nonce, &aad, &ciphertext).map_err(seal_error)
    }

    fn drop(&mut self, key: Resource<SimKey>) -> wasmtime::Result<()> {
        self.table.delete(key)?;
        Ok(())
    }
}

impl token_endpoint::Host for HostState {
    fn post(
        &mut self,
        r: token_endpoint::TokenRequest,
    ) -> Result<token_endpoint::HttpReply, token_endpoint::TransportError> {
        let request = core_p::TokenRequest {
            url: r.url,
            body: r.body,
            authorization: r.authorization,
            timeout_ms: r.timeout_ms,
        };
        match self.platform.post(&request) {
            Ok(reply) => Ok(token_endpoint::HttpReply {
                status: reply.status,
                content_type: reply.content_type,
                body: reply.body,
            }),
            Err(e) => Err(match e {
                core_p::TransportError::BadUrl(d) => token_endpoint::TransportError::BadUrl(d),
                core_p::TransportError::Connect(d) => token_endpoint::TransportError::Connect(d),
                core_p::TransportError::Timeout => token_endpoint::TransportError::Timeout,
                core_p::TransportError::Interrupted(d) => {
                    token_endpoint::TransportError::Interrupted(d)
                }
                core_p::TransportError::ReplyTooLarge => {
                    token_endpoint::TransportError::ReplyTooLarge
                }
            }),
        }
    }
}

/// The simulated world has no login flow (a plan's "login" is a put of a token response at
/// the simulated server), so no simulated process calls `login`: reaching one of these is a
/// bug in the simulator, and fails the run as a panic.
const NO_LOGIN: &str = "credlock-sim: the simulated world has no interactive login";

impl login::Host for HostState {
    fn get(
        &mut self,
        _url: String,
        _timeout_ms: u32,
    ) -> Result<token_endpoint::HttpReply, token_endpoint::TransportError> {
        panic!("{NO_LOGIN}")
    }
    fn sleep(&mut self, _ms: u32) {
        panic!("{NO_LOGIN}")
    }
    fn show(&mut self, _p: login::Prompt) {
        panic!("{NO_LOGIN}")
    }
    fn listen(&mut self) -> Result<u16, String> {
        panic!("{NO_LOGIN}")
    }
    fn accept_callback(&mut self, _state: String, _timeout_ms: u32) -> Result<String, String> {
        panic!("{NO_LOGIN}")
    }
    fn open_browser(&mut self, _url: String) -> bool {
        panic!("{NO_LOGIN}")
    }
}

impl clock::Host for HostState {
    fn wall_ms(&mut self) -> u64 {
        self.platform.wall_ms()
    }
    fn monotonic_ms(&mut self) -> u64 {
        self.platform.monotonic_ms()
    }
}

impl random::Host for HostState {
    fn fill(&mut self, len: u32) -> Vec<u8> {
        let mut buf = vec![0u8; len as usize];
        self.platform.fill_random(&mut buf);
        if self.perturbation == Some(Perturbation::RandomShort) {
            buf.pop();
        }
        buf
    }
}

// ----- exports: the component's answers as the core's types -----

fn access_token(t: api::AccessToken) -> AccessToken {
    AccessToken {
        token: t.token,
        token_type: t.token_type,
        expires_at_ms: t.expires_at_ms,
        revision: t.revision,
        refreshed: t.refreshed,
    }
}

fn store_info(i: api::StoreInfo) -> StoreInfo {
    StoreInfo {
        exists: i.exists,
        generation: i.generation,
        format_version: i.format_version,
        key_id: i.key_id,
        slot_kinds: i.slot_kinds,
        tenants: i.tenants,
    }
}

fn io_error_in(e: types::IoError) -> core_p::IoError {
    match e {
        types::IoError::NotARegularFile(d) => core_p::IoError::NotARegularFile(d),
        types::IoError::PermissionDenied(d) => core_p::IoError::PermissionDenied(d),
        types::IoError::NoSpace(d) => core_p::IoError::NoSpace(d),
        types::IoError::UnsafePermissions(d) => core_p::IoError::UnsafePermissions(d),
        types::IoError::OtherLockProtocol(d) => core_p::IoError::OtherLockProtocol(d),
        types::IoError::Unreachable(d) => core_p::IoError::Unreachable(d),
        types::IoError::Fenced(d) => core_p::IoError::Fenced(d),
        types::IoError::AuthFailed(d) => core_p::IoError::AuthFailed(d),
        types::IoError::Other(d) => core_p::IoError::Other(d),
    }
}

fn transport_error_in(t: token_endpoint::TransportError) -> core_p::TransportError {
    match t {
        token_endpoint::TransportError::BadUrl(d) => core_p::TransportError::BadUrl(d),
        token_endpoint::TransportError::Connect(d) => core_p::TransportError::Connect(d),
        token_endpoint::TransportError::Timeout => core_p::TransportError::Timeout,
        token_endpoint::TransportError::Interrupted(d) => core_p::TransportError::Interrupted(d),
        token_endpoint::TransportError::ReplyTooLarge => core_p::TransportError::ReplyTooLarge,
    }
}

fn key_error_in(k: sealing::KeyError) -> core_p::KeyError {
    match k {
        sealing::KeyError::NoKeySource => core_p::KeyError::NoKeySource,
        sealing::KeyError::NoMatchingSlot(k) => core_p::KeyError::NoMatchingSlot(k),
        sealing::KeyError::WrongPassphrase => core_p::KeyError::WrongPassphrase,
        sealing::KeyError::WrongKeyFile => core_p::KeyError::WrongKeyFile,
        sealing::KeyError::MalformedSlot(d) => core_p::KeyError::MalformedSlot(d),
        sealing::KeyError::Io(io) => core_p::KeyError::Io(io_error_in(io)),
        sealing::KeyError::KeyringEntryMissing(m) => core_p::KeyError::KeyringEntryMissing {
            backend: m.backend,
            other_slots: m.other_slots,
        },
        sealing::KeyError::Keyring(d) => core_p::KeyError::Keyring(d),
        sealing::KeyError::SlotUnavailable(d) => core_p::KeyError::SlotUnavailable(d),
    }
}

/// The component's `store-error` as the core's, so that the checkers judge both builds'
/// errors with the same code.
fn store_error(e: api::StoreError) -> StoreError {
    use credlock_core::error::LoginError as L;
    use credlock_core::{RecoverError, SlotChangeError, StoreError as S};
    match e {
        api::StoreError::InvalidTenant(d) => S::InvalidTenant(d),
        api::StoreError::InvalidTokenResponse(d) => S::InvalidTokenResponse(d),
        api::StoreError::InvalidOptions(d) => S::InvalidOptions(d),
        api::StoreError::InvalidAttachment(d) => S::InvalidAttachment(d),
        api::StoreError::NotFound(t) => S::NotFound(t),
        api::StoreError::Expired(t) => S::Expired(t),
        api::StoreError::ReauthNeeded(t) => S::ReauthNeeded(t),
        api::StoreError::RefreshOutcomeUnknown(t) => S::RefreshOutcomeUnknown(t),
        api::StoreError::Endpoint(e) => S::Endpoint(endpoint_error_in(e)),
        api::StoreError::LockTimeout(l) => S::LockTimeout {
            lock: l.lock,
            waited_ms: l.waited_ms,
        },
        api::StoreError::RefreshContended(t) => S::RefreshContended(t),
        api::StoreError::Io(files::FileError::Io(io)) => {
            S::Io(core_p::FileError::Io(io_error_in(io)))
        }
        api::StoreError::Io(files::FileError::TooLarge(n)) => S::Io(core_p::FileError::TooLarge(n)),
        api::StoreError::Key(k) => S::Key(key_error_in(k)),
        api::StoreError::NotAStore(d) => S::NotAStore(d),
        api::StoreError::UnsupportedVersion(v) => S::UnsupportedVersion(v),
        api::StoreError::Corrupt(d) => S::Corrupt(d),
        api::StoreError::SlotChange(e) => S::SlotChange(match e {
            api::SlotChangeError::NoSuchSlot(i) => SlotChangeError::NoSuchSlot(i),
            api::SlotChangeError::LastSlot => SlotChangeError::LastSlot,
            api::SlotChangeError::OnlyVolatileLeft(k) => SlotChangeError::OnlyVolatileLeft(k),
            api::SlotChangeError::TooManySlots(n) => SlotChangeError::TooManySlots(n),
        }),
        api::StoreError::Recover(e) => S::Recover(match e {
            api::RecoverError::StoreReadable => RecoverError::StoreReadable,
            api::RecoverError::NoBackup => RecoverError::NoBackup,
            api::RecoverError::BackupUnreadable(d) => RecoverError::BackupUnreadable(d),
            api::RecoverError::TenantRecords => RecoverError::TenantRecords,
        }),
        api::StoreError::ImportConflict(names) => S::ImportConflict(names),
        api::StoreError::Login(e) => S::Login(match e {
            api::LoginError::Metadata(d) => L::Metadata(d),
            api::LoginError::InsecureEndpoint(d) => L::InsecureEndpoint(d),
            api::LoginError::AccessDenied => L::AccessDenied,
            api::LoginError::Expired(t) => L::Expired(t),
            api::LoginError::Pending(t) => L::Pending(t),
            api::LoginError::JoinedFailed(t) => L::JoinedFailed(t),
            api::LoginError::Superseded(t) => L::Superseded(t),
            api::LoginError::RevocationFailed(d) => L::RevocationFailed(d),
            api::LoginError::Callback(d) => L::Callback(d),
            api::LoginError::Unsupported(d) => L::Unsupported(d),
            api::LoginError::IssuerMismatch(d) => L::IssuerMismatch(d),
            api::LoginError::Endpoint(f) => L::Endpoint {
                endpoint: f.endpoint,
                error: endpoint_error_in(f.error),
            },
        }),
    }
}

/// The WIT's endpoint error as the core's (for `store-error` and `login-error`).
fn endpoint_error_in(e: api::EndpointError) -> credlock_core::EndpointError {
    use credlock_core::EndpointError as CE;
    match e {
        api::EndpointError::Oauth(o) => CE::OAuth {
            status: o.status,
            error: o.error,
            description: o.error_description,
        },
        api::EndpointError::Server(s) => CE::Server(s),
        api::EndpointError::MalformedReply(d) => CE::MalformedReply(d),
        api::EndpointError::Transport(t) => CE::Transport(transport_error_in(t)),
    }
}
