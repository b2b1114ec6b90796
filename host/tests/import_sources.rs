//! `credlock import TENANT FILE` on the files the tools users already have, through the real
//! CLI: each kind detected (and forced with --from), its expiry and refresh settings kept,
//! the parts of a file that are not the tenant's tokens reported and the file kept; a
//! damaged file is an error that names the kind, and the store is left exactly as it was.

mod common;
use common::*;
use serde_json::{json, Value};

/// A JWT carrying `exp` (unsigned: credlock reads `exp` to refresh early, nothing else).
fn jwt(exp: u64) -> String {
    // Unpadded base64url (RFC 4648 §5).
    let b64 = |v: Value| {
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let bytes = v.to_string().into_bytes();
        let mut out = String::new();
        for c in bytes.chunks(3) {
            let n = c
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
            for i in 0..=c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            }
        }
        out
    };
    format!(
        "{}.{}.fake-signature",
        b64(json!({"alg": "RS256", "typ": "JWT"})),
        b64(json!({"exp": exp, "sub": "user-fake"}))
    )
}

fn status(env: &Env, tenant: &str) -> Value {
    let v: Value = serde_json::from_str(&env.ok(&["status", tenant, "--json"], "")).unwrap();
    v[0].clone()
}

/// One tool's file: imported by detection, with what `status` must then say.
struct Sample {
    kind: &'static str,
    file: Value,
    expires_at_ms: Option<u64>,
    /// How far `expires_at_ms` may be off: `expires_in` beside an absolute time counts from
    /// the file's write (less a second for the server's rounding), and the earlier wins.
    within_ms: u64,
    token_endpoint: Option<&'static str>,
    skipped: &'static [&'static str],
}

fn samples() -> Vec<Sample> {
    // As Go's oauth2 (v0.14 and later) writes a token it just got: `expiry` and, beside it,
    // the `expires_in` it was computed from.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let expiry_ms = now_ms / 1000 * 1000 + 3_599_000;
    let expiry = credlock_core::expiry::rfc3339(expiry_ms).replace('Z', ".5+00:00");
    vec![
        Sample {
            kind: "go-oauth2",
            file: json!({"access_token": "go-at", "token_type": "Bearer", "refresh_token": "go-rt",
                "expiry": expiry, "expires_in": 3599}),
            expires_at_ms: Some(expiry_ms + 500),
            within_ms: 5_000,
            token_endpoint: None,
            skipped: &[],
        },
        Sample {
            kind: "claude-code",
            file: json!({"claudeAiOauth": {"accessToken": "sk-ant-oat01-fake",
                "refreshToken": "sk-ant-ort01-fake", "expiresAt": 4_102_444_800_000u64,
                "scopes": ["user:inference", "user:profile"], "subscriptionType": "max"}}),
            expires_at_ms: Some(4_102_444_800_000),
            within_ms: 0,
            token_endpoint: None,
            skipped: &[],
        },
        Sample {
            kind: "codex",
            file: json!({"OPENAI_API_KEY": "sk-proj-fake", "tokens": {"id_token": jwt(4_102_444_800),
                "access_token": jwt(4_102_444_000), "refresh_token": "rt-fake",
                "account_id": "acct-fake"}, "last_refresh": "2026-12-01T09:00:00.123Z"}),
            expires_at_ms: Some(4_102_444_000_000),
            within_ms: 0,
            token_endpoint: None,
            skipped: &["OPENAI_API_KEY"],
        },
        Sample {
            kind: "google-adc",
            file: json!({"type": "authorized_user", "client_id": "fake.apps.googleusercontent.com",
                "client_secret": "d-fake-secret", "refresh_token": "1//fake-refresh",
                "quota_project_id": "fake-project", "universe_domain": "googleapis.com"}),
            expires_at_ms: Some(0),
            within_ms: 0,
            token_endpoint: Some("https://oauth2.googleapis.com/token"),
            skipped: &[],
        },
        Sample {
            kind: "mcp",
            file: json!({"access_token": "mcp-at", "token_type": "Bearer", "refresh_token": "mcp-rt",
                "expires_at": 4_102_444_800u64, "scope": "mcp:tools", "issuer": "https://as.example"}),
            expires_at_ms: Some(4_102_444_800_000),
            within_ms: 0,
            token_endpoint: None,
            skipped: &[],
        },
        Sample {
            kind: "rmcp",
            file: json!({"client_id": "rmcp-client", "token_response": {"access_token": "rmcp-at",
                "token_type": "bearer", "expires_in": 3600, "refresh_token": "rmcp-rt"},
                "granted_scopes": ["mcp"], "token_received_at": 1_790_000_000u64}),
            expires_at_ms: Some(1_790_000_000_000 + 3_599_000),
            within_ms: 0,
            token_endpoint: None,
            skipped: &[],
        },
    ]
}

