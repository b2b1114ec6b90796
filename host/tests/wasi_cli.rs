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
    // The store directory is a private temp dir: a key file there is as safe as the dir.
    // (tests/wasmtime_cli.rs shows the refusal without this.)
    b.env("CREDLOCK_ALLOW_UNPROTECTED_KEY_FILE", "1");
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

// ----- maintenance: slots, rekey, recover, quarantine, import -----
// The WASI platform makes key-file and passphrase slots (no OS keyring is reachable), re-makes
// each from the same source on rekey or refuses, and moves unreadable files aside by linking
// them under a new name, never replacing one.

/// The slot kinds `slot list` printed (its second column).
fn slot_kinds(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(1).map(str::to_owned))
        .collect()
}

fn flip_last_byte(path: &Path) {
    let mut b = std::fs::read(path).unwrap();
    *b.last_mut().unwrap() ^= 1;
    std::fs::write(path, b).unwrap();
}

#[test]
fn slots_are_added_removed_and_rekeyed_from_the_same_sources() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("credentials.sealed");
    let put = wasi_run(
        dir.path(),
        &["put", "acme"],
        r#"{"access_token":"a1"}"#,
        &[],
    );
    assert_eq!(put.code, 0, "{put:?}");
    let r = wasi_run(dir.path(), &["slot", "list"], "", &[]);
    assert_eq!(
        (r.code, slot_kinds(&r.stdout)),
        (0, vec!["key-file".into()]),
        "{r:?}"
    );
    assert!(r.stdout.contains("key file "), "{r:?}");

    // A passphrase slot from CREDLOCK_NEW_PASSPHRASE; a second key-file slot for the same
    // file, and any keyring, are refused and change nothing.
    let r = wasi_run(
        dir.path(),
        &["slot", "add", "passphrase"],
        "",
        &[("CREDLOCK_NEW_PASSPHRASE", "pw")],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(slot_kinds(&r.stdout), ["key-file", "passphrase"], "{r:?}");
    assert!(r.stdout.contains("argon2id m=64 MiB t=3 p=1"), "{r:?}");
    let before = sha256_file(&store);
    let r = wasi_run(dir.path(), &["slot", "add", "passphrase"], "", &[]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("CREDLOCK_NEW_PASSPHRASE"), "{r:?}");
    let r = wasi_run(dir.path(), &["slot", "add", "key-file"], "", &[]);
    assert!(
        r.code == 1 && r.stderr.contains("already has a slot for this key file"),
        "{r:?}"
    );
    let r = wasi_run(dir.path(), &["slot", "add", "keyring"], "", &[]);
    assert!(r.code == 1 && r.stderr.contains("OS keyring"), "{r:?}");
    assert_eq!(sha256_file(&store), before);
    let r = wasi_run(dir.path(), &["slot", "list", "--json"], "", &[]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v[1]["kind"], "passphrase");
    assert_eq!(v[1]["durable"], true);

    // Rekey re-makes the passphrase slot only with the passphrase that opens it.
    let r = wasi_run(dir.path(), &["rekey"], "", &[]);
    assert!(
        r.code == 1
            && r.stderr
                .contains("passphrase: the passphrase was not given"),
        "{r:?}"
    );
    let r = wasi_run(
        dir.path(),
        &["rekey"],
        "",
        &[("CREDLOCK_PASSPHRASE", "not it")],
    );
    assert!(
        r.code == 1 && r.stderr.contains("wrong passphrase"),
        "{r:?}"
    );
    assert_eq!(sha256_file(&store), before);
    let pass = [("CREDLOCK_PASSPHRASE", "pw")];
    let r = wasi_run(dir.path(), &["rekey"], "", &pass);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("under a new data key"), "{r:?}");
    assert!(!dir.path().join("credentials.sealed.bak").exists());
    // Either source alone still opens it.
    let r = wasi_run(dir.path(), &["token", "acme"], "", &[]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "a1\n"), "{r:?}");
    let no_key_file = [
        ("CREDLOCK_PASSPHRASE", "pw"),
        ("CREDLOCK_KEY_FILE", "/store/absent"),
    ];
    let r = wasi_run(dir.path(), &["token", "acme"], "", &no_key_file);
    assert_eq!((r.code, r.stdout.as_str()), (0, "a1\n"), "{r:?}");
    // Without its key file, the key-file slot cannot be re-made: refused, not dropped.
    let r = wasi_run(dir.path(), &["rekey"], "", &no_key_file);
    assert!(
        r.code == 1 && r.stderr.contains("key-file: the key file"),
        "{r:?}"
    );

    // Remove the key-file slot; the last slot stays.
    let r = wasi_run(dir.path(), &["slot", "remove", "0"], "", &pass);
    assert_eq!(
        (r.code, slot_kinds(&r.stdout)),
        (0, vec!["passphrase".into()]),
        "{r:?}"
    );
    let r = wasi_run(dir.path(), &["slot", "remove", "0"], "", &pass);
    assert!(r.code == 1 && r.stderr.contains("only key slot"), "{r:?}");
    let r = wasi_run(dir.path(), &["token", "acme"], "", &[]);
    assert_eq!(r.code, 1, "the key file no longer opens it: {r:?}");
    let r = wasi_run(dir.path(), &["slot", "frob"], "", &[]);
    assert!(r.code == 1 && r.stderr.contains("usage"), "{r:?}");
}

