"""Unit tests of the platform pieces, without the component."""

from __future__ import annotations

import errno
import os
import socket
import stat
import threading
import time
from pathlib import Path

import pytest

from credlock import _endpoint, _files, _keys, _locks
from credlock._keys import KdfParams, Keyring, KeySlot, KeySources
from credlock._layout import Layout, ensure_private_dir
from credlock._ptypes import FileError, KeyError_, LockError, SealError, TransportError, io_error
from conftest import FAST_KDF_ARGS

FAST = KdfParams(**FAST_KDF_ARGS)

# ----- layout -----


def test_layout_names_match_the_rust_host(tmp_path: Path) -> None:
    l = Layout(tmp_path)
    assert l.store.name == "credentials.sealed"
    assert l.backup.name == "credentials.sealed.bak"
    assert l.store_lock.name == "credentials.lock"
    assert l.default_key_file.name == "key"
    tid = "ab" * 32
    assert l.refresh_lock(tid) == tmp_path / "locks" / f"refresh-{tid}.lock"
    for bad in ("AB" * 32, "ab" * 31, "../" + "a" * 61, "g" * 64):
        with pytest.raises(ValueError):
            l.refresh_lock(bad)


def test_private_dir(tmp_path: Path) -> None:
    d = tmp_path / "a" / "b"
    ensure_private_dir(d)
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
    ensure_private_dir(d)  # idempotent
    f = tmp_path / "file"
    f.write_bytes(b"")
    with pytest.raises(OSError):
        ensure_private_dir(f)


# ----- locks -----


