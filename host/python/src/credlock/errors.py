"""credlock's exceptions: one class per `store-error` variant of wit/store.wit.

Messages are the Rust core's (core/src/error.rs, `Display`), so the Python and Rust hosts say
the same thing; `recommendation` is what to do next. No message, attribute or recommendation
contains a token, a client secret or key material: payloads are tenant names, field names,
OAuth error codes and host-written OS detail.

Hierarchy::

    CredlockError
    ├── InvalidInput (also ValueError)
    │   ├── InvalidTenant
    │   ├── InvalidTokenResponse
    │   └── InvalidOptions
    ├── NotFound (also LookupError)
    ├── LoginRequired                      exit code 4 of the CLI
    │   ├── Expired
    │   ├── ReauthNeeded
    │   └── RefreshOutcomeUnknown
    ├── EndpointError
    ├── LockTimeout (also TimeoutError)
    ├── StoreIOError
    ├── StoreUnreadable                    exit code 6 of the CLI
    │   ├── KeyUnavailable
    │   ├── NotAStore
    │   ├── UnsupportedVersion
    │   └── Corrupt
    ├── Refused                            a maintenance call refused; nothing was changed
    │   ├── SlotChangeRefused
    │   ├── RecoverRefused
    │   └── ImportConflict
    └── InternalError                      the component trapped or could not be loaded
"""

from __future__ import annotations

from typing import Any, List, Optional


class CredlockError(Exception):
    """Base of every credlock error.

    `kind` is the WIT variant name (`not-found`, `lock-timeout`, ...); `recommendation` says
    what to do next, in one sentence."""

    kind: str = "internal"
    recommendation: str = ""

    def __init__(self, message: str, *, recommendation: Optional[str] = None) -> None:
        super().__init__(message)
        self.message = message
        if recommendation is not None:
            self.recommendation = recommendation

    @property
    def code(self) -> str:
        """The WIT variant name, as the Node host's `CredlockError.code` and Rust's
        `StoreError::code()`: what programs and the shared test vectors compare."""
        return self.kind


# --- the caller's input ---


class InvalidInput(CredlockError, ValueError):
    """The caller's input is not acceptable."""


class InvalidTenant(InvalidInput):
    kind = "invalid-tenant"
    recommendation = "use 1-128 characters from letters, digits and . _ @ + : -"

    def __init__(self, reason: str) -> None:
        super().__init__(f"invalid tenant name: {reason}")
        self.reason = reason


class InvalidTokenResponse(InvalidInput):
    kind = "invalid-token-response"
    recommendation = "pass the token endpoint's JSON response, with access_token"

    def __init__(self, reason: str) -> None:
        super().__init__(f"invalid token response: {reason}")
        self.reason = reason


class InvalidOptions(InvalidInput):
    kind = "invalid-options"
    recommendation = "check the timeouts you configured"

    def __init__(self, reason: str) -> None:
        super().__init__(f"invalid options: {reason}")
        self.reason = reason


class NotFound(CredlockError, LookupError):
    kind = "not-found"
    recommendation = "store credentials first with `credlock put`"

    def __init__(self, tenant: str) -> None:
        super().__init__(f"no credentials stored for tenant '{tenant}'")
        self.tenant = tenant


# --- the credential's state ---


class LoginRequired(CredlockError):
    """The stored credential cannot produce a valid access token: log in again."""

    recommendation = "log in again and store the new tokens with `credlock put`"

    def __init__(self, message: str, tenant: str) -> None:
        super().__init__(message)
        self.tenant = tenant


class Expired(LoginRequired):
    kind = "expired"

    def __init__(self, tenant: str) -> None:
        super().__init__(
            f"the access token of '{tenant}' has expired and cannot be refreshed "
            "(no refresh token or token endpoint)",
            tenant,
        )


class ReauthNeeded(LoginRequired):
    kind = "reauth-needed"

    def __init__(self, tenant: str) -> None:
        super().__init__(
            f"the server rejected the refresh token of '{tenant}' (invalid_grant)", tenant
        )


class RefreshOutcomeUnknown(LoginRequired):
    kind = "refresh-outcome-unknown"
    recommendation = (
        "log in again; if your server tolerates one reuse, set retry_unknown_refresh for "
        "this tenant"
    )

    def __init__(self, tenant: str) -> None:
        super().__init__(
            f"an earlier refresh of '{tenant}' was interrupted after its refresh token may "
            "have been spent; presenting it again could revoke the grant",
            tenant,
        )


