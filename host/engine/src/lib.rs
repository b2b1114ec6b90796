//! The one wasmtime engine configuration credlock runs its component with.
//!
//! Two programs need it and must agree to the bit: the host (`credlock::component`), which
//! runs the component, and the precompiler (`host/precompile`), which `host/build.rs` runs to
//! compile the component ahead of time into the artifact every credlock binary embeds.
//! wasmtime refuses an artifact compiled under any other setting (its compatibility check
//! compares the triple, the Cranelift flags, the tunables and the wasm features), so a
//! setting changed here changes both sides at once, and a setting added anywhere else would
//! silently send every process back to compiling at run time.

use wasmtime::Config;

/// The engine configuration, for the host and for the precompiler alike.
pub fn config() -> Config {
    let mut config = Config::new();
    // Traps by explicit checks, not by catching SIGSEGV: the host is embedded in Node, Go and
    // Python processes whose runtimes install their own signal handlers, and a wasm trap
    // must never depend on which handler a runtime left in place. The core's calls are
    // short; the checks cost little beside the store's I/O (BENCHMARKS.md).
    config.signals_based_traps(false);
    config
}

/// [`config`] compiling for `target` (a Rust target triple) with that target's baseline CPU
/// features, for the artifact shipped inside a binary.
///
/// Naming the target stops wasmtime from enabling the build machine's CPU extensions (AVX2,
/// BMI2, ...): an artifact that used them would be refused on an older CPU of the same
/// target. At load, wasmtime accepts an artifact whose CPU features are a subset of the
/// running CPU's, so the baseline one loads on every machine of the target; the runtime
/// engine itself still detects the running CPU for what it compiles (the fallback).
pub fn precompile_config(target: &str) -> wasmtime::Result<Config> {
    let mut config = config();
    config.target(target)?;
    Ok(config)
}

/// The wasmtime this configuration is for, so the precompiler uses exactly it.
pub use wasmtime;
