#!/usr/bin/env bash
# The benchmark suite in one command: builds the CLI and the bench in release, then runs
#   bash scripts/bench.sh            quick mode (~15 s)
#   bash scripts/bench.sh --full     every process count, more rounds (~2 min)
#   bash scripts/bench.sh --full --peers   also Python filelock/portalocker/msal-extensions, Node proper-lockfile
# and writes the markdown table to target/bench-report.md (or --out FILE). Never fails on speed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release -p credlock -p credlock-bench
exec target/release/credlock-bench "$@"
