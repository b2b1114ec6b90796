#!/usr/bin/env bash
# Installs the libraries people use today, for the peer comparison (credlock-bench --peers).
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check filelock portalocker msal-extensions
if [ ! -d node_modules/proper-lockfile ]; then
  npm install --no-audit --no-fund --loglevel=error --no-save proper-lockfile@4
fi