def test_exclusive_excludes_times_out_then_hands_over(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    held = _locks.acquire(path, "exclusive", 100)
    t = time.monotonic()
    with pytest.raises(LockError) as e:
        _locks.acquire(path, "shared", 150)
    assert e.value.timeout_ms is not None and e.value.timeout_ms >= 140
    assert time.monotonic() - t < 2
    got = {}

    def waiter() -> None:
        g = _locks.acquire(path, "exclusive", 10_000)
        got["at"] = time.monotonic()
        g.release()

    th = threading.Thread(target=waiter)
    th.start()
    time.sleep(0.05)
    released = time.monotonic()
    held.release()
    th.join()
    assert got["at"] - released < 0.5  # woken by the kernel, not by polling
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert path.exists()  # never deleted


def test_shared_locks_coexist_and_release_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "s.lock"
    a = _locks.acquire(path, "shared", 0)
    b = _locks.acquire(path, "shared", 0)
    with pytest.raises(LockError) as e:
        _locks.acquire(path, "exclusive", 0)
    assert e.value.timeout_ms == 0
    a.release()
    a.release()
    del b  # dropping a guard releases
    _locks.acquire(path, "exclusive", 0).release()


def test_abandoned_waiter_releases_what_it_wins(tmp_path: Path) -> None:
    path = tmp_path / "w.lock"
    held = _locks.acquire(path, "exclusive", 0)
    with pytest.raises(LockError):
        _locks.acquire(path, "exclusive", 50)  # its helper thread still waits
    held.release()
    # The helper wins now, sees it was abandoned and lets go at once.
    deadline = time.monotonic() + 2
    while True:
        try:
            _locks.acquire(path, "exclusive", 0).release()
            break
        except LockError:
            assert time.monotonic() < deadline, "an abandoned waiter kept the lock"
            time.sleep(0.01)


def test_lock_excludes_other_processes(tmp_path: Path) -> None:
    path = tmp_path / "p.lock"
    held = _locks.acquire(path, "exclusive", 0)
    pid = os.fork()
    if pid == 0:  # child: must not get it
        try:
            _locks.acquire(path, "shared", 100)
            os._exit(1)
        except LockError as e:
            os._exit(0 if e.timeout_ms is not None else 2)
    _, status = os.waitpid(pid, 0)
    held.release()
    assert os.WEXITSTATUS(status) == 0


def test_refuses_a_symlinked_lock_file(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_bytes(b"")
    link = tmp_path / "l.lock"
    link.symlink_to(target)
    with pytest.raises(LockError) as e:
        _locks.acquire(link, "exclusive", 0)
    assert e.value.io is not None and e.value.io.kind == "not-a-regular-file"


# ----- files -----


def test_replace_keeps_backup_and_is_private(tmp_path: Path) -> None:
    t, b = tmp_path / "s", tmp_path / "s.bak"
    _files.replace(t, b"one", b)
    assert not b.exists()
    _files.replace(t, b"two", b)
    assert t.read_bytes() == b"two" and b.read_bytes() == b"one"
    assert stat.S_IMODE(os.stat(t).st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s", "s.bak"]  # no temp left


def test_read(tmp_path: Path) -> None:
    p = tmp_path / "f"
    assert _files.read(p) is None
    p.write_bytes(b"abc")
    assert _files.read(p) == b"abc"
    p.write_bytes(b"x" * 101)
    with pytest.raises(FileError) as e:
        _files.read(p, 100)
    assert e.value.too_large == 101


def test_refuses_symlinks_directories_and_fifos(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.write_bytes(b"x")
    link = tmp_path / "link"
    link.symlink_to(real)
    for op in (lambda: _files.read(link), lambda: _files.replace(link, b"y")):
        with pytest.raises(FileError) as e:
            op()
        assert e.value.io is not None and e.value.io.kind == "not-a-regular-file"
    assert real.read_bytes() == b"x"
    d = tmp_path / "dir"
    d.mkdir()
    with pytest.raises(FileError) as e:
        _files.read(d)
    assert e.value.io is not None and e.value.io.kind == "not-a-regular-file"
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(FileError) as e:
        _files.read(fifo)  # must not hang
    assert e.value.io is not None and e.value.io.kind == "not-a-regular-file"


def test_remove(tmp_path: Path) -> None:
    p = tmp_path / "r"
    _files.remove(p)
    p.write_bytes(b"")
    _files.remove(p)
    assert not p.exists()


def test_create_exclusive_once_even_when_racing(tmp_path: Path) -> None:
    p = tmp_path / "k"
    assert _files.create_exclusive(p, b"a")
    assert not _files.create_exclusive(p, b"b")
    assert p.read_bytes() == b"a"
    q = tmp_path / "k2"
    results = []
    threads = [
        threading.Thread(target=lambda i=i: results.append(_files.create_exclusive(q, b"%d" % i)))
        for i in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 1
    assert sorted(x.name for x in tmp_path.iterdir()) == ["k", "k2"]


def test_io_error_mapping() -> None:
    m = lambda code: io_error(OSError(code, os.strerror(code)), "/p").kind  # noqa: E731
    assert m(errno.ENOSPC) == "no-space"
    assert m(errno.EDQUOT) == "no-space"
    assert m(errno.EACCES) == "permission-denied"
    assert m(errno.EPERM) == "permission-denied"
    assert m(errno.EROFS) == "permission-denied"
    assert m(errno.ELOOP) == "not-a-regular-file"
    assert m(errno.EIO) == "other"
    assert "/p" in io_error(OSError(errno.EIO, "boom"), "/p").detail


def test_replace_reports_no_space_and_leaves_the_old_file(tmp_path: Path, monkeypatch) -> None:
    t = tmp_path / "s"
    _files.replace(t, b"old", tmp_path / "s.bak")

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_files.os, "fsync", full)
    with pytest.raises(FileError) as e:
        _files.replace(t, b"new", tmp_path / "s.bak")
    assert e.value.io is not None and e.value.io.kind == "no-space"
    monkeypatch.undo()
    assert t.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]


# ----- keys -----


def _ring(tmp_path: Path, passphrase=None, key_file=True, create=True) -> Keyring:
    return Keyring(
        KeySources(
            passphrase=passphrase,
            key_file=tmp_path / "key" if key_file else None,
            create_key_file=create,
            kdf=FAST,
        )
    )


def test_key_file_and_passphrase_slots_open_independently(tmp_path: Path) -> None:
    key = _ring(tmp_path, b"pw").create()
    assert [s.kind for s in key.slots] == ["key-file", "passphrase"]
    assert [len(s.data) for s in key.slots] == [77, 89]
    ct = key.seal(b"\1" * 12, b"aad", b"hello")
    only_file = _ring(tmp_path)
    assert only_file.unlock(key.id, key.slots).open(b"\1" * 12, b"aad", ct) == b"hello"
    only_pass = _ring(tmp_path, b"pw", key_file=False)
    assert only_pass.unlock(key.id, key.slots).open(b"\1" * 12, b"aad", ct) == b"hello"
    with pytest.raises(SealError) as e:
        key.open(b"\1" * 12, b"aad!", ct)
    assert e.value.kind == "authentication-failed"
    with pytest.raises(SealError) as e:
        key.seal(b"\1" * 11, b"", b"")
    assert e.value.kind == "bad-nonce"
    text = (tmp_path / "key").read_text()
    parts = text.split()
    assert text.endswith("\n") and parts[0] == "credlock-key-file-v1"
    assert len(parts[1]) == 32 and len(parts[2]) == 64
    assert stat.S_IMODE(os.stat(tmp_path / "key").st_mode) == 0o600


def test_specific_errors_and_no_implicit_key(tmp_path: Path) -> None:
    kf = tmp_path / "key"
    key = _ring(tmp_path, b"pw", key_file=False).create()
    with pytest.raises(KeyError_) as e:
        _ring(tmp_path, b"nope", key_file=False).unlock(key.id, key.slots)
    assert e.value.kind == "wrong-passphrase"
    with pytest.raises(KeyError_) as e:
        _ring(tmp_path).unlock(key.id, key.slots)
    assert (e.value.kind, e.value.payload) == ("no-matching-slot", ["passphrase"])
    assert not kf.exists(), "unlock must never create a key file"

    ka = _ring(tmp_path).create()
    kf.unlink()
    b = _ring(tmp_path)
    with pytest.raises(KeyError_) as e:
        b.unlock(ka.id, ka.slots)
    assert (e.value.kind, e.value.payload) == ("no-matching-slot", ["key-file"])
    b.create()  # a new key file appears only through create
    with pytest.raises(KeyError_) as e:
        _ring(tmp_path).unlock(ka.id, ka.slots)
    assert e.value.kind == "wrong-key-file"
    with pytest.raises(KeyError_) as e:
        Keyring(KeySources(key_file=None, create_key_file=False)).create()
    assert e.value.kind == "no-key-source"


def test_unknown_slots_are_skipped_and_malformed_ones_named(tmp_path: Path) -> None:
    key = _ring(tmp_path).create()
    slots = [KeySlot("os-keyring", b"whatever")] + key.slots
    assert _ring(tmp_path).unlock(key.id, slots).id == key.id
    with pytest.raises(KeyError_) as e:
        _ring(tmp_path).unlock(key.id, [KeySlot("key-file", b"\2" + key.slots[0].data[1:])])
    assert e.value.kind == "malformed-slot"
    with pytest.raises(KeyError_) as e:
        _ring(tmp_path).unlock(b"short", key.slots)
    assert e.value.kind == "malformed-slot"


def test_argon2_parameter_bounds(tmp_path: Path) -> None:
    key = _ring(tmp_path, b"pw", key_file=False).create()
    data = bytearray(key.slots[0].data)
    for m, t, p in ((4, 1, 1), (2 * 1024 * 1024, 1, 1), (64, 65, 1), (64, 1, 17), (64, 0, 1)):
        data[1:13] = KdfParams(m, t, p).encode()
        with pytest.raises(KeyError_) as e:
            _ring(tmp_path, b"pw", key_file=False).unlock(key.id, [KeySlot("passphrase", bytes(data))])
        assert e.value.kind == "malformed-slot"
        assert "out-of-range" in str(e.value.payload)


def test_key_file_parsing(tmp_path: Path) -> None:
    good = _keys.key_file_text(b"\1" * 16, b"\2" * 32)
    assert _keys.parse_key_file(good).id == b"\1" * 16
    assert _keys.parse_key_file(good.upper().replace(b"CREDLOCK-KEY-FILE-V1", b"credlock-key-file-v1")).key == b"\2" * 32
    for bad in (b"", b"\xff\xfe", b"credlock-key-file-v1 00 11", good + b" extra",
                good.replace(b"v1", b"v2"), b"credlock-key-file-v1 " + b"0" * 32 + b" " + b"z" * 64):
        with pytest.raises(KeyError_) as e:
            _keys.parse_key_file(bad)
        assert e.value.kind == "wrong-key-file"


def test_unlocked_keys_are_cached(tmp_path: Path) -> None:
    key = _ring(tmp_path, b"pw", key_file=False).create()
    ring = _ring(tmp_path, b"pw", key_file=False)
    first = ring.unlock(key.id, key.slots)
    t = time.perf_counter()
    assert ring.unlock(key.id, key.slots) is first
    assert time.perf_counter() - t < 0.01


# ----- token endpoint -----


def test_bad_urls() -> None:
    for url in ("http://example.com/token", "ftp://127.0.0.1/token", "https:///token",
                "http://127.0.0.1:99999/x", "not a url"):
        with pytest.raises(TransportError) as e:
            _endpoint.post(url, "", None, 200)
        assert e.value.kind == "bad-url", url
    assert _endpoint.is_loopback("127.0.0.1") and _endpoint.is_loopback("[::1]")
    assert _endpoint.is_loopback("localhost") and not _endpoint.is_loopback("10.0.0.1")


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_connection_refused_is_connect() -> None:
    with pytest.raises(TransportError) as e:
        _endpoint.post(f"http://127.0.0.1:{_free_port()}/token", "", None, 2000)
    assert e.value.kind == "connect"


def test_dns_failure_is_connect(monkeypatch) -> None:
    def fail(*a, **k):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fail)
    with pytest.raises(TransportError) as e:
        _endpoint.post("https://auth.example/token", "", None, 2000)
    assert (e.value.kind, e.value.detail) == ("connect", "host not found")


def _one_shot_server(behaviour) -> str:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    def run() -> None:
        conn, _ = srv.accept()
        try:
            behaviour(conn)
        finally:
            conn.close()
            srv.close()

    threading.Thread(target=run, daemon=True).start()
    return f"http://127.0.0.1:{srv.getsockname()[1]}/token"


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0])
    while len(body) < length:
        body += conn.recv(65536)
    return data


