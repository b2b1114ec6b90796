#!/usr/bin/env bash
# Builds target/credlock-cli.wasm: the credlock core component composed (wac) with its
# WASI-only platform and a wasi:cli command, runnable by the wasmtime CLI:
#   wasmtime run --dir STORE::/store target/credlock-cli.wasm token acme
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wac >/dev/null 2>&1 || cargo install wac-cli --locked --version 0.12.0
cargo build --target wasm32-wasip2 --profile guest --target-dir target/guest \
  -p credlock-component -p credlock-wasi-platform -p credlock-command
out=target/guest/wasm32-wasip2/guest
wac compose wac/credlock-cli.wac \
  --dep credlock:wasi-platform="$out/credlock_wasi_platform.wasm" \
  --dep credlock:core="$out/credlock_component.wasm" \
  --dep credlock:command="$out/credlock-command.wasm" \
  -o target/credlock-cli.wasm
echo "built target/credlock-cli.wasm ($(wc -c < target/credlock-cli.wasm) bytes)"
