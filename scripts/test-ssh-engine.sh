#!/usr/bin/env bash
# A Docker engine reached over SSH, for the tests: an sshd of its own in its own network namespace
# (cmw-ssh-1), reachable from this machine's root namespace only at 10.200.110.2:22, whose sessions
# run `docker system dial-stdio` against test engine eng-1's socket (scripts/test-engines.sh makes
# it), the way `docker -H ssh://root@host` reaches a remote engine. Its host key and the client's
# key are generated here, never this machine's own (/etc/ssh is not read or written). The sshd is
# found by its own pidfile only, never by name; eng-1 and its dockerd are left alone.
#
# Port 2222 of the same sshd is a machine without the docker CLI on the PATH (for the tests).
#
#   usage: scripts/test-ssh-engine.sh up       start it (idempotent; starts the test engines too)
#          scripts/test-ssh-engine.sh down     stop it and remove everything `up` made
#          scripts/test-ssh-engine.sh status   one line
#
# `up` writes /var/lib/cmw-test-ssh/ssh.json: the engine's host (ssh://root@10.200.110.2), the
# client's identity file, a known_hosts file holding the host key, the host key's public line, the
# sshd's pidfile and log, and the engine socket the sessions reach. Needs root and openssh-server.
set -euo pipefail

STATE=/var/lib/cmw-test-ssh
NS=cmw-ssh-1
VETH=cmw-ssh-1
ROOT_IP=10.200.110.1
IP=10.200.110.2
PORT=22
NODOCKER_PORT=2222
PIDF=/run/cmw-test-ssh.pid
LOG=/var/log/cmw-test-ssh.log
CONF=$STATE/sshd_config
SSHD=${SSHD:-/usr/sbin/sshd}
# The engine the sessions reach: test engine eng-1's own socket (not the main engine's).
ENGINE_SOCK=${CMW_SSH_ENGINE_SOCKET:-/run/cmw-engine-1.sock}
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/lib/netns.sh
. "$HERE/lib/netns.sh"

say() { printf 'test-ssh-engine: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

alive() {
  local st
  st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) && [ -n "$st" ] && [ "$st" != Z ]
}
# The pid in our pidfile if it is alive and is an sshd reading our config.
sshd_pid() {
  local pid
  pid=$(cat "$PIDF" 2>/dev/null) || return 1
  [ -n "$pid" ] && alive "$pid" || return 1
  tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF -- "-f $CONF" || return 1
  echo "$pid"
}

