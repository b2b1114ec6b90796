#!/usr/bin/env bash
# The benchmark suite in one command: builds the CLI and the bench in release, then runs
#   bash scripts/bench.sh            quick mode (~15 s)
#   bash scripts/bench.sh --full     every process count, more rounds (~2 min)
#   bash scripts/bench.sh --full --peers   also Python filelock/portalocker/msal-extensions, Node proper-lockfile
#   bash scripts/bench.sh --phases   then one put's time phase by phase beside the floor's (bench/phases.py)
# and writes the markdown table to target/bench-report.md (or --out FILE). Never fails on speed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release -p credlock -p credlock-bench
phases=0
args=()
for a in "$@"; do
  if [ "$a" = "--phases" ]; then phases=1; else args+=("$a"); fi
done
target/release/credlock-bench "${args[@]}"
if [ "$phases" = 1 ]; then
  echo
  python3 bench/phases.py --bench target/release/credlock-bench
fi
