//! Import, recovery and slot changes through the CLI, with real processes and files:
//! the source of an import goes only after the store is durable; an unreadable store is
//! moved aside, never overwritten; refusals have their own exit code (9).

mod common;
use common::*;

const AUTH_JSON: &str = r#"{
  "anthropic": {"type": "oauth", "access": "sk-ant-oat-1", "refresh": "sk-ant-ort-1", "expires": 4102444800000},
  "github": {"access_token": "gho_1", "token_type": "bearer", "scope": "repo"}
}"#;

#[test]
fn import_a_map_and_remove_the_source_only_after_the_store_is_durable() {
    warm();
    let env = Env::new();
    let src = env.dir.path().join("auth.json");
    std::fs::write(&src, AUTH_JSON).unwrap();
    let src_s = src.display().to_string();
    // Killed just before the store's rename: nothing acknowledged, the source must survive.
    let crashed = Env {
        dir: tempfile::tempdir().unwrap(),
        envs: env.envs.clone(),
    }
    .env("CREDLOCK_FAILPOINTS", "replace:before-rename=abort");
    let r = crashed.run(&["import", "--map", "--remove-source", &src_s], "");
    assert_ne!(r.code, 0, "{r:?}");
    assert!(src.exists(), "the source went before the store was durable");
    assert!(!env.store_file().exists());
    // For real this time.
    let r = env.run(&["import", "--map", "--remove-source", &src_s], "");
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains("imported 2 tenant(s): anthropic, github"),
        "{r:?}"
    );
    assert!(!src.exists(), "the source is removed once everything is in");
    assert_eq!(env.ok(&["token", "anthropic"], ""), "sk-ant-oat-1\n");
    assert_eq!(env.ok(&["token", "github"], ""), "gho_1\n");
    let list: serde_json::Value = serde_json::from_str(&env.ok(&["list", "--json"], "")).unwrap();
    assert_eq!(list[0]["expires_at_ms"], 4102444800000u64);
    assert_eq!(list[0]["has_refresh_token"], true);
    // Importing again conflicts, changes nothing, and keeps the source.
    std::fs::write(&src, AUTH_JSON).unwrap();
    let before = sha256_file(&env.store_file());
    let r = env.run(&["import", "--map", "--remove-source", &src_s], "");
    assert_eq!(r.code, 9, "{r:?}");
    assert!(
        r.stderr.contains("already exist: anthropic, github"),
        "{r:?}"
    );
    assert_eq!(sha256_file(&env.store_file()), before);
    assert!(src.exists());
    env.ok(&["import", "--map", "--replace", &src_s], "");
}

