"""Round trips through the component: the API, refresh, and the errors."""

from __future__ import annotations

import hashlib
import os
import stat
import threading
import time
from pathlib import Path

import pytest

import credlock
from conftest import FAST_KDF_ARGS, held_lock

FAST = credlock.KdfParams(**FAST_KDF_ARGS)


def test_round_trip(store_dir: Path) -> None:
    with credlock.Store.open(store_dir) as s:
        assert s.info().exists is False
        assert s.list() == []
        assert s.init() is True
        assert s.init() is False
        r = s.put("acme", {"access_token": "tok-1", "expires_in": 3600, "scope": "api"})
        assert r.revision == 1
        r2 = s.put("acme", '{"access_token": "tok-2", "expires_in": 3600}')
        assert (r2.revision, r2.generation) == (2, r.generation + 1)
        s.put("beta", b'{"access_token": "b", "token_type": "mac"}')
        assert s.token("acme") == "tok-2"
        t = s.token_info("acme", min_valid=0)
        assert (t.token, t.token_type, t.revision, t.refreshed) == ("tok-2", "Bearer", 2, False)
        assert t.expires_at_ms and abs(t.expires_at_ms - (time.time() + 3600) * 1000) < 60_000
        names = [x.tenant for x in s.list()]
        assert names == ["acme", "beta"]
        acme = s.list()[0]
        assert (acme.revision, acme.has_refresh_token, acme.needs_reauth) == (2, False, False)
        info = s.info()
        assert (info.exists, info.format_version, info.tenants, info.slot_kinds) == (
            True, 1, 2, ("key-file",))
        assert len(info.key_id) == 32
        assert s.delete("beta") is True
        assert s.delete("beta") is False
        with pytest.raises(credlock.NotFound) as e:
            s.token("beta")
        assert e.value.tenant == "beta" and isinstance(e.value, LookupError)
    # Files as FORMAT.md says.
    assert stat.S_IMODE(os.stat(store_dir).st_mode) == 0o700
    for name in ("credentials.sealed", "credentials.sealed.bak", "credentials.lock", "key"):
        assert stat.S_IMODE(os.stat(store_dir / name).st_mode) == 0o600, name
    assert (store_dir / "credentials.sealed").read_bytes()[:8] == b"CREDLOCK"
    assert not [p for p in os.listdir(store_dir) if p.startswith(".")]


def test_input_errors(store_dir: Path) -> None:
    with credlock.Store.open(store_dir) as s:
        with pytest.raises(credlock.InvalidTenant) as e:
            s.put("bad tenant/../x", {"access_token": "x"})
        assert isinstance(e.value, ValueError) and e.value.recommendation
        with pytest.raises(credlock.InvalidTokenResponse):
            s.put("acme", "{not json")
        with pytest.raises(credlock.InvalidTokenResponse):
            s.put("acme", {"token_type": "Bearer"})
        with pytest.raises(credlock.InvalidOptions):
            s.token("acme", min_valid=-1)
        with pytest.raises(TypeError):
            s.put("acme", 42)  # type: ignore[arg-type]
    with pytest.raises(credlock.InvalidOptions):
        credlock.Store.open(store_dir, lock_timeout=-1)
    with pytest.raises(credlock.InvalidOptions):
        credlock.Store.open(store_dir, passphrase="")


def test_expired_without_refresh(store_dir: Path) -> None:
    with credlock.Store.open(store_dir) as s:
        s.put("acme", {"access_token": "x", "expires_in": 100})
        assert s.token("acme", min_valid=40) == "x"
        # min_valid is capped at half the token's lifetime (a 100 s token is never "valid for
        # 60 more seconds" when just issued; the core does not make every call refresh).
        assert s.token("acme", min_valid=3600) == "x"
        s.put("acme", {"access_token": "x", "expires_at": int(time.time()) - 1})
        with pytest.raises(credlock.Expired) as e:
            s.token("acme", min_valid=0)
        assert isinstance(e.value, credlock.LoginRequired)


