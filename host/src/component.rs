//! The wasmtime embedding: the credlock component, its imports wired to the native
//! platform, and where its machine code comes from.
//!
//! A one-shot CLI call, or a binding's first `Store.open`, must cost milliseconds, not the
//! second and 70 MB Cranelift takes to compile the component. So the build compiles it
//! (`host/build.rs`, with the engine configuration of `credlock_engine`) and every binary
//! that links this crate carries the artifact ([`COMPILED_COMPONENT`]). It is loaded first,
//! and trusted because the build made it. Only where wasmtime refuses it (a CPU without the
//! target's baseline features, a build for an architecture the precompiler cannot target,
//! a wasmtime feature set that changed the engine's defaults) does the host fall back to
//! compiling at run time, with the on-disk cache of the compiled artifact as before.

use crate::keys::KeyHandle;
use crate::native::Guard as LockGuard;
use crate::native::NativePlatform;
use anyhow::Context;
use credlock_core::platform as core_p;
use credlock_core::Platform;
use std::path::{Path, PathBuf};
use wasmtime::component::{Component, HasSelf, Linker, Resource, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

wasmtime::component::bindgen!({
    path: "../wit",
    world: "credlock",
    with: {
        "credlock:store/locks.lock-guard": crate::native::Guard,
        "credlock:store/sealing.sealing-key": crate::keys::KeyHandle,
    },
});

// `self::`: the generated module `credlock` (the WIT package), not this crate, which rustdoc
// passes to the crate as `--extern credlock` when it builds the doctests.
/// The WIT `sealing` types, for the crate API.
pub use self::credlock::store::sealing as sealing_types;
use self::credlock::store::{clock, files, locks, random, sealing, token_endpoint, types};
pub use exports::credlock::store::store as api;

/// The component this host was built with (see build.rs).
pub static COMPONENT_WASM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/credlock.wasm"));
/// Hex SHA-256 of [`COMPONENT_WASM`].
pub static COMPONENT_SHA256: &str = include_str!(concat!(env!("OUT_DIR"), "/credlock.wasm.sha256"));
/// [`COMPONENT_WASM`] compiled by the build for this binary's target, with its baseline CPU
/// features (`credlock_engine::precompile_config`); empty where the build could not compile
/// for the target.
pub static COMPILED_COMPONENT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/credlock.cwasm"));

/// What one call's wasmtime `Store` holds.
pub struct HostState {
    pub platform: NativePlatform,
    table: ResourceTable,
    wasi: WasiCtx,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// A compiled, linked component ready to instantiate (~10-20 µs per instance).
pub struct Runtime {
    engine: Engine,
    pre: CredlockPre<HostState>,
    /// Where the compiled artifact came from, for `doctor` and benchmarks.
    pub loaded_from: LoadedFrom,
}

/// Where the compiled component came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadedFrom {
    /// The artifact the build embedded in this binary ([`COMPILED_COMPONENT`]).
    Embedded,
    /// The embedded artifact was refused (the reason), and an earlier process of this user
    /// compiled and cached one here.
    Cache {
        path: PathBuf,
        embedded_refused: String,
    },
    /// The embedded artifact was refused (the reason), so this process compiled the
    /// component, and cached it for the next process where it could.
    Compiled {
        cached_to: Option<PathBuf>,
        embedded_refused: String,
    },
}

/// An engine with the configuration the embedded artifact was compiled with.
pub fn engine() -> anyhow::Result<Engine> {
    Ok(Engine::new(&credlock_engine::config())?)
}

/// The component's machine code for `engine` (made by [`engine`]): the embedded artifact, or
/// where wasmtime refuses it, the one cached in `cache_dir` or a compile cached there. For
/// hosts with imports of their own (the simulator), so they run what the product runs.
pub fn shipped_component(
    engine: &Engine,
    cache_dir: Option<&Path>,
) -> anyhow::Result<(Component, LoadedFrom)> {
    match load_embedded(engine) {
        Ok(c) => Ok((c, LoadedFrom::Embedded)),
        Err(embedded_refused) => compile_or_cache(engine, cache_dir, embedded_refused),
    }
}

/// The artifact to try first: the embedded one, or in a debug build one a test chose through
/// `CREDLOCK_TEST_EMBEDDED_ARTIFACT` (`corrupt`: damaged bytes; `none`: as a build for a
/// target the precompiler cannot compile for). The variable is read by no release build.
fn embedded_artifact() -> std::borrow::Cow<'static, [u8]> {
    #[cfg(debug_assertions)]
    match std::env::var("CREDLOCK_TEST_EMBEDDED_ARTIFACT").as_deref() {
        Ok("corrupt") => {
            // wasmtime reads the artifact as an ELF object; a stray byte in its header
            // must be refused, never run.
            let mut bytes = COMPILED_COMPONENT.to_vec();
            if let Some(b) = bytes.get_mut(4) {
                *b ^= 0xff;
            }
            return bytes.into();
        }
        Ok("none") => return std::borrow::Cow::Borrowed(&[]),
        _ => {}
    }
    std::borrow::Cow::Borrowed(COMPILED_COMPONENT)
}

