"""credlock.mcp_auth under the real MCP Python SDK (its OAuthClientProvider and the HTTP
library it is written for: httpx2 in mcp 2.x, httpx in 1.x) against the real OAuth server.

Guards against the race of python-sdk #1318 (each process refreshing the one grant by itself,
until the server revokes it), against the SDK sending a refresh token credlock holds (even the
one its own login received), against a stale token in the SDK's memory sending the user to a
browser on the next 401, and against losing the SDK's own login instead of handing it to
credlock to refresh."""

from __future__ import annotations

import asyncio
import importlib.metadata
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator, List, Optional, Tuple
from urllib.parse import parse_qs, parse_qsl, urlencode, urlparse, urlsplit, urlunsplit

import pytest
from mcp.client.auth import OAuthClientProvider
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

import credlock
from conftest import ACCESS_TTL_S, EXPIRY_GRANULARITY_S, adapter_workers
from credlock.mcp_auth import (
    CLIENT_INFORMATION,
    HELD_REFRESH_TOKEN,
    CredlockOAuthClientProvider,
    CredlockTokenStorage,
    SDK_HTTP,
)
from oauth_server import OAuthServer

REDIRECT_URI = "http://127.0.0.1/callback"
#: Which SDK these tests ran against (run-tests.sh runs them under 2.x and 1.x).
MCP_VERSION = importlib.metadata.version("mcp")


def test_the_sdk_in_eight_processes_through_expiries_refreshes_once_per_expiry(
        short_tokens: OAuthServer, store_dir: Path, tmp_path: Path) -> None:
    srv = short_tokens
    srv.reset()
    with credlock.Store.open(store_dir) as s:
        s.put("acme", srv.expired_grant())
        s.token("acme")  # the grant's own token was dated by put; count from a refresh
        # The registration the SDK would have made: with it the SDK deems its tokens
        # refreshable, so its own refresh path runs too (and is answered by credlock).
        s.set_attachment("acme", CLIENT_INFORMATION, OAuthClientInformationFull(
            client_id="conf-basic", client_secret="basic-secret",
            token_endpoint_auth_method="client_secret_basic",
            redirect_uris=[REDIRECT_URI]).model_dump_json(exclude_none=True))
    srv.reset()
    started = time.monotonic()
    results = adapter_workers(store_dir, tmp_path, f"{srv.base}/resource", 8.0, ["mcp"] * 8)
    elapsed = time.monotonic() - started
    stats = srv.stats()
    calls = sum(r["calls"] for r in results)
    failed = [f for r in results for f in r["failed"]]
    sdk_token_requests = sum(r["token_endpoint_requests"] for r in results)
    print(f"mcp {MCP_VERSION}: {len(results)} processes, {calls} calls in {elapsed:.1f} s, "
          f"{stats['refresh_requests']} refreshes (all credlock's; the SDK sent {sdk_token_requests} "
          f"token requests), {stats['duplicate_presentations']} duplicates, "
          f"{stats['grants_revoked']} revoked, {stats['resource_rejected']} 401s")
    assert failed == [], failed
    # Each process calls until the 8 s are over, so its calls span four expiries; a loaded
    # machine slows them (each is a store call on a worker thread and the SDK's flow).
    assert all(r["calls"] >= 8 for r in results), results
    # Every refresh the server saw was credlock's: the SDK's HTTP client sent none.
    assert sdk_token_requests == 0, results
    assert stats["duplicate_presentations"] == 0, stats
    assert stats["invalid_grant"] == 0, stats
    assert stats["grants_revoked"] == 0, stats
    assert stats["refresh_requests"] == stats["refresh_successes"], stats
    # One refresh per expiry across the eight processes (see test_adapters.py for the bound).
    interval_s = (ACCESS_TTL_S - EXPIRY_GRANULARITY_S) / 2
    assert 4 <= stats["refresh_requests"] <= elapsed / interval_s + 2, stats


@pytest.fixture
def mcp_server(short_tokens: OAuthServer, tmp_path: Path) -> Iterator[str]:
    """An MCP server of the SDK itself (mcp_server.py) whose tool needs a token the OAuth
    server accepts; yields its endpoint URL."""
    port_file = tmp_path / "mcp-port"
    log = open(tmp_path / "mcp-server.log", "w")
    proc = subprocess.Popen([sys.executable, str(Path(__file__).parent / "mcp_server.py"), short_tokens.base,
                             str(port_file)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not port_file.exists():
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "mcp-server.log").read_text()
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port_file.read_text()}/mcp"
    finally:
        proc.terminate()  # ours, by its Popen: nothing else is signalled
        proc.wait(timeout=30)
        log.close()


