//! Fleets: one store in a real PostgreSQL (a private cluster each test starts and stops),
//! shared by processes that stand for several machines (each with its own data and cache
//! directories and its own copy of the key file). The promises of one machine, across them.

mod common;
#[path = "common/oauth.rs"]
mod oauth;
#[path = "common/pg.rs"]
mod pg;
use common::*;
use oauth::OAuthServer;
use pg::PgCluster;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One database and the machines that share a store in it.
struct Fleet {
    pg: PgCluster,
    root: tempfile::TempDir,
    url: String,
}

impl Fleet {
    fn new(query: &str) -> Fleet {
        let pg = PgCluster::start();
        let url = pg.url(query);
        Fleet {
            pg,
            root: tempfile::tempdir().unwrap(),
            url,
        }
    }

    fn dir(&self, machine: usize) -> PathBuf {
        self.root.path().join(format!("machine-{machine}"))
    }

    /// Machine `i`: its own data directory and key file path. Machine 0's `init` makes the
    /// key; [`Fleet::share_key`] gives the others a copy (a mounted secret). The compiled
    /// component's cache is the test user's, shared: compiling it costs a debug build tens
    /// of seconds, and where it is cached changes nothing of the store
    /// ([`Fleet::own_caches`] gives each machine its own where a test wants that too).
    fn machine(&self, i: usize) -> Env {
        let d = self.dir(i);
        std::fs::create_dir_all(&d).unwrap();
        Env::new()
            .env("CREDLOCK_STORE", &self.url)
            .env("CREDLOCK_KEY_FILE", &d.join("key").display().to_string())
            .env("XDG_DATA_HOME", &d.join("data").display().to_string())
    }

    fn own_caches(&self, envs: Vec<Env>) -> Vec<Env> {
        envs.into_iter()
            .enumerate()
            .map(|(i, e)| {
                let cache = self.dir(i).join("cache");
                e.env("XDG_CACHE_HOME", &cache.display().to_string())
            })
            .collect()
    }

    fn share_key(&self, machines: usize) {
        let key = self.dir(0).join("key");
        for i in 1..machines {
            let to = self.dir(i).join("key");
            std::fs::copy(&key, &to).unwrap();
        }
    }

    /// A fleet of `machines` with a store made by machine 0, each machine's component
    /// compiled into its cache once.
    fn ready(query: &str, machines: usize) -> (Fleet, Vec<Env>) {
        let fleet = Fleet::new(query);
        let envs: Vec<Env> = (0..machines).map(|i| fleet.machine(i)).collect();
        envs[0].ok(&["init"], "");
        fleet.share_key(machines);
        for e in &envs {
            e.ok(&["list"], "");
        }
        (fleet, envs)
    }
}

fn token_json(access: &str) -> String {
    format!(r#"{{"access_token":"{access}","token_type":"Bearer","expires_in":3600}}"#)
}

/// The tenants of `list --json`, with their revisions.
fn revisions(env: &Env) -> std::collections::BTreeMap<String, u64> {
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["list", "--json"], "")).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["tenant"].as_str().unwrap().to_owned(),
                t["revision"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Start `credlock ARGS` with failpoint `point` set to `action`, and return it once it is
/// there (holding the store lock, the store read, nothing written).
// The child is returned to the caller, who waits for it.
#[allow(clippy::zombie_processes)]
fn start_at(env: &Env, args: &[&str], stdin: &str, point: &str, action: &str) -> Child {
    let mut cmd = env.command(args);
    cmd.env("CREDLOCK_FAILPOINTS", format!("{point}={action}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    {
        use std::io::Write;
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.as_bytes()).unwrap();
    }
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            panic!(
                "credlock ended before failpoint {point}: {seen} {:?}",
                child.wait()
            );
        }
        if line.contains(&format!("failpoint {point} reached")) {
            // Keep the rest of stderr for the caller.
            child.stderr = Some(stderr.into_inner());
            return child;
        }
        seen.push_str(&line);
    }
}

fn finish(child: Child) -> Run {
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) on a process this test started.
    unsafe { libc::kill(child.id() as i32, sig) };
}

/// The backend that holds the store's exclusive advisory lock (there is one in the tests
/// that ask).
fn exclusive_holder(admin: &mut postgres::Client) -> Option<i32> {
    admin
        .query_opt(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND mode = 'ExclusiveLock'",
            &[],
        )
        .unwrap()
        .map(|r| r.get(0))
}