#[test]
fn each_tools_file_is_detected_imported_and_reported() {
    warm();
    let env = Env::new();
    env.ok(&["init"], "");
    for s in samples() {
        let path = env.dir.path().join(format!("{}.json", s.kind));
        std::fs::write(&path, s.file.to_string()).unwrap();
        let r = env.run(&["import", s.kind, &path.display().to_string()], "");
        assert_eq!(r.code, 0, "{}: {r:?}", s.kind);
        assert!(
            r.stderr
                .contains(&format!("imported 1 tenant(s): {}", s.kind)),
            "{}: {r:?}",
            s.kind
        );
        for part in s.skipped {
            assert!(r.stderr.contains(&format!("skipped {part:?}")), "{r:?}");
        }
        // No secret of the file reaches the output.
        for secret in ["fake", "-at\"", "-rt"] {
            assert!(!r.stderr.contains(secret), "{}: {r:?}", s.kind);
        }
        let st = status(&env, s.kind);
        let got = st["expires_at_ms"].as_u64();
        let want = s.expires_at_ms;
        assert!(
            got.zip(want)
                .is_some_and(|(g, w)| g.abs_diff(w) <= s.within_ms)
                || got == want,
            "{}: expires_at_ms {got:?}, want {want:?}",
            s.kind
        );
        assert_eq!(st["token_endpoint"], json!(s.token_endpoint), "{}", s.kind);
        assert_eq!(st["has_refresh_token"], true, "{}", s.kind);
        if s.token_endpoint.is_none() {
            assert!(
                r.stderr.contains("cannot be refreshed (no token endpoint)"),
                "{}: {r:?}",
                s.kind
            );
        }
        // Forcing the kind that was detected imports the same.
        let again = env.run(
            &[
                "import",
                "--replace",
                "--from",
                s.kind,
                s.kind,
                &path.display().to_string(),
            ],
            "",
        );
        assert_eq!(again.code, 0, "{}: {again:?}", s.kind);
        assert_eq!(status(&env, s.kind)["expires_at_ms"].as_u64(), got);
    }
    // What the tokens are for is served as they were written; the refresh-only tenant
    // (Google's) never serves an empty token (its refresh would go to Google: not here).
    assert_eq!(env.ok(&["token", "claude-code"], ""), "sk-ant-oat01-fake\n");
    assert_eq!(env.ok(&["token", "go-oauth2"], ""), "go-at\n");
    assert_eq!(
        status(&env, "claude-code")["scope"],
        "user:inference user:profile"
    );
    assert_eq!(status(&env, "rmcp")["client_id"], "rmcp-client");
    // The file with an API key beside the tokens is kept by --remove-source.
    let codex = env.dir.path().join("codex.json");
    let r = env.run(
        &[
            "import",
            "--replace",
            "--remove-source",
            "codex",
            &codex.display().to_string(),
        ],
        "",
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("kept"), "{r:?}");
    assert!(codex.exists());
}