def test_mcp_sessions_in_four_processes_through_expiries_reach_an_mcp_server(
        short_tokens: OAuthServer, mcp_server: str, store_dir: Path, tmp_path: Path) -> None:
    """The same through the SDK's streamable HTTP transport to a real MCP server: one session
    per process lives through every token change, each tool call carries credlock's token.
    Four processes: the one MCP server checks every request's token at the OAuth server."""
    srv = short_tokens
    srv.reset()
    with credlock.Store.open(store_dir) as s:
        s.put("acme", srv.expired_grant())
        s.token("acme")
    srv.reset()
    started = time.monotonic()
    results = adapter_workers(store_dir, tmp_path, mcp_server, 10.0, ["mcp-session"] * 4)
    elapsed = time.monotonic() - started
    stats = srv.stats()
    calls = sum(r["calls"] for r in results)
    failed = [f for r in results for f in r["failed"]]
    print(f"mcp {MCP_VERSION} sessions: {len(results)} processes, {calls} tool calls in {elapsed:.1f} s, "
          f"{stats['refresh_requests']} refreshes (the SDK sent "
          f"{sum(r['token_endpoint_requests'] for r in results)} token requests), "
          f"{stats['duplicate_presentations']} duplicates, {stats['grants_revoked']} revoked, "
          f"{stats['resource_calls']} tokens checked by the MCP server, {stats['resource_rejected']} refused")
    assert failed == [], failed
    assert all(r["calls"] >= 5 for r in results), results
    assert all(r["token_endpoint_requests"] == 0 for r in results), results
    assert stats["duplicate_presentations"] == 0, stats
    assert stats["invalid_grant"] == 0 and stats["grants_revoked"] == 0, stats
    assert stats["refresh_requests"] == stats["refresh_successes"], stats
    interval_s = (ACCESS_TTL_S - EXPIRY_GRANULARITY_S) / 2
    assert 4 <= stats["refresh_requests"] <= elapsed / interval_s + 2, stats


class Browser:
    """The user's browser for the SDK's authorization: follows the server's redirects with
    its cookies (tests/oauth-server signs `alice` in and consents with no page) up to the
    loopback redirect, and hands the SDK the code, state and issuer found there."""

    def __init__(self) -> None:
        self.callback: Optional[dict] = None
        self.logins = 0

    async def redirect(self, url: str) -> None:
        self.logins += 1
        parts = urlsplit(url)
        params = dict(parse_qsl(parts.query))
        # mcp 1.x does not ask for consent, without which an OpenID provider drops
        # offline_access (and the refresh token); 2.x does.
        params.setdefault("prompt", "consent")
        url = urlunsplit(parts._replace(query=urlencode(params)))
        async with SDK_HTTP.AsyncClient(trust_env=False) as c:
            for _ in range(10):
                r = await c.get(url)
                assert r.status_code in (302, 303), (r.status_code, r.text[:300])
                url = str(r.next_request.url) if r.next_request else r.headers["location"]
                if url.startswith(REDIRECT_URI):
                    self.callback = {k: v[0] for k, v in parse_qs(urlparse(url).query).items()}
                    return
        raise AssertionError("the authorization never redirected back")

    async def result(self) -> Any:
        assert self.callback is not None and "code" in self.callback, self.callback
        try:  # mcp 2.x
            from mcp.shared.auth import AuthorizationCodeResult
        except ImportError:  # mcp 1.x: (code, state)
            return self.callback["code"], self.callback.get("state")
        return AuthorizationCodeResult(code=self.callback["code"], state=self.callback.get("state"),
                                       iss=self.callback.get("iss"))


def _provider(store: credlock.Store, url: str, browser: Browser) -> CredlockOAuthClientProvider:
    return CredlockOAuthClientProvider(
        server_url=url,
        client_metadata=OAuthClientMetadata(redirect_uris=[REDIRECT_URI], scope="openid offline_access api",
                                            token_endpoint_auth_method="none"),
        storage=CredlockTokenStorage(store, "mcp"),
        redirect_handler=browser.redirect,
        callback_handler=browser.result,
    )


