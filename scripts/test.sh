#!/usr/bin/env bash
# Every test credlock has: formatting, lints (including the core's purity rule), unit tests,
# real-process tests, and the real-OAuth-server tests. This is what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
suites=0
trap 'echo "suites: $suites passed, 1 failed"' ERR
bash scripts/setup.sh
# How long each suite took (builds included): the build-time figures in BENCHMARKS.md.
mark=$SECONDS
took() { echo "   ($1: $((SECONDS - mark)) s)"; mark=$SECONDS; }

echo "== one version: Cargo.toml's, copied into host/node/package.json (scripts/version.sh)"
bash scripts/version.sh check
suites=$((suites + 1))
echo "== rustfmt"
cargo fmt --all -- --check
suites=$((suites + 1))
echo "== clippy (the core may not touch files, clocks or randomness: core/clippy.toml)"
cargo clippy --workspace --all-targets -- -D warnings
cargo clippy -p credlock-component -p credlock-wasi-platform -p credlock-command --target wasm32-wasip2 -- -D warnings
cargo clippy -p credlock-wasi-platform --features http --target wasm32-wasip2 -- -D warnings
# The rmcp adapter is an optional feature the workspace build leaves out.
cargo clippy -p credlock --features rmcp --all-targets -- -D warnings
echo "== a newcomer's first build: cargo build --workspace links every crate natively"
cargo build --workspace
suites=$((suites + 1))
echo "== the composed WASI command (target/credlock-cli.wasm)"
bash scripts/build-cli-wasm.sh
suites=$((suites + 1))
echo "== the OAuth test server every refresh and login test runs against (tests/oauth-server)"
bash tests/oauth-server/selftest.sh
suites=$((suites + 1))
took "OAuth server self-test"
echo "== tests"
cargo test --workspace --all-targets
suites=$((suites + 1))
# --all-targets leaves out the doctests: the examples in the docs must compile and pass too.
cargo test --workspace --doc
suites=$((suites + 1))
took "Rust tests"
echo "== the rmcp adapter (feature rmcp): rmcp's AuthorizationManager in 8 processes, its doc example"
cargo test -p credlock --features rmcp --test rmcp_adapter
cargo test -p credlock --features rmcp --doc adapters
cargo test -p credlock --features rmcp --lib adapters
suites=$((suites + 1))
took "rmcp adapter: build and tests"
echo "== the Python binding (host/python)"
bash host/python/run-tests.sh
suites=$((suites + 1))
took "Python binding: build and tests"
echo "== the Node binding (host/node)"
bash host/node/run-tests.sh
suites=$((suites + 1))
took "Node binding: build and tests"
echo "== the C ABI and the Go binding (host/capi, host/go)"
bash host/go/run-tests.sh
suites=$((suites + 1))
took "C ABI and Go binding: build and tests"
echo "== Rust, Python, Node and Go processes on one store (tests/interop)"
bash tests/interop/run.sh
suites=$((suites + 1))
took "interop"
echo "== every adapter and the CLI on one tenant through token expiries (tests/adapters-mixed)"
bash tests/adapters-mixed/run.sh
suites=$((suites + 1))
took "adapters mixed"
echo "== simulator: random seeds, the bug zoo, exhaustive small cases, the shipped component"
# The native seeds need no wasmtime: without the `component` feature the release build
# compiles no host.
cargo build --release -p credlock-sim --no-default-features
# credlock-sim refuses --seeds 0 (and a number it cannot read) rather than pass on nothing.
target/release/credlock-sim --seeds "${CREDLOCK_SIM_SEEDS:-3000}"
suites=$((suites + 1))
target/release/credlock-sim --zoo
suites=$((suites + 1))
# Fails (exit 3) if a case is cut short at its schedule limit: "bounded" is not "exhaustive".
target/release/credlock-sim --exhaustive --preemptions 2
suites=$((suites + 1))
# The shipped .wasm, in wasmtime with the simulated platform as its imports, against the
# native core: the same trace hash seed for seed (sim/src/component.rs, over host/witglue). The dev build that
# `cargo build --workspace` made above: ~45 s for 300 seeds, where a release build would
# first compile wasmtime again (~13 min on 2 cores) to run them in 12 s.
cargo build --workspace
target/debug/credlock-sim --component --seeds "${CREDLOCK_SIM_COMPONENT_SEEDS:-300}"
suites=$((suites + 1))
took "simulator"
echo "suites: $suites passed, 0 failed"
