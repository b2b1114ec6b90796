//! Writes tests/vectors/*.json: store files made by this host, damaged in specific ways, and
//! the steps every host (Rust, Python, Node) must run on them with the expected results.
//! Run from the repository root: `cargo run -p credlock --example make_vectors`.
//! The files are committed; regenerate only when the format changes (FORMAT.md's version log).
//! `-- keyring` writes only the keyring vectors (needs the kernel keyring: `keyctl`).

use credlock::{keys::KeySources, Config, Credlock};
use serde_json::{json, Value};
use std::path::Path;

const ACCESS: &str = "vector-access-token-0001";
const PASSPHRASE: &str = "correct horse battery staple";

fn store(dir: &Path, passphrase: bool) -> Credlock {
    let mut c = Config::for_dir(dir);
    c.cache_dir = None;
    if passphrase {
        c.keys = KeySources {
            passphrase: Some(PASSPHRASE.to_string().into()),
            key_file: None,
            create_key_file: false,
            kdf: credlock::keys::KdfParams {
                m_cost_kib: 8 * 1024,
                t_cost: 1,
                p_cost: 1,
            },
            ..Default::default()
        };
    }
    Credlock::open(c).unwrap()
}

fn hex(b: &[u8]) -> String {
    format!(
        "hex:{}",
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    )
}

fn files(dir: &Path, store: &[u8]) -> Value {
    let mut f = json!({ "credentials.sealed": hex(store) });
    if let Ok(k) = std::fs::read_to_string(dir.join("key")) {
        f["key"] = json!(format!("text:{k}"));
    }
    f
}