async def _get(provider: CredlockOAuthClientProvider, url: str, wire: List[Tuple[str, dict]]) -> Any:
    """One GET through the provider, as an MCP client of protocol 2025-06-18 (which names the
    resource, RFC 8707, in its logins); `wire` gets (path, form) of every request the SDK's
    HTTP client really sent."""
    async def record(request: Any) -> None:
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()} if request.method == "POST" else {}
        wire.append((request.url.path, form))

    async with SDK_HTTP.AsyncClient(auth=provider, trust_env=False, event_hooks={"request": [record]}) as c:
        return await c.get(url, headers={"MCP-Protocol-Version": "2025-06-18"})


def _audience(srv: OAuthServer, token: str) -> Optional[str]:
    """The resource (RFC 8707) the OAuth server issued `token` for."""
    status, reply = srv._call("GET", "/resource", headers={"Authorization": f"Bearer {token}"})
    assert status == 200, reply
    return reply["audience"]


def test_the_sdks_login_goes_to_credlock_and_its_refreshes_are_answered_by_credlock(
        short_tokens: OAuthServer, store_dir: Path) -> None:
    srv = short_tokens
    srv.reset()
    url = f"{srv.base}/resource"
    store = credlock.Store.open(store_dir)
    # A pre-registered public client (the server has no dynamic registration).
    store.set_attachment("mcp", CLIENT_INFORMATION, OAuthClientInformationFull(
        client_id="device-app", token_endpoint_auth_method="none",
        redirect_uris=[REDIRECT_URI]).model_dump_json(exclude_none=True))
    browser = Browser()
    provider = _provider(store, url, browser)
    wire: List[Tuple[str, dict]] = []

    # No tokens: the resource's 401 reaches the SDK, which logs in; set_tokens puts the grant.
    r = asyncio.run(_get(provider, url, wire))
    assert r.status_code == 200, r.text
    assert browser.logins == 1
    exchanges = [f for p, f in wire if p == "/token"]
    assert [f["grant_type"] for f in exchanges] == ["authorization_code"], wire
    [tenant] = [t for t in store.list() if t.tenant == "mcp"]
    assert tenant.has_refresh_token and tenant.client_id == "device-app", tenant
    assert tenant.token_endpoint == f"{srv.base}/token", tenant
    assert srv.stats()["code_exchanges"] == 1
    # The login named the resource (RFC 8707): its token is for it, and so is every token
    # credlock's refreshes bring (they send it again, as refresh_resource).
    assert [f.get("resource") for p, f in wire if p == "/token"] == [url], wire
    assert _audience(srv, store.token("mcp")) == url

    # The SDK now deems its token expired (it dated it itself) and refreshes with the refresh
    # token its login received: the provider answers from credlock, which refreshes once.
    time.sleep(ACCESS_TTL_S + 0.5)
    wire.clear()
    r = asyncio.run(_get(provider, url, wire))
    assert r.status_code == 200, r.text
    assert [p for p, _ in wire] == ["/resource"], wire  # nothing went to the token endpoint
    stats = srv.stats()
    assert stats["refresh_requests"] == 1 and stats["refresh_successes"] == 1, stats
    assert provider.context.current_tokens.refresh_token == HELD_REFRESH_TOKEN
    assert browser.logins == 1
    assert _audience(srv, store.token("mcp")) == url

    # Another process: the login is credlock's, with nothing for it to do.
    with credlock.Store.open(store_dir) as other:
        second = Browser()
        r = asyncio.run(_get(_provider(other, url, second), url, []))
        assert r.status_code == 200 and second.logins == 0, r.text
        # And credlock holds the live refresh token: the SDK never spent it.
        other.refresh("mcp")
    stats = srv.stats()
    assert stats["refresh_requests"] == stats["refresh_successes"] >= 2, stats
    assert stats["duplicate_presentations"] == 0, stats
    assert stats["invalid_grant"] == 0 and stats["grants_revoked"] == 0, stats
    print(f"mcp {MCP_VERSION} login: {stats['code_exchanges']} code exchange by the SDK, "
          f"{stats['refresh_requests']} refreshes by credlock, 0 by the SDK")

    # `credlock logout` in another process: the SDK's next refresh is answered "invalid_grant"
    # by the provider (nothing is sent), the request meets a 401 and the SDK logs in again.
    store.delete("mcp")
    time.sleep(ACCESS_TTL_S + 0.5)
    wire.clear()
    r = asyncio.run(_get(provider, url, wire))
    assert r.status_code == 200, r.text
    assert browser.logins == 2
    assert [f["grant_type"] for p, f in wire if p == "/token"] == ["authorization_code"], wire
    assert store.token("mcp") and srv.stats()["duplicate_presentations"] == 0


