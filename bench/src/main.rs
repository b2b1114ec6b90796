//! `credlock-bench`: every figure beside its floor, measured in the same run, printed as a
//! markdown table with the target and a verdict. Not a test: it never fails on speed.
//!
//! ```text
//! credlock-bench [--full] [--peers] [--postgres] [--out FILE]
//! ```
//! Quick mode takes a couple of minutes; `--full` runs every process count and more rounds.
//! `--peers` adds Python filelock / portalocker / msal-extensions and Node proper-lockfile
//! (installed by bench/peers/setup.sh). `--postgres` adds the fleet store on a private
//! PostgreSQL cluster (bench/src/database.rs). Internal worker modes start with `worker-`.

mod database;
mod floor;

use credlock::{Backend, Config, Credlock};
use floor::Floor;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn monotonic_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// `n` timings of `f`, one call each.
fn samples(n: usize, mut f: impl FnMut()) -> Vec<Duration> {
    (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect()
}

fn pct(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

struct Report {
    rows: Vec<[String; 5]>,
    /// credlock's contention throughput by process count, for the peer rows.
    contention_ops: std::collections::BTreeMap<usize, f64>,
}

impl Report {
    fn row(&mut self, what: &str, credlock: String, floor: String, ratio: String, target: &str) {
        println!("{what}: credlock {credlock}, floor {floor}, ratio {ratio} (target {target})");
        self.rows
            .push([what.into(), credlock, floor, ratio, target.into()]);
    }
}

fn bin_dir() -> PathBuf {
    std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf()
}

fn credlock_bin() -> PathBuf {
    let p = bin_dir().join("credlock");
    assert!(
        p.exists(),
        "build the CLI too: cargo build --release -p credlock -p credlock-bench"
    );
    p
}

fn config(dir: &Path, cache: &Path) -> Config {
    let mut c = Config::for_dir(dir);
    c.cache_dir = Some(cache.to_path_buf());
    c.options.lock_timeout_ms = 120_000;
    c
}

const TOKEN_JSON: &str = r#"{"access_token":"bench-access-token-0123456789abcdef0123456789abcdef","token_type":"Bearer","expires_in":3600,"refresh_token":"bench-refresh-token-0123456789abcdef","scope":"openid api"}"#;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(mode) = args.first().filter(|a| a.starts_with("worker-")) {
        return worker(mode, &args[1..]);
    }
    let full = args.iter().any(|a| a == "--full");
    let peers = args.iter().any(|a| a == "--peers");
    let postgres = args.iter().any(|a| a == "--postgres");
    let out = args
        .iter()
        .position(|a| a == "--out")
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| "target/bench-report.md".into());
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let mut r = Report {
        rows: Vec::new(),
        contention_ops: Default::default(),
    };
    let started = Instant::now();

    reads(&mut r, tmp.path(), &cache, if full { 5000 } else { 1000 });
    oneshot(&mut r, tmp.path(), &cache, if full { 200 } else { 50 });
    cold(&mut r, tmp.path(), if full { 50 } else { 15 });
    update(&mut r, tmp.path(), &cache, if full { 500 } else { 100 });
    let ns: &[usize] = if full {
        &[1, 2, 4, 8, 16, 32]
    } else {
        &[1, 4, 16, 32]
    };
    contention(&mut r, tmp.path(), &cache, ns, if full { 100 } else { 25 });
    handover(&mut r, tmp.path(), if full { 500 } else { 100 });
    component_costs(&mut r, tmp.path(), &cache);
    storm(&mut r, tmp.path(), &cache, 64);
    if peers {
        peer_contention(&mut r, tmp.path(), ns, if full { 100 } else { 25 });
    }
    if postgres {
        database::run(&mut r, tmp.path(), &cache, full);
    }

    let mut md = String::new();
    md.push_str("| measure | credlock | floor / peer | ratio | target |\n|---|---|---|---|---|\n");
    for row in &r.rows {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            row[0], row[1], row[2], row[3], row[4]
        ));
    }
    md.push_str(&format!(
        "\nmode: {}, {} cores, wall time {:.0} s\n",
        if full { "full" } else { "quick" },
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        started.elapsed().as_secs_f64()
    ));
    if let Some(parent) = Path::new(&out).parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    std::fs::write(&out, &md).unwrap();
    println!("\n{md}\nwritten to {out}");
}

