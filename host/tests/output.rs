//! Machine-readable output and generated documentation are part of the CLI's API: guards
//! against a field renamed or dropped, a secret in `status`, and completions or a man page
//! that miss a subcommand.

mod common;
#[path = "common/oauth.rs"]
mod oauth;
use common::*;

#[test]
fn token_json_has_the_documented_fields() {
    warm();
    let env = Env::new();
    env.ok(
        &["put", "acme"],
        r#"{"access_token":"at-1","expires_at":4102444799,"refresh_token":"rt-1","scope":"api read"}"#,
    );
    let v: serde_json::Value =
        serde_json::from_str(&env.ok(&["token", "acme", "--json"], "")).unwrap();
    assert_eq!(
        v,
        serde_json::json!({
            "access_token": "at-1", "token_type": "Bearer",
            "expires_at": "2099-12-31T23:59:59Z", "scope": "api read",
        })
    );
    env.ok(&["put", "plain"], r#"{"access_token":"at-2"}"#);
    let v: serde_json::Value =
        serde_json::from_str(&env.ok(&["token", "plain", "--json"], "")).unwrap();
    assert_eq!(v["expires_at"], serde_json::Value::Null);
    assert_eq!(v["scope"], serde_json::Value::Null);
}

#[test]
fn status_shows_state_and_mappings_never_secrets() {
    warm();
    let env = Env::new();
    env.ok(
        &["put", "acme"],
        r#"{"access_token":"at-1","expires_in":3600,"refresh_token":"rt-1","token_endpoint":"https://auth.example/token","client_id":"c"}"#,
    );
    env.ok(
        &["put", "old"],
        r#"{"access_token":"at-2","expires_at":1700000000}"#,
    );
    env.ok(
        &["helper", "map", "git", "https://git.example/org", "acme"],
        "",
    );
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["status", "--json"], "")).unwrap();
    let acme = v
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tenant"] == "acme")
        .unwrap();
    assert_eq!(acme["has_refresh_token"], true);
    assert_eq!(acme["can_refresh"], true);
    assert_eq!(acme["needs_reauth"], false);
    assert_eq!(acme["expired"], false);
    assert_eq!(
        acme["helper_mappings"],
        serde_json::json!(["git https://git.example/org"])
    );
    let old = v
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tenant"] == "old")
        .unwrap();
    assert_eq!(old["expired"], true);
    assert_eq!(old["has_refresh_token"], false);
    assert_eq!(old["expires_at"], "2023-11-14T22:13:20Z");
    let text = env.ok(&["status", "acme"], "");
    assert!(
        text.starts_with("acme\n") && text.contains("refresh token: present"),
        "{text}"
    );
    assert!(!text.contains("old\n"));
    let all = format!("{text}{v}");
    assert!(
        !all.contains("at-1") && !all.contains("rt-1"),
        "status shows a secret"
    );
    assert_eq!(env.run(&["status", "nobody"], "").code, 3);
}

#[test]
fn completions_and_man_page_cover_every_subcommand() {
    let env = Env::new();
    let subcommands = [
        "exec",
        "status",
        "git-credential",
        "helper",
        "token",
        "completions",
    ];
    for shell in ["bash", "zsh", "fish"] {
        let script = env.ok(&["completions", shell], "");
        for s in subcommands {
            assert!(script.contains(s), "{shell} completions lack {s}");
        }
    }
    let r = env.run(&["completions", "powershell"], "");
    assert_eq!(r.code, 2);
    let man = env.ok(&["man"], "").replace("\\-", "-");
    assert!(
        man.starts_with(".ie") || man.contains(".TH credlock 1"),
        "{man}"
    );
    for s in subcommands {
        assert!(man.contains(s), "the man page lacks {s}");
    }
    let dir = tempfile::tempdir().unwrap();
    env.ok(&["man", "--dir", dir.path().to_str().unwrap()], "");
    for page in [
        "credlock.1",
        "credlock-exec.1",
        "credlock-helper-map.1",
        "credlock-git-credential.1",
    ] {
        let text = std::fs::read_to_string(dir.path().join(page)).unwrap();
        assert!(text.contains(".SH SYNOPSIS"), "{page}");
    }
}

/// A refresh whose reply never came leaves its intent: `status` must show it (and the
/// re-login it implies), not just "ok".
#[test]
fn status_shows_a_pending_refresh_intent() {
    warm();
    let server = oauth::OAuthServer::start(3600);
    let env = Env::new();
    env.ok(&["put", "acme"], &server.grant("conf-basic").to_string());
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["status", "--json"], "")).unwrap();
    assert_eq!(
        (v[0]["refresh_intent"].clone(), v[0]["needs_reauth"].clone()),
        (false.into(), false.into())
    );
    server.fault("hang", 1);
    let r = env.run(&["--http-timeout", "1", "refresh", "acme"], "");
    assert_eq!(r.code, 7, "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["status", "--json"], "")).unwrap();
    assert_eq!(v[0]["refresh_intent"], true);
    assert_eq!(v[0]["needs_reauth"], true);
    assert_eq!(v[0]["can_refresh"], false);
    let text = env.ok(&["status", "acme"], "");
    assert!(
        text.contains("a refresh was interrupted after its refresh token may have been spent"),
        "{text}"
    );
}
