"""Python and Rust processes on one store at once: nothing lost, nothing torn, one refresh."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

import credlock
from conftest import RUST_CLI, rust


WORKER = str(Path(__file__).with_name("worker.py"))
PY_WRITERS = 8
RUST_WRITERS = 8
OWN = 12  # writes to its own tenant, per writer
SHARED = 4  # writes to the shared tenant, per writer


def _env(store: Path) -> dict:
    e = {k: v for k, v in os.environ.items() if not k.startswith("CREDLOCK_")}
    e["CREDLOCK_STORE"] = str(store)
    e["CREDLOCK_LOCK_TIMEOUT"] = "60"
    return e


RUST_WRITER = r"""
while [ ! -e "$GO" ]; do sleep 0.005; done
every=$(( OWN / SHARED )); j=0
for i in $(seq 0 $((OWN - 1))); do
  echo "{\"access_token\":\"$NAME-$i\",\"expires_in\":3600}" | "$CLI" put "$NAME" 2>>"$ERR" || echo "put $NAME failed" >>"$ERR.fail"
  if [ $(( (i + 1) % every )) -eq 0 ] && [ $j -lt $SHARED ]; then
    echo "{\"access_token\":\"shared-$NAME-$j\",\"expires_in\":3600}" | "$CLI" put shared 2>>"$ERR" || echo "put shared failed" >>"$ERR.fail"
    j=$((j + 1))
  fi
done
"""

RUST_READER = r"""
while [ ! -e "$GO" ]; do sleep 0.005; done
n=0
while [ ! -e "$STOP" ]; do
  if out=$("$CLI" list --json 2>>"$ERR"); then printf '%s\n\x1e\n' "$out" >>"$OUT"; else echo "list failed" >>"$ERR.fail"; fi
  if tok=$("$CLI" token shared --min-valid 0 2>>"$ERR"); then echo "$tok" >>"$OUT.tokens"; else echo "token failed" >>"$ERR.fail"; fi
  n=$((n + 1))
