#!/usr/bin/env bash
# Cross-language tests (Rust CLI, Python, Node on one store). Needs host/python's venv and
# host/node built: scripts/test.sh runs the hosts' own suites first, which set both up.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build -p credlock
exec host/python/.venv/bin/python -m pytest -q tests/interop -s -p no:cacheprovider