/// The embedded artifact, if wasmtime accepts it for this engine on this CPU. `Err`: why
/// not, in words for `doctor`.
#[allow(unsafe_code)]
fn load_embedded(engine: &Engine) -> Result<Component, String> {
    let bytes = embedded_artifact();
    if bytes.is_empty() {
        return Err(
            "this build carries none (its build could not compile the component for this target)"
                .to_owned(),
        );
    }
    // SAFETY: deserializing runs the artifact's machine code, so it must be what wasmtime
    // wrote for this component. It is: the build compiled `COMPONENT_WASM` with
    // `Engine::precompile_component` and the bytes are part of this binary, which nothing
    // can change without changing the program itself. wasmtime checks before use that the
    // artifact's version, target, Cranelift flags, tunables and wasm features suit this
    // engine, and that every CPU feature it uses is present on this machine; a mismatch is
    // an `Err`, never a crash.
    unsafe { Component::deserialize(engine, &bytes) }.map_err(|e| format!("{e:#}"))
}

/// The cache file name: component hash, wasmtime version and engine configuration, so a
/// different build or setting never loads a stale artifact.
fn cache_path(engine: &Engine, dir: &Path) -> PathBuf {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    dir.join(format!(
        "credlock-{}-wasmtime{}-{:016x}.cwasm",
        &COMPONENT_SHA256[..16],
        env!("CARGO_PKG_VERSION_WASMTIME"),
        h.finish()
    ))
}

/// Load a cached artifact only if it is a regular file we own that nobody else can write:
/// deserializing runs its machine code, so it must be exactly what we wrote.
#[allow(unsafe_code)]
fn load_cached(engine: &Engine, path: &Path) -> Option<Component> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    if !meta.is_file() || !ours_alone(&meta) {
        return None;
    }
    // SAFETY: the file is a regular file owned by this user, not writable by group or others,
    // in a directory this user created 0700; we wrote it with `Component::serialize` for this
    // component hash, wasmtime version and engine configuration (all in its name), and
    // wasmtime itself checks the version and configuration recorded inside before use.
    unsafe { Component::deserialize_file(engine, path) }.ok()
}

/// Owned by this user and not writable by group or others.
#[cfg(unix)]
fn ours_alone(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    meta.uid() == rustix::process::getuid().as_raw() && meta.mode() & 0o022 == 0
}

/// Elsewhere (Windows) there is no owner and mode to check cheaply, and loading a cached
/// artifact runs its machine code: never trust one. Windows loads the embedded artifact as
/// every other system does; only where wasmtime refuses that does each process compile.
#[cfg(not(unix))]
fn ours_alone(_meta: &std::fs::Metadata) -> bool {
    false
}

