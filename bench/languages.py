"""The same store from each language: a hot in-process `token` and a one-shot process that
opens the store and prints one token, medians, beside the Rust host. Prints a markdown table.

Run after scripts/test.sh (or the hosts' run-tests.sh) has set up host/python/.venv and
host/node:  host/python/.venv/bin/python bench/languages.py
"""
import json, os, statistics, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REL = ROOT / "target" / "release"
d = Path(tempfile.mkdtemp()) / "store"
env = {k: v for k, v in os.environ.items() if not k.startswith("CREDLOCK_")}
env["CREDLOCK_STORE"] = str(d)
subprocess.run([str(REL / "credlock"), "put", "acme"], input='{"access_token":"bench-token","expires_in":3600}', text=True, env=env, check=True)


def oneshot(cmd, n=20):
    subprocess.run(cmd, env=env, check=True, capture_output=True)  # warm the compile caches
    times = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


import credlock  # noqa: E402

with credlock.Store.open(d) as s:
    for _ in range(200):
        s.token("acme")
    samples = []
    for _ in range(2000):
        t = time.perf_counter_ns()
        s.token("acme")
        samples.append(time.perf_counter_ns() - t)
py_hot = statistics.median(samples) / 1e3

node_hot_js = f"""
import {{ Store }} from '{ROOT}/host/node/src/index.js';
const s = Store.open('{d}');
for (let i = 0; i < 200; i++) s.token('acme');
const xs = [];
for (let i = 0; i < 2000; i++) {{ const t = process.hrtime.bigint(); s.token('acme'); xs.push(Number(process.hrtime.bigint() - t)); }}
xs.sort((a, b) => a - b); console.log(xs[1000] / 1000); s.close();
"""
node_hot = float(subprocess.run(["node", "--input-type=module", "-e", node_hot_js], env=env, check=True, capture_output=True, text=True).stdout)
rust_hot = float(subprocess.run([str(REL / "credlock-bench"), "worker-hot-token", str(d)], env=env, check=True, capture_output=True, text=True).stdout)

rust_once = oneshot([str(REL / "credlock"), "token", "acme"])
py_once = oneshot([sys.executable, "-c", "import credlock; print(credlock.Store.open().token('acme'))"])
node_once = oneshot(["node", "--input-type=module", "-e", f"import {{ Store }} from '{ROOT}/host/node/src/index.js'; console.log(Store.open().token('acme'))"])

print("| host | hot in-process `token` (p50) | one-shot process (p50) |")
print("|---|---|---|")
print(f"| Rust (wasmtime) | {rust_hot:.1f} µs | {rust_once:.1f} ms |")
print(f"| Python (wasmtime-py) | {py_hot:.1f} µs | {py_once:.1f} ms |")
print(f"| Node (jco) | {node_hot:.1f} µs | {node_once:.1f} ms |")
