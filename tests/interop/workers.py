"""A Python worker for the cross-language tests: `write STORE NAME K` or `storm STORE SECONDS BASE_URL`."""
import json, sys, time, urllib.request, urllib.error

import credlock


def main() -> None:
    mode, store = sys.argv[1], sys.argv[2]
    s = credlock.Store.open(store, lock_timeout=120)
    if mode == "write":
        name, k = sys.argv[3], int(sys.argv[4])
        for i in range(k):
            s.put(name, {"access_token": f"{name}-{i}"})
            s.put("shared", {"access_token": f"{name}-{i}"})
            # Read someone else's writes while we are at it: must always decode.
            s.list()
        print(json.dumps({"ok": True}))
    elif mode == "storm":
        seconds, base = float(sys.argv[3]), sys.argv[4]
        deadline, calls, rejected, failed = time.monotonic() + seconds, 0, 0, 0

        def call(token: str) -> bool:
            req = urllib.request.Request(base + "/resource", headers={"Authorization": "Bearer " + token})
            try:
                urllib.request.urlopen(req, timeout=10).read()
                return True
            except urllib.error.HTTPError:
                return False

        while time.monotonic() < deadline:
            token = s.token("acme", min_valid=1)
            if not call(token):
                # The 401 path: refresh only if the stored token is still the refused one.
                rejected += 1
                if not call(s.refresh("acme", rejected=token).token):
                    failed += 1
            calls += 1
        print(json.dumps({"calls": calls, "rejected": rejected, "failed": failed}))


main()
