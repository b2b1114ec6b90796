//! The wasmtime embedding: the credlock component, its imports wired to the native
//! platform (the imports themselves are `credlock_witglue`'s, shared with the simulator),
//! and where its machine code comes from.
//!
//! A one-shot CLI call, or a binding's first `Store.open`, must cost milliseconds, not the
//! second and 70 MB Cranelift takes to compile the component. So the build compiles it
//! (`host/build.rs`, with the engine configuration of `credlock_engine`) and every binary
//! that links this crate carries the artifact ([`COMPILED_COMPONENT`]). It is loaded first,
//! and trusted because the build made it. Only where wasmtime refuses it (a CPU without the
//! target's baseline features, a build for an architecture the precompiler cannot target,
//! a wasmtime feature set that changed the engine's defaults) does the host fall back to
//! compiling at run time, with the on-disk cache of the compiled artifact as before.

use crate::native::NativePlatform;
use anyhow::Context;
use credlock_witglue::{CredlockPre, Shipped};
use std::path::{Path, PathBuf};
use wasmtime::component::Component;
use wasmtime::{Engine, Store};

/// The WIT `sealing` types, for the crate API.
pub use credlock_witglue::sealing as sealing_types;
pub use credlock_witglue::{api, Credlock};

/// What one call's wasmtime `Store` holds: the native platform, served with the shipped
/// host's behaviour ([`credlock_witglue::Shipped`]).
pub type HostState = credlock_witglue::HostState<NativePlatform, Shipped>;

/// The component this host was built with (see build.rs).
pub static COMPONENT_WASM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/credlock.wasm"));
/// Hex SHA-256 of [`COMPONENT_WASM`].
pub static COMPONENT_SHA256: &str = include_str!(concat!(env!("OUT_DIR"), "/credlock.wasm.sha256"));
/// [`COMPONENT_WASM`] compiled by the build for this binary's target, with its baseline CPU
/// features (`credlock_engine::precompile_config`); empty where the build could not compile
/// for the target. On x86-64 Linux it lies in the binary's machine code and runs in place
/// (`component/in_place.rs`).
pub static COMPILED_COMPONENT: &[u8] = &in_place::COMPILED.0;

mod in_place;

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
    let mut config = credlock_engine::config();
    // Who makes code executable is not part of the artifact's compatibility (wasmtime
    // compares the target, flags, tunables and features), so the precompiler's engine need
    // not agree on it.
    if let Some(publisher) = in_place::code_memory() {
        config.with_custom_code_memory(Some(publisher));
    }
    Ok(Engine::new(&config)?)
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
    //
    // In place (`in_place::take`): the bytes are the `static` in the binary's executable
    // segment, which lives as long as the process and is never written, as
    // `deserialize_raw` requires; the engine's code publisher knows them.
    let loaded = match &bytes {
        std::borrow::Cow::Borrowed(b) if in_place::take() => unsafe {
            Component::deserialize_raw(engine, std::ptr::NonNull::from(*b))
        },
        _ => unsafe { Component::deserialize(engine, &bytes) },
    };
    loaded.map_err(|e| format!("{e:#}"))
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
        let pre = credlock_witglue::linker(&engine, &component)?;
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
        let mut store = Store::new(&self.engine, HostState::new(platform, Shipped));
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