#[test]
fn an_msal_cache_imports_one_account_chosen_with_account() {
    warm();
    let env = Env::new();
    env.ok(&["init"], "");
    let cred = |kind: &str, home: &str, secret: &str, extra: Value| {
        let mut v = json!({"home_account_id": home, "environment": "login.microsoftonline.com",
            "credential_type": kind, "client_id": "04b07795-fake", "secret": secret});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        v
    };
    let at_extra = json!({"realm": "tenant-fake", "target": "https://management.core.windows.net//.default",
        "cached_at": "4102440000", "expires_on": "4102443600", "extended_expires_on": "4102447200"});
    let cache = json!({
        "AccessToken": {
            "a-key": cred("AccessToken", "alice.tid", "alice-at-fake", at_extra.clone()),
            "b-key": cred("AccessToken", "bob.tid", "bob-at-fake", at_extra),
        },
        "RefreshToken": {
            "a-rt": cred("RefreshToken", "alice.tid", "alice-rt-fake", json!({"family_id": "1"})),
            "b-rt": cred("RefreshToken", "bob.tid", "bob-rt-fake", json!({})),
        },
        "Account": {
            "a": {"home_account_id": "alice.tid", "environment": "login.microsoftonline.com",
                "realm": "tenant-fake", "local_account_id": "alice", "username": "alice@example.com",
                "authority_type": "MSSTS"},
            "b": {"home_account_id": "bob.tid", "environment": "login.microsoftonline.com",
                "realm": "tenant-fake", "local_account_id": "bob", "username": "bob@example.com",
                "authority_type": "MSSTS"},
        },
        "IdToken": {}, "AppMetadata": {}
    });
    let path = env.dir.path().join("msal_token_cache.json");
    std::fs::write(&path, cache.to_string()).unwrap();
    let p = path.display().to_string();
    let before = sha256_file(&env.store_file());
    let r = env.run(&["import", "azure", &p], "");
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr
            .contains("not an MSAL token cache: it holds several accounts")
            && r.stderr.contains("alice@example.com/04b07795-fake"),
        "{r:?}"
    );
    assert_eq!(sha256_file(&env.store_file()), before);
    let r = env.run(
        &[
            "import",
            "--account",
            "alice@example.com",
            "--remove-source",
            "azure",
            &p,
        ],
        "",
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr
            .contains("skipped \"bob@example.com/04b07795-fake\""),
        "{r:?}"
    );
    assert!(path.exists(), "the other account's tokens stay in the file");
    let st = status(&env, "azure");
    assert_eq!(st["expires_at_ms"], 4_102_443_600_000u64);
    assert_eq!(
        st["token_endpoint"],
        "https://login.microsoftonline.com/tenant-fake/oauth2/v2.0/token"
    );
    assert_eq!(st["client_id"], "04b07795-fake");
    assert_eq!(env.ok(&["token", "azure"], ""), "alice-at-fake\n");
}

#[test]
fn a_damaged_file_names_its_kind_and_stores_nothing() {
    warm();
    let env = Env::new();
    env.ok(
        &["put", "keep"],
        r#"{"access_token":"kept","expires_at":4102444800}"#,
    );
    let before = sha256_file(&env.store_file());
    for (file, from, says) in [
        (
            json!({"claudeAiOauth": {"refreshToken": "r"}}),
            None,
            "not Claude Code's .credentials.json: `claudeAiOauth.accessToken` is missing",
        ),
        (
            json!({"claudeAiOauth": {"accessToken": "a", "expiresAt": "tomorrow"}}),
            None,
            "`claudeAiOauth.expiresAt` is not a number of milliseconds",
        ),
        (
            json!({"tokens": {"refresh_token": "r"}, "last_refresh": "2026-01-01T00:00:00Z"}),
            None,
            "not Codex CLI's auth.json: `tokens.access_token` is missing",
        ),
        (
            json!({"tokens": {"access_token": "a"}, "last_refresh": 5}),
            None,
            "`last_refresh` is not an RFC 3339 time",
        ),
        (
            json!({"type": "authorized_user", "client_id": "c", "refresh_token": "r"}),
            None,
            "not Google application default credentials: `client_secret` is missing",
        ),
        (
            json!({"type": "service_account", "client_email": "x@y", "private_key": "k"}),
            None,
            "\"service_account\", not a user's tokens",
        ),
        (
            json!({"client_id": "c", "token_response": null}),
            None,
            "not rmcp StoredCredentials: `token_response` is empty",
        ),
        (
            json!({"client_id": "c", "token_response": {"access_token": 5}}),
            None,
            "`access_token` is not a string",
        ),
        (
            json!({"AccessToken": {"k": {"secret": "s"}}}),
            None,
            "not an MSAL token cache: a credential has no `home_account_id`",
        ),
        (
            json!({"access_token": "a"}),
            Some("go-oauth2"),
            "not Go's oauth2.Token JSON: `expiry` is missing",
        ),
        (
            json!({"access_token": "a", "expiry": "2020-13-01T00:00:00Z"}),
            None,
            "`expiry` is not a time credlock can read",
        ),
        (
            json!({"access_token": "a"}),
            Some("claude-code"),
            "not Claude Code's .credentials.json: `claudeAiOauth` is missing",
        ),
    ] {
        let path = env.dir.path().join("damaged.json");
        std::fs::write(&path, file.to_string()).unwrap();
        let p = path.display().to_string();
        let mut args = vec!["import", "t"];
        if let Some(k) = from {
            args.splice(1..1, ["--from", k]);
        }
        args.push(&p);
        let r = env.run(&args, "");
        assert_eq!(r.code, 2, "{file}: {r:?}");
        assert!(r.stderr.contains(says), "{file}: {r:?}");
        assert!(r.stderr.contains("hint: "), "{r:?}");
        assert_eq!(
            sha256_file(&env.store_file()),
            before,
            "{file}: the store changed"
        );
    }
    let r = env.run(
        &["import", "--from", "gcloud", "t", "-"],
        r#"{"access_token":"a"}"#,
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr
            .contains("the kinds are token, go-oauth2, claude-code"),
        "{r:?}"
    );
    assert_eq!(sha256_file(&env.store_file()), before);
}