fn write(name: &str, v: Value) {
    let path = format!("tests/vectors/{name}.json");
    std::fs::write(&path, serde_json::to_string_pretty(&v).unwrap() + "\n").unwrap();
    println!("wrote {path}");
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("shapes") {
        return token_shapes();
    }
    if std::env::args().nth(1).as_deref() == Some("attachments") {
        return attachments();
    }
    keyring_vectors();
    if std::env::args().nth(1).as_deref() == Some("keyring") {
        return;
    }
    token_shapes();
    attachments();
    let tmp = tempfile::tempdir().unwrap();
    let kdir = tmp.path().join("keyfile");
    let mut s = store(&kdir, false);
    s.put("acme", &json!({"access_token": ACCESS, "token_type": "Bearer", "expires_at": 4_102_444_800u64, "refresh_token": "vector-refresh-token", "scope": "api", "id_token": "x.y.z"}).to_string()).unwrap();
    s.put("beta", r#"{"access_token":"beta-1"}"#).unwrap();
    s.put("beta", r#"{"access_token":"beta-2"}"#).unwrap();
    s.put("old", r#"{"access_token":"old-1","expires_at":1000000000}"#)
        .unwrap();
    let good = std::fs::read(kdir.join("credentials.sealed")).unwrap();
    let header_len = u16::from_be_bytes([good[10], good[11]]) as usize;
    let f = |bytes: &[u8]| files(&kdir, bytes);
    let list = json!([{"tenant": "acme", "revision": 1}, {"tenant": "beta", "revision": 2}, {"tenant": "old", "revision": 1}]);

    write(
        "read-key-file",
        json!({
            "description": "a store sealed under a key file: read, list, expired without refresh, not found",
            "files": f(&good),
            "steps": [
                {"op": "token", "tenant": "acme", "min_valid_s": 60, "expect": {"token": ACCESS}},
                {"op": "token", "tenant": "beta", "min_valid_s": 0, "expect": {"token": "beta-2"}},
                {"op": "list", "expect": {"tenants": list}},
                {"op": "token", "tenant": "old", "min_valid_s": 0, "expect": {"error": "expired"}},
                {"op": "token", "tenant": "nobody", "expect": {"error": "not-found"}},
                {"op": "token", "tenant": "../etc", "expect": {"error": "invalid-tenant"}},
            ],
            "unchanged": true,
        }),
    );
    write(
        "write-merge",
        json!({
            "description": "a put adds a tenant and keeps every other one; a delete removes one",
            "files": f(&good),
            "steps": [
                {"op": "put", "tenant": "gamma", "response": {"access_token": "gamma-1", "expires_in": 3600}, "expect": {"revision": 1}},
                {"op": "put", "tenant": "beta", "response": {"access_token": "beta-3"}, "expect": {"revision": 3}},
                {"op": "delete", "tenant": "old", "expect": {"deleted": true}},
                {"op": "delete", "tenant": "old", "expect": {"deleted": false}},
                {"op": "list", "expect": {"tenants": [{"tenant": "acme", "revision": 1}, {"tenant": "beta", "revision": 3}, {"tenant": "gamma", "revision": 1}]}},
                {"op": "token", "tenant": "acme", "min_valid_s": 0, "expect": {"token": ACCESS}},
                {"op": "put", "tenant": "acme", "response": {"token_type": "Bearer"}, "expect": {"error": "invalid-token-response"}},
            ],
            "unchanged": false,
        }),
    );
    let mut body = good.clone();
    *body.last_mut().unwrap() ^= 1;
    let mut nonce = good.clone();
    nonce[header_len - 1] ^= 1;
    let mut version = good.clone();
    version[9] = 7;
    for (name, bytes, code, what) in [
        (
            "tampered-body",
            body,
            "corrupt",
            "the last byte of the ciphertext flipped",
        ),
        (
            "tampered-nonce",
            nonce,
            "corrupt",
            "a byte of the nonce (in the header, bound as AAD) flipped",
        ),
        (
            "unknown-version",
            version,
            "unsupported-version",
            "format version 7",
        ),
        (
            "truncated",
            good[..good.len() / 2].to_vec(),
            "corrupt",
            "the file cut in half",
        ),
        (
            "not-a-store",
            br#"{"acme":{"access_token":"x"}}"#.to_vec(),
            "not-a-store",
            "a plaintext JSON file where the store should be",
        ),
    ] {
        write(
            name,
            json!({
                "description": format!("{what}: every operation fails with {code} and nothing is written"),
                "files": f(&bytes),
                "steps": [
                    {"op": "token", "tenant": "acme", "expect": {"error": code}},
                    {"op": "list", "expect": {"error": code}},
                    {"op": "put", "tenant": "acme", "response": {"access_token": "new"}, "expect": {"error": code}},
                    {"op": "delete", "tenant": "beta", "expect": {"error": code}},
                ],
                "unchanged": true,
            }),
        );
    }
    let other = tmp.path().join("other");
    store(&other, false).init().unwrap();
    let mut wrong = f(&good);
    wrong["key"] = json!(format!(
        "text:{}",
        std::fs::read_to_string(other.join("key")).unwrap()
    ));
    write(
        "wrong-key-file",
        json!({
            "description": "a valid key file of another store: a key error, nothing written",
            "files": wrong,
            "steps": [
                {"op": "token", "tenant": "acme", "expect": {"error": "key"}},
                {"op": "put", "tenant": "acme", "response": {"access_token": "new"}, "expect": {"error": "key"}},
            ],
            "unchanged": true,
        }),
    );
    let mut no_key = f(&good);
    no_key.as_object_mut().unwrap().remove("key");
    write(
        "missing-key-file",
        json!({
            "description": "the key file is gone: a key error naming the slots, no new key is minted, nothing written",
            "files": no_key,
            "steps": [
                {"op": "token", "tenant": "acme", "expect": {"error": "key"}},
                {"op": "put", "tenant": "acme", "response": {"access_token": "new"}, "expect": {"error": "key"}},
            ],
            "unchanged": true,
            "absent_after": ["key"],
        }),
    );
    let pdir = tmp.path().join("passphrase");
    let mut p = store(&pdir, true);
    p.put(
        "acme",
        // An absolute expiry far in the future: a vector must not expire with the calendar.
        &json!({"access_token": ACCESS, "expires_at": 4_102_444_800u64}).to_string(),
    )
    .unwrap();
    let pstore = std::fs::read(pdir.join("credentials.sealed")).unwrap();
    write(
        "read-passphrase",
        json!({
            "description": "a store sealed under an argon2id passphrase slot (8 MiB, 1 pass)",
            "files": files(&pdir, &pstore),
            "passphrase": PASSPHRASE,
            "steps": [
                {"op": "token", "tenant": "acme", "min_valid_s": 0, "expect": {"token": ACCESS}},
                {"op": "list", "expect": {"tenants": [{"tenant": "acme", "revision": 1}]}},
            ],
            "unchanged": true,
        }),
    );
    write(
        "wrong-passphrase",
        json!({
            "description": "the wrong passphrase: a key error, nothing written",
            "files": files(&pdir, &pstore),
            "passphrase": "wrong horse",
            "steps": [
                {"op": "token", "tenant": "acme", "expect": {"error": "key"}},
                {"op": "put", "tenant": "acme", "response": {"access_token": "new"}, "expect": {"error": "key"}},
            ],
            "unchanged": true,
        }),
    );
}

/// A store whose only slot is a kernel-keyring slot. The vector carries the keyring entry
/// (its wrapping key), which a runner installs before the steps and removes after: the store
/// opens through the host's keyring code in every language.
fn keyring_vectors() {
    use credlock::oskeyring::{self, Backend};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("keyring");
    let mut c = Config::for_dir(&dir);
    c.cache_dir = None;
    c.keys = KeySources {
        key_file: None,
        create_key_file: false,
        keyring: Some(Backend::Keyutils),
        allow_volatile_only: true,
        ..Default::default()
    };
    let mut s = Credlock::open(c).unwrap();
    s.put("acme", &json!({"access_token": ACCESS, "token_type": "Bearer", "expires_at": 4_102_444_800u64, "refresh_token": "vector-refresh-token"}).to_string()).unwrap();
    let slots = s.slots().unwrap();
    assert_eq!(slots.len(), 1);
    let (backend, user) = credlock::keys::keyring_entry(&slots[0]).expect("a keyring slot");
    let timeout = std::time::Duration::from_secs(10);
    let secret = oskeyring::get(backend, &user, timeout).unwrap();
    oskeyring::delete(backend, &user, timeout).unwrap();
    let bytes = std::fs::read(dir.join("credentials.sealed")).unwrap();
    let entry = json!([{"backend": backend.name(), "user": user, "secret": hex(&secret)}]);
    write(
        "read-keyring",
        json!({
            "description": "a store whose only slot is in the kernel keyring (keyutils): install the entry, read, list",
            "files": files(&dir, &bytes),
            "keyring": entry,
            "steps": [
                {"op": "token", "tenant": "acme", "min_valid_s": 0, "expect": {"token": ACCESS}},
                {"op": "list", "expect": {"tenants": [{"tenant": "acme", "revision": 1}]}},
            ],
            "unchanged": true,
        }),
    );
    write(
        "keyring-entry-missing",
        json!({
            "description": "the same store with its keyring entry gone (a reboot): a key error, no key minted, nothing written",
            "files": files(&dir, &bytes),
            "steps": [
                {"op": "token", "tenant": "acme", "expect": {"error": "key"}},
                {"op": "put", "tenant": "acme", "response": {"access_token": "new"}, "expect": {"error": "key"}},
            ],
            "unchanged": true,
            "absent_after": ["key"],
        }),
    );
}

/// Attachments (`set-attachment`, `attachment`): kept beside the tokens, never changing
/// them; a tenant with attachments and no tokens has no token to serve. `-- attachments`
/// writes only this vector.
fn attachments() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("attachments");
    store(&dir, false).init().unwrap();
    let key = std::fs::read_to_string(dir.join("key")).unwrap();
    let client =
        r#"{"client_id":"mcp-client","redirect_uris":["http://127.0.0.1:33418/callback"]}"#;
    let steps = json!([
        // A client registers before its first login: the tenant exists, without tokens.
        {"op": "set-attachment", "tenant": "mcp", "name": "client-information", "value": client, "expect": {"revision": 1}},
        {"op": "attachment", "tenant": "mcp", "name": "client-information", "expect": {"value": client}},
        {"op": "token", "tenant": "mcp", "expect": {"error": "not-found"}},
        {"op": "list", "expect": {"tenants": [{"tenant": "mcp", "revision": 1}]}},
        // Tokens stored later keep the attachment; attachments do not change the revision.
        {"op": "put", "tenant": "mcp", "response": {"access_token": "mcp-1", "expires_at": 4_102_444_800u64}, "expect": {"revision": 2}},
        {"op": "set-attachment", "tenant": "mcp", "name": "code-verifier", "value": "v".repeat(43), "expect": {"revision": 2}},
        {"op": "put", "tenant": "mcp", "response": {"access_token": "mcp-2", "expires_at": 4_102_444_800u64}, "expect": {"revision": 3}},
        {"op": "token", "tenant": "mcp", "expect": {"token": "mcp-2"}},
        {"op": "attachment", "tenant": "mcp", "name": "client-information", "expect": {"value": client}},
        {"op": "set-attachment", "tenant": "mcp", "name": "code-verifier", "value": null, "expect": {"revision": 3}},
        {"op": "attachment", "tenant": "mcp", "name": "code-verifier", "expect": {"value": null}},
        {"op": "attachment", "tenant": "nobody", "name": "client-information", "expect": {"value": null}},
        // Hostile or oversized input is refused, naming what is wrong; nothing is stored.
        {"op": "set-attachment", "tenant": "mcp", "name": "../key", "value": "x", "expect": {"error": "invalid-attachment"}},
        {"op": "set-attachment", "tenant": "mcp", "name": "Client", "value": "x", "expect": {"error": "invalid-attachment"}},
        {"op": "set-attachment", "tenant": "mcp", "name": "big", "value": "x".repeat(64 * 1024 + 1), "expect": {"error": "invalid-attachment"}},
        {"op": "attachment", "tenant": "../etc", "name": "x", "expect": {"error": "invalid-tenant"}},
        // Removing the last attachment of a tenant without tokens removes the tenant.
        {"op": "set-attachment", "tenant": "reg-only", "name": "client-information", "value": client, "expect": {"revision": 1}},
        {"op": "set-attachment", "tenant": "reg-only", "name": "client-information", "value": null, "expect": {"revision": 1}},
        // A delete removes the attachments with the tenant.
        {"op": "delete", "tenant": "mcp", "expect": {"deleted": true}},
        {"op": "attachment", "tenant": "mcp", "name": "client-information", "expect": {"value": null}},
        {"op": "list", "expect": {"tenants": []}},
    ]);
    write(
        "attachments",
        json!({
            "description": "attachments kept beside a tenant's tokens: set before the first login, kept by later puts, removed with the tenant; bad names and sizes refused",
            "files": {"key": format!("text:{key}")},
            "steps": steps,
            "unchanged": false,
        }),
    );
}

/// Token expiries in the shapes other programs write them (README, "Token expiry"): each
/// honoured or refused. A key file and no store: the first `put` creates it. `-- shapes`
/// writes only this vector.
fn token_shapes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("shapes");
    store(&dir, false).init().unwrap();
    let key = std::fs::read_to_string(dir.join("key")).unwrap();
    let mut steps = Vec::new();
    let mut ok = |tenant: &str, response: Value, expires: Value| {
        steps.push(
            json!({"op": "put", "tenant": tenant, "response": response, "expect": {"revision": 1}}),
        );
        steps
            .push(json!({"op": "expires", "tenant": tenant, "expect": {"expires_at_ms": expires}}));
    };
    // Go's oauth2.Token marshalled to JSON: `expiry` was once dropped.
    ok(
        "go-past",
        json!({"access_token": "go-past-1", "token_type": "Bearer", "refresh_token": "r", "expiry": "2020-01-01T00:00:00Z"}),
        json!(1_577_836_800_000u64),
    );
    ok(
        "go-future",
        json!({"access_token": "go-future-1", "token_type": "Bearer", "expiry": "2099-01-01T00:00:00.123456789+01:00"}),
        json!(4_070_905_200_123u64),
    );
    ok(
        "go-zero",
        json!({"access_token": "go-zero-1", "expiry": "0001-01-01T00:00:00Z"}),
        Value::Null,
    );
    // Go's `expires_in` (since oauth2 v0.14) beside `expiry`: the saved absolute time wins.
    ok(
        "go-both",
        json!({"access_token": "go-both-1", "expiry": "2020-01-01T00:00:00Z", "expires_in": 3600}),
        json!(1_577_836_800_000u64),
    );
    // JavaScript's Date.now() milliseconds: were read as seconds (the year 131971).
    ok(
        "js-ms",
        json!({"access_token": "js-1", "expires_at": 4_102_444_800_000u64}),
        json!(4_102_444_800_000u64),
    );
    ok(
        "rfc3339",
        json!({"access_token": "rfc-1", "expires_at": "2099-01-01T00:00:00Z"}),
        json!(4_070_908_800_000u64),
    );
    ok(
        "seconds",
        json!({"access_token": "s-1", "expires_at": 4_102_444_800u64}),
        json!(4_102_444_800_000u64),
    );
    ok(
        "float",
        json!({"access_token": "f-1", "expires_at": 4_102_444_800.5}),
        json!(4_102_444_800_500u64),
    );
    ok(
        "camel",
        json!({"access_token": "c-1", "expiresAt": 4_102_444_800_000u64}),
        json!(4_102_444_800_000u64),
    );
    ok(
        "azure",
        json!({"access_token": "az-1", "expires_on": "4102444800"}),
        json!(4_102_444_800_000u64),
    );
    ok("none", json!({"access_token": "n-1"}), Value::Null);
    steps.push(json!({"op": "token", "tenant": "go-past", "min_valid_s": 0, "expect": {"error": "expired"}}));
    steps.push(json!({"op": "token", "tenant": "go-future", "min_valid_s": 60, "expect": {"token": "go-future-1"}}));
    steps.push(json!({"op": "token", "tenant": "go-zero", "min_valid_s": 60, "expect": {"token": "go-zero-1"}}));
    for (tenant, response) in [
        // Two expiries that disagree.
        (
            "disagree",
            json!({"access_token": "x", "expiry": "2020-01-01T00:00:00Z", "expires_at": 4_102_444_800u64}),
        ),
        // Later than `expires_in` allows.
        (
            "too-late",
            json!({"access_token": "x", "expires_at": 4_102_444_800u64, "expires_in": 60}),
        ),
        // A field named like an expiry that credlock does not understand.
        (
            "unknown",
            json!({"access_token": "x", "expires": 4_102_444_800u64}),
        ),
        (
            "unreadable",
            json!({"access_token": "x", "expires_at": "tomorrow"}),
        ),
        (
            "microseconds",
            json!({"access_token": "x", "expiresAt": 4_102_444_800_000_000u64}),
        ),
        ("negative", json!({"access_token": "x", "expires_at": -1})),
    ] {
        steps.push(json!({"op": "put", "tenant": tenant, "response": response, "expect": {"error": "invalid-token-response"}}));
        steps.push(json!({"op": "expires", "tenant": tenant, "expect": {"error": "not-found"}}));
    }
    write(
        "token-shapes",
        json!({
            "description": "token expiries as other programs write them (Go's oauth2.Token, JavaScript milliseconds, RFC 3339, Azure), each honoured or refused; nothing stored with a wrong meaning",
            "files": {"key": format!("text:{key}")},
            "steps": steps,
            "unchanged": false,
        }),
    );
}
