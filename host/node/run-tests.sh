#!/usr/bin/env bash
# The Node.js binding's tests: install, build the napi-rs addon (dev profile, in the
# workspace target dir, reusing what `cargo test --workspace` built), run `node --test`.
# Exits non-zero on any failure.
#
#   bash host/node/run-tests.sh                        # everything
#   bash host/node/run-tests.sh test/store.test.mjs    # some test files
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$here"

command -v node >/dev/null || { echo "run-tests: node (>= 20) is required" >&2; exit 1; }
major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$major" -ge 20 ] || { echo "run-tests: node >= 20 is required (found $(node --version))" >&2; exit 1; }

# 1. Dependencies (npm ci), skipped when node_modules already matches package-lock.json.
lock_sum="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [ "$(cat node_modules/.credlock-lock-sum 2>/dev/null || true)" != "$lock_sum" ]; then
  echo "run-tests: npm ci" >&2
  npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
  echo "$lock_sum" > node_modules/.credlock-lock-sum
fi

# 2. The addon and the CLI the interop tests run, dev profile, in the workspace target dir:
#    the same artifacts `cargo test --workspace` builds (`npm run build` / `build:release`
#    use napi build, which builds per target triple, for users).
(cd "$repo" && cargo build --quiet -p credlock-node -p credlock)
mkdir -p build
ln -f "$repo/target/debug/libcredlock_node.so" build/credlock.node 2>/dev/null \
  || cp "$repo/target/debug/libcredlock_node.so" build/credlock.node

# 3. The tests, one file at a time (a 2-core machine; several spawn 16+ processes).
for v in $(env | grep -o '^CREDLOCK_[A-Z_]*' || true); do
  [ "$v" = CREDLOCK_CLI ] || unset "$v"
done
if [ "$#" -gt 0 ]; then files=("$@"); else files=(test/*.test.mjs); fi
# The spec report on the terminal, and a TAP copy whose totals say whether anything was
# skipped: a skipped test proved nothing, so a skip fails the run as in the other suites.
tap="$(mktemp)"
trap 'rm -f "$tap"' EXIT
set +e
node --test --test-concurrency=1 --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=tap --test-reporter-destination="$tap" "${files[@]}"
status=$?
set -e
skipped="$(awk '/^# (skipped|todo) [0-9]+$/ { n += $3 } END { print n + 0 }' "$tap")"
grep -qE '^# pass [0-9]+$' "$tap" || { echo "run-tests: node --test wrote no totals" >&2; exit 1; }
if [ "$skipped" -ne 0 ]; then
  echo "run-tests: $skipped test(s) skipped or todo; a skip is a failure here" >&2
  [ "$status" -ne 0 ] || status=1
fi
exit "$status"