class EndpointError(CredlockError):
    """The token endpoint failed; the stored tokens are unchanged.

    `reason` is `oauth` (with `status`, `error`, `error_description`), `server` (with
    `status`), `malformed-reply` (with `detail`) or `transport` (with `transport`: `bad-url`,
    `connect`, `timeout`, `interrupted`, `reply-too-large`, and `detail`)."""

    kind = "endpoint"

    def __init__(
        self,
        message: str,
        reason: str,
        *,
        status: Optional[int] = None,
        error: Optional[str] = None,
        error_description: Optional[str] = None,
        transport: Optional[str] = None,
        detail: Optional[str] = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status
        self.error = error
        self.error_description = error_description
        self.transport = transport
        self.detail = detail
        if reason == "oauth":
            self.recommendation = (
                "check the client id, secret and authentication method stored for this tenant"
            )
        elif reason == "malformed-reply" or transport in ("timeout", "interrupted"):
            self.recommendation = (
                "the refresh token may have been spent; if the next attempt reports an unknown "
                "outcome, log in again"
            )
        else:
            self.recommendation = "retry later; the stored tokens are unchanged"

    @property
    def request_may_have_arrived(self) -> bool:
        return self.reason != "transport" or self.transport in ("timeout", "interrupted")


# --- the environment ---


class LockTimeout(CredlockError, TimeoutError):
    kind = "lock-timeout"
    recommendation = "another process holds the lock; retry, or raise --lock-timeout"

    def __init__(self, lock: str, waited_ms: int) -> None:
        super().__init__(f"timed out after {waited_ms} ms waiting for the {lock} lock")
        self.lock = lock
        self.waited_ms = waited_ms


_IO_PREFIX = {
    "not-a-regular-file": "not a regular file: ",
    "permission-denied": "permission denied: ",
    "no-space": "no space left: ",
    "other": "",
}


class StoreIOError(CredlockError):
    """The filesystem failed. `io_kind`: `not-a-regular-file`, `permission-denied`,
    `no-space`, `other`, or `too-large` (then `size` is set)."""

    kind = "io"
    recommendation = (
        "check the store directory's permissions and free space; nothing was changed"
    )

    def __init__(self, io_kind: str, detail: str = "", size: Optional[int] = None) -> None:
        if io_kind == "too-large":
            message = f"the store file is too large ({size} bytes)"
        else:
            message = f"store I/O failed: {_IO_PREFIX.get(io_kind, '')}{detail}"
        super().__init__(message)
        self.io_kind = io_kind
        self.detail = detail
        self.size = size


# --- the store file's contents ---


class StoreUnreadable(CredlockError):
    """The store cannot be read with what was given; it was not changed."""

    recommendation = (
        "the damaged file was not changed; Store.recover() restores the previous good version "
        "(credentials.sealed.bak)"
    )


class KeyUnavailable(StoreUnreadable):
    """A key error (the WIT's `key-error`). Opening: `no-key-source`, `no-matching-slot`
    (`slot_kinds` lists what could open it), `wrong-passphrase`, `wrong-key-file`,
    `malformed-slot`, `io`, `keyring-entry-missing` (`backend`; `slot_kinds` lists the other
    slots, which can still open it), `keyring` (`detail`). Making a slot (`add_slot`,
    `rekey`): `slot-unavailable` (`detail`: the kind and why); the store was not changed."""

    kind = "key"

    def __init__(
        self,
        reason: str,
        *,
        slot_kinds: Optional[List[str]] = None,
        detail: str = "",
        io_kind: Optional[str] = None,
        backend: Optional[str] = None,
    ) -> None:
        if reason == "no-key-source":
            message = "no key source is configured"
        elif reason == "no-matching-slot":
            message = (
                "none of the configured keys opens this store; it can be opened by: "
                + ", ".join(slot_kinds or [])
            )
        elif reason == "wrong-passphrase":
            message = "wrong passphrase for this store"
        elif reason == "wrong-key-file":
            message = "the key file does not open this store"
        elif reason == "malformed-slot":
            message = f"a key slot of the store is damaged: {detail}"
        elif reason == "keyring-entry-missing":
            message = (
                f"the {backend} keyring no longer holds this store's key (wiped, rebooted, or "
                "another machine)"
            )
            if slot_kinds:
                message += f"; it can still be opened by its other slots: {', '.join(slot_kinds)}"
            else:
                message += "; no other slot can open the store"
        elif reason == "keyring":
            message = f"the OS keyring failed: {detail}"
        elif reason == "slot-unavailable":
            message = f"cannot make that key slot: {detail}"
        else:
            message = f"cannot read the key: {_IO_PREFIX.get(io_kind or 'other', '')}{detail}"
        if reason == "no-matching-slot":
            rec = (
                "provide a key that opens one of the listed slots (CREDLOCK_PASSPHRASE or the "
                "key file)"
            )
        elif reason == "wrong-passphrase":
            rec = "check CREDLOCK_PASSPHRASE; the store was not changed"
        elif reason == "keyring-entry-missing":
            rec = (
                "open it with one of the other slots, then add a keyring slot again; never "
                "re-initialise"
            )
        elif reason == "keyring":
            rec = "check that the keyring service is running and unlocked, or use another slot"
        elif reason == "slot-unavailable":
            rec = (
                "configure that key source (the passphrase, the key file) and retry; the store "
                "was not changed"
            )
        else:
            rec = "check the key file or passphrase; the store was not changed"
        super().__init__(message, recommendation=rec)
        self.reason = reason
        self.slot_kinds = list(slot_kinds or [])
        self.detail = detail
        self.io_kind = io_kind
        self.backend = backend


class NotAStore(StoreUnreadable):
    kind = "not-a-store"

    def __init__(self, detail: str) -> None:
        super().__init__(f"not a credlock store: {detail}")
        self.detail = detail


class UnsupportedVersion(StoreUnreadable):
    kind = "unsupported-version"
    recommendation = "use the credlock version that wrote this store"

    def __init__(self, version: int) -> None:
        super().__init__(
            f"the store has format version {version}, which this credlock does not know"
        )
        self.version = version


class Corrupt(StoreUnreadable):
    kind = "corrupt"

    def __init__(self, detail: str) -> None:
        super().__init__(f"the store is damaged: {detail}")
        self.detail = detail


# --- maintenance ---


class Refused(CredlockError):
    """A maintenance call (`add_slot`, `remove_slot`, `recover`, `import_tokens`, ...)
    refused what was asked; nothing was changed."""


class SlotChangeRefused(Refused):
    """`reason`: `no-such-slot` (`index`), `last-slot`, `only-volatile-left` (`slot_kinds`:
    what would remain), `too-many-slots` (`max_slots`)."""

    kind = "slot-change"

    def __init__(
        self,
        reason: str,
        *,
        index: Optional[int] = None,
        slot_kinds: Optional[List[str]] = None,
        max_slots: Optional[int] = None,
    ) -> None:
        kinds = list(slot_kinds or [])
        if reason == "no-such-slot":
            message = f"the store has no key slot {index}"
        elif reason == "last-slot":
            message = (
                "that is the store's only key slot; removing it would leave nothing that opens "
                "the store"
            )
        elif reason == "only-volatile-left":
            message = (
                f"only volatile slots would remain ({', '.join(kinds)}), and they are lost at "
                "reboot"
            )
        else:
            message = f"the store already has {max_slots} key slots, the most a header holds"
        if reason == "only-volatile-left":
            rec = (
                "add a durable slot first (passphrase, key-file or keyring), or pass "
                "allow_volatile_only=True"
            )
        else:
            rec = "see Store.slots()"
        super().__init__(message, recommendation=rec)
        self.reason = reason
        self.index = index
        self.slot_kinds = kinds
        self.max_slots = max_slots


class RecoverRefused(Refused):
    """`reason`: `store-readable` (the store opens; `force=True` rolls back anyway),
    `no-backup`, `backup-unreadable` (`detail`)."""

    kind = "recover"

    def __init__(self, reason: str, detail: str = "") -> None:
        if reason == "store-readable":
            message = (
                "the store opens; restoring the backup would discard the writes made since it"
            )
            rec = "nothing needs recovering; use force=True only to roll back on purpose"
        elif reason == "no-backup":
            message = "there is no backup of the store to restore"
            rec = "the store was not changed; restore from your own backups or log in again"
        else:
            message = f"the backup cannot be read either: {detail}"
            rec = "the store was not changed; restore from your own backups or log in again"
        super().__init__(message, recommendation=rec)
        self.reason = reason
        self.detail = detail


class ImportConflict(Refused):
    """`import_tokens` without `replace` found tenants that already exist (`tenants`);
    nothing was imported."""

    kind = "import-conflict"
    recommendation = "import with replace=True to overwrite them, or delete them first"

    def __init__(self, tenants: List[str]) -> None:
        super().__init__(
            f"these tenants already exist: {', '.join(tenants)}; nothing was imported"
        )
        self.tenants = list(tenants)


class InternalError(CredlockError):
    """The credlock runtime failed: the component is missing, could not be compiled, or
    trapped. A bug in credlock (or its installation), not in your data."""

    kind = "internal"
    recommendation = "this is a bug in credlock; please report it"

    def __init__(self, message: str) -> None:
        super().__init__(f"internal error in the credlock runtime: {message}")
