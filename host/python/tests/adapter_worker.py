"""One process of the adapter tests (`python adapter_worker.py KIND STORE TENANT URL GO
SECONDS [INTERVAL]`): waits for the file GO, then GETs URL through credlock's adapter for KIND
(`httpx`, `httpx-async`, `requests`, `mcp`: the MCP SDK's OAuth client over
credlock.mcp_auth; `mcp-session`: the same under an MCP client session calling URL's tool)
until SECONDS have passed (0: one request), and prints one JSON object: how many calls, and
every one that failed (`mcp*` add how many requests their HTTP client sent to the token
endpoint: the SDK's own, which must be none)."""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import sys
import time
from typing import Any, Callable, Optional

import credlock
from worker import wait_for  # this directory is on sys.path: the script's own


def main() -> None:
    kind, store_dir, tenant, url, go, seconds = sys.argv[1:7]
    interval = float(sys.argv[7]) if len(sys.argv) > 7 else 0.05
    store = credlock.Store.open(store_dir, lock_timeout=60)
    calls, failed = 0, []
    extra: dict = {}
    def record(status: int, body: str) -> None:
        nonlocal calls
        calls += 1
        if status != 200:
            failed.append([status, body[:200]])

    if kind == "mcp":
        importlib.import_module("credlock.mcp_auth")  # the SDK takes a while to import: before GO
    if kind == "mcp-session":
        # Its session is opened (initialize) before GO, so all its calls are in the window.
        extra.update(asyncio.run(mcp_calls(kind, store, tenant, url, go, float(seconds), interval, record)))
        print(json.dumps({"kind": kind, "calls": calls, "failed": failed, **extra}))
        return
    wait_for(go)
    end = time.monotonic() + float(seconds)

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
    elif kind == "mcp":
        extra.update(asyncio.run(mcp_calls(kind, store, tenant, url, None, end, interval, record)))
    else:
        raise SystemExit(f"unknown kind {kind}")
    print(json.dumps({"kind": kind, "calls": calls, "failed": failed, **extra}))


async def mcp_calls(kind: str, store: credlock.Store, tenant: str, url: str, go: Optional[str], end: float,
                    interval: float, record: Callable[[int, str], None]) -> dict:
    """The MCP SDK's OAuthClientProvider (over credlock) authenticating an AsyncClient of the
    HTTP library the SDK is written for: `mcp` GETs URL with it, `mcp-session` is an MCP
    client session over the SDK's streamable HTTP transport calling URL's tool `whoami`
    (tests/mcp_server.py), which waits for `go` once its session is open and then calls for
    `end` seconds. Tokens and the client registration are the store's: a login (the redirect
    handler) would be a failure."""
    from mcp.shared.auth import OAuthClientMetadata

    from credlock.mcp_auth import CredlockOAuthClientProvider, CredlockTokenStorage, SDK_HTTP

    async def no_login(*args: object) -> Any:
        raise RuntimeError("the MCP SDK started a login: credlock's tokens were not used")

    provider = CredlockOAuthClientProvider(
        server_url=url,
        client_metadata=OAuthClientMetadata(redirect_uris=["http://127.0.0.1/callback"]),
        storage=CredlockTokenStorage(store, tenant),
        redirect_handler=no_login,
        callback_handler=no_login,
    )
    sent = {"token_endpoint_requests": 0}

    async def count(request: Any) -> None:
        if request.url.path.endswith("/token"):
            sent["token_endpoint_requests"] += 1

    async with SDK_HTTP.AsyncClient(auth=provider, trust_env=False, event_hooks={"request": [count]}) as c:
        if kind == "mcp-session":
            assert go is not None
            await mcp_session(c, url, go, end, interval, record)
            return sent
        while True:
            try:
                r = await c.get(url)
                record(r.status_code, r.text)
            except Exception as e:  # the flow raised: a call that failed, with its reason
                record(0, f"{type(e).__name__}: {e}")
            if time.monotonic() >= end:
                break
            await asyncio.sleep(interval)
    return sent


async def mcp_session(client: Any, url: str, go: str, seconds: float, interval: float,
                      record: Callable[[int, str], None]) -> None:
    from mcp.client.session import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async with streamable_http_client(url, http_client=client) as streams:
        # mcp 1.x also yields a session-id getter; 2.x yields the two streams.
        async with ClientSession(streams[0], streams[1]) as session:
            await session.initialize()
            while not os.path.exists(go):
                await asyncio.sleep(0.005)
            end = time.monotonic() + seconds
            while True:
                result = await session.call_tool("whoami", {})
                text = " ".join(getattr(c, "text", "") for c in result.content)
                failed = result.is_error if hasattr(result, "is_error") else result.isError  # 2.x, 1.x
                record(500 if failed else 200, text)
                if time.monotonic() >= end:
                    break
                await asyncio.sleep(interval)


if __name__ == "__main__":
    main()
