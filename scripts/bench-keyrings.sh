#!/usr/bin/env bash
# What each kind of key slot costs a one-shot `credlock token` (release build): key file,
# passphrase (argon2id, 64 MiB, t=3), Secret Service (gnome-keyring on a private D-Bus
# session started here) and the kernel keyring. Prints a markdown table; never fails on speed.
#   bash scripts/bench-keyrings.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-30}"
if [ -z "${CREDLOCK_BENCH_INNER:-}" ]; then
  bash scripts/setup.sh >/dev/null
  cargo build --release -q -p credlock
  exec env CREDLOCK_BENCH_INNER=1 dbus-run-session -- bash "$0" "$runs" 2>/dev/null
fi
home="$(mktemp -d)"
trap 'rm -rf "$home"' EXIT
mkdir -m 700 "$home/run"
# gnome-keyring reads the login keyring's password from stdin, then serves on this bus.
printf 'bench-login-password' | HOME="$home" XDG_RUNTIME_DIR="$home/run" \
  gnome-keyring-daemon --unlock --components=secrets >/dev/null
python3 - "$runs" "$home" <<'PY'
import os, statistics, subprocess, sys, time
runs, home = int(sys.argv[1]), sys.argv[2]
bin_ = os.path.abspath("target/release/credlock")
token = '{"access_token":"bench","expires_in":3600}'
cases = [
    ("key file", {}, {}),
    ("passphrase (argon2id 64 MiB, t=3)", {"CREDLOCK_PASSPHRASE": "bench pass"}, {"CREDLOCK_PASSPHRASE": "bench pass"}),
    ("secret-service (gnome-keyring)", {"CREDLOCK_KEYRING": "secret-service"}, {}),
    ("keyutils (kernel keyring) + passphrase", {"CREDLOCK_KEYRING": "keyutils", "CREDLOCK_PASSPHRASE": "bench pass"}, {}),
]
print(f"| slot that opens the store | one-shot `credlock token` p50 | p90 | runs |")
print("|---|---|---|---|")
for name, make_env, read_env in cases:
    store = os.path.join(home, name.split()[0])
    base = {k: v for k, v in os.environ.items() if not k.startswith("CREDLOCK_")}
    base["CREDLOCK_STORE"] = store
    subprocess.run([bin_, "put", "acme"], input=token, text=True, check=True,
                   env={**base, **make_env}, capture_output=True)
    env = {**base, **read_env}
    subprocess.run([bin_, "token", "acme"], env=env, check=True, capture_output=True)  # warm the cache
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([bin_, "token", "acme"], env=env, check=True, capture_output=True)
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    print(f"| {name} | {statistics.median(times):.1f} ms | {times[int(len(times) * 0.9) - 1]:.1f} ms | {runs} |")
PY
