#!/usr/bin/env bash
# Extra Docker engines for the tests: N independent dockerd, each in its own network namespace
# and reachable from this machine's root namespace only at tcp://10.200.(100+N).2:2376 over
# mutual TLS, the way a remote engine is reached. They never touch the main engine
# (/var/run/docker.sock, /var/run/docker.pid), and every process here is found by its own
# pidfile, never by name (a second dockerd breaks `pkill dockerd` / `pgrep dockerd`).
#
#   usage: scripts/test-engines.sh up        make (or restart the dead ones of) engines 1..N
#          scripts/test-engines.sh down      remove everything `up` made, the certificates too
#          scripts/test-engines.sh status    one line per engine
#          scripts/test-engines.sh load N REF   copy image REF from the main engine into engine N
#
# env: CMW_TEST_ENGINES (N, default 2), CMW_TEST_ENGINES_START_TIMEOUT (s, default 60)
# `up` writes /var/lib/cmw-test-engines/engines.json: per engine its name (eng-N), host, TLS file
# paths, pidfile, local socket and log. Both `up` and `down` are safe to run twice. Needs root.
set -euo pipefail

STATE=/var/lib/cmw-test-engines
TLS=$STATE/tls
COUNT=${CMW_TEST_ENGINES:-2}
START_TIMEOUT=${CMW_TEST_ENGINES_START_TIMEOUT:-60}
PORT=2376
MAIN=unix:///var/run/docker.sock
# A DOCKER_TLS_VERIFY/DOCKER_CERT_PATH in the caller's environment would point a bare `docker`
# at tcp://localhost:2376: every call here names its engine.
unset DOCKER_HOST DOCKER_TLS_VERIFY DOCKER_CERT_PATH DOCKER_CONTEXT

# shellcheck source=scripts/lib/netns.sh
. "$(cd "$(dirname "$0")" && pwd)/lib/netns.sh"

say() { printf 'test-engines: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

# Engine N's names and paths, in one place (up, down and status agree on them).
paths() {
  local n=$1
  NAME=eng-$n
  NS=cmw-eng-$n
  VETH=cmw-eng-$n          # root side; the netns side is renamed eth0
  ROOT_IP=10.200.$((100 + n)).1
  IP=10.200.$((100 + n)).2
  DATA=/var/lib/cmw-engine-$n
  EXEC=/run/cmw-engine-$n
  PIDF=/run/cmw-engine-$n.pid
  SOCK=/run/cmw-engine-$n.sock
  LOG=/var/log/cmw-engine-$n.log
  CONF=$STATE/eng-$n
  CGROUP=cmw-engine-$n
}

# Running and not a zombie: this machine's PID 1 reaps orphans late, so `kill -0` says a dead
# process lives for a while after it died (and dockerd itself is fooled by it, see start()).
alive() {
  local st
  st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) && [ -n "$st" ] && [ "$st" != Z ]
}
# The pid in a pidfile if that process is alive and its command line carries `marker`.
owned_pid() {
  local pidfile=$1 marker=$2 pid
  pid=$(cat "$pidfile" 2>/dev/null) || return 1
  [ -n "$pid" ] && alive "$pid" || return 1
  tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF -- "$marker" || return 1
  echo "$pid"
}
engine_pid() { owned_pid "$PIDF" "--data-root $DATA "; }
tls_docker() { docker --tlsverify --tlscacert "$TLS/client/ca.pem" --tlscert "$TLS/client/cert.pem" --tlskey "$TLS/client/key.pem" -H "tcp://$IP:$PORT" "$@"; }

