//! What an outside review found (issue "Hardening"), each as a test that failed before its fix.

mod common;
use common::*;
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The store directory as a reader could change it: its entries, and its mtime (any entry
/// created, even a temp file removed again, moves it).
fn dir_state(dir: &std::path::Path) -> (Vec<String>, i64, i64) {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let m = std::fs::metadata(dir).unwrap();
    (names, m.mtime(), m.mtime_nsec())
}

/// Item 2: every call, `token` included, used to create `.lock-protocol.new-*` and link it,
/// so on a full disk or a read-only directory reads failed. Readers must only read.
#[test]
fn reads_never_write_to_the_store_directory() {
    warm();
    let env = Env::new();
    env.ok(
        &["put", "acme"],
        r#"{"access_token":"t1","expires_in":3600}"#,
    );
    let dir = env.store_dir();
    let before = dir_state(&dir);
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(env.ok(&["token", "acme"], "").trim(), "t1");
    env.ok(&["list"], "");
    env.ok(&["list", "--json"], "");
    assert_eq!(
        dir_state(&dir),
        before,
        "a read wrote to the store directory"
    );

    // A store whose marker is missing (made by an older credlock): a reader does not write
    // it; the next writer does.
    std::fs::remove_file(dir.join("lock-protocol")).unwrap();
    let before = dir_state(&dir);
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(env.ok(&["token", "acme"], "").trim(), "t1");
    assert_eq!(
        dir_state(&dir),
        before,
        "a read wrote the lock-protocol marker"
    );
    env.ok(&["put", "beta"], r#"{"access_token":"b"}"#);
    assert_eq!(
        std::fs::read_to_string(dir.join("lock-protocol")).unwrap(),
        "flock\n"
    );
}

/// Item 1: a passphrase store, 32 processes each putting 5 tenants (one process per put)
/// while 4 processes list. Every new process derives the passphrase key (argon2id, 64 MiB,
/// t=3): that used to happen inside the exclusive store lock, and puts timed out behind it
/// with the default 10 s timeout. Now the key is derived before the lock is taken.
#[test]
fn passphrase_derivation_stays_outside_the_store_lock() {
    warm();
    const WRITERS: usize = 32;
    const PUTS: usize = 5;
    const READERS: usize = 4;
    let env = Arc::new(Env::new().env("CREDLOCK_PASSPHRASE", "a long enough passphrase"));
    env.ok(&["init"], "");
    let started = Instant::now();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let (env, done) = (Arc::clone(&env), Arc::clone(&done));
            std::thread::spawn(move || {
                let mut failures = Vec::new();
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    let r = env.run(&["list"], "");
                    if r.code != 0 {
                        failures.push(r);
                    }
                }
                failures
            })
        })
        .collect();
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let env = Arc::clone(&env);
            std::thread::spawn(move || {
                let mut failures = Vec::new();
                for p in 0..PUTS {
                    let r = env.run(
                        &["put", &format!("w{w}-{p}")],
                        r#"{"access_token":"x","expires_in":3600}"#,
                    );
                    if r.code != 0 {
                        failures.push(r);
                    }
                }
                failures
            })
        })
        .collect();
    let failed: Vec<_> = writers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let read_failures: Vec<_> = readers
        .into_iter()
        .flat_map(|r| r.join().unwrap())
        .collect();
    eprintln!(
        "figures: {} passphrase puts by {WRITERS} processes beside {READERS} readers in {:.1} s",
        WRITERS * PUTS,
        started.elapsed().as_secs_f64()
    );
    assert!(
        failed.is_empty(),
        "{} puts failed: {:?}",
        failed.len(),
        failed.first()
    );
    assert!(
        read_failures.is_empty(),
        "{} reads failed: {:?}",
        read_failures.len(),
        read_failures.first()
    );
    let listed = env.ok(&["list", "--json"], "");
    let n = serde_json::from_str::<serde_json::Value>(&listed)
        .unwrap()
        .as_array()
        .unwrap()
        .len();
    assert_eq!(n, WRITERS * PUTS);
}

fn temps(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-") || n.contains(".new-"))
        .collect();
    v.sort();
    v
}

/// Item 3: `kill -9` mid-write leaves `.credentials.sealed.tmp-*` forever, and a kill
/// between linking the backup and the rename makes the store and the backup one inode, after
/// which every put leaked a `.credentials.sealed.bak.tmp-*`. Writers now remove dead writers'
/// temp files, `doctor` reports them, and the one-inode case leaves nothing behind.
#[test]
fn crash_litter_is_reported_and_cleaned() {
    warm();
    let env = Env::new();
    env.ok(&["put", "acme"], r#"{"access_token":"a1"}"#);
    let dir = env.store_dir();
    for i in 0..3 {
        let r = env
            .clone_with(&[("CREDLOCK_FAILPOINTS", "replace:before-rename=abort")])
            .run(
                &["put", "acme"],
                &format!(r#"{{"access_token":"lost{i}"}}"#),
            );
        assert_ne!(r.code, 0, "{r:?}");
    }
    assert!(
        !temps(&dir).is_empty(),
        "the aborted writers left no temp file"
    );
    let store = std::fs::metadata(env.store_file()).unwrap();
    let backup = std::fs::metadata(dir.join("credentials.sealed.bak")).unwrap();
    assert_eq!(
        (store.dev(), store.ino()),
        (backup.dev(), backup.ino()),
        "the kill before the rename leaves store and backup one inode"
    );
    let doctor = env.run(&["doctor"], "");
    assert!(
        doctor.stdout.contains("leftovers: WARNING"),
        "doctor did not see the litter: {doctor:?}"
    );
    // The next writes clean up and leak nothing, through the one-inode case too.
    env.ok(&["put", "acme"], r#"{"access_token":"a2"}"#);
    env.ok(&["put", "acme"], r#"{"access_token":"a3"}"#);
    assert_eq!(temps(&dir), Vec::<String>::new());
    assert_eq!(
        env.ok(&["token", "acme", "--min-valid", "0"], "").trim(),
        "a3"
    );
    let doctor = env.run(&["doctor"], "");
    assert!(!doctor.stdout.contains("leftovers"), "{doctor:?}");
}

/// Item 7: after `delete`, `credentials.sealed.bak` still held the tenant's refresh token.
/// Delete must mean gone from every file credlock keeps: restoring the backup on purpose
/// (`recover --force`) must not bring it back.
#[test]
fn a_deleted_tenant_is_gone_from_the_backup_too() {
    warm();
    let env = Env::new();
    env.ok(
        &["put", "acme"],
        r#"{"access_token":"a","refresh_token":"secret-refresh","expires_in":3600}"#,
    );
    env.ok(
        &["put", "beta"],
        r#"{"access_token":"b","expires_in":3600}"#,
    );
    env.ok(&["delete", "acme"], "");
    let r = env.run(&["recover", "--force"], "");
    assert_eq!(r.code, 0, "{r:?}");
    let r = env.run(&["token", "acme"], "");
    assert_eq!(
        r.code, 3,
        "the deleted tenant came back from the backup: {r:?}"
    );
    assert_eq!(env.ok(&["token", "beta"], "").trim(), "b");
}
