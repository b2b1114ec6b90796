"""N processes x K read-modify-write updates of one JSON file under a peer library's lock.

Usage: contention.py LIB N K DIR  ->  prints {"ops_per_s": ..., "lost": ...}
Each update: take the lock, read the JSON map, increment this worker's counter, write it
back the way the library's users do, release. `lost` counts updates missing at the end.
"""
import json, os, sys, time
from multiprocessing import Process


def worker(lib, k, d, name):
    path = os.path.join(d, "state.json")
    if lib == "msal":
        # msal-extensions' own persisted cache: its lock plus its file persistence.
        from msal_extensions import FilePersistence, CrossPlatLock
        persistence = FilePersistence(path)
        for _ in range(k):
            with CrossPlatLock(path + ".lockfile"):
                try:
                    data = json.loads(persistence.load() or "{}")
                except Exception:
                    data = {}
                data[name] = data.get(name, 0) + 1
                persistence.save(json.dumps(data))
        return
    if lib == "filelock":
        from filelock import FileLock
        lock = FileLock(path + ".lock")
    else:
        import portalocker
        lock = portalocker.Lock(path + ".lock", timeout=120, fail_when_locked=False)
    for _ in range(k):
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


def main():
    lib, n, k, d = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    procs = [Process(target=worker, args=(lib, k, d, "w%d" % i)) for i in range(n)]
    t = time.monotonic()
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    elapsed = time.monotonic() - t
    try:
        with open(os.path.join(d, "state.json")) as f:
            data = json.load(f)
    except Exception:
        data = {}
    print(json.dumps({"ops_per_s": n * k / elapsed, "lost": n * k - sum(data.values())}))


if __name__ == "__main__":
    main()
