"""The results `credlock.Store` returns, as frozen dataclasses.

A module of its own, imported on first use: `dataclasses` costs a one-shot process that only
prints a token (`Store.open().token(...)`) more than the rest of credlock's import.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Tuple


@dataclass(frozen=True)
class KdfParams:
    """argon2id parameters written into new passphrase slots (the Rust host's defaults:
    64 MiB, 3 iterations, 1 lane). Tests use small ones through `Store.open(_kdf=...)`."""

    m_cost_kib: int = 64 * 1024
    t_cost: int = 3
    p_cost: int = 1


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
    #: A refresh intent is recorded: a refresh of this tenant is in flight now, or one was
    #: interrupted (then `needs_reauth` says whether it may be retried).
    refresh_intent: bool


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


@dataclass(frozen=True)
class LoginPrompt:
    """What the user must see to finish a login (passed to `Store.login`'s `on_prompt`)."""

    #: `device` or `browser`.
    kind: str
    #: The page to visit: the device flow's verification URI, or the authorization URL.
    url: str
    #: The device flow's user code.
    user_code: Optional[str]
    #: The verification URI with the code in it (device flow).
    url_complete: Optional[str]
    #: Unix ms after which the code or URL no longer works.
    expires_at_ms: int
    #: True when this process joined a login another process started.
    joined: bool


@dataclass(frozen=True)
class LoginResult:
    #: The tenant's tokens as stored.
    token: AccessToken
    #: True when another process ran the flow and this one joined it.
    joined: bool
    #: True when the stored tokens include a refresh token (a login that asked for
    #: `offline_access` and got none can only be repeated when the token expires).
    refreshable: bool


@dataclass(frozen=True)
class LogoutReport:
    #: `revoked`, `not-offered` (no revocation endpoint known) or `failed` (with `local`).
    revocation: str
    #: Why the revocation failed, if it did.
    revocation_error: Optional[str]
    #: True if the tenant was stored and is now deleted.
    deleted: bool


@dataclass(frozen=True)
class PendingLogin:
    tenant: str
    kind: str
    started_at_ms: int
    expires_at_ms: int
    #: False for one written by a newer credlock: kept, never joined.
    understood: bool
