"""The real OAuth server (tests/oauth-server: oidc-provider with refresh-token rotation and
reuse detection) on 127.0.0.1, as the Rust and Go tests run it, for the refresh tests.

Guards against testing the refresh flow against a server written to agree with the client:
the tokens, the rotation, the client authentication and the reuse detection are the
provider's own; the test layer in front of it counts presentations and injects faults."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Dict, Optional

SERVER_DIR = Path(__file__).resolve().parents[3] / "tests" / "oauth-server"

#: The test server's clients and how each authenticates (tests/oauth-server/README.md).
CLIENTS = {
    "conf-basic": {"client_secret": "basic-secret", "client_auth": "basic"},
    "conf-post": {"client_secret": "post-secret", "client_auth": "post"},
    "public-app": {"client_auth": "none"},
}

# Loopback only, never through a proxy from the environment.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class OAuthServer:
    def __init__(self, run_dir: Path, access_ttl_s: int = 3600) -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        self._port_file = run_dir / "oauth"
        env = {**os.environ, "ACCESS_TTL_SECONDS": str(access_ttl_s)}
        subprocess.run(["bash", str(SERVER_DIR / "start.sh"), str(self._port_file)],
                       check=True, env=env)
        self.base = self._port_file.read_text().strip()
        assert self.base.startswith("http://127.0.0.1:"), self.base
        self.url = f"{self.base}/token"

    def _call(self, method: str, path: str, body: Optional[dict] = None,
              headers: Optional[Dict[str, str]] = None) -> tuple:
        data = json.dumps(body).encode() if body is not None else None
        h = {"Content-Type": "application/json"} if body is not None else {}
        h.update(headers or {})
        req = urllib.request.Request(f"{self.base}{path}", data=data, method=method, headers=h)
        try:
            with _opener.open(req, timeout=30) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def _post(self, path: str, body: dict) -> Any:
        status, reply = self._call("POST", path, body)
        assert 200 <= status < 300, (path, status, reply)
        return reply

    def grant(self, client_id: str = "conf-basic", **doc: Any) -> dict:
        """Mint a grant at the server and return a `put` document for it (its access token
        valid for the server's TTL); `doc` adds or replaces fields."""
        t = self._post("/test/grant", {"client_id": client_id, "account": "alice",
                                       "scope": "openid offline_access api"})
        t.pop("grant_id")
        t.update(token_endpoint=self.url, client_id=client_id, **CLIENTS[client_id])
        t.update(doc)
        return t

    def expired_grant(self, client_id: str = "conf-basic", **doc: Any) -> dict:
        """As `grant`, with the access token stored as already expired, so that the next
        `token` refreshes it."""
        t = self.grant(client_id, **doc)
        t.pop("expires_in", None)
        t.setdefault("expires_at", 1)
        return t

    def stats(self) -> dict:
        """The server's counters. Index them (`stats()["invalid_grant"]`): a missing counter
        is a KeyError, never a zero."""
        status, reply = self._call("GET", "/test/stats")
        assert status == 200, (status, reply)
        return reply

    def reset(self) -> None:
        """Zero the counters, forget which refresh tokens were presented and drop pending
        faults; tokens and grants stay valid."""
        self._post("/test/reset", {})

    def fault(self, mode: str, count: int = 1, **extra: int) -> None:
        """Make the next `count` refresh requests meet `mode` (tests/oauth-server/README.md:
        http500, http503_html, hang, malformed, no_expires_in, cut_after_rotate, slow,
        redirect, huge, huge_chunked); `delay_ms` / `hold_ms` in `extra`."""
        self._post("/test/fault", {"mode": mode, "count": count, **extra})

    def revoke(self, refresh_token: str, client_id: str = "conf-basic") -> None:
        """Revoke a refresh token at the server (RFC 7009), as an administrator would."""
        form = {"token": refresh_token, "token_type_hint": "refresh_token",
                "client_id": client_id, **{k: v for k, v in CLIENTS[client_id].items()
                                           if k == "client_secret"}}
        data = urllib.parse.urlencode(form).encode()
        req = urllib.request.Request(f"{self.base}/token/revocation", data=data, method="POST")
        with _opener.open(req, timeout=30) as r:
            assert r.status == 200, r.status

    def resource(self, access_token: str) -> bool:
        """Whether the protected resource accepts `access_token`."""
        status, _ = self._call("GET", "/resource",
                               headers={"Authorization": f"Bearer {access_token}"})
        return status == 200

    def close(self) -> None:
        # stop.sh ends only the pid start.sh recorded, after checking it is our server.
        subprocess.run(["bash", str(SERVER_DIR / "stop.sh"), f"{self._port_file}.pid"],
                       check=False)

