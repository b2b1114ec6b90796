"""Type stubs for `credlock._credlock`, the native module (host/python/rust/lib.rs).

Use `credlock.Store`; this module is its implementation. Every method releases the GIL and
raises the `credlock.errors` exception built from the Rust error report.

Results arrive by name: each is a dict of the Rust result type's fields (its `Serialize`,
with the WIT's field names), which `credlock._store` passes to the dataclass of the same
fields in `credlock._types`. Those dataclasses are the Python declaration of every result
(host/tests/declarations.rs checks them against the WIT, and `Cls(**fields)` refuses a dict
with a field more or less), so the dicts are not declared again here."""

from typing import Any, Callable, Dict, List, Optional

_Fields = Dict[str, Any]

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
    def put(self, tenant: str, token_response: str) -> _Fields: ...
    def token(self, tenant: str, min_valid: float) -> _Fields: ...
    def refresh(
        self, tenant: str, rejected: Optional[str] = None, rejected_sha256: Optional[str] = None
    ) -> _Fields: ...
    def list(self) -> List[_Fields]: ...
    def delete(self, tenant: str) -> bool: ...
    def attachment(self, tenant: str, name: str) -> Optional[str]: ...
    def set_attachment(
        self, tenant: str, name: str, value: Optional[str] = None
    ) -> _Fields: ...
    def info(self) -> _Fields: ...
    def slots(self) -> List[_Fields]: ...
    def add_slot(self, kind: str, new_passphrase: Optional[str] = None) -> List[_Fields]: ...
    def remove_slot(self, index: int, allow_volatile_only: bool) -> List[_Fields]: ...
    def rekey(self) -> _Fields: ...
    def import_tokens(
        self,
        source: str,
        tenant: Optional[str],
        replace: bool,
        kind: Optional[str] = None,
        account: Optional[str] = None,
    ) -> _Fields: ...
    def import_file(
        self,
        path: str,
        tenant: Optional[str],
        replace: bool,
        remove_source: bool,
        kind: Optional[str] = None,
        account: Optional[str] = None,
    ) -> _Fields: ...
    def recover(self, force: bool) -> _Fields: ...
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
        on_prompt: Optional[Callable[[_Fields], None]],
    ) -> _Fields: ...
    def logout(self, tenant: str, local: bool) -> _Fields: ...
    def pending_logins(self) -> List[_Fields]: ...

def default_store_dir() -> Optional[str]: ...
def component_sha256() -> str: ...

__version__: str
COMPONENT_SHA256: str