done
echo $n >"$OUT.count"
"""


def test_many_python_and_rust_processes_lose_nothing(store_dir: Path, tmp_path: Path) -> None:
    rust(store_dir, "put", "shared", input='{"access_token":"initial","expires_in":3600}')
    with credlock.Store.open(store_dir) as s:
        g0 = s.info().generation
    go, stop = str(tmp_path / "go"), str(tmp_path / "stop")
    env = _env(store_dir)
    procs = []
    for i in range(PY_WRITERS):
        procs.append(("py-w", subprocess.Popen(
            [sys.executable, WORKER, "write", str(store_dir), go, f"py-{i}", str(OWN), str(SHARED)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
    readers = []
    for i in range(2):
        readers.append(subprocess.Popen(
            [sys.executable, WORKER, "read", str(store_dir), go, stop],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    rust_dir = tmp_path / "rust"
    rust_dir.mkdir()
    for i in range(RUST_WRITERS):
        e = dict(env, GO=go, CLI=str(RUST_CLI), NAME=f"rust-{i}", OWN=str(OWN), SHARED=str(SHARED),
                 ERR=str(rust_dir / f"w{i}.err"))
        procs.append(("rust-w", subprocess.Popen(["bash", "-c", RUST_WRITER], env=e)))
    rust_readers = []
    for i in range(2):
        e = dict(env, GO=go, STOP=stop, CLI=str(RUST_CLI), OUT=str(rust_dir / f"r{i}.out"),
                 ERR=str(rust_dir / f"r{i}.err"))
        rust_readers.append(subprocess.Popen(["bash", "-c", RUST_READER], env=e))

    time.sleep(1.0)  # let the Python processes import and open
    Path(go).touch()
    started = time.monotonic()
    outputs = []
    for kind, p in procs:
        out, err = p.communicate(timeout=150) if kind == "py-w" else (None, None)
        if kind == "rust-w":
            assert p.wait(timeout=150) == 0
        else:
            assert p.returncode == 0, err
            outputs.append(json.loads(out))
    elapsed = time.monotonic() - started
    Path(stop).touch()
    reader_outputs = []
    for p in readers:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        reader_outputs.append(json.loads(out))
    for p in rust_readers:
        assert p.wait(timeout=60) == 0

    # No errors anywhere.
    for o in outputs:
        assert "error" not in o, o
    fails = list(rust_dir.glob("*.fail"))
    assert not fails, [f.read_text() for f in fails]
    for o in reader_outputs:
        assert "error" not in o, o
        assert o["problems"] == [], o["problems"][:5]
        assert o["reads"] > 0

    # Nothing lost: every tenant's revision counts every write to it. The generation counts
    # the store's writes, at most one per put (group commit writes several in one).
    total = (PY_WRITERS + RUST_WRITERS) * (OWN + SHARED)
    with credlock.Store.open(store_dir) as s:
        tenants = {t.tenant: t.revision for t in s.list()}
        assert g0 < s.info().generation <= g0 + total
        last_shared = s.token("shared", 0)
    for i in range(PY_WRITERS):
        assert tenants[f"py-{i}"] == OWN
    for i in range(RUST_WRITERS):
        assert tenants[f"rust-{i}"] == OWN
    assert tenants["shared"] == 1 + (PY_WRITERS + RUST_WRITERS) * SHARED
    assert last_shared.startswith("shared-")
    # Every acknowledged Python write got, per tenant, its own revision, in a generation of
    # this run (several puts may share one write, and so a generation: group commit).
    receipts = [r for o in outputs for r in o["receipts"]]
    assert all(g0 < g <= g0 + total for _, _, g in receipts)
    revisions = Counter((name, rev) for name, rev, _ in receipts)
    assert max(revisions.values()) == 1

    # The Rust readers never saw a torn or failed read, and their views only moved forward.
    rust_reads = 0
    for i in range(2):
        docs = [d for d in (rust_dir / f"r{i}.out").read_text().split("\x1e\n") if d.strip()]
        last: dict = {}
        for d in docs:
            for t in json.loads(d):
                assert t["revision"] >= last.get(t["tenant"], 0)
                last[t["tenant"]] = t["revision"]
        tokens = (rust_dir / f"r{i}.out.tokens").read_text().split()
        assert all(t == "initial" or t.startswith("shared-") for t in tokens)
        rust_reads += len(docs)
    assert rust_reads > 0
    print(f"\n{total} writes by {PY_WRITERS}+{RUST_WRITERS} processes in {elapsed:.1f}s; "
          f"reads: python {sum(o['reads'] for o in reader_outputs)}, rust {rust_reads}")


def test_refresh_storm_spends_the_refresh_token_once(store_dir: Path, tmp_path: Path, oauth) -> None:
    stale = oauth.expired_grant()
    rust(store_dir, "put", "acme", input=json.dumps(stale))
    oauth.fault("slow", delay_ms=300)  # the refresh is in flight while the others arrive
    go = str(tmp_path / "go")
    env = _env(store_dir)
    py = [subprocess.Popen([sys.executable, WORKER, "token", str(store_dir), go, "acme"],
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
          for _ in range(8)]
    rs = [subprocess.Popen(["bash", "-c", 'while [ ! -e "$GO" ]; do sleep 0.005; done; exec "$CLI" token acme'],
                           env=dict(env, GO=go, CLI=str(RUST_CLI)), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
          for _ in range(8)]
    time.sleep(1.0)
    Path(go).touch()
    tokens, refreshed = [], 0
    for p in py:
        out, err = p.communicate(timeout=60)
        o = json.loads(out)
        assert "error" not in o, o
        tokens.append(o["token"])
        refreshed += o["refreshed"]
    for p in rs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        tokens.append(out.strip())
    stats = oauth.stats()
    assert (stats["refresh_requests"], stats["refresh_successes"]) == (1, 1), stats
    assert (stats["duplicate_presentations"], stats["invalid_grant"]) == (0, 0), stats
    assert len(set(tokens)) == 1 and tokens[0] != stale["access_token"]
    assert oauth.resource(tokens[0])
    assert refreshed <= 1


def test_first_writers_race_to_create_the_store_and_its_key(store_dir: Path, tmp_path: Path) -> None:
    """Python and Rust processes all putting into a store that does not exist yet: one data
    key, one key file, every write kept."""
    go = str(tmp_path / "go")
    env = _env(store_dir)
    py = [subprocess.Popen([sys.executable, WORKER, "write", str(store_dir), go, f"py-{i}", "1", "0"],
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
          for i in range(4)]
    rs = [subprocess.Popen(["bash", "-c", 'while [ ! -e "$GO" ]; do sleep 0.005; done; '
                            'echo \'{"access_token":"x"}\' | exec "$CLI" put "$NAME"'],
                           env=dict(env, GO=go, CLI=str(RUST_CLI), NAME=f"rust-{i}"),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
          for i in range(4)]
    time.sleep(1.0)
    Path(go).touch()
    for p in py:
        out, err = p.communicate(timeout=60)
        assert "error" not in json.loads(out), out
    for p in rs:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
    assert sorted(os.listdir(store_dir)) == ["credentials.lock", "credentials.sealed", "credentials.sealed.bak", "key", "lock-protocol"]
    with credlock.Store.open(store_dir) as s:
        assert sorted(t.tenant for t in s.list()) == sorted(
            [f"py-{i}" for i in range(4)] + [f"rust-{i}" for i in range(4)])
        # Eight puts, in as many writes or fewer (group commit).
        assert 1 <= s.info().generation <= 8
    assert len(rust(store_dir, "list", "--json").stdout) > 0
