"""Measure the Python binding: import, first call in a fresh process, per-call times in
process (µs per call), and `token` from 8 threads sharing one Store.

    .venv/bin/python bench.py [N]
"""

import json
import os
import subprocess
import sys
import tempfile
import time

N = int(sys.argv[1]) if len(sys.argv) > 1 else 300

PROBE = r"""
import time, json, sys
t0 = time.perf_counter()
import credlock
t1 = time.perf_counter()
s = credlock.Store.open(sys.argv[1])
t2 = time.perf_counter()
s.put("acme", {"access_token": "x", "expires_in": 3600})
t3 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "load": t2 - t1, "open_and_first_put": t3 - t1}))
"""


def probe(store: str) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, store], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def per_call(label: str, f, n: int) -> None:
    f()
    t = time.perf_counter()
    for _ in range(n):
        f()
    dt = (time.perf_counter() - t) / n
    print(f"  {label:<30} {dt * 1e6:8.1f} us/call")


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        probe(os.path.join(d, "s1"))  # reads the binary into the page cache
        warm = probe(os.path.join(d, "s2"))
        print("fresh process:")
        print(f"  import credlock              {warm['import'] * 1e3:8.1f} ms")
        print(f"  Store.open (component load)  {warm['load'] * 1e3:8.1f} ms")
        print(f"  open + first put (new store) {warm['open_and_first_put'] * 1e3:8.1f} ms")

        import threading

        import credlock

        one = credlock.Store.open(os.path.join(d, "s0"))
        one.put("acme", {"access_token": "tok", "expires_in": 3600})
        size = os.path.getsize(os.path.join(d, "s0", "credentials.sealed"))
        print(f"per call, in process (1 tenant, {size}-byte store, {N} calls):")
        per_call("token", lambda: one.token("acme"), N)
        s = credlock.Store.open(os.path.join(d, "s3"))
        for i in range(20):
            s.put(f"t{i}", {"access_token": f"tok-{i}" * 10, "expires_in": 3600})
        size = os.path.getsize(os.path.join(d, "s3", "credentials.sealed"))
        print(f"per call, in process (20 tenants, {size}-byte store, {N} calls):")
        per_call("token", lambda: s.token("t3"), N)
        per_call("list", lambda: s.list(), N)
        per_call("info", lambda: s.info(), N)
        per_call("put (fsync'd replace)", lambda: s.put("t3", {"access_token": "y"}), max(N // 5, 10))
        t = time.perf_counter()
        p = credlock.Store.open(os.path.join(d, "s4"), passphrase="pw")
        p.put("a", {"access_token": "x"})
        print(f"  passphrase store: create + put {(time.perf_counter() - t) * 1e3:.0f} ms (argon2id 64 MiB, t=3)")
        q = credlock.Store.open(os.path.join(d, "s4"), passphrase="pw")
        t = time.perf_counter()
        q.token("a")
        print(f"  passphrase store: first token in a second Store {(time.perf_counter() - t) * 1e3:.0f} ms (one argon2id per Store), then:")
        per_call("token (passphrase, cached key)", lambda: q.token("a"), N)
        threads = 8
        per = max(N // threads, 10)

        def loop() -> None:
            for _ in range(per):
                one.token("acme")

        ts = [threading.Thread(target=loop) for _ in range(threads)]
        t = time.perf_counter()
        for th in ts:
            th.start()
        for th in ts:
            th.join()
        dt = time.perf_counter() - t
        print(f"  token, {threads} threads on one Store  {dt / (per * threads) * 1e6:8.0f} us/call (wall, all threads)")


if __name__ == "__main__":
    main()
