"""Runs every shared test vector (tests/vectors/*.json) through the Python host. The Rust
and Node hosts run the same files (tests/vectors/README.md)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any, Callable, Dict

import pytest

import credlock

VECTORS = sorted((Path(__file__).resolve().parents[3] / "tests" / "vectors").glob("*.json"))


def _decode(value: str) -> bytes:
    if value.startswith("hex:"):
        return bytes.fromhex(value[4:])
    assert value.startswith("text:"), value
    return value[5:].encode()


def _outcome(call: Callable[[], Dict[str, Any]]) -> Dict[str, Any]:
    try:
        return call()
    except credlock.CredlockError as e:
        return {"error": e.code}


def test_the_vectors_are_there() -> None:
    assert len(VECTORS) >= 10


def _install_keyring_entries(v: Dict[str, Any]) -> list:
    """The vector's kernel-keyring entries, as tests/vectors/README.md says a runner without
    the Rust keyring code installs them: a `user` key `keyring:<user>@credlock` added to the
    session keyring and linked into the persistent keyring."""
    installed = []
    for e in v.get("keyring", []):
        assert e["backend"] == "keyutils", e["backend"]
        desc = f"keyring:{e['user']}@credlock"
        script = 'P=$(keyctl get_persistent @s) && K=$(keyctl padd user "$1" @s) && keyctl link "$K" "$P" && echo "$K"'
        # In a session keyring of its own, as host/tests/keyrings.rs removes entries.
        subprocess.run(["keyctl", "session", "-", "sh", "-c", script, "sh", desc],
                       input=_decode(e["secret"]), capture_output=True, check=True)
        installed.append(desc)
    return installed


@pytest.mark.parametrize("path", VECTORS, ids=[p.stem for p in VECTORS])
def test_vector(path: Path, tmp_path: Path) -> None:
    v = json.loads(path.read_text())
    store_dir = tmp_path / "store"
    store_dir.mkdir(mode=0o700)
    for name, contents in v["files"].items():
        # Owner-only, as credlock makes them: a key file others can read is refused.
        fd = os.open(store_dir / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(_decode(contents))
    sealed = store_dir / "credentials.sealed"
    before = sealed.read_bytes() if sealed.exists() else None
    installed = _install_keyring_entries(v)
    try:
        _run_steps(v, path, store_dir)
    finally:
        for desc in installed:
            forget = 'P=$(keyctl get_persistent @s) && K=$(keyctl search "$P" user "$1") && keyctl invalidate "$K"'
            subprocess.run(["keyctl", "session", "-", "sh", "-c", forget, "sh", desc], capture_output=True)
    if v.get("unchanged"):
        assert (sealed.read_bytes() if sealed.exists() else None) == before, f"{path.name}: the store changed"
    for name in v.get("absent_after", []):
        assert not (store_dir / name).exists(), f"{path.name}: {name} was created"


def _run_steps(v: Dict[str, Any], path: Path, store_dir: Path) -> None:
    with credlock.Store.open(store_dir, passphrase=v.get("passphrase")) as s:
        for i, step in enumerate(v["steps"]):
            tenant = step.get("tenant", "")
            op = step["op"]
            if op == "token":
                got = _outcome(lambda: {"token": s.token(tenant, min_valid=step.get("min_valid_s", 60))})
            elif op == "list":
                got = _outcome(lambda: {"tenants": [{"tenant": t.tenant, "revision": t.revision} for t in s.list()]})
            elif op == "put":
                got = _outcome(lambda: {"revision": s.put(tenant, step["response"]).revision})
            elif op == "delete":
                got = _outcome(lambda: {"deleted": s.delete(tenant)})
            elif op == "attachment":
                got = _outcome(lambda: {"value": s.attachment(tenant, step["name"])})
            elif op == "set-attachment":
                got = _outcome(lambda: {"revision": s.set_attachment(tenant, step["name"], step["value"]).revision})
            elif op == "expires":
                found = [t for t in s.list() if t.tenant == tenant]
                got = {"expires_at_ms": found[0].expires_at_ms} if found else {"error": "not-found"}
            else:
                raise AssertionError(f"unknown op {op}")
            assert got == step["expect"], f"{path.name}, step {i} ({op})"
