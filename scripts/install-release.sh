#!/usr/bin/env bash
# Installs a codex-mcp-wrapper release on this machine from its directory (dist/releases/<v>/,
# copied here): verifies it with standard tools (openssl for the ed25519 signature, sha256sum for
# the files), loads its images into the local Docker engine and installs the npm package.
#   usage: scripts/install-release.sh <release dir> <public key .pub>
# env: NPM_PREFIX installs the package under that prefix instead of npm's global one.
set -euo pipefail
say() { printf 'install-release: %s\n' "$*" >&2; }
[ $# -eq 2 ] || { say "usage: $0 <release dir> <public key .pub>"; exit 2; }
dir=$(cd "$1" && pwd)
pub=$2
[ -f "$pub" ] || { say "no public key at $pub: use the .pub published with the release"; exit 2; }

sig=$(mktemp)
trap 'rm -f "$sig"' EXIT
base64 -d "$dir/SHA256SUMS.sig" > "$sig"
if ! openssl pkeyutl -verify -pubin -inkey "$pub" -rawin -in "$dir/SHA256SUMS" -sigfile "$sig" >/dev/null 2>&1; then
  say "SHA256SUMS.sig does not verify with $pub: do not install this release"; exit 1
fi
listed=$(awk '{print $2}' "$dir/SHA256SUMS" | sort)
present=$(cd "$dir" && ls -1 | grep -v -x -e SHA256SUMS -e SHA256SUMS.sig | sort)
if [ "$listed" != "$present" ]; then
  say "the files present differ from those SHA256SUMS lists: do not install this release"; exit 1
fi
(cd "$dir" && sha256sum --quiet --strict -c SHA256SUMS) || { say "a file does not match SHA256SUMS: do not install this release"; exit 1; }
say "verified: signature and $(echo "$listed" | wc -l) files"

docker load -i "$dir"/codex-mcp-wrapper-images-*.tar
npm install -g ${NPM_PREFIX:+--prefix "$NPM_PREFIX"} --no-audit --no-fund "$dir"/codex-mcp-wrapper-*.tgz >&2
say "installed: $(ls "$dir"/codex-mcp-wrapper-*.tgz | xargs -n1 basename)"
