"""One tenant used at once by processes of every adapter credlock has and by its CLI, through
several 2-second expiries of the real OAuth server's tokens: every call must succeed, each
expiry must cost one refresh across all of them, no refresh token may be presented twice and
no grant revoked.

Guards against an adapter that refreshes on its own (in its process, or in its language's
runtime) while the others go through credlock: a lone refresher spends the refresh token the
others hold, and the server's reuse detection then revokes the grant for everyone.

Run by tests/adapters-mixed/run.sh, which builds the Go worker, the Node addon and the rmcp
adapter's test binary (whose `main` is also its worker). To add an adapter, describe its
worker in KINDS (its command, whether it waits for the file GO or is started at GO, how to
read what it prints) and give its number of processes in PROCESSES.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Tuple

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
PY_TESTS = ROOT / "host" / "python" / "tests"
sys.path.insert(0, str(PY_TESTS))

import credlock  # noqa: E402
from oauth_server import OAuthServer  # noqa: E402

CLI = ROOT / "target" / "debug" / "credlock"
GO_WORKER = os.environ.get("CREDLOCK_MIXED_GO_WORKER", str(HERE / "goworker" / "goworker"))
#: host/tests/rmcp_adapter.rs's binary (run.sh finds it with cargo).
RMCP_WORKER = os.environ.get("CREDLOCK_MIXED_RMCP_WORKER", "")
NODE_FIXTURES = ROOT / "host" / "node" / "test" / "fixtures"
TENANT = "acme"
ACCESS_TTL_S = 2
#: What credlock takes off a lifetime for the server's rounding (core/src/expiry.rs).
EXPIRY_GRANULARITY_S = 1
SECONDS = 10.0

@dataclass
class Run:
    """What one run gives every worker: where the tenant is, what to call, when to start."""

    store: str
    oauth: str  # the OAuth server's base URL
    resource: str  # its protected resource
    node_mcp: str  # the Node MCP server's endpoint (host/node/test/fixtures/mcp-server.mjs)
    go: str  # the file whose appearance starts the calls
    start_at_ms: int  # the same moment, for workers that take a time
    seconds: float


@dataclass
class Kind:
    """One kind of worker process. `command` starts it before GO (it waits for GO itself)
    unless `at_go` (it starts calling as soon as it runs); `report` turns what it printed
    (one JSON object) into (calls, failures)."""

    command: Callable[[Run], List[str]]
    report: Callable[[dict], Tuple[int, List[Any]]] = lambda r: (r["calls"], r["failed"])
    env: Callable[[Run], Dict[str, str]] = lambda run: {}
    at_go: bool = False


def _python(kind: str) -> Kind:
    """host/python/tests/adapter_worker.py: credlock.httpx_auth, credlock.mcp_auth, ..."""
    return Kind(lambda run: [sys.executable, str(PY_TESTS / "adapter_worker.py"), kind, run.store, TENANT,
                             run.resource, run.go, str(run.seconds)])


KINDS: Dict[str, Kind] = {
    "python-httpx": _python("httpx"),
    "python-mcp": _python("mcp"),
    "go-oauth2": Kind(lambda run: [GO_WORKER, run.store, TENANT, run.resource, run.go, str(run.seconds)]),
    "cli": Kind(lambda run: [sys.executable, str(HERE / "cli_worker.py"), str(CLI), run.store, TENANT,
                             run.resource, run.go, str(run.seconds)]),
    # The MCP TypeScript SDK's client over credlock/mcp, calling a tool of the Node MCP server
    # (which asks the OAuth server about every token) every 50 ms.
    "node-mcp": Kind(
        lambda run: ["node", str(NODE_FIXTURES / "mcp-client.mjs"), run.store, TENANT, run.node_mcp,
                     str(run.start_at_ms), str(int(run.seconds * 1000)), "50"],
        report=lambda r: (r["calls"], r["failures"] if r["failureCount"] or r["ok"] != r["calls"] else []),
    ),
    # rmcp's AuthorizationManager over credlock::adapters::rmcp (host/tests/rmcp_adapter.rs in
    # its worker mode: 4 tasks, each using every token at the OAuth server's resource). A use
    # the server refused because the token's own expiry passed while the request was in
    # flight is "late", judged by the token's expiry as issued, and is that test's, not a
    # failure; any other refusal is.
    "rust-rmcp": Kind(
        lambda run: [RMCP_WORKER],
        env=lambda run: {"RMCP_WORKER": "calls", "RMCP_STORE": run.store, "RMCP_OAUTH": run.oauth,
                         "RMCP_SECONDS": str(int(run.seconds))},
        report=lambda r: (r["calls"], r["refused"]),
        at_go=True,
    ),
}
#: How many processes of each kind share the tenant.
PROCESSES: Dict[str, int] = {"python-httpx": 2, "python-mcp": 2, "go-oauth2": 2, "cli": 2, "node-mcp": 2,
                             "rust-rmcp": 2}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OAuthServer]:
    srv = OAuthServer(tmp_path_factory.mktemp("oauth-mixed"), access_ttl_s=ACCESS_TTL_S)
    yield srv
    srv.close()


@pytest.fixture(scope="module")
def node_mcp_server(server: OAuthServer) -> Iterator[str]:
    """The Node MCP server the node-mcp workers call; yields its endpoint."""
    proc = subprocess.Popen(["node", str(NODE_FIXTURES / "mcp-server.mjs"), server.base],
                            stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()  # "READY <url>", or nothing if it died
        assert line.startswith("READY "), f"the Node MCP server did not start: {line!r}"
        yield line.split()[1]
    finally:
        proc.terminate()  # ours, by its Popen
        proc.wait(timeout=30)


def test_every_adapter_and_the_cli_on_one_tenant_refresh_once_per_expiry(
        server: OAuthServer, node_mcp_server: str, tmp_path: Path) -> None:
    assert set(PROCESSES) == set(KINDS)
    assert RMCP_WORKER, "CREDLOCK_MIXED_RMCP_WORKER is unset: run tests/adapters-mixed/run.sh"
    store = tmp_path / "store"
    with credlock.Store.open(store) as s:
        s.put(TENANT, server.expired_grant())
        s.token(TENANT)  # the grant's own token was dated by put; count from a refresh
        # The MCP clients' registration, as their SDKs would have kept it.
        s.set_attachment(TENANT, "client-information", json.dumps({
            "client_id": "conf-basic", "client_secret": "basic-secret",
            "token_endpoint_auth_method": "client_secret_basic",
            "redirect_uris": ["http://127.0.0.1/callback"]}))
    server.reset()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDLOCK_")}
    # GO comes once every worker started before it has had time to open the store (and the
    # Node clients to connect): 4 s on a loaded machine.
    run = Run(store=str(store), oauth=server.base, resource=f"{server.base}/resource", node_mcp=node_mcp_server,
              go=str(tmp_path / "GO"), start_at_ms=int(time.time() * 1000) + 4000, seconds=SECONDS)

    def spawn(kind: str) -> Tuple[str, subprocess.Popen]:
        k = KINDS[kind]
        return kind, subprocess.Popen(k.command(run), env={**env, **k.env(run)}, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True)

    procs = [spawn(kind) for kind, n in PROCESSES.items() if not KINDS[kind].at_go for _ in range(n)]
    time.sleep(max(0.0, run.start_at_ms / 1000 - time.time()))
    started = time.monotonic()
    Path(run.go).touch()
    procs += [spawn(kind) for kind, n in PROCESSES.items() if KINDS[kind].at_go for _ in range(n)]
    by_kind: Dict[str, int] = {}
    failed: List[Any] = []
    results = []
    for kind, p in procs:
        out, err = p.communicate(timeout=180)
        assert p.returncode == 0, f"{kind}: {err}"
        r = json.loads(out.strip().splitlines()[-1])
        calls, failures = KINDS[kind].report(r)
        by_kind[kind] = by_kind.get(kind, 0) + calls
        failed += [(kind, f) for f in failures]
        results.append(r)
    elapsed = time.monotonic() - started
    stats = server.stats()
    print(f"mixed: {len(procs)} processes ({', '.join(f'{k} {n}' for k, n in PROCESSES.items())}), "
          f"{sum(by_kind.values())} calls in {elapsed:.1f} s ({', '.join(f'{k} {n}' for k, n in by_kind.items())}), "
          f"{len(failed)} failed, {stats['refresh_requests']} refreshes, "
          f"{stats['duplicate_presentations']} duplicates, {stats['invalid_grant']} invalid_grant, "
          f"{stats['grants_revoked']} revoked, {stats['resource_rejected']} 401s at the resource "
          f"(rmcp uses late: {sum(r.get('late', 0) for r in results)})")
    assert failed == [], failed
    for kind, n in PROCESSES.items():
        assert by_kind[kind] >= n * 10, (kind, by_kind)
    # The Python MCP SDK's HTTP client sent nothing to the token endpoint: its refreshes were credlock's.
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
