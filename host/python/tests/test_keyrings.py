"""Keyring slots from Python, against a real gnome-keyring on a private D-Bus session bus
(Secret Service) and the Linux kernel keyring, as host/tests/keyrings.rs does for the CLI.
Needs dbus-daemon, gnome-keyring-daemon, secret-tool and keyctl (scripts/setup.sh)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest

import credlock
from conftest import FAST_KDF_ARGS

FAST = credlock.KdfParams(**FAST_KDF_ARGS)


def _need(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed: run scripts/setup.sh")


class SecretService:
    """dbus-daemon + gnome-keyring-daemon --foreground --unlock, both ours, ended by pid."""

    def __init__(self, home: Path) -> None:
        self.home = home
        run = home / "run"
        run.mkdir(mode=0o700, parents=True)
        self.dbus = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--print-address=1"],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.address = self.dbus.stdout.readline().strip()
        assert self.address.startswith("unix:"), self.address
        self.env = dict(os.environ, DBUS_SESSION_BUS_ADDRESS=self.address, HOME=str(home),
                        XDG_RUNTIME_DIR=str(run))
        self.keyring = subprocess.Popen(
            ["gnome-keyring-daemon", "--foreground", "--unlock", "--components=secrets"],
            env=self.env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        self.keyring.stdin.write(b"test-login-password")
        self.keyring.stdin.close()
        deadline = time.monotonic() + 20
        while not self.ready():
            assert time.monotonic() < deadline, "the Secret Service did not appear on the bus"
            time.sleep(0.05)

    def ready(self) -> bool:
        out = subprocess.run(["dbus-send", "--session", "--print-reply",
                              "--dest=org.freedesktop.DBus", "/org/freedesktop/DBus",
                              "org.freedesktop.DBus.NameHasOwner", "string:org.freedesktop.secrets"],
                             env=self.env, capture_output=True, text=True)
        return "boolean true" in out.stdout

    def entries(self) -> int:
        out = subprocess.run(["secret-tool", "search", "--all", "service", "credlock"],
                             env=self.env, capture_output=True)
        text = (out.stdout + out.stderr).decode("utf-8", "replace")
        return sum(1 for line in text.splitlines()
                   if line.startswith("attribute.service = credlock"))

    def wipe(self) -> None:
        subprocess.run(["secret-tool", "clear", "service", "credlock"], env=self.env, check=True)
        assert self.entries() == 0

    def close(self) -> None:
        for p in (self.keyring, self.dbus):
            p.kill()
            p.wait()


@pytest.fixture
def secret_service(tmp_path: Path, monkeypatch) -> Iterator[SecretService]:
    _need("dbus-daemon", "dbus-send", "gnome-keyring-daemon", "secret-tool")
    ss = SecretService(tmp_path / "home")
    # The Rust host in this process finds the bus as any client does.
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", ss.address)
    yield ss
    ss.close()


def test_secret_service_slot_opens_the_store_alone_and_a_wiped_keyring_names_the_others(
        store_dir: Path, secret_service: SecretService) -> None:
    with credlock.Store.open(store_dir, keyring="secret-service", keyring_timeout=10) as s:
        s.put("acme", {"access_token": "at-secret-1", "expires_in": 3600})
        assert [x.kind for x in s.slots()] == ["keyring"]
        assert "secret-service entry credlock/" in s.slots()[0].describe
    assert not (store_dir / "key").exists(), "a keyring store gets no key file beside it"
    assert secret_service.entries() == 1
    # Opened by its keyring slot alone: no passphrase, no key file, no keyring named.
    with credlock.Store.open(store_dir) as s:
        assert s.token("acme", 0) == "at-secret-1"
        s.add_slot("passphrase", "correct horse")
        assert [x.kind for x in s.slots()] == ["keyring", "passphrase"]
    secret_service.wipe()
    before = (store_dir / "credentials.sealed").read_bytes()
    with credlock.Store.open(store_dir) as s:
        with pytest.raises(credlock.KeyUnavailable) as e:
            s.token("acme", 0)
        assert e.value.reason == "keyring-entry-missing"
        assert e.value.backend == "secret-service" and e.value.slot_kinds == ["passphrase"]
        assert "other slots: passphrase" in str(e.value) and e.value.recommendation
        assert e.value.exit_code == 6
        with pytest.raises(credlock.KeyUnavailable):
            s.put("acme", {"access_token": "replacement"})
    assert (store_dir / "credentials.sealed").read_bytes() == before
    assert secret_service.entries() == 0, "no key was minted"
    # The passphrase opens it; a new keyring slot replaces the dead one.
    with credlock.Store.open(store_dir, "correct horse", keyring="secret-service") as s:
        assert s.token("acme", 0) == "at-secret-1"
        s.add_slot("keyring")
        s.remove_slot(0)
        assert [x.kind for x in s.slots()] == ["passphrase", "keyring"]
    with credlock.Store.open(store_dir) as s:
        assert s.token("acme", 0) == "at-secret-1"


def _kernel_keyring_usable() -> bool:
    return subprocess.run(["keyctl", "get_persistent", "@s"], capture_output=True).returncode == 0


def test_kernel_keyring_slot_from_python(store_dir: Path) -> None:
    _need("keyctl")
    if not _kernel_keyring_usable():
        pytest.fail("the kernel's persistent keyring is not available (keyctl get_persistent @s)")
    # Volatile alone is refused for a new store, with nothing written.
    with credlock.Store.open(store_dir, keyring="keyutils") as s:
        with pytest.raises(credlock.CredlockError) as e0:
            s.put("acme", {"access_token": "at-kernel", "expires_in": 3600})
        assert e0.value.exit_code == 9, e0.value
    assert not (store_dir / "credentials.sealed").exists()
    with credlock.Store.open(store_dir, "pw", keyring="keyutils", _kdf=FAST) as s:
        s.put("acme", {"access_token": "at-kernel", "expires_in": 3600})
        slots = s.slots()
        assert [(x.kind, x.durable) for x in slots] == [("passphrase", True), ("kernel-keyring", False)]
        # Never only volatile slots unless asked.
        with pytest.raises(credlock.SlotChangeRefused) as e:
            s.remove_slot(0)
        assert e.value.reason == "only-volatile-left" and e.value.slot_kinds == ["kernel-keyring"]
        entry = slots[1].describe.split("credlock/")[1].split()[0]
    # Opened by the kernel keyring slot alone.
    with credlock.Store.open(store_dir) as s:
        assert s.token("acme", 0) == "at-kernel"
    # Wipe the entry (what a reboot does): KeyUnavailable naming the passphrase slot.
    wipe = ("P=$(keyctl get_persistent @s) && "
            f"K=$(keyctl search \"$P\" user 'keyring:{entry}@credlock') && keyctl invalidate \"$K\"")
    subprocess.run(["keyctl", "session", "-", "sh", "-c", wipe], check=True,
                   stdout=subprocess.DEVNULL)
    with credlock.Store.open(store_dir) as s:
        with pytest.raises(credlock.KeyUnavailable) as e:
            s.token("acme", 0)
        assert e.value.reason == "keyring-entry-missing" and e.value.slot_kinds == ["passphrase"]
    with credlock.Store.open(store_dir, "pw") as s:
        assert s.token("acme", 0) == "at-kernel"
