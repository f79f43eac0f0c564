#!/usr/bin/env bash
# Makes sure a Docker engine answers on this machine: installs Debian's docker.io
# and starts dockerd in the background where `docker info` fails. Idempotent.
set -euo pipefail

WAIT_SECONDS="${DOCKER_WAIT_SECONDS:-60}"
LOG="${DOCKERD_LOG:-/var/log/dockerd.log}"

say() { printf 'ensure-docker: %s\n' "$*" >&2; }

if docker info >/dev/null 2>&1; then
  say "Docker engine already answers ($(docker version --format '{{.Server.Version}}' 2>/dev/null))"
  exit 0
fi

if ! command -v dockerd >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    say "no Docker engine and cannot install one here (needs root and apt-get)."
    say "fix: install Docker (https://docs.docker.com/engine/install/) and start it, then run again."
    exit 1
  fi
  say "installing Debian's docker.io"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q docker.io >/dev/null
fi

start_dockerd() {
  if [ "$(id -u)" != 0 ]; then
    say "dockerd is installed but not running, and starting it needs root."
    say "fix: sudo systemctl start docker (or: sudo dockerd &), then run again."
    exit 1
  fi
  say "starting dockerd in the background (log: $LOG)"
  # setsid: the engine must outlive this script and the shell that ran it. Without the caller's
  # TMPDIR: the engine keeps its runc files there, and a test run's TMPDIR is removed when the run
  # ends (tests/support/temp-root.ts), after which every `docker exec` fails with exit code 126.
  setsid nohup env -u TMPDIR dockerd >"$LOG" 2>&1 </dev/null &
  STARTED=$!
}
# The default engine, known by its own pidfile: other engines on this machine (a test's, in its
# own network namespace) have theirs, and a match by name would take one of them for it.
PIDFILE=/var/run/docker.pid
STARTED=
engine_running() {
  { [ -n "$STARTED" ] && kill -0 "$STARTED" 2>/dev/null; } || { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE" 2>/dev/null)" 2>/dev/null; }
}
engine_running || start_dockerd

for _ in $(seq 1 "$WAIT_SECONDS"); do
  # A dockerd that was shutting down when we looked has gone since: start a new one.
  engine_running || start_dockerd
  if docker info >/dev/null 2>&1; then
    say "Docker engine up ($(docker version --format '{{.Server.Version}}'))"
    exit 0
  fi
  sleep 1
done
say "Docker engine did not answer within ${WAIT_SECONDS}s. Last lines of $LOG:"
tail -n 20 "$LOG" >&2 || true
exit 1
