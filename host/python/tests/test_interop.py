"""One store, two hosts: what the Rust CLI writes Python reads, and the other way round."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

import credlock
from conftest import held_lock, FAST_KDF_ARGS, rust

FAST = credlock.KdfParams(**FAST_KDF_ARGS)


def _rust_list(store: Path, env=None) -> list:
    return json.loads(rust(store, "list", "--json", env=env).stdout)


def test_key_file_store_both_ways(store_dir: Path) -> None:
    rust(store_dir, "put", "from-rust", input='{"access_token":"r1","expires_in":3600,"scope":"a b"}')
    with credlock.Store.open(store_dir) as s:
        assert s.token("from-rust") == "r1"
        s.put("from-py", {"access_token": "p1", "expires_in": 3600})
        s.put("from-rust", {"access_token": "r2", "expires_in": 3600})
        py = [t.__dict__ for t in s.list()]
        gen = s.info().generation
    assert rust(store_dir, "token", "from-py").stdout == "p1\n"
    assert rust(store_dir, "token", "from-rust").stdout == "r2\n"
    assert _rust_list(store_dir) == py
    rust(store_dir, "delete", "from-py")
    with credlock.Store.open(store_dir) as s:
        assert [t.tenant for t in s.list()] == ["from-rust"]
        assert s.info().generation > gen  # a delete also rewrites the backup (core delete)
        assert s.list()[0].revision == 2


def test_python_made_store_and_key_file_open_in_rust(store_dir: Path) -> None:
    with credlock.Store.open(store_dir) as s:
        s.put("acme", {"access_token": "p1", "expires_in": 3600})
    assert (store_dir / "key").read_text().startswith("credlock-key-file-v1 ")
    assert rust(store_dir, "token", "acme").stdout == "p1\n"
    doctor = rust(store_dir, "doctor", check=False)
    assert "slots: key-file" in doctor.stdout, doctor


def test_passphrase_store_both_ways(store_dir: Path, tmp_path: Path) -> None:
    env = {"CREDLOCK_PASSPHRASE": "open sesame"}
    rust(store_dir, "put", "r", input='{"access_token":"r1"}', env=env)  # argon2id 64 MiB, t=3
    assert not (store_dir / "key").exists()
    with credlock.Store.open(store_dir, passphrase="open sesame") as s:
        assert s.token("r", 0) == "r1"
        assert s.info().slot_kinds == ("passphrase",)
        s.put("p", {"access_token": "p1"})
    with credlock.Store.open(store_dir, passphrase="nope") as s:
        with pytest.raises(credlock.KeyUnavailable) as e:
            s.list()
        assert e.value.reason == "wrong-passphrase"
    assert rust(store_dir, "token", "p", env=env).stdout == "p1\n"

    # A store made by Python with a passphrase (its own argon2id parameters, in the slot).
    other = tmp_path / "py-pass"
    with credlock.Store.open(other, passphrase="pw2", _kdf=FAST) as s:
        s.put("acme", {"access_token": "x"})
    assert rust(other, "token", "acme", env={"CREDLOCK_PASSPHRASE": "pw2"}).stdout == "x\n"
    wrong = rust(other, "token", "acme", env={"CREDLOCK_PASSPHRASE": "pw3"}, check=False)
    assert wrong.code == 6 and "wrong passphrase" in wrong.stderr


def test_both_slots_and_explicit_key_file(store_dir: Path, tmp_path: Path) -> None:
    kf = tmp_path / "elsewhere.key"
    env = {"CREDLOCK_PASSPHRASE": "pw", "CREDLOCK_KEY_FILE": str(kf)}
    rust(store_dir, "put", "acme", input='{"access_token":"x"}', env=env)
    with credlock.Store.open(store_dir, key_file=kf) as s:  # the key file alone
        assert s.info().slot_kinds == ("key-file", "passphrase")
        assert s.token("acme", 0) == "x"
    with credlock.Store.open(store_dir, passphrase="pw") as s:  # the passphrase alone
        assert s.token("acme", 0) == "x"


def test_refresh_by_either_host_spends_the_token_once(store_dir: Path, oauth) -> None:
    rust(store_dir, "put", "acme", input=json.dumps(oauth.expired_grant()))
    with credlock.Store.open(store_dir) as s:
        t = s.token_info("acme", min_valid=60)
        assert t.refreshed
    assert rust(store_dir, "token", "acme").stdout.strip() == t.token
    new = rust(store_dir, "refresh", "acme").stdout.strip()
    with credlock.Store.open(store_dir) as s:
        assert s.token("acme") == new
        assert s.refresh("acme", rejected=t.token).token == new  # stale 401: nothing to do
    assert oauth.resource(new)
    stats = oauth.stats()
    assert (stats["refresh_requests"], stats["refresh_successes"]) == (2, 2), stats
    assert (stats["duplicate_presentations"], stats["invalid_grant"]) == (0, 0), stats


def test_python_lock_blocks_rust_on_the_same_file(store_dir: Path) -> None:
    rust(store_dir, "init")
    with held_lock(store_dir / "credentials.lock"):
        r = rust(store_dir, "list", env={"CREDLOCK_LOCK_TIMEOUT": "0.3"}, check=False)
        assert r.code == 5 and "store lock" in r.stderr, r
    assert rust(store_dir, "list").code == 0


def test_rust_lock_blocks_python(store_dir: Path, oauth) -> None:
    """While a Rust process holds the refresh lock across a slow token-endpoint call, a
    Python refresh of the same tenant waits for it and then uses its result."""
    import subprocess

    from conftest import RUST_CLI

    rust(store_dir, "put", "acme", input=json.dumps(oauth.expired_grant()))
    oauth.fault("slow", delay_ms=1000)
    e = {k: v for k, v in os.environ.items() if not k.startswith("CREDLOCK_")}
    e["CREDLOCK_STORE"] = str(store_dir)
    p = subprocess.Popen([str(RUST_CLI), "token", "acme"], env=e, stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 5
        while oauth.stats()["refresh_requests"] == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert oauth.stats()["refresh_requests"] == 1, "the Rust refresh did not start"
        with credlock.Store.open(store_dir) as s:
            t = s.token_info("acme", min_valid=60)
        out, _ = p.communicate(timeout=10)
        assert not t.refreshed and t.token == out.strip()
        stats = oauth.stats()
        assert (stats["refresh_requests"], stats["refresh_successes"]) == (1, 1), stats
        assert stats["duplicate_presentations"] == 0, stats
    finally:
        if p.poll() is None:
            p.kill()  # only the process this test started
            p.wait()


# ----- maintenance across hosts -----


def _rust_slots(store: Path, env=None) -> list:
    return [(s["index"], s["kind"], s["description"], s["durable"])
            for s in json.loads(rust(store, "slot", "list", "--json", env=env).stdout)]


def _py_slots(s: credlock.Store) -> list:
    return [(x.index, x.kind, x.describe, x.durable) for x in s.slots()]


def test_python_rekeys_a_rust_store_and_rust_reads_it(store_dir: Path, tmp_path: Path) -> None:
    kf = tmp_path / "k"
    env = {"CREDLOCK_PASSPHRASE": "pw", "CREDLOCK_KEY_FILE": str(kf)}
    for name in ("a", "b"):
        rust(store_dir, "put", name, input=json.dumps({"access_token": f"at-{name}", "expires_in": 3600}), env=env)
    # Default argon2id parameters here (the Rust CLI shows memory in whole MiB).
    with credlock.Store.open(store_dir, "pw", key_file=kf) as s:
        old = s.info().key_id
        assert _py_slots(s) == _rust_slots(store_dir, env)  # Rust's argon2id defaults: m=64 MiB
        new = s.rekey()
        assert new.key_id != old and new.slot_kinds == ("key-file", "passphrase")
        slots = _py_slots(s)
    assert not (store_dir / "credentials.sealed.bak").exists()
    only_key_file = {"CREDLOCK_KEY_FILE": str(kf)}
    only_passphrase = {"CREDLOCK_PASSPHRASE": "pw", "CREDLOCK_KEY_FILE": str(tmp_path / "none")}
    for e in (only_key_file, only_passphrase):
        assert rust(store_dir, "token", "a", env=e).stdout == "at-a\n"
        assert rust(store_dir, "token", "b", env=e).stdout == "at-b\n"
    assert _rust_slots(store_dir, only_key_file) == slots


def test_rust_reads_a_slot_python_added_and_python_reads_a_rust_rekey(store_dir: Path, tmp_path: Path) -> None:
    rust(store_dir, "put", "acme", input='{"access_token":"x","expires_in":3600}')
    with credlock.Store.open(store_dir) as s:
        s.add_slot("passphrase", passphrase="added by python")
        slots = _py_slots(s)
    assert _rust_slots(store_dir) == slots
    env = {"CREDLOCK_PASSPHRASE": "added by python", "CREDLOCK_KEY_FILE": str(tmp_path / "none")}
    assert rust(store_dir, "token", "acme", env=env).stdout == "x\n"

    rust(store_dir, "rekey", env={"CREDLOCK_PASSPHRASE": "added by python"})
    with credlock.Store.open(store_dir) as s:  # the key file alone
        assert s.token("acme", 0) == "x" and [x.kind for x in s.slots()] == ["key-file", "passphrase"]
    with credlock.Store.open(store_dir, "added by python", key_file=tmp_path / "none") as s:
        assert s.token("acme", 0) == "x"
