"""The CLI's process of the mixed adapters test: `cli_worker.py CLI STORE TENANT URL GO
SECONDS` waits for the file GO, then until SECONDS have passed asks the credlock CLI for the
tenant's token (`credlock token TENANT`, one process per call, as a shell script would), GETs
URL with it and, on a 401, reports the token rejected (`credlock refresh TENANT
--rejected-stdin`: the token goes through stdin, never argv) and retries once with the token
that prints. Prints one JSON object: how many calls, and every one that was not a 200."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

# Loopback only, never through a proxy from the environment.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def get(url: str, token: str) -> tuple:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with _opener.open(req, timeout=30) as r:
            return r.status, r.read(200).decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read(200).decode()


def main() -> None:
    cli, store, tenant, url, go, seconds = sys.argv[1:7]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDLOCK_")}
    env.update(CREDLOCK_STORE=store, CREDLOCK_LOCK_TIMEOUT="60")

    def credlock(*args: str, stdin: str = "") -> str:
        p = subprocess.run([cli, *args, tenant], input=stdin, capture_output=True, text=True,
                           env=env, timeout=120)
        if p.returncode != 0:
            raise RuntimeError(f"credlock {args[0]} exited {p.returncode}: {p.stderr.strip()}")
        return p.stdout.strip()

    deadline = time.monotonic() + 60
    while not os.path.exists(go):
        if time.monotonic() > deadline:
            raise SystemExit("GO never came")
        time.sleep(0.005)
    end = time.monotonic() + float(seconds)
    calls, failed = 0, []
    while True:
        try:
            token = credlock("token")
            status, body = get(url, token)
            if status == 401:
                status, body = get(url, credlock("refresh", "--rejected-stdin", stdin=token))
        except RuntimeError as e:
            status, body = 0, str(e)
        calls += 1
        if status != 200:
            failed.append([status, body[:200]])
        if time.monotonic() >= end:
            break
        time.sleep(0.05)
    print(json.dumps({"kind": "cli", "calls": calls, "failed": failed}))


if __name__ == "__main__":
    main()
