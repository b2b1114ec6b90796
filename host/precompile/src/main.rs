//! `credlock-precompile COMPONENT.wasm OUT.cwasm TARGET`: compiles the component for the Rust
//! target `TARGET` (its baseline CPU features) with the host's engine configuration
//! (`credlock_engine`), and writes wasmtime's serialized artifact to `OUT.cwasm`.
//!
//! `host/build.rs` builds this in a target directory of its own (the outer cargo holds the
//! lock on the workspace's) and runs it, so every binary that links the `credlock` crate
//! carries its component already compiled: no process pays Cranelift's second and 70 MB on
//! its first call.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let [_, wasm, out, target] = args.as_slice() else {
        eprintln!("usage: credlock-precompile COMPONENT.wasm OUT.cwasm TARGET");
        return ExitCode::from(2);
    };
    match precompile(wasm, out, target) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("credlock-precompile: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn precompile(wasm: &str, out: &str, target: &str) -> Result<(), String> {
    let bytes = std::fs::read(wasm).map_err(|e| format!("reading {wasm}: {e}"))?;
    let config = credlock_engine::precompile_config(target)
        .map_err(|e| format!("configuring wasmtime for {target}: {e:#}"))?;
    let engine = credlock_engine::wasmtime::Engine::new(&config)
        .map_err(|e| format!("a wasmtime engine for {target}: {e:#}"))?;
    let compiled = engine
        .precompile_component(&bytes)
        .map_err(|e| format!("compiling {wasm} for {target}: {e:#}"))?;
    std::fs::write(out, compiled).map_err(|e| format!("writing {out}: {e}"))
}
