"""credlock: OAuth credentials that many processes share safely.

The Python host of the credlock WebAssembly component: the store logic runs in the component
(the same build every host embeds), and this package supplies its platform natively: `flock`
locks, atomic durable files, AES-256-GCM key slots, an HTTP client. Python and Rust processes
share one store safely.

    import credlock
    with credlock.Store.open("/path/to/store") as store:
        store.put("acme", {"access_token": "...", "expires_in": 3600})
        token = store.token("acme", min_valid=60)
"""

from ._keys import KdfParams
from ._runtime import LoadStats
from ._store import (
    AccessToken,
    ImportReport,
    KeySlotInfo,
    RecoverReport,
    Store,
    StoreInfo,
    TenantSummary,
    WriteReceipt,
)
from .errors import (
    Corrupt,
    CredlockError,
    EndpointError,
    Expired,
    ImportConflict,
    InternalError,
    InvalidInput,
    InvalidOptions,
    InvalidTenant,
    InvalidTokenResponse,
    KeyUnavailable,
    LockTimeout,
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

__version__ = "0.1.0"

__all__ = [
    "AccessToken",
    "Corrupt",
    "CredlockError",
    "EndpointError",
    "Expired",
    "ImportConflict",
    "ImportReport",
    "InternalError",
    "InvalidInput",
    "InvalidOptions",
    "InvalidTenant",
    "InvalidTokenResponse",
    "KdfParams",
    "KeySlotInfo",
    "KeyUnavailable",
    "LoadStats",
    "LockTimeout",
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
]


def load_stats() -> LoadStats:
    """How the component was loaded in this process (compiled or from the cache, and how
    long it took); loads it if needed."""
    from ._runtime import runtime

    return runtime().stats