def test_closed_store(store_dir: Path) -> None:
    s = credlock.Store.open(store_dir)
    s.close()
    s.close()
    with pytest.raises(ValueError):
        s.list()


def _tenant(oauth, name="acme", **extra) -> dict:
    """A tenant whose access token has expired (so `token` must refresh it)."""
    return {"access_token": f"at-{name}-0", "refresh_token": oauth.grant(name),
            "expires_at": int(time.time()) - 5, "token_endpoint": oauth.url, "client_id": "cli",
            **extra}


def test_refresh_when_expiring(store_dir: Path, oauth) -> None:
    with credlock.Store.open(store_dir) as s:
        s.put("acme", _tenant(oauth, client_secret="SECRET-CS", client_auth="post"))
        t = s.token_info("acme", min_valid=60)
        assert t.refreshed and t.token.startswith("at-acme-")
        assert oauth.refreshes == 1
        form = oauth.requests[-1]["form"]
        assert form["grant_type"] == "refresh_token" and form["client_secret"] == "SECRET-CS"
        assert s.token("acme", min_valid=60) == t.token  # fresh now: no second refresh
        assert oauth.refreshes == 1
        forced = s.refresh("acme")
        assert forced.refreshed and forced.token != t.token and oauth.refreshes == 2
        # A 401 on an old token: the stored one is newer, so no refresh.
        again = s.refresh("acme", rejected=t.token)
        assert not again.refreshed and again.token == forced.token and oauth.refreshes == 2
        by_hash = s.refresh("acme", rejected_sha256=hashlib.sha256(forced.token.encode()).hexdigest())
        assert by_hash.refreshed and oauth.refreshes == 3
        assert oauth.reuses == 0


def test_threads_sharing_one_store_refresh_once(store_dir: Path, oauth) -> None:
    s = credlock.Store.open(store_dir)
    other = credlock.Store.open(store_dir)  # a second Store in the same process
    s.put("acme", _tenant(oauth))
    oauth.delay = 0.2
    results, errors = [], []

    def worker(store) -> None:
        try:
            results.append(store.token("acme", min_valid=60))
        except Exception as e:  # pragma: no cover
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(s if i % 2 else other,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(results)) == 1
    assert oauth.refreshes == 1 and oauth.reuses == 0


def test_endpoint_errors(store_dir: Path, oauth) -> None:
    with credlock.Store.open(store_dir) as s:
        s.put("acme", _tenant(oauth, client_secret="SECRET-CS"))
        oauth.mode = "server_error"
        with pytest.raises(credlock.EndpointError) as e:
            s.token("acme")
        assert (e.value.reason, e.value.status) == ("server", 503)
        oauth.mode = "invalid_client"
        with pytest.raises(credlock.EndpointError) as e:
            s.token("acme")
        assert (e.value.reason, e.value.error, e.value.error_description) == (
            "oauth", "invalid_client", "bad client")
        assert "SECRET" not in str(e.value) and "rt-" not in str(e.value)
        oauth.mode = "invalid_grant"
        with pytest.raises(credlock.ReauthNeeded):
            s.token("acme")
        oauth.mode = "ok"
        with pytest.raises(credlock.ReauthNeeded):  # remembered: never presented again
            s.token("acme")
        assert s.list()[0].needs_reauth
        assert oauth.reuses == 0


