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


def _presented_once(oauth) -> dict:
    """The server's counters, after checking that no refresh token was presented twice."""
    stats = oauth.stats()
    assert (stats["duplicate_presentations"], stats["grants_revoked"]) == (0, 0), stats
    return stats


def test_refresh_when_expiring(store_dir: Path, oauth) -> None:
    with credlock.Store.open(store_dir) as s:
        stale = oauth.expired_grant("conf-post")
        s.put("acme", stale)
        t = s.token_info("acme", min_valid=60)
        assert t.refreshed and t.token != stale["access_token"] and oauth.resource(t.token)
        stats = _presented_once(oauth)
        # client_secret_post: the secret in the form, as the tenant asked.
        assert (stats["refresh_successes"], stats["by_auth_method"]) == (
            1, {"client_secret_post": 1}), stats
        assert s.token("acme", min_valid=60) == t.token  # fresh now: no second refresh
        assert oauth.stats()["refresh_requests"] == 1
        forced = s.refresh("acme")
        assert forced.refreshed and forced.token != t.token
        assert oauth.stats()["refresh_requests"] == 2
        # A 401 on an old token: the stored one is newer, so no refresh.
        again = s.refresh("acme", rejected=t.token)
        assert not again.refreshed and again.token == forced.token
        assert oauth.stats()["refresh_requests"] == 2
        by_hash = s.refresh("acme", rejected_sha256=hashlib.sha256(forced.token.encode()).hexdigest())
        assert by_hash.refreshed and oauth.resource(by_hash.token)
        stats = _presented_once(oauth)
        assert (stats["refresh_requests"], stats["refresh_successes"]) == (3, 3), stats


def test_threads_sharing_one_store_refresh_once(store_dir: Path, oauth) -> None:
    s = credlock.Store.open(store_dir)
    other = credlock.Store.open(store_dir)  # a second Store in the same process
    s.put("acme", oauth.expired_grant())
    oauth.fault("slow", delay_ms=200)  # the refresh is in flight while the others arrive
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
    assert not errors and len(set(results)) == 1 and len(results) == 6
    assert oauth.resource(results[0])
    stats = _presented_once(oauth)
    assert (stats["refresh_requests"], stats["refresh_successes"]) == (1, 1), stats


def test_endpoint_errors(store_dir: Path, oauth) -> None:
    with credlock.Store.open(store_dir) as s:
        # A wrong client secret: the server's own invalid_client, after a 503 page.
        s.put("acme", oauth.expired_grant(client_secret="SECRET-CS"))
        oauth.fault("http503_html")
        with pytest.raises(credlock.EndpointError) as e:
            s.token("acme")
        assert (e.value.reason, e.value.status) == ("server", 503)
        with pytest.raises(credlock.EndpointError) as e:
            s.token("acme")
        assert (e.value.reason, e.value.error) == ("oauth", "invalid_client")
        assert e.value.error_description  # the server's words, whatever they are
        assert "SECRET" not in str(e.value)
        # A refresh token the server revoked: invalid_grant, and a re-login is needed.
        gone = oauth.expired_grant()
        s.put("gone", gone)
        oauth.revoke(gone["refresh_token"])
        with pytest.raises(credlock.ReauthNeeded):
            s.token("gone")
        presented = oauth.stats()["refresh_requests"]
        with pytest.raises(credlock.ReauthNeeded):  # remembered: never presented again
            s.token("gone")
        assert oauth.stats()["refresh_requests"] == presented
        assert {t.tenant: t.needs_reauth for t in s.list()}["gone"]
        # The one presentation seen twice is acme's after the 503 page, which the server
        # answered without looking at the token.
        assert oauth.stats()["duplicate_presentations"] == 1


