# shellcheck shell=bash
# A test host's network: namespace $NS, reached from this machine's root namespace over a veth
# pair ($VETH here at $ROOT_IP/24, eth0 there at $IP/24). Idempotent. Sourced by the scripts that
# make test hosts (test-engines.sh, test-ssh-engine.sh), which set the four names first.
network() {
  [ -e "/run/netns/$NS" ] || ip netns add "$NS"
  if ! ip link show "$VETH" >/dev/null 2>&1; then
    ip link add "$VETH" type veth peer name "$VETH-n"
    ip link set "$VETH-n" netns "$NS"
    ip -n "$NS" link set "$VETH-n" name eth0
  fi
  ip addr replace "$ROOT_IP/24" dev "$VETH"
  ip link set "$VETH" up
  ip -n "$NS" link set lo up
  ip -n "$NS" addr replace "$IP/24" dev eth0
  ip -n "$NS" link set eth0 up
}
