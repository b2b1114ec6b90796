"""The platform's expected failures, as the WIT names them (wit/types.wit, files.wit, ...).

The platform modules raise these; `_runtime` turns them into the component's error values.
Their payloads are host-written detail (an OS error text and a path), never key material or
token values.
"""

from __future__ import annotations

import errno
import os
from typing import List, Optional, Union


class IoError(Exception):
    """`io-error`: kind is `not-a-regular-file`, `permission-denied`, `no-space` or `other`."""

    KINDS = ("not-a-regular-file", "permission-denied", "no-space", "other")

    def __init__(self, kind: str, detail: str) -> None:
        assert kind in self.KINDS, kind
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


class FileError(Exception):
    """`file-error`: `io(io-error)` or `too-large(u64)`."""

    def __init__(self, io: Optional[IoError] = None, too_large: Optional[int] = None) -> None:
        assert (io is None) != (too_large is None)
        super().__init__(str(io) if io is not None else f"too large ({too_large} bytes)")
        self.io = io
        self.too_large = too_large


class LockError(Exception):
    """`lock-error`: `timeout(waited-ms)` or `io(io-error)`."""

    def __init__(self, timeout_ms: Optional[int] = None, io: Optional[IoError] = None) -> None:
        assert (io is None) != (timeout_ms is None)
        super().__init__(str(io) if io is not None else f"timeout after {timeout_ms} ms")
        self.timeout_ms = timeout_ms
        self.io = io


class KeyError_(Exception):
    """`key-error`. kind: `no-key-source`, `no-matching-slot` (payload: slot kinds),
    `wrong-passphrase`, `wrong-key-file`, `malformed-slot` (payload: detail), `io` (payload:
    an IoError), `slot-unavailable` (payload: the kind and why). This host has no keyring, so
    it never raises `keyring` or `keyring-entry-missing`."""

    def __init__(self, kind: str, payload: Union[None, str, List[str], IoError] = None) -> None:
        super().__init__(kind if payload is None else f"{kind}: {payload}")
        self.kind = kind
        self.payload = payload


class SealError(Exception):
    """`seal-error`: `bad-nonce` or `authentication-failed`."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


class TransportError(Exception):
    """`transport-error`: `bad-url`, `connect`, `interrupted` (with detail), `timeout`,
    `reply-too-large`."""

    def __init__(self, kind: str, detail: Optional[str] = None) -> None:
        super().__init__(kind if detail is None else f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


def io_error(e: OSError, path: Union[str, "os.PathLike[str]"]) -> IoError:
    """Map an OS error to `io-error`, naming the path; never includes file contents.

    The same mapping as host/src/io_util.rs: ENOSPC/EDQUOT -> no-space, ELOOP (O_NOFOLLOW met
    a symlink) -> not-a-regular-file, EROFS/EACCES/EPERM -> permission-denied."""
    path = os.fspath(path)
    code = e.errno
    text = e.strerror or str(e)
    detail = f"{path}: {text} (os error {code})" if code is not None else f"{path}: {text}"
    if code in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        return IoError("no-space", detail)
    if code == errno.ELOOP:
        return IoError("not-a-regular-file", f"{path}: is a symbolic link (refused)")
    if code in (errno.EROFS, errno.EACCES, errno.EPERM):
        return IoError("permission-denied", detail)
    return IoError("other", detail)
