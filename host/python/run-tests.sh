#!/usr/bin/env bash
# Test the Python binding: make a venv (.venv, git-ignored), build the extension into it with
# maturin (dev profile, the workspace's target dir, so what `cargo test --workspace` built is
# reused), then run pytest. Exits non-zero if anything fails.
#   bash host/python/run-tests.sh [pytest args...]
#   CREDLOCK_PY_PROFILE=release bash host/python/run-tests.sh   # test an optimised build
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$here"

python="${PYTHON:-python3}"
if [[ ! -x .venv/bin/python ]]; then
    echo "run-tests: creating .venv with $($python --version)" >&2
    "$python" -m venv .venv
fi
if ! .venv/bin/python -c 'import maturin, pytest' 2>/dev/null \
    || [[ "$(.venv/bin/maturin --version 2>/dev/null)" != "maturin 1.16."* ]]; then
    echo "run-tests: installing maturin and pytest into .venv" >&2
    .venv/bin/python -m pip install --quiet --disable-pip-version-check "maturin==1.16.*" "pytest>=7"
fi

# The HTTP clients the adapters serve (credlock.httpx_auth, credlock.requests_auth): their
# tests drive the real libraries.
if ! .venv/bin/python -c 'import httpx, requests' 2>/dev/null; then
    echo "run-tests: installing httpx and requests into .venv" >&2
    .venv/bin/python -m pip install --quiet --disable-pip-version-check "httpx==0.28.*" "requests>=2.32,<3"
fi

# The Rust CLI, for the interop and concurrency tests (built only if missing).
if [[ -z "${CREDLOCK_CLI:-}" && ! -x "$root/target/debug/credlock" ]]; then
    echo "run-tests: building the Rust CLI (target/debug/credlock)" >&2
    (cd "$root" && cargo build --quiet -p credlock)
fi

profile="${CREDLOCK_PY_PROFILE:-dev}"
echo "run-tests: building the extension (maturin develop, profile $profile)" >&2
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
VIRTUAL_ENV="$here/.venv" PATH="$here/.venv/bin:$PATH" \
    .venv/bin/maturin develop --quiet --profile "$profile" --manifest-path "$here/Cargo.toml"

# Run from tests/ (conftest.py adds it to sys.path).
exec .venv/bin/python -m pytest -p no:cacheprovider "$@"
