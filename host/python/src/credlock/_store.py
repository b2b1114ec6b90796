"""`credlock.Store`: the Python API over the credlock host library (`credlock._credlock`).

Every method converts its arguments, calls the Rust `credlock::Store` with the GIL released,
and builds the dataclass of `_types` from the result, which arrives as a dict of its fields by
name (the Rust type's `Serialize`, with the WIT's field names). Settings go the other way by
name too: `Store.open`'s keywords become the JSON object `credlock::OpenOptions` reads. The
locks, files, key slots, KDF, AEAD, HTTP and every error's text are the Rust host's.
"""

from __future__ import annotations

import math
import os

from . import _credlock

# `typing` (with `re` and the rest it imports) costs a one-shot process ~8 ms, and `json`
# ~4 ms: neither is imported unless used. Annotations are strings (`from __future__ import
# annotations`), read only by type checkers.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any, Callable, Dict, List, Mapping, Optional, TypeVar, Union

    PathLike = Union[str, "os.PathLike[str]"]
    T = TypeVar("T")

    from ._types import (
        AccessToken,
        ImportReport,
        KdfParams,
        KeySlotInfo,
        LoginPrompt,
        LoginResult,
        LogoutReport,
        PendingLogin,
        RecoverReport,
        StoreInfo,
        TenantSummary,
        WriteReceipt,
    )


def _t() -> Any:
    """The result dataclasses (`_types`), imported on first use."""
    from . import _types

    return _types


def _secret(value: Union[str, bytes, None]) -> Optional[str]:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8")
    raise TypeError(f"expected str or bytes, got {type(value).__name__}")


