//! Runs every shared test vector (tests/vectors/*.json) through this host's component. The
//! Python and Node hosts run the same files (tests/vectors/README.md).

use credlock::{keys::KeySources, Config, Credlock, Error};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

fn vectors() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors");
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    v.sort();
    v
}

fn decode(value: &str) -> Vec<u8> {
    if let Some(h) = value.strip_prefix("hex:") {
        (0..h.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
            .collect()
    } else {
        value
            .strip_prefix("text:")
            .expect("hex: or text:")
            .as_bytes()
            .to_vec()
    }
}

fn outcome(r: Result<Value, Error>) -> Value {
    match r {
        Ok(v) => v,
        Err(Error::Store(e)) => json!({"error": e.code()}),
        Err(Error::Runtime(e)) => panic!("runtime error: {e}"),
    }
}

const KEYRING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Put a vector's `keyring` entries in place (tests/vectors/README.md); they are removed
/// after its steps.
fn install_keyring_entries(v: &Value) -> Vec<(credlock::oskeyring::Backend, String)> {
    let mut installed = Vec::new();
    for e in v["keyring"].as_array().into_iter().flatten() {
        let backend = credlock::oskeyring::Backend::parse(e["backend"].as_str().unwrap())
            .expect("a known keyring backend");
        let user = e["user"].as_str().unwrap().to_owned();
        credlock::oskeyring::set(
            backend,
            &user,
            &decode(e["secret"].as_str().unwrap()),
            KEYRING_TIMEOUT,
        )
        .expect("installing the vector's keyring entry (the kernel keyring: keyctl)");
        installed.push((backend, user));
    }
    installed
}

#[test]
fn every_vector_passes() {
    let files = vectors();
    assert!(
        files.len() >= 10,
        "expected the shared vectors, found {}",
        files.len()
    );
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store_dir = dir.path().join("store");
        std::fs::create_dir(&store_dir).unwrap();
        for (fname, contents) in v["files"].as_object().unwrap() {
            // Owner-only, as credlock makes them: a key file others can read is refused.
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(store_dir.join(fname))
                .and_then(|mut f| {
                    std::io::Write::write_all(&mut f, &decode(contents.as_str().unwrap()))
                })
                .unwrap();
        }
        let before = std::fs::read(store_dir.join("credentials.sealed")).ok();
        let mut config = Config::for_dir(&store_dir);
        config.cache_dir = None;
        if let Some(p) = v["passphrase"].as_str() {
            config.keys = KeySources {
                passphrase: Some(p.to_string().into()),
                key_file: Some(store_dir.join("key")),
                create_key_file: false,
                kdf: Default::default(),
                ..Default::default()
            };
        }
        let entries = install_keyring_entries(&v);
        let mut s = Credlock::open(config).unwrap();
        for (i, step) in v["steps"].as_array().unwrap().iter().enumerate() {
            let tenant = step["tenant"].as_str().unwrap_or("");
            let got = match step["op"].as_str().unwrap() {
                "token" => outcome(s.token(tenant, step["min_valid_s"].as_u64().unwrap_or(60) * 1000).map(|t| json!({"token": t.token}))),
                "list" => outcome(s.list().map(|l| json!({"tenants": l.iter().map(|t| json!({"tenant": t.tenant, "revision": t.revision})).collect::<Vec<_>>()}))),
                "put" => outcome(s.put(tenant, &step["response"].to_string()).map(|r| json!({"revision": r.revision}))),
                "delete" => outcome(s.delete(tenant).map(|d| json!({"deleted": d}))),
                "attachment" => outcome(s.attachment(tenant, step["name"].as_str().unwrap()).map(|v| json!({"value": v}))),
                "set-attachment" => outcome(s.set_attachment(tenant, step["name"].as_str().unwrap(), step["value"].as_str()).map(|r| json!({"revision": r.revision}))),
                "expires" => outcome(s.list().map(|l| match l.iter().find(|t| t.tenant == tenant) {
                    Some(t) => json!({"expires_at_ms": t.expires_at_ms}),
                    None => json!({"error": "not-found"}),
                })),
                other => panic!("{name}: unknown op {other}"),
            };
            assert_eq!(got, step["expect"], "{name}, step {i} ({})", step["op"]);
        }
        if v["unchanged"] == json!(true) {
            assert_eq!(
                std::fs::read(store_dir.join("credentials.sealed")).ok(),
                before,
                "{name}: the store changed"
            );
        }
        for (backend, user) in entries {
            credlock::oskeyring::delete(backend, &user, KEYRING_TIMEOUT).unwrap();
        }
        for f in v["absent_after"].as_array().into_iter().flatten() {
            assert!(
                !store_dir.join(f.as_str().unwrap()).exists(),
                "{name}: {f} was created"
            );
        }
    }
}
