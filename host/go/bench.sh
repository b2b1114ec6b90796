#!/usr/bin/env bash
# Go benchmarks of hot in-process Token against the release build of libcredlock.
#   host/go/bench.sh [go test -bench flags...]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
cargo build --release -p credlock-capi
lib="$root/target/release"
cd "$here"
# CGO_LDFLAGS come before the package's own flags: the release library wins over the debug one.
CGO_LDFLAGS="-L$lib -Wl,-rpath,$lib" go test -count=1 -run '^$' -bench 'Token' -benchtime 2s "$@" .
