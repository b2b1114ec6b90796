"""One process of the adapter tests (`python adapter_worker.py KIND STORE TENANT URL GO
SECONDS [INTERVAL]`): waits for the file GO, then GETs URL through credlock's adapter for KIND
(`httpx`, `httpx-async`, `requests`) until SECONDS have passed (0: one request), and prints
one JSON object: how many calls, and every status that was not 200."""

from __future__ import annotations

import asyncio
import json
import sys
import time

import credlock
from worker import wait_for  # this directory is on sys.path: the script's own


def main() -> None:
    kind, store_dir, tenant, url, go, seconds = sys.argv[1:7]
    interval = float(sys.argv[7]) if len(sys.argv) > 7 else 0.05
    store = credlock.Store.open(store_dir, lock_timeout=60)
    calls, failed = 0, []
    wait_for(go)
    end = time.monotonic() + float(seconds)

    def record(status: int, body: str) -> None:
        nonlocal calls
        calls += 1
        if status != 200:
            failed.append([status, body[:200]])

    if kind == "httpx":
        import httpx
        from credlock.httpx_auth import CredlockAuth

        with httpx.Client(auth=CredlockAuth(store, tenant), trust_env=False) as c:
            while True:
                r = c.get(url)
                record(r.status_code, r.text)
                if time.monotonic() >= end:
                    break
                time.sleep(interval)
    elif kind == "httpx-async":
        import httpx
        from credlock.httpx_auth import CredlockAuth

        async def run() -> None:
            async with httpx.AsyncClient(auth=CredlockAuth(store, tenant), trust_env=False) as c:
                while True:
                    r = await c.get(url)
                    record(r.status_code, r.text)
                    if time.monotonic() >= end:
                        break
                    await asyncio.sleep(interval)

        asyncio.run(run())
    elif kind == "requests":
        import requests
        from credlock.requests_auth import CredlockAuth

        with requests.Session() as s:
            s.trust_env = False
            s.auth = CredlockAuth(store, tenant)
            while True:
                r = s.get(url, timeout=30)
                record(r.status_code, r.text)
                if time.monotonic() >= end:
                    break
                time.sleep(interval)
    else:
        raise SystemExit(f"unknown kind {kind}")
    print(json.dumps({"kind": kind, "calls": calls, "failed": failed}))


if __name__ == "__main__":
    main()
