#!/usr/bin/env bash
# Test the Python binding: make a venv (.venv, git-ignored), build the extension into it with
# maturin (dev profile, the workspace's target dir, so what `cargo test --workspace` built is
# reused), then run pytest; then the MCP adapter's tests again in .venv-mcp1 under mcp 1.x
# (.venv has 2.x). Exits non-zero if anything fails.
#   bash host/python/run-tests.sh [pytest args...]   # with args: only that pytest run, in .venv
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

# The libraries the adapters serve (credlock.httpx_auth, credlock.requests_auth,
# credlock.mcp_auth): their tests drive the real ones. The MCP SDK 2.x (on httpx2) goes into
# .venv; 1.x (on httpx) into .venv-mcp1 below, as the two cannot be installed together.
MCP2="mcp==2.3.0"
MCP1="mcp==1.30.*"
adapter_libs() {  # VENV MCP_PIN
    if ! "$1/bin/python" -c 'import httpx, requests, mcp' 2>/dev/null \
        || [[ "$("$1/bin/python" -c 'import importlib.metadata as m; print("mcp==" + m.version("mcp"))')" != ${2/\*/}* ]]; then
        echo "run-tests: installing httpx, requests and $2 into $1" >&2
        "$1/bin/python" -m pip install --quiet --disable-pip-version-check "httpx==0.28.*" "requests>=2.32,<3" "$2"
    fi
}
adapter_libs .venv "$MCP2"

# The Rust CLI, for the interop and concurrency tests (built only if missing).
if [[ -z "${CREDLOCK_CLI:-}" && ! -x "$root/target/debug/credlock" ]]; then
    echo "run-tests: building the Rust CLI (target/debug/credlock)" >&2
    (cd "$root" && cargo build --quiet -p credlock)
fi

profile="${CREDLOCK_PY_PROFILE:-dev}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
develop() {  # VENV
    echo "run-tests: building the extension into $1 (maturin develop, profile $profile)" >&2
    VIRTUAL_ENV="$here/$1" PATH="$here/$1/bin:$PATH" \
        "$1/bin/maturin" develop --quiet --profile "$profile" --manifest-path "$here/Cargo.toml"
}
develop .venv

# Run from tests/ (conftest.py adds it to sys.path).
if [[ $# -gt 0 ]]; then
    exec .venv/bin/python -m pytest -p no:cacheprovider "$@"
fi
.venv/bin/python -m pytest -p no:cacheprovider

# The MCP adapter again under the newest mcp 1.x, whose OAuth client is the same code on httpx
# (the extension build is cargo's, already done: this only installs it).
if [[ ! -x .venv-mcp1/bin/python ]]; then
    echo "run-tests: creating .venv-mcp1 for $MCP1" >&2
    "$python" -m venv .venv-mcp1
    .venv-mcp1/bin/python -m pip install --quiet --disable-pip-version-check "maturin==1.16.*" "pytest>=7"
fi
adapter_libs .venv-mcp1 "$MCP1"
develop .venv-mcp1
echo "run-tests: the MCP adapter under $(.venv-mcp1/bin/python -c 'import importlib.metadata as m; print("mcp", m.version("mcp"))')" >&2
exec .venv-mcp1/bin/python -m pytest -p no:cacheprovider -s tests/test_mcp_auth.py \
    "tests/test_adapters.py::test_a_401_costs_one_refresh_across_the_processes_that_met_it[mcp]"
