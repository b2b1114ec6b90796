"""credlock's exceptions: one class per `store-error` variant of wit/store.wit.

Every exception is built by `_from_report` from the Rust host's one description of the error
(`credlock::ErrorReport`): the class is chosen by its `code`, the attributes are its `detail`
fields, and the message and `recommendation` are the Rust text, the same the CLI prints. No text
is written here. No message, attribute or recommendation contains a token, a client secret or
key material: payloads are tenant names, field names, OAuth error codes and OS detail.

Hierarchy::

    CredlockError
    ├── InvalidInput (also ValueError)
    │   ├── InvalidTenant
    │   ├── InvalidTokenResponse
    │   ├── InvalidOptions
    │   └── InvalidAttachment
    ├── NotFound (also LookupError)
    ├── LoginRequired                      exit code 4 of the CLI
    │   ├── Expired
    │   ├── ReauthNeeded
    │   └── RefreshOutcomeUnknown
    ├── EndpointError
    ├── LockTimeout (also TimeoutError)
    ├── RefreshContended
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

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Mapping, Optional, Type


class CredlockError(Exception):
    """Base of every credlock error.

    `code` (also `kind`) is the WIT `store-error` case (`not-found`, `lock-timeout`, `key`,
    ...); `recommendation` says what to do next, in one sentence; `exit_code` is what the CLI
    exits with for it; `case` is the inner case where the variant has one
    (`wrong-passphrase`, `oauth`, ...)."""

    kind: str = "internal"
    recommendation: str = ""
    exit_code: int = 1
    case: Optional[str] = None

    def __init__(self, message: str, *, recommendation: Optional[str] = None, **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        if recommendation is not None:
            self.recommendation = recommendation
        for name, value in fields.items():
            setattr(self, name, value)

    @property
    def code(self) -> str:
        """The WIT variant name, as the Node host's `CredlockError.code` and Rust's
        `StoreError::code()`: what programs and the shared test vectors compare."""
        return self.kind


# --- the caller's input ---


class InvalidInput(CredlockError, ValueError):
    """The caller's input is not acceptable (`reason` says why)."""

    reason: str = ""


class InvalidTenant(InvalidInput):
    kind = "invalid-tenant"


class InvalidTokenResponse(InvalidInput):
    kind = "invalid-token-response"


class InvalidOptions(InvalidInput):
    kind = "invalid-options"


class InvalidAttachment(InvalidInput):
    """An attachment's name or value is not acceptable, or the tenant has too many."""

    kind = "invalid-attachment"


class NotFound(CredlockError, LookupError):
    kind = "not-found"
    tenant: str = ""


# --- the credential's state ---


class LoginRequired(CredlockError):
    """The stored credential cannot produce a valid access token: log in again."""

    tenant: str = ""


class Expired(LoginRequired):
    kind = "expired"


class ReauthNeeded(LoginRequired):
    kind = "reauth-needed"


class RefreshOutcomeUnknown(LoginRequired):
    kind = "refresh-outcome-unknown"


class EndpointError(CredlockError):
    """The token endpoint failed; the stored tokens are unchanged.

    `reason` is `oauth` (with `status`, `error`, `error_description`), `server` (with
    `status`), `malformed-reply` (with `detail`) or `transport` (with `transport`: `bad-url`,
    `connect`, `timeout`, `interrupted`, `reply-too-large`, and `detail`)."""

    kind = "endpoint"
    reason: str = ""
    status: Optional[int] = None
    error: Optional[str] = None
    error_description: Optional[str] = None
    transport: Optional[str] = None
    detail: Optional[str] = None
    #: Whether the server may have received the refresh token (then it may be spent).
    request_may_have_arrived: bool = True


# --- the environment ---


class LockTimeout(CredlockError, TimeoutError):
    """`lock` names the lock (`store`, or the refresh lock of a tenant); `waited_ms`."""

    kind = "lock-timeout"
    lock: str = ""
    waited_ms: int = 0


class RefreshContended(CredlockError):
    """A refresh of `tenant` gave way to new tokens other processes stored, several times in
    a row; nothing was sent. Retry; find what keeps storing tokens for the tenant."""

    kind = "refresh-contended"
    tenant: str = ""


class StoreIOError(CredlockError):
    """The filesystem failed. `io_kind`: `not-a-regular-file`, `permission-denied`,
    `no-space`, `unsafe-permissions`, `other-lock-protocol`, `unreachable` (a database store's
    server, or the session that held a lock, is gone), `fenced` (a write refused because the
    lock was lost), `auth-failed` (a database store's server refused the role or its
    password), `other`, or `too-large` (then `size` is set)."""

    kind = "io"
    io_kind: str = "other"
    detail: str = ""
    size: Optional[int] = None


