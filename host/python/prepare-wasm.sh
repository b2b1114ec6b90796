#!/usr/bin/env bash
# Build the credlock component and copy it into the Python package (src/credlock/credlock.wasm).
# `pip install host/python` does the copy itself when the cargo build exists; run this first
# on a fresh checkout, or after changing core/.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
wasm="$root/target/guest/wasm32-wasip2/guest/credlock_component.wasm"
if [[ "${CREDLOCK_SKIP_CARGO:-}" != 1 ]]; then
    command -v cargo >/dev/null || { echo "prepare-wasm: cargo not found (see scripts/setup.sh)" >&2; exit 1; }
    (cd "$root" && cargo build --quiet -p credlock-component --target wasm32-wasip2 --profile guest --target-dir target/guest)
fi
[[ -f "$wasm" ]] || { echo "prepare-wasm: $wasm was not built" >&2; exit 1; }
cp "$wasm" "$here/src/credlock/credlock.wasm"
echo "prepare-wasm: $(wc -c < "$wasm") bytes -> src/credlock/credlock.wasm" >&2
