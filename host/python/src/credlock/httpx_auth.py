"""credlock behind `httpx.Auth`: every request gets the tenant's fresh token, and a 401 asks
credlock to refresh once across every process (never this process alone) before one retry.

    import httpx, credlock
    from credlock.httpx_auth import CredlockAuth
    store = credlock.Store.open()
    client = httpx.Client(auth=CredlockAuth(store, "acme"))     # or httpx.AsyncClient

httpx is imported only by this module: the base package keeps no dependency.
"""

from __future__ import annotations

from typing import AsyncGenerator, Generator

import httpx

from ._store import Store


class CredlockAuth(httpx.Auth):
    """An `httpx.Auth` for one tenant of a credlock store, for `httpx.Client` and
    `httpx.AsyncClient` alike.

    Before each request it asks credlock for a token valid at least `min_valid` seconds more
    (credlock refreshes it if needed, once across every process sharing the store). On a 401
    it reports the token it sent as rejected (`Store.refresh(rejected=...)`): credlock
    refreshes only if that is still the stored token, so processes that meet the same 401
    together cost one refresh, and a process that lost the race gets the winner's token. The
    request is then sent once more; a second 401 is returned to the caller.
    """

    #: httpx reads the body before the flow, so the request can be sent again after a 401.
    requires_request_body = True

    def __init__(self, store: Store, tenant: str, *, min_valid: float = 60.0) -> None:
        self._store = store
        self._tenant = tenant
        self._min_valid = float(min_valid)

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        sent = self._store.token(self._tenant, self._min_valid)
        request.headers["Authorization"] = f"Bearer {sent}"
        response = yield request
        if response.status_code == 401:
            fresh = self._store.refresh(self._tenant, rejected=sent).token
            request.headers["Authorization"] = f"Bearer {fresh}"
            yield request

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        # The store's calls run on a worker thread (the `*_async` methods): the event loop
        # never waits for a lock or a refresh.
        sent = (await self._store.token_info_async(self._tenant, self._min_valid)).token
        request.headers["Authorization"] = f"Bearer {sent}"
        response = yield request
        if response.status_code == 401:
            fresh = (await self._store.refresh_async(self._tenant, rejected=sent)).token
            request.headers["Authorization"] = f"Bearer {fresh}"
            yield request