/// In-process reads: the component, the native core, and the floor.
fn reads(r: &mut Report, dir: &Path, cache: &Path, n: usize) {
    let store_dir = dir.join("reads");
    let mut wasm = Credlock::open(config(&store_dir, cache)).unwrap();
    wasm.put("acme", TOKEN_JSON).unwrap();
    let mut cfg = config(&store_dir, cache);
    cfg.backend = Backend::Native;
    let mut native = Credlock::open(cfg).unwrap();
    let floor = Floor::new(&dir.join("floor-reads"));
    let plain = std::fs::read(store_dir.join("credentials.sealed")).unwrap();
    floor.atomic_write(&Floor::seal(&plain, 1));
    let time = |f: &mut dyn FnMut()| {
        for _ in 0..n / 10 {
            f();
        }
        samples(n, f)
    };
    let fl = pct(time(&mut || drop(floor.read())), 0.5);
    let w = pct(time(&mut || drop(wasm.token("acme", 60_000).unwrap())), 0.5);
    let nat = pct(
        time(&mut || drop(native.token("acme", 60_000).unwrap())),
        0.5,
    );
    let ratio = |a: Duration| format!("{:.1}×", a.as_secs_f64() / fl.as_secs_f64());
    r.row(
        "read: in-process `token`, component (p50)",
        us(w),
        us(fl),
        ratio(w),
        "≤ 3× floor",
    );
    r.row(
        "read: in-process `token`, native core (p50)",
        us(nat),
        us(fl),
        ratio(nat),
        "—",
    );

    // The same read on a store of 32 tenants (an agent with many MCP servers, a CLI with
    // many profiles): the component decodes only the tenant asked for (core/src/unread.rs),
    // against a floor that reads and opens a file of the same size.
    let many_dir = dir.join("reads-32");
    let mut many = Credlock::open(config(&many_dir, cache)).unwrap();
    for i in 0..31 {
        many.put(&format!("tenant-{i}"), TOKEN_JSON).unwrap();
    }
    many.put("acme", TOKEN_JSON).unwrap();
    let floor_many = Floor::new(&dir.join("floor-reads-32"));
    let plain = std::fs::read(many_dir.join("credentials.sealed")).unwrap();
    floor_many.atomic_write(&Floor::seal(&plain, 1));
    let fl = pct(time(&mut || drop(floor_many.read())), 0.5);
    let w = pct(time(&mut || drop(many.token("acme", 60_000).unwrap())), 0.5);
    r.row(
        "read: in-process `token`, component, store of 32 tenants (p50)",
        us(w),
        us(fl),
        format!("{:.1}×", w.as_secs_f64() / fl.as_secs_f64()),
        "—",
    );
}

/// One-shot processes: `credlock token` against a native process that locks and reads.
fn oneshot(r: &mut Report, dir: &Path, cache: &Path, n: usize) {
    let store_dir = dir.join("reads");
    let run = |cmd: &mut Command| {
        let t = Instant::now();
        let s = cmd.stdout(Stdio::null()).status().unwrap();
        assert!(s.success());
        t.elapsed()
    };
    let cli = credlock_bin();
    let xdg = cache.parent().unwrap().join("xdg");
    run(Command::new(&cli)
        .args(["token", "acme"])
        .env("CREDLOCK_STORE", &store_dir)
        .env("XDG_CACHE_HOME", &xdg));
    let c: Vec<_> = (0..n)
        .map(|_| {
            run(Command::new(&cli)
                .args(["token", "acme"])
                .env("CREDLOCK_STORE", &store_dir)
                .env("XDG_CACHE_HOME", &xdg))
        })
        .collect();
    let me = std::env::current_exe().unwrap();
    let f: Vec<_> = (0..n)
        .map(|_| {
            run(Command::new(&me).args([
                "worker-floor-read",
                dir.join("floor-reads").to_str().unwrap(),
            ]))
        })
        .collect();
    let (c, f) = (pct(c, 0.5), pct(f, 0.5));
    r.row(
        "read: one-shot `credlock token` process (p50)",
        ms(c),
        ms(f),
        format!("{:.1}×", c.as_secs_f64() / f.as_secs_f64()),
        "≤ 10 ms and ≤ 3× floor",
    );
}