impl Runtime {
    /// Load the embedded artifact and link the component. Where wasmtime refuses the
    /// artifact, load the one cached in `cache_dir`, or compile and cache one there; the
    /// cache directory is touched only then.
    pub fn load(cache_dir: Option<&Path>) -> anyhow::Result<Runtime> {
        let engine = engine()?;
        let (component, loaded_from) = shipped_component(&engine, cache_dir)?;
        let mut linker = Linker::<HostState>::new(&engine);
        // Rust's std makes the guest import WASI p2. It gets an empty context: no files,
        // no environment, no network. Everything real goes through credlock's own imports.
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        Credlock::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)?;
        let pre = CredlockPre::new(linker.instantiate_pre(&component)?)?;
        Ok(Runtime {
            engine,
            pre,
            loaded_from,
        })
    }

    /// A wasmtime store and instance whose imports use `platform`. The component keeps no
    /// state between calls, so one instance serves every call until a trap poisons it.
    pub fn instantiate(
        &self,
        platform: NativePlatform,
    ) -> Result<Instance, Box<(NativePlatform, wasmtime::Error)>> {
        let state = HostState {
            platform,
            table: ResourceTable::new(),
            wasi: WasiCtx::builder().build(),
        };
        let mut store = Store::new(&self.engine, state);
        match self.pre.instantiate(&mut store) {
            Ok(bindings) => Ok(Instance { store, bindings }),
            // The platform comes back so the caller keeps its keys and configuration.
            Err(e) => Err(Box::new((store.into_data().platform, e))),
        }
    }
}

/// A live instance of the component and the store that owns its platform.
pub struct Instance {
    pub store: Store<HostState>,
    pub bindings: Credlock,
}

impl Instance {
    pub fn platform(&self) -> &NativePlatform {
        &self.store.data().platform
    }

    /// Tear down (after a trap) and give the platform back.
    pub fn into_platform(self) -> NativePlatform {
        // Dropping the table releases any lock guard the guest still held.
        self.store.into_data().platform
    }
}

/// The fallback for an engine that refused the embedded artifact: the cache, or Cranelift.
fn compile_or_cache(
    engine: &Engine,
    cache_dir: Option<&Path>,
    embedded_refused: String,
) -> anyhow::Result<(Component, LoadedFrom)> {
    let cached = cache_dir.map(|d| cache_path(engine, d));
    if let Some(p) = &cached {
        if let Some(c) = load_cached(engine, p) {
            let from = LoadedFrom::Cache {
                path: p.clone(),
                embedded_refused,
            };
            return Ok((c, from));
        }
    }
    let component = Component::new(engine, COMPONENT_WASM)
        .map_err(anyhow::Error::from)
        .context("compiling the credlock component")?;
    // A cache that cannot be written only costs speed; `doctor` says so, no call does.
    let cached_to = cached.and_then(|p| write_cache(&component, &p).ok().map(|()| p));
    let from = LoadedFrom::Compiled {
        cached_to,
        embedded_refused,
    };
    Ok((component, from))
}

fn write_cache(component: &Component, path: &Path) -> anyhow::Result<()> {
    let dir = path.parent().context("cache path has a directory")?;
    crate::io_util::ensure_private_dir(dir)?;
    let bytes = component.serialize()?;
    crate::files::replace(path, &bytes, None).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    Ok(())
}

// ----- imports: each forwards to the native platform -----

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

fn slot_in(s: sealing::KeySlot) -> core_p::KeySlot {
    core_p::KeySlot {
        kind: s.kind,
        data: s.data,
    }
}

fn slot_out(s: core_p::KeySlot) -> sealing::KeySlot {
    sealing::KeySlot {
        kind: s.kind,
        data: s.data,
    }
}

/// A resource table that is full is this process's limit, not damage to the store.
fn sealing_io(detail: &str) -> types::IoError {
    types::IoError::Other(detail.into())
}

/// The component model hands a host function only handles of live resources it made: a
/// lookup that fails is a bug in this host, never the store's fault. It panics (so the call
/// fails as an internal error, see `Credlock::call`), rather than returning an error the
/// core would report as a damaged slot with `credlock recover` as the advice.
const KEY_HANDLE_BUG: &str =
    "credlock host bug: the component passed a key handle this host does not hold";

fn seal_error(e: core_p::SealError) -> sealing::SealError {
    match e {
        core_p::SealError::BadNonce => sealing::SealError::BadNonce,
        core_p::SealError::AuthenticationFailed => sealing::SealError::AuthenticationFailed,
    }
}

