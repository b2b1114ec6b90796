"""The `platform` world implemented natively in Python (host/src/native.rs): flock locks,
atomic durable files, AES-256-GCM key slots, an HTTP client, the OS clock and random source.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import List, Optional, Set, Tuple

from . import _endpoint, _files, _locks
from ._keys import DataKey, Keyring, KeySlot
from ._layout import Layout, ensure_private_dir, is_tenant_id
from ._ptypes import FileError, IoError, LockError, io_error


class Platform:
    def __init__(self, layout: Layout, keys: Keyring, allow_insecure_http: bool = False) -> None:
        self.layout = layout
        self.keys = keys
        self.allow_insecure_http = allow_insecure_http
        self._origin = time.monotonic_ns()
        #: Resource handles this platform gave the guest (see _runtime._Registry).
        self._reps: Set[int] = set()
        self._protocol_checked = False
        #: The passphrase for a new passphrase slot: set by `Store.add_slot` for that one call
        #: (under the Store's lock), None otherwise. Never the passphrase that opens the store.
        self.new_passphrase: Optional[bytes] = None

    def _check_protocol(self) -> None:
        """Claim the store for flock, or refuse one the WASI build's lease files already use:
        two lock protocols on one store exclude nothing (FORMAT.md, "Locks")."""
        if self._protocol_checked:
            return
        marker = self.layout.dir / "lock-protocol"
        try:
            _files.create_exclusive(marker, b"flock\n")
            found = (_files.read(marker, 64) or b"").decode("utf-8", "replace").strip()
        except FileError as e:
            raise LockError(io=e.io if e.io is not None else IoError("other", str(marker))) from None
        if found != "flock":
            raise LockError(io=IoError("other",
                f"this store is locked with {found} (the WASI build's lease files), which flock does not "
                "exclude: use the same kind of host for this store"))
        self._protocol_checked = True

    def _path(self, file: str) -> Path:
        if file == "store":
            return self.layout.store
        if file == "backup":
            return self.layout.backup
        raise ValueError(f"unknown store file {file!r}")

    # locks

    def acquire(self, target: Optional[str], mode: str, timeout_ms: int) -> _locks.LockGuard:
        """`target` is None for the store lock, or a tenant id for its refresh lock."""
        if target is None:
            directory = self.layout.dir
            path = self.layout.store_lock
        else:
            # The WIT promises 64 lowercase hex; anything else must not choose a path.
            if not isinstance(target, str) or not is_tenant_id(target):
                raise LockError(io=IoError("other", "invalid refresh lock id"))
            directory = self.layout.lock_dir
            path = self.layout.refresh_lock(target)
        try:
            ensure_private_dir(directory)
        except OSError as e:
            raise LockError(io=io_error(e, directory)) from None
        if target is None:
            self._check_protocol()
        return _locks.acquire(path, mode, timeout_ms)

    # files

    def read(self, file: str) -> Optional[bytes]:
        return _files.read(self._path(file), _files.MAX_STORE_BYTES)

    def replace(self, file: str, contents: bytes) -> None:
        try:
            ensure_private_dir(self.layout.dir)
        except OSError as e:
            raise FileError(io=io_error(e, self.layout.dir)) from None
        backup = self.layout.backup if file == "store" else None
        _files.replace(self._path(file), contents, backup)

    def remove(self, file: str) -> None:
        _files.remove(self._path(file))

    def quarantine(self, file: str) -> str:
        return _files.quarantine(self._path(file), self.wall_ms())

    # sealing

    def unlock(self, key_id: bytes, slots: List[Tuple[str, bytes]]) -> DataKey:
        return self.keys.unlock(key_id, [KeySlot(k, bytes(d)) for k, d in slots])

    def create_key(self) -> DataKey:
        return self.keys.create()

    def rekey(self, slots: List[Tuple[str, bytes]]) -> DataKey:
        return self.keys.rekey([KeySlot(k, bytes(d)) for k, d in slots])

    def add_slot(self, key: DataKey, kind: str) -> KeySlot:
        return self.keys.add_slot(key, kind, self.new_passphrase)

    # token endpoint

    def post(
        self, url: str, body: str, authorization: Optional[str], timeout_ms: int
    ) -> _endpoint.HttpReply:
        return _endpoint.post(
            url, body, authorization, timeout_ms, allow_insecure_http=self.allow_insecure_http
        )

    # clock

    def wall_ms(self) -> int:
        return max(time.time_ns() // 1_000_000, 0)

    def monotonic_ms(self) -> int:
        return (time.monotonic_ns() - self._origin) // 1_000_000

    def release_all(self) -> None:
        """Drop every resource still handed out (after a trap or on close)."""
        from ._runtime import RESOURCES

        for rep in list(self._reps):
            RESOURCES.drop(rep)