# ---------- certificates: one CA, one client certificate, a server certificate per engine
issue_cert() { # dir, common name, extensions: writes dir/cert.pem and dir/key.pem (EC P-256)
  local d=$1 cn=$2 ext=$3
  mkdir -p "$d"
  openssl ecparam -name prime256v1 -genkey -noout -out "$d/key.pem.tmp"
  openssl req -new -key "$d/key.pem.tmp" -subj "/CN=$cn" -out "$d/csr.tmp" 2>/dev/null
  printf '%s\n' "$ext" >"$d/ext.tmp"
  openssl x509 -req -days 30 -in "$d/csr.tmp" -CA "$TLS/ca.pem" -CAkey "$TLS/ca-key.pem" -CAcreateserial \
    -extfile "$d/ext.tmp" -out "$d/cert.pem.tmp" 2>/dev/null
  chmod 600 "$d/key.pem.tmp"
  mv "$d/key.pem.tmp" "$d/key.pem"
  mv "$d/cert.pem.tmp" "$d/cert.pem"
  rm -f "$d/csr.tmp" "$d/ext.tmp"
}
# A certificate and key pair worth keeping: both there, the key the certificate's, signed by our CA.
cert_ok() {
  local d=$1
  [ -s "$d/cert.pem" ] && [ -s "$d/key.pem" ] || return 1
  [ "$(openssl x509 -in "$d/cert.pem" -noout -pubkey 2>/dev/null)" = "$(openssl pkey -in "$d/key.pem" -pubout 2>/dev/null)" ] || return 1
  openssl verify -CAfile "$TLS/ca.pem" "$d/cert.pem" >/dev/null 2>&1
}
make_certs() {
  mkdir -p "$TLS"
  chmod 700 "$STATE" "$TLS"
  if [ ! -s "$TLS/ca.pem" ]; then
    openssl ecparam -name prime256v1 -genkey -noout -out "$TLS/ca-key.pem"
    chmod 600 "$TLS/ca-key.pem"
    openssl req -new -x509 -days 30 -key "$TLS/ca-key.pem" -subj "/CN=cmw-test-engines-ca" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
      -out "$TLS/ca.pem" 2>/dev/null
    rm -rf "$TLS/client" "$TLS"/eng-* # issued by an earlier CA: of no use now
  fi
  if ! cert_ok "$TLS/client"; then
    issue_cert "$TLS/client" cmw-test-client $'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature'
    cp "$TLS/ca.pem" "$TLS/client/ca.pem" # the directory is a DOCKER_CERT_PATH
  fi
}

# ---------- one engine
# network(): the engine's namespace and veth pair (scripts/lib/netns.sh).

# The engine's daemon.json; returns 0 when it changed. Its own engine key: by default every dockerd
# shares /etc/docker/key.json and so one engine ID. Plain-HTTP registries on 10.200.0.0/16 (the
# tests' registry listens on each engine's veth address, tests/integration/support/registry.ts),
# as dockerd allows 127.0.0.0/8 by default; dockerd reads insecure-registries again on SIGHUP.
daemon_json() {
  local want
  want=$(printf '{ "deprecated-key-path": "%s/key.json", "insecure-registries": ["10.200.0.0/16"] }' "$CONF")
  mkdir -p "$CONF"
  [ "$(cat "$CONF/daemon.json" 2>/dev/null)" = "$want" ] && return 1
  printf '%s\n' "$want" >"$CONF/daemon.json"
}