def test_connect_and_interrupted(store_dir: Path, oauth) -> None:
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    with credlock.Store.open(store_dir, http_timeout=2) as s:
        s.put("down", {**_tenant(oauth, "down"), "token_endpoint": f"http://127.0.0.1:{port}/t"})
        with pytest.raises(credlock.EndpointError) as e:
            s.token("down")
        assert (e.value.reason, e.value.transport) == ("transport", "connect")
        assert not e.value.request_may_have_arrived
        s.put("drop", _tenant(oauth, "drop"))
        oauth.mode = "drop"
        with pytest.raises(credlock.EndpointError) as e:
            s.token("drop")
        assert e.value.transport == "interrupted" and e.value.request_may_have_arrived
        oauth.mode = "ok"
        # The refresh token may have been spent: never presented blindly again.
        with pytest.raises(credlock.RefreshOutcomeUnknown):
            s.token("drop")
        assert oauth.reuses == 0
        # Plain http off loopback is refused when stored, not at the first refresh.
        with pytest.raises(credlock.InvalidTokenResponse) as refused:
            s.put("far", {**_tenant(oauth, "far"), "token_endpoint": "http://192.0.2.1/token"})
        assert "plain http" in str(refused.value)


def test_lock_timeout_names_the_lock(store_dir: Path) -> None:
    with credlock.Store.open(store_dir, lock_timeout=0.2) as s:
        s.put("acme", {"access_token": "x"})
        with held_lock(store_dir / "credentials.lock"):
            t = time.monotonic()
            with pytest.raises(credlock.LockTimeout) as e:
                s.put("acme", {"access_token": "y"})
            assert e.value.lock == "store" and 150 <= e.value.waited_ms < 2000
            assert time.monotonic() - t < 2
            with pytest.raises(credlock.LockTimeout):
                s.token("acme")  # readers take it shared: excluded by an exclusive holder
        assert s.token("acme", min_valid=0) == "x"


def test_passphrase_store(store_dir: Path) -> None:
    with credlock.Store.open(store_dir, passphrase="correct horse", _kdf=FAST) as s:
        s.put("acme", {"access_token": "x"})
        assert s.info().slot_kinds == ("passphrase",)
    assert not (store_dir / "key").exists()  # a passphrase without key_file: no key file
    with credlock.Store.open(store_dir, passphrase="Xyzzy-guess") as s:
        with pytest.raises(credlock.KeyUnavailable) as e:
            s.token("acme")
        assert e.value.reason == "wrong-passphrase"
        assert "Xyzzy" not in repr(s) and "Xyzzy" not in str(e.value)
    with credlock.Store.open(store_dir) as s:
        with pytest.raises(credlock.KeyUnavailable) as e:
            s.token("acme")
        assert (e.value.reason, e.value.slot_kinds) == ("no-matching-slot", ["passphrase"])
    assert not (store_dir / "key").exists()
    # With an explicit key file too, a new store gets both slots.
    other = store_dir.parent / "both"
    with credlock.Store.open(other, passphrase="pw", key_file=other / "mykey", _kdf=FAST) as s:
        s.put("acme", {"access_token": "x"})
        assert s.info().slot_kinds == ("key-file", "passphrase")
    with credlock.Store.open(other, key_file=other / "mykey") as s:
        assert s.token("acme", min_valid=0) == "x"


def test_environment_like_the_cli(store_dir: Path, monkeypatch) -> None:
    monkeypatch.setenv("CREDLOCK_STORE", str(store_dir))
    monkeypatch.setenv("CREDLOCK_PASSPHRASE", "from-env")
    monkeypatch.setenv("CREDLOCK_LOCK_TIMEOUT", "2.5")
    s = credlock.Store.open(_kdf=FAST)
    assert s.path == store_dir and s.lock_timeout_ms == 2500 and s.http_timeout_ms == 30_000
    s.put("acme", {"access_token": "x"})
    assert s.info().slot_kinds == ("passphrase",)
    s.close()
    monkeypatch.setenv("CREDLOCK_PASSPHRASE", "")  # empty: a mistake, refused as by the CLI
    with pytest.raises(credlock.InvalidOptions) as e:
        credlock.Store.open()
    assert "CREDLOCK_PASSPHRASE" in str(e.value)
    monkeypatch.delenv("CREDLOCK_PASSPHRASE")
    with credlock.Store.open() as s2:
        with pytest.raises(credlock.KeyUnavailable):
            s2.list()


