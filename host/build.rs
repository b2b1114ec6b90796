//! Builds the credlock component from `core/component` for wasm32-wasip2 and puts it in
//! OUT_DIR, so the host embeds exactly the .wasm of this checkout (as wasmtime's own test
//! programs are built). The nested cargo uses its own target directory: the outer cargo
//! holds the lock on ours.

use sha2::Digest;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir
        .parent()
        .expect("host/ sits in the workspace root")
        .to_path_buf();
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    for dir in ["core/src", "core/component/src", "wit"] {
        rerun_if_changed_dir(&root.join(dir));
    }
    for file in [
        "core/Cargo.toml",
        "core/component/Cargo.toml",
        "Cargo.toml",
        "Cargo.lock",
        "rust-toolchain.toml",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(file).display());
    }
    println!("cargo:rerun-if-env-changed=CREDLOCK_COMPONENT");

    // The wasmtime version keys the compiled-artifact cache.
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).unwrap_or_default();
    let wasmtime_version = lock
        .split("[[package]]")
        .find(|p| p.contains("name = \"wasmtime\"\n"))
        .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = \"")))
        .map(|v| v.trim_end_matches('"').to_owned())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=CARGO_PKG_VERSION_WASMTIME={wasmtime_version}");

    let wasm = match std::env::var_os("CREDLOCK_COMPONENT") {
        // A prebuilt component (e.g. from CI's artifact cache): use it as is.
        Some(path) => PathBuf::from(path),
        None => build_guest(&root),
    };
    let bytes = std::fs::read(&wasm).unwrap_or_else(|e| panic!("reading {}: {e}", wasm.display()));
    // The hash keys the compiled-artifact cache; computing it here spares every CLI run.
    let digest = sha2::Sha256::digest(&bytes);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(out_dir.join("credlock.wasm"), &bytes).expect("writing OUT_DIR/credlock.wasm");
    std::fs::write(out_dir.join("credlock.wasm.sha256"), hex).expect("writing the component hash");
}

fn build_guest(root: &Path) -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target_dir = root.join("target").join("guest");
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args([
            "build",
            "--package",
            "credlock-component",
            "--target",
            "wasm32-wasip2",
            "--profile",
            "guest",
        ])
        .arg("--target-dir")
        .arg(&target_dir);
    // Flags meant for the host build (coverage, sanitizers, -C target-cpu) must not leak
    // into the wasm build.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        cmd.env_remove(var);
    }
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("CARGO_PROFILE_")
            || key.to_string_lossy().starts_with("CARGO_FEATURE_")
        {
            cmd.env_remove(&key);
        }
    }
    let status = cmd.status().expect("running cargo for the wasm guest");
    if !status.success() {
        panic!(
            "building the credlock component failed. Is the wasm32-wasip2 target installed? \
             Run `rustup target add wasm32-wasip2`."
        );
    }
    target_dir
        .join("wasm32-wasip2")
        .join("guest")
        .join("credlock_component.wasm")
}

fn rerun_if_changed_dir(dir: &Path) {
    println!("cargo:rerun-if-changed={}", dir.display());
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                rerun_if_changed_dir(&path);
            } else {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
}
