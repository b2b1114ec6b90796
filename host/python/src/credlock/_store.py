"""`credlock.Store`: the Python API over the credlock component (wit/store.wit)."""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

from wasmtime.component import Variant

from . import _runtime
from ._keys import KdfParams, Keyring, KeySources
from ._layout import Layout, default_store_dir
from ._platform import Platform
from .errors import (
    Corrupt,
    CredlockError,
    EndpointError,
    Expired,
    InternalError,
    InvalidOptions,
    InvalidTenant,
    InvalidTokenResponse,
    KeyUnavailable,
    LockTimeout,
    NotAStore,
    NotFound,
    ReauthNeeded,
    RefreshOutcomeUnknown,
    StoreIOError,
    UnsupportedVersion,
)

PathLike = Union[str, "os.PathLike[str]"]


@dataclass(frozen=True)
class WriteReceipt:
    #: The tenant's revision after the write.
    revision: int
    #: The store generation after the write.
    generation: int


@dataclass(frozen=True)
class AccessToken:
    #: The access token itself (left out of `repr`, so it never reaches a log by accident).
    token: str = field(repr=False)
    token_type: str
    #: Unix ms at which the access token expires, if known.
    expires_at_ms: Optional[int]
    revision: int
    #: True when this call exchanged the refresh token itself.
    refreshed: bool

    def __str__(self) -> str:
        return f"AccessToken({self.token_type}, revision {self.revision})"


@dataclass(frozen=True)
class TenantSummary:
    """One tenant, as `list` shows it: never a secret."""

    tenant: str
    token_type: str
    expires_at_ms: Optional[int]
    has_refresh_token: bool
    scope: Optional[str]
    token_endpoint: Optional[str]
    client_id: Optional[str]
    revision: int
    #: The refresh token was rejected or its outcome is unknown: log in again.
    needs_reauth: bool


@dataclass(frozen=True)
class StoreInfo:
    exists: bool
    generation: int
    format_version: int
    #: Hex of the data key id.
    key_id: str
    slot_kinds: Tuple[str, ...]
    tenants: int


def _f(rec: Any, name: str) -> Any:
    return getattr(rec, name)


# ----- store-error -> exception -----


def _tagged(value: Any, tags: Tuple[str, ...]) -> bool:
    return isinstance(value, Variant) and value.tag in tags


def _io_parts(v: Any) -> Tuple[str, str]:
    """An `io-error` (always a tagged Variant: all its cases carry strings)."""
    if isinstance(v, Variant):
        return v.tag, v.payload or ""
    return "other", str(v)


_TRANSPORT = ("bad-url", "connect", "timeout", "interrupted", "reply-too-large")
_TRANSPORT_TEXT = {
    "bad-url": "the token endpoint URL is not acceptable: {}",
    "connect": "cannot connect to the token endpoint: {}",
    "timeout": "the token endpoint did not answer in time",
    "interrupted": "the connection to the token endpoint broke after the request was sent: {}",
    "reply-too-large": "the token endpoint's reply is too large",
}


def _endpoint_error(p: Any) -> EndpointError:
    # endpoint-error's cases have distinct payload types, so wasmtime-py lifts it untagged
    # (the payload alone); accept the tagged form too.
    if _tagged(p, ("oauth", "server", "malformed-reply", "transport")):
        tag, p = p.tag, p.payload
    elif isinstance(p, Variant):
        tag = "transport"
    elif isinstance(p, int):
        tag = "server"
    elif isinstance(p, str):
        tag = "malformed-reply"
    else:
        tag = "oauth"
    if tag == "oauth":
        status, error, desc = _f(p, "status"), _f(p, "error"), _f(p, "error-description")
        msg = f"the token endpoint answered {status} {error}" + (f": {desc}" if desc else "")
        return EndpointError(msg, "oauth", status=status, error=error, error_description=desc)
    if tag == "server":
        return EndpointError(f"the token endpoint failed with HTTP {p}", "server", status=p)
    if tag == "malformed-reply":
        return EndpointError(
            f"the token endpoint's reply is not a valid token response: {p}",
            "malformed-reply",
            detail=p,
        )
    t = p.tag if isinstance(p, Variant) else "interrupted"
    detail = p.payload if isinstance(p, Variant) else None
    text = _TRANSPORT_TEXT.get(t, "the token endpoint failed: {}").format(detail or "")
    return EndpointError(text, "transport", transport=t, detail=detail)