fn store_file(f: files::StoreFile) -> core_p::StoreFile {
    match f {
        files::StoreFile::Store => core_p::StoreFile::Store,
        files::StoreFile::Backup => core_p::StoreFile::Backup,
    }
}

impl types::Host for HostState {}

impl locks::Host for HostState {
    fn acquire(
        &mut self,
        target: locks::LockTarget,
        mode: locks::LockMode,
        timeout_ms: u32,
    ) -> Result<Resource<LockGuard>, locks::LockError> {
        let target = match target {
            locks::LockTarget::Store => core_p::LockTarget::Store,
            locks::LockTarget::Refresh(id) => {
                // The WIT promises 64 lowercase hex; a guest that sends anything else must
                // not get to choose a path.
                if id.len() != 64 || !id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                    return Err(locks::LockError::Io(types::IoError::Other(
                        "invalid refresh lock id".into(),
                    )));
                }
                core_p::LockTarget::Refresh(id)
            }
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
        self.table
            .push(guard)
            .map_err(|_| locks::LockError::Io(types::IoError::Other("too many held locks".into())))
    }
}

impl locks::HostLockGuard for HostState {
    fn release(&mut self, guard: Resource<LockGuard>) {
        if let Ok(g) = self.table.get_mut(&guard) {
            g.release();
        }
    }

    fn drop(&mut self, guard: Resource<LockGuard>) -> wasmtime::Result<()> {
        self.table.delete(guard)?;
        Ok(())
    }
}

