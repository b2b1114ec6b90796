"""credlock under the MCP Python SDK's OAuth client (`mcp` 1.x on httpx, 2.x on httpx2): the
tokens, refreshes and client registration of an MCP client come from a credlock tenant, so
any number of processes share one login and an expiry costs one refresh across all of them.

    import credlock
    from credlock.mcp_auth import CredlockOAuthClientProvider, CredlockTokenStorage
    store = credlock.Store.open()
    auth = CredlockOAuthClientProvider(server_url=url, client_metadata=metadata,
        storage=CredlockTokenStorage(store, "github-mcp"), redirect_handler=..., callback_handler=...)

`CredlockOAuthClientProvider` takes exactly `OAuthClientProvider`'s arguments; its `storage`
must be a `CredlockTokenStorage`. mcp is imported only by this module: the base package keeps
no dependency.

Why a provider and not a `TokenStorage` alone
---------------------------------------------
What the SDK does (`mcp/client/auth/oauth2.py`, the same code in 1.x and 2.3.0):

- It loads tokens from its storage once per provider (`_initialize`) and does not restore
  their expiry: a loaded token counts as valid until a request meets a 401.
- A 401 does not refresh: it starts a new authorization (discovery, the browser, a code
  exchange). The SDK refreshes only before a request, once the expiry it computed from the
  `expires_in` of a reply it received itself has passed: its auth flow yields a
  `grant_type=refresh_token` POST to the token endpoint carrying the refresh token it holds in
  memory. Each process does so on its own, so processes sharing one grant present the same
  rotating refresh token twice and the server revokes the grant (python-sdk #1318).

So a storage alone cannot make refreshes credlock's: whatever `get_tokens` returns, a loaded
token goes stale in the SDK's memory and the next 401 sends the user to the browser, and a
refresh token handed to the SDK would be POSTed by it. This provider keeps the SDK's flow
(discovery, registration, login, step-up) and changes three things in it, through the public
httpx contract (`async_auth_flow` wraps the SDK's):

1. The request being authenticated carries credlock's token (`Store.token_info` with
   `min_valid`), whatever the SDK holds in memory: credlock refreshes it when due, once
   across every process, with its durable refresh intent.
2. A refresh request the SDK's flow makes is never sent. It is answered here from credlock
   (`token_info`) with a 200 reply whose `refresh_token` is `HELD_REFRESH_TOKEN`, a handle
   that is not a refresh token. Requests are recognised by `grant_type=refresh_token`, not
   by the handle, so even the refresh token the SDK's own login received, which it keeps in
   memory, is never POSTed by the SDK. The answer is `token_info`, not a forced refresh: the
   SDK decides on its own clock from a rounded-down lifetime, while `token_info` refreshes
   exactly when credlock's rule (the one every other process follows) says so, and hands
   over a token another process has just refreshed instead of refreshing it again.
3. A 401 to credlock's token reports it rejected (`Store.refresh(rejected=...)`: one refresh
   across the processes that met it; the others get the winner's token) and sends the
   request once more. Only a second 401, or credlock saying a login is needed (no tokens,
   a refresh token the server refused), reaches the SDK, whose authorization is then the
   right remedy; its `set_tokens` puts the new grant into credlock.

`get_tokens` returns what credlock serves fresh (`expires_in` from credlock's absolute expiry,
the handle as refresh token, so that the SDK, once its own expiry passes, asks to refresh,
which 2 answers, rather than sending no token). `set_tokens` of the handle is credlock's own
token coming back and writes nothing; anything else is a login the SDK ran, stored by
`Store.put` with the token endpoint the SDK discovered (or its `/token` fallback), the
registered client (`client_id`, secret and `token_endpoint_auth_method`), the revocation
endpoint and the resource, so credlock refreshes it from then on. The client registration is kept sealed with
the tenant as the attachment `client-information` (the RFC 7591 JSON the SDK reads), shared
by every process and by the other languages' MCP adapters.

The RFC 8707 `resource` the SDK names in a login (when the server publishes resource
metadata or speaks MCP 2025-06-18 or later) is stored as `refresh_resource`, so credlock's
refreshes send it as the SDK's own would have.
"""

from __future__ import annotations

import functools
import json
import time
from typing import Any, AsyncGenerator, Callable, Optional, TypeVar
from urllib.parse import parse_qs, urljoin

import anyio.to_thread
import mcp.client.auth.oauth2 as _sdk
from mcp.client.auth import OAuthClientProvider
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken

from ._store import Store
from ._types import AccessToken
from .errors import LoginRequired, NotFound

#: The HTTP library the installed SDK is written against (the module): httpx2 for mcp 2.x,
#: httpx for 1.x. The provider is an Auth of that library, so a client built by hand for it
#: is `SDK_HTTP.AsyncClient(auth=provider)`; the replies made here are its Responses.
SDK_HTTP: Any = getattr(_sdk, "httpx2", None) or _sdk.httpx

#: What stands in the SDK's memory for the refresh token credlock keeps: a handle, not a
#: secret. The SDK never sends it (every refresh request is answered by the provider), and a
#: token with it that comes back through `set_tokens` is credlock's own.
HELD_REFRESH_TOKEN = "credlock-held"

#: The attachment that keeps the client's registration (RFC 7591 client information JSON).
CLIENT_INFORMATION = "client-information"

T = TypeVar("T")


async def _off_loop(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a store call on a worker thread: the event loop never waits for a lock or a
    refresh. anyio's, not asyncio's executor, because the SDK runs under trio too."""
    return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))


def _expires_in(token: AccessToken) -> Optional[int]:
    """Whole seconds until credlock's absolute expiry (rounded down, so the SDK never deems a
    token valid longer than it is), or None when the server gave no lifetime."""
    if token.expires_at_ms is None:
        return None
    return max(0, (token.expires_at_ms - int(time.time() * 1000)) // 1000)


def _oauth_token(token: AccessToken, scope: Optional[str] = None) -> OAuthToken:
    return OAuthToken(access_token=token.token, token_type="Bearer", expires_in=_expires_in(token),
                      scope=scope, refresh_token=HELD_REFRESH_TOKEN)


class CredlockTokenStorage:
    """The MCP SDK's `TokenStorage` over one tenant of a credlock store, for
    `CredlockOAuthClientProvider` (see the module's doc: with the plain `OAuthClientProvider`
    the SDK would refresh by itself, so it refuses to serve one)."""

    def __init__(self, store: Store, tenant: str, *, min_valid: float = 60.0) -> None:
        self.store = store
        self.tenant = tenant
        #: How long a token handed out must stay valid; credlock refreshes it when less is
        #: left (capped at half the token's lifetime).
        self.min_valid = float(min_valid)
        self._provider: Optional[CredlockOAuthClientProvider] = None

    def _bind(self, provider: "CredlockOAuthClientProvider") -> None:
        if self._provider is not None and self._provider is not provider:
            raise ValueError("this CredlockTokenStorage already serves another provider; "
                             "give each CredlockOAuthClientProvider its own")
        self._provider = provider

    def _bound(self) -> "CredlockOAuthClientProvider":
        if self._provider is None:
            raise TypeError("CredlockTokenStorage serves tokens only to a "
                            "credlock.mcp_auth.CredlockOAuthClientProvider: the SDK's own "
                            "OAuthClientProvider would refresh them itself, in each process")
        return self._provider

    async def token_info(self) -> Optional[AccessToken]:
        """credlock's token for the tenant, or None when only a login can give one (no tokens,
        or a refresh token the server refused): the SDK's authorization then runs."""
        try:
            return await _off_loop(self.store.token_info, self.tenant, self.min_valid)
        except (NotFound, LoginRequired):
            return None

    async def refreshed(self, rejected: str) -> Optional[AccessToken]:
        """The token to use instead of `rejected`, which a resource server refused: credlock
        refreshes only if it is still the stored token, so every process that met the same
        401 costs one refresh. None when only a login can help."""
        try:
            return await _off_loop(self.store.refresh, self.tenant, rejected=rejected)
        except (NotFound, LoginRequired):
            return None

    async def get_tokens(self) -> Optional[OAuthToken]:
        self._bound()
        token = await self.token_info()
        if token is None:
            return None
        # The granted scope, which the SDK unions with a step-up's (SEP-2350).
        scope = next((t.scope for t in await _off_loop(self.store.list) if t.tenant == self.tenant), None)
        return _oauth_token(token, scope)

    async def set_tokens(self, tokens: OAuthToken) -> None:
        provider = self._bound()
        if tokens.refresh_token == HELD_REFRESH_TOKEN:
            return  # credlock's own token, handed back by the SDK after a refresh answered here
        doc: dict = {k: v for k, v in tokens.model_dump(exclude_none=True).items()}
        doc.update(provider._refresh_config())
        await _off_loop(self.store.put, self.tenant, doc)

    async def get_client_info(self) -> Optional[OAuthClientInformationFull]:
        text = await _off_loop(self.store.attachment, self.tenant, CLIENT_INFORMATION)
        return None if text is None else OAuthClientInformationFull.model_validate_json(text)

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        text = client_info.model_dump_json(exclude_none=True)
        await _off_loop(self.store.set_attachment, self.tenant, CLIENT_INFORMATION, text)