def _key_error(p: Any) -> KeyUnavailable:
    tag = p.tag if isinstance(p, Variant) else "malformed-slot"
    payload = p.payload if isinstance(p, Variant) else p
    if tag == "no-matching-slot":
        return KeyUnavailable(tag, slot_kinds=list(payload or []))
    if tag == "malformed-slot":
        return KeyUnavailable(tag, detail=str(payload or ""))
    if tag == "io":
        kind, detail = _io_parts(payload)
        return KeyUnavailable(tag, detail=detail, io_kind=kind)
    return KeyUnavailable(tag)


def store_error(v: Variant) -> CredlockError:
    tag: str = v.tag
    p: Any = v.payload
    simple = {
        "invalid-tenant": InvalidTenant,
        "invalid-token-response": InvalidTokenResponse,
        "invalid-options": InvalidOptions,
        "not-found": NotFound,
        "expired": Expired,
        "reauth-needed": ReauthNeeded,
        "refresh-outcome-unknown": RefreshOutcomeUnknown,
        "not-a-store": NotAStore,
        "corrupt": Corrupt,
    }
    if tag in simple:
        return simple[tag](p)
    if tag == "unsupported-version":
        return UnsupportedVersion(p)
    if tag == "lock-timeout":
        return LockTimeout(_f(p, "lock"), _f(p, "waited-ms"))
    if tag == "endpoint":
        return _endpoint_error(p)
    if tag == "key":
        return _key_error(p)
    if tag == "io":
        # file-error: io(io-error) | too-large(u64); lifted untagged (Variant or int).
        if _tagged(p, ("io", "too-large")):
            p = p.payload if p.tag == "io" else int(p.payload)
        if isinstance(p, int):
            return StoreIOError("too-large", size=p)
        kind, detail = _io_parts(p)
        return StoreIOError(kind, detail)
    return InternalError(f"unknown store error {tag!r}")


_STORE_ERRORS = (
    "invalid-tenant", "invalid-token-response", "invalid-options", "not-found", "expired",
    "reauth-needed", "refresh-outcome-unknown", "endpoint", "lock-timeout", "io", "key",
    "not-a-store", "unsupported-version", "corrupt",
)  # fmt: skip


# ----- configuration -----