start() {
  if ! cert_ok "$TLS/$NAME"; then
    issue_cert "$TLS/$NAME" "$NAME" "subjectAltName=IP:$IP,DNS:$NAME
extendedKeyUsage=serverAuth
keyUsage=critical,digitalSignature,keyEncipherment"
  fi
  mkdir -p "$DATA" "$EXEC"
  daemon_json || true
  rm -f "$PIDF"
  # A dockerd killed hard leaves containerd.pid behind, and its containerd may still be an
  # unreaped zombie: a new dockerd then waits for that "running" containerd and gives up. Stop a
  # live containerd of this engine (its own pidfile, its own config path) and drop the file.
  local cpid
  if cpid=$(owned_pid "$EXEC/containerd/containerd.pid" "$EXEC/containerd/containerd.toml"); then
    kill -TERM "$cpid" 2>/dev/null || true
    for _ in $(seq 1 50); do alive "$cpid" || break; sleep 0.1; done
    alive "$cpid" && kill -KILL "$cpid" 2>/dev/null || true
  fi
  rm -f "$EXEC/containerd/containerd.pid"
  # nsenter --net, not `ip netns exec` (which remounts /sys and hides the cgroup v1 mounts);
  # unshare --uts gives the engine a host name of its own (docker info's Name).
  # Without the caller's TMPDIR: dockerd keeps runc files there, and a test run's TMPDIR is removed
  # when the run ends, after which every `docker exec` on the engine fails with exit code 126.
  setsid env -u TMPDIR nsenter --net="/run/netns/$NS" -- unshare --uts -- sh -c "hostname $NAME; exec dockerd \
    --config-file $CONF/daemon.json --data-root $DATA --exec-root $EXEC --pidfile $PIDF \
    -H unix://$SOCK -H tcp://$IP:$PORT \
    --tlsverify --tlscacert $TLS/ca.pem --tlscert $TLS/$NAME/cert.pem --tlskey $TLS/$NAME/key.pem \
    --bridge=none --iptables=false --ip-masq=false --ip-forward=false --userland-proxy=false \
    --cgroup-parent=/$CGROUP --label io.codex-mcp-wrapper.test-engine=$NAME" >>"$LOG" 2>&1 </dev/null 9>&- &
  local launcher=$! i
  for i in $(seq 1 $((START_TIMEOUT * 5))); do
    if tls_docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
      say "$NAME: up (pid $(cat "$PIDF")) at tcp://$IP:$PORT"
      return 0
    fi
    if [ "$i" -gt 10 ] && ! alive "$launcher" && ! engine_pid >/dev/null; then break; fi
    sleep 0.2
  done
  say "$NAME: did not answer at tcp://$IP:$PORT within ${START_TIMEOUT}s; the end of $LOG:"
  tail -20 "$LOG" >&2 || true
  return 1
}

write_json() {
  local n first=1
  {
    printf '[\n'
    for n in $(seq 1 "$COUNT"); do
      paths "$n"
      [ $first = 1 ] || printf ',\n'
      first=0
      printf '  {"name": "%s", "host": "tcp://%s:%s", "tls": {"ca": "%s", "cert": "%s", "key": "%s"}, "pidfile": "%s", "socket": "unix://%s", "log": "%s", "dataRoot": "%s"}' \
        "$NAME" "$IP" "$PORT" "$TLS/client/ca.pem" "$TLS/client/cert.pem" "$TLS/client/key.pem" "$PIDF" "$SOCK" "$LOG" "$DATA"
    done
    printf '\n]\n'
  } >"$STATE/engines.json.tmp"
  mv "$STATE/engines.json.tmp" "$STATE/engines.json"
}

up() {
  for b in dockerd docker openssl nsenter unshare setsid ip; do command -v "$b" >/dev/null || die "missing: $b"; done
  [ "$(id -u)" = 0 ] || die "needs root (network namespaces and dockerd)"
  mkdir -p "$STATE"
  # One `up` at a time: two at once would start two dockerd on one data root.
  exec 9>"$STATE/lock"
  flock 9
  make_certs
  local n
  for n in $(seq 1 "$COUNT"); do
    paths "$n"
    network
    if engine_pid >/dev/null; then
      # Alive: left alone once it answers (it may be starting). A second dockerd on its data
      # root is never started next to it.
      local i ok=0
      for i in $(seq 1 $((START_TIMEOUT * 5))); do
        if tls_docker version >/dev/null 2>&1; then ok=1; break; fi
        engine_pid >/dev/null || break
        sleep 0.2
      done
      if [ $ok = 1 ]; then
        # Up from before the config changed: it reads daemon.json again on SIGHUP (no restart,
        # so the containers of a run under way are left alone).
        if daemon_json; then
          kill -HUP "$(engine_pid)"
          say "$NAME: daemon.json changed, reloaded (SIGHUP)"
        fi
        continue
      fi
      engine_pid >/dev/null && die "$NAME (pid $(cat "$PIDF")) is running but does not answer at tcp://$IP:$PORT: scripts/test-engines.sh down, then up"
    fi
    start
  done
  write_json
  echo "$STATE/engines.json"
}

