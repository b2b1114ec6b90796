//! Promise 4 and 5: a store that cannot be read is never overwritten, by any command, and each
//! kind of unreadable gets its own specific error.

mod common;
use common::*;

fn all_commands(env: &Env) -> Vec<Run> {
    vec![
        env.run(&["put", "acme"], r#"{"access_token":"new"}"#),
        env.run(&["put", "other"], r#"{"access_token":"new"}"#),
        env.run(&["delete", "acme"], ""),
        env.run(&["init"], ""),
        env.run(&["token", "acme"], ""),
        env.run(&["refresh", "acme"], ""),
        env.run(&["list"], ""),
    ]
}

fn check(name: &str, corrupt: impl Fn(&Env), code: i32, message: &str) {
    let env = Env::new();
    env.ok(&["put", "acme"], r#"{"access_token":"one"}"#);
    env.ok(&["put", "beta"], r#"{"access_token":"two"}"#);
    let backup = env.store_dir().join("credentials.sealed.bak");
    let backup_hash = sha256_file(&backup);
    corrupt(&env);
    let before = std::fs::read(env.store_file()).ok();
    for r in all_commands(&env) {
        assert_eq!(r.code, code, "{name}: {r:?}");
        assert!(
            r.stderr.contains(message),
            "{name}: expected {message:?} in {r:?}"
        );
        assert!(
            r.stderr.contains("hint:"),
            "{name}: no recommendation in {r:?}"
        );
    }
    assert_eq!(
        std::fs::read(env.store_file()).ok(),
        before,
        "{name}: the unreadable store was changed"
    );
    assert_eq!(
        sha256_file(&backup),
        backup_hash,
        "{name}: the backup was changed"
    );
}

fn edit(env: &Env, f: impl FnOnce(&mut Vec<u8>)) {
    let mut bytes = std::fs::read(env.store_file()).unwrap();
    f(&mut bytes);
    std::fs::write(env.store_file(), bytes).unwrap();
}

#[test]
fn flipped_body_byte() {
    warm();
    check(
        "flipped body",
        |e| edit(e, |b| *b.last_mut().unwrap() ^= 1),
        6,
        "the store is damaged: the body fails authentication",
    );
}

#[test]
fn flipped_header_byte() {
    warm();
    // The nonce is part of the header: authenticated as AAD.
    check(
        "flipped nonce",
        |e| {
            edit(e, |b| {
                let h = u16::from_be_bytes([b[10], b[11]]) as usize;
                b[h - 1] ^= 1;
            })
        },
        6,
        "the store is damaged",
    );
}

#[test]
fn truncated() {
    warm();
    check(
        "truncated",
        |e| edit(e, |b| b.truncate(b.len() / 2)),
        6,
        "the store is damaged",
    );
    check(
        "header only",
        |e| edit(e, |b| b.truncate(20)),
        6,
        "the store is damaged: the header claims",
    );
}

#[test]
fn unknown_version() {
    warm();
    check(
        "version 7",
        |e| edit(e, |b| b[9] = 7),
        6,
        "format version 7, which this credlock does not know",
    );
}

#[test]
fn not_a_store() {
    warm();
    check(
        "json file",
        |e| std::fs::write(e.store_file(), br#"{"acme":{"access_token":"x"}}"#).unwrap(),
        6,
        "not a credlock store",
    );
    check(
        "empty file",
        |e| std::fs::write(e.store_file(), b"").unwrap(),
        6,
        "the file is empty",
    );
}

#[test]
fn wrong_key_file() {
    warm();
    check(
        "other key file",
        |e| {
            let other = Env::new();
            other.ok(&["init"], "");
            std::fs::copy(other.store_dir().join("key"), e.store_dir().join("key")).unwrap();
        },
        6,
        "the key file does not open this store",
    );
}

#[test]
fn missing_key_file_is_never_recreated() {
    warm();
    let env = Env::new();
    env.ok(&["put", "acme"], r#"{"access_token":"one"}"#);
    std::fs::rename(
        env.store_dir().join("key"),
        env.dir.path().join("key.moved"),
    )
    .unwrap();
    let before = sha256_file(&env.store_file());
    for r in all_commands(&env) {
        assert_eq!(r.code, 6, "{r:?}");
        assert!(
            r.stderr.contains(
                "none of the configured keys opens this store; it can be opened by: key-file"
            ),
            "{r:?}"
        );
    }
    assert!(
        !env.store_dir().join("key").exists(),
        "a new key was minted while a ciphertext exists"
    );
    assert_eq!(sha256_file(&env.store_file()), before);
    // Putting the key back makes everything readable again: nothing was lost.
    std::fs::rename(
        env.dir.path().join("key.moved"),
        env.store_dir().join("key"),
    )
    .unwrap();
    assert_eq!(env.ok(&["token", "acme", "--min-valid", "0"], ""), "one\n");
}

#[test]
fn store_path_is_a_directory_or_symlink() {
    warm();
    check(
        "directory",
        |e| {
            std::fs::remove_file(e.store_file()).unwrap();
            std::fs::create_dir(e.store_file()).unwrap();
        },
        8,
        "not a regular file",
    );
    let env = Env::new();
    env.ok(&["put", "acme"], r#"{"access_token":"one"}"#);
    let elsewhere = env.dir.path().join("elsewhere");
    std::fs::rename(env.store_file(), &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, env.store_file()).unwrap();
    let target_hash = sha256_file(&elsewhere);
    for r in all_commands(&env) {
        assert_eq!(r.code, 8, "{r:?}");
        assert!(
            r.stderr.contains("symbolic link") || r.stderr.contains("not a regular file"),
            "{r:?}"
        );
    }
    assert_eq!(sha256_file(&elsewhere), target_hash);
}
