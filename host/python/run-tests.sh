#!/usr/bin/env bash
# Test the Python host: make a venv (.venv, git-ignored), build the component and copy it in,
# install this package and pytest, run pytest. Exits non-zero if anything fails.
#   bash host/python/run-tests.sh [pytest args...]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$here"

python="${PYTHON:-python3}"
if [[ ! -x .venv/bin/python ]]; then
    echo "run-tests: creating .venv with $($python --version)" >&2
    "$python" -m venv .venv
fi

# The component: cargo builds it (fast when up to date); setup.py copies it into the package.
bash "$here/prepare-wasm.sh"

# The Rust CLI, for the interop and concurrency tests (built only if missing).
if [[ -z "${CREDLOCK_CLI:-}" && ! -x "$root/target/debug/credlock" ]]; then
    echo "run-tests: building the Rust CLI (target/debug/credlock)" >&2
    (cd "$root" && cargo build --quiet -p credlock)
fi

echo "run-tests: installing the package" >&2
rm -rf build
.venv/bin/python -m pip install --quiet --disable-pip-version-check ".[test]"

# Run from tests/ against the installed package (not the source tree).
exec .venv/bin/python -m pytest -p no:cacheprovider "$@"
