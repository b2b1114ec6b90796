//! `--postgres`: the fleet store on a private PostgreSQL cluster (started here, stopped at
//! the end), each figure beside the database's own floor on the same server in the same run.
//! - `put` against one `UPDATE ... WHERE generation = $1` autocommit with synchronous commit;
//! - lock hand-over through advisory locks, credlock's sessions against raw ones;
//! - `token` and `put` by tenant count, for the database store and the file store.

#[path = "../../host/tests/common/pg.rs"]
mod pgcluster;

use super::{ms, pct, samples, us, Report, TOKEN_JSON};
use credlock::{Config, Credlock};
use credlock_core::platform::{LockMode, LockTarget};
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn store(dir: &Path, cache: &Path, url: &str) -> Credlock {
    // This machine's directory: the key file a new database store gets here.
    std::fs::create_dir_all(dir).unwrap();
    let mut c = Config::for_dir(dir);
    c.cache_dir = Some(cache.to_path_buf());
    c.options.lock_timeout_ms = 120_000;
    c.database = Some(credlock::pg::Database::parse(url).unwrap());
    Credlock::open(c).unwrap()
}

pub fn run(r: &mut Report, dir: &Path, cache: &Path, full: bool) {
    let pg = pgcluster::PgCluster::start();
    put_vs_floor(r, &pg, dir, cache, if full { 500 } else { 100 });
    handover(r, &pg, if full { 500 } else { 100 });
    let counts: &[usize] = if full {
        &[10, 1_000, 10_000, 100_000]
    } else {
        &[10, 1_000, 10_000]
    };
    by_tenants(r, &pg, dir, cache, counts);
}

fn put_vs_floor(r: &mut Report, pg: &pgcluster::PgCluster, dir: &Path, cache: &Path, n: usize) {
    let mut s = store(&dir.join("pg-put"), cache, &pg.url("schema=bench_put"));
    s.put("acme", TOKEN_JSON).unwrap();
    let mut admin = pg.admin();
    let blob_len: i32 = admin
        .query_one("SELECT octet_length(store) FROM bench_put.stores", &[])
        .unwrap()
        .get(0);
    admin
        .batch_execute(
            "CREATE TABLE floor (id int PRIMARY KEY, generation bigint NOT NULL, blob bytea); INSERT INTO floor VALUES (1, 0, NULL)",
        )
        .unwrap();
    let blob = vec![7u8; blob_len as usize];
    let mut generation = 0i64;
    let mut floor_once = || {
        let t = Instant::now();
        let rows = admin
            .query_typed(
                "UPDATE floor SET blob = $1, generation = generation + 1 WHERE id = 1 AND generation = $2 RETURNING generation",
                &[
                    (&blob, postgres::types::Type::BYTEA),
                    (&generation, postgres::types::Type::INT8),
                ],
            )
            .unwrap();
        generation = rows[0].get(0);
        t.elapsed()
    };
    for _ in 0..n / 10 {
        floor_once();
        s.put("acme", TOKEN_JSON).unwrap();
    }
    let f: Vec<_> = (0..n).map(|_| floor_once()).collect();
    let c = samples(n, || {
        s.put("acme", TOKEN_JSON).unwrap();
    });
    let (c50, f50) = (pct(c.clone(), 0.5), pct(f.clone(), 0.5));
    r.row(
        "database: one `put` vs one fenced synchronous UPDATE (p50)",
        ms(c50),
        ms(f50),
        format!("{:.2}×", c50.as_secs_f64() / f50.as_secs_f64()),
        "≤ 1.5×",
    );
    r.row(
        "database: one `put` vs one fenced synchronous UPDATE (p99)",
        ms(pct(c, 0.99)),
        ms(pct(f, 0.99)),
        "—".into(),
        "—",
    );
}

/// Release in one session until a waiter blocked in another holds the lock: credlock's
/// advisory locks (`PgPlatform`), and raw `pg_advisory_lock` calls as the floor.
fn handover(r: &mut Report, pg: &pgcluster::PgCluster, rounds: usize) {
    let url = pg.url("schema=bench_handover");
    // credlock's.
    let samples = ping_pong(rounds, {
        let url = url.clone();
        move || {
            let db = credlock::pg::Database::parse(&url).unwrap();
            let mut p = credlock::pg::PgPlatform::new(db);
            move |hold: bool| -> Option<Box<dyn FnOnce()>> {
                if hold {
                    let mut g = p
                        .acquire(&LockTarget::Store, LockMode::Exclusive, 60_000)
                        .unwrap();
                    Some(Box::new(move || g.release()))
                } else {
                    None
                }
            }
        }
    });
    // Raw advisory locks on plain sessions.
    let floor = ping_pong(rounds, {
        let port = pg.port;
        move || {
            let client = std::sync::Arc::new(std::sync::Mutex::new(
                postgres::Config::new()
                    .host("127.0.0.1")
                    .port(port)
                    .user("credlock")
                    .dbname("postgres")
                    .connect(postgres::NoTls)
                    .unwrap(),
            ));
            move |hold: bool| -> Option<Box<dyn FnOnce()>> {
                if hold {
                    client
                        .lock()
                        .unwrap()
                        .batch_execute("SELECT pg_advisory_lock(42)")
                        .unwrap();
                    let c = std::sync::Arc::clone(&client);
                    Some(Box::new(move || {
                        c.lock()
                            .unwrap()
                            .batch_execute("SELECT pg_advisory_unlock(42)")
                            .unwrap()
                    }))
                } else {
                    None
                }
            }
        }
    });
    for (p, name) in [(0.5, "p50"), (0.99, "p99")] {
        let (c, f) = (pct(samples.clone(), p), pct(floor.clone(), p));
        r.row(
            &format!("database: lock hand-over between sessions ({name})"),
            us(c),
            us(f),
            format!("{:.1}×", c.as_secs_f64() / f.as_secs_f64()),
            "—",
        );
    }
}

