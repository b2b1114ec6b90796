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

fn chmod(p: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Every file under `dir` with its owner and mode, to show a refusal changed nothing.
fn owners_and_modes(dir: &std::path::Path) -> Vec<(String, u32, u32, String)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            let body = if m.is_file() {
                sha256_file(&e.path())
            } else {
                String::new()
            };
            (
                e.file_name().to_string_lossy().into_owned(),
                m.uid(),
                m.mode(),
                body,
            )
        })
        .collect();
    v.sort();
    v
}

fn refused(env: &Env, args: &[&str], stdin: &str, fix: &str) {
    let r = env.run(args, stdin);
    assert_eq!(r.code, 8, "{args:?} was not refused: {r:?}");
    assert!(
        r.stderr.contains("unsafe permissions") && r.stderr.contains(fix),
        "{args:?}: {r:?}"
    );
    assert!(!r.stderr.contains("recover"), "{r:?}");
}

/// Item 5: a store directory others can write, and a key file others can read, were used
/// without a word (only `doctor` warned). Each is refused, by readers and writers alike,
/// with the command that fixes it, and `doctor` says so; nothing in the store changes.
#[test]
fn unsafe_permissions_are_refused_with_the_fix() {
    warm();
    let env = Env::new();
    env.ok(
        &["put", "acme"],
        r#"{"access_token":"t1","expires_in":3600}"#,
    );
    let dir = env.store_dir();

    chmod(&dir, 0o777);
    let before = owners_and_modes(&dir);
    for (args, stdin) in [
        (&["token", "acme"][..], ""),
        (&["list"][..], ""),
        (&["put", "beta"][..], r#"{"access_token":"b"}"#),
        (&["delete", "acme"][..], ""),
    ] {
        let r = env.run(args, stdin);
        assert_eq!(r.code, 8, "{args:?}: {r:?}");
        assert!(r.stderr.contains("chmod 700"), "{args:?}: {r:?}");
    }
    assert_eq!(
        owners_and_modes(&dir),
        before,
        "a refused call changed the store"
    );
    let doctor = env.run(&["doctor"], "");
    assert_ne!(doctor.code, 0, "{doctor:?}");
    assert!(
        doctor.stdout.contains("REFUSED by every command"),
        "{doctor:?}"
    );
    chmod(&dir, 0o700);
    assert_eq!(env.ok(&["token", "acme"], "").trim(), "t1");

    let key = dir.join("key");
    chmod(&key, 0o644);
    refused(&env, &["token", "acme"], "", "chmod 600");
    let doctor = env.run(&["doctor"], "");
    assert!(doctor.stdout.contains("chmod 600"), "{doctor:?}");
    chmod(&key, 0o600);
    assert_eq!(env.ok(&["token", "acme"], "").trim(), "t1");

    // A group-writable directory too (a shared group is still other users).
    chmod(&dir, 0o770);
    refused(&env, &["list"], "", "chmod 700");
    chmod(&dir, 0o750);
    env.ok(&["list"], "");
}

/// Item 5: after a put, `.bak` kept the old file's mode (0644 when the old store was);
/// a backup is made owner-only like every file credlock writes.
#[test]
fn the_backup_of_a_loose_store_file_is_private() {
    warm();
    let env = Env::new();
    env.ok(&["put", "acme"], r#"{"access_token":"t1"}"#);
    chmod(&env.store_file(), 0o644);
    env.ok(&["put", "beta"], r#"{"access_token":"t2"}"#);
    let bak = env.store_dir().join("credentials.sealed.bak");
    let mode = std::fs::metadata(&bak).unwrap().mode() & 0o777;
    assert_eq!(mode, 0o600, "backup mode {mode:o}");
    let mode = std::fs::metadata(env.store_file()).unwrap().mode() & 0o777;
    assert_eq!(mode, 0o600, "store mode {mode:o}");
}

/// Item 4: `put` as root on a store owned by another user left `credentials.sealed` owned by
/// root, and every later call by the owner failed with "permission denied". Any user,
/// root included, is refused a store directory it does not own (as git's safe.directory),
/// with the command for each way out; nothing is created or changed. A symlink standing for
/// the store directory must belong to the user too. Run as root (the CI user) to chown.
#[test]
fn a_store_owned_by_another_user_is_refused_even_for_root() {
    if rustix_euid() != 0 {
        eprintln!("skipped: needs root to give the store to another user");
        return;
    }
    warm();
    let env = Env::new();
    env.ok(
        &["put", "acme"],
        r#"{"access_token":"t1","expires_in":3600}"#,
    );
    let dir = env.store_dir();
    let nobody = 65534;
    let chown_all = |uid: u32| {
        std::os::unix::fs::lchown(&dir, Some(uid), None).unwrap();
        for e in std::fs::read_dir(&dir).unwrap() {
            std::os::unix::fs::lchown(e.unwrap().path(), Some(uid), None).unwrap();
        }
    };
    chown_all(nobody);
    let before = owners_and_modes(&dir);
    refused(
        &env,
        &["put", "beta"],
        r#"{"access_token":"b"}"#,
        "sudo -u '#65534'",
    );
    refused(&env, &["token", "acme"], "", "chown -R 0");
    assert_eq!(
        owners_and_modes(&dir),
        before,
        "root changed another user's store"
    );
    let doctor = env.run(&["doctor"], "");
    assert!(doctor.stdout.contains("belongs to uid 65534"), "{doctor:?}");
    chown_all(0);

    // A symlink for the store directory: ours is followed; another user's is refused.
    let link = env.dir.path().join("link");
    std::os::unix::fs::symlink(&dir, &link).unwrap();
    let via = env.clone_with(&[("CREDLOCK_STORE", link.to_str().unwrap())]);
    assert_eq!(via.ok(&["token", "acme"], "").trim(), "t1");
    std::os::unix::fs::lchown(&link, Some(nobody), None).unwrap();
    refused(&via, &["token", "acme"], "", "chown -h 0");
}

fn rustix_euid() -> u32 {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(u32::MAX)
}

/// Overwrite bytes of a file in place, as a bad sector or `dd conv=notrunc` would.
fn poke(file: &std::path::Path, offset: usize, bytes: &[u8]) {
    let mut b = std::fs::read(file).unwrap();
    b[offset..offset + bytes.len()].copy_from_slice(bytes);
    use std::os::unix::fs::FileExt;
    std::fs::OpenOptions::new()
        .write(true)
        .open(file)
        .unwrap()
        .write_all_at(&b[offset..offset + bytes.len()], offset as u64)
        .unwrap();
}

/// Item 6: one bit flipped in the format version (`printf '\x00' | dd of=credentials.sealed
/// bs=1 seek=9 conv=notrunc`) read as "format version 0 ... use the credlock version that
/// wrote this store", and `recover`, `recover --force` and `quarantine` all refused while
/// `.bak` was intact. Version 0 was never written: it is damage, and `recover` restores.
#[test]
fn a_flipped_version_bit_is_damage_that_recover_repairs() {
    warm();
    let env = Env::new();
    env.ok(
        &["put", "acme"],
        r#"{"access_token":"t1","expires_in":3600}"#,
    );
    env.ok(
        &["put", "beta"],
        r#"{"access_token":"t2","expires_in":3600}"#,
    );
    let store = env.store_file();
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            r"printf '\000' | dd of='{}' bs=1 seek=9 conv=notrunc 2>/dev/null",
            store.display()
        ))
        .status()
        .unwrap();
    assert!(status.success());
    let r = env.run(&["token", "acme"], "");
    assert_eq!(r.code, 6, "{r:?}");
    assert!(r.stderr.contains("damaged"), "{r:?}");
    assert!(r.stderr.contains("credlock recover"), "{r:?}");
    assert!(!r.stderr.contains("use the credlock version"), "{r:?}");
    let r = env.run(&["recover"], "");
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(env.ok(&["token", "acme"], "").trim(), "t1");
    assert_eq!(
        corrupt_files(&env.store_dir()).len(),
        1,
        "the damaged file is kept"
    );
}

/// Item 6: header damage no check can prove (a version that reads as newer; a key id flipped
/// after a write that removed the backup) could not be moved aside by credlock at all.
/// `recover --force` restores a backup; `quarantine --force` moves the store aside when there
/// is none, never deleting; neither touches a store that opens.
#[test]
fn unprovable_header_damage_is_recoverable_with_force() {
    warm();
    let env = Env::new();
    env.ok(
        &["put", "acme"],
        r#"{"access_token":"t1","expires_in":3600}"#,
    );
    env.ok(
        &["put", "beta"],
        r#"{"access_token":"t2","expires_in":3600}"#,
    );
    let store = env.store_file();
    let dir = env.store_dir();
    // A store that opens is never forced aside by quarantine.
    let r = env.run(&["quarantine", "--force"], "");
    assert_ne!(r.code, 0, "{r:?}");
    assert!(corrupt_files(&dir).is_empty());

    // Version 3: a newer format, or a flipped bit. Without force, left alone.
    poke(&store, 8, &[0, 3]);
    let r = env.run(&["token", "acme"], "");
    assert!(r.stderr.contains("format version 3"), "{r:?}");
    assert!(r.stderr.contains("recover --force"), "{r:?}");
    for args in [&["recover"][..], &["quarantine"]] {
        let r = env.run(args, "");
        assert_ne!(
            r.code, 0,
            "{args:?} moved a store a newer credlock may have written"
        );
        assert!(corrupt_files(&dir).is_empty());
    }
    env.ok(&["recover", "--force"], "");
    // The backup: the store before the last put.
    assert_eq!(env.ok(&["token", "acme"], "").trim(), "t1");
    assert_eq!(corrupt_files(&dir).len(), 1);

    // After a rekey there is no backup: a flipped key-id bit reads as a key that opens
    // nothing, and only quarantine --force gets the user out (then a new store).
    env.ok(&["rekey"], "");
    assert!(!dir.join("credentials.sealed.bak").exists());
    let mut b = std::fs::read(&store).unwrap()[12];
    b ^= 0x10;
    poke(&store, 12, &[b]);
    let damaged = std::fs::read(&store).unwrap();
    for args in [&["recover"][..], &["recover", "--force"], &["quarantine"]] {
        let r = env.run(args, "");
        assert_ne!(r.code, 0, "{args:?}: {r:?}");
        assert_eq!(
            std::fs::read(&store).unwrap(),
            damaged,
            "{args:?} changed it"
        );
    }
    let r = env.run(&["quarantine", "--force"], "");
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!store.exists());
    let moved = corrupt_files(&dir);
    assert_eq!(moved.len(), 2);
    let kept: Vec<Vec<u8>> = moved
        .iter()
        .map(|n| std::fs::read(dir.join(n)).unwrap())
        .collect();
    assert!(kept.contains(&damaged), "the damaged bytes were not kept");
    env.ok(&["put", "gamma"], r#"{"access_token":"t3"}"#);
    assert_eq!(env.ok(&["token", "gamma"], "").trim(), "t3");
}

/// Item 10 (and 6): a bit flipped in the key id said "the key file does not open this store"
/// and never suggested `recover`. With a backup that opens under the same key, it is
/// reported as a damaged header, with `recover` as the way out.
#[test]
fn a_flipped_key_id_bit_reads_as_damage_not_a_wrong_key() {
    warm();
    let env = Env::new();
    env.ok(
        &["put", "acme"],
        r#"{"access_token":"t1","expires_in":3600}"#,
    );
    env.ok(
        &["put", "beta"],
        r#"{"access_token":"t2","expires_in":3600}"#,
    );
    let store = env.store_file();
    let b = std::fs::read(&store).unwrap()[20] ^ 0x01;
    poke(&store, 20, &[b]);
    let r = env.run(&["token", "acme"], "");
    assert_eq!(r.code, 6, "{r:?}");
    assert!(r.stderr.contains("header was altered"), "{r:?}");
    assert!(r.stderr.contains("credlock recover"), "{r:?}");
    assert!(!r.stderr.contains("check the key file"), "{r:?}");
    env.ok(&["recover"], "");
    assert_eq!(env.ok(&["token", "acme"], "").trim(), "t1");
}

/// Item 6: a crash inside `recover` after the damaged file went aside and before the store
/// was written left no store beside a good backup, and the next `put` started a new store
/// there, whose next write replaced the good backup. No store beside a backup is damage:
/// every command refuses to start a new store and `recover` finishes the job.
#[test]
fn no_new_store_is_started_beside_a_backup() {
    warm();
    let env = Env::new();
    env.ok(
        &["put", "acme"],
        r#"{"access_token":"t1","expires_in":3600}"#,
    );
    env.ok(
        &["put", "beta"],
        r#"{"access_token":"t2","expires_in":3600}"#,
    );
    let dir = env.store_dir();
    let bak = dir.join("credentials.sealed.bak");
    let good_backup = std::fs::read(&bak).unwrap();
    std::fs::rename(env.store_file(), dir.join("moved-away")).unwrap();
    for (args, stdin) in [
        (&["put", "gamma"][..], r#"{"access_token":"g"}"#),
        (&["init"][..], ""),
        (&["token", "acme"][..], ""),
        (&["list"][..], ""),
    ] {
        let r = env.run(args, stdin);
        assert_eq!(r.code, 6, "{args:?}: {r:?}");
        assert!(r.stderr.contains("backup"), "{args:?}: {r:?}");
        assert!(!env.store_file().exists(), "{args:?} started a new store");
        assert_eq!(std::fs::read(&bak).unwrap(), good_backup);
    }
    // The backup opens, so quarantine leaves it for recover.
    assert_ne!(env.run(&["quarantine", "--force"], "").code, 0);
    let r = env.run(&["recover"], "");
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(env.ok(&["token", "acme"], "").trim(), "t1");
}

/// Item 9: the core's `naive` feature (the bug zoo's switches) reached the host's tests
/// through workspace feature unification whenever the simulator was built beside them
/// (`cargo test --workspace`). It is now a separate package only the simulator uses.
#[test]
fn the_host_never_links_the_naive_core() {
    assert!(
        !credlock_core::naive_switches(),
        "the host was built with the simulator's naive core switches"
    );
}

/// Item 10: a store marked for another lock protocol got the hint "check the store
/// directory's permissions and free space"; it says which kind of host to use instead.
#[test]
fn another_lock_protocol_gets_its_own_advice() {
    warm();
    let env = Env::new();
    std::fs::create_dir(env.store_dir()).unwrap();
    std::fs::write(env.store_dir().join("lock-protocol"), "wasi-lease\n").unwrap();
    let r = env.run(&["put", "acme"], r#"{"access_token":"a"}"#);
    assert_eq!(r.code, 8, "{r:?}");
    assert!(r.stderr.contains("wasi-lease"), "{r:?}");
    assert!(r.stderr.contains("kind of credlock host"), "{r:?}");
    assert!(!r.stderr.contains("free space"), "{r:?}");
    assert!(!env.store_file().exists());
}