keys() {
  mkdir -p "$STATE/client"
  chmod 700 "$STATE" "$STATE/client"
  [ -s "$STATE/ssh_host_ed25519_key" ] || ssh-keygen -q -t ed25519 -N '' -C cmw-test-ssh-host -f "$STATE/ssh_host_ed25519_key"
  [ -s "$STATE/client/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C cmw-test-ssh-client -f "$STATE/client/id_ed25519"
  cp "$STATE/client/id_ed25519.pub" "$STATE/authorized_keys"
  chmod 600 "$STATE/authorized_keys"
  # The known_hosts line as `ssh-keyscan` would write it for this host (port 22: no [host]:port).
  printf '%s %s\n' "$IP" "$(cut -d' ' -f1,2 "$STATE/ssh_host_ed25519_key.pub")" >"$STATE/known_hosts"
}

# network(): the sshd's namespace and veth pair (scripts/lib/netns.sh).

config() {
  # Room for the tests' brokers starting connections at once (MaxStartups) and for more sessions a
  # connection than the broker opens (it stays at 8, under the default MaxSessions of 10).
  cat >"$CONF.tmp" <<EOF
ListenAddress $IP:$PORT
HostKey $STATE/ssh_host_ed25519_key
PidFile $PIDF
AuthorizedKeysFile $STATE/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
MaxStartups 200:30:400
MaxSessions 50
LogLevel VERBOSE
SetEnv DOCKER_HOST=unix://$ENGINE_SOCK HOME=$STATE/home
# A second port where the docker CLI is not on the PATH (a remote machine without it): the
# tests' "no docker there" case, and a host known as [host]:port.
ListenAddress $IP:$NODOCKER_PORT
Match LocalPort $NODOCKER_PORT
  ForceCommand env PATH=/nonexistent-cmw-test docker system dial-stdio
EOF
  # A home of its own for the sessions: root's shell start-up files on a test machine (pyenv,
  # nvm …) would otherwise run for every engine call; a real remote user has its own.
  mkdir -p "$STATE/home"
  mv "$CONF.tmp" "$CONF"
}

write_json() {
  printf '{"name": "ssh-1", "host": "ssh://root@%s", "identity": "%s", "known_hosts": "%s", "hostKey": "%s", "pidfile": "%s", "log": "%s", "engineSocket": "unix://%s", "ip": "%s", "port": %s, "noDockerPort": %s}\n' \
    "$IP" "$STATE/client/id_ed25519" "$STATE/known_hosts" "$(cut -d' ' -f1,2 "$STATE/ssh_host_ed25519_key.pub")" "$PIDF" "$LOG" "$ENGINE_SOCK" "$IP" "$PORT" "$NODOCKER_PORT" >"$STATE/ssh.json.tmp"
  mv "$STATE/ssh.json.tmp" "$STATE/ssh.json"
}

up() {
  [ "$(id -u)" = 0 ] || die "needs root (a network namespace and sshd)"
  [ -x "$SSHD" ] || die "missing $SSHD: apt-get install openssh-server (.ci/run does)"
  for b in ssh-keygen ip nsenter docker; do command -v "$b" >/dev/null || die "missing: $b"; done
  # The engine behind the sessions: eng-1 (started if it is not; a live one is left alone).
  if [ -z "${CMW_SSH_ENGINE_SOCKET:-}" ]; then bash "$HERE/test-engines.sh" up >/dev/null; fi
  mkdir -p "$STATE"
  exec 9>"$STATE/lock"
  flock 9
  keys
  network
  config
  mkdir -p /run/sshd # sshd's privilege separation directory
  if pid=$(sshd_pid); then
    kill -HUP "$pid" # reads its config again (a changed engine socket); sessions under way go on
  else
    rm -f "$PIDF"
    "$SSHD" -t -f "$CONF" || die "sshd refuses $CONF"
    nsenter --net="/run/netns/$NS" -- "$SSHD" -f "$CONF" -E "$LOG"
    local i
    for i in $(seq 1 50); do
      sshd_pid >/dev/null && break
      sleep 0.1
    done
    sshd_pid >/dev/null || { tail -5 "$LOG" >&2 || true; die "sshd did not start"; }
  fi
  # Logged in and through to the engine, with our own known_hosts (StrictHostKeyChecking: no prompt, no guess).
  local out=""
  for i in $(seq 1 50); do
    if out=$(ssh -q -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$STATE/known_hosts" -o IdentitiesOnly=yes \
      -i "$STATE/client/id_ed25519" -p "$PORT" "root@$IP" docker version --format '{{.Server.Version}}' 2>&1); then break; fi
    sleep 0.2
  done
  [ -n "$out" ] && [[ "$out" =~ ^[0-9] ]] || die "ssh root@$IP docker version failed: $out"
  say "ssh-1: up (sshd pid $(cat "$PIDF")) at ssh://root@$IP, engine $ENGINE_SOCK (Docker $out)"
  write_json
  echo "$STATE/ssh.json"
}

down() {
  [ "$(id -u)" = 0 ] || die "needs root"
  local pid
  if pid=$(sshd_pid); then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do alive "$pid" || break; sleep 0.1; done
    alive "$pid" && kill -KILL "$pid" 2>/dev/null || true
  fi
  ip link del "$VETH" 2>/dev/null || true
  [ -e "/run/netns/$NS" ] && ip netns del "$NS" 2>/dev/null || true
  rm -rf "$STATE" "$PIDF" "$LOG"
  say "ssh-1: removed"
}

status() {
  local pid
  if pid=$(sshd_pid); then echo "ssh-1 up sshd pid $pid ssh://root@$IP"; else echo "ssh-1 down ssh://root@$IP"; fi
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) die "usage: test-ssh-engine.sh up|down|status" ;;
esac