# --- the store file's contents ---


class StoreUnreadable(CredlockError):
    """The store cannot be read with what was given; it was not changed."""


class KeyUnavailable(StoreUnreadable):
    """A key error (the WIT's `key-error`). Opening: `no-key-source`, `no-matching-slot`
    (`slot_kinds` lists what could open it), `wrong-passphrase`, `wrong-key-file`,
    `malformed-slot`, `io`, `keyring-entry-missing` (`backend`; `slot_kinds` lists the other
    slots, which can still open it), `keyring` (`detail`). Making a slot (`add_slot`,
    `rekey`): `slot-unavailable` (`detail`: the kind and why); the store was not changed."""

    kind = "key"
    reason: str = ""
    slot_kinds: List[str] = []
    detail: str = ""
    io_kind: Optional[str] = None
    backend: Optional[str] = None


class NotAStore(StoreUnreadable):
    kind = "not-a-store"
    detail: str = ""


class UnsupportedVersion(StoreUnreadable):
    kind = "unsupported-version"
    version: int = 0


class Corrupt(StoreUnreadable):
    kind = "corrupt"
    detail: str = ""


# --- maintenance ---


class Refused(CredlockError):
    """A maintenance call (`add_slot`, `remove_slot`, `recover`, `import_tokens`, ...)
    refused what was asked; nothing was changed."""


class SlotChangeRefused(Refused):
    """`reason`: `no-such-slot` (`index`), `last-slot`, `only-volatile-left` (`slot_kinds`:
    what would remain), `too-many-slots` (`max_slots`)."""

    kind = "slot-change"
    reason: str = ""
    index: Optional[int] = None
    slot_kinds: List[str] = []
    max_slots: Optional[int] = None


class RecoverRefused(Refused):
    """`reason`: `store-readable` (the store opens; `force=True` rolls back anyway),
    `no-backup`, `backup-unreadable` (`detail`), `tenant-records` (a database store)."""

    kind = "recover"
    reason: str = ""
    detail: str = ""


class ImportConflict(Refused):
    """`import_tokens` without `replace` found tenants that already exist (`tenants`);
    nothing was imported."""

    kind = "import-conflict"
    tenants: List[str] = []


class LoginFailed(CredlockError):
    """A login or logout did not complete (the WIT's `login-error`); nothing was stored or
    deleted. `case`: `metadata`, `insecure-endpoint` (`detail`: which endpoint),
    `access-denied`, `expired`, `pending` (another process's login is in progress; `token`
    says so), `joined-failed`, `superseded` (newer tokens were kept), `revocation-failed`
    (`logout(local=True)` deletes anyway), `callback`, `unsupported`, `issuer-mismatch` (the
    browser callback came from another authorization server, RFC 9207), `endpoint` (a request
    of the login to the server failed: `endpoint` names which, `metadata`,
    `device_authorization_endpoint` or `token_endpoint`; the other fields as for
    `EndpointError`)."""

    kind = "login"
    tenant: Optional[str] = None
    detail: str = ""


class InternalError(CredlockError):
    """The credlock runtime failed: the component could not be loaded, or it trapped. A bug
    in credlock (or its installation), not in your data."""

    kind = "internal"


_CLASSES: Dict[str, Type[CredlockError]] = {
    cls.kind: cls
    for cls in (
        InvalidTenant, InvalidTokenResponse, InvalidOptions, InvalidAttachment, NotFound, Expired, ReauthNeeded,
        RefreshOutcomeUnknown, EndpointError, LockTimeout, RefreshContended, StoreIOError,
        KeyUnavailable,
        NotAStore, UnsupportedVersion, Corrupt, SlotChangeRefused, RecoverRefused,
        ImportConflict, LoginFailed, InternalError,
    )
}  # fmt: skip


def _from_report(report: Mapping[str, Any]) -> CredlockError:
    """The exception for an `ErrorReport` (called by the native module): the class by
    `code`, the attributes from `detail`, the message and recommendation as Rust wrote
    them."""
    cls = _CLASSES.get(str(report.get("code")), InternalError)
    fields = dict(report.get("detail") or {})
    for name in ("slot_kinds", "tenants"):
        if name in fields and fields[name] is not None:
            fields[name] = list(fields[name])
    return cls(
        str(report.get("message", "")),
        recommendation=str(report.get("recommendation", "")),
        exit_code=int(report.get("exit_code", 1)),
        case=report.get("case"),
        **fields,
    )