/// Wall time and peak resident memory (bytes) of one child process, run to its end, measured
/// by a fresh `credlock-bench worker-measure` between this process and the child: Linux
/// counts a child's peak from the memory of the process that forked it, so a child of this
/// process, which has loaded the component and run stores by then, would be charged for it
/// (a 17 MiB `credlock token` reads 313 MiB under a 300 MiB parent).
fn run_measured(cmd: &Command) -> (Duration, u64) {
    let mut outer = Command::new(std::env::current_exe().unwrap());
    outer
        .arg("worker-measure")
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => outer.env(k, v),
            None => outer.env_remove(k),
        };
    }
    let out = outer.stderr(Stdio::inherit()).output().unwrap();
    assert!(out.status.success(), "{cmd:?} failed");
    let text = String::from_utf8(out.stdout).unwrap();
    let mut it = text.split_whitespace().map(|x| x.parse::<u64>().unwrap());
    let (wall_ns, peak) = (it.next().unwrap(), it.next().unwrap());
    (Duration::from_nanos(wall_ns), peak)
}

/// `worker-measure`'s work: spawn, wait4, and the child's own wall time and peak memory.
fn measure_child(cmd: &mut Command) -> (Duration, u64) {
    let t = Instant::now();
    let mut child = cmd.stdout(Stdio::null()).spawn().unwrap();
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero `rusage` is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waiting for our own child, with valid pointers to locals.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = t.elapsed();
    assert_eq!(waited, pid, "wait4: {}", std::io::Error::last_os_error());
    // Reaped by wait4 above; this only tells `Child` so (it answers from the OS's ECHILD).
    let _ = child.try_wait();
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{cmd:?} failed: {status}"
    );
    // Linux reports ru_maxrss in KiB.
    (wall, usage.ru_maxrss as u64 * 1024)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// The first call of a process whose user has no compiled component cached (a new machine,
/// a container, CI), and of one whose home cannot be written, beside the warm call of the
/// same run: the build's embedded artifact must make the first call as cheap as any other
/// (issue 25: at most 2× the warm wall time, at most 25 MB peak memory).
///
/// Each first call gets a HOME of its own. "Empty": HOME and XDG_CACHE_HOME point at a new
/// empty directory. "Read-only": HOME is a directory of mode 0555 and XDG_CACHE_HOME lies
/// below a regular file, so no user, root included, can create the cache.
fn cold(r: &mut Report, dir: &Path, n: usize) {
    let cli = credlock_bin();
    let store_dir = dir.join("reads");
    let homes = dir.join("cold-homes");
    std::fs::create_dir_all(&homes).unwrap();
    let blocker = homes.join("a-file");
    std::fs::write(&blocker, "").unwrap();
    let token = |home: &Path, xdg: &Path| {
        let mut c = Command::new(&cli);
        c.args(["token", "acme"])
            .env("CREDLOCK_STORE", &store_dir)
            .env("HOME", home)
            .env("XDG_CACHE_HOME", xdg);
        run_measured(&c)
    };
    // Warm: one HOME, used again and again, as every call after a user's first.
    let warm_home = homes.join("warm");
    std::fs::create_dir_all(&warm_home).unwrap();
    token(&warm_home, &warm_home);
    let warm: Vec<_> = (0..n).map(|_| token(&warm_home, &warm_home)).collect();
    let empty: Vec<_> = (0..n)
        .map(|i| {
            let home = homes.join(format!("empty-{i}"));
            std::fs::create_dir_all(&home).unwrap();
            token(&home, &home)
        })
        .collect();
    let read_only: Vec<_> = (0..n)
        .map(|i| {
            use std::os::unix::fs::PermissionsExt;
            let home = homes.join(format!("ro-{i}"));
            std::fs::create_dir_all(&home).unwrap();
            std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o555)).unwrap();
            token(&home, &blocker.join("cache"))
        })
        .collect();
    let wall = |v: &[(Duration, u64)]| pct(v.iter().map(|x| x.0).collect(), 0.5);
    let peak = |v: &[(Duration, u64)]| v.iter().map(|x| x.1).max().unwrap_or(0);
    let warm_wall = wall(&warm);
    r.row(
        "CLI: warm `credlock token` (p50; peak memory the max)",
        format!("{}, {}", ms(warm_wall), mib(peak(&warm))),
        "—".into(),
        "—".into(),
        "—",
    );
    for (what, v) in [
        ("CLI: first `credlock token`, empty HOME", &empty),
        ("CLI: first `credlock token`, read-only HOME", &read_only),
    ] {
        let (w, p) = (wall(v), peak(v));
        let ratio = w.as_secs_f64() / warm_wall.as_secs_f64();
        r.row(
            &format!("{what} (p50 of {n}; peak memory the max)"),
            format!("{}, {}", ms(w), mib(p)),
            format!("warm {}", ms(warm_wall)),
            format!("{ratio:.2}×"),
            "≤ 2× warm and ≤ 25 MB",
        );
    }
}

