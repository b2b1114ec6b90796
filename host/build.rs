//! Builds the credlock component from `core/component` for wasm32-wasip2 and puts it in
//! OUT_DIR, so the host embeds exactly the .wasm of this checkout (as wasmtime's own test
//! programs are built). Then compiles that component ahead of time for the target being
//! built (`OUT_DIR/credlock.cwasm`), so no process compiles it at run time: see
//! `precompile`. Each nested cargo uses its own target directory: the outer cargo holds the
//! lock on ours.

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
    for dir in [
        "core/src",
        "core/component/src",
        "wit",
        "host/engine/src",
        "host/precompile/src",
    ] {
        rerun_if_changed_dir(&root.join(dir));
    }
    for file in [
        "core/Cargo.toml",
        "core/component/Cargo.toml",
        "host/engine/Cargo.toml",
        "host/precompile/Cargo.toml",
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

    // An empty artifact means "none for this target": the host then compiles at run time, as
    // it does wherever the shipped artifact is refused. Only a target the precompiler cannot
    // compile for (another architecture than this machine's) gets here; a failure to build
    // or run the precompiler itself is a broken checkout and stops the build.
    let target = std::env::var("TARGET").expect("cargo sets TARGET for build scripts");
    let compiled = out_dir.join("credlock.cwasm");
    let _ = std::fs::remove_file(&compiled);
    if let Err(e) = precompile(&root, &out_dir.join("credlock.wasm"), &compiled, &target) {
        println!(
            "cargo:warning=no precompiled component for {target} ({e}); \
             every process of this build compiles it at run time"
        );
        std::fs::write(&compiled, b"").expect("writing OUT_DIR/credlock.cwasm");
    }
}

/// Compile the component with the host's own engine configuration (`host/engine`) for
/// `target`, by building and running `host/precompile` in `target/precompile`.
///
/// A nested cargo rather than a build-dependency on wasmtime: a build-dependency is built
/// with the `build-override` profile and its own feature set, so it would compile wasmtime
/// and Cranelift once more for every profile (~13 min for a release build on 2 cores). The
/// nested build is one dev build (Cranelift optimised by the workspace's profile overrides),
/// shared by the debug and release builds and by every binding, and rebuilt only when
/// wasmtime or the engine configuration changes. `Err` carries the precompiler's own words
/// when it refuses the target; a precompiler that cannot be built or run panics.
fn precompile(root: &Path, wasm: &Path, out: &Path, target: &str) -> Result<(), String> {
    let target_dir = root.join("target").join("precompile");
    let mut cmd = nested_cargo(root, &target_dir);
    cmd.args(["build", "--package", "credlock-precompile"]);
    let status = cmd.status().expect("running cargo for the precompiler");
    if !status.success() {
        panic!("building host/precompile (the component's ahead-of-time compiler) failed");
    }
    let exe = target_dir.join("debug").join(format!(
        "credlock-precompile{}",
        std::env::consts::EXE_SUFFIX
    ));
    let output = Command::new(&exe)
        .arg(wasm)
        .arg(out)
        .arg(target)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", exe.display()));
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
    }
}

/// `cargo` for a build inside this one, in its own target directory, with none of the outer
/// build's settings: flags meant for the host build (coverage, sanitizers, -C target-cpu,
/// --target, profile overrides) must not leak into the guest or the precompiler.
fn nested_cargo(root: &Path, target_dir: &Path) -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root);
    cmd.env("CARGO_TARGET_DIR", target_dir);
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
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
    cmd
}

fn build_guest(root: &Path) -> PathBuf {
    let target_dir = root.join("target").join("guest");
    let mut cmd = nested_cargo(root, &target_dir);
    cmd.args([
        "build",
        "--package",
        "credlock-component",
        "--target",
        "wasm32-wasip2",
        "--profile",
        "guest",
    ]);
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
