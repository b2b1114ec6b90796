"""Type stubs for `credlock._credlock`, the native module (host/python/rust/lib.rs).

Use `credlock.Store`; this module is its implementation. Every method releases the GIL and
raises the `credlock.errors` exception built from the Rust error report.

Results arrive by name: each is a dict of the Rust result type's fields (its `Serialize`,
with the WIT's field names), which `credlock._store` passes to the dataclass of the same
fields in `credlock._types`. The TypedDicts below say what each dict holds."""

from typing import Callable, List, Optional, TypedDict

class _WriteReceipt(TypedDict):
    revision: int
    generation: int

class _AccessToken(TypedDict):
    token: str
    token_type: str
    expires_at_ms: Optional[int]
    revision: int
    refreshed: bool

class _TenantSummary(TypedDict):
    tenant: str
    token_type: str
    expires_at_ms: Optional[int]
    has_refresh_token: bool
    scope: Optional[str]
    token_endpoint: Optional[str]
    client_id: Optional[str]
    revision: int
    needs_reauth: bool
    refresh_intent: bool

class _StoreInfo(TypedDict):
    exists: bool
    generation: int
    format_version: int
    key_id: str
    slot_kinds: List[str]
    tenants: int

class _SlotInfo(TypedDict):
    index: int
    kind: str
    describe: str
    durable: bool

class _Skipped(TypedDict):
    tenant: str
    reason: str

class _ImportReport(TypedDict):
    imported: List[str]
    skipped: List[_Skipped]
    generation: int

class _ImportFileReport(_ImportReport):
    source_removed: bool
    kept_reason: Optional[str]

class _RecoverReport(TypedDict):
    quarantined_as: Optional[str]
    generation: int
    tenants: int
    refresh_unknown: List[str]

class _LoginPrompt(TypedDict):
    kind: str
    url: str
    user_code: Optional[str]
    url_complete: Optional[str]
    expires_at_ms: int
    joined: bool

class _LoginResult(TypedDict):
    token: _AccessToken
    joined: bool
    refreshable: bool

class _LogoutReport(TypedDict):
    revocation: str
    revocation_error: Optional[str]
    deleted: bool

class _PendingLogin(TypedDict):
    tenant: str
    kind: str
    started_at_ms: int
    expires_at_ms: int
    understood: bool

class NativeStore:
    def __new__(
        cls,
        options_json: Optional[str] = None,
        store_dir: Optional[str] = None,
        key_file: Optional[str] = None,
    ) -> "NativeStore":
        """`options_json`: the settings as the JSON object `credlock::OpenOptions` reads, by
        its field names (host/src/open.rs); unknown fields raise InvalidOptions. `store_dir`
        and `key_file` given here, as OS paths (which need not be UTF-8), take precedence."""
    @property
    def store_dir(self) -> str: ...
    @property
    def lock_timeout_ms(self) -> int: ...
    @property
    def http_timeout_ms(self) -> int: ...
    def init(self) -> bool: ...
    def put(self, tenant: str, token_response: str) -> _WriteReceipt: ...
    def token(self, tenant: str, min_valid: float) -> _AccessToken: ...
    def refresh(
        self, tenant: str, rejected: Optional[str] = None, rejected_sha256: Optional[str] = None
    ) -> _AccessToken: ...
    def list(self) -> List[_TenantSummary]: ...
    def delete(self, tenant: str) -> bool: ...
    def attachment(self, tenant: str, name: str) -> Optional[str]: ...
    def set_attachment(
        self, tenant: str, name: str, value: Optional[str] = None
    ) -> _WriteReceipt: ...
    def info(self) -> _StoreInfo: ...
    def slots(self) -> List[_SlotInfo]: ...
    def add_slot(self, kind: str, new_passphrase: Optional[str] = None) -> List[_SlotInfo]: ...
    def remove_slot(self, index: int, allow_volatile_only: bool) -> List[_SlotInfo]: ...
    def rekey(self) -> _StoreInfo: ...
    def import_tokens(
        self,
        source: str,
        tenant: Optional[str],
        replace: bool,
        kind: Optional[str] = None,
        account: Optional[str] = None,
    ) -> _ImportReport: ...
    def import_file(
        self,
        path: str,
        tenant: Optional[str],
        replace: bool,
        remove_source: bool,
        kind: Optional[str] = None,
        account: Optional[str] = None,
    ) -> _ImportFileReport: ...
    def recover(self, force: bool) -> _RecoverReport: ...
    def quarantine(self, force: bool) -> str: ...
    def login(
        self,
        tenant: str,
        client_id: str,
        issuer: Optional[str],
        client_secret: Optional[str],
        scope: Optional[str],
        browser: bool,
        open_browser: bool,
        audience: Optional[str],
        resource: Optional[str],
        authorization_endpoint: Optional[str],
        token_endpoint: Optional[str],
        device_authorization_endpoint: Optional[str],
        revocation_endpoint: Optional[str],
        on_prompt: Optional[Callable[[_LoginPrompt], None]],
    ) -> _LoginResult: ...
    def logout(self, tenant: str, local: bool) -> _LogoutReport: ...
    def pending_logins(self) -> List[_PendingLogin]: ...

def default_store_dir() -> Optional[str]: ...
def component_sha256() -> str: ...

__version__: str
COMPONENT_SHA256: str
