"""A separate Python process for the concurrency tests (run as `python worker.py MODE ...`).

Every mode waits for the file GO to appear, so that all processes start together, and prints
one JSON object on stdout."""

from __future__ import annotations

import json
import os
import sys
import time
import traceback

import credlock


def wait_for(path: str) -> None:
    deadline = time.monotonic() + 60
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise SystemExit("GO never came")
        time.sleep(0.005)


def write(store: str, go: str, name: str, own: int, shared: int) -> dict:
    s = credlock.Store.open(store, lock_timeout=60)
    receipts = []
    every = max(own // max(shared, 1), 1)
    wait_for(go)
    j = 0
    for i in range(own):
        r = s.put(name, {"access_token": f"{name}-{i}", "expires_in": 3600})
        receipts.append([name, r.revision, r.generation])
        if (i + 1) % every == 0 and j < shared:
            r = s.put("shared", {"access_token": f"shared-{name}-{j}", "expires_in": 3600})
            receipts.append(["shared", r.revision, r.generation])
            j += 1
    while j < shared:
        r = s.put("shared", {"access_token": f"shared-{name}-{j}", "expires_in": 3600})
        receipts.append(["shared", r.revision, r.generation])
        j += 1
    return {"receipts": receipts}


def read(store: str, go: str, stop: str) -> dict:
    s = credlock.Store.open(store, lock_timeout=60)
    wait_for(go)
    seen: dict = {}
    last_generation = 0
    reads = 0
    problems = []
    while not os.path.exists(stop):
        try:
            info = s.info()
            if info.generation < last_generation:
                problems.append(f"generation went back: {last_generation} -> {info.generation}")
            last_generation = info.generation
            for t in s.list():
                if t.revision < seen.get(t.tenant, 0):
                    problems.append(f"{t.tenant} revision went back")
                seen[t.tenant] = t.revision
            try:
                tok = s.token("shared", min_valid=0)
                if not tok.startswith("shared-") and tok != "initial":
                    problems.append(f"unexpected shared token {tok!r}")
            except credlock.NotFound:
                pass
            reads += 1
        except Exception as e:  # any error is a torn or failed read
            problems.append(f"{type(e).__name__}: {e}")
    return {"reads": reads, "problems": problems}


def token(store: str, go: str, tenant: str) -> dict:
    s = credlock.Store.open(store, lock_timeout=60, http_timeout=30)
    wait_for(go)
    t = s.token_info(tenant, min_valid=60)
    return {"token": t.token, "refreshed": t.refreshed}


def main() -> None:
    mode, *args = sys.argv[1:]
    try:
        if mode == "write":
            out = write(args[0], args[1], args[2], int(args[3]), int(args[4]))
        elif mode == "read":
            out = read(*args)
        elif mode == "token":
            out = token(*args)
        else:
            raise SystemExit(f"unknown mode {mode}")
    except Exception as e:
        out = {"error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc()}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
