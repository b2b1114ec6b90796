"""Platform behaviour seen through the public API (the platform itself is the Rust host's):
lock files that are not what they should be, the token endpoint's deadline, redirects and
oversized replies."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import credlock


def test_refuses_a_symlinked_lock_file(store_dir: Path, tmp_path: Path) -> None:
    with credlock.Store.open(store_dir) as s:
        s.put("acme", {"access_token": "x"})
    target = tmp_path / "elsewhere"
    target.write_bytes(b"")
    lock = store_dir / "credentials.lock"
    lock.unlink()
    lock.symlink_to(target)
    with credlock.Store.open(store_dir) as s:
        with pytest.raises(credlock.CredlockError) as e:
            s.put("acme", {"access_token": "y"})
        assert not isinstance(e.value, credlock.InternalError), e.value
    assert lock.is_symlink() and target.read_bytes() == b""


def test_silence_after_connect_is_a_timeout_at_the_deadline(store_dir: Path, oauth) -> None:
    with credlock.Store.open(store_dir, http_timeout=0.5) as s:
        s.put("acme", oauth.expired_grant())
        oauth.fault("hang")  # the server reads the request and never answers
        t = time.monotonic()
        with pytest.raises(credlock.EndpointError) as e:
            s.token("acme")
        assert time.monotonic() - t < 3
        assert (e.value.reason, e.value.transport) == ("transport", "timeout")
        assert e.value.request_may_have_arrived is True
    assert oauth.stats()["faults_injected"] == {"hang": 1}


def test_redirects_are_not_followed_and_huge_replies_refused(store_dir: Path, oauth) -> None:
    with credlock.Store.open(store_dir) as s:
        s.put("acme", oauth.expired_grant())
        oauth.fault("redirect")
        with pytest.raises(credlock.EndpointError) as e:
            s.token("acme")
        assert (e.value.reason, e.value.status) == ("server", 302)
        oauth.fault("huge")
        with pytest.raises(credlock.EndpointError) as e:
            s.token("acme")
        assert e.value.transport == "reply-too-large"
        stats = oauth.stats()
        assert stats["faults_injected"] == {"redirect": 1, "huge": 1}, stats
        assert stats["refresh_successes"] == 0, stats
