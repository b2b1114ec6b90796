#!/usr/bin/env bash
# Cross-language tests: the Rust CLI and Python, Node and Go processes (each language binding
# over the one Rust host) on one store. Needs host/python's venv and host/node built, and Go:
# scripts/test.sh runs the bindings' own suites first, which set those up.
set -euo pipefail
cd "$(dirname "$0")/../.."
root="$PWD"
cargo build -p credlock -p credlock-capi
lib="$root/target/debug"
(cd tests/interop/goworker && CGO_ENABLED=1 CGO_LDFLAGS="-L$lib -Wl,-rpath,$lib" go build -o goworker .)
export CREDLOCK_GO_WORKER="$root/tests/interop/goworker/goworker"
exec host/python/.venv/bin/python -m pytest -q tests/interop -s -p no:cacheprovider