#[test]
fn import_keeps_a_source_with_entries_it_could_not_import() {
    warm();
    let env = Env::new();
    let src = env.dir.path().join("auth.json");
    std::fs::write(
        &src,
        r#"{"openai": {"type": "api", "key": "sk-proj-SECRET"}, "acme": {"access_token": "a"}}"#,
    )
    .unwrap();
    let r = env.run(
        &[
            "import",
            "--map",
            "--remove-source",
            &src.display().to_string(),
        ],
        "",
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("skipped \"openai\""), "{r:?}");
    assert!(r.stderr.contains("kept"), "{r:?}");
    assert!(
        !r.stderr.contains("sk-proj-SECRET"),
        "a secret in a message: {r:?}"
    );
    assert!(src.exists());
    // One token response, named.
    let r = env.run(
        &["import", "solo", "-"],
        r#"{"access_token":"s1","expires_in":60}"#,
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(env.ok(&["token", "solo", "--min-valid", "0"], ""), "s1\n");
    let r = env.run(&["import", "--map", "-"], r#"{"access_token":"x"}"#);
    assert_eq!(r.code, 2, "a single response needs a tenant name: {r:?}");
}

#[test]
fn recover_moves_a_damaged_store_aside_and_restores_the_backup() {
    warm();
    let env = Env::new();
    env.ok(
        &["put", "acme"],
        r#"{"access_token":"a1","expires_in":3600}"#,
    );
    env.ok(
        &["put", "beta"],
        r#"{"access_token":"b1","expires_in":3600}"#,
    );
    let r = env.run(&["recover"], "");
    assert_eq!(r.code, 9, "a readable store is not rolled back: {r:?}");
    // Damage the store: flip its last byte.
    let mut damaged = std::fs::read(env.store_file()).unwrap();
    *damaged.last_mut().unwrap() ^= 0x80;
    std::fs::write(env.store_file(), &damaged).unwrap();
    assert_eq!(env.run(&["token", "acme"], "").code, 6);
    // Writes refuse too: an unreadable store is never overwritten.
    assert_eq!(
        env.run(&["put", "gamma"], r#"{"access_token":"g"}"#).code,
        6
    );
    assert_eq!(std::fs::read(env.store_file()).unwrap(), damaged);
    let r = env.run(&["recover"], "");
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains("restored the backup: 1 tenant(s)"),
        "{r:?}"
    );
    let aside: Vec<_> = std::fs::read_dir(env.store_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("credentials.sealed.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(
        std::fs::read(env.store_dir().join(&aside[0])).unwrap(),
        damaged,
        "the damaged file is kept byte for byte"
    );
    assert_eq!(env.ok(&["token", "acme"], ""), "a1\n");
    assert_eq!(
        env.run(&["token", "beta"], "").code,
        3,
        "beta came after the backup"
    );
    env.ok(
        &["put", "beta"],
        r#"{"access_token":"b2","expires_in":3600}"#,
    );
}

#[test]
fn quarantine_only_an_unreadable_store_and_never_delete_it() {
    warm();
    let env = Env::new();
    env.ok(&["put", "acme"], r#"{"access_token":"a1"}"#);
    assert_eq!(env.run(&["quarantine"], "").code, 9);
    // A newer format is not damage: left alone.
    std::fs::write(env.store_file(), b"CREDLOCK\x00\x09 from the future").unwrap();
    assert_eq!(env.run(&["quarantine"], "").code, 6);
    std::fs::write(env.store_file(), b"half a config file, not a store").unwrap();
    let r = env.run(&["quarantine"], "");
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!env.store_file().exists());
    let name = r.stderr.trim().rsplit(' ').next().unwrap().to_owned();
    assert!(name.starts_with("credentials.sealed.corrupt-"), "{r:?}");
    assert!(env.store_dir().join(&name).exists());
}

#[test]
fn slot_changes_refuse_to_lock_the_store_out() {
    warm();
    let env = Env::new();
    env.ok(&["put", "acme"], r#"{"access_token":"a1"}"#);
    let r = env.run(&["slot", "remove", "0"], "");
    assert_eq!(r.code, 9, "{r:?}");
    assert!(r.stderr.contains("only key slot"), "{r:?}");
    let r = env.run(&["slot", "add", "passphrase"], "");
    assert_eq!(r.code, 9, "no new passphrase given: {r:?}");
    let r = env.run(&["slot", "add", "key-file"], "");
    assert_eq!(r.code, 9, "the same key file twice: {r:?}");
    let env = env.env("CREDLOCK_NEW_PASSPHRASE", "second way in");
    env.ok(&["slot", "add", "passphrase"], "");
    let list = env.ok(&["slot", "list"], "");
    assert!(
        list.contains("argon2id") && !list.contains("second way in"),
        "{list}"
    );
    env.ok(&["slot", "remove", "0"], "");
    assert_eq!(
        env.run(&["token", "acme"], "").code,
        6,
        "the key file no longer opens it"
    );
    let env = env.env("CREDLOCK_PASSPHRASE", "second way in");
    assert_eq!(env.ok(&["token", "acme"], ""), "a1\n");
}

#[test]
fn a_store_the_caller_cannot_open_is_not_damaged_and_stays_put() {
    warm();
    let env = Env::new();
    env.ok(&["put", "acme"], r#"{"access_token":"a1"}"#);
    env.ok(&["put", "acme"], r#"{"access_token":"a2"}"#);
    let before = sha256_file(&env.store_file());
    // Another key file: the store is fine, the caller's key is wrong.
    let other = Env::new();
    other.ok(&["init"], "");
    let wrong = env.clone_with(&[(
        "CREDLOCK_KEY_FILE",
        &other.store_dir().join("key").display().to_string(),
    )]);
    for args in [
        &["quarantine"][..],
        &["quarantine", "--force"],
        &["recover"],
        &["recover", "--force"],
    ] {
        let r = wrong.run(args, "");
        assert_eq!(r.code, 6, "{args:?}: {r:?}");
        assert!(r.stderr.contains("key file does not open"), "{r:?}");
    }
    assert_eq!(sha256_file(&env.store_file()), before);
    assert_eq!(env.ok(&["token", "acme"], ""), "a2\n");
}