def _seconds_ms(name: str, s: Any) -> int:
    try:
        s = float(s)
    except (TypeError, ValueError):
        raise InvalidOptions(f"{name} must be a number of seconds") from None
    if not (math.isfinite(s) and s >= 0 and s * 1000.0 <= (0xFFFFFFFF // 4)):
        raise InvalidOptions(f"{name} must be a number of seconds between 0 and 12 days")
    return int(round(s * 1000.0))


def _env_seconds(name: str, env: str, value: Optional[float], default: float) -> int:
    if value is None:
        raw = os.environ.get(env)
        if raw is None or raw == "":
            return _seconds_ms(name, default)
        return _seconds_ms(f"{env}", raw)
    return _seconds_ms(name, value)


def _env_flag(env: str) -> bool:
    # clap's FalseyValueParser, as the CLI reads CREDLOCK_ALLOW_INSECURE_HTTP.
    raw = os.environ.get(env)
    if raw is None:
        return False
    return raw.strip().lower() not in ("", "n", "no", "f", "false", "off", "0")


class Store:
    """An open credential store.

    Open with `Store.open(...)`. Every method is one call into the credlock component; calls
    on one `Store` are serialised (it may be shared by threads), separate `Store` objects on
    the same directory exclude each other through the store's flock protocol, exactly as
    separate processes do.
    """

    def __init__(
        self,
        directory: Path,
        sources: KeySources,
        lock_timeout_ms: int,
        http_timeout_ms: int,
        allow_insecure_http: bool,
    ) -> None:
        self.path = directory
        self._platform = Platform(Layout(directory), Keyring(sources), allow_insecure_http)
        self._runtime = _runtime.runtime()
        self._options = _runtime.options(lock_timeout_ms, http_timeout_ms)
        self.lock_timeout_ms = lock_timeout_ms
        self.http_timeout_ms = http_timeout_ms
        self._lock = threading.RLock()
        self._instance: Optional[_runtime.Instance] = None
        self._pid = os.getpid()
        self._closed = False

    @classmethod
    def open(
        cls,
        path: Optional[PathLike] = None,
        passphrase: Union[str, bytes, None] = None,
        *,
        key_file: Optional[PathLike] = None,
        lock_timeout: Optional[float] = None,
        http_timeout: Optional[float] = None,
        allow_insecure_http: Optional[bool] = None,
        _kdf: Optional[KdfParams] = None,
    ) -> "Store":
        """Open the store in `path`, configured as the `credlock` CLI would be.

        - `path`: default `$CREDLOCK_STORE`, else `$XDG_DATA_HOME/credlock`.
        - `passphrase`: default `$CREDLOCK_PASSPHRASE` (if non-empty).
        - `key_file`: default `$CREDLOCK_KEY_FILE`, else `PATH/key`. A new store gets a
          key-file slot (creating the file) unless a passphrase is given without an explicit
          key file; the default key file is still tried for opening.
        - `lock_timeout`, `http_timeout`: seconds; default `$CREDLOCK_LOCK_TIMEOUT` or 10,
          `$CREDLOCK_HTTP_TIMEOUT` or 30.
        - `allow_insecure_http`: plain http to non-loopback token endpoints; default
          `$CREDLOCK_ALLOW_INSECURE_HTTP`.

        Opening touches no file; the first call does. Raises InvalidOptions, or
        InternalError if the component cannot be loaded.
        """
        if path is None:
            env = os.environ.get("CREDLOCK_STORE")
            directory = Path(env) if env else default_store_dir()
            if directory is None:
                raise InvalidOptions("no home directory: pass a path or set CREDLOCK_STORE")
        else:
            directory = Path(os.fspath(path))
        if passphrase is None:
            env_pass = os.environ.get("CREDLOCK_PASSPHRASE")
            secret: Optional[bytes] = env_pass.encode("utf-8") if env_pass else None
        else:
            secret = passphrase.encode("utf-8") if isinstance(passphrase, str) else bytes(passphrase)
            if not secret:
                raise InvalidOptions("the passphrase is empty")
        if key_file is None:
            env_kf = os.environ.get("CREDLOCK_KEY_FILE")
            explicit_key_file: Optional[Path] = Path(env_kf) if env_kf else None
        else:
            explicit_key_file = Path(os.fspath(key_file))
        sources = KeySources(
            passphrase=secret,
            key_file=explicit_key_file or Layout(directory).default_key_file,
            # With a passphrase and no explicit key file, a new store gets only the passphrase
            # slot; an existing store's key file is still used to open it if present.
            create_key_file=secret is None or explicit_key_file is not None,
            kdf=_kdf or KdfParams(),
        )
        lock_ms = _env_seconds("lock_timeout", "CREDLOCK_LOCK_TIMEOUT", lock_timeout, 10.0)
        http_ms = max(_env_seconds("http_timeout", "CREDLOCK_HTTP_TIMEOUT", http_timeout, 30.0), 1)
        insecure = _env_flag("CREDLOCK_ALLOW_INSECURE_HTTP") if allow_insecure_http is None else bool(allow_insecure_http)
        return cls(directory, sources, lock_ms, http_ms, insecure)

    def __repr__(self) -> str:
        return f"credlock.Store({os.fspath(self.path)!r})"

    # ----- calls -----

    def _call(self, name: str, *args: Any) -> Any:
        with self._lock:
            if self._closed:
                raise ValueError("this credlock.Store is closed")
            if self._pid != os.getpid():
                # A forked child: start from a fresh wasmtime store of its own.
                self._instance = None
                self._pid = os.getpid()
            if self._instance is None:
                try:
                    self._instance = _runtime.Instance(self._runtime, self._platform)
                except Exception as e:
                    raise InternalError(f"instantiating the component: {e}") from e
            instance = self._instance
            try:
                result = instance.call(name, self._options, *args)
            except _runtime.HostAbort as abort:
                # Ctrl-C (or another BaseException) inside a host function: the instance
                # trapped; tear it down (releasing its locks) and re-raise the original.
                self._instance = None
                instance.close()
                raise abort.original from None
            except BaseException as e:
                # A trap (a bug in credlock) may leave the instance unusable: start afresh.
                self._instance = None
                instance.close()
                if isinstance(e, Exception):
                    raise InternalError(f"{name}: {e}") from e
                raise
        if isinstance(result, Variant):
            if result.tag == "ok":
                return result.payload
            if result.tag == "err":
                result = result.payload
            if isinstance(result, Variant) and result.tag in _STORE_ERRORS:
                raise store_error(result)
        return result

    def init(self) -> bool:
        """Create the store (and its key) if it does not exist; True if it was created."""
        return bool(self._call("init"))

    def put(self, tenant: str, token_response: Union[Mapping[str, Any], str, bytes]) -> WriteReceipt:
        """Store a token response (RFC 6749 §5.1, plus `token_endpoint`, `client_id`,
        `client_secret`, `client_auth`, `retry_unknown_refresh`) for `tenant`, creating the
        store if needed."""
        if isinstance(token_response, (bytes, bytearray)):
            try:
                text = bytes(token_response).decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidTokenResponse("the token response is not UTF-8") from None
        elif isinstance(token_response, str):
            text = token_response
        elif isinstance(token_response, Mapping):
            try:
                text = json.dumps(dict(token_response))
            except (TypeError, ValueError):
                raise InvalidTokenResponse("the token response is not JSON-serialisable") from None
        else:
            raise TypeError("token_response must be a dict, a JSON string or bytes")
        r = self._call("put", _str(tenant), text)
        return WriteReceipt(_f(r, "revision"), _f(r, "generation"))

    def token_info(self, tenant: str, min_valid: float = 60.0) -> AccessToken:
        """The tenant's access token, valid for at least `min_valid` more seconds, refreshed
        through the token endpoint if needed (by at most one process)."""
        return _access_token(self._call("token", _str(tenant), _min_valid_ms(min_valid)))

    def token(self, tenant: str, min_valid: float = 60.0) -> str:
        """The tenant's access token string (see `token_info`)."""
        return self.token_info(tenant, min_valid).token

    def refresh(
        self,
        tenant: str,
        rejected: Optional[str] = None,
        *,
        rejected_sha256: Optional[str] = None,
    ) -> AccessToken:
        """Refresh now, even if the token is still fresh.

        With `rejected` (an access token a resource server refused with 401) or
        `rejected_sha256` (its lowercase hex SHA-256, or a prefix of at least 16 hex
        characters), refresh only if the stored access token is still that one; otherwise
        return the stored, newer one. The token is hashed here and never leaves the process.
        """
        if rejected is not None and rejected_sha256 is not None:
            raise InvalidOptions("give rejected or rejected_sha256, not both")
        digest = rejected_sha256
        if rejected is not None:
            digest = hashlib.sha256(_str(rejected).strip().encode("utf-8")).hexdigest()
        return _access_token(self._call("refresh", _str(tenant), digest))

    def list(self) -> List[TenantSummary]:
        """Every tenant, sorted by name, without secrets. An absent store has none."""
        return [
            TenantSummary(
                tenant=_f(t, "tenant"),
                token_type=_f(t, "token-type"),
                expires_at_ms=_f(t, "expires-at-ms"),
                has_refresh_token=_f(t, "has-refresh-token"),
                scope=_f(t, "scope"),
                token_endpoint=_f(t, "token-endpoint"),
                client_id=_f(t, "client-id"),
                revision=_f(t, "revision"),
                needs_reauth=_f(t, "needs-reauth"),
            )
            for t in self._call("list")
        ]

    def delete(self, tenant: str) -> bool:
        """Remove a tenant; False if it did not exist."""
        return bool(self._call("delete", _str(tenant)))

    def info(self) -> StoreInfo:
        """What the store is, without decrypting more than needed."""
        i = self._call("info")
        return StoreInfo(
            exists=_f(i, "exists"),
            generation=_f(i, "generation"),
            format_version=_f(i, "format-version"),
            key_id=_f(i, "key-id"),
            slot_kinds=tuple(_f(i, "slot-kinds")),
            tenants=_f(i, "tenants"),
        )

    # ----- lifetime -----

    def close(self) -> None:
        """Release the component instance. Idempotent; the store's files are untouched."""
        with self._lock:
            self._closed = True
            instance, self._instance = self._instance, None
            if instance is not None:
                instance.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


def _str(v: Any) -> str:
    if not isinstance(v, str):
        raise TypeError(f"expected a str, got {type(v).__name__}")
    return v


def _min_valid_ms(min_valid: float) -> int:
    try:
        s = float(min_valid)
    except (TypeError, ValueError):
        raise InvalidOptions("min_valid must be a number of seconds") from None
    if not (math.isfinite(s) and s >= 0):
        raise InvalidOptions("min_valid must be a non-negative number of seconds")
    return min(int(round(s * 1000.0)), 0xFFFFFFFFFFFFFFFF)


def _access_token(t: Any) -> AccessToken:
    return AccessToken(
        token=_f(t, "token"),
        token_type=_f(t, "token-type"),
        expires_at_ms=_f(t, "expires-at-ms"),
        revision=_f(t, "revision"),
        refreshed=_f(t, "refreshed"),
    )
