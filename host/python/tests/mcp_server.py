"""An MCP server of the MCP Python SDK itself (`python mcp_server.py OAUTH_BASE PORT_FILE`):
streamable HTTP on 127.0.0.1 (a free port, written to PORT_FILE), its tool `whoami` behind the
SDK's bearer-token middleware, which asks the real OAuth server whether a token is live (its
protected resource, GET /resource, answers as an introspection endpoint would). mcp 2.x's
MCPServer or 1.x's FastMCP, whichever is installed. For test_mcp_auth.py: the MCP client
under test talks to a real MCP server, through the SDK's own transport."""

from __future__ import annotations

import json
import os
import socket
import sys
import urllib.error
import urllib.request
from typing import Any, Optional

import anyio.to_thread
import uvicorn
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings

try:  # mcp 2.x
    from mcp.server.mcpserver import MCPServer as Server
except ImportError:  # mcp 1.x
    from mcp.server.fastmcp import FastMCP as Server

# Loopback only, never through a proxy from the environment.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class ResourceVerifier:
    """The SDK's TokenVerifier: a token is good while the OAuth server's resource accepts it."""

    def __init__(self, base: str) -> None:
        self.base = base

    def _ask(self, token: str) -> Optional[dict]:
        req = urllib.request.Request(f"{self.base}/resource", headers={"Authorization": f"Bearer {token}"})
        try:
            with _opener.open(req, timeout=30) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError:
            return None

    async def verify_token(self, token: str) -> Optional[AccessToken]:
        info = await anyio.to_thread.run_sync(self._ask, token)
        if info is None:
            return None
        return AccessToken(token=token, client_id=info["client_id"], scopes=info["scope"].split())


def main() -> None:
    base, port_file = sys.argv[1:3]
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    settings: dict = {"issuer_url": base, "resource_server_url": f"http://127.0.0.1:{port}/mcp"}
    if "validate_token_resource" in AuthSettings.model_fields:  # 2.x: the verifier decides
        settings["validate_token_resource"] = False
    server: Any = Server("credlock-test", token_verifier=ResourceVerifier(base), auth=AuthSettings(**settings))

    @server.tool()
    def whoami() -> str:
        """The account the caller's token belongs to."""
        return "ok"

    app = server.streamable_http_app()
    config = uvicorn.Config(app, log_level="warning")
    with open(port_file + ".tmp", "w") as f:
        f.write(str(port))
    os.replace(port_file + ".tmp", port_file)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