def test_silence_after_connect_is_timeout() -> None:
    url = _one_shot_server(lambda c: (_read_request(c), time.sleep(1.5)))
    t = time.monotonic()
    with pytest.raises(TransportError) as e:
        _endpoint.post(url, "a=b", None, 300)
    assert e.value.kind == "timeout"
    assert time.monotonic() - t < 1.2


def test_trickling_reply_still_ends_at_the_deadline() -> None:
    def trickle(c: socket.socket) -> None:
        _read_request(c)
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
        try:
            for _ in range(40):
                c.sendall(b"x")
                time.sleep(0.05)
        except OSError:
            pass  # the client gave up, as it should

    url = _one_shot_server(trickle)
    t = time.monotonic()
    with pytest.raises(TransportError) as e:
        _endpoint.post(url, "", None, 400)
    assert e.value.kind == "timeout"
    assert time.monotonic() - t < 1.5


def test_closed_after_request_is_interrupted() -> None:
    url = _one_shot_server(lambda c: _read_request(c))
    with pytest.raises(TransportError) as e:
        _endpoint.post(url, "a=b", None, 2000)
    assert e.value.kind == "interrupted"


def test_request_shape_status_and_no_redirects(oauth) -> None:
    oauth.mode = "redirect"
    r = _endpoint.post(oauth.url, "grant_type=x&y=z", "Basic abc", 2000)
    assert r.status == 302  # a reply, not followed
    req = oauth.requests[-1]
    assert req["form"] == {"grant_type": "x", "y": "z"}
    assert req["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    assert req["headers"]["Accept"] == "application/json"
    assert req["headers"]["Authorization"] == "Basic abc"
    assert len(oauth.requests) == 1
    oauth.mode = "server_error"
    r = _endpoint.post(oauth.url, "", None, 2000)
    assert (r.status, r.content_type, r.body) == (503, "text/html", b"<html>down</html>")
    oauth.mode = "huge"
    with pytest.raises(TransportError) as e:
        _endpoint.post(oauth.url, "", None, 5000)
    assert e.value.kind == "reply-too-large"


def test_untrusted_tls_certificate_is_connect(tmp_path: Path) -> None:
    """A TLS handshake failure happens before anything is sent: `connect`, not `interrupted`."""
    import datetime
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
            .sign(key, hashes.SHA256()))
    (tmp_path / "c.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "k.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp_path / "c.pem", tmp_path / "k.pem")

    def handshake(conn: socket.socket) -> None:
        try:
            ctx.wrap_socket(conn, server_side=True).close()
        except (ssl.SSLError, OSError):
            pass

    url = _one_shot_server(handshake).replace("http://127.0.0.1", "https://localhost")
    with pytest.raises(TransportError) as e:
        _endpoint.post(url, "", None, 3000)
    assert e.value.kind == "connect" and "TLS" in (e.value.detail or "")