def test_a_grant_the_server_revoked_sends_the_sdk_to_its_login_which_credlock_keeps(
        oauth: OAuthServer, store_dir: Path) -> None:
    """When credlock cannot refresh (the server refused the refresh token), the SDK's own
    remedy runs: its authorization. Its new grant replaces the dead one in credlock."""
    url = f"{oauth.base}/resource"
    grant = oauth.expired_grant()
    store = credlock.Store.open(store_dir)
    store.put("mcp", grant)
    oauth.revoke(grant["refresh_token"])
    store.set_attachment("mcp", CLIENT_INFORMATION, OAuthClientInformationFull(
        client_id="device-app", token_endpoint_auth_method="none",
        redirect_uris=[REDIRECT_URI]).model_dump_json(exclude_none=True))
    oauth.reset()
    browser = Browser()
    wire: List[Tuple[str, dict]] = []
    r = asyncio.run(_get(_provider(store, url, browser), url, wire))
    assert r.status_code == 200, r.text
    assert browser.logins == 1
    assert [f["grant_type"] for p, f in wire if p == "/token"] == ["authorization_code"], wire
    stats = oauth.stats()
    # credlock's one refresh met invalid_grant; the SDK sent no refresh of its own.
    assert stats["refresh_requests"] == 1 and stats["invalid_grant"] == 1, stats
    [tenant] = [t for t in store.list() if t.tenant == "mcp"]
    assert tenant.client_id == "device-app" and not tenant.needs_reauth, tenant
    assert oauth.resource(store.token("mcp"))


def test_the_registration_is_kept_sealed_with_the_tenant(store_dir: Path) -> None:
    info = OAuthClientInformationFull(client_id="registered", client_secret="s3cret",
                                      token_endpoint_auth_method="client_secret_post",
                                      redirect_uris=[REDIRECT_URI])

    async def run() -> Optional[OAuthClientInformationFull]:
        with credlock.Store.open(store_dir) as s:
            await CredlockTokenStorage(s, "mcp").set_client_info(info)
        with credlock.Store.open(store_dir) as s:
            return await CredlockTokenStorage(s, "mcp").get_client_info()

    assert asyncio.run(run()) == info
    assert b"s3cret" not in (store_dir / "credentials.sealed").read_bytes()
    with credlock.Store.open(store_dir) as s:
        with pytest.raises(credlock.NotFound):  # a registration is not a token
            s.token("mcp")


def test_the_storage_serves_only_the_credlock_provider(store_dir: Path) -> None:
    """With the SDK's own provider the SDK would refresh by itself: the storage refuses."""
    store = credlock.Store.open(store_dir)
    store.put("mcp", {"access_token": "a", "expires_in": 3600})
    plain = OAuthClientProvider(server_url="http://127.0.0.1:9/", client_metadata=OAuthClientMetadata(
        redirect_uris=[REDIRECT_URI]), storage=CredlockTokenStorage(store, "mcp"))
    with pytest.raises(TypeError, match="CredlockOAuthClientProvider"):
        asyncio.run(plain.context.storage.get_tokens())

    class Memory:
        async def get_tokens(self) -> None:
            return None

    with pytest.raises(TypeError, match="CredlockTokenStorage"):
        CredlockOAuthClientProvider(server_url="http://127.0.0.1:9/", client_metadata=OAuthClientMetadata(
            redirect_uris=[REDIRECT_URI]), storage=Memory())


def test_credlocks_own_token_coming_back_writes_nothing(store_dir: Path) -> None:
    store = credlock.Store.open(store_dir)
    store.put("mcp", {"access_token": "a", "expires_in": 3600})
    provider = _provider(store, "http://127.0.0.1:9/", Browser())
    storage = provider.context.storage
    loaded = asyncio.run(storage.get_tokens())
    assert loaded.access_token == "a" and loaded.refresh_token == HELD_REFRESH_TOKEN
    assert 3590 <= loaded.expires_in <= 3600, loaded.expires_in
    before = store.list()[0].revision
    asyncio.run(storage.set_tokens(OAuthToken(access_token="a", refresh_token=HELD_REFRESH_TOKEN)))
    assert store.list()[0].revision == before
    assert store.token("mcp") == "a"
