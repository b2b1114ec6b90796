//! The composed command (`scripts/build-cli-wasm.sh` → target/credlock-cli.wasm) runs as a
//! plain `wasi:cli` command with only a preopened directory, as under `wasmtime run --dir
//! STORE::/store`; and the lease-lock build and flock hosts refuse each other's stores.
//!
//! WASI 0.2's stable `exit` carries only success or failure, so every error exits 1 here
//! (the native CLI's distinct codes need the unstable `exit-with-code`); the messages and
//! hints are the native CLI's.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtx, WasiCtxView, WasiView};

struct Ctx {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for Ctx {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

fn cli_wasm() -> PathBuf {
    let p = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../target/credlock-cli.wasm"
    ));
    assert!(
        p.exists(),
        "build it first: bash scripts/build-cli-wasm.sh (scripts/test.sh does)"
    );
    p
}

fn engine_and_component() -> &'static (Engine, Component) {
    static C: std::sync::OnceLock<(Engine, Component)> = std::sync::OnceLock::new();
    C.get_or_init(|| {
        let engine = Engine::default();
        let component = Component::from_file(&engine, cli_wasm()).unwrap();
        (engine, component)
    })
}

/// `wasmtime run --dir STORE::/store credlock-cli.wasm ARGS`, with stdin.
fn wasi_run(store_dir: &Path, args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Run {
    let (engine, component) = engine_and_component();
    let stdout = MemoryOutputPipe::new(1 << 20);
    let stderr = MemoryOutputPipe::new(1 << 20);
    let mut b = WasiCtx::builder();
    b.arg("credlock")
        .args(args)
        .stdin(MemoryInputPipe::new(stdin.to_owned()))
        .stdout(stdout.clone())
        .stderr(stderr.clone());
    for (k, v) in env {
        b.env(k, v);
    }
    b.preopened_dir(store_dir, "/store", FsPerms::ReadWrite)
        .unwrap();
    let mut store = Store::new(
        engine,
        Ctx {
            wasi: b.build(),
            table: ResourceTable::new(),
        },
    );
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).unwrap();
    let cmd =
        wasmtime_wasi::p2::bindings::sync::Command::instantiate(&mut store, component, &linker)
            .unwrap();
    let code = match cmd.wasi_cli_run().call_run(&mut store) {
        Ok(Ok(())) => 0,
        Ok(Err(())) => 1,
        Err(e) => e
            .downcast_ref::<I32Exit>()
            .map(|e| e.0)
            .unwrap_or_else(|| panic!("trap: {e:?}")),
    };
    Run {
        code,
        stdout: String::from_utf8_lossy(&stdout.contents()).into_owned(),
        stderr: String::from_utf8_lossy(&stderr.contents()).into_owned(),
    }
}

#[test]
fn the_composed_command_puts_reads_lists_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let r = wasi_run(
        dir.path(),
        &["put", "acme"],
        r#"{"access_token":"from-wasi","expires_in":3600}"#,
        &[],
    );
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (0, "credlock: stored 'acme' (revision 1)\n"),
        "{r:?}"
    );
    let r = wasi_run(dir.path(), &["token", "acme"], "", &[]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "from-wasi\n"), "{r:?}");
    let r = wasi_run(dir.path(), &["list"], "", &[]);
    assert!(
        r.stdout.contains("acme") && !r.stdout.contains("from-wasi"),
        "{r:?}"
    );
    let r = wasi_run(dir.path(), &["token", "nobody"], "", &[]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .contains("no credentials stored for tenant 'nobody'"),
        "{r:?}"
    );
    let r = wasi_run(dir.path(), &["delete", "acme"], "", &[]);
    assert_eq!(r.code, 0, "{r:?}");
    // The files are the same format: sealed, with the default key file beside them.
    assert!(dir.path().join("credentials.sealed").exists() && dir.path().join("key").exists());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("lock-protocol")).unwrap(),
        "wasi-lease\n"
    );
}

#[test]
fn a_passphrase_store_opens_only_with_the_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("CREDLOCK_PASSPHRASE", "correct horse")];
    assert_eq!(
        wasi_run(
            dir.path(),
            &["put", "acme"],
            r#"{"access_token":"p"}"#,
            &env
        )
        .code,
        0
    );
    let r = wasi_run(
        dir.path(),
        &["token", "acme"],
        "",
        &[("CREDLOCK_PASSPHRASE", "wrong")],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("wrong passphrase"), "{r:?}");
    assert_eq!(
        wasi_run(dir.path(), &["token", "acme"], "", &env).stdout,
        "p\n"
    );
}

#[test]
fn never_two_lock_protocols_on_one_store() {
    warm();
    // A store the native (flock) CLI made: the WASI build refuses it...
    let env = Env::new();
    env.ok(&["put", "acme"], r#"{"access_token":"native"}"#);
    let before = sha256_file(&env.store_file());
    let r = wasi_run(
        &env.store_dir(),
        &["put", "acme"],
        r#"{"access_token":"wasi"}"#,
        &[],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .contains("locks with lease files, which flock hosts do not see"),
        "{r:?}"
    );
    assert_eq!(sha256_file(&env.store_file()), before);
    // ...and a store the WASI build made: the native CLI refuses it.
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        wasi_run(
            dir.path(),
            &["put", "acme"],
            r#"{"access_token":"wasi"}"#,
            &[]
        )
        .code,
        0
    );
    let native = Env {
        envs: vec![("CREDLOCK_STORE".into(), dir.path().display().to_string())],
        dir: tempfile::tempdir().unwrap(),
    };
    let r = native.run(&["token", "acme"], "");
    assert_eq!(r.code, 8, "{r:?}");
    assert!(r.stderr.contains("lease"), "{r:?}");
}
