"""One tenant used at once by processes of every adapter credlock has and by its CLI, through
several 2-second expiries of the real OAuth server's tokens: every call must succeed, each
expiry must cost one refresh across all of them, no refresh token may be presented twice and
no grant revoked.

Guards against an adapter that refreshes on its own (in its process, or in its language's
runtime) while the others go through credlock: a lone refresher spends the refresh token the
others hold, and the server's reuse detection then revokes the grant for everyone.

Run by tests/adapters-mixed/run.sh, which builds the Go worker. To add an adapter, give its
worker's command in COMMANDS (it prints one JSON object {"kind", "calls", "failed"}, waits for
the file GO before its first call, and stops after SECONDS) and its number of processes in
PROCESSES. The Node MCP and Rust rmcp adapters are built on their own branches
(issue-24-node, issue-24-rmcp) and join here when they land.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, Iterator, List

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
PY_TESTS = ROOT / "host" / "python" / "tests"
sys.path.insert(0, str(PY_TESTS))

import credlock  # noqa: E402
from oauth_server import OAuthServer  # noqa: E402

CLI = ROOT / "target" / "debug" / "credlock"
GO_WORKER = os.environ.get("CREDLOCK_MIXED_GO_WORKER", str(HERE / "goworker" / "goworker"))
TENANT = "acme"
ACCESS_TTL_S = 2
#: What credlock takes off a lifetime for the server's rounding (core/src/expiry.rs).
EXPIRY_GRANULARITY_S = 1
SECONDS = 10.0

Command = Callable[[str, str, str, str, float], List[str]]


def _python(kind: str) -> Command:
    """host/python/tests/adapter_worker.py: credlock.httpx_auth, credlock.mcp_auth, ..."""
    return lambda store, tenant, url, go, s: [sys.executable, str(PY_TESTS / "adapter_worker.py"), kind,
                                              store, tenant, url, go, str(s)]


#: How to start each kind of process on (store, tenant, url, go, seconds).
COMMANDS: Dict[str, Command] = {
    "python-httpx": _python("httpx"),
    "python-mcp": _python("mcp"),
    "go-oauth2": lambda store, tenant, url, go, s: [GO_WORKER, store, tenant, url, go, str(s)],
    "cli": lambda store, tenant, url, go, s: [sys.executable, str(HERE / "cli_worker.py"), str(CLI),
                                              store, tenant, url, go, str(s)],
}
#: How many processes of each kind share the tenant.
PROCESSES: Dict[str, int] = {"python-httpx": 2, "python-mcp": 2, "go-oauth2": 2, "cli": 2}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OAuthServer]:
    srv = OAuthServer(tmp_path_factory.mktemp("oauth-mixed"), access_ttl_s=ACCESS_TTL_S)
    yield srv
    srv.close()


def test_every_adapter_and_the_cli_on_one_tenant_refresh_once_per_expiry(server: OAuthServer, tmp_path: Path) -> None:
    assert set(PROCESSES) == set(COMMANDS)
    store = tmp_path / "store"
    with credlock.Store.open(store) as s:
        s.put(TENANT, server.expired_grant())
        s.token(TENANT)  # the grant's own token was dated by put; count from a refresh
        # The MCP client's registration, as its SDK would have kept it.
        s.set_attachment(TENANT, "client-information", json.dumps({
            "client_id": "conf-basic", "client_secret": "basic-secret",
            "token_endpoint_auth_method": "client_secret_basic",
            "redirect_uris": ["http://127.0.0.1/callback"]}))
    server.reset()
    go = str(tmp_path / "GO")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDLOCK_")}
    url = f"{server.base}/resource"
    procs = [(kind, subprocess.Popen(COMMANDS[kind](str(store), TENANT, url, go, SECONDS), env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
             for kind, n in PROCESSES.items() for _ in range(n)]
    time.sleep(2.0)  # every process has started and opened the store
    started = time.monotonic()
    Path(go).touch()
    results = []
    for kind, p in procs:
        out, err = p.communicate(timeout=180)
        assert p.returncode == 0, f"{kind}: {err}"
        r = json.loads(out.strip().splitlines()[-1])
        r["worker"] = kind
        results.append(r)
    elapsed = time.monotonic() - started
    stats = server.stats()
    by_kind: Dict[str, int] = {}
    for r in results:
        by_kind[r["worker"]] = by_kind.get(r["worker"], 0) + r["calls"]
    failed = [(r["worker"], f) for r in results for f in r["failed"]]
    print(f"mixed: {len(results)} processes ({', '.join(f'{k} {n}' for k, n in PROCESSES.items())}), "
          f"{sum(by_kind.values())} calls in {elapsed:.1f} s ({', '.join(f'{k} {n}' for k, n in by_kind.items())}), "
          f"{len(failed)} failed, {stats['refresh_requests']} refreshes, "
          f"{stats['duplicate_presentations']} duplicates, {stats['invalid_grant']} invalid_grant, "
          f"{stats['grants_revoked']} revoked, {stats['resource_rejected']} 401s answered by one retry")
    assert failed == [], failed
    for kind, n in PROCESSES.items():
        assert by_kind[kind] >= n * 10, (kind, by_kind)
    # The MCP SDK's HTTP client sent nothing to the token endpoint: its refreshes were credlock's.
    assert all(r.get("token_endpoint_requests", 0) == 0 for r in results), results
    assert stats["duplicate_presentations"] == 0, stats
    assert stats["invalid_grant"] == 0, stats
    assert stats["grants_revoked"] == 0, stats
    assert stats["refresh_requests"] == stats["refresh_successes"], stats
    # credlock counts a 2 s token as 1 s and refreshes when less than half of that is left: at
    # most one refresh every 0.5 s across every process (plus the one in flight at the end),
    # however many processes and languages ask.
    interval_s = (ACCESS_TTL_S - EXPIRY_GRANULARITY_S) / 2
    assert SECONDS / ACCESS_TTL_S <= stats["refresh_requests"] <= elapsed / interval_s + 2, stats
