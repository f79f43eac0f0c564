#!/usr/bin/env bash
# The tools the test suite drives besides Docker, from Debian's packages: chromium (the status
# page test, through playwright-core, which never downloads a browser), promtool (Prometheus's
# own checker for /metrics, package prometheus), docker-compose (the compose files' test) and
# ip (iproute2: the egress test's own test host, in a network namespace on a veth pair) and sshd
# (openssh-server: the SSH engine's test server, scripts/test-ssh-engine.sh, which starts its own
# sshd with its own config and keys; nothing here starts or configures the machine's).
# Installs what is missing; idempotent. Outside Debian/root it says what to install.
set -euo pipefail
say() { printf 'ensure-test-tools: %s\n' "$*" >&2; }

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v docker-compose >/dev/null 2>&1 || docker compose version >/dev/null 2>&1 || missing+=(docker-compose)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
{ [ -x /usr/sbin/sshd ] && command -v ssh-keygen >/dev/null 2>&1; } || missing+=(openssh-server)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  say "missing: ${missing[*]} (Debian package names); install them, then run again."
  exit 1
fi
say "installing ${missing[*]} from Debian's packages"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