#[test]
fn a_database_store_works_as_a_directory_does() {
    warm();
    let fleet = Fleet::new("schema=basics");
    let m = fleet.machine(0);
    let r = m.run(&["init"], "");
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains("created postgres://credlock@127.0.0.1"),
        "{r:?}"
    );
    let mut admin = fleet.pg.admin();
    let v: i32 = admin
        .query_one("SELECT max(version) FROM basics.credlock_schema", &[])
        .unwrap()
        .get(0);
    assert_eq!(v, 2, "init creates the versioned schema");
    // The key file is the one named, made by init; nothing else was written locally.
    assert!(fleet.dir(0).join("key").exists());

    m.ok(&["put", "acme"], &token_json("at-1"));
    assert_eq!(m.ok(&["token", "acme"], "").trim(), "at-1");
    assert_eq!(revisions(&m).get("acme"), Some(&1));
    // Sealed: the token is nowhere in the row in the clear.
    let row: Vec<u8> = admin
        .query_one(
            "SELECT store FROM basics.stores WHERE name = 'default'",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(
        !row.windows(4).any(|w| w == b"at-1"),
        "a token in the clear"
    );
    m.ok(&["put", "keep"], &token_json("kept"));
    assert!(m.ok(&["delete", "acme"], "").is_empty());
    let r = m.run(&["token", "acme"], "");
    assert_eq!(r.code, 3, "{r:?}");
    // Gone from every row: its record is deleted, and a header (and the header's backup)
    // never holds a tenant.
    let records: Vec<String> = admin
        .query("SELECT id FROM basics.records", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(records, vec![tenant_id("keep")]);
    let headers: Vec<u8> = admin
        .query_one(
            "SELECT store || COALESCE(backup, ''::bytea) FROM basics.stores",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(!headers.windows(4).any(|w| w == b"acme"));
    // There is no store file and backup to restore: refused, with what to do instead.
    let r = m.run(&["recover", "--force"], "");
    assert_eq!(r.code, 9, "{r:?}");
    assert!(r.stderr.contains("migrate"), "{r:?}");
    assert_eq!(m.ok(&["token", "keep"], "").trim(), "kept");

    let doctor = m.run(&["doctor"], "");
    assert_eq!(doctor.code, 0, "{doctor:?}");
    for want in [
        "database store: postgres://credlock@127.0.0.1",
        "schema basics: version 2",
        "synchronous_commit: on",
        "advisory locks: working",
        "store lock: free",
    ] {
        assert!(
            doctor.stdout.contains(want),
            "doctor lacks {want:?}: {doctor:?}"
        );
    }

    // A machine without the key is told what to give it, and changes nothing.
    let stranger = Env::new()
        .env("CREDLOCK_STORE", &fleet.url)
        .env("XDG_DATA_HOME", &fleet.dir(9).display().to_string());
    let r = stranger.run(&["list"], "");
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("key"), "{r:?}");

    // A password in the arguments is refused before anything connects.
    let r = m.run(
        &[
            "--store",
            &fleet.pg.url("").replace("credlock@", "credlock:hunter2@"),
            "list",
        ],
        "",
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("PGPASSWORD") && !r.stderr.contains("hunter2"),
        "{r:?}"
    );

    // A schema from a newer credlock is refused, never written.
    admin
        .execute(
            "INSERT INTO basics.credlock_schema (version, applied_by) VALUES (3, 'the future')",
            &[],
        )
        .unwrap();
    let r = m.run(&["put", "other"], &token_json("x"));
    assert_eq!(r.code, 8, "{r:?}");
    assert!(r.stderr.contains("upgrade credlock"), "{r:?}");
    let r = m.run(&["doctor"], "");
    assert!(r.stdout.contains("newer than this credlock"), "{r:?}");
}

/// 32 processes on three machines: every acknowledged put is there, revisions count every
/// write, and readers never fail.
#[test]
fn three_machines_lose_no_write() {
    warm();
    const MACHINES: usize = 3;
    const PROCESSES: usize = 32;
    const READERS: usize = 5;
    const ROUNDS: usize = 4;
    let (fleet, envs) = Fleet::ready("schema=fleet", MACHINES);
    // Three machines, each with its own compiled component too.
    let envs = fleet.own_caches(envs);
    for e in &envs {
        e.ok(&["list"], "");
    }
    let envs: Vec<Arc<Env>> = envs.into_iter().map(Arc::new).collect();
    let writing = Arc::new(AtomicUsize::new(PROCESSES - READERS));
    let reads = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..PROCESSES)
        .map(|p| {
            let env = Arc::clone(&envs[p % MACHINES]);
            let (writing, reads) = (Arc::clone(&writing), Arc::clone(&reads));
            std::thread::spawn(move || {
                if p < READERS {
                    while writing.load(Ordering::SeqCst) > 0 {
                        let r = env.run(&["list", "--json"], "");
                        assert_eq!(r.code, 0, "a reader failed: {r:?}");
                        reads.fetch_add(1, Ordering::Relaxed);
                    }
                    return;
                }
                for round in 1..=ROUNDS {
                    // Its own tenant, and one every writer shares.
                    let mine = format!("w{p}");
                    let r = env.run(&["put", &mine], &token_json(&format!("{mine}-{round}")));
                    assert_eq!(r.code, 0, "put failed: {r:?}");
                    let r = env.run(&["put", "shared"], &token_json(&format!("{mine}-{round}")));
                    assert_eq!(r.code, 0, "put failed: {r:?}");
                }
                writing.fetch_sub(1, Ordering::SeqCst);
            })
        })
        .collect();
    let started = Instant::now();
    for w in workers {
        w.join().expect("a worker failed");
    }
    let took = started.elapsed();
    let revs = revisions(&envs[1]);
    let writers = PROCESSES - READERS;
    for p in READERS..PROCESSES {
        assert_eq!(
            revs.get(&format!("w{p}")),
            Some(&(ROUNDS as u64)),
            "{revs:?}"
        );
        // Each machine reads the last write of every other.
        assert_eq!(
            envs[(p + 1) % MACHINES]
                .ok(&["token", &format!("w{p}")], "")
                .trim(),
            format!("w{p}-{ROUNDS}")
        );
    }
    assert_eq!(
        revs.get("shared"),
        Some(&((writers * ROUNDS) as u64)),
        "{revs:?}"
    );
    eprintln!(
        "figures: {PROCESSES} processes on {MACHINES} machines, {} puts and {} lists in {:.1} s",
        writers * ROUNDS * 2,
        reads.load(Ordering::Relaxed),
        took.as_secs_f64()
    );
}