def test_secrets_never_in_errors_or_reprs(store_dir: Path, oauth) -> None:
    secrets = ["SECRET-AT", "SECRET-CS", "SECRET-PASS"]
    with credlock.Store.open(store_dir, passphrase="SECRET-PASS", _kdf=FAST) as s:
        s.put("acme", {"access_token": "SECRET-AT", "refresh_token": oauth.grant(),
                       "expires_at": int(time.time()) - 5, "token_endpoint": oauth.url, "client_id": "c",
                       "client_secret": "SECRET-CS"})
        texts = [repr(s), repr(s.list()), repr(s.info()), repr(s.token_info("acme", 0))]
        for mode in ("server_error", "invalid_client", "drop", "invalid_grant"):
            oauth.mode = mode
            try:
                s.refresh("acme")
            except credlock.CredlockError as e:
                texts += [str(e), repr(e), e.recommendation]
    with credlock.Store.open(store_dir, passphrase="SECRET-PASS-WRONG") as s:
        try:
            s.list()
        except credlock.CredlockError as e:
            texts += [str(e), repr(e)]
    blob = "\n".join(texts)
    for secret in secrets:
        assert secret not in blob
    assert "rt-" not in blob


def test_a_store_keeps_working_in_a_forked_child(store_dir: Path) -> None:
    with credlock.Store.open(store_dir) as s:
        s.put("acme", {"access_token": "parent"})
        pid = os.fork()
        if pid == 0:
            try:
                s.put("child", {"access_token": "child"})
                os._exit(0 if s.token("acme", 0) == "parent" else 1)
            except BaseException:
                os._exit(2)
        _, status = os.waitpid(pid, 0)
        assert os.WEXITSTATUS(status) == 0
        assert s.token("child", 0) == "child"


def test_a_store_derives_its_passphrase_key_once(store_dir: Path) -> None:
    """argon2id runs once per Store (the key cache its threads share), and a wrong
    passphrase gets the specific error, never a cached key."""
    slow = credlock.KdfParams(m_cost_kib=64 * 1024, t_cost=3, p_cost=1)
    with credlock.Store.open(store_dir, passphrase="shared-pw", _kdf=slow) as s:
        s.put("acme", {"access_token": "x"})
    with credlock.Store.open(store_dir, passphrase="other-pw") as wrong:
        with pytest.raises(credlock.KeyUnavailable) as e:
            wrong.token("acme", 0)
        assert e.value.reason == "wrong-passphrase"
    with credlock.Store.open(store_dir) as none:
        with pytest.raises(credlock.KeyUnavailable):
            none.token("acme", 0)
    with credlock.Store.open(store_dir, passphrase="shared-pw") as again:
        t = time.perf_counter()
        assert again.token("acme", 0) == "x"
        derivation = time.perf_counter() - t
        t = time.perf_counter()
        assert again.token("acme", 0) == "x"
        # No second argon2id derivation in this Store.
        assert time.perf_counter() - t < derivation / 3


def test_refuses_a_store_locked_with_wasi_leases(tmp_path: Path) -> None:
    """Never two lock protocols on one store: the WASI build's lease files do not exclude flock."""
    store_dir = tmp_path / "store"
    store_dir.mkdir()
    (store_dir / "lock-protocol").write_text("wasi-lease\n")
    with credlock.Store.open(store_dir) as s:
        with pytest.raises(credlock.CredlockError) as err:
            s.list()
    assert "lease" in str(err.value)
    assert not (store_dir / "credentials.sealed").exists()


def test_claims_a_new_store_for_flock(tmp_path: Path) -> None:
    store_dir = tmp_path / "store"
    with credlock.Store.open(store_dir) as s:
        s.put("acme", {"access_token": "a"})
    assert (store_dir / "lock-protocol").read_text() == "flock\n"
