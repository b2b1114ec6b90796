#!/usr/bin/env bash
# The mixed adapters test (tests/adapters-mixed/test_mixed.py): one tenant used at once by
# processes of every adapter (Python httpx, the Python MCP SDK, Go golang.org/x/oauth2) and
# the CLI, against the real OAuth server. Needs host/python's venv (host/python/run-tests.sh
# makes it, with httpx and mcp) and Go with Debian's golang.org/x/oauth2 (scripts/setup.sh):
# scripts/test.sh runs the bindings' suites first.
set -euo pipefail
cd "$(dirname "$0")/../.."
root="$PWD"
cargo build -p credlock -p credlock-capi
lib="$root/target/debug"

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