#[test]
fn recover_restores_the_backup_and_quarantine_moves_an_unreadable_store_aside() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("credentials.sealed");
    for token in ["first", "second"] {
        let json = format!(r#"{{"access_token":"{token}"}}"#);
        assert_eq!(wasi_run(dir.path(), &["put", "acme"], &json, &[]).code, 0);
    }
    // A readable store is neither recovered nor quarantined without force.
    let r = wasi_run(dir.path(), &["recover"], "", &[]);
    assert!(r.code == 1 && r.stderr.contains("the store opens"), "{r:?}");
    let r = wasi_run(dir.path(), &["quarantine"], "", &[]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(corrupt_files(dir.path()).is_empty());

    flip_last_byte(&store);
    let damaged = std::fs::read(&store).unwrap();
    let r = wasi_run(dir.path(), &["token", "acme"], "", &[]);
    assert!(
        r.code == 1 && r.stderr.contains("credlock recover"),
        "{r:?}"
    );
    let r = wasi_run(dir.path(), &["recover"], "", &[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr
            .contains("moved the store file aside to credentials.sealed.corrupt-"),
        "{r:?}"
    );
    assert!(
        r.stderr
            .contains("restored the backup: 1 tenant(s), generation 4"),
        "{r:?}"
    );
    let aside = corrupt_files(dir.path());
    assert_eq!(aside.len(), 1);
    assert_eq!(std::fs::read(dir.path().join(&aside[0])).unwrap(), damaged);
    let r = wasi_run(dir.path(), &["token", "acme"], "", &[]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "first\n"), "{r:?}");

    // Damaged again: quarantine moves it aside under another name, byte for byte, and a
    // new store can be made.
    flip_last_byte(&store);
    let damaged = std::fs::read(&store).unwrap();
    let r = wasi_run(dir.path(), &["quarantine"], "", &[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!store.exists());
    let aside = corrupt_files(dir.path());
    assert_eq!(aside.len(), 2, "{aside:?}");
    assert!(aside
        .iter()
        .any(|n| std::fs::read(dir.path().join(n)).unwrap() == damaged));
    // The backup is still there and opens: no new store is started beside it, and
    // quarantine leaves it for recover.
    let r = wasi_run(dir.path(), &["quarantine"], "", &[]);
    assert_eq!(r.code, 1, "nothing left to quarantine: {r:?}");
    let r = wasi_run(
        dir.path(),
        &["put", "acme"],
        r#"{"access_token":"new"}"#,
        &[],
    );
    assert_eq!(r.code, 1, "a new store beside a backup: {r:?}");
    assert!(r.stderr.contains("backup"), "{r:?}");
    let r = wasi_run(dir.path(), &["recover"], "", &[]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = wasi_run(
        dir.path(),
        &["put", "acme"],
        r#"{"access_token":"new"}"#,
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
}

#[test]
fn import_reads_the_file_through_wasi_in_one_write() {
    let dir = tempfile::tempdir().unwrap();
    let auth = dir.path().join("auth.json");
    std::fs::write(
        &auth,
        r#"{"anthropic": {"type": "oauth", "access": "at-1", "refresh": "rt-1", "expires": 4102444800000},
            "openai": {"type": "api", "key": "sk-not-a-token"}}"#,
    )
    .unwrap();
    // Something was skipped: the source is kept even with --remove-source.
    let r = wasi_run(
        dir.path(),
        &["import", "--map", "/store/auth.json", "--remove-source"],
        "",
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains("imported 1 tenant(s): anthropic"),
        "{r:?}"
    );
    assert!(
        r.stderr.contains(r#"skipped "openai""#) && !r.stderr.contains("sk-not"),
        "{r:?}"
    );
    assert!(auth.exists());
    let r = wasi_run(dir.path(), &["token", "anthropic"], "", &[]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "at-1\n"), "{r:?}");
    // Existing tenants are a conflict unless --replace; nothing is imported.
    let r = wasi_run(
        dir.path(),
        &["import", "--map", "/store/auth.json"],
        "",
        &[],
    );
    assert!(r.code == 1 && r.stderr.contains("anthropic"), "{r:?}");
    // One named token response, removed once durable; and from standard input.
    let one = dir.path().join("one.json");
    std::fs::write(&one, r#"{"access_token":"solo","expires_in":3600}"#).unwrap();
    let r = wasi_run(
        dir.path(),
        &["import", "solo", "/store/one.json", "--remove-source"],
        "",
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!one.exists(), "{r:?}");
    let r = wasi_run(
        dir.path(),
        &["import", "piped", "-"],
        r#"{"access_token":"p"}"#,
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let r = wasi_run(dir.path(), &["import", "x", "/elsewhere/t.json"], "", &[]);
    assert!(r.code == 1 && r.stderr.contains("preopened"), "{r:?}");
    let r = wasi_run(dir.path(), &["import", "/store/auth.json"], "", &[]);
    assert!(r.code == 1 && r.stderr.contains("usage"), "{r:?}");
}
