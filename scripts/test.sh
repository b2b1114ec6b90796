#!/usr/bin/env bash
# Every test credlock has: formatting, lints (including the core's purity rule), unit tests,
# real-process tests, and the real-OAuth-server tests. This is what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
suites=0
trap 'echo "suites: $suites passed, 1 failed"' ERR
bash scripts/setup.sh

echo "== rustfmt"
cargo fmt --all -- --check
suites=$((suites + 1))
echo "== clippy (the core may not touch files, clocks or randomness: core/clippy.toml)"
cargo clippy --workspace --all-targets -- -D warnings
cargo clippy -p credlock-component --target wasm32-wasip2 -- -D warnings
suites=$((suites + 1))
echo "== the composed WASI command (target/credlock-cli.wasm)"
bash scripts/build-cli-wasm.sh
suites=$((suites + 1))
echo "== tests"
cargo test --workspace --all-targets
suites=$((suites + 1))
echo "== the Python host (host/python)"
bash host/python/run-tests.sh
suites=$((suites + 1))
echo "== the Node host (host/node)"
bash host/node/run-tests.sh
suites=$((suites + 1))
echo "== Rust, Python and Node processes on one store (tests/interop)"
bash tests/interop/run.sh
suites=$((suites + 1))
echo "== simulator: random seeds, the bug zoo, exhaustive small cases"
cargo build --release -p credlock-sim
target/release/credlock-sim --seeds "${CREDLOCK_SIM_SEEDS:-3000}"
suites=$((suites + 1))
target/release/credlock-sim --zoo
suites=$((suites + 1))
target/release/credlock-sim --exhaustive --preemptions 2
suites=$((suites + 1))
echo "suites: $suites passed, 0 failed"