# Every engine number that left anything behind (whatever CMW_TEST_ENGINES says now).
known() {
  {
    ls /run/netns 2>/dev/null | sed -n 's/^cmw-eng-\([0-9]\+\)$/\1/p'
    ls -d /var/lib/cmw-engine-[0-9]* /run/cmw-engine-[0-9]* 2>/dev/null | sed -n 's#.*/cmw-engine-\([0-9]\+\)$#\1#p'
    ip -o link show 2>/dev/null | sed -n 's/^[0-9]*: cmw-eng-\([0-9]\+\)[@:].*/\1/p'
  } | sort -un
}

down() {
  [ "$(id -u)" = 0 ] || die "needs root"
  mkdir -p "$STATE"
  exec 9>"$STATE/lock"
  flock 9
  local n pid cpid p c
  for n in $(known); do
    paths "$n"
    # Containers first, while the engine answers (it stops their shims itself).
    if [ -S "$SOCK" ] && timeout 10 docker -H "unix://$SOCK" info >/dev/null 2>&1; then
      local ids
      ids=$(timeout 10 docker -H "unix://$SOCK" ps -aq 2>/dev/null || true)
      # shellcheck disable=SC2086
      [ -z "$ids" ] || timeout 60 docker -H "unix://$SOCK" rm -f -v $ids >/dev/null 2>&1 || true
    fi
    if pid=$(engine_pid); then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 150); do alive "$pid" || break; sleep 0.2; done
      alive "$pid" && kill -KILL "$pid" 2>/dev/null || true
    fi
    if cpid=$(owned_pid "$EXEC/containerd/containerd.pid" "$EXEC/containerd/containerd.toml"); then
      kill -KILL "$cpid" 2>/dev/null || true
    fi
    # Shims of this engine's containerd (after a hard kill): matched by its own socket address.
    for p in $(grep -laF -- "$EXEC/containerd/containerd.sock" /proc/[0-9]*/cmdline 2>/dev/null || true); do
      p=${p%/cmdline}
      c=$(tr '\0' ' ' 2>/dev/null <"$p/cmdline") || continue
      case "$c" in *containerd-shim*"-address $EXEC/containerd/containerd.sock "*) kill -KILL "${p#/proc/}" 2>/dev/null || true ;; esac
    done
    # Mounts under its roots, deepest first; then its containers' cgroups.
    awk -v d="$DATA" -v e="$EXEC" 'index($5, d"/") == 1 || $5 == d || index($5, e"/") == 1 || $5 == e {print $5}' /proc/self/mountinfo |
      sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
    for cg in /sys/fs/cgroup/*/"$CGROUP" /sys/fs/cgroup/"$CGROUP"; do
      [ -d "$cg" ] && find "$cg" -depth -type d -exec rmdir {} \; 2>/dev/null || true
    done
    ip link del "$VETH" 2>/dev/null || true
    [ -e "/run/netns/$NS" ] && ip netns del "$NS" 2>/dev/null || true
    rm -rf "$DATA" "$EXEC" "$PIDF" "$SOCK" "$LOG" "$CONF"
    say "$NAME: removed"
  done
  rm -rf "$TLS" "$STATE/engines.json" "$STATE/engines.json.tmp"
  rm -f "$STATE/lock"
  rmdir "$STATE" 2>/dev/null || true
}

status() {
  local n pid any=0
  for n in $(known); do
    any=1
    paths "$n"
    if pid=$(engine_pid); then
      if tls_docker version >/dev/null 2>&1; then echo "$NAME up pid $pid tcp://$IP:$PORT"; else echo "$NAME not answering pid $pid tcp://$IP:$PORT"; fi
    else
      echo "$NAME down tcp://$IP:$PORT"
    fi
  done
  [ $any = 1 ] || echo "no test engines"
}

load() { # engine number, image: save from the main engine, load into the engine (a pipe, no file)
  local n=$1 ref=$2
  paths "$n"
  engine_pid >/dev/null || die "$NAME is not running: scripts/test-engines.sh up"
  docker -H "$MAIN" save "$ref" | docker -H "unix://$SOCK" load -q
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  load) [ $# = 3 ] || die "usage: test-engines.sh load N IMAGE"; load "$2" "$3" ;;
  *) die "usage: test-engines.sh up|down|status|load N IMAGE" ;;
esac
