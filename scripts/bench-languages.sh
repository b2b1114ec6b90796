#!/usr/bin/env bash
# Every language binding's figures in one run, beside the Rust host's (BENCHMARKS.md, "Per
# language"): release builds of the host, the PyO3 wheel, the napi addon and libcredlock,
# each installed as a user would, then bench/languages.py: hot calls, one-shot processes, and
# the first call of a process with an empty and with a read-only HOME beside the warm one
# (issue 25's cold-start rows). ~10 minutes from a warm target dir.
#   bash scripts/bench-languages.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
out="$root/target/bench-languages"
mkdir -p "$out"
t0=$SECONDS
cargo build --release -p credlock -p credlock-bench -p credlock-capi -p credlock-node
echo "bench: release host, C library and Node addon built in $((SECONDS - t0)) s" >&2

# Python: the wheel a user gets from `pip install ./host/python`, in a venv of its own.
if [[ ! -x "$out/venv/bin/python" ]]; then
  python3 -m venv "$out/venv"
  "$out/venv/bin/pip" install --quiet --disable-pip-version-check 'maturin==1.16.*'
fi
rm -rf "$out/wheels"
t0=$SECONDS
"$out/venv/bin/maturin" build --release --quiet -m host/python/Cargo.toml -o "$out/wheels" >&2
echo "bench: Python wheel built in $((SECONDS - t0)) s (release deps already built)" >&2
"$out/venv/bin/pip" install --quiet --disable-pip-version-check --force-reinstall "$out"/wheels/*.whl

# Node: the package with the release addon, stripped as `npm run build:release` leaves it.
rm -rf "$out/node" && mkdir -p "$out/node/build"
cp -r host/node/src host/node/package.json "$out/node/"
strip -o "$out/node/build/credlock.node" target/release/libcredlock_node.so

# Go and C: libcredlock (stripped copy) and a one-shot Go program linked against it.
mkdir -p "$out/lib"
strip -o "$out/lib/libcredlock.so" target/release/libcredlock.so
(cd tests/interop/goworker && CGO_ENABLED=1 CGO_LDFLAGS="-L$out/lib -Wl,-rpath,$out/lib" go build -o "$out/goworker" .)

CREDLOCK_BENCH_OUT="$out" "$out/venv/bin/python" bench/languages.py
