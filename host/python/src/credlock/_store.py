"""`credlock.Store`: the Python API over the credlock component (wit/store.wit)."""

from __future__ import annotations

import hashlib
import json
import math
import os
import stat
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

from wasmtime.component import Variant

from . import _files, _runtime
from ._keys import VOLATILE_SLOT_KINDS, KdfParams, Keyring, KeySources, describe_slot
from ._layout import Layout, default_store_dir
from ._platform import Platform
from .errors import (
    Corrupt,
    CredlockError,
    EndpointError,
    Expired,
    ImportConflict,
    InternalError,
    InvalidOptions,
    InvalidTenant,
    InvalidTokenResponse,
    KeyUnavailable,
    LockTimeout,
    NotAStore,
    NotFound,
    ReauthNeeded,
    RecoverRefused,
    RefreshOutcomeUnknown,
    SlotChangeRefused,
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


@dataclass(frozen=True)
class KeySlotInfo:
    """One key slot of the store header, as `slots()` shows it: never the wrapped key."""

    #: Its position in the header: what `remove_slot` takes.
    index: int
    #: `key-file`, `passphrase`, `keyring`, `kernel-keyring`, ...
    kind: str
    #: Which source opens it, as the CLI's `slot list` says: `key file <id hex>`,
    #: `argon2id m=64 MiB t=3 p=1`, `<backend> entry credlock/<id hex>`, or the slot's size
    #: for a kind this host does not know.
    describe: str
    #: False for kinds lost at reboot (`kernel-keyring`).
    durable: bool


@dataclass(frozen=True)
class ImportReport:
    #: The tenants written, sorted.
    imported: Tuple[str, ...]
    #: (tenant or key, why) for each entry left out, e.g. an API key.
    skipped: Tuple[Tuple[str, str], ...]
    #: The store generation after the import (unchanged if nothing was imported).
    generation: int
    #: `import_file` only: whether the source file was removed.
    source_removed: bool = False
    #: `import_file(remove_source=True)` only: why the source was kept, if it was.
    kept_reason: Optional[str] = None


@dataclass(frozen=True)
class RecoverReport:
    #: The name (in the store directory) the unreadable or replaced store file was moved to.
    quarantined_as: Optional[str]
    #: The restored store's generation: above any the store had before.
    generation: int
    tenants: int
    #: Tenants whose restored refresh token may have been spent after the backup was
    #: written: marked as of unknown refresh outcome, so it is never presented silently.
    refresh_unknown: Tuple[str, ...]


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
    if tag in ("malformed-slot", "keyring", "slot-unavailable"):
        return KeyUnavailable(tag, detail=str(payload or ""))
    if tag == "keyring-entry-missing":
        return KeyUnavailable(
            tag, backend=_f(payload, "backend"), slot_kinds=list(_f(payload, "other-slots"))
        )
    if tag == "io":
        kind, detail = _io_parts(payload)
        return KeyUnavailable(tag, detail=detail, io_kind=kind)
    return KeyUnavailable(tag)


def _slot_change_error(p: Variant) -> SlotChangeRefused:
    # slot-change-error has two u32 cases, so wasmtime-py always lifts it tagged.
    tag, payload = p.tag, p.payload
    if tag == "no-such-slot":
        return SlotChangeRefused(tag, index=int(payload))
    if tag == "only-volatile-left":
        return SlotChangeRefused(tag, slot_kinds=list(payload))
    if tag == "too-many-slots":
        return SlotChangeRefused(tag, max_slots=int(payload))
    return SlotChangeRefused(tag)


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
    if tag == "slot-change":
        return _slot_change_error(p)
    if tag == "recover":
        # recover-error has two payload-less cases: always lifted tagged.
        return RecoverRefused(p.tag, str(p.payload or ""))
    if tag == "import-conflict":
        return ImportConflict(list(p))
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
    "not-a-store", "unsupported-version", "corrupt", "slot-change", "recover", "import-conflict",
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
            secret = _passphrase_bytes(passphrase)
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
        text = _json_text(token_response, "the token response")
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
        return _store_info(self._call("info"))

    # ----- maintenance: each call one atomic change under the exclusive store lock -----

    def slots(self) -> List[KeySlotInfo]:
        """The store header's key slots, in order. Opens the store, so it also tells at once
        whether the configured key sources work. An absent store has none."""
        return _slot_infos(self._call("slots"))

    def add_slot(self, kind: str, passphrase: Union[str, bytes, None] = None) -> List[KeySlotInfo]:
        """Add a key slot; returns the new slot list. An absent store is created first.

        - `key-file`: the configured key file (created if absent, when this Store would
          create one for a new store). A second slot for the same key file is refused.
        - `passphrase`: `passphrase` is the NEW passphrase for the slot (required); the
          passphrase this Store was opened with is not used.

        Other kinds (`keyring`, `kernel-keyring`) cannot be made by this host:
        KeyUnavailable, reason `slot-unavailable`. Raises SlotChangeRefused(`too-many-slots`)
        when the header is full.
        """
        kind = _str(kind)
        secret = None
        if passphrase is not None:
            if kind != "passphrase":
                raise InvalidOptions("a passphrase is given only for a passphrase slot")
            secret = _passphrase_bytes(passphrase)
        with self._lock:
            # Seen only by this call's add-slot import, then forgotten.
            self._platform.new_passphrase = secret
            try:
                return _slot_infos(self._call("add-slot", kind))
            finally:
                self._platform.new_passphrase = None

    def remove_slot(self, index: int, allow_volatile_only: bool = False) -> List[KeySlotInfo]:
        """Remove slot `index` (see `slots()`); returns the new slot list. Refuses the last
        slot, and leaving only volatile slots (`kernel-keyring`) unless
        `allow_volatile_only`. The backup, which still holds the removed slot, is removed once
        the new store is durable."""
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index <= 0xFFFFFFFF:
            raise InvalidOptions("the slot index must be a non-negative integer (see slots())")
        return _slot_infos(self._call("remove-slot", index, bool(allow_volatile_only)))

    def rekey(self) -> StoreInfo:
        """Re-seal the store under a new data key, wrapped by the same sources as today's
        slots (same key file, same passphrase), in one atomic replace; then remove the
        backup, which is sealed under the old key. Every slot must be re-made: a slot whose
        source is not configured is KeyUnavailable(`slot-unavailable`), a passphrase that
        does not open its slot is KeyUnavailable(`wrong-passphrase`), and the store is
        unchanged. Returns the new `info()`."""
        return _store_info(self._call("rekey"))

    def import_tokens(
        self,
        source: Union[Mapping[str, Any], str, bytes],
        tenant: Optional[str] = None,
        *,
        replace: bool = False,
    ) -> ImportReport:
        """Import plaintext tokens in one atomic write.

        `source` is a token response (then `tenant` names it) or an object mapping tenant
        names to token responses (then `tenant` is None), such as an agent's `auth.json`:
        `{"type": "oauth", "access", "refresh", "expires"}` entries are understood, other
        entries (API keys) are skipped and reported. Existing tenants are ImportConflict
        unless `replace`."""
        text = _json_text(source, "the source")
        return _import_report(
            self._call("import-tokens", text, None if tenant is None else _str(tenant), bool(replace))
        )

    def import_file(
        self,
        path: PathLike,
        tenant: Optional[str] = None,
        *,
        replace: bool = False,
        remove_source: bool = False,
    ) -> ImportReport:
        """`import_tokens` of a file's contents. With `remove_source`, the file is removed
        once the import is durable, and only if something was imported, nothing was skipped
        and the file is still the one that was read (not replaced or rewritten meanwhile, not
        a symlink); otherwise `kept_reason` says why it stayed. Reading the file raises the
        OS's errors (FileNotFoundError, ...)."""
        source = Path(os.fspath(path))
        raw, identity = _read_source(source)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidTokenResponse(f"{source} is not UTF-8") from None
        report = self.import_tokens(text, tenant, replace=replace)
        if not remove_source:
            return report
        kept = _remove_source(source, identity, report)
        return ImportReport(
            report.imported, report.skipped, report.generation, kept is None, kept
        )

    def recover(self, force: bool = False) -> RecoverReport:
        """Restore the backup (`credentials.sealed.bak`), only when the store cannot be read
        (RecoverRefused(`store-readable`) otherwise, unless `force`). The store file, if any,
        is moved aside first (`quarantined_as`), never deleted; restored refresh tokens that
        may have been spent since the backup are marked (`refresh_unknown`)."""
        r = self._call("recover", bool(force))
        return RecoverReport(
            quarantined_as=_f(r, "quarantined-as"),
            generation=_f(r, "generation"),
            tenants=_f(r, "tenants"),
            refresh_unknown=tuple(_f(r, "refresh-unknown")),
        )

    def quarantine(self) -> str:
        """Move an unreadable store file aside (`credentials.sealed.corrupt-<unix ms>`), so
        that a new store can be made; returns that name. Refuses a store that opens
        (RecoverRefused(`store-readable`))."""
        return str(self._call("quarantine"))

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


def _passphrase_bytes(passphrase: Union[str, bytes]) -> bytes:
    secret = passphrase.encode("utf-8") if isinstance(passphrase, str) else bytes(passphrase)
    if not secret:
        raise InvalidOptions("the passphrase is empty")
    return secret


def _json_text(value: Union[Mapping[str, Any], str, bytes], what: str) -> str:
    """A JSON document given as a dict, its text, or its UTF-8 bytes."""
    if isinstance(value, (bytes, bytearray)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidTokenResponse(f"{what} is not UTF-8") from None
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        try:
            return json.dumps(dict(value))
        except (TypeError, ValueError):
            raise InvalidTokenResponse(f"{what} is not JSON-serialisable") from None
    raise TypeError(f"{what} must be a dict, a JSON string or bytes")


def _store_info(i: Any) -> StoreInfo:
    return StoreInfo(
        exists=_f(i, "exists"),
        generation=_f(i, "generation"),
        format_version=_f(i, "format-version"),
        key_id=_f(i, "key-id"),
        slot_kinds=tuple(_f(i, "slot-kinds")),
        tenants=_f(i, "tenants"),
    )


def _slot_infos(slots: Any) -> List[KeySlotInfo]:
    out = []
    for i, s in enumerate(slots):
        kind, data = _f(s, "kind"), bytes(_f(s, "data"))
        out.append(KeySlotInfo(
            index=i, kind=kind, describe=describe_slot(kind, data),
            durable=kind not in VOLATILE_SLOT_KINDS,
        ))
    return out


def _import_report(r: Any) -> ImportReport:
    return ImportReport(
        imported=tuple(_f(r, "imported")),
        skipped=tuple((str(name), str(why)) for name, why in _f(r, "skipped")),
        generation=_f(r, "generation"),
    )


#: What identifies the version of a source file that was read: device, inode, size, mtime.
_Identity = Tuple[int, int, int, int]


def _read_source(path: Path) -> Tuple[bytes, _Identity]:
    """The file's contents and the identity of what was read (one open file, so the two
    agree). Follows symlinks, as any reader of the caller's file would; O_NONBLOCK so that a
    FIFO at the path is refused rather than waited on."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    with open(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InvalidTokenResponse(f"{path} is not a regular file")
        raw = f.read(_files.MAX_STORE_BYTES + 1)
    if len(raw) > _files.MAX_STORE_BYTES:
        raise InvalidTokenResponse(f"{path} is larger than {_files.MAX_STORE_BYTES} bytes")
    return raw, (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _remove_source(path: Path, identity: _Identity, report: ImportReport) -> Optional[str]:
    """Remove an imported source file durably; None if removed, else why it was kept.

    A program may rewrite its token file at any time (a refresh rotates the refresh token):
    removing a newer version than the one imported would lose that token, so the file must
    still be the very one read. lstat, not stat: a symlink's target is not removed by
    unlinking the link, and the plaintext would stay."""
    if report.skipped:
        return "entries were skipped: " + ", ".join(name for name, _ in report.skipped)
    if not report.imported:
        return "nothing was imported"
    try:
        st = os.lstat(path)
    except OSError as e:
        return f"it could not be checked: {e.strerror}"
    if (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) != identity or not stat.S_ISREG(st.st_mode):
        return "it changed (or is a symlink) since it was read"
    try:
        os.unlink(path)
        _files.sync_dir(path.parent)
    except OSError as e:
        return f"it could not be removed: {e.strerror}"
    return None


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
