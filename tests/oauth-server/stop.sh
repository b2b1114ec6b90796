#!/usr/bin/env bash
# Stop a server started by start.sh:   tests/oauth-server/stop.sh PIDFILE
# Signals only the pid in PIDFILE, and only if that pid is still our
# server.js (guards against a recycled pid). Idempotent: a missing pid file or
# a process that is already gone is not an error.
set -euo pipefail

say() { echo "oauth-server/stop.sh: $*" >&2; }

PID_FILE="${1:-}"
[ -n "$PID_FILE" ] || { say "usage: stop.sh PIDFILE"; exit 2; }
[ -f "$PID_FILE" ] || { say "no pid file $PID_FILE, nothing to stop"; exit 0; }

PID="$(tr -dc '0-9' <"$PID_FILE")"
[ -n "$PID" ] || { say "pid file $PID_FILE is empty or invalid"; rm -f "$PID_FILE"; exit 1; }

if ! kill -0 "$PID" 2>/dev/null; then
  say "pid $PID not running"
  rm -f "$PID_FILE"
  exit 0
fi

if [ -r "/proc/$PID/cmdline" ]; then
  CMD="$(tr '\0' ' ' <"/proc/$PID/cmdline")"
else
  CMD="$(ps -p "$PID" -o command= 2>/dev/null || true)"
fi
case "$CMD" in
  *oauth-server/server.js*) ;;
  *) say "pid $PID is not the oauth test server (${CMD:-unknown}); not killing it"; rm -f "$PID_FILE"; exit 1 ;;
esac

kill -TERM "$PID" 2>/dev/null || true
for _ in $(seq 1 50); do
  kill -0 "$PID" 2>/dev/null || { rm -f "$PID_FILE"; exit 0; }
  sleep 0.1
done
say "pid $PID ignored SIGTERM for 5s, sending SIGKILL"
kill -KILL "$PID" 2>/dev/null || true
rm -f "$PID_FILE"