/// Two threads, each with its own sessions (`make` builds a locker: `locker(true)` takes the
/// lock and returns its release). A holds, B blocks; A notes the time and releases; B notes
/// when it holds. The difference is the hand-over.
fn ping_pong<L, M>(rounds: usize, make: M) -> Vec<Duration>
where
    M: Fn() -> L + Send + Sync + Clone + 'static,
    L: FnMut(bool) -> Option<Box<dyn FnOnce()>>,
{
    let epoch = Instant::now();
    let (to_b, b_rx) = mpsc::channel::<()>();
    let (to_a, a_rx) = mpsc::channel::<Duration>();
    let mk = make.clone();
    let b = std::thread::spawn(move || {
        let mut lock = mk();
        let mut got = Vec::new();
        while b_rx.recv().is_ok() {
            let release = lock(true).unwrap();
            got.push(epoch.elapsed());
            release();
            to_a.send(*got.last().unwrap()).unwrap();
        }
        got
    });
    let mut lock = make();
    let mut out = Vec::new();
    for _ in 0..rounds {
        let release = lock(true).unwrap();
        to_b.send(()).unwrap();
        // Let B reach the server and block there.
        std::thread::sleep(Duration::from_millis(3));
        let released_at = epoch.elapsed();
        release();
        let acquired_at = a_rx.recv().unwrap();
        out.push(acquired_at.saturating_sub(released_at));
    }
    drop(to_b);
    b.join().unwrap();
    out
}

/// `token` and `put` as the store grows: the database store, which keeps one sealed record
/// per tenant (flat: a call reads and writes its tenant's record and the header), and the
/// file store, one sealed blob (O(tenants); over the 16 MiB limit, about 17,000 tenants of
/// this size, it is refused).
fn by_tenants(
    r: &mut Report,
    pg: &pgcluster::PgCluster,
    dir: &Path,
    cache: &Path,
    counts: &[usize],
) {
    for &n in counts {
        let map: serde_json::Map<String, serde_json::Value> = (0..n)
            .map(|i| {
                (
                    format!("tenant-{i}"),
                    serde_json::from_str(TOKEN_JSON).unwrap(),
                )
            })
            .collect();
        let source = serde_json::Value::Object(map).to_string();
        for kind in ["database", "file"] {
            let sdir = dir.join(format!("tenants-{kind}-{n}"));
            let mut s = match kind {
                "database" => store(&sdir, cache, &pg.url(&format!("schema=bench_{n}"))),
                _ => {
                    let mut c = Config::for_dir(&sdir);
                    c.cache_dir = Some(cache.to_path_buf());
                    Credlock::open(c).unwrap()
                }
            };
            if let Err(e) = s.import_tokens(&source, None, &credlock::ImportOptions::default()) {
                r.row(
                    &format!("tenants: {n}, {kind} store"),
                    format!("refused: {e}"),
                    "—".into(),
                    "—".into(),
                    "flat",
                );
                continue;
            }
            let k = if n >= 10_000 { 5 } else { 30 };
            let timed = |f: &mut dyn FnMut() -> Result<(), credlock::Error>| {
                let mut v = Vec::new();
                for _ in 0..k {
                    let t = Instant::now();
                    f()?;
                    v.push(t.elapsed());
                }
                Ok::<_, credlock::Error>(pct(v, 0.5))
            };
            let token = timed(&mut || s.token("tenant-1", 60_000).map(drop));
            let put = match &token {
                Ok(_) => timed(&mut || s.put("tenant-1", TOKEN_JSON).map(drop)),
                Err(_) => Ok(Duration::ZERO),
            };
            let (token, put) = match (token, put) {
                (Ok(t), Ok(p)) => (t, p),
                (Err(e), _) | (_, Err(e)) => {
                    r.row(
                        &format!("tenants: {n}, {kind} store"),
                        format!("fails: {e}"),
                        "—".into(),
                        "—".into(),
                        "flat",
                    );
                    continue;
                }
            };
            r.row(
                &format!("tenants: {n}, {kind} store, `token` / `put` (p50)"),
                format!("{} / {}", ms(token), ms(put)),
                "—".into(),
                "—".into(),
                "flat",
            );
        }
    }
}
