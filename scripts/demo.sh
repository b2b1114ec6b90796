#!/usr/bin/env bash
# The main job on a fresh machine: build credlock (the host embeds the wasm component it
# builds), log in for real against the test OAuth server (the device flow; this script plays
# the user on the verification page), read the token, refresh it, list, show the store's
# health, and log out (revoking the refresh token at the server).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release -p credlock
bin=target/release/credlock
export CREDLOCK_STORE="${CREDLOCK_STORE:-$(mktemp -d)/store}"
echo "store: $CREDLOCK_STORE"
work="$(mktemp -d)"
ACCESS_TTL_SECONDS=60 bash tests/oauth-server/start.sh "$work/oauth"
trap 'bash tests/oauth-server/stop.sh "$work/oauth.pid" >/dev/null 2>&1 || true' EXIT
issuer="$(cat "$work/oauth")"

# The user's side: wait for the code credlock shows, then approve it as the verification
# page would (the test server's /test/device; a real user types it in a browser).
( for _ in $(seq 100); do
    code="$(sed -n '/and enter the code:/{n;s/ //g;p;}' "$work/login.err" 2>/dev/null)"
    if [ -n "$code" ]; then
      curl -s -H 'Content-Type: application/json' -d "{\"user_code\":\"$code\"}" \
        "$issuer/test/device" >/dev/null
      break
    fi
    sleep 0.2
  done ) &
"$bin" login demo --issuer "$issuer" --client-id device-app --scope "openid offline_access api" \
  2> >(tee "$work/login.err" >&2)
wait
echo "token: $("$bin" token demo | cut -c1-12)..."
echo "refreshed: $("$bin" refresh demo | cut -c1-12)..."
"$bin" list
"$bin" doctor
"$bin" logout demo
