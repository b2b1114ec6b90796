"""credlock behind httpx's and requests' auth interfaces (and, for a 401, the MCP SDK's OAuth
provider: test_mcp_auth.py has its other tests), in many processes at once, against the real
OAuth server: the adapters must route every refresh through credlock (one per
expiry across all processes, no refresh token presented twice, no grant revoked), and a 401
must cost one refresh across the processes that met it, not one each.

Guards against an adapter that refreshes on its own in each process (the race every
ecosystem's in-process token source has), or retries a 401 forever, or not at all."""

from __future__ import annotations

import time
from pathlib import Path
from typing import List

import pytest

import credlock
from conftest import ACCESS_TTL_S, EXPIRY_GRANULARITY_S, adapter_workers
from oauth_server import OAuthServer

KINDS = ["httpx", "httpx", "httpx", "httpx-async", "httpx-async", "httpx-async", "requests", "requests"]


def test_eight_processes_through_expiries_refresh_once_per_expiry(
        short_tokens: OAuthServer, store_dir: Path, tmp_path: Path) -> None:
    srv = short_tokens
    srv.reset()
    with credlock.Store.open(store_dir) as s:
        s.put("acme", srv.expired_grant())
        s.token("acme")  # the grant's own token was dated by put; count from a refresh
    srv.reset()
    started = time.monotonic()
    results = adapter_workers(store_dir, tmp_path, f"{srv.base}/resource", 8.0, KINDS)
    elapsed = time.monotonic() - started
    stats = srv.stats()
    calls = sum(r["calls"] for r in results)
    failed = [f for r in results for f in r["failed"]]
    print(f"adapters: {len(results)} processes, {calls} calls in {elapsed:.1f} s, "
          f"{stats['refresh_requests']} refreshes, {stats['duplicate_presentations']} duplicates, "
          f"{stats['grants_revoked']} revoked, {stats['resource_rejected']} 401s answered by one retry")
    assert calls >= 8 * 20, results
    assert failed == [], failed
    assert {r["kind"] for r in results} == set(KINDS)
    assert stats["duplicate_presentations"] == 0, stats
    assert stats["invalid_grant"] == 0, stats
    assert stats["grants_revoked"] == 0, stats
    assert stats["refresh_requests"] == stats["refresh_successes"], stats
    # credlock counts a 2 s token as 1 s (a second for the server's rounding) and refreshes
    # when less than half of that is left: at most one refresh every 0.5 s across all eight
    # processes (plus the one in flight at the end), never one per process.
    interval_s = (ACCESS_TTL_S - EXPIRY_GRANULARITY_S) / 2
    assert 4 <= stats["refresh_requests"] <= elapsed / interval_s + 2, stats


@pytest.mark.parametrize("kind", ["httpx", "httpx-async", "requests", "mcp"])
def test_a_401_costs_one_refresh_across_the_processes_that_met_it(
        kind: str, oauth: OAuthServer, store_dir: Path, tmp_path: Path) -> None:
    # An access token the resource server does not accept while credlock deems it fresh for
    # an hour (revoked there, or issued by a server that forgot it); the refresh token is good.
    revoked = "an-access-token-the-server-does-not-know"
    with credlock.Store.open(store_dir) as s:
        s.put("acme", {**oauth.grant(), "access_token": revoked, "expires_in": 3600})
    assert not oauth.resource(revoked)
    oauth.reset()
    results = adapter_workers(store_dir, tmp_path, f"{oauth.base}/resource", 0, [kind] * 8)
    stats = oauth.stats()
    assert [r["failed"] for r in results] == [[]] * 8, results
    assert stats["refresh_requests"] == 1, stats
    assert stats["duplicate_presentations"] == 0, stats
    # Those that asked before the refresh met the 401 (at least the first); the rest were
    # handed the new token. Either way: one refresh.
    assert 1 <= stats["resource_rejected"] <= 8, stats
    print(f"{kind}: 8 processes, {stats['resource_rejected']} met the 401, "
          f"{stats['refresh_requests']} refresh")
    with credlock.Store.open(store_dir) as s:
        assert s.token("acme") != revoked


def test_a_second_401_is_returned_not_retried_again(oauth: OAuthServer, store_dir: Path) -> None:
    """A resource that refuses every token: one refresh and one retry per request, then its
    401 goes back to the caller (never a loop of refreshes)."""
    import http.server
    import threading

    import httpx
    import requests

    from credlock.httpx_auth import CredlockAuth as HttpxAuth
    from credlock.requests_auth import CredlockAuth as RequestsAuth

    seen: List[str] = []

    class Refuses(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            seen.append(self.headers["Authorization"])
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Bearer error="invalid_token"')
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refuses)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        with credlock.Store.open(store_dir) as s:
            s.put("acme", oauth.grant())
            oauth.reset()
            with httpx.Client(auth=HttpxAuth(s, "acme"), trust_env=False) as c:
                r = c.post(url, content=b"body")
            assert r.status_code == 401
            session = requests.Session()
            session.trust_env = False
            session.auth = RequestsAuth(s, "acme")
            r = session.post(url, data=b"body")
            assert r.status_code == 401 and len(r.history) == 1
    finally:
        server.shutdown()
    # Two requests, each sent twice, each retry with the token credlock had just refreshed.
    assert len(seen) == 4 and seen[0] != seen[1] and seen[1] == seen[2] != seen[3], len(seen)
    assert oauth.stats()["refresh_requests"] == 2