/// A token saved with only `expires_in` was received no later than its file was written: a
/// day-old file's one-hour token is expired, not valid for another hour.
#[test]
fn expires_in_counts_from_the_files_mtime() {
    warm();
    let env = Env::new();
    let path = env.dir.path().join("old.json");
    std::fs::write(&path, r#"{"access_token":"a","expires_in":3600}"#).unwrap();
    let day_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(86_400);
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(day_ago)
        .unwrap();
    env.ok(&["import", "old", &path.display().to_string()], "");
    let st = status(&env, "old");
    assert_eq!(st["expired"], true, "{st}");
    let r = env.run(&["token", "old"], "");
    assert_eq!(r.code, 4, "{r:?}");
    // From standard input there is no file time: the reply counts from now.
    env.ok(
        &["import", "fresh", "-"],
        r#"{"access_token":"a","expires_in":3600}"#,
    );
    assert_eq!(status(&env, "fresh")["expired"], false);
}

/// The shapes `put` once stored with a wrong meaning (Go's `expiry` dropped, JavaScript
/// milliseconds read as seconds, RFC 3339 refused), through the CLI: each honoured.
#[test]
fn put_honours_every_expiry_shape() {
    warm();
    let env = Env::new();
    for (tenant, doc, expires_at, expired) in [
        (
            "go",
            r#"{"access_token":"a","token_type":"Bearer","refresh_token":"r","expiry":"2020-01-01T00:00:00Z"}"#,
            "2020-01-01T00:00:00Z",
            true,
        ),
        (
            "js",
            r#"{"access_token":"a","expires_at":4102444800000}"#,
            "2100-01-01T00:00:00Z",
            false,
        ),
        (
            "oidc",
            r#"{"access_token":"a","expires_at":"2099-01-01T00:00:00Z"}"#,
            "2099-01-01T00:00:00Z",
            false,
        ),
    ] {
        env.ok(&["put", tenant], doc);
        let st = status(&env, tenant);
        assert_eq!(st["expires_at"], expires_at, "{tenant}: {st}");
        assert_eq!(st["expired"], expired, "{tenant}: {st}");
        let r = env.run(&["token", tenant, "--json"], "");
        if expired {
            // Never served as valid: no refresh settings, so the user is told to log in.
            assert_eq!(r.code, 4, "{tenant}: {r:?}");
        } else {
            let v: Value = serde_json::from_str(&r.stdout).unwrap();
            assert_eq!(v["expires_at"], expires_at, "{tenant}: {r:?}");
        }
    }
    // An expiry credlock cannot read is refused with the accepted forms, never dropped.
    let r = env.run(&["put", "x"], r#"{"access_token":"a","expiresOn":"soon"}"#);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr
            .contains("`expiresOn` is not an expiry credlock understands")
            && r.stderr.contains("RFC 3339"),
        "{r:?}"
    );
}
