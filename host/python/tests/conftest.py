from __future__ import annotations

import fcntl
import hashlib
import json
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from oauth_server import OAuthServer  # noqa: E402

ROOT = HERE.parent.parent.parent
RUST_CLI = Path(os.environ.get("CREDLOCK_CLI", ROOT / "target" / "debug" / "credlock"))

#: Fast argon2id parameters for stores made in tests that do not involve the Rust CLI's
#: defaults (a Python-made passphrase store opened by Rust uses whatever the slot says).
FAST_KDF_ARGS = dict(m_cost_kib=64, t_cost=1, p_cost=1)


@pytest.fixture(autouse=True, scope="session")
def _session_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No CREDLOCK_* from the developer's shell."""
    for k in list(os.environ):
        if k.startswith("CREDLOCK_") and k not in ("CREDLOCK_CLI",):
            del os.environ[k]
    yield


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture(scope="session")
def _oauth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OAuthServer]:
    server = OAuthServer(tmp_path_factory.mktemp("oauth-server"))
    yield server
    server.close()


#: The access-token lifetime of `short_tokens`' server, for tests through several expiries.
ACCESS_TTL_S = 2
#: What credlock takes off a lifetime for the server's rounding (core/src/expiry.rs).
EXPIRY_GRANULARITY_S = 1


@pytest.fixture(scope="session")
def short_tokens(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OAuthServer]:
    """tests/oauth-server issuing 2-second access tokens (started once; reset it yourself)."""
    server = OAuthServer(tmp_path_factory.mktemp("oauth-short"), access_ttl_s=ACCESS_TTL_S)
    yield server
    server.close()


@pytest.fixture
def oauth(_oauth_server: OAuthServer) -> OAuthServer:
    """The real OAuth server (tests/oauth-server), started once (about 2 s to start and stop)
    and reset for each test: counters zero, no faults pending. Each test mints its own
    grants."""
    _oauth_server.reset()
    return _oauth_server


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A skipped test proved nothing: a skip fails the run, as a missing keyring or tool
    does in the Rust, Node and Go suites."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if skipped and session.exitstatus == 0:
        reporter.write_line(f"{skipped} test(s) skipped: a skip is a failure here", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str


def rust(store: Path, *args: str, input: str = "", env: Optional[Dict[str, str]] = None,
         check: bool = True, timeout: float = 60) -> Run:
    """Run the Rust CLI on `store` with only the environment a test gives it."""
    e = {k: v for k, v in os.environ.items() if not k.startswith("CREDLOCK_")}
    e["CREDLOCK_STORE"] = str(store)
    e.update(env or {})
    p = subprocess.run([str(RUST_CLI), *args], input=input, capture_output=True, text=True,
                       env=e, timeout=timeout)
    r = Run(p.returncode, p.stdout, p.stderr)
    if check and r.code != 0:
        raise AssertionError(f"credlock {' '.join(args)} failed: {r}")
    return r


def sha256_file(path: Path) -> Optional[str]:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


@contextmanager
def held_lock(path: Path, shared: bool = False) -> Iterator[None]:
    """Hold a store lock file (FORMAT.md: `credentials.lock`, `locks/refresh-<id>.lock`) as
    another process would: flock on an open file description of our own, which excludes
    the Rust host's descriptors in this process too."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        yield
    finally:
        os.close(fd)


def adapter_workers(store_dir: Path, tmp_path: Path, url: str, seconds: float, kinds: List[str]) -> List[dict]:
    """Run adapter_worker.py once per kind on one store, released together, and return what
    each printed."""
    go = str(tmp_path / "GO")
    procs = [
        subprocess.Popen([sys.executable, str(HERE / "adapter_worker.py"), kind, str(store_dir), "acme", url, go, str(seconds)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for kind in kinds
    ]
    time.sleep(1.0)  # every process has opened the store
    Path(go).touch()
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        results.append(json.loads(out))
    return results