fn update(r: &mut Report, dir: &Path, cache: &Path, n: usize) {
    let store_dir = dir.join("update");
    let mut s = Credlock::open(config(&store_dir, cache)).unwrap();
    s.put("acme", TOKEN_JSON).unwrap();
    let size = std::fs::metadata(store_dir.join("credentials.sealed"))
        .unwrap()
        .len() as usize;
    let floor = Floor::new(&dir.join("floor-update"));
    let blob = vec![7u8; size];
    let f = samples(n, || floor.atomic_write(&blob));
    let c = samples(n, || {
        s.put("acme", TOKEN_JSON).unwrap();
    });
    let (c, f) = (pct(c, 0.5), pct(f, 0.5));
    r.row(
        "update: one `put` vs one durable atomic write (p50)",
        ms(c),
        ms(f),
        format!("{:.2}×", c.as_secs_f64() / f.as_secs_f64()),
        "≤ 1.2×",
    );
}

/// How long `n` workers took: (from the moment all were ready, from their spawn).
///
/// Each worker opens its store and makes one update that is not counted (the first call
/// of a process: the component loaded, the store and its key made), says `ready`, and
/// waits for `go`: contention measures updates racing for one lock, not process start-up,
/// which the cold-start and one-shot rows measure. The second figure includes it.
fn spawn_workers(mode: &str, dir: &Path, n: usize, k: usize, cache: &Path) -> (Duration, Duration) {
    let me = std::env::current_exe().unwrap();
    let spawned = Instant::now();
    let mut children: Vec<_> = (0..n)
        .map(|i| {
            Command::new(&me)
                .args([
                    mode,
                    dir.to_str().unwrap(),
                    &format!("w{i}"),
                    &k.to_string(),
                    cache.to_str().unwrap(),
                    "--barrier",
                ])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in &mut children {
        let mut line = String::new();
        BufReader::new(c.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "a {mode} worker did not start");
    }
    let go = Instant::now();
    for c in &mut children {
        writeln!(c.stdin.as_mut().unwrap(), "go").unwrap();
    }
    for mut c in children {
        assert!(c.wait().unwrap().success(), "a {mode} worker failed");
    }
    (go.elapsed(), spawned.elapsed())
}

/// In a worker started with `--barrier`: say `ready`, then wait for `go`.
fn barrier(args: &[String]) {
    if args.iter().any(|a| a == "--barrier") {
        println!("ready");
        std::io::stdout().flush().unwrap();
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "go");
    }
}

/// N processes doing read-modify-write on one store, against the floor's lock/read/modify/write loop.
fn contention(r: &mut Report, dir: &Path, cache: &Path, ns: &[usize], k: usize) {
    // Load the component once before the workers start (their binary carries it compiled).
    Credlock::open(config(&dir.join("warm"), cache))
        .unwrap()
        .list()
        .unwrap();
    for &n in ns {
        let fdir = dir.join(format!("floor-contention-{n}"));
        let (f, f_with_start) = spawn_workers("worker-floor-rmw", &fdir, n, k, cache);
        let counts = Floor::new(&fdir).counts();
        // Each worker made k + 1 updates: its uncounted first one, then k.
        let floor_lost = n * (k + 1)
            - counts
                .values()
                .map(|v| v.as_u64().unwrap() as usize)
                .sum::<usize>();
        let cdir = dir.join(format!("credlock-contention-{n}"));
        let (c, c_with_start) = spawn_workers("worker-credlock-rmw", &cdir, n, k, cache);
        let list = Credlock::open(config(&cdir, cache))
            .unwrap()
            .list()
            .unwrap();
        let credlock_lost: usize =
            n * (k + 1) - list.iter().map(|t| t.revision as usize).sum::<usize>();
        let ops = (n * k) as f64;
        let (cps, fps) = (ops / c.as_secs_f64(), ops / f.as_secs_f64());
        let (cps_s, fps_s) = (
            ops / c_with_start.as_secs_f64(),
            ops / f_with_start.as_secs_f64(),
        );
        r.contention_ops.insert(n, cps);
        r.row(
            &format!(
                "contention: {n} processes × {k} updates [in brackets: timed from spawn, start-up included]"
            ),
            format!("{cps:.0} ops/s [{cps_s:.0}], {credlock_lost} lost"),
            format!("{fps:.0} ops/s [{fps_s:.0}], {floor_lost} lost"),
            format!("{:.2}× [{:.2}×]", cps / fps, cps_s / fps_s),
            "≥ 0.8×, 0 lost",
        );
    }
}

/// Time from release until a blocked waiter in another process holds the lock.
fn handover(r: &mut Report, dir: &Path, rounds: usize) {
    let mut results = Vec::new();
    for kind in ["floor", "credlock"] {
        let path = dir.join(format!("handover-{kind}.lock"));
        std::fs::write(&path, b"").unwrap();
        let me = std::env::current_exe().unwrap();
        let mut child = Command::new(&me)
            .args([&format!("worker-handover-{kind}"), path.to_str().unwrap()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut to = child.stdin.take().unwrap();
        let mut from = BufReader::new(child.stdout.take().unwrap());
        let mut samples = Vec::new();
        for _ in 0..rounds {
            let held = credlock::locks::acquire(
                &path,
                credlock_core::platform::LockMode::Exclusive,
                Duration::from_secs(10),
            )
            .unwrap();
            writeln!(to, "go").unwrap();
            to.flush().unwrap();
            let mut ready = String::new();
            from.read_line(&mut ready).unwrap();
            // Give the waiter time to block inside flock.
            std::thread::sleep(Duration::from_millis(3));
            let t0 = monotonic_ns();
            drop(held);
            let mut line = String::new();
            from.read_line(&mut line).unwrap();
            let t1: u64 = line.trim().parse().unwrap();
            samples.push(Duration::from_nanos(t1.saturating_sub(t0)));
        }
        drop(to);
        let _ = child.wait();
        results.push((pct(samples.clone(), 0.5), pct(samples, 0.99)));
    }
    let ((fp50, fp99), (cp50, cp99)) = (results[0], results[1]);
    r.row(
        "lock hand-over between processes (p50)",
        us(cp50),
        us(fp50),
        format!("{:.1}×", cp50.as_secs_f64() / fp50.as_secs_f64()),
        "p50 ≤ 100 µs",
    );
    r.row(
        "lock hand-over between processes (p99)",
        us(cp99),
        us(fp99),
        format!("{:.1}×", cp99.as_secs_f64() / fp99.as_secs_f64()),
        "—",
    );
}

fn component_costs(r: &mut Report, dir: &Path, cache: &Path) {
    // The host's own engine configuration: the figure is what the fallback compile costs.
    let engine = wasmtime::Engine::new(&credlock_engine::config()).unwrap();
    let t = Instant::now();
    let c =
        wasmtime::component::Component::new(&engine, credlock::component::COMPONENT_WASM).unwrap();
    let compile = t.elapsed();
    drop(c);
    // A process's first load (what every one-shot process pays): in a process of its own,
    // where on x86-64 Linux the artifact runs in place from the binary.
    let first: Vec<Duration> = (0..20)
        .map(|_| {
            let out = Command::new(std::env::current_exe().unwrap())
                .arg("worker-load")
                .output()
                .unwrap();
            assert!(out.status.success(), "worker-load failed");
            let nanos: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
            Duration::from_nanos(nanos)
        })
        .collect();
    r.row(
        "component: a process's first load of the embedded artifact + link (p50)",
        ms(pct(first, 0.5)),
        "—".into(),
        "—".into(),
        "—",
    );
    // This process loaded its runtime already (the reads above): a second one is copied.
    let t = Instant::now();
    let rt = credlock::component::Runtime::load(Some(cache)).unwrap();
    let load = t.elapsed();
    let mut inst = Vec::new();
    let mut platform = Some(credlock::native::NativePlatform::new(
        credlock::layout::Layout::new(dir.join("inst")),
        credlock::keys::Keyring::new(Default::default()),
        Default::default(),
    ));
    for _ in 0..200 {
        let t = Instant::now();
        let i = rt.instantiate(platform.take().unwrap()).ok().unwrap();
        inst.push(t.elapsed());
        platform = Some(i.into_platform());
    }
    r.row(
        "component: compile at run time (release host; only where the embedded artifact is refused)",
        ms(compile),
        "—".into(),
        "—".into(),
        "—",
    );
    r.row(
        "component: a second runtime in one process (the artifact copied) + link",
        ms(load),
        "—".into(),
        "—".into(),
        "—",
    );
    r.row(
        "component: instantiate (p50)",
        us(pct(inst, 0.5)),
        "—".into(),
        "—".into(),
        "—",
    );
    r.row(
        "component: .wasm size",
        format!("{} KiB", credlock::component::COMPONENT_WASM.len() / 1024),
        "—".into(),
        "—".into(),
        "—",
    );
    r.row(
        "component: embedded compiled artifact size",
        format!(
            "{} KiB",
            credlock::component::COMPILED_COMPONENT.len() / 1024
        ),
        "—".into(),
        "—".into(),
        "—",
    );
    // Peak memory of a one-shot CLI process.
    let (_, peak) = run_measured(
        Command::new(credlock_bin())
            .args(["token", "acme"])
            .env("CREDLOCK_STORE", dir.join("reads"))
            .env("XDG_CACHE_HOME", cache.parent().unwrap().join("xdg")),
    );
    r.row(
        "CLI: peak memory of one `credlock token`",
        mib(peak),
        "—".into(),
        "—".into(),
        "—",
    );
}

/// 64 processes find one expired token at once, against the real OAuth server.
fn storm(r: &mut Report, dir: &Path, cache: &Path, n: usize) {
    let server_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/oauth-server");
    if !server_dir.join("node_modules").exists() {
        r.row(
            "refresh storm",
            "skipped: tests/oauth-server not installed (scripts/setup.sh)".into(),
            "—".into(),
            "—".into(),
            "1 request",
        );
        return;
    }
    let url_file = dir.join("oauth-url");
    let ok = Command::new("bash")
        .arg(server_dir.join("start.sh"))
        .arg(&url_file)
        .env("ACCESS_TTL_SECONDS", "60")
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        r.row(
            "refresh storm",
            "skipped: the OAuth server did not start".into(),
            "—".into(),
            "—".into(),
            "1 request",
        );
        return;
    }
    let base = std::fs::read_to_string(&url_file)
        .unwrap()
        .trim()
        .to_owned();
    let pid = std::fs::read_to_string(format!("{}.pid", url_file.display()))
        .unwrap()
        .trim()
        .to_owned();
    let post = |path: &str, body: &str| -> serde_json::Value {
        let out = Command::new("curl")
            .args([
                "-s",
                "-X",
                "POST",
                "-H",
                "Content-Type: application/json",
                "-d",
                body,
                &format!("{base}{path}"),
            ])
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or_default()
    };
    let mut grant = post(
        "/test/grant",
        r#"{"client_id":"conf-basic","account":"alice","scope":"openid offline_access api"}"#,
    );
    let obj = grant.as_object_mut().unwrap();
    obj.remove("grant_id");
    obj.insert("expires_in".into(), 0.into());
    obj.insert("token_endpoint".into(), format!("{base}/token").into());
    obj.insert("client_id".into(), "conf-basic".into());
    obj.insert("client_secret".into(), "basic-secret".into());
    let store_dir = dir.join("storm");
    Credlock::open(config(&store_dir, cache))
        .unwrap()
        .put("acme", &grant.to_string())
        .unwrap();
    let xdg = cache.parent().unwrap().join("xdg");
    let t = Instant::now();
    let children: Vec<_> = (0..n)
        .map(|_| {
            Command::new(credlock_bin())
                .args(["token", "acme"])
                .env("CREDLOCK_STORE", &store_dir)
                .env("XDG_CACHE_HOME", &xdg)
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut tokens = std::collections::BTreeSet::new();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success());
        tokens.insert(String::from_utf8_lossy(&out.stdout).trim().to_owned());
    }
    let all = t.elapsed();
    let stats = Command::new("curl")
        .args(["-s", &format!("{base}/test/stats")])
        .output()
        .unwrap();
    let stats: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap_or_default();
    let _ = Command::new("kill").arg(&pid).status();
    r.row(
        &format!("refresh storm: {n} processes, one expired token"),
        format!(
            "{} request(s) to the server, all {n} hold the new token after {}",
            stats["refresh_requests"],
            ms(all)
        ),
        "—".into(),
        format!("{} distinct token(s)", tokens.len()),
        "exactly 1 request",
    );
}

fn peer_contention(r: &mut Report, dir: &Path, ns: &[usize], k: usize) {
    let peers = Path::new(env!("CARGO_MANIFEST_DIR")).join("peers");
    let setup = Command::new("bash").arg(peers.join("setup.sh")).status();
    if !setup.map(|s| s.success()).unwrap_or(false) {
        r.row(
            "peers",
            "skipped: bench/peers/setup.sh failed".into(),
            "—".into(),
            "—".into(),
            "—",
        );
        return;
    }
    for &n in ns {
        let fdir = dir.join(format!("peer-floor-{n}"));
        let (f, _) = spawn_workers("worker-floor-rmw", &fdir, n, k, dir);
        let fps = (n * k) as f64 / f.as_secs_f64();
        for (lib, cmd) in [
            (
                "python filelock",
                vec![
                    peers.join(".venv/bin/python").display().to_string(),
                    peers.join("contention.py").display().to_string(),
                    "filelock".into(),
                ],
            ),
            (
                "python portalocker",
                vec![
                    peers.join(".venv/bin/python").display().to_string(),
                    peers.join("contention.py").display().to_string(),
                    "portalocker".into(),
                ],
            ),
            (
                "python msal-extensions",
                vec![
                    peers.join(".venv/bin/python").display().to_string(),
                    peers.join("contention.py").display().to_string(),
                    "msal".into(),
                ],
            ),
            (
                "node proper-lockfile",
                vec![
                    "node".into(),
                    peers.join("contention.mjs").display().to_string(),
                    "proper-lockfile".into(),
                ],
            ),
        ] {
            let pdir = dir.join(format!("peer-{}-{n}", lib.replace(' ', "-")));
            std::fs::create_dir_all(&pdir).unwrap();
            let out = Command::new(&cmd[0])
                .args(&cmd[1..])
                .args([n.to_string(), k.to_string(), pdir.display().to_string()])
                .output()
                .unwrap();
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            let ops = v["ops_per_s"].as_f64().unwrap_or(0.0);
            let ours = r.contention_ops.get(&n).copied().unwrap_or(0.0);
            r.row(
                &format!("peer contention: {lib}, {n} processes × {k} (floor {fps:.0} ops/s)"),
                format!("{ours:.0} ops/s, 0 lost"),
                format!("{ops:.0} ops/s, {} lost", v["lost"]),
                format!(
                    "credlock {:.2}× the peer; peer {:.2}× floor",
                    ours / ops.max(1e-9),
                    ops / fps
                ),
                "—",
            );
        }
    }
}

fn worker(mode: &str, args: &[String]) {
    match mode {
        "worker-hot-token" => {
            // The in-process `token` median over 2000 calls, for bench/languages.py.
            let mut s = Credlock::open(config(
                Path::new(&args[0]),
                &std::env::temp_dir().join("credlock-bench-cache"),
            ))
            .unwrap();
            let samples: Vec<Duration> = (0..2200)
                .map(|_| {
                    let t = Instant::now();
                    s.token("acme", 60_000).unwrap();
                    t.elapsed()
                })
                .skip(200)
                .collect();
            println!("{:.1}", pct(samples, 0.5).as_secs_f64() * 1e6);
        }
        "worker-measure" => {
            let (program, rest) = args
                .split_first()
                .expect("worker-measure PROGRAM [ARGS...]");
            let mut c = Command::new(program);
            c.args(rest);
            let (wall, peak) = measure_child(&mut c);
            println!("{} {peak}", wall.as_nanos());
        }
        "worker-load" => {
            let t = Instant::now();
            let rt = credlock::component::Runtime::load(None).unwrap();
            println!("{}", t.elapsed().as_nanos());
            drop(rt);
        }
        "worker-floor-read" => {
            drop(Floor::new(Path::new(&args[0])).read());
        }
        "worker-floor-rmw" => {
            let floor = Floor::new(Path::new(&args[0]));
            let k: usize = args[2].parse().unwrap();
            let nonce = |i: usize| (std::process::id() as u64) << 32 | i as u64;
            floor.increment(&args[1], nonce(0));
            barrier(args);
            for i in 1..=k {
                floor.increment(&args[1], nonce(i));
            }
        }
        "worker-credlock-rmw" => {
            let mut s = Credlock::open(config(Path::new(&args[0]), Path::new(&args[3]))).unwrap();
            let k: usize = args[2].parse().unwrap();
            s.put(&args[1], TOKEN_JSON).unwrap();
            barrier(args);
            for _ in 0..k {
                s.put(&args[1], TOKEN_JSON).unwrap();
            }
        }
        "worker-handover-floor" | "worker-handover-credlock" => {
            let path = PathBuf::from(&args[0]);
            let stdin = std::io::stdin();
            let mut out = std::io::stdout();
            for line in stdin.lock().lines() {
                if line.unwrap() != "go" {
                    break;
                }
                writeln!(out, "ready").unwrap();
                out.flush().unwrap();
                let t1 = if mode == "worker-handover-floor" {
                    let f = std::fs::OpenOptions::new()
                        .read(true)
                        .write(true)
                        .open(&path)
                        .unwrap();
                    fs4::fs_std::FileExt::lock_exclusive(&f).unwrap();
                    let t = monotonic_ns();
                    drop(f);
                    t
                } else {
                    let g = credlock::locks::acquire(
                        &path,
                        credlock_core::platform::LockMode::Exclusive,
                        Duration::from_secs(10),
                    )
                    .unwrap();
                    let t = monotonic_ns();
                    drop(g);
                    t
                };
                writeln!(out, "{t1}").unwrap();
                out.flush().unwrap();
            }
        }
        other => panic!("unknown worker mode {other}"),
    }
}