impl files::Host for HostState {
    fn read(&mut self, file: files::StoreFile) -> Result<files::Blob, files::FileError> {
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
            core_p::Layout::Blob => files::Layout::Blob,
            core_p::Layout::Records => files::Layout::Records,
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
        let records: Vec<core_p::RecordWrite> = records
            .into_iter()
            .map(|r| core_p::RecordWrite {
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
    ) -> Result<Resource<KeyHandle>, sealing::KeyError> {
        let slots: Vec<core_p::KeySlot> = slots.into_iter().map(slot_in).collect();
        let key = self.platform.unlock(&key_id, &slots).map_err(key_error)?;
        self.table
            .push(key)
            .map_err(|_| sealing::KeyError::Io(sealing_io("this process holds too many open keys")))
    }

    fn create(&mut self) -> Result<Resource<KeyHandle>, sealing::KeyError> {
        let key = self.platform.create_key().map_err(key_error)?;
        self.table
            .push(key)
            .map_err(|_| sealing::KeyError::Io(sealing_io("this process holds too many open keys")))
    }

    fn rekey(
        &mut self,
        slots: Vec<sealing::KeySlot>,
    ) -> Result<Resource<KeyHandle>, sealing::KeyError> {
        let slots: Vec<core_p::KeySlot> = slots.into_iter().map(slot_in).collect();
        let key = self.platform.rekey(&slots).map_err(key_error)?;
        self.table
            .push(key)
            .map_err(|_| sealing::KeyError::Io(sealing_io("this process holds too many open keys")))
    }
}

impl sealing::HostSealingKey for HostState {
    fn key_id(&mut self, key: Resource<KeyHandle>) -> Vec<u8> {
        self.table.get(&key).expect(KEY_HANDLE_BUG).id().to_vec()
    }

    fn slots(&mut self, key: Resource<KeyHandle>) -> Vec<sealing::KeySlot> {
        let k = self.table.get(&key).expect(KEY_HANDLE_BUG);
        k.slots().into_iter().map(slot_out).collect()
    }

    fn add_slot(
        &mut self,
        key: Resource<KeyHandle>,
        kind: String,
    ) -> Result<sealing::KeySlot, sealing::KeyError> {
        let k = self.table.get(&key).expect(KEY_HANDLE_BUG);
        k.add_slot(&kind).map(slot_out).map_err(key_error)
    }

    fn seal(
        &mut self,
        key: Resource<KeyHandle>,
        nonce: Vec<u8>,
        aad: Vec<u8>,
        plaintext: Vec<u8>,
    ) -> Result<Vec<u8>, sealing::SealError> {
        let k = self.table.get(&key).expect(KEY_HANDLE_BUG);
        k.seal(&nonce, &aad, &plaintext).map_err(seal_error)
    }

    fn open(
        &mut self,
        key: Resource<KeyHandle>,
        nonce: Vec<u8>,
        aad: Vec<u8>,
        ciphertext: Vec<u8>,
    ) -> Result<Vec<u8>, sealing::SealError> {
        let k = self.table.get(&key).expect(KEY_HANDLE_BUG);
        k.open(&nonce, &aad, &ciphertext).map_err(seal_error)
    }

    fn drop(&mut self, key: Resource<KeyHandle>) -> wasmtime::Result<()> {
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
            Err(e) => Err(transport_error_out(e)),
        }
    }
}

fn transport_error_out(e: core_p::TransportError) -> token_endpoint::TransportError {
    match e {
        core_p::TransportError::BadUrl(d) => token_endpoint::TransportError::BadUrl(d),
        core_p::TransportError::Connect(d) => token_endpoint::TransportError::Connect(d),
        core_p::TransportError::Timeout => token_endpoint::TransportError::Timeout,
        core_p::TransportError::Interrupted(d) => token_endpoint::TransportError::Interrupted(d),
        core_p::TransportError::ReplyTooLarge => token_endpoint::TransportError::ReplyTooLarge,
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
        buf
    }
}

// ----- exports: the component's errors back into the core's type -----

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

/// The component's `store-error` as the core's [`credlock_core::StoreError`], which knows
/// how to describe itself and what to recommend.
pub fn store_error(e: api::StoreError) -> credlock_core::StoreError {
    use credlock_core::StoreError as S;
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
        api::StoreError::Key(k) => S::Key(match k {
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
        }),
        api::StoreError::NotAStore(d) => S::NotAStore(d),
        api::StoreError::UnsupportedVersion(v) => S::UnsupportedVersion(v),
        api::StoreError::Corrupt(d) => S::Corrupt(d),
        api::StoreError::SlotChange(e) => S::SlotChange(match e {
            api::SlotChangeError::NoSuchSlot(i) => credlock_core::SlotChangeError::NoSuchSlot(i),
            api::SlotChangeError::LastSlot => credlock_core::SlotChangeError::LastSlot,
            api::SlotChangeError::OnlyVolatileLeft(k) => {
                credlock_core::SlotChangeError::OnlyVolatileLeft(k)
            }
            api::SlotChangeError::TooManySlots(n) => {
                credlock_core::SlotChangeError::TooManySlots(n)
            }
        }),
        api::StoreError::Recover(e) => S::Recover(match e {
            api::RecoverError::StoreReadable => credlock_core::RecoverError::StoreReadable,
            api::RecoverError::NoBackup => credlock_core::RecoverError::NoBackup,
            api::RecoverError::TenantRecords => credlock_core::RecoverError::TenantRecords,
            api::RecoverError::BackupUnreadable(d) => {
                credlock_core::RecoverError::BackupUnreadable(d)
            }
        }),
        api::StoreError::ImportConflict(names) => S::ImportConflict(names),
        api::StoreError::Login(e) => S::Login(crate::login::error_in(e)),
    }
}

/// The WIT's endpoint error as the core's (for `store-error` and `login-error`).
pub(crate) fn endpoint_error_in(e: api::EndpointError) -> credlock_core::EndpointError {
    use credlock_core::EndpointError as CE;
    match e {
        api::EndpointError::Oauth(o) => CE::OAuth {
            status: o.status,
            error: o.error,
            description: o.error_description,
        },
        api::EndpointError::Server(s) => CE::Server(s),
        api::EndpointError::MalformedReply(d) => CE::MalformedReply(d),
        api::EndpointError::Transport(t) => CE::Transport(match t {
            token_endpoint::TransportError::BadUrl(d) => core_p::TransportError::BadUrl(d),
            token_endpoint::TransportError::Connect(d) => core_p::TransportError::Connect(d),
            token_endpoint::TransportError::Timeout => core_p::TransportError::Timeout,
            token_endpoint::TransportError::Interrupted(d) => {
                core_p::TransportError::Interrupted(d)
            }
            token_endpoint::TransportError::ReplyTooLarge => core_p::TransportError::ReplyTooLarge,
        }),
    }
}
