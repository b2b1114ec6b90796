"""The store's files on a POSIX filesystem: whole reads, atomic durable replaces
(host/src/files.rs, FORMAT.md "What we assume of the filesystem").

`rename(2)` within a directory is atomic; data is durable after `fsync` of the file, and a
rename or link after `fsync` of the directory; `link(2)` is atomic and fails if the name
exists.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Optional

from ._ptypes import FileError, IoError, io_error

#: The largest store file read (a store of thousands of tenants is well below this).
MAX_STORE_BYTES = 16 * 1024 * 1024

#: How many `-1`, `-2`, ... suffixes `quarantine` tries before giving up: more files
#: quarantined within one millisecond than this means something is looping.
MAX_QUARANTINE_SUFFIX = 1000

# O_NONBLOCK only matters for a FIFO or device planted at the path: opening it must not hang
# before we can see it is not a regular file. It has no effect on regular files.
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def read(path: Path, max_bytes: int = MAX_STORE_BYTES) -> Optional[bytes]:
    """The whole file, or None if it does not exist. Refuses symlinks and non-regular files."""
    try:
        fd = os.open(path, _READ_FLAGS)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise FileError(io=io_error(e, path)) from None
    try:
        try:
            st = os.fstat(fd)
        except OSError as e:
            raise FileError(io=io_error(e, path)) from None
        if not stat.S_ISREG(st.st_mode):
            raise FileError(io=IoError("not-a-regular-file", os.fspath(path)))
        if st.st_size > max_bytes:
            raise FileError(too_large=st.st_size)
        # The file is never written in place (only replaced), so this reads one version.
        chunks = []
        total = 0
        try:
            while True:
                chunk = os.read(fd, min(1 << 20, max_bytes + 1 - total))
                if not chunk:
                    break
                chunks.append(chunk)
                total += len(chunk)
                if total > max_bytes:
                    raise FileError(too_large=total)
        except OSError as e:
            raise FileError(io=io_error(e, path)) from None
        return b"".join(chunks)
    finally:
        os.close(fd)


def _temp_name(target: Path, tag: str) -> Path:
    return target.with_name(f".{target.name}.{tag}-{os.getpid()}-{os.urandom(8).hex()}")


def _write_new(path: Path, contents: bytes) -> None:
    """Create `path` exclusively (0600, no symlink following), write, fsync."""
    fd = os.open(path, _CREATE_FLAGS, 0o600)
    try:
        view = memoryview(contents)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def sync_dir(directory: Path) -> None:
    """fsync a directory, making renames, links and removals in it durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _check_not_symlink(path: Path) -> None:
    """Refuse to replace a symlink or a non-regular file: writing through one could land
    anywhere."""
    try:
        st = os.lstat(path)
    except OSError:
        return
    if not stat.S_ISREG(st.st_mode):
        raise FileError(io=IoError("not-a-regular-file", f"{path}: not a regular file (refused)"))


def replace(target: Path, contents: bytes, backup: Optional[Path] = None) -> None:
    """Replace `target` with `contents` atomically and durably. If `backup` is given and
    `target` exists, its current version becomes `backup` first (a hard link: files are never
    modified in place, so the old inode is exactly the old version)."""
    directory = target.parent
    _check_not_symlink(target)
    tmp = _temp_name(target, "tmp")
    try:
        _write_new(tmp, contents)
    except OSError as e:
        _unlink_quietly(tmp)
        raise FileError(io=io_error(e, target)) from None
    if backup is not None:
        try:
            _keep_backup(target, backup)
        except BaseException:
            _unlink_quietly(tmp)
            raise
    try:
        os.rename(tmp, target)
    except OSError as e:
        _unlink_quietly(tmp)
        raise FileError(io=io_error(e, target)) from None
    try:
        sync_dir(directory)
    except OSError as e:
        raise FileError(io=io_error(e, directory)) from None


def _keep_backup(target: Path, backup: Path) -> None:
    link_tmp = _temp_name(backup, "tmp")
    try:
        os.link(target, link_tmp, follow_symlinks=False)
    except FileNotFoundError:
        return
    except OSError as e:
        raise FileError(io=io_error(e, backup)) from None
    try:
        os.rename(link_tmp, backup)
    except OSError as e:
        _unlink_quietly(link_tmp)
        raise FileError(io=io_error(e, backup)) from None
    # The directory fsync after the main rename makes this durable too.


def remove(path: Path) -> None:
    """Remove `path` durably; a missing file is fine."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return
    except OSError as e:
        raise FileError(io=io_error(e, path)) from None
    try:
        sync_dir(path.parent)
    except OSError as e:
        raise FileError(io=io_error(e, path.parent)) from None


def quarantine(path: Path, now_ms: int) -> str:
    """Move `path` aside to `<name>.corrupt-<now_ms>` in the same directory (then `-1`, `-2`,
    ... if that name exists), durably; return the new name (a name, not a path).

    `link(2)` then `unlink(2)`, not `rename(2)`: link fails if the name exists, so nothing is
    ever replaced, whoever else creates files there. A crash between the two leaves both
    names on the one inode: nothing is lost, and the store is still where it was. The
    contents are never read, copied or rewritten; a symlink is moved as itself."""
    base = f"{path.name}.corrupt-{now_ms}"
    for n in range(MAX_QUARANTINE_SUFFIX + 1):
        name = base if n == 0 else f"{base}-{n}"
        try:
            os.link(path, path.with_name(name), follow_symlinks=False)
        except FileExistsError:
            continue
        except OSError as e:  # ENOENT included: quarantining a missing file is an error
            raise FileError(io=io_error(e, path)) from None
        break
    else:
        raise FileError(io=IoError("other", f"{path}: every quarantine name up to {base}-"
                                            f"{MAX_QUARANTINE_SUFFIX} exists"))
    try:
        os.unlink(path)
    except OSError as e:
        # Undo the link so that a failed quarantine leaves things as they were.
        _unlink_quietly(path.with_name(name))
        raise FileError(io=io_error(e, path)) from None
    try:
        sync_dir(path.parent)
    except OSError as e:
        raise FileError(io=io_error(e, path.parent)) from None
    return name


def create_exclusive(path: Path, contents: bytes) -> bool:
    """Create `path` with `contents` only if it does not exist, atomically (temp + link) and
    durably; False if it existed. Used for the key file: two processes creating it at once
    must end up with one key."""
    tmp = _temp_name(path, "new")
    try:
        _write_new(tmp, contents)
    except OSError as e:
        _unlink_quietly(tmp)
        raise FileError(io=io_error(e, path)) from None
    try:
        os.link(tmp, path, follow_symlinks=False)
        linked: Optional[OSError] = None
    except OSError as e:
        linked = e
    _unlink_quietly(tmp)
    if linked is None:
        try:
            sync_dir(path.parent)
        except OSError as e:
            raise FileError(io=io_error(e, path.parent)) from None
        return True
    if linked.errno == errno.EEXIST:
        return False
    raise FileError(io=io_error(linked, path))