def _json_text(value: Union[Mapping[str, Any], str, bytes]) -> str:
    """A JSON document given as a dict, its text, or its UTF-8 bytes."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8")
    if isinstance(value, str):
        return value
    # Imported here, not at the top: a one-shot `token` never gets this far.
    from collections.abc import Mapping

    if isinstance(value, Mapping):
        import json

        return json.dumps(dict(value))
    raise TypeError(f"expected a dict, a JSON str or bytes, got {type(value).__name__}")


def _access_token(d: Dict[str, Any]) -> AccessToken:
    return _t().AccessToken(**d)


def _store_info(d: Dict[str, Any]) -> StoreInfo:
    return _t().StoreInfo(**{**d, "slot_kinds": tuple(d["slot_kinds"])})


def _slot_infos(v: List[Dict[str, Any]]) -> List[KeySlotInfo]:
    return [_t().KeySlotInfo(**s) for s in v]


def _import_report(d: Dict[str, Any]) -> ImportReport:
    # `skipped` arrives named (`{"tenant", "reason"}`, as the C ABI has it); the dataclass
    # keeps the WIT's pairs.
    return _t().ImportReport(**{
        **d,
        "imported": tuple(d["imported"]),
        "skipped": tuple((s["tenant"], s["reason"]) for s in d["skipped"]),
    })


def _finite_or_text(seconds: Any) -> Any:
    """A timeout for JSON: an infinite or NaN float (JSON has none) as its text, which the
    Rust side reads back and refuses with the message that names the setting."""
    if isinstance(seconds, float) and not math.isfinite(seconds):
        return str(seconds)
    return seconds


class Store:
    """An open credential store.

    Open with `Store.open(...)`. One `Store` may be shared by any number of threads: calls
    release the GIL and run in parallel, excluding each other through the store's flock
    protocol exactly as separate processes do. It keeps working in a child after `os.fork()`.
    The `*_async` methods run the same calls in the event loop's default executor, so the
    loop never waits on a lock, a key derivation or a token endpoint.
    """

    def __init__(self, native: "_credlock.NativeStore") -> None:
        self._native: Optional[_credlock.NativeStore] = native
        self._store_dir = native.store_dir
        self.lock_timeout_ms: int = native.lock_timeout_ms
        self.http_timeout_ms: int = native.http_timeout_ms

    @classmethod
    def open(
        cls,
        path: Optional[PathLike] = None,
        passphrase: Union[str, bytes, None] = None,
        *,
        key_file: Optional[PathLike] = None,
        keyring: Optional[str] = None,
        lock_timeout: Optional[float] = None,
        http_timeout: Optional[float] = None,
        keyring_timeout: Optional[float] = None,
        allow_insecure_http: Optional[bool] = None,
        allow_volatile_only: Optional[bool] = None,
        _kdf: Optional[KdfParams] = None,
    ) -> "Store":
        """Open the store in `path`, configured exactly as the `credlock` CLI would be (the
        Rust host resolves every setting not given here from the same `CREDLOCK_*`
        variables).

        - `path`: default `$CREDLOCK_STORE`, else the platform's data directory
          (`default_store_dir()`).
        - `passphrase`: default `$CREDLOCK_PASSPHRASE`.
        - `key_file`: default `$CREDLOCK_KEY_FILE`, else `PATH/key`. A new store gets a
          key-file slot (creating the file) unless a passphrase or keyring is given without an
          explicit key file; the default key file is still tried for opening.
        - `keyring`: `secret-service`, `keyutils`, `apple-keychain`, `windows-credential`,
          `auto` or `off`; default `$CREDLOCK_KEYRING`. Existing keyring slots open without it.
        - `lock_timeout`, `http_timeout`, `keyring_timeout`: seconds; default
          `$CREDLOCK_LOCK_TIMEOUT` or 10, `$CREDLOCK_HTTP_TIMEOUT` or 30,
          `$CREDLOCK_KEYRING_TIMEOUT` or 10.
        - `allow_insecure_http`: plain http to non-loopback token endpoints; default
          `$CREDLOCK_ALLOW_INSECURE_HTTP`. `allow_volatile_only`: default
          `$CREDLOCK_ALLOW_VOLATILE_ONLY`.

        Opening touches no store file; the first call does. Raises InvalidOptions, or
        InternalError if the component cannot be loaded.
        """
        # By name, as `credlock::OpenOptions` declares them; None is "not given" (then the
        # environment, else the default), so it is left out. The paths go beside the JSON, as
        # OS paths: a directory's name need not be UTF-8, JSON text must be.
        settings = {
            "passphrase": _secret(passphrase),
            "keyring": keyring,
            "lock_timeout": _finite_or_text(lock_timeout),
            "http_timeout": _finite_or_text(http_timeout),
            "keyring_timeout": _finite_or_text(keyring_timeout),
            "allow_insecure_http": allow_insecure_http,
            "allow_volatile_only": allow_volatile_only,
            "kdf": None if _kdf is None else {
                "m_cost_kib": _kdf.m_cost_kib, "t_cost": _kdf.t_cost, "p_cost": _kdf.p_cost,
            },
        }
        given = {k: v for k, v in settings.items() if v is not None}
        if given:
            import json

            options_json = json.dumps(given)
        else:
            options_json = None
        return cls(_credlock.NativeStore(
            options_json,
            None if path is None else os.fspath(path),
            None if key_file is None else os.fspath(key_file),
        ))

    @property
    def path(self) -> "Path":
        """The store directory."""
        from pathlib import Path  # on first use: a one-shot `token` never needs it

        return Path(self._store_dir)

    def __repr__(self) -> str:
        return f"credlock.Store({self._store_dir!r})"

    @property
    def _n(self) -> "_credlock.NativeStore":
        native = self._native
        if native is None:
            raise ValueError("this credlock.Store is closed")
        return native

    def init(self) -> bool:
        """Create the store (and its key) if it does not exist; True if it was created."""
        return self._n.init()

    def put(self, tenant: str, token_response: Union[Mapping[str, Any], str, bytes]) -> WriteReceipt:
        """Store a token response (RFC 6749 §5.1, plus `token_endpoint`, `client_id`,
        `client_secret`, `client_auth`, `retry_unknown_refresh`, `refresh_scope`,
        `refresh_resource`) for
        `tenant`, creating the store if needed. Durable when this returns.

        Its expiry may be in any shape programs write (README, "Token expiry"): `expires_in`,
        or an absolute `expires_at`, `expiry` (Go's oauth2.Token), `expiresAt` or
        `expires_on` as RFC 3339 or Unix seconds or milliseconds. Fields that disagree, or a
        field named like an expiry that credlock does not understand, raise
        InvalidTokenResponse: an expiry is never dropped."""
        return _t().WriteReceipt(**self._n.put(tenant, _json_text(token_response)))

    def token_info(self, tenant: str, min_valid: float = 60.0) -> AccessToken:
        """The tenant's access token, valid for at least `min_valid` more seconds, refreshed
        through the token endpoint if needed (by at most one thread or process)."""
        return _access_token(self._n.token(tenant, float(min_valid)))

    def token(self, tenant: str, min_valid: float = 60.0) -> str:
        """The tenant's access token string (see `token_info`)."""
        return self._n.token(tenant, float(min_valid))["token"]

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
        return the stored, newer one. The token is hashed and never stored.
        """
        if rejected is not None and rejected_sha256 is not None:
            raise TypeError("give rejected or rejected_sha256, not both")
        return _access_token(self._n.refresh(tenant, rejected, rejected_sha256))

    def list(self) -> List[TenantSummary]:
        """Every tenant, sorted by name, without secrets. An absent store has none."""
        return [_t().TenantSummary(**t) for t in self._n.list()]

    def delete(self, tenant: str) -> bool:
        """Remove a tenant; False if it did not exist."""
        return self._n.delete(tenant)

    def attachment(self, tenant: str, name: str) -> Optional[str]:
        """A small value kept, sealed, with the tenant (an MCP client's registration, a PKCE
        verifier); None when the tenant or the attachment is absent. Names are 1 to 64 of
        a-z, 0-9 and . _ - (starting with a letter or digit)."""
        return self._n.attachment(tenant, name)

    def set_attachment(self, tenant: str, name: str, value: Optional[str]) -> WriteReceipt:
        """Set (a string of at most 64 KiB) or remove (None) an attachment, leaving the
        tenant's tokens as they are. Writes of tokens keep attachments; delete and logout
        remove them. Setting one on a tenant without tokens creates it (`token` still raises
        NotFound until tokens are stored). At most 16 per tenant. Durable when this returns."""
        return _t().WriteReceipt(**self._n.set_attachment(tenant, name, value))

    def info(self) -> StoreInfo:
        """What the store is, without decrypting more than needed."""
        return _store_info(self._n.info())

    # ----- maintenance: each call one atomic change under the exclusive store lock -----

    def slots(self) -> List[KeySlotInfo]:
        """The store header's key slots, in order. Opens the store, so it also tells at once
        whether the configured key sources work. An absent store has none."""
        return _slot_infos(self._n.slots())

    def add_slot(self, kind: str, passphrase: Union[str, bytes, None] = None) -> List[KeySlotInfo]:
        """Add a key slot; returns the new slot list. An absent store is created first.

        - `key-file`: the configured key file (created if absent, when this Store would
          create one for a new store). A second slot for the same key file is refused.
        - `passphrase`: `passphrase` is the NEW passphrase for the slot (else
          `$CREDLOCK_NEW_PASSPHRASE`); the passphrase this Store was opened with is not used.
        - `keyring`: the keyring chosen by `Store.open(keyring=...)` (or `$CREDLOCK_KEYRING`).
        - `kernel-keyring`: the Linux kernel keyring (volatile: lost at reboot).
        """
        if passphrase is not None and kind != "passphrase":
            raise ValueError("a passphrase is given only for a passphrase slot")
        return _slot_infos(self._n.add_slot(kind, _secret(passphrase)))

    def remove_slot(self, index: int, allow_volatile_only: bool = False) -> List[KeySlotInfo]:
        """Remove slot `index` (see `slots()`); returns the new slot list. Refuses the last
        slot, and leaving only volatile slots (`kernel-keyring`) unless
        `allow_volatile_only`. The backup, which still holds the removed slot, is removed once
        the new store is durable."""
        if isinstance(index, bool) or not isinstance(index, int):
            raise TypeError("the slot index must be an int (see slots())")
        return _slot_infos(self._n.remove_slot(index, bool(allow_volatile_only)))

    def rekey(self) -> StoreInfo:
        """Re-seal the store under a new data key, wrapped by the same sources as today's
        slots, in one atomic replace; then remove the backup, which is sealed under the old
        key. Returns the new `info()`."""
        return _store_info(self._n.rekey())

    def import_tokens(
        self,
        source: Union[Mapping[str, Any], str, bytes],
        tenant: Optional[str] = None,
        *,
        replace: bool = False,
        kind: Optional[str] = None,
        account: Optional[str] = None,
    ) -> ImportReport:
        """Import plaintext tokens in one atomic write.

        `source` is one tenant's tokens (then `tenant` names it) in any shape the CLI's
        `import --from` lists (`token`, `go-oauth2`, `claude-code`, `codex`, `google-adc`,
        `msal`, `mcp`, `rmcp`; detected unless `kind` names one; `account` chooses among an
        MSAL cache's accounts), or an object mapping tenant names to token responses (then
        `tenant` is None), such as an agent's `auth.json`: `{"type": "oauth", "access",
        "refresh", "expires"}` entries are understood, other entries (API keys) are skipped
        and reported. Existing tenants are ImportConflict unless `replace`."""
        return _import_report(
            self._n.import_tokens(_json_text(source), tenant, bool(replace), kind, account)
        )

    def import_file(
        self,
        path: PathLike,
        tenant: Optional[str] = None,
        *,
        replace: bool = False,
        remove_source: bool = False,
        kind: Optional[str] = None,
        account: Optional[str] = None,
    ) -> ImportReport:
        """`import_tokens` of a file's contents; a token kept with only `expires_in` is taken
        as received when the file was last written. With `remove_source`, the file is removed
        once the import is durable, and only if something was imported, nothing was skipped
        and the file is still the one that was read (not replaced or rewritten meanwhile, not
        a symlink); otherwise `kept_reason` says why it stayed."""
        return _import_report(
            self._n.import_file(
                os.fspath(path), tenant, bool(replace), bool(remove_source), kind, account
            )
        )

    def recover(self, force: bool = False) -> RecoverReport:
        """Restore the backup (`credentials.sealed.bak`), only when the store cannot be read
        (RecoverRefused(`store-readable`) otherwise, unless `force`). The store file, if any,
        is moved aside first (`quarantined_as`), never deleted; restored refresh tokens that
        may have been spent since the backup are marked (`refresh_unknown`)."""
        d = self._n.recover(bool(force))
        return _t().RecoverReport(**{**d, "refresh_unknown": tuple(d["refresh_unknown"])})

    def quarantine(self, force: bool = False) -> str:
        """Move a damaged store file aside (`credentials.sealed.corrupt-<unix ms>`), so that
        a new store can be made; returns that name. Refuses a store that opens
        (RecoverRefused(`store-readable`)). With `force`, also one that fails for a reason of
        its own that may not be damage (a wrong key, a newer format); never for a lock, I/O
        or keyring failure. Never deletes."""
        return self._n.quarantine(bool(force))

    # ----- login and logout -----

    def login(
        self,
        tenant: str,
        *,
        client_id: str,
        issuer: Optional[str] = None,
        client_secret: Optional[str] = None,
        scope: Optional[str] = None,
        flow: str = "device",
        open_browser: bool = True,
        audience: Optional[str] = None,
        resource: Optional[str] = None,
        authorization_endpoint: Optional[str] = None,
        token_endpoint: Optional[str] = None,
        device_authorization_endpoint: Optional[str] = None,
        revocation_endpoint: Optional[str] = None,
        on_prompt: Optional[Callable[["LoginPrompt"], None]] = None,
    ) -> "LoginResult":
        """Log `tenant` in at an OAuth server and store the tokens as `put` would.

        `flow` is `device` (RFC 8628: `on_prompt` gets the verification URL and user code) or
        `browser` (authorization code + PKCE with a loopback redirect; `on_prompt` gets the
        URL, which is also opened in a browser unless `open_browser` is false). Endpoints come
        from `issuer`'s metadata unless given. A login already in progress for `tenant` in
        another process or thread is joined: `on_prompt` gets the same code, and its result
        is returned. Without `on_prompt` the prompt goes to standard error. Blocks until the
        user finishes or the code expires; the GIL is released meanwhile."""
        if flow not in ("device", "browser"):
            raise ValueError("flow must be 'device' or 'browser'")
        types = _t()
        callback = None
        if on_prompt is not None:
            user_callback = on_prompt

            def callback(d: Mapping[str, Any]) -> None:
                user_callback(types.LoginPrompt(**d))

        d = self._n.login(
            tenant, client_id, issuer, client_secret, scope, flow == "browser", open_browser,
            audience, resource, authorization_endpoint, token_endpoint,
            device_authorization_endpoint, revocation_endpoint, callback,
        )
        return types.LoginResult(**{**d, "token": _access_token(d["token"])})

    def logout(self, tenant: str, local: bool = False) -> "LogoutReport":
        """Revoke the tenant's refresh token where the server offers revocation (RFC 7009),
        then delete the tenant. A failed revocation raises and deletes nothing, unless
        `local`."""
        return _t().LogoutReport(**self._n.logout(tenant, local))

    def pending_logins(self) -> "List[PendingLogin]":
        """The logins in progress (never a code or verifier)."""
        return [_t().PendingLogin(**p) for p in self._n.pending_logins()]

    # ----- asyncio: the same calls, off the event loop -----

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        # Imported here, not at the top: asyncio costs more to import than the whole rest of
        # credlock, and a one-shot process that never awaits should not pay it.
        import asyncio
        import functools

        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, functools.partial(fn, *args, **kwargs))

    async def token_async(self, tenant: str, min_valid: float = 60.0) -> str:
        """`token`, awaitable: the event loop keeps running while this waits."""
        return await self._run(self.token, tenant, min_valid)

    async def token_info_async(self, tenant: str, min_valid: float = 60.0) -> AccessToken:
        return await self._run(self.token_info, tenant, min_valid)

    async def put_async(
        self, tenant: str, token_response: Union[Mapping[str, Any], str, bytes]
    ) -> WriteReceipt:
        return await self._run(self.put, tenant, token_response)

    async def refresh_async(
        self,
        tenant: str,
        rejected: Optional[str] = None,
        *,
        rejected_sha256: Optional[str] = None,
    ) -> AccessToken:
        return await self._run(self.refresh, tenant, rejected, rejected_sha256=rejected_sha256)

    async def list_async(self) -> List[TenantSummary]:
        return await self._run(self.list)

    async def delete_async(self, tenant: str) -> bool:
        return await self._run(self.delete, tenant)

    async def attachment_async(self, tenant: str, name: str) -> Optional[str]:
        return await self._run(self.attachment, tenant, name)

    async def set_attachment_async(
        self, tenant: str, name: str, value: Optional[str]
    ) -> WriteReceipt:
        return await self._run(self.set_attachment, tenant, name, value)

    async def info_async(self) -> StoreInfo:
        return await self._run(self.info)

    # The maintenance calls, awaitable like the rest (each the sync call on a worker thread).

    async def init_async(self) -> bool:
        return await self._run(self.init)

    async def slots_async(self) -> List[KeySlotInfo]:
        return await self._run(self.slots)

    async def add_slot_async(
        self, kind: str, passphrase: Union[str, bytes, None] = None
    ) -> List[KeySlotInfo]:
        return await self._run(self.add_slot, kind, passphrase)

    async def remove_slot_async(
        self, index: int, allow_volatile_only: bool = False
    ) -> List[KeySlotInfo]:
        return await self._run(self.remove_slot, index, allow_volatile_only)

    async def rekey_async(self) -> StoreInfo:
        return await self._run(self.rekey)

    async def import_tokens_async(
        self,
        source: Union[Mapping[str, Any], str, bytes],
        tenant: Optional[str] = None,
        *,
        replace: bool = False,
        kind: Optional[str] = None,
        account: Optional[str] = None,
    ) -> ImportReport:
        return await self._run(
            self.import_tokens, source, tenant, replace=replace, kind=kind, account=account
        )

    async def import_file_async(
        self,
        path: PathLike,
        tenant: Optional[str] = None,
        *,
        replace: bool = False,
        remove_source: bool = False,
        kind: Optional[str] = None,
        account: Optional[str] = None,
    ) -> ImportReport:
        return await self._run(
            self.import_file,
            path,
            tenant,
            replace=replace,
            remove_source=remove_source,
            kind=kind,
            account=account,
        )

    async def recover_async(self, force: bool = False) -> RecoverReport:
        return await self._run(self.recover, force)

    async def quarantine_async(self, force: bool = False) -> str:
        return await self._run(self.quarantine, force)

    async def logout_async(self, tenant: str, local: bool = False) -> "LogoutReport":
        return await self._run(self.logout, tenant, local)

    async def pending_logins_async(self) -> "List[PendingLogin]":
        return await self._run(self.pending_logins)

    # ----- lifetime -----

    def close(self) -> None:
        """Release this Store's component instances (once no call is running). Idempotent;
        the store's files are untouched. Later calls raise ValueError."""
        self._native = None

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
