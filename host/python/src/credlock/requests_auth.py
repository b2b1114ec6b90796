"""credlock behind `requests.auth.AuthBase`: every request gets the tenant's fresh token, and
a 401 asks credlock to refresh once across every process before one retry.

    import requests, credlock
    from credlock.requests_auth import CredlockAuth
    store = credlock.Store.open()
    session = requests.Session()
    session.auth = CredlockAuth(store, "acme")

requests is imported only by this module: the base package keeps no dependency.
"""

from __future__ import annotations

from typing import Any, Optional

import requests
from requests.cookies import extract_cookies_to_jar

from ._store import Store

# Marks the one retry of a request, so that its own 401 is returned, not retried again.
_RETRY = "_credlock_retry"


class CredlockAuth(requests.auth.AuthBase):
    """A `requests` auth for one tenant of a credlock store.

    Each request carries a token valid at least `min_valid` seconds more (credlock refreshes
    it if needed, once across every process sharing the store). On a 401 the token that was
    sent is reported as rejected (`Store.refresh(rejected=...)`: a refresh only if it is
    still the stored token, so processes that meet the same 401 together cost one refresh)
    and the request is sent once more on the same connection pool, as requests' own digest
    auth does. A request whose body cannot be sent twice (a generator, or a file that cannot
    seek) is not retried: its 401 is returned.
    """

    def __init__(self, store: Store, tenant: str, *, min_valid: float = 60.0) -> None:
        self._store = store
        self._tenant = tenant
        self._min_valid = float(min_valid)

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = f"Bearer {self._store.token(self._tenant, self._min_valid)}"
        body_pos: Optional[int] = None
        if hasattr(r.body, "seek") and hasattr(r.body, "tell"):
            try:
                body_pos = r.body.tell()  # type: ignore[union-attr]
            except OSError:
                body_pos = None
        r.register_hook("response", lambda resp, **kw: self._on_response(resp, body_pos, **kw))
        return r

    def _on_response(self, r: requests.Response, body_pos: Optional[int], **kwargs: Any) -> requests.Response:
        if r.status_code != 401 or getattr(r.request, _RETRY, False):
            return r
        body = r.request.body
        if body is not None and not isinstance(body, (bytes, str)):
            if body_pos is None:
                return r  # a stream that cannot be replayed
            body.seek(body_pos)  # type: ignore[union-attr]
        sent = r.request.headers.get("Authorization", "").removeprefix("Bearer ")
        fresh = self._store.refresh(self._tenant, rejected=sent).token
        # Release the first response's connection before the retry takes one.
        r.content
        r.close()
        prep = r.request.copy()
        extract_cookies_to_jar(prep._cookies, r.request, r.raw)  # type: ignore[attr-defined]
        prep.prepare_cookies(prep._cookies)  # type: ignore[attr-defined]
        prep.headers["Authorization"] = f"Bearer {fresh}"
        setattr(prep, _RETRY, True)
        retried = r.connection.send(prep, **kwargs)  # type: ignore[attr-defined]
        retried.history.append(r)
        retried.request = prep
        return retried
