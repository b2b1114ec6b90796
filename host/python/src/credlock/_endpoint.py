"""One POST to a token endpoint (wit/token-endpoint.wit; host/src/endpoint.rs).

Exactly one request per call: no retries and no redirects, because a refresh token sent twice
can revoke its whole grant; retrying is the core's decision. Plain `http` only to loopback
addresses unless the user explicitly allowed it. The call ends within `timeout_ms` in total
(connect plus everything after), enforced by a watchdog that shuts the socket down.

Error mapping, by whether the request may have reached the server:
- before a connection exists (DNS, refused, TLS handshake, connect timeout): `connect`;
- the deadline passed after connecting: `timeout`;
- anything else after the request started to go out: `interrupted`.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional, Tuple

# http.client, ssl and urllib.request are imported on first use: together they are a quarter
# of `import credlock`, and most processes never refresh.
if TYPE_CHECKING:
    import http.client

from ._ptypes import TransportError

#: The largest reply read (the WIT's limit).
MAX_REPLY_BYTES = 1024 * 1024
USER_AGENT = "credlock-python/0.1.0"

_INSECURE_HINT = (
    "plain http to a non-loopback host would expose the refresh token; use https "
    "(or CREDLOCK_ALLOW_INSECURE_HTTP=1)"
)


@dataclass(frozen=True)
class HttpReply:
    status: int
    content_type: Optional[str]
    body: bytes


def is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _parse(url: str, allow_insecure_http: bool) -> Tuple[str, str, int, str, bool]:
    try:
        u = urllib.parse.urlsplit(url)
        port = u.port
    except ValueError:
        raise TransportError("bad-url", "not a valid URL") from None
    scheme = u.scheme.lower()
    if scheme not in ("http", "https"):
        raise TransportError("bad-url", "only http and https URLs are accepted")
    host = u.hostname
    if not host:
        raise TransportError("bad-url", "the URL has no host")
    if any(c.isspace() or ord(c) < 0x20 for c in url):
        raise TransportError("bad-url", "not a valid URL")
    loopback = is_loopback(host)
    if scheme == "http" and not (loopback or allow_insecure_http):
        raise TransportError("bad-url", _INSECURE_HINT)
    target = urllib.parse.urlunsplit(("", "", u.path or "/", u.query, ""))
    if port is None:
        port = 443 if scheme == "https" else 80
    return scheme, host, port, target, loopback


def _proxy_for(scheme: str, host: str, loopback: bool) -> Optional[Tuple[str, int]]:
    """An `https_proxy` from the environment, for https to non-loopback hosts only (as the
    Rust host, which never proxies loopback). Only http:// proxies (CONNECT tunnels)."""
    if scheme != "https" or loopback:
        return None
    import urllib.request

    proxy = urllib.request.getproxies().get("https")
    if not proxy or urllib.request.proxy_bypass(host):
        return None
    p = urllib.parse.urlsplit(proxy if "://" in proxy else "http://" + proxy)
    if p.scheme != "http" or not p.hostname:
        return None
    return p.hostname, p.port or 8080


def post(
    url: str,
    body: str,
    authorization: Optional[str],
    timeout_ms: int,
    *,
    allow_insecure_http: bool = False,
) -> HttpReply:
    """Send one POST; any HTTP status is a reply. Raises TransportError."""
    import http.client
    import ssl

    scheme, host, port, target, loopback = _parse(url, allow_insecure_http)
    timeout = max(timeout_ms, 1) / 1000.0
    deadline = time.monotonic() + timeout
    proxy = _proxy_for(scheme, host, loopback)
    conn: http.client.HTTPConnection
    if scheme == "https":
        ctx = ssl.create_default_context()
        if proxy:
            conn = http.client.HTTPSConnection(proxy[0], proxy[1], timeout=timeout, context=ctx)
            conn.set_tunnel(host, port)
        else:
            conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=ctx)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)

    expired = threading.Event()

    def watchdog() -> None:
        expired.set()
        sock = conn.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    timer = threading.Timer(timeout, watchdog)
    timer.daemon = True
    timer.start()
    try:
        # Phase 1: connect (DNS, TCP, TLS). Nothing of the request has been sent.
        try:
            conn.connect()
        except socket.gaierror:
            raise TransportError("connect", "host not found") from None
        except ssl.SSLError as e:
            raise TransportError("connect", f"TLS: {e.reason or e}") from None
        except (socket.timeout, TimeoutError):
            raise TransportError("connect", "timed out connecting") from None
        except ConnectionRefusedError as e:
            raise TransportError("connect", f"{e.strerror or e} (os error {e.errno})") from None
        except OSError as e:
            if expired.is_set():
                raise TransportError("connect", "timed out connecting") from None
            raise TransportError("connect", f"connection failed: {e.strerror or e}") from None
        if expired.is_set():
            raise TransportError("connect", "timed out connecting")

        # Phase 2: the request may be on the wire from here on.
        try:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise socket.timeout()
            assert conn.sock is not None
            conn.sock.settimeout(remaining)
            headers = {
                "Content-Type": "application/x-www-form-urlencoded",
                "Accept": "application/json",
                "User-Agent": USER_AGENT,
            }
            if authorization is not None:
                headers["Authorization"] = authorization
            conn.request("POST", target, body=body.encode("utf-8"), headers=headers)
            response = conn.getresponse()
            status = response.status
            content_type = response.getheader("Content-Type")
            chunks = []
            total = 0
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise socket.timeout()
                if conn.sock is not None:
                    conn.sock.settimeout(remaining)
                chunk = response.read(min(64 * 1024, MAX_REPLY_BYTES + 1 - total))
                if not chunk:
                    break
                total += len(chunk)
                if total > MAX_REPLY_BYTES:
                    raise TransportError("reply-too-large")
                chunks.append(chunk)
            return HttpReply(status, content_type, b"".join(chunks))
        except TransportError:
            raise
        except (socket.timeout, TimeoutError):
            raise TransportError("timeout") from None
        except (OSError, http.client.HTTPException, ValueError) as e:
            if expired.is_set():
                raise TransportError("timeout") from None
            raise TransportError("interrupted", _describe(e)) from None
    finally:
        timer.cancel()
        conn.close()


def _describe(e: BaseException) -> str:
    """A short description that cannot quote the reply (which may hold tokens)."""
    import http.client

    if isinstance(e, OSError) and e.strerror:
        return f"{e.strerror} (os error {e.errno})"
    if isinstance(e, (http.client.RemoteDisconnected, http.client.IncompleteRead,
                      http.client.LineTooLong)):
        return f"{type(e).__name__}: {e}"
    return type(e).__name__
