#!/usr/bin/env bash
# The mixed adapters test (tests/adapters-mixed/test_mixed.py): one tenant used at once by
# processes of every adapter (Python httpx, the Python and Node MCP SDKs, Go
# golang.org/x/oauth2, Rust rmcp) and the CLI, against the real OAuth server. Needs
# host/python's venv (host/python/run-tests.sh makes it, with httpx and mcp), host/node's
# node_modules (host/node/run-tests.sh) and Go with Debian's golang.org/x/oauth2
# (scripts/setup.sh): scripts/test.sh runs the bindings' suites first.
set -euo pipefail
cd "$(dirname "$0")/../.."
root="$PWD"
cargo build -p credlock -p credlock-capi -p credlock-node
lib="$root/target/debug"
[ -d host/node/node_modules/@modelcontextprotocol/sdk ] || { echo "host/node/node_modules is missing: run host/node/run-tests.sh" >&2; exit 1; }
mkdir -p host/node/build
ln -f "$lib/libcredlock_node.so" host/node/build/credlock.node 2>/dev/null \
  || cp "$lib/libcredlock_node.so" host/node/build/credlock.node

# The rmcp adapter's test binary, whose main is also the worker (RMCP_WORKER=calls).
rmcp_worker="$(cargo test -p credlock --features rmcp --test rmcp_adapter --no-run --message-format=json \
  | host/python/.venv/bin/python -c 'import json, sys
# Read every message: leaving before cargo has written its last one breaks its pipe.
found = [m["executable"] for m in map(json.loads, sys.stdin)
         if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "rmcp_adapter" and m.get("executable")]
print(found[-1])')"
export CREDLOCK_MIXED_RMCP_WORKER="$rmcp_worker"

# The Go worker, in GOPATH mode as host/go/run-tests.sh builds the oauth2 adapter's tests (no
# module proxy is reachable): credlock.dev/credlock is host/go, beside the directories its cgo
# flags name relative to it (../capi, ../../target).
gocode=/usr/share/gocode
[ -d "$gocode/src/golang.org/x/oauth2" ] || { echo "golang.org/x/oauth2 is missing from $gocode: run scripts/setup.sh" >&2; exit 1; }
gopath="$(mktemp -d)"
trap 'rm -rf "$gopath"' EXIT
mkdir -p "$gopath/src/credlock.dev"
ln -s "$root/host/go" "$gopath/src/credlock.dev/credlock"
ln -s "$root/host/capi" "$gopath/src/credlock.dev/capi"
ln -s "$root/target" "$gopath/src/target"
ln -s "$root/tests/adapters-mixed/goworker" "$gopath/src/credlock.dev/mixed-goworker"
(
  cd "$gopath/src/credlock.dev/mixed-goworker"
  export GO111MODULE=off GOPATH="$gopath:$gocode" GOFLAGS= CGO_ENABLED=1 \
    CGO_LDFLAGS="-L$lib -Wl,-rpath,$lib ${CGO_LDFLAGS:-}"
  go vet .
  go build -o "$root/tests/adapters-mixed/goworker/goworker" .
)
export CREDLOCK_MIXED_GO_WORKER="$root/tests/adapters-mixed/goworker/goworker"
exec host/python/.venv/bin/python -m pytest -q -s -p no:cacheprovider tests/adapters-mixed
