#!/usr/bin/env bash
# Start the test OAuth server in the background on 127.0.0.1:<ephemeral port>.
#
#   tests/oauth-server/start.sh [PORT_FILE]
#
# With PORT_FILE: writes the base URL (one line, e.g. http://127.0.0.1:41234)
# to PORT_FILE, the PID to PORT_FILE.pid, the server log to PORT_FILE.log.
# Without PORT_FILE: prints the base URL on stdout (only that) and puts the
# pid/log files in a fresh temp dir whose paths are printed on stderr.
#
# Env: STARTUP_TIMEOUT_SECONDS (default 30), OAUTH_SERVER_LOG (log path),
# OAUTH_SERVER_PID_FILE (pid file path in stdout mode), and
# everything server.js reads (ACCESS_TTL_SECONDS, REFRESH_TTL_SECONDS, ...).
# Exit status is non-zero, with the reason and the log tail on stderr, if the
# server did not answer within the timeout.
set -euo pipefail

DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PORT_FILE="${1:-}"
TIMEOUT="${STARTUP_TIMEOUT_SECONDS:-30}"

say() { echo "oauth-server/start.sh: $*" >&2; }
die() { say "ERROR: $*"; exit 1; }

command -v node >/dev/null 2>&1 || die "node not found in PATH (Node >= 20.19 required)"

if [ ! -d "$DIR/node_modules" ]; then
  command -v npm >/dev/null 2>&1 || die "node_modules missing and npm not found in PATH"
  say "node_modules missing, running npm ci"
  # npm output goes to stderr: stdout may be carrying the URL.
  (cd "$DIR" && npm ci --no-audit --no-fund) 1>&2 || die "npm ci failed in $DIR"
fi

if [ -n "$PORT_FILE" ]; then
  mkdir -p "$(dirname "$PORT_FILE")"
  PID_FILE="$PORT_FILE.pid"
  LOG_FILE="${OAUTH_SERVER_LOG:-$PORT_FILE.log}"
  rm -f "$PORT_FILE"
else
  if [ -z "${OAUTH_SERVER_PID_FILE:-}" ] || [ -z "${OAUTH_SERVER_LOG:-}" ]; then
    RUN_DIR="$(mktemp -d "${TMPDIR:-/tmp}/credlock-oauth-server.XXXXXX")"
  fi
  PID_FILE="${OAUTH_SERVER_PID_FILE:-${RUN_DIR:-}/server.pid}"
  LOG_FILE="${OAUTH_SERVER_LOG:-${RUN_DIR:-}/server.log}"
fi
: >"$LOG_FILE"

# stdin/stdout/stderr all detached from the caller, so that `URL=$(start.sh)`
# returns as soon as this script exits. The server prints "READY <url>" on its
# stdout once it listens; everything else it writes goes to stderr.
OAUTH_SERVER_PORT=0 node "$DIR/server.js" </dev/null >>"$LOG_FILE" 2>&1 &
PID=$!
echo "$PID" >"$PID_FILE"

fail() {
  say "ERROR: $*"
  kill "$PID" 2>/dev/null || true
  rm -f "$PID_FILE"
  say "last lines of $LOG_FILE:"
  tail -n 20 "$LOG_FILE" >&2 || true
  exit 1
}

probe() {
  if command -v curl >/dev/null 2>&1; then
    curl -fsS --max-time 2 -o /dev/null "$1/test/health" 2>/dev/null
  else
    node -e 'fetch(process.argv[1] + "/test/health", { signal: AbortSignal.timeout(2000) })
      .then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))' "$1"
  fi
}

deadline=$((SECONDS + TIMEOUT))
URL=""
while :; do
  if ! kill -0 "$PID" 2>/dev/null; then
    fail "server process $PID exited during startup"
  fi
  if [ -z "$URL" ]; then
    URL="$(sed -n 's/^READY //p' "$LOG_FILE" | head -n 1)"
  fi
  if [ -n "$URL" ] && probe "$URL"; then
    break
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    fail "server did not come up within ${TIMEOUT}s"
  fi
  sleep 0.1
done

if [ -n "$PORT_FILE" ]; then
  printf '%s\n' "$URL" >"$PORT_FILE.tmp"
  mv "$PORT_FILE.tmp" "$PORT_FILE"
  say "up at $URL (pid $PID, pid file $PID_FILE, log $LOG_FILE)"
else
  say "up at $URL (pid $PID); stop with: $DIR/stop.sh $PID_FILE ; log: $LOG_FILE"
  printf '%s\n' "$URL"
fi
