"""Every language binding beside the Rust host, measured in one run (scripts/bench-languages.sh
builds and installs them, then runs this): the hot in-process `token` (a fresh token read
again and again from one open store) against its floor, 1.5x the Rust figure of the same
run; a one-shot process that opens the store and prints one token against its floor, the
runtime's own start-up plus 15 ms; and what each installs. Then the first call of a
process whose user has nothing cached (issue 25): a one-shot process with an empty HOME, and
with one nobody can write, against the warm one-shot of the same run (at most 2x its wall
time, at most 25 MB peak memory over the runtime's own start-up). Prints markdown tables.
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REL = ROOT / "target" / "release"
OUT = Path(os.environ["CREDLOCK_BENCH_OUT"])
d = Path(tempfile.mkdtemp()) / "store"
env = {k: v for k, v in os.environ.items() if not k.startswith("CREDLOCK_")}
env["CREDLOCK_STORE"] = str(d)
subprocess.run([str(REL / "credlock"), "put", "acme"], input='{"access_token":"bench-token","expires_in":3600}',
               text=True, env=env, check=True)


def oneshot(cmd, n=30):
    subprocess.run(cmd, env=env, check=True, capture_output=True)  # warm the page cache
    times = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def measured(cmd, run_env):
    """Wall seconds and peak resident bytes of one process run to its end, measured by a
    fresh `credlock-bench worker-measure`: Linux counts a child's peak from the memory of the
    process that forked it, and this one has loaded the extension and opened a store."""
    r = subprocess.run([str(REL / "credlock-bench"), "worker-measure", *cmd], env=run_env,
                       check=True, capture_output=True, text=True)
    wall_ns, peak = r.stdout.split()
    return int(wall_ns) / 1e9, int(peak)


HOMES = Path(tempfile.mkdtemp())
BLOCKER = HOMES / "a-file"
BLOCKER.write_text("")


def home_env(kind, i):
    """`env` with a HOME of `kind`: warm (one HOME used again and again), empty (a new empty
    directory as HOME and XDG_CACHE_HOME), or read-only (a new directory of mode 0555, and
    XDG_CACHE_HOME below a regular file, so not even root can create the cache)."""
    home = HOMES / (kind if kind == "warm" else f"{kind}-{i}")
    home.mkdir(exist_ok=True)
    e = dict(env, HOME=str(home), XDG_CACHE_HOME=str(home))
    if kind == "read-only":
        home.chmod(0o555)
        e["XDG_CACHE_HOME"] = str(BLOCKER / "cache")
    return e


def cold(cmd, n=10):
    """p50 wall (ms) and max peak (bytes) of `cmd` warm, with an empty HOME, read-only HOME."""
    measured(cmd, home_env("warm", 0))
    out = {}
    for kind in ("warm", "empty", "read-only"):
        runs = [measured(cmd, home_env(kind, i)) for i in range(n)]
        out[kind] = (statistics.median(w for w, _ in runs) * 1e3, max(m for _, m in runs))
    return out


def peak(cmd, n=5):
    return max(measured(cmd, env)[1] for _ in range(n))


def size(p: Path) -> str:
    return f"{p.stat().st_size / 2**20:.1f} MiB"


import credlock  # noqa: E402  (the installed wheel)

with credlock.Store.open(d) as s:
    for _ in range(1000):
        s.token("acme")
    samples = []
    for _ in range(20000):
        t = time.perf_counter_ns()
        s.token("acme")
        samples.append(time.perf_counter_ns() - t)
py_hot = statistics.median(samples) / 1e3

node_pkg = OUT / "node" / "src" / "index.js"
node_hot_js = f"""
import {{ Store }} from '{node_pkg}';
const s = Store.open('{d}');
for (let i = 0; i < 1000; i++) s.token('acme');
const xs = [];
for (let i = 0; i < 20000; i++) {{ const t = process.hrtime.bigint(); s.token('acme'); xs.push(Number(process.hrtime.bigint() - t)); }}
xs.sort((a, b) => a - b); console.log(xs[10000] / 1000); s.close();
"""
node_hot = float(subprocess.run(["node", "--input-type=module", "-e", node_hot_js], env=env, check=True,
                                capture_output=True, text=True).stdout)
rust_hot = float(subprocess.run([str(REL / "credlock-bench"), "worker-hot-token", str(d)], env=env, check=True,
                                capture_output=True, text=True).stdout)
goworker = str(OUT / "goworker")
go_hot = float(subprocess.run([goworker, "hot", str(d), "20000"], env=env, check=True, capture_output=True,
                              text=True).stdout)
rust_once = oneshot([str(REL / "credlock"), "token", "acme"])
rust_floor = oneshot(["/bin/true"])
py_once = oneshot([sys.executable, "-c", "import credlock; print(credlock.Store.open().token('acme'))"])
py_floor = oneshot([sys.executable, "-c", "pass"])
node_once = oneshot(["node", "--input-type=module", "-e",
                     f"import {{ Store }} from '{node_pkg}'; console.log(Store.open().token('acme'))"])
node_floor = oneshot(["node", "--input-type=module", "-e", "0"])
go_once = oneshot([goworker, "token", str(d), "acme"])
go_floor = oneshot([goworker, "noop"])

wheel = next((OUT / "wheels").glob("*.whl"))
rows = [
    ("Rust (`credlock` crate, CLI)", rust_hot, None, rust_once, rust_floor, "`target/release/credlock` " + size(REL / "credlock")),
    ("Python (PyO3 wheel)", py_hot, "µs", py_once, py_floor, f"wheel {size(wheel)}"),
    ("Node (napi-rs addon)", node_hot, "µs", node_once, node_floor, f"addon {size(OUT / 'node' / 'build' / 'credlock.node')}"),
    ("Go (cgo over libcredlock)", go_hot, "µs", go_once, go_floor, f"libcredlock.so {size(OUT / 'lib' / 'libcredlock.so')}"),
]
print("| binding | hot in-process `token` (p50) | vs Rust (floor ≤ 1.5×) | one-shot process (p50) | runtime start-up (p50) | one-shot over start-up (floor ≤ 15 ms) | installed |")
print("|---|---|---|---|---|---|---|")
for name, hot, _, once, floor, installed in rows:
    ratio = hot / rust_hot
    print(f"| {name} | {hot:.1f} µs | {ratio:.2f}× {'ok' if ratio <= 1.5 else 'MISSED'} | {once:.1f} ms | "
          f"{floor:.1f} ms | {once - floor:+.1f} ms {'ok' if once - floor <= 15 else 'MISSED'} | {installed} |")
print()
print("Runtime start-up: `/bin/true` for Rust, `python -c pass`, `node --input-type=module -e 0` (the "
      "mode the measured line runs in), and for Go the same binary with nothing to do (it still loads "
      "libcredlock.so).")

print()
MB = 1e6
cold_rows = [
    ("Rust (`credlock token`)", [str(REL / "credlock"), "token", "acme"], ["/bin/true"]),
    ("Python (`Store.open().token`)",
     [sys.executable, "-c", f"import credlock; print(credlock.Store.open({str(d)!r}).token('acme'))"],
     [sys.executable, "-c", "pass"]),
    ("Node (`Store.open().token`)",
     ["node", "--input-type=module", "-e", f"import {{ Store }} from '{node_pkg}'; console.log(Store.open('{d}').token('acme'))"],
     ["node", "--input-type=module", "-e", "0"]),
    ("Go (`Open` + `Token`)", [goworker, "token", str(d), "acme"], [goworker, "noop"]),
]
print("First call with nothing cached: p50 of 10 processes each (each cold one with a HOME of its own), "
      "peak memory the max of them; the target is at most 2x the warm wall time, and at most 25 MB "
      "peak over what the runtime alone takes (for the CLI, 25 MB in all).")
print()
print("| binding | warm (p50, peak) | empty HOME (p50, peak) | read-only HOME (p50, peak) | worst ÷ warm (≤ 2×) "
      "| runtime alone (peak) | worst peak over runtime (≤ 25 MB) |")
print("|---|---|---|---|---|---|---|")
for name, cmd, floor_cmd in cold_rows:
    c = cold(cmd)
    base = peak(floor_cmd)
    worst_wall = max(c["empty"][0], c["read-only"][0]) / c["warm"][0]
    worst_peak = max(c["empty"][1], c["read-only"][1])
    over = worst_peak if floor_cmd == ["/bin/true"] else worst_peak - base
    cells = " | ".join(f"{c[k][0]:.1f} ms, {c[k][1] / MB:.1f} MB" for k in ("warm", "empty", "read-only"))
    print(f"| {name} | {cells} | {worst_wall:.2f}× {'ok' if worst_wall <= 2 else 'MISSED'} | "
          f"{base / MB:.1f} MB | {over / MB:.1f} MB {'ok' if over <= 25 * MB else 'MISSED'} |")