def test_connect_and_interrupted(store_dir: Path, oauth) -> None:
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    with credlock.Store.open(store_dir, http_timeout=2) as s:
        s.put("down", oauth.expired_grant(token_endpoint=f"http://127.0.0.1:{port}/t"))
        with pytest.raises(credlock.EndpointError) as e:
            s.token("down")
        assert (e.value.reason, e.value.transport) == ("transport", "connect")
        assert not e.value.request_may_have_arrived
        # The server takes the request and closes the connection without a reply.
        s.put("drop", oauth.expired_grant())
        oauth.fault("hang", hold_ms=100)
        with pytest.raises(credlock.EndpointError) as e:
            s.token("drop")
        assert e.value.transport == "interrupted" and e.value.request_may_have_arrived
        # The refresh token may have been spent: never presented blindly again.
        with pytest.raises(credlock.RefreshOutcomeUnknown):
            s.token("drop")
        stats = _presented_once(oauth)
        assert stats["refresh_requests"] == 1, stats
        # Plain http off loopback is refused when stored, not at the first refresh.
        with pytest.raises(credlock.InvalidTokenResponse) as refused:
            s.put("far", oauth.expired_grant(token_endpoint="http://192.0.2.1/token"))
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
    """No token, client secret or passphrase in any repr or in the text of any error a
    refresh can meet. Each error must really be raised, by its own tenant: a text that was
    never produced proves nothing."""
    docs = {
        "fresh": oauth.grant(),
        "down": oauth.expired_grant(),
        "client": oauth.expired_grant(client_secret="SECRET-CS"),  # the server says invalid_client
        "drop": oauth.expired_grant(),
        "revoked": oauth.expired_grant(),
    }
    secrets = ["SECRET-CS", "SECRET-PASS"]
    for d in docs.values():
        secrets += [d["access_token"], d["refresh_token"]]
    oauth.revoke(docs["revoked"]["refresh_token"])
    texts = []

    def caught(cls, call, *args) -> None:
        with pytest.raises(cls) as e:
            call(*args)
        texts.extend([str(e.value), repr(e.value), e.value.recommendation])

    with credlock.Store.open(store_dir, passphrase="SECRET-PASS", _kdf=FAST) as s:
        for tenant, doc in docs.items():
            s.put(tenant, doc)
        texts += [repr(s), repr(s.list()), repr(s.info()), repr(s.token_info("fresh", 0))]
        oauth.fault("http503_html")
        caught(credlock.EndpointError, s.refresh, "down")
        caught(credlock.EndpointError, s.refresh, "client")
        oauth.fault("hang", hold_ms=100)
        caught(credlock.EndpointError, s.refresh, "drop")
        caught(credlock.RefreshOutcomeUnknown, s.refresh, "drop")
        caught(credlock.ReauthNeeded, s.refresh, "revoked")
    assert oauth.stats()["refresh_requests"] == 4
    with credlock.Store.open(store_dir, passphrase="SECRET-PASS-WRONG") as s:
        caught(credlock.KeyUnavailable, s.list)
    blob = "\n".join(texts)
    for secret in secrets:
        assert secret not in blob


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
        # A child ended by a signal is a negative code here, not exit 0 (WEXITSTATUS reads 0).
        assert os.waitstatus_to_exitcode(status) == 0
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


def test_a_one_shot_token_imports_nothing_heavy(store_dir: Path) -> None:
    """A process that opens the store and prints one token (a git helper, an `exec` wrapper)
    pays for every module it imports: `pathlib` alone (with `re`, `enum` and `urllib.parse`)
    cost ~10 ms, `dataclasses` and `typing` more. None of them is imported on that path."""
    import subprocess
    import sys

    with credlock.Store.open(store_dir) as s:
        s.put("acme", {"access_token": "one-shot", "expires_in": 3600})
    code = (
        "import sys, credlock\n"
        "s = credlock.Store.open(sys.argv[1])\n"
        "print(s.token('acme'))\n"
        "heavy = {'pathlib', 'typing', 'dataclasses', 'json', 're', 'asyncio'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, os.fspath(store_dir)],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()
    assert out == ["one-shot", "[]"], out
