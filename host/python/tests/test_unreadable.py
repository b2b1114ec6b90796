"""A store that cannot be read is never modified by any Python call (maintenance calls
included), and each kind of unreadable store raises its own exception (the Python side of
host/tests/unreadable.rs)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable, Optional, Type

import pytest

import credlock
from conftest import FAST_KDF_ARGS, sha256_file

FAST = credlock.KdfParams(**FAST_KDF_ARGS)


def _calls(s: credlock.Store):
    return [
        ("put", lambda: s.put("acme", {"access_token": "new"})),
        ("put other", lambda: s.put("other", {"access_token": "new"})),
        ("delete", lambda: s.delete("acme")),
        ("init", lambda: s.init()),
        ("token", lambda: s.token("acme")),
        ("refresh", lambda: s.refresh("acme")),
        ("list", lambda: s.list()),
        ("info", lambda: s.info()),
        # Maintenance reads under the same rules (recover and quarantine, which exist to move
        # an unreadable store aside, are tested in test_maintenance.py).
        ("slots", lambda: s.slots()),
        ("add_slot passphrase", lambda: s.add_slot("passphrase", passphrase="another")),
        ("add_slot key-file", lambda: s.add_slot("key-file")),
        ("remove_slot", lambda: s.remove_slot(0)),
        ("rekey", lambda: s.rekey()),
        ("import_tokens", lambda: s.import_tokens({"acme": {"access_token": "x"}}, replace=True)),
    ]


def _make(store_dir: Path, passphrase: Optional[str] = None) -> None:
    with credlock.Store.open(store_dir, passphrase=passphrase, _kdf=FAST) as s:
        s.put("acme", {"access_token": "one"})
        s.put("beta", {"access_token": "two"})


def _edit(store_dir: Path, f: Callable[[bytearray], None]) -> None:
    p = store_dir / "credentials.sealed"
    b = bytearray(p.read_bytes())
    f(b)
    p.write_bytes(bytes(b))


def _snapshot(store_dir: Path) -> dict:
    return {p.name: sha256_file(p) for p in sorted(store_dir.iterdir()) if p.is_file()}


def _check(store_dir: Path, exc: Type[credlock.CredlockError], message: str,
           passphrase: Optional[str] = None, **attrs) -> None:
    before = _snapshot(store_dir)
    listing = sorted(os.listdir(store_dir))
    with credlock.Store.open(store_dir, passphrase=passphrase) as s:
        for name, call in _calls(s):
            with pytest.raises(exc) as e:
                call()
            assert message in str(e.value), (name, str(e.value))
            assert e.value.recommendation, name
            for k, v in attrs.items():
                assert getattr(e.value, k) == v, (name, k)
    assert _snapshot(store_dir) == before, "an unreadable store was changed"
    assert sorted(os.listdir(store_dir)) == listing


def test_flipped_body_byte(store_dir: Path) -> None:
    _make(store_dir)
    _edit(store_dir, lambda b: b.__setitem__(-1, b[-1] ^ 1))
    _check(store_dir, credlock.Corrupt, "the store is damaged: the body fails authentication")


def test_flipped_header_byte(store_dir: Path) -> None:
    _make(store_dir)

    def flip_nonce(b: bytearray) -> None:
        h = int.from_bytes(b[10:12], "big")
        b[h - 1] ^= 1

    _edit(store_dir, flip_nonce)
    _check(store_dir, credlock.Corrupt, "the store is damaged")


def test_truncated(store_dir: Path) -> None:
    _make(store_dir)
    _edit(store_dir, lambda b: b.__delitem__(slice(len(b) // 2, None)))
    _check(store_dir, credlock.Corrupt, "the store is damaged")
    _edit(store_dir, lambda b: b.__delitem__(slice(20, None)))
    _check(store_dir, credlock.Corrupt, "the store is damaged: the header claims")


def test_unknown_version(store_dir: Path) -> None:
    _make(store_dir)
    _edit(store_dir, lambda b: b.__setitem__(9, 7))
    _check(store_dir, credlock.UnsupportedVersion, "format version 7", version=7)


def test_not_a_store(store_dir: Path) -> None:
    _make(store_dir)
    (store_dir / "credentials.sealed").write_bytes(b'{"acme":{"access_token":"x"}}')
    _check(store_dir, credlock.NotAStore, "not a credlock store")
    (store_dir / "credentials.sealed").write_bytes(b"")
    _check(store_dir, credlock.NotAStore, "the file is empty")


def test_wrong_key_file(store_dir: Path, tmp_path: Path) -> None:
    _make(store_dir)
    other = tmp_path / "other"
    with credlock.Store.open(other) as s:
        s.init()
    shutil.copy(other / "key", store_dir / "key")
    _check(store_dir, credlock.KeyUnavailable, "the key file does not open this store",
           reason="wrong-key-file")


def test_garbled_key_file(store_dir: Path) -> None:
    _make(store_dir)
    (store_dir / "key").write_text("credlock-key-file-v1 nothex\n")
    _check(store_dir, credlock.KeyUnavailable, "the key file does not open this store",
           reason="wrong-key-file")


def test_missing_key_file_is_never_recreated(store_dir: Path, tmp_path: Path) -> None:
    _make(store_dir)
    (store_dir / "key").rename(tmp_path / "key.moved")
    _check(store_dir, credlock.KeyUnavailable,
           "none of the configured keys opens this store; it can be opened by: key-file",
           reason="no-matching-slot", slot_kinds=["key-file"])
    assert not (store_dir / "key").exists(), "a new key was minted while a ciphertext exists"
    (tmp_path / "key.moved").rename(store_dir / "key")
    with credlock.Store.open(store_dir) as s:
        assert s.token("acme", 0) == "one"  # nothing was lost


def test_wrong_passphrase(store_dir: Path) -> None:
    _make(store_dir, passphrase="right")
    _check(store_dir, credlock.KeyUnavailable, "wrong passphrase for this store",
           passphrase="wrong", reason="wrong-passphrase")
    _check(store_dir, credlock.KeyUnavailable, "it can be opened by: passphrase",
           reason="no-matching-slot")


def test_tampered_slot_parameters(store_dir: Path) -> None:
    _make(store_dir, passphrase="right")

    def huge_memory(b: bytearray) -> None:
        # the first slot: kind length at 29, kind, data length (2), data: version, m, t, p
        n = b[29]
        data = 29 + 1 + n + 2
        b[data + 1:data + 5] = (4 * 1024 * 1024).to_bytes(4, "big")

    _edit(store_dir, huge_memory)
    _check(store_dir, credlock.KeyUnavailable, "out-of-range argon2id parameters",
           passphrase="right", reason="malformed-slot")


def test_store_path_is_a_directory_or_symlink(store_dir: Path, tmp_path: Path) -> None:
    _make(store_dir)
    (store_dir / "credentials.sealed").unlink()
    (store_dir / "credentials.sealed").mkdir()
    _check(store_dir, credlock.StoreIOError, "not a regular file", io_kind="not-a-regular-file")

    other = tmp_path / "s2"
    _make(other)
    elsewhere = tmp_path / "elsewhere"
    (other / "credentials.sealed").rename(elsewhere)
    (other / "credentials.sealed").symlink_to(elsewhere)
    h = sha256_file(elsewhere)
    with credlock.Store.open(other) as s:
        for name, call in _calls(s):
            with pytest.raises(credlock.StoreIOError) as e:
                call()
            assert e.value.io_kind == "not-a-regular-file", name
            assert "symbolic link" in str(e.value) or "not a regular file" in str(e.value)
    assert sha256_file(elsewhere) == h
    assert (other / "credentials.sealed").is_symlink()


def test_unreadable_errors_share_a_base(store_dir: Path) -> None:
    _make(store_dir)
    _edit(store_dir, lambda b: b.__setitem__(-1, b[-1] ^ 1))
    with credlock.Store.open(store_dir) as s:
        with pytest.raises(credlock.StoreUnreadable) as e:
            s.list()
        assert "credentials.sealed.bak" in e.value.recommendation