def _is_refresh(request: Any) -> bool:
    if request.method != "POST":
        return False
    try:
        form = parse_qs(request.content.decode("ascii"))
    except (UnicodeDecodeError, RuntimeError):  # RuntimeError: a streamed body, not a form
        return False
    return form.get("grant_type") == ["refresh_token"]


def _reply(request: Any, status: int, body: dict) -> Any:
    return SDK_HTTP.Response(status, headers={"Content-Type": "application/json", "Cache-Control": "no-store"},
                          content=json.dumps(body).encode(), request=request)


class CredlockOAuthClientProvider(OAuthClientProvider):
    """The MCP SDK's `OAuthClientProvider` with credlock's tokens and refreshes (see the
    module's doc). Its arguments are `OAuthClientProvider`'s; `storage` is a
    `CredlockTokenStorage`."""

    #: The request may be sent again after a 401, so httpx must read its body first.
    requires_request_body = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        storage = self.context.storage
        if not isinstance(storage, CredlockTokenStorage):
            raise TypeError(f"CredlockOAuthClientProvider needs a credlock.mcp_auth.CredlockTokenStorage "
                            f"as its storage, not {type(storage).__name__}")
        storage._bind(self)
        self._credlock = storage

    def _refresh_config(self) -> dict:
        """How credlock refreshes what the SDK's login got: the fields `Store.put` takes beside
        a token response, from the metadata the SDK discovered and the client it registered,
        as the SDK's own refresh would have used them."""
        ctx = self.context
        meta = ctx.oauth_metadata
        if meta is not None and meta.token_endpoint:
            endpoint = str(meta.token_endpoint)
        else:  # the SDK's fallback for servers without metadata
            endpoint = urljoin(ctx.get_authorization_base_url(ctx.server_url), "/token")
        doc: dict = {"token_endpoint": endpoint}
        # The RFC 8707 resource the SDK named in this login, which its own refreshes would
        # have sent again: credlock's send it too, so refreshed tokens keep their audience.
        if ctx.should_include_resource_param(ctx.protocol_version):
            doc["refresh_resource"] = ctx.get_resource_url()
        if meta is not None and meta.revocation_endpoint:
            doc["revocation_endpoint"] = str(meta.revocation_endpoint)
        client = ctx.client_info
        if client is not None:
            doc["client_id"] = client.client_id
            method = client.token_endpoint_auth_method
            if client.client_secret and method in (None, "client_secret_basic", "client_secret_post"):
                doc["client_secret"] = client.client_secret
                doc["client_auth"] = method or "client_secret_basic"
            elif method in (None, "none", "client_secret_basic", "client_secret_post"):
                doc["client_auth"] = "none"  # the SDK sends no secret it does not have
            else:
                doc["client_auth"] = method  # credlock's put names what it cannot refresh with
        return doc

    async def _answer_refresh(self, request: Any) -> Any:
        token = await self._credlock.token_info()
        if token is None:
            # The SDK clears its tokens and loads them again later; its next request meets a
            # 401 and its authorization runs.
            return _reply(request, 400, {"error": "invalid_grant",
                                         "error_description": "credlock holds no usable grant for this tenant"})
        return _reply(request, 200, _oauth_token(token).model_dump(exclude_none=True))

    async def async_auth_flow(self, request: Any) -> AsyncGenerator[Any, Any]:
        flow = super().async_auth_flow(request)
        try:
            outgoing = await flow.__anext__()
            while True:
                if outgoing is not request:
                    if _is_refresh(outgoing):
                        response = await self._answer_refresh(outgoing)
                    else:  # discovery, registration, the code exchange: the SDK's own
                        response = yield outgoing
                    outgoing = await flow.asend(response)
                    continue
                token = await self._credlock.token_info()
                if token is not None:
                    request.headers["Authorization"] = f"Bearer {token.token}"
                response = yield request
                if response.status_code == 401 and token is not None:
                    fresh = await self._credlock.refreshed(token.token)
                    if fresh is not None:
                        request.headers["Authorization"] = f"Bearer {fresh.token}"
                        response = yield request
                outgoing = await flow.asend(response)
        except StopAsyncIteration:
            return
        finally:
            await flow.aclose()
