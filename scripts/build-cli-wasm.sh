#!/usr/bin/env bash
# Builds the credlock core component composed (wac) with its WASI-only platform and a
# wasi:cli command, runnable by the wasmtime CLI, twice:
#   target/credlock-cli.wasm        WASI alone; refreshes fail (nothing is sent):
#     wasmtime run --dir STORE::/store target/credlock-cli.wasm token acme
#   target/credlock-cli-http.wasm   also imports wasi:http, and refreshes:
#     wasmtime run -S http --dir STORE::/store target/credlock-cli-http.wasm token acme
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wac >/dev/null 2>&1 || cargo install wac-cli --locked --version 0.12.0
out=target/guest/wasm32-wasip2/guest
build() {
  cargo build --target wasm32-wasip2 --profile guest --target-dir target/guest \
    -p credlock-component -p credlock-wasi-platform -p credlock-command "$@"
}
compose() {
  wac compose wac/credlock-cli.wac \
    --dep credlock:wasi-platform="$1" \
    --dep credlock:core="$out/credlock_component.wasm" \
    --dep credlock:command="$out/credlock-command.wasm" \
    -o "$2"
  echo "built $2 ($(wc -c < "$2") bytes)"
}
build --features credlock-wasi-platform/http
cp "$out/credlock_wasi_platform.wasm" target/guest/credlock_wasi_platform_http.wasm
compose target/guest/credlock_wasi_platform_http.wasm target/credlock-cli-http.wasm
build
compose "$out/credlock_wasi_platform.wasm" target/credlock-cli.wasm
