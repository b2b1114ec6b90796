#!/usr/bin/env bash
# The main job on a fresh machine: build credlock (the host embeds the wasm component it
# builds), create a store, put a token, read it back, list, and show the store's health.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release -p credlock
bin=target/release/credlock
export CREDLOCK_STORE="${CREDLOCK_STORE:-$(mktemp -d)/store}"
echo "store: $CREDLOCK_STORE"
echo '{"access_token":"demo-access-token","token_type":"Bearer","expires_in":3600,"refresh_token":"demo-refresh-token","scope":"api"}' \
  | "$bin" put demo
echo "token: $("$bin" token demo)"
"$bin" list
"$bin" doctor
