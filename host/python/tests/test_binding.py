"""What the native binding adds: threads sharing one Store truly in parallel beside other
processes, asyncio calls that never block the loop, internal errors and lock timeouts that
leave the process and its locks sound, and the exception built from the Rust report."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import credlock
from conftest import RUST_CLI, held_lock, rust

WORKER = str(Path(__file__).with_name("worker.py"))
THREADS = 16


def _env(store: Path) -> dict:
    e = {k: v for k, v in os.environ.items() if not k.startswith("CREDLOCK_")}
    e["CREDLOCK_STORE"] = str(store)
    e["CREDLOCK_LOCK_TIMEOUT"] = "60"
    return e


def test_threads_and_processes_lose_no_write(store_dir: Path, tmp_path: Path) -> None:
    """16 threads of this process on one Store, with Python and Rust processes beside them,
    each writing its own tenant and a shared one: every acknowledged put is there."""
    own, shared_each = 8, 2
    go = tmp_path / "go"
    env = _env(store_dir)
    py = [subprocess.Popen([sys.executable, WORKER, "write", str(store_dir), str(go), f"proc-{i}",
                            str(own), str(shared_each)],
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
          for i in range(2)]
    rs = [subprocess.Popen(["bash", "-c", 'while [ ! -e "$GO" ]; do sleep 0.005; done; '
                            'for i in $(seq 1 $N); do echo "{\\"access_token\\":\\"$NAME-$i\\"}" '
                            '| "$CLI" put "$NAME" || exit 1; done'],
                           env=dict(env, GO=str(go), CLI=str(RUST_CLI), NAME=f"rust-{i}", N=str(own)),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
          for i in range(2)]
    store = credlock.Store.open(store_dir, lock_timeout=60)
    receipts: list = []
    errors: list = []
    start = threading.Barrier(THREADS + 1)

    def writer(i: int) -> None:
        try:
            start.wait()
            for n in range(own):
                r = store.put(f"thread-{i}", {"access_token": f"thread-{i}-{n}"})
                receipts.append((f"thread-{i}", r.revision, r.generation))
            for n in range(shared_each):
                r = store.put("shared", {"access_token": f"shared-thread-{i}-{n}"})
                receipts.append(("shared", r.revision, r.generation))
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    go.touch()
    start.wait()
    for t in threads:
        t.join(120)
    assert not errors, errors
    for p in py:
        out, err = p.communicate(timeout=120)
        o = json.loads(out)
        assert "error" not in o, o
        receipts += [tuple(r) for r in o["receipts"]]
    for p in rs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    # Every revision of a tenant acknowledged once: no two puts were given the same state.
    # (Several puts may share a write, and so a generation: group commit.)
    revisions = [(t, rev) for t, rev, _ in receipts]
    assert len(revisions) == len(set(revisions))
    summary = {t.tenant: t.revision for t in store.list()}
    for i in range(THREADS):
        assert summary[f"thread-{i}"] == own
        assert store.token(f"thread-{i}", 0) == f"thread-{i}-{own - 1}"
    for i in range(2):
        assert summary[f"proc-{i}"] == own and summary[f"rust-{i}"] == own
    assert summary["shared"] == (THREADS + 2) * shared_each
    final = store.info().generation
    assert max(g for _, _, g in receipts) <= final <= len(receipts) + 2 * own


def test_refresh_storm_of_threads_and_processes_spends_each_refresh_token_once(
        store_dir: Path, tmp_path: Path, oauth) -> None:
    """16 threads and Python and Rust processes all find the token expired, three expiries in
    a row (each of a fresh grant at the real server): one refresh per expiry, no refresh token
    presented twice, everyone gets the new token."""
    stale = oauth.expired_grant()
    rust(store_dir, "put", "acme", input=json.dumps(stale))
    store = credlock.Store.open(store_dir, lock_timeout=60, http_timeout=30)
    for expiry in range(1, 4):
        # The refresh is slow, so that everyone finds it in flight.
        oauth.fault("slow", delay_ms=200)
        go = tmp_path / f"go-{expiry}"
        env = _env(store_dir)
        py = [subprocess.Popen([sys.executable, WORKER, "token", str(store_dir), str(go), "acme"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
              for _ in range(2)]
        rs = [subprocess.Popen(["bash", "-c", 'while [ ! -e "$GO" ]; do sleep 0.005; done; '
                                'exec "$CLI" token acme --min-valid 60'],
                               env=dict(env, GO=str(go), CLI=str(RUST_CLI)),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                  for _ in range(2)]
        tokens: list = []
        errors: list = []
        start = threading.Barrier(THREADS + 1)

        def reader() -> None:
            try:
                start.wait()
                tokens.append(store.token_info("acme", min_valid=60))
            except BaseException as e:  # noqa: BLE001
                errors.append(e)

        threads = [threading.Thread(target=reader) for _ in range(THREADS)]
        for t in threads:
            t.start()
        time.sleep(0.8)  # the processes are up and waiting
        go.touch()
        start.wait()
        for t in threads:
            t.join(60)
        assert not errors, errors
        values = [t.token for t in tokens]
        assert sum(t.refreshed for t in tokens) <= 1
        for p in py:
            out, _ = p.communicate(timeout=60)
            o = json.loads(out)
            assert "error" not in o, o
            values.append(o["token"])
        for p in rs:
            out, err = p.communicate(timeout=60)
            assert p.returncode == 0, err
            values.append(out.strip())
        assert len(set(values)) == 1 and values[0] != stale["access_token"], len(set(values))
        assert oauth.resource(values[0])
        stats = oauth.stats()
        assert (stats["refresh_requests"], stats["refresh_successes"]) == (expiry, expiry), stats
        assert (stats["duplicate_presentations"], stats["invalid_grant"]) == (0, 0), stats
        # The next round is a new expiry.
        if expiry < 3:
            stale = oauth.expired_grant()
            store.put("acme", stale)


def test_event_loop_keeps_running_while_token_async_waits_for_a_lock(store_dir: Path) -> None:
    """Another process holds the store lock: `await token_async` waits without blocking the
    loop (a 20 ms timer keeps firing), then raises LockTimeout after about its timeout."""
    with credlock.Store.open(store_dir) as s:
        s.put("acme", {"access_token": "x"})
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent("""
            import fcntl, os, sys, time
            fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
            print("held", flush=True)
            sys.stdin.read()
        """), str(store_dir / "credentials.lock")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        store = credlock.Store.open(store_dir, lock_timeout=1.0)

        async def main() -> tuple:
            ticks: list = []
            stop = asyncio.Event()

            async def timer() -> None:
                while not stop.is_set():
                    ticks.append(time.monotonic())
                    await asyncio.sleep(0.02)

            task = asyncio.create_task(timer())
            started = time.monotonic()
            try:
                with pytest.raises(credlock.LockTimeout) as e:
                    await store.token_async("acme", min_valid=0)
            finally:
                stop.set()
                await task
            return e.value, time.monotonic() - started, ticks

        err, waited, ticks = asyncio.run(main())
        assert err.lock == "store" and 900 <= err.waited_ms < 3000
        assert 0.9 <= waited < 3.0
        assert len(ticks) >= 30, len(ticks)  # ~50 expected in 1 s
        gaps = [b - a for a, b in zip(ticks, ticks[1:])]
        assert max(gaps) < 0.25, max(gaps)
    finally:
        holder.stdin.close()
        holder.wait(10)
    # The lock is free again: the async calls work.

    async def after() -> None:
        st = credlock.Store.open(store_dir)
        assert await st.token_async("acme", 0) == "x"
        await st.put_async("beta", {"access_token": "b"})
        assert [t.tenant for t in await st.list_async()] == ["acme", "beta"]
        assert await st.delete_async("beta") is True
        assert (await st.info_async()).tenants == 1

    asyncio.run(after())


def test_async_calls_run_concurrently(store_dir: Path) -> None:
    with credlock.Store.open(store_dir) as s:
        s.put("acme", {"access_token": "x"})

        async def main() -> list:
            return await asyncio.gather(*(s.token_async("acme", 0) for _ in range(50)))

        assert asyncio.run(main()) == ["x"] * 50


def test_lock_timeout_in_process_then_the_store_works(store_dir: Path) -> None:
    """A lock held elsewhere in this very process (another open file description): the call
    waits about its timeout, raises LockTimeout, and the process and Store carry on."""
    with credlock.Store.open(store_dir, lock_timeout=0.5) as s:
        s.put("acme", {"access_token": "x"})
        with held_lock(store_dir / "credentials.lock"):
            t = time.monotonic()
            with pytest.raises(credlock.LockTimeout) as e:
                s.put("acme", {"access_token": "y"})
            elapsed = time.monotonic() - t
            assert 0.45 <= elapsed < 2.0
            assert e.value.waited_ms >= 450 and e.value.code == "lock-timeout"
            assert e.value.exit_code == 5 and isinstance(e.value, TimeoutError)
            assert "lock" in str(e.value) and e.value.recommendation
        s.put("acme", {"access_token": "z"})
        assert s.token("acme", 0) == "z"


def test_a_panic_inside_a_call_is_an_internal_error_and_frees_the_lock(store_dir: Path) -> None:
    """A bug inside the host during a write (a failpoint that panics just before the rename,
    with the exclusive store lock held): InternalError with the Rust report's advice, the
    process lives on, the lock is released, nothing half-written, the next call works."""
    code = textwrap.dedent("""
        import fcntl, json, os, sys
        import credlock
        store = sys.argv[1]
        s = credlock.Store.open(store, lock_timeout=0.5)
        s.put("acme", {"access_token": "before"})   # hit 1 of the failpoint: passes
        out = {}
        try:
            s.put("acme", {"access_token": "lost"})  # hit 2: panics
        except credlock.InternalError as e:
            out["error"] = [type(e).__name__, e.code, str(e), e.recommendation, e.exit_code]
        fd = os.open(os.path.join(store, "credentials.lock"), os.O_RDWR)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free again
        os.close(fd)
        out["token"] = s.token("acme", 0)
        s.put("acme", {"access_token": "after"})
        out["after"] = s.token("acme", 0)
        print(json.dumps(out))
    """)
    env = dict(os.environ, CREDLOCK_FAILPOINTS="replace:before-rename@2=panic")
    p = subprocess.run([sys.executable, "-c", code, str(store_dir)], env=env,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout.strip().splitlines()[-1])
    name, code_, message, rec, exit_code = out["error"]
    assert name == "InternalError" and code_ == "internal" and exit_code == 10
    assert "internal error" in message and "failpoint" in message
    assert rec == "this is a bug in credlock; please report it"
    assert out["token"] == "before" and out["after"] == "after"


def test_errors_are_built_from_the_rust_report(store_dir: Path) -> None:
    """Same message and advice as the CLI, the class by code, the fields as attributes."""
    with credlock.Store.open(store_dir) as s:
        with pytest.raises(credlock.NotFound) as e:
            s.token("nobody")
        assert e.value.tenant == "nobody" and e.value.code == "not-found"
        assert isinstance(e.value, LookupError)
        with pytest.raises(credlock.InvalidTenant) as e2:
            s.put("bad name!", {"access_token": "x"})
        assert e2.value.reason and isinstance(e2.value, ValueError)
        with pytest.raises(credlock.InvalidOptions):
            s.token("nobody", min_valid=-1)
    r = rust(store_dir, "token", "nobody", check=False)
    assert str(e.value) in r.stderr and e.value.recommendation in r.stderr
    assert r.code == e.value.exit_code


def test_a_store_is_shared_by_threads_after_fork(store_dir: Path) -> None:
    """The child of a fork gets a Store that starts afresh, even while the parent's threads
    were using it: a pre-forking server opens the store, then forks its workers. Forty forks
    in the middle of another thread's calls; before the child kept nothing of the parent's
    pool, key cache and runtime, about one in twenty-five hung on a lock that thread held."""
    s = credlock.Store.open(store_dir)
    s.put("acme", {"access_token": "parent"})
    stop = threading.Event()

    def busy() -> None:
        while not stop.is_set():
            s.token("acme", 0)

    t = threading.Thread(target=busy)
    t.start()
    try:
        for i in range(40):
            pid = os.fork()
            if pid == 0:
                try:
                    ok = s.token("acme", 0) == "parent"
                    s.put(f"child-{i}", {"access_token": "c"})
                    s.close()
                    os._exit(0 if ok else 1)
                except BaseException:
                    os._exit(2)
            deadline = time.monotonic() + 30
            while True:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    break
                if time.monotonic() > deadline:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                    raise AssertionError(f"fork {i}: the child hung")
                time.sleep(0.005)
            # A child ended by a signal is a negative code here, not exit 0 (WEXITSTATUS reads 0).
            assert os.waitstatus_to_exitcode(status) == 0, f"fork {i}"
    finally:
        stop.set()
        t.join()
    assert s.token("child-39", 0) == "c"


def test_closed_store_and_default_dir() -> None:
    d = credlock.default_store_dir()
    assert d is None or d.name == "credlock"


def test_results_and_settings_cross_by_name(store_dir: Path, tmp_path: Path) -> None:
    """Each native result is a dict of exactly its dataclass's fields (the Rust type's
    `Serialize`, not positions), and `Store.open`'s keywords reach `credlock::OpenOptions` by
    name: a timeout JSON cannot carry still gets the message that names the setting."""
    import dataclasses

    from credlock import _credlock

    def fields(name: str) -> set:
        return {f.name for f in dataclasses.fields(getattr(credlock, name))}

    with credlock.Store.open(store_dir, lock_timeout=2.5, http_timeout=7) as s:
        assert (s.lock_timeout_ms, s.http_timeout_ms) == (2500, 7000)
        n = s._n
        assert set(n.put("acme", '{"access_token": "a", "expires_in": 60}')) == fields("WriteReceipt")
        assert set(n.token("acme", 0.0)) == fields("AccessToken")
        assert set(n.set_attachment("acme", "reg", "v")) == fields("WriteReceipt")
        assert [set(t) for t in n.list()] == [fields("TenantSummary")]
        assert set(n.info()) == fields("StoreInfo")
        assert [set(k) for k in n.slots()] == [fields("KeySlotInfo")]
        report = n.import_tokens('{"b": {"access_token": "b"}, "k": "an API key"}', None, False)
        assert set(report) | {"source_removed", "kept_reason"} == fields("ImportReport")
        assert [set(x) for x in report["skipped"]] == [{"tenant", "reason"}]
        assert set(n.logout("b", True)) == fields("LogoutReport")
        assert n.pending_logins() == []
        src = tmp_path / "token.json"
        src.write_text('{"access_token": "f"}')
        assert set(n.import_file(str(src), "f", False, True)) == fields("ImportReport")
        assert set(n.recover(True)) == fields("RecoverReport")

    for seconds in (float("inf"), float("nan")):
        with pytest.raises(credlock.InvalidOptions, match="the lock timeout"):
            credlock.Store.open(store_dir, lock_timeout=seconds)
    with pytest.raises(credlock.InvalidOptions, match="unknown field `lock_timout`"):
        _credlock.NativeStore(json.dumps({"lock_timout": 1}))


def test_a_store_path_need_not_be_utf8(tmp_path: Path) -> None:
    """The settings cross as JSON, which must be UTF-8; the paths go beside it as OS paths,
    so a directory whose name is not UTF-8 (a surrogate escape in Python) still works."""
    store = tmp_path / "st\udcff"
    with credlock.Store.open(store, key_file=tmp_path / "key\udcfe") as s:
        s.put("acme", {"access_token": "a"})
        assert s.token("acme") == "a"
    assert sorted(os.listdir(tmp_path)) == ["key\udcfe", "st\udcff"]
