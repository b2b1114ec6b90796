"""credlock: OAuth credentials that many processes share safely.

A thin binding (PyO3) over the Rust credlock host: the store logic runs in the credlock
WebAssembly component inside the Rust host, which supplies `flock` locks, atomic durable files,
AES-256-GCM key slots, OS keyrings and an HTTP client. Python, Rust and other processes, and
any number of threads, share one store safely.

    import credlock
    with credlock.Store.open("/path/to/store") as store:
        store.put("acme", {"access_token": "...", "expires_in": 3600})
        token = store.token("acme", min_valid=60)
"""

from __future__ import annotations

# The version (every credlock artifact's) and the SHA-256 of the component this build embeds,
# both from the extension, so that what a process reports is what it runs.
from ._credlock import COMPONENT_SHA256
from ._credlock import __version__ as __version__
from ._credlock import default_store_dir as _default_store_dir
from ._store import Store

# No `typing` at import (a one-shot process would pay ~8 ms for it): see _store.py.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any, Optional

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

#: The result dataclasses, loaded on first use (`_types`): importing `dataclasses` costs a
#: one-shot process more than the rest of credlock.
_TYPES = (
    "AccessToken",
    "ImportReport",
    "KdfParams",
    "KeySlotInfo",
    "LoginPrompt",
    "LoginResult",
    "LogoutReport",
    "PendingLogin",
    "RecoverReport",
    "StoreInfo",
    "TenantSummary",
    "WriteReceipt",
)


def __getattr__(name: str) -> Any:
    if name in _TYPES:
        from . import _types

        return getattr(_types, name)
    raise AttributeError(f"module 'credlock' has no attribute {name!r}")
from .errors import (
    Corrupt,
    CredlockError,
    EndpointError,
    Expired,
    ImportConflict,
    RefreshContended,
    InternalError,
    InvalidInput,
    InvalidOptions,
    InvalidAttachment,
    InvalidTenant,
    InvalidTokenResponse,
    KeyUnavailable,
    LockTimeout,
    LoginFailed,
    LoginRequired,
    NotAStore,
    NotFound,
    ReauthNeeded,
    RecoverRefused,
    RefreshOutcomeUnknown,
    Refused,
    SlotChangeRefused,
    StoreIOError,
    StoreUnreadable,
    UnsupportedVersion,
)

__all__ = [
    "COMPONENT_SHA256",
    "AccessToken",
    "Corrupt",
    "CredlockError",
    "EndpointError",
    "Expired",
    "ImportConflict",
    "RefreshContended",
    "ImportReport",
    "InternalError",
    "InvalidInput",
    "InvalidOptions",
    "InvalidAttachment",
    "InvalidTenant",
    "InvalidTokenResponse",
    "KdfParams",
    "KeySlotInfo",
    "KeyUnavailable",
    "LockTimeout",
    "LoginFailed",
    "LoginRequired",
    "NotAStore",
    "NotFound",
    "ReauthNeeded",
    "RecoverRefused",
    "RecoverReport",
    "RefreshOutcomeUnknown",
    "Refused",
    "SlotChangeRefused",
    "Store",
    "StoreIOError",
    "StoreInfo",
    "StoreUnreadable",
    "TenantSummary",
    "UnsupportedVersion",
    "WriteReceipt",
    "default_store_dir",
]


def default_store_dir() -> "Optional[Path]":
    """The store directory used when no path is given and `CREDLOCK_STORE` is unset (the
    CLI's: `$XDG_DATA_HOME/credlock` on Linux)."""
    from pathlib import Path

    d = _default_store_dir()
    return None if d is None else Path(d)
