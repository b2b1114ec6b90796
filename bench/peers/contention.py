"""N processes x K read-modify-write updates of one JSON file under a peer library's lock.

Usage: contention.py LIB N K DIR  ->  prints {"ops_per_s": ..., "ops_per_s_with_start": ..., "lost": ...}
Each update: take the lock, read the JSON map, increment this worker's counter, write it
back the way the library's users do, release. As credlock-bench's own workers do, each worker
first imports its library and makes one uncounted update, then waits at a barrier: the clock
starts when all are ready, so this measures updates racing for one lock, not start-up
(`ops_per_s_with_start` is timed from the first spawn). `lost` counts updates missing at the end.
"""
import json, os, sys, time
from multiprocessing import Barrier, Process


def updater(lib, d, name):
    """One update under LIB's lock, as its users write it."""
    path = os.path.join(d, "state.json")
    if lib == "msal":
        # msal-extensions' own persisted cache: its lock plus its file persistence.
        from msal_extensions import FilePersistence, CrossPlatLock
        persistence = FilePersistence(path)

        def update():
            with CrossPlatLock(path + ".lockfile"):
                try:
                    data = json.loads(persistence.load() or "{}")
                except Exception:
                    data = {}
                data[name] = data.get(name, 0) + 1
                persistence.save(json.dumps(data))
        return update
    if lib == "filelock":
        from filelock import FileLock
        lock = FileLock(path + ".lock")
    else:
        import portalocker
        lock = portalocker.Lock(path + ".lock", timeout=120, fail_when_locked=False)

    def update():
        with lock:
            try:
                with open(path) as f:
                    data = json.load(f)
            except (FileNotFoundError, json.JSONDecodeError):
                data = {}
            data[name] = data.get(name, 0) + 1
            tmp = path + ".tmp-%d" % os.getpid()
            with open(tmp, "w") as f:
                json.dump(data, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
    return update


def worker(lib, k, d, name, barrier):
    update = updater(lib, d, name)
    update()
    barrier.wait()
    for _ in range(k):
        update()


def main():
    lib, n, k, d = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    barrier = Barrier(n + 1)
    procs = [Process(target=worker, args=(lib, k, d, "w%d" % i, barrier)) for i in range(n)]
    spawned = time.monotonic()
    for p in procs:
        p.start()
    barrier.wait()
    go = time.monotonic()
    for p in procs:
        p.join()
    end = time.monotonic()
    try:
        with open(os.path.join(d, "state.json")) as f:
            data = json.load(f)
    except Exception:
        data = {}
    print(json.dumps({
        "ops_per_s": n * k / (end - go),
        "ops_per_s_with_start": n * k / (end - spawned),
        "lost": n * (k + 1) - sum(data.values()),
    }))


if __name__ == "__main__":
    main()
