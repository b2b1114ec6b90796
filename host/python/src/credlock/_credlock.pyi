"""Type stubs for `credlock._credlock`, the native module (host/python/rust/lib.rs).

Use `credlock.Store`; this module is its implementation. Every method releases the GIL and
raises the `credlock.errors` exception built from the Rust error report."""

from typing import Any, Callable, Dict, List, Optional, Tuple

_TokenTuple = Tuple[str, str, Optional[int], int, bool]
_InfoTuple = Tuple[bool, int, int, str, List[str], int]
_SlotTuple = Tuple[int, str, str, bool]
_ImportTuple = Tuple[List[str], List[Tuple[str, str]], int]
_SummaryTuple = Tuple[
    str, str, Optional[int], bool, Optional[str], Optional[str], Optional[str], int, bool, bool
]

class NativeStore:
    def __new__(
        cls,
        store_dir: Optional[str] = None,
        passphrase: Optional[str] = None,
        key_file: Optional[str] = None,
        keyring: Optional[str] = None,
        lock_timeout: Optional[float] = None,
        http_timeout: Optional[float] = None,
        keyring_timeout: Optional[float] = None,
        allow_insecure_http: Optional[bool] = None,
        allow_volatile_only: Optional[bool] = None,
        kdf: Optional[Tuple[int, int, int]] = None,
    ) -> "NativeStore": ...
    @property
    def store_dir(self) -> str: ...
    @property
    def lock_timeout_ms(self) -> int: ...
    @property
    def http_timeout_ms(self) -> int: ...
    def init(self) -> bool: ...
    def put(self, tenant: str, token_response: str) -> Tuple[int, int]: ...
    def token(self, tenant: str, min_valid: float) -> _TokenTuple: ...
    def refresh(
        self, tenant: str, rejected: Optional[str] = None, rejected_sha256: Optional[str] = None
    ) -> _TokenTuple: ...
    def list(self) -> List[_SummaryTuple]: ...
    def delete(self, tenant: str) -> bool: ...
    def attachment(self, tenant: str, name: str) -> Optional[str]: ...
    def set_attachment(
        self, tenant: str, name: str, value: Optional[str] = None
    ) -> Tuple[int, int]: ...
    def info(self) -> _InfoTuple: ...
    def slots(self) -> List[_SlotTuple]: ...
    def add_slot(self, kind: str, new_passphrase: Optional[str] = None) -> List[_SlotTuple]: ...
    def remove_slot(self, index: int, allow_volatile_only: bool) -> List[_SlotTuple]: ...
    def rekey(self) -> _InfoTuple: ...
    def import_tokens(
        self,
        source: str,
        tenant: Optional[str],
        replace: bool,
        kind: Optional[str] = None,
        account: Optional[str] = None,
    ) -> _ImportTuple: ...
    def import_file(
        self,
        path: str,
        tenant: Optional[str],
        replace: bool,
        remove_source: bool,
        kind: Optional[str] = None,
        account: Optional[str] = None,
    ) -> Tuple[List[str], List[Tuple[str, str]], int, bool, Optional[str]]: ...
    def recover(self, force: bool) -> Tuple[Optional[str], int, int, List[str]]: ...
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
        on_prompt: Optional[Callable[[Dict[str, Any]], None]],
    ) -> Tuple[Tuple[str, str, Optional[int], int, bool], bool, bool]: ...
    def logout(self, tenant: str, local: bool) -> Tuple[str, Optional[str], bool]: ...
    def pending_logins(self) -> List[Tuple[str, str, int, int, bool]]: ...

def default_store_dir() -> Optional[str]: ...
def component_sha256() -> str: ...

__version__: str
COMPONENT_SHA256: str
