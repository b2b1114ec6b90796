"""Where a store's files live: the same names as host/src/layout.rs and FORMAT.md, "Files".

A tenant name never becomes part of a path: refresh locks use the tenant's hash id."""

from __future__ import annotations

import errno
import os
import re
import stat
from pathlib import Path
from typing import Optional

_TENANT_ID = re.compile(r"\A[0-9a-f]{64}\Z")


class Layout:
    def __init__(self, directory: "os.PathLike[str] | str") -> None:
        self.dir = Path(directory)

    @property
    def store(self) -> Path:
        return self.dir / "credentials.sealed"

    @property
    def backup(self) -> Path:
        return self.dir / "credentials.sealed.bak"

    @property
    def store_lock(self) -> Path:
        return self.dir / "credentials.lock"

    @property
    def lock_dir(self) -> Path:
        return self.dir / "locks"

    def refresh_lock(self, tenant_id: str) -> Path:
        # The core makes ids; anything else here is a bug that must not reach a path.
        if not is_tenant_id(tenant_id):
            raise ValueError("bad tenant id")
        return self.lock_dir / f"refresh-{tenant_id}.lock"

    @property
    def default_key_file(self) -> Path:
        return self.dir / "key"


def is_tenant_id(s: str) -> bool:
    return bool(_TENANT_ID.match(s))


def default_store_dir() -> Optional[Path]:
    """`$XDG_DATA_HOME/credlock`, else `~/.local/share/credlock` (as the Rust CLI on Linux)."""
    xdg = os.environ.get("XDG_DATA_HOME")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "credlock"
    home = os.environ.get("HOME") or os.path.expanduser("~")
    if not home or home == "~":
        return None
    return Path(home) / ".local" / "share" / "credlock"


def default_cache_dir() -> Optional[Path]:
    """`$XDG_CACHE_HOME/credlock`, else `~/.cache/credlock`."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "credlock"
    home = os.environ.get("HOME") or os.path.expanduser("~")
    if not home or home == "~":
        return None
    return Path(home) / ".cache" / "credlock"


def ensure_private_dir(directory: Path) -> None:
    """Create `directory` (and parents) if missing; the leaf gets mode 0700 when we create it.

    An existing directory, or a symlink to one, is used as it is (host/src/io_util.rs)."""
    try:
        st = os.lstat(directory)
    except FileNotFoundError:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        # makedirs' mode is filtered by the umask; make the leaf exactly 0700.
        os.chmod(directory, 0o700)
        return
    if stat.S_ISDIR(st.st_mode):
        return
    if stat.S_ISLNK(st.st_mode) and os.path.isdir(directory):
        return
    raise OSError(errno.EEXIST, "exists and is not a directory", os.fspath(directory))