/// 64 processes on four machines call `token` with 2-second access tokens against the real
/// OAuth server: no refresh token presented twice, no grant revoked, about one refresh per
/// expiry.
#[test]
fn a_refresh_storm_across_machines_spends_each_refresh_token_once() {
    warm();
    const MACHINES: usize = 4;
    const PROCESSES: usize = 64;
    const SECONDS: u64 = 12;
    let server = OAuthServer::start(2);
    let (_fleet, envs) = Fleet::ready("schema=storm", MACHINES);
    envs[0].ok(&["put", "acme"], &server.grant("conf-basic").to_string());
    let envs: Vec<Arc<Env>> = envs.into_iter().map(Arc::new).collect();
    let calls = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(SECONDS);
    let workers: Vec<_> = (0..PROCESSES)
        .map(|p| {
            let env = Arc::clone(&envs[p % MACHINES]);
            let calls = Arc::clone(&calls);
            std::thread::spawn(move || {
                while Instant::now() < deadline {
                    let r = env.run(&["token", "acme", "--min-valid", "1"], "");
                    assert_eq!(r.code, 0, "token failed in the storm: {r:?}");
                    calls.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("a storm worker failed");
    }
    let stats = server.stats();
    eprintln!(
        "figures: database storm, {PROCESSES} processes on {MACHINES} machines x {SECONDS} s: {} token calls, server: {stats}",
        calls.load(Ordering::Relaxed)
    );
    assert_eq!(stats["invalid_grant"], 0, "{stats}");
    assert_eq!(stats["duplicate_presentations"], 0, "{stats}");
    assert_eq!(stats["grants_revoked"], 0, "{stats}");
    let refreshes = stats["refresh_requests"].as_u64().unwrap();
    // Each token serves at least (TTL - 1 s granularity) / 2 = 0.5 s; at least one per TTL.
    assert!(
        (SECONDS / 2..=SECONDS * 2 + 2).contains(&refreshes),
        "not one refresh per expiry: {stats}"
    );
}

/// kill -9 of the process holding the store lock: its session ends, the server drops its
/// locks, and the next writer proceeds at once; the killed write never happened.
#[test]
fn a_killed_lock_holder_releases_its_locks() {
    warm();
    let (_fleet, envs) = Fleet::ready("schema=killed", 2);
    envs[0].ok(&["put", "acme"], &token_json("before"));
    let mut holder = start_at(
        &envs[0],
        &["put", "acme"],
        &token_json("killed"),
        "db-write:before",
        "pause",
    );
    holder.kill().unwrap();
    holder.wait().unwrap();
    let started = Instant::now();
    let r = envs[1].run(
        &["--lock-timeout", "20", "put", "other"],
        &token_json("after"),
    );
    assert_eq!(r.code, 0, "{r:?}");
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(10),
        "the next writer waited {waited:?} for a dead holder's lock"
    );
    assert_eq!(envs[1].ok(&["token", "acme"], "").trim(), "before");
    eprintln!("figures: a writer after a kill -9 of the holder took {waited:?}");
}

/// kill -9 after the token endpoint answered, before the commit: the refresh token may be
/// spent, and the intent in the database says so to every machine; nobody presents it again.
#[test]
fn a_refresh_killed_after_the_answer_is_known_as_unknown_everywhere() {
    warm();
    let server = OAuthServer::start(60);
    let (_fleet, envs) = Fleet::ready("schema=intent", 2);
    envs[0].ok(&["put", "acme"], &server.grant("conf-basic").to_string());
    let mut holder = start_at(&envs[0], &["refresh", "acme"], "", "post:after", "pause");
    holder.kill().unwrap();
    holder.wait().unwrap();
    // Its session ended with it: from the database alone, that looks like a refresh in
    // flight whose session ended (a server restart). Until the longest a refresh holds its
    // lock (here 1 s of HTTP and two lock waits of 1 s), the answer is "retry".
    let quick = [
        "--http-timeout",
        "1",
        "--lock-timeout",
        "1",
        "refresh",
        "acme",
    ];
    let r = envs[1].run(&quick, "");
    assert_eq!(r.code, 5, "{r:?}");
    assert!(r.stderr.contains("in flight"), "{r:?}");
    std::thread::sleep(Duration::from_secs(4));
    let r = envs[1].run(&quick, "");
    assert_eq!(r.code, 4, "{r:?}");
    assert!(r.stderr.contains("may have been spent"), "{r:?}");
    let stats = server.stats();
    assert_eq!(stats["refresh_requests"], 1, "{stats}");
    assert_eq!(stats["duplicate_presentations"], 0, "{stats}");
}

/// A holder stopped (SIGSTOP) past every timeout: waiters time out with the lock named;
/// its session is then terminated (`pg_terminate_backend`), another machine writes, and
/// when the holder continues its write is refused: nothing it had read is written over
/// the newer store.
#[test]
fn a_stopped_holder_whose_session_was_terminated_cannot_write() {
    warm();
    let (fleet, envs) = Fleet::ready("schema=fenced", 2);
    envs[0].ok(&["put", "acme"], &token_json("before"));
    let holder = start_at(
        &envs[0],
        &["put", "acme"],
        &token_json("stale"),
        "db-write:before",
        "sleep:1500",
    );
    signal(&holder, libc::SIGSTOP);
    std::thread::sleep(Duration::from_millis(1600));
    let r = envs[1].run(
        &["--lock-timeout", "1", "put", "acme"],
        &token_json("newer"),
    );
    assert_eq!(r.code, 5, "a waiter behind a stopped holder: {r:?}");
    assert!(r.stderr.contains("store"), "{r:?}");
    let mut admin = fleet.pg.admin();
    let backend = exclusive_holder(&mut admin).expect("the stopped holder's lock");
    admin
        .execute("SELECT pg_terminate_backend($1)", &[&backend])
        .unwrap();
    envs[1].ok(&["put", "acme"], &token_json("newer"));
    signal(&holder, libc::SIGCONT);
    let r = finish(holder);
    assert_eq!(r.code, 8, "the fenced-off writer: {r:?}");
    assert!(r.stderr.contains("not acknowledged"), "{r:?}");
    assert_eq!(envs[1].ok(&["token", "acme"], "").trim(), "newer");
    assert_eq!(revisions(&envs[0]).get("acme"), Some(&2));
}

/// The fence itself: a write through a session that holds the lock is refused when the row
/// is no longer at the version that session read (a lock lost to a pooler or an operator,
/// a restored row), and nothing is written.
#[test]
fn a_write_is_fenced_by_the_version_read_under_the_lock() {
    use credlock::native::NativePlatform;
    use credlock_core::platform::{FileError, IoError, LockMode, LockTarget, Platform, StoreFile};
    let (fleet, envs) = Fleet::ready("schema=cas", 1);
    envs[0].ok(&["put", "acme"], &token_json("one"));
    let db = credlock::pg::Database::parse(&fleet.url).unwrap();
    let mut p = NativePlatform::new(
        credlock::layout::Layout::new(fleet.dir(0)),
        credlock::keys::Keyring::new(Default::default()),
        Default::default(),
    )
    .with_database(Some(db));
    let guard = p
        .acquire(&LockTarget::Store, LockMode::Exclusive, 5_000)
        .unwrap();
    let bytes = p.read(StoreFile::Store).unwrap().unwrap();
    let mut admin = fleet.pg.admin();
    admin
        .execute("UPDATE cas.stores SET version = version + 1", &[])
        .unwrap();
    let err = p.replace(StoreFile::Store, b"would be lost").unwrap_err();
    assert!(
        matches!(&err, FileError::Io(IoError::Fenced(d)) if d.contains("nothing was written")),
        "{err:?}"
    );
    let now: Vec<u8> = admin
        .query_one("SELECT store FROM cas.stores", &[])
        .unwrap()
        .get(0);
    assert_eq!(now, bytes, "a fenced write changed the store");
    // The same fence for a write of the header with tenant records: nothing at all.
    let err = p
        .write_records(
            b"would be lost",
            &[credlock_core::platform::RecordWrite {
                id: tenant_id("intruder"),
                sealed: Some(b"x".to_vec()),
            }],
        )
        .unwrap_err();
    assert!(matches!(&err, FileError::Io(IoError::Fenced(_))), "{err:?}");
    let rows: i64 = admin
        .query_one(
            "SELECT count(*) FROM cas.records WHERE id = $1",
            &[&tenant_id("intruder")],
        )
        .unwrap()
        .get(0);
    assert_eq!(rows, 0, "a fenced write wrote a record");
    // And records are read as of the header read under the lock, or not at all.
    let err = p.read_record(&tenant_id("acme")).unwrap_err();
    assert!(matches!(&err, FileError::Io(IoError::Fenced(_))), "{err:?}");
    let err = p.read_records().unwrap_err();
    assert!(matches!(&err, FileError::Io(IoError::Fenced(_))), "{err:?}");
    drop(guard);
    assert_eq!(envs[0].ok(&["token", "acme"], "").trim(), "one");
}

/// A loopback TCP proxy that can cut every connection the moment a client sends a statement
/// containing `marker` (after forwarding it: the server may commit, the client never hears).
struct Proxy {
    port: u16,
    armed: Arc<Mutex<Option<Vec<u8>>>>,
    cuts: Arc<AtomicUsize>,
}

impl Proxy {
    fn start(upstream: u16) -> Proxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let armed: Arc<Mutex<Option<Vec<u8>>>> = Arc::new(Mutex::new(None));
        let cuts = Arc::new(AtomicUsize::new(0));
        let (a, c) = (Arc::clone(&armed), Arc::clone(&cuts));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { break };
                let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let (a, c) = (Arc::clone(&a), Arc::clone(&c));
                let (client2, server2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                // Client to server: watch for the marker.
                std::thread::spawn(move || {
                    use std::io::{Read, Write};
                    let (mut from, mut to) = (client, server);
                    let mut buf = vec![0u8; 65536];
                    loop {
                        let n = match from.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        let hit = {
                            let mut armed = a.lock().unwrap();
                            let hit = armed
                                .as_ref()
                                .is_some_and(|m| buf[..n].windows(m.len()).any(|w| w == m));
                            if hit {
                                *armed = None;
                            }
                            hit
                        };
                        if hit {
                            c.fetch_add(1, Ordering::SeqCst);
                            let _ = from.shutdown(std::net::Shutdown::Both);
                            let _ = to.shutdown(std::net::Shutdown::Both);
                            break;
                        }
                    }
                });
                std::thread::spawn(move || {
                    let (mut from, mut to) = (server2, client2);
                    let _ = std::io::copy(&mut from, &mut to);
                    let _ = to.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        Proxy { port, armed, cuts }
    }

    fn arm(&self, marker: &str) {
        *self.armed.lock().unwrap() = Some(marker.as_bytes().to_vec());
    }
}

/// The connection is cut while a write's commit is on the wire: the writer gets a clear
/// error (not acknowledged), the store stays whole (the old or the new version), and the
/// next writer proceeds.
#[test]
fn a_connection_cut_during_a_commit_loses_nothing_acknowledged() {
    warm();
    let (fleet, envs) = Fleet::ready("schema=cut", 1);
    envs[0].ok(&["put", "acme"], &token_json("before"));
    let proxy = Proxy::start(fleet.pg.port);
    let via_proxy = fleet.machine(0).env(
        "CREDLOCK_STORE",
        &format!(
            "postgres://credlock@127.0.0.1:{}/postgres?schema=cut",
            proxy.port
        ),
    );
    via_proxy.ok(&["list"], "");
    proxy.arm("UPDATE \"cut\".stores");
    let r = via_proxy.run(&["put", "acme"], &token_json("cut"));
    assert_eq!(
        proxy.cuts.load(Ordering::SeqCst),
        1,
        "the proxy did not cut: {r:?}"
    );
    assert_eq!(r.code, 8, "{r:?}");
    assert!(r.stderr.contains("not acknowledged"), "{r:?}");
    // Whole: either version, and the next writer proceeds.
    let now = envs[0].ok(&["token", "acme"], "");
    assert!(matches!(now.trim(), "before" | "cut"), "{now}");
    envs[0].ok(&["put", "acme"], &token_json("after"));
    assert_eq!(via_proxy.ok(&["token", "acme"], "").trim(), "after");
    eprintln!(
        "figures: a commit cut on the wire was {} on the server",
        if now.trim() == "cut" {
            "applied"
        } else {
            "not applied"
        }
    );
}

/// The server restarts in the middle of a storm of puts and refreshes: calls fail with a
/// clear error or succeed, every acknowledged put is there, no refresh token is presented
/// twice, and afterwards the tenant refreshes as before (no intent is left stranded).
///
/// A restart ends every session, the refresh locks' too: a process that then takes the
/// refresh lock while another's refresh is still in flight finds that one's intent and is
/// told to retry (exit 5: the refresh may still land), never to log in again (exit 4), and
/// never spends the token again; once the other refresh commits, it refreshes as before.
#[test]
fn a_server_restart_during_a_storm_loses_nothing() {
    warm();
    const PROCESSES: usize = 12;
    let server = OAuthServer::start(2);
    let (fleet, envs) = Fleet::ready("schema=restart", 2);
    envs[0].ok(&["put", "acme"], &server.grant("conf-basic").to_string());
    let envs: Vec<Arc<Env>> = envs.into_iter().map(Arc::new).collect();
    let acknowledged: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let failures: Arc<Mutex<Vec<String>>> = Arc::default();
    let deadline = Instant::now() + Duration::from_secs(8);
    let workers: Vec<_> = (0..PROCESSES)
        .map(|p| {
            let env = Arc::clone(&envs[p % 2]);
            let (ack, fail) = (Arc::clone(&acknowledged), Arc::clone(&failures));
            std::thread::spawn(move || {
                let mut i = 0;
                while Instant::now() < deadline {
                    i += 1;
                    let r = if p % 2 == 0 {
                        let access = format!("p{p}-{i}");
                        let r = env.run(&["put", &format!("t{p}")], &token_json(&access));
                        if r.code == 0 {
                            ack.lock().unwrap().push((format!("t{p}"), access));
                        }
                        r
                    } else {
                        env.run(&["token", "acme", "--min-valid", "1"], "")
                    };
                    if r.code != 0 {
                        // The server is gone (8), or a lock wait ran out or a refresh whose
                        // session ended may still land (5, see above).
                        assert!(matches!(r.code, 5 | 8), "an unclear failure: {r:?}");
                        fail.lock()
                            .unwrap()
                            .push(r.stderr.lines().next().unwrap_or("").to_owned());
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    fleet.pg.stop(true);
    std::thread::sleep(Duration::from_millis(500));
    fleet.pg.start_server();
    for w in workers {
        w.join().expect("a worker failed");
    }
    // The last acknowledged put of each tenant is what the store holds.
    let mut last = std::collections::BTreeMap::new();
    for (t, a) in acknowledged.lock().unwrap().iter() {
        last.insert(t.clone(), a.clone());
    }
    for (t, a) in &last {
        assert_eq!(
            &envs[1].ok(&["token", t], "").trim(),
            a,
            "an acknowledged put was lost"
        );
    }
    // Nothing stranded: the tenant refreshes after the storm (its token expires in 2 s).
    std::thread::sleep(Duration::from_secs(2));
    let r = envs[0].run(&["token", "acme", "--min-valid", "1"], "");
    assert_eq!(
        r.code, 0,
        "the tenant no longer refreshes after the restart: {r:?}"
    );
    let stats = server.stats();
    assert_eq!(stats["duplicate_presentations"], 0, "{stats}");
    assert_eq!(stats["grants_revoked"], 0, "{stats}");
    let failures = failures.lock().unwrap();
    eprintln!(
        "figures: restart during a storm: {} acknowledged puts, {} failed calls (e.g. {:?}), server: {stats}",
        acknowledged.lock().unwrap().len(),
        failures.len(),
        failures.first()
    );
}

/// `migrate --to URL` and back: the copy opens, holds the same tenants, and the source is
/// untouched; a destination that holds a store is never replaced.
#[test]
fn migrate_copies_a_directory_store_into_the_database_and_back() {
    warm();
    let fleet = Fleet::new("schema=moved");
    let local = Env::new();
    for t in ["a", "b", "c"] {
        local.ok(&["put", t], &token_json(&format!("at-{t}")));
    }
    let before = sha256_file(&local.store_file());
    let r = local.run(&["migrate", "--to", &fleet.url], "");
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("3 tenant(s)"), "{r:?}");
    assert_eq!(
        sha256_file(&local.store_file()),
        before,
        "the source changed"
    );
    let key = local.store_dir().join("key");
    let remote = fleet
        .machine(0)
        .env("CREDLOCK_KEY_FILE", &key.display().to_string());
    assert_eq!(remote.ok(&["token", "b"], "").trim(), "at-b");
    // Again: refused, nothing replaced.
    let r = local.run(&["migrate", "--to", &fleet.url], "");
    assert_eq!(r.code, 9, "{r:?}");
    assert!(r.stderr.contains("already holds a store"), "{r:?}");
    // And back into a new directory.
    let back = fleet.root.path().join("back");
    let r = remote.run(&["migrate", "--to", &back.display().to_string()], "");
    assert_eq!(r.code, 0, "{r:?}");
    let home = Env::new()
        .env("CREDLOCK_STORE", &back.display().to_string())
        .env("CREDLOCK_KEY_FILE", &key.display().to_string());
    assert_eq!(home.ok(&["token", "c"], "").trim(), "at-c");
    // The same tenants at the same revisions (sealed again, so not the same bytes).
    assert_eq!(revisions(&home), revisions(&local));
}

fn tenant_id(name: &str) -> String {
    credlock_core::tenant::TenantName::new(name).unwrap().id()
}

/// The rows of the store's tenant records: id and the transaction that last wrote each.
fn record_versions(
    admin: &mut postgres::Client,
    schema: &str,
) -> std::collections::BTreeMap<String, String> {
    admin
        .query(&format!("SELECT id, xmin::text FROM {schema}.records"), &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// One sealed record per tenant: a put or a refresh of one tenant writes that tenant's row
/// and the store's header, and no other row, whatever the number of tenants.
#[test]
fn a_call_about_one_tenant_writes_that_tenant_s_row_only() {
    warm();
    let oauth = OAuthServer::start(2);
    let (fleet, envs) = Fleet::ready("schema=flat", 1);
    let m = &envs[0];
    for i in 0..12 {
        m.ok(&["put", &format!("t{i}")], &token_json(&format!("at-{i}")));
    }
    m.ok(&["put", "fresh"], &oauth.grant("conf-basic").to_string());
    let mut admin = fleet.pg.admin();
    let before = record_versions(&mut admin, "flat");
    assert_eq!(before.len(), 13);
    m.ok(&["put", "t7"], &token_json("at-7b"));
    assert_eq!(m.ok(&["token", "t3"], "").trim(), "at-3");
    let after = record_versions(&mut admin, "flat");
    let changed: Vec<&String> = after
        .keys()
        .filter(|id| before[*id] != after[*id])
        .collect();
    assert_eq!(
        changed,
        vec![&tenant_id("t7")],
        "a put wrote other tenants' rows"
    );
    // A refresh: its intent and its result, in that tenant's row only.
    std::thread::sleep(Duration::from_millis(2_100));
    let r = m.run(&["token", "fresh", "--min-valid", "1"], "");
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(oauth.stats()["refresh_requests"], 1, "{}", oauth.stats());
    let last = record_versions(&mut admin, "flat");
    let changed: Vec<&String> = last.keys().filter(|id| after[*id] != last[*id]).collect();
    assert_eq!(
        changed,
        vec![&tenant_id("fresh")],
        "a refresh wrote other tenants' rows"
    );
}

/// A store written by a credlock of schema version 1 (one sealed blob in its row): read as
/// it is; its first write adds the records table (version 2) and splits it into records.
#[test]
fn a_version_1_store_is_upgraded_by_its_first_write() {
    warm();
    let fleet = Fleet::new("schema=old");
    let local = Env::new();
    for t in ["a", "b", "c"] {
        local.ok(&["put", t], &token_json(&format!("at-{t}")));
    }
    let blob = std::fs::read(local.store_file()).unwrap();
    let mut admin = fleet.pg.admin();
    // What version 1 created, and its one row.
    admin
        .batch_execute(
            "CREATE SCHEMA old; \
             CREATE TABLE old.credlock_schema (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now(), applied_by text NOT NULL); \
             CREATE TABLE old.stores (name text PRIMARY KEY, version bigint NOT NULL CHECK (version > 0), store bytea, backup bytea, updated_at timestamptz NOT NULL DEFAULT now()); \
             CREATE TABLE old.quarantined (name text NOT NULL, moved_as text NOT NULL, file text NOT NULL, contents bytea NOT NULL, moved_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (name, moved_as)); \
             INSERT INTO old.credlock_schema (version, applied_by) VALUES (1, 'credlock 0.1.0');",
        )
        .unwrap();
    admin
        .execute(
            "INSERT INTO old.stores (name, version, store) VALUES ('default', 1, $1)",
            &[&blob],
        )
        .unwrap();
    let key = local.store_dir().join("key");
    let m = fleet
        .machine(0)
        .env("CREDLOCK_KEY_FILE", &key.display().to_string());
    assert_eq!(m.ok(&["token", "b"], "").trim(), "at-b");
    m.ok(&["put", "d"], &token_json("at-d"));
    let v: i32 = admin
        .query_one("SELECT max(version) FROM old.credlock_schema", &[])
        .unwrap()
        .get(0);
    assert_eq!(v, 2);
    assert_eq!(record_versions(&mut admin, "old").len(), 4);
    for t in ["a", "b", "c", "d"] {
        assert_eq!(m.ok(&["token", t], "").trim(), format!("at-{t}"));
    }
}

/// TLS to the database: with the server's CA (`sslrootcert`) the store works; without it
/// the connection is refused (the certificate is verified, as libpq's verify-full), with an
/// error that says so; nothing is written.
#[test]
fn tls_to_the_database_verifies_the_server() {
    warm();
    let pg = PgCluster::start_with_tls();
    let ca = pg.ca.clone().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let env = |query: &str| {
        Env::new()
            .env("CREDLOCK_STORE", &pg.url(query))
            .env(
                "CREDLOCK_KEY_FILE",
                &dir.path().join("key").display().to_string(),
            )
            .env(
                "XDG_DATA_HOME",
                &dir.path().join("data").display().to_string(),
            )
    };
    let verified = env(&format!(
        "schema=tls&sslmode=require&sslrootcert={}",
        ca.display()
    ));
    verified.ok(&["put", "acme"], &token_json("over-tls"));
    assert_eq!(verified.ok(&["token", "acme"], "").trim(), "over-tls");
    // The server logged credlock's sessions as TLS ones (log_connections).
    assert!(
        pg.log().contains("SSL enabled"),
        "no TLS session in the server log: {}",
        pg.log()
    );
    let unverified = env("schema=tls&sslmode=require");
    let r = unverified.run(&["put", "acme"], &token_json("mitm"));
    assert_eq!(r.code, 8, "{r:?}");
    assert!(r.stderr.to_lowercase().contains("certificate"), "{r:?}");
    assert_eq!(verified.ok(&["token", "acme"], "").trim(), "over-tls");
    let r = verified.run(&["doctor"], "");
    assert_eq!(r.code, 0, "{r:?}");
}
