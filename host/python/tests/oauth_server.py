"""A small OAuth 2.0 token endpoint on 127.0.0.1 for the refresh tests.

Refresh tokens rotate: each successful refresh spends the presented refresh token and issues a
new one. Presenting a spent token is answered `invalid_grant` and counted as a reuse, the
thing credlock promises never to cause. `mode` switches the server's behaviour."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, List, Optional


class TokenServer:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.valid: Dict[str, str] = {}  # refresh token -> its grant name
        self.spent: set = set()
        self.requests: List[dict] = []
        self.refreshes = 0
        self.reuses = 0
        self.counter = 0
        #: ok | invalid_grant | invalid_client | server_error | slow | drop | redirect | huge
        self.mode = "ok"
        self.delay = 0.0
        self.expires_in = 3600
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length).decode()
                form = dict(urllib.parse.parse_qsl(body))
                with server.lock:
                    server.requests.append(
                        {"path": self.path, "headers": dict(self.headers), "form": form}
                    )
                    mode = server.mode
                if server.delay:
                    time.sleep(server.delay)
                if mode == "drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if mode == "redirect":
                    return self._send(302, b"", {"Location": "http://127.0.0.1:1/elsewhere"})
                if mode == "huge":
                    return self._send(200, b"x" * (1024 * 1024 + 10))
                if mode == "server_error":
                    return self._send(503, b"<html>down</html>", ctype="text/html")
                if mode in ("invalid_client",):
                    return self._json(401, {"error": "invalid_client", "error_description": "bad client"})
                reply = server.refresh(form, mode)
                self._json(200 if "access_token" in reply else 400, reply)

            def _json(self, status: int, obj: dict) -> None:
                self._send(status, json.dumps(obj).encode(), ctype="application/json")

            def _send(self, status: int, data: bytes, headers: Optional[dict] = None,
                      ctype: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/token"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def grant(self, name: str = "grant") -> str:
        """A fresh refresh token."""
        with self.lock:
            self.counter += 1
            rt = f"rt-{name}-{self.counter}"
            self.valid[rt] = name
            return rt

    def refresh(self, form: dict, mode: str) -> dict:
        with self.lock:
            rt = form.get("refresh_token", "")
            if form.get("grant_type") != "refresh_token":
                return {"error": "unsupported_grant_type"}
            if rt in self.spent:
                self.reuses += 1
                return {"error": "invalid_grant", "error_description": "reused"}
            if mode == "invalid_grant" or rt not in self.valid:
                return {"error": "invalid_grant"}
            name = self.valid.pop(rt)
            self.spent.add(rt)
            self.refreshes += 1
            self.counter += 1
            new_rt = f"rt-{name}-{self.counter}"
            self.valid[new_rt] = name
            return {
                "access_token": f"at-{name}-{self.counter}",
                "token_type": "Bearer",
                "expires_in": self.expires_in,
                "refresh_token": new_rt,
            }

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
