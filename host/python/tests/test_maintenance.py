"""Key slots, rekey, recover, quarantine and import through the Python host.

The failures these guard against: a slot change or a rekey that drops a way into the store
(or leaves none), a refused change that still touches the file, a rekey that keeps the old
key's backup around, a recovery that deletes the damaged file or re-presents a refresh token
that may have been spent, a quarantine that replaces a file, and an import that removes a
token file it did not fully import (or one that changed since it was read).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Callable, Dict, List, NamedTuple, Optional

import pytest

import credlock
from conftest import FAST_KDF_ARGS, sha256_file

FAST = credlock.KdfParams(**FAST_KDF_ARGS)
FAR = 4102444800  # 2100-01-01: tokens that never expire during a test

class _Slot(NamedTuple):
    kind: str
    data: bytes


def _header(raw: bytes):
    """(header length, data key id, slots) of a store file (FORMAT.md, version 1)."""
    h = int.from_bytes(raw[10:12], "big")
    slots, at = [], 29
    for _ in range(raw[28]):
        kind = raw[at + 1:at + 1 + raw[at]].decode()
        at += 1 + raw[at]
        n = int.from_bytes(raw[at:at + 2], "big")
        slots.append(_Slot(kind, raw[at + 2:at + 2 + n]))
        at += 2 + n
    assert at == h - 12
    return h, raw[12:28], slots



def _tok(access: str, refresh: Optional[str] = None) -> dict:
    t = {"access_token": access, "expires_at": FAR}
    if refresh is not None:
        t["refresh_token"] = refresh
    return t


def _snapshot(store_dir: Path) -> Dict[str, Optional[str]]:
    return {p.name: sha256_file(p) for p in sorted(store_dir.iterdir()) if p.is_file()}


def _both_slots(store_dir: Path, key_file: Path, passphrase: str = "right") -> None:
    """A store with a key-file slot and a passphrase slot, three tenants, and a backup."""
    with credlock.Store.open(store_dir, passphrase, key_file=key_file, _kdf=FAST) as s:
        for name in ("a", "b", "c"):
            s.put(name, _tok(f"at-{name}", f"rt-{name}"))
        assert s.info().slot_kinds == ("key-file", "passphrase")


# ----- the files import: quarantine -----


def test_add_a_passphrase_slot_then_open_with_only_the_passphrase(store_dir: Path, tmp_path: Path) -> None:
    with credlock.Store.open(store_dir, _kdf=FAST) as s:
        assert s.slots() == []  # an absent store has none
        s.put("acme", _tok("at-1"))
        key_id = s.info().key_id
        (one,) = s.slots()
        key_file_id = (store_dir / "key").read_text().split()[1]
        assert (one.index, one.kind, one.describe) == (0, "key-file", f"key file {key_file_id}")
        slots = s.add_slot("passphrase", passphrase="new pass")
        assert [(x.index, x.kind) for x in slots] == [(0, "key-file"), (1, "passphrase")]
        assert (slots[1].describe, slots[1].durable) == ("argon2id m=64 KiB t=1 p=1", True)
        assert s.slots() == slots
        assert s.info().key_id == key_id  # the same data key, one more way to it
        assert "new pass" not in repr(slots)
    # Only the passphrase: no key file at all (an explicit path that does not exist).
    nowhere = tmp_path / "no-such-key"
    with credlock.Store.open(store_dir, "new pass", key_file=nowhere) as s:
        assert s.token("acme", 0) == "at-1"
    with credlock.Store.open(store_dir, "not it", key_file=nowhere) as s:
        with pytest.raises(credlock.KeyUnavailable) as e:
            s.list()
        assert e.value.reason == "wrong-passphrase"
    assert not nowhere.exists()


def test_slots_that_cannot_be_made_change_nothing(store_dir: Path) -> None:
    with credlock.Store.open(store_dir, _kdf=FAST) as s:
        s.put("acme", _tok("x"))
        before = _snapshot(store_dir)
        cases = [
            (lambda: s.add_slot("key-file"), "the store already has a slot for this key file"),
            (lambda: s.add_slot("passphrase"), "passphrase: no new passphrase was given"),
            (lambda: s.add_slot("tpm2"), "tpm2: unknown slot kind"),
        ]
        for call, detail in cases:
            with pytest.raises(credlock.KeyUnavailable) as e:
                call()
            assert (e.value.code, e.value.reason) == ("key", "slot-unavailable"), detail
            assert detail in e.value.detail and detail in str(e.value)
            assert e.value.recommendation
        with pytest.raises(ValueError):
            s.add_slot("key-file", passphrase="only for passphrase slots")
        with pytest.raises(credlock.InvalidOptions):
            s.add_slot("passphrase", passphrase="")
        assert _snapshot(store_dir) == before


def test_add_a_key_file_slot_to_a_passphrase_store(store_dir: Path, tmp_path: Path) -> None:
    with credlock.Store.open(store_dir, "pw", _kdf=FAST) as s:
        s.put("acme", _tok("x"))
        assert s.info().slot_kinds == ("passphrase",)
    assert not (store_dir / "key").exists()
    kf = tmp_path / "explicit.key"
    with credlock.Store.open(store_dir, "pw", key_file=kf, _kdf=FAST) as s:
        slots = s.add_slot("key-file")
        assert [x.kind for x in slots] == ["passphrase", "key-file"]
        assert slots[1].describe == f"key file {kf.read_text().split()[1]}"
    assert not (store_dir / "key").exists()
    with credlock.Store.open(store_dir, key_file=kf) as s:  # the key file alone opens it
        assert s.token("acme", 0) == "x"


def test_remove_slot_refusals_and_removal(store_dir: Path, tmp_path: Path) -> None:
    with credlock.Store.open(store_dir) as s:
        with pytest.raises(credlock.SlotChangeRefused) as e:
            s.remove_slot(0)  # an absent store has no slot 0
        assert (e.value.code, e.value.reason, e.value.index) == ("slot-change", "no-such-slot", 0)
        s.put("acme", _tok("x"))
        before = _snapshot(store_dir)
        with pytest.raises(credlock.SlotChangeRefused) as e:
            s.remove_slot(0)
        assert e.value.reason == "last-slot" and "only key slot" in str(e.value)
        with pytest.raises(credlock.SlotChangeRefused) as e:
            s.remove_slot(7)
        assert (e.value.reason, e.value.index) == ("no-such-slot", 7)
        assert "no key slot 7" in str(e.value) and isinstance(e.value, credlock.Refused)
        for bad in (-1, True, 1.0, 2**32):
            with pytest.raises((TypeError, OverflowError)):
                s.remove_slot(bad)  # type: ignore[arg-type]
        assert _snapshot(store_dir) == before

    kf = tmp_path / "k"
    _both_slots(tmp_path / "both", kf)
    assert (tmp_path / "both" / "credentials.sealed.bak").exists()
    with credlock.Store.open(tmp_path / "both", "right", key_file=kf) as s:
        assert [x.kind for x in s.remove_slot(0)] == ["passphrase"]
    # The backup still held the key-file slot: it goes with it.
    assert not (tmp_path / "both" / "credentials.sealed.bak").exists()
    with credlock.Store.open(tmp_path / "both", key_file=kf) as s:
        with pytest.raises(credlock.KeyUnavailable) as e:
            s.list()
        assert (e.value.reason, e.value.slot_kinds) == ("no-matching-slot", ["passphrase"])
    with credlock.Store.open(tmp_path / "both", "right", key_file=tmp_path / "none") as s:
        assert s.token("a", 0) == "at-a"


# ----- slots of kinds this host does not make -----


def test_rekey_makes_a_new_key_from_the_same_sources(store_dir: Path, tmp_path: Path) -> None:
    kf = tmp_path / "k"
    _both_slots(store_dir, kf)
    key_file_text = kf.read_text()
    with credlock.Store.open(store_dir, "right", key_file=kf, _kdf=FAST) as s:
        old = s.info()
        old_slots = s.slots()
        old_header = _header((store_dir / "credentials.sealed").read_bytes())[2]
        new = s.rekey()
        assert new.key_id != old.key_id and len(new.key_id) == 32
        assert (new.generation, new.tenants, new.slot_kinds) == (old.generation + 1, 3, old.slot_kinds)
        assert s.slots() == old_slots  # the same key file id, the same argon2id parameters
        new_header = _header((store_dir / "credentials.sealed").read_bytes())[2]
        assert all(a.data != b.data for a, b in zip(old_header, new_header))  # new salt, nonces
        assert s.info() == new
    # The backup was sealed under the old key: gone.
    assert not (store_dir / "credentials.sealed.bak").exists()
    assert kf.read_text() == key_file_text  # the same key file, untouched
    with credlock.Store.open(store_dir, key_file=kf) as s:  # the old key file alone
        assert [s.token(n, 0) for n in "abc"] == ["at-a", "at-b", "at-c"]
    with credlock.Store.open(store_dir, "right", key_file=tmp_path / "none") as s:  # the passphrase alone
        assert s.info().key_id == new.key_id and s.token("b", 0) == "at-b"


def test_rekey_with_a_wrong_passphrase_changes_nothing(store_dir: Path, tmp_path: Path) -> None:
    kf = tmp_path / "k"
    _both_slots(store_dir, kf)
    before = _snapshot(store_dir)
    # The key file opens the store; the passphrase given would not open its slot.
    with credlock.Store.open(store_dir, "wrong", key_file=kf, _kdf=FAST) as s:
        assert len(s.list()) == 3
        with pytest.raises(credlock.KeyUnavailable) as e:
            s.rekey()
        assert (e.value.code, e.value.reason) == ("key", "wrong-passphrase")
    # No passphrase at all: the passphrase slot cannot be re-made, and is not dropped.
    with credlock.Store.open(store_dir, key_file=kf) as s:
        with pytest.raises(credlock.KeyUnavailable) as e:
            s.rekey()
        assert e.value.reason == "slot-unavailable" and e.value.detail.startswith("passphrase:")
    # Another key file: the passphrase opens the store, the key-file slot cannot be re-made.
    other = tmp_path / "other-key"
    with credlock.Store.open(tmp_path / "other", key_file=other) as o:
        o.init()
    with credlock.Store.open(store_dir, "right", key_file=other, _kdf=FAST) as s:
        assert len(s.list()) == 3
        with pytest.raises(credlock.KeyUnavailable) as e:
            s.rekey()
        assert e.value.reason == "slot-unavailable"
        assert kf.read_text().split()[1] in e.value.detail
    assert _snapshot(store_dir) == before


# ----- recover and quarantine -----


def _flip_last_byte(store_dir: Path) -> bytes:
    p = store_dir / "credentials.sealed"
    b = bytearray(p.read_bytes())
    b[-1] ^= 1
    p.write_bytes(bytes(b))
    return bytes(b)


def test_recover_quarantines_a_corrupt_store_and_restores_the_backup(store_dir: Path) -> None:
    with credlock.Store.open(store_dir) as s:
        s.put("a", _tok("at-a", "rt-a"))
        s.put("b", _tok("at-b", "rt-b"))  # the backup now holds only a
        generation = s.info().generation
        damaged = _flip_last_byte(store_dir)
        with pytest.raises(credlock.Corrupt) as e:
            s.list()
        assert "recover" in e.value.recommendation and "credentials.sealed.bak" in e.value.recommendation
        r = s.recover()
        assert r.quarantined_as is not None
        assert re.fullmatch(r"credentials\.sealed\.corrupt-\d{13}", r.quarantined_as), r
        assert (store_dir / r.quarantined_as).read_bytes() == damaged  # moved, never rewritten
        assert (r.tenants, r.refresh_unknown) == (1, ("a",))
        assert r.generation > generation  # above anything the store had
        (a,) = s.list()
        # a's refresh token may have been spent after the backup: never presented silently.
        assert (a.tenant, a.needs_reauth) == ("a", True)
        assert s.token("a", 0) == "at-a"
        # Now the store opens: recovering again would discard writes.
        before = _snapshot(store_dir)
        with pytest.raises(credlock.RecoverRefused) as e:
            s.recover()
        assert (e.value.code, e.value.reason) == ("recover", "store-readable")
        assert "force" in e.value.recommendation
        assert _snapshot(store_dir) == before


def test_recover_with_force_rolls_back_a_readable_store(store_dir: Path) -> None:
    with credlock.Store.open(store_dir) as s:
        s.put("a", _tok("at-a", "rt-a"))
        s.put("b", _tok("at-b", "rt-b"))
        s.put("a", _tok("at-a2", "rt-a"))  # the backup holds a (rt-a) and b
        current = (store_dir / "credentials.sealed").read_bytes()
        r = s.recover(force=True)
        assert (store_dir / r.quarantined_as).read_bytes() == current
        # Both refresh tokens are still the current ones in the replaced store: none marked.
        assert (r.tenants, r.refresh_unknown) == (2, ())
        assert s.token("a", 0) == "at-a"


def test_recover_refuses_without_a_usable_backup(store_dir: Path) -> None:
    with credlock.Store.open(store_dir) as s:
        s.put("a", _tok("x"))  # the first write: no backup yet
        assert not (store_dir / "credentials.sealed.bak").exists()
        _flip_last_byte(store_dir)
        before = _snapshot(store_dir)
        with pytest.raises(credlock.RecoverRefused) as e:
            s.recover()
        assert e.value.reason == "no-backup"
        assert _snapshot(store_dir) == before
    other = store_dir.parent / "other"
    with credlock.Store.open(other) as s:
        s.put("a", _tok("x"))
        s.put("b", _tok("y"))
        _flip_last_byte(other)
        bak = other / "credentials.sealed.bak"
        bak.write_bytes(bak.read_bytes()[:-1])
        before = _snapshot(other)
        with pytest.raises(credlock.RecoverRefused) as e:
            s.recover()
        assert e.value.reason == "backup-unreadable" and "damaged" in e.value.detail
        assert _snapshot(other) == before


def test_quarantine_moves_only_an_unreadable_store(store_dir: Path) -> None:
    with credlock.Store.open(store_dir) as s:
        with pytest.raises(credlock.StoreIOError) as e:
            s.quarantine()  # nothing to move
        assert "no store file" in str(e.value)
        s.put("old", _tok("x"))
        with pytest.raises(credlock.RecoverRefused) as e:
            s.quarantine()
        assert e.value.reason == "store-readable"
        damaged = _flip_last_byte(store_dir)
        name = s.quarantine()
        assert re.fullmatch(r"credentials\.sealed\.corrupt-\d{13}", name)
        assert (store_dir / name).read_bytes() == damaged
        assert not (store_dir / "credentials.sealed").exists()
        # A new store can be made beside it, with the same key file.
        s.put("new", _tok("y"))
        assert [t.tenant for t in s.list()] == ["new"]
        assert (store_dir / name).read_bytes() == damaged


# ----- import -----

AUTH_JSON = {
    "anthropic": {"type": "oauth", "access": "at-agent", "refresh": "rt-agent", "expires": FAR * 1000 + 123},
    "openai": {"type": "api", "key": "sk-secret-api-key"},
}


def test_import_an_agent_auth_json_with_an_api_key_keeps_the_source(store_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "auth.json"
    src.write_text(json.dumps(AUTH_JSON))
    with credlock.Store.open(store_dir) as s:
        r = s.import_file(src, remove_source=True)
        assert (r.imported, [n for n, _ in r.skipped]) == (("anthropic",), ["openai"])
        assert "sk-secret" not in repr(r)
        assert (r.source_removed, r.kept_reason) == (False, "entries were skipped: openai")
        assert src.exists()
        t = s.token_info("anthropic", 0)
        assert (t.token, t.expires_at_ms) == ("at-agent", FAR * 1000)  # expires: ms, floored to s
        (summary,) = s.list()
        assert summary.has_refresh_token and r.generation == s.info().generation


def test_import_removes_the_source_once_durable(store_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "tokens.json"
    src.write_text(json.dumps({"anthropic": AUTH_JSON["anthropic"], "acme": _tok("at-acme")}))
    with credlock.Store.open(store_dir) as s:
        r = s.import_file(src, remove_source=True)
        assert (r.imported, r.skipped, r.source_removed, r.kept_reason) == (
            ("acme", "anthropic"), (), True, None)
        assert not src.exists()
        assert s.token("acme", 0) == "at-acme"

        # A single token response, named; existing tenants conflict unless replace.
        one = tmp_path / "one.json"
        one.write_text(json.dumps(_tok("at-acme-2")))
        before = _snapshot(store_dir)
        with pytest.raises(credlock.ImportConflict) as e:
            s.import_file(one, "acme", remove_source=True)
        assert (e.value.code, e.value.tenants) == ("import-conflict", ["acme"])
        assert one.exists() and _snapshot(store_dir) == before
        r = s.import_file(one, "acme", replace=True, remove_source=True)
        assert r.imported == ("acme",) and r.source_removed and not one.exists()
        assert s.token("acme", 0) == "at-acme-2" and s.list()[0].revision == 2

        # A single response needs its tenant named.
        with pytest.raises(credlock.InvalidTokenResponse):
            s.import_tokens(_tok("x"))
        with pytest.raises(credlock.InvalidTokenResponse) as e2:
            s.import_file(tmp_path / "missing.json")
        assert "missing.json" in str(e2.value)
        fifo = tmp_path / "fifo.json"
        os.mkfifo(fifo)
        with pytest.raises(credlock.InvalidTokenResponse):
            s.import_file(fifo)  # refused at once, never waited on


def test_import_keeps_a_source_that_changed_or_is_a_symlink(store_dir: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "auth.json"
    src.write_text(json.dumps({"anthropic": AUTH_JSON["anthropic"]}))
    newer = json.dumps({"anthropic": dict(AUTH_JSON["anthropic"], refresh="rt-rotated-by-agent")})
    # (A file rewritten between the read and the removal is kept: the Rust host's
    # source::remove_source, tested in host/tests/maintenance.rs, decides that for every binding.)
    with credlock.Store.open(store_dir) as s:
        link = tmp_path / "link.json"
        link.symlink_to(src)
        r = s.import_file(link, remove_source=True, replace=True)
        assert not r.source_removed and link.is_symlink() and src.exists()


def test_import_kinds_are_detected_or_named(store_dir: Path, tmp_path: Path) -> None:
    """The tools' files (README, "Import") through the binding: detected, or named with
    `kind`; an MSAL cache's account chosen with `account`; a file not of its kind refused
    naming the kind, nothing stored."""
    claude = {"claudeAiOauth": {"accessToken": "at-claude", "refreshToken": "rt-claude",
                                "expiresAt": FAR * 1000, "scopes": ["user:inference"]}}
    msal = {
        "RefreshToken": {k: {"home_account_id": f"{k}.tid", "environment": "login.example.com",
                             "credential_type": "RefreshToken", "client_id": "cli",
                             "secret": f"rt-{k}"} for k in ("alice", "bob")},
        "Account": {k: {"home_account_id": f"{k}.tid", "environment": "login.example.com",
                        "realm": "tid", "username": f"{k}@example.com"} for k in ("alice", "bob")},
    }
    with credlock.Store.open(store_dir) as s:
        r = s.import_tokens(claude, "claude")
        assert r.imported == ("claude",)
        assert s.token_info("claude", 0).expires_at_ms == FAR * 1000
        with pytest.raises(credlock.InvalidTokenResponse) as e:
            s.import_tokens({"access_token": "a"}, "x", kind="claude-code")
        assert "not Claude Code's .credentials.json" in str(e.value)
        with pytest.raises(credlock.InvalidTokenResponse) as e:
            s.import_tokens(msal, "azure")
        assert "several accounts" in str(e.value)
        src = tmp_path / "msal_token_cache.json"
        src.write_text(json.dumps(msal))
        r = s.import_file(src, "azure", kind="msal", account="bob@example.com")
        assert r.imported == ("azure",) and [n for n, _ in r.skipped] == ["alice@example.com/cli"]
        (azure,) = [t for t in s.list() if t.tenant == "azure"]
        assert azure.token_endpoint == "https://login.example.com/tid/oauth2/v2.0/token"
        assert [t.tenant for t in s.list()] == ["azure", "claude"]


def test_every_maintenance_call_has_its_async_twin(store_dir: Path) -> None:
    import asyncio

    async def run() -> None:
        with credlock.Store.open(store_dir) as s:
            assert await s.init_async()
            assert [x.kind for x in await s.slots_async()] == ["key-file"]
            with pytest.raises(credlock.SlotChangeRefused):
                await s.remove_slot_async(0)
            claude = {"claudeAiOauth": {"accessToken": "at-claude", "expiresAt": FAR * 1000}}
            assert (await s.import_tokens_async(claude, "claude")).imported == ("claude",)
            with pytest.raises(credlock.InvalidTokenResponse):
                await s.import_tokens_async(claude, "x", kind="codex")
            key_id = (await s.info_async()).key_id
            assert (await s.rekey_async()).key_id != key_id
            assert await s.pending_logins_async() == []
            with pytest.raises(credlock.RecoverRefused):
                await s.recover_async()
            with pytest.raises(credlock.RecoverRefused):
                await s.quarantine_async()
            assert s.token("claude", 0) == "at-claude"

    asyncio.run(run())
