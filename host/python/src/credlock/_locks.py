"""Inter-process locks: `flock(2)` on sidecar files that are never deleted (host/src/locks.rs).

flock belongs to the open file description, so it dies with its process and two opens in one
process exclude each other, exactly as for the Rust host. For a fast hand-over *and* a timeout
we first try without blocking, and only if that fails block in a helper thread while the caller
waits with a deadline. A helper that wins after its caller gave up releases at once.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from pathlib import Path
from typing import Optional

from ._ptypes import IoError, LockError, io_error

SHARED = "shared"
EXCLUSIVE = "exclusive"

_OPEN_FLAGS = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC


class LockGuard:
    """A held lock. `release()` (idempotent) or dropping the guard releases it."""

    __slots__ = ("_fd", "path", "__weakref__")

    def __init__(self, fd: int, path: Path) -> None:
        self._fd: Optional[int] = fd
        self.path = path

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            # Closing releases the lock too; unlocking first is explicit about it.
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            except OSError:
                pass
            os.close(fd)

    def __del__(self) -> None:
        try:
            self.release()
        except Exception:
            pass

    def __enter__(self) -> "LockGuard":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class _WaitState:
    __slots__ = ("done", "abandoned", "error")

    def __init__(self) -> None:
        self.done = False
        self.abandoned = False
        self.error: Optional[OSError] = None


def _open(path: Path) -> int:
    try:
        return os.open(path, _OPEN_FLAGS, 0o600)
    except OSError as e:
        raise LockError(io=io_error(e, path)) from None


def acquire(path: Path, mode: str, timeout_ms: int) -> LockGuard:
    """Take the lock at `path` in `mode` (`shared`/`exclusive`), waiting at most
    `timeout_ms`; raises LockError(timeout_ms=waited) or LockError(io=...)."""
    if mode == SHARED:
        op = fcntl.LOCK_SH
    elif mode == EXCLUSIVE:
        op = fcntl.LOCK_EX
    else:
        raise ValueError(f"unknown lock mode {mode!r}")
    fd = _open(path)
    try:
        fcntl.flock(fd, op | fcntl.LOCK_NB)
        return LockGuard(fd, path)
    except BlockingIOError:
        pass
    except OSError as e:
        os.close(fd)
        raise LockError(io=io_error(e, path)) from None
    except BaseException:
        os.close(fd)
        raise
    if timeout_ms <= 0:
        os.close(fd)
        raise LockError(timeout_ms=0)

    started = time.monotonic()
    cond = threading.Condition()
    # Decided under `cond`: the helper either hands the descriptor over or closes it; never
    # both, never neither.
    state = _WaitState()

    def helper() -> None:
        error: Optional[OSError] = None
        try:
            fcntl.flock(fd, op)  # blocks; woken by the kernel on release
        except OSError as e:
            error = e
        with cond:
            if state.abandoned:
                os.close(fd)  # also releases the lock if we got it
                return
            state.done = True
            state.error = error
            cond.notify_all()

    try:
        t = threading.Thread(target=helper, name="credlock-lock-wait", daemon=True)
        t.start()
    except RuntimeError as e:
        os.close(fd)
        raise LockError(io=IoError("other", f"{path}: cannot start a lock waiter: {e}")) from None
    got = False
    try:
        with cond:
            cond.wait_for(lambda: state.done, timeout_ms / 1000.0)
            got = state.done
            if not got:
                state.abandoned = True
    except BaseException:
        # Interrupted while waiting (Ctrl-C): never leave a lock behind, held or pending.
        with cond:
            if state.done:
                os.close(fd)
            else:
                state.abandoned = True
        raise
    if got:
        err = state.error
        if err is not None:
            os.close(fd)
            raise LockError(io=io_error(err, path))
        return LockGuard(fd, path)
    waited = int((time.monotonic() - started) * 1000)
    raise LockError(timeout_ms=min(waited, 0xFFFFFFFF))
