//! The CLI contract: output and exit codes are an API that scripts depend on (README, "CLI").

mod common;
use common::*;

#[test]
fn put_token_list_delete() {
    warm();
    let env = Env::new();
    let r = env.run(
        &["put", "acme"],
        r#"{"access_token":"at-1","expires_in":3600,"refresh_token":"rt-1","scope":"api"}"#,
    );
    assert_eq!(
        (r.code, r.stdout.as_str(), r.stderr.as_str()),
        (0, "", "credlock: stored 'acme' (revision 1)\n")
    );
    assert_eq!(env.ok(&["token", "acme"], ""), "at-1\n");
    let list = env.ok(&["list"], "");
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["TENANT", "EXPIRES", "REFRESH", "REVISION", "STATUS"]
    );
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["acme", "in", "59m", "no", "1", "ok"]
    );
    let json: serde_json::Value = serde_json::from_str(&env.ok(&["list", "--json"], "")).unwrap();
    assert_eq!(json[0]["tenant"], "acme");
    assert_eq!(json[0]["revision"], 1);
    assert_eq!(json[0]["has_refresh_token"], true);
    assert!(
        !list.contains("at-1")
            && !json.to_string().contains("at-1")
            && !json.to_string().contains("rt-1"),
        "list shows secrets"
    );
    let r = env.run(&["delete", "acme"], "");
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (0, "credlock: deleted 'acme'\n")
    );
    let r = env.run(&["delete", "acme"], "");
    assert_eq!(r.code, 3, "{r:?}");
}

#[test]
fn exit_codes_are_distinct() {
    warm();
    let env = Env::new();
    // usage
    assert_eq!(env.run(&["frobnicate"], "").code, 2);
    assert_eq!(env.run(&["token"], "").code, 2);
    let r = env.run(&["put", "../etc"], r#"{"access_token":"x"}"#);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("invalid tenant name"), "{r:?}");
    // bad input never echoes the token
    let r = env.run(&["put", "acme"], r#"{"access_token": "s3cr3t value"}"#);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("`access_token`") && !r.stderr.contains("s3cr3t"),
        "{r:?}"
    );
    let r = env.run(
        &["put", "acme"],
        r#"{"access_token": "s3cr3t", "expires_in": "soon"}"#,
    );
    assert!(r.code == 2 && !r.stderr.contains("s3cr3t"), "{r:?}");
    // not found
    let r = env.run(&["token", "nobody"], "");
    assert_eq!(r.code, 3);
    assert_eq!(r.stderr, "credlock: error: no credentials stored for tenant 'nobody'\ncredlock: hint: log in with `credlock login` (or store tokens with `credlock put`)\n");
    // expired without a way to refresh
    env.ok(
        &["put", "old"],
        r#"{"access_token":"x","expires_at":1700000000}"#,
    );
    let r = env.run(&["token", "old", "--min-valid", "0"], "");
    assert_eq!(r.code, 4, "{r:?}");
    assert!(r.stderr.contains("has expired and cannot be refreshed"));
    // A 30-second token can never be valid for the default 60 more seconds: credlock asks
    // at most half a token's lifetime of it, so it is served, not reported expired.
    env.ok(&["put", "short"], r#"{"access_token":"y","expires_in":30}"#);
    assert_eq!(env.ok(&["token", "short"], ""), "y\n");
}

#[test]
fn lock_timeout_names_the_lock() {
    warm();
    let env = Env::new();
    env.ok(&["init"], "");
    let lock = std::fs::File::options()
        .read(true)
        .write(true)
        .open(env.store_dir().join("credentials.lock"))
        .unwrap();
    lock.lock().unwrap();
    let started = std::time::Instant::now();
    let r = env.run(
        &["--lock-timeout", "0.3", "put", "acme"],
        r#"{"access_token":"x"}"#,
    );
    assert_eq!(r.code, 5, "{r:?}");
    assert!(r.stderr.contains("waiting for the store lock"), "{r:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let r = env.env("CREDLOCK_LOCK_TIMEOUT", "0.2").run(&["list"], "");
    assert_eq!(r.code, 5, "{r:?}");
    drop(lock);
}

#[test]
fn passphrase_from_env_and_fd_never_argv() {
    warm();
    let env = Env::new().env("CREDLOCK_PASSPHRASE", "correct horse");
    env.ok(&["put", "acme"], r#"{"access_token":"at-p"}"#);
    assert!(
        !env.store_dir().join("key").exists(),
        "a passphrase store needs no key file"
    );
    let info = env.ok(&["doctor"], "");
    assert!(info.contains("slots: passphrase"), "{info}");
    let wrong = Env {
        dir: tempfile::tempdir().unwrap(),
        envs: vec![],
    };
    let _ = wrong;
    let mut bad = env.command(&["token", "acme"]);
    bad.env("CREDLOCK_PASSPHRASE", "wrong horse");
    let r = run_cmd(bad, "");
    assert_eq!(r.code, 6, "{r:?}");
    assert!(r.stderr.contains("wrong passphrase"), "{r:?}");
    // --passphrase-fd 0 reads it from standard input.
    let mut viafd = env.command(&["--passphrase-fd", "0", "token", "acme"]);
    viafd.env_remove("CREDLOCK_PASSPHRASE");
    let r = run_cmd(viafd, "correct horse\n");
    assert_eq!((r.code, r.stdout.as_str()), (0, "at-p\n"), "{r:?}");
    // Without any passphrase, the error names the slot that would open it.
    let mut none = env.command(&["token", "acme"]);
    none.env_remove("CREDLOCK_PASSPHRASE");
    let r = run_cmd(none, "");
    assert_eq!(r.code, 6, "{r:?}");
    assert!(
        r.stderr.contains("it can be opened by: passphrase"),
        "{r:?}"
    );
}

#[test]
fn files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    warm();
    let env = Env::new();
    env.ok(
        &["put", "acme"],
        r#"{"access_token":"plain-access-x","refresh_token":"plain-refresh-x"}"#,
    );
    env.ok(
        &["put", "acme"],
        r#"{"access_token":"plain-access-y","refresh_token":"plain-refresh-y"}"#,
    );
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&env.store_dir()), 0o700);
    for f in [
        "credentials.sealed",
        "credentials.sealed.bak",
        "credentials.lock",
        "key",
    ] {
        assert_eq!(mode(&env.store_dir().join(f)), 0o600, "{f}");
    }
    // The secrets are not in any file in clear text.
    for entry in std::fs::read_dir(env.store_dir()).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            let bytes = std::fs::read(&p).unwrap();
            for secret in [
                "plain-access-x",
                "plain-refresh-x",
                "plain-access-y",
                "plain-refresh-y",
            ] {
                assert!(
                    !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                    "{secret} in clear in {}",
                    p.display()
                );
            }
            assert!(
                !String::from_utf8_lossy(&bytes).contains("\"access_token\""),
                "{}",
                p.display()
            );
        }
    }
}

#[test]
fn native_and_component_cores_read_each_others_stores() {
    warm();
    let env = Env::new();
    env.ok(
        &["--native", "put", "a"],
        r#"{"access_token":"from-native"}"#,
    );
    env.ok(&["put", "b"], r#"{"access_token":"from-wasm"}"#);
    assert_eq!(env.ok(&["token", "a"], ""), "from-native\n");
    assert_eq!(env.ok(&["--native", "token", "b"], ""), "from-wasm\n");
}
