//! Quick figures (not a timed test): the in-process `token` call through the component and
//! through the native core, the one-shot `credlock token` process, component load costs and
//! size. Run: `cargo bench -p credlock --bench quick`.

use credlock::{Backend, Config, Credlock};
use std::time::{Duration, Instant};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn per_call(store: &mut Credlock, n: usize) -> Duration {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let tok = store.token("acme", 60_000).expect("token");
        samples.push(t.elapsed());
        assert_eq!(tok.token, "bench-token");
    }
    median(samples)
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    let mut config = Config::for_dir(&store_dir);
    config.cache_dir = Some(dir.path().join("cache"));

    let t = Instant::now();
    let mut wasm = Credlock::open(config.clone()).unwrap();
    let first_open = t.elapsed();
    wasm.put(
        "acme",
        r#"{"access_token":"bench-token","expires_in":3600}"#,
    )
    .unwrap();
    let t = Instant::now();
    let rt = credlock::component::Runtime::load(Some(&dir.path().join("cache"))).unwrap();
    let embedded_load = t.elapsed();
    assert_eq!(rt.loaded_from, credlock::component::LoadedFrom::Embedded);

    let mut native_cfg = config.clone();
    native_cfg.backend = Backend::Native;
    let mut native = Credlock::open(native_cfg).unwrap();

    let n = 2000;
    per_call(&mut wasm, 200);
    let wasm_call = per_call(&mut wasm, n);
    per_call(&mut native, 200);
    let native_call = per_call(&mut native, n);

    let bin = env!("CARGO_BIN_EXE_credlock");
    let mut oneshot = Vec::new();
    for _ in 0..60 {
        let t = Instant::now();
        let out = std::process::Command::new(bin)
            .args(["token", "acme"])
            .env("CREDLOCK_STORE", &store_dir)
            .env("XDG_CACHE_HOME", dir.path().join("xdg-cache"))
            .output()
            .unwrap();
        oneshot.push(t.elapsed());
        assert!(out.status.success());
    }
    oneshot.remove(0); // the first run reads the binary from disk
    println!("| figure | value |");
    println!("|---|---|");
    println!(
        "| component size | {} bytes |",
        credlock::component::COMPONENT_WASM.len()
    );
    println!(
        "| first open (embedded artifact) | {:.1} ms |",
        first_open.as_secs_f64() * 1e3
    );
    println!(
        "| runtime load from the embedded artifact | {:.2} ms |",
        embedded_load.as_secs_f64() * 1e3
    );
    println!(
        "| in-process token, component (median of {n}) | {:.1} µs |",
        wasm_call.as_secs_f64() * 1e6
    );
    println!(
        "| in-process token, native core (median of {n}) | {:.1} µs |",
        native_call.as_secs_f64() * 1e6
    );
    println!(
        "| one-shot `credlock token` process (median of 59) | {:.2} ms |",
        median(oneshot).as_secs_f64() * 1e3
    );
}
