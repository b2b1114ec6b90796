"""Logging in through the binding against the real OAuth server (tests/oauth-server): the
prompt reaches a Python callback (with the GIL, while the login waits without it), the
tokens are stored so that `token` and `logout` work, and a pending login is reported as
such. Guards the binding's conversions; the flows themselves are tested in Rust."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from typing import Iterator, List

import pytest

import credlock

SERVER = Path(__file__).resolve().parents[3] / "tests" / "oauth-server"
SCOPE = "openid offline_access api"


@pytest.fixture
def issuer(tmp_path: Path) -> Iterator[str]:
    port_file = tmp_path / "oauth"
    env = {**os.environ, "ACCESS_TTL_SECONDS": "60"}
    subprocess.run(["bash", str(SERVER / "start.sh"), str(port_file)], check=True, env=env)
    try:
        yield port_file.read_text().strip()
    finally:
        subprocess.run(["bash", str(SERVER / "stop.sh"), f"{port_file}.pid"], check=False)


def approve(issuer: str, user_code: str) -> None:
    req = urllib.request.Request(
        f"{issuer}/test/device",
        data=json.dumps({"user_code": user_code}).encode(),
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(req, timeout=10).read()


def test_device_login_calls_back_stores_and_logs_out(store_dir: Path, issuer: str) -> None:
    prompts: List[credlock.LoginPrompt] = []

    def on_prompt(p: credlock.LoginPrompt) -> None:
        prompts.append(p)
        threading.Thread(target=approve, args=(issuer, p.user_code)).start()

    with credlock.Store.open(store_dir) as s:
        r = s.login("acme", issuer=issuer, client_id="device-app", scope=SCOPE, on_prompt=on_prompt)
        assert [p.kind for p in prompts] == ["device"]
        assert prompts[0].user_code and prompts[0].url.endswith("/device")
        assert not prompts[0].joined and not r.joined
        assert r.refreshable  # offline_access was asked for, and granted
        assert r.token.revision == 1
        assert s.token("acme") == r.token.token
        assert s.pending_logins() == []
        out = s.logout("acme")
        assert (out.revocation, out.deleted) == ("revoked", True)
        with pytest.raises(credlock.NotFound):
            s.token("acme")


def test_token_during_a_pending_login_says_so(store_dir: Path, issuer: str) -> None:
    codes: List[str] = []
    with credlock.Store.open(store_dir) as s:
        result: List[object] = []
        t = threading.Thread(
            target=lambda: result.append(
                s.login("acme", issuer=issuer, client_id="device-app", scope=SCOPE,
                        on_prompt=lambda p: codes.append(p.user_code or ""))
            )
        )
        t.start()
        deadline = time.monotonic() + 30
        while not codes and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [p.tenant for p in s.pending_logins()] == ["acme"]
        with pytest.raises(credlock.LoginFailed) as e:
            s.token("acme")
        assert e.value.case == "pending" and e.value.exit_code == 12
        approve(issuer, codes[0])
        t.join(30)
        assert len(result) == 1
        assert s.token("acme")
