#!/usr/bin/env bash
# Builds the project's images: worker (the real Codex from npm) and rehearsal (worker + the
# scripted model server), for the current Codex version and the 0.153.0 variant (the last with
# `codex mcp-server`), and the broker image (for compose/). Tags: `:dev` / `:dev-codex-<v>` for a dev build; `--release` tags the
# package version (`:<version>` / `:<version>-codex-<v>`).
#   usage: scripts/build-images.sh [--release] [--only-current] [--no-broker]
# env: BASE_IMAGE (default node:22-bookworm-slim, else built locally), CODEX_VERSION,
#      CODEX_LEGACY_VERSION, IMAGE_PREFIX (default codex-mcp-wrapper)
set -euo pipefail
cd "$(dirname "$0")/.."

PREFIX="${IMAGE_PREFIX:-codex-mcp-wrapper}"
CODEX_VERSION="${CODEX_VERSION:-0.169.0}"
CODEX_LEGACY_VERSION="${CODEX_LEGACY_VERSION:-0.153.0}"
channel_tag=dev
only_current=0
with_broker=1
for arg in "$@"; do
  case "$arg" in
    --release) channel_tag=$(node -p 'require("./package.json").version') ;;
    --only-current) only_current=1 ;;
    --no-broker) with_broker=0 ;;
    *) echo "build-images: unknown argument $arg" >&2; exit 2 ;;
  esac
done
say() { printf 'build-images: %s\n' "$*" >&2; }

# A release tag is written once: a version whose worker, rehearsal or broker tag exists is refused
# (a dev build only ever writes :dev tags, so it cannot touch one either).
if [ "$channel_tag" != dev ]; then
  for img in worker rehearsal broker; do
    if docker image inspect "$PREFIX/$img:$channel_tag" >/dev/null 2>&1; then
      say "$PREFIX/$img:$channel_tag exists: release tags are never overwritten; bump the version"; exit 1
    fi
  done
fi

# The base: the official Node image where a registry answers, else our own from Debian.
base="${BASE_IMAGE:-node:22-bookworm-slim}"
if ! docker image inspect "$base" >/dev/null 2>&1; then
  if [ -z "${BASE_IMAGE:-}" ] && timeout 60 docker pull -q "$base" >/dev/null 2>&1; then
    say "pulled $base"
  elif [ -z "${BASE_IMAGE:-}" ]; then
    say "$base cannot be pulled here; using the project's own base (built from Debian packages if missing)"
    base=$(bash scripts/build-base-image.sh)
  else
    say "BASE_IMAGE=$base is not present and cannot be pulled"; exit 1
  fi
fi

[ -f dist/rehearsal/main.js ] || { say "dist/rehearsal is missing: run npm run build first"; exit 1; }
registry=$(npm config get registry 2>/dev/null || true)

build() { # tag, context, dockerfile, build args…
  local tag=$1 ctx=$2 file=$3; shift 3
  local start=$SECONDS
  docker build -q -t "$tag" -f "$file" "$@" "$ctx" >/dev/null
  local size
  size=$(docker image inspect -f '{{.Size}}' "$tag")
  say "$tag built in $((SECONDS - start))s, $((size / 1000000)) MB"
}

versions=("$CODEX_VERSION")
[ "$only_current" = 1 ] || versions+=("$CODEX_LEGACY_VERSION")
ctx=$(mktemp -d)
wctx=$(mktemp -d)
bctx=$(mktemp -d)
trap 'rm -rf "$ctx" "$wctx" "$bctx"' EXIT
# The worker's context: its files plus the build machine's extra CA certificates (a
# TLS-intercepting proxy's CA, say), so npm inside the build trusts what the host trusts.
cp images/worker/* "$wctx/"
# The relay forwarder (dist/relay): how the container reaches the model with no network.
[ -f dist/relay/forwarder.js ] || { say "dist/relay is missing: run npm run build first"; exit 1; }
mkdir -p "$wctx/relay"
cp dist/relay/frames.js dist/relay/forwarder.js "$wctx/relay/"
printf '{"type":"module"}\n' > "$wctx/relay/package.json"
mkdir -p "$wctx/ca"
ca_dir="${EXTRA_CA_CERTS_DIR-/usr/local/share/ca-certificates}"
if [ -n "$ca_dir" ] && compgen -G "$ca_dir/*.crt" >/dev/null; then
  cp "$ca_dir"/*.crt "$wctx/ca/"
  say "adding $(ls "$wctx/ca" | wc -l) extra CA certificate(s) from $ca_dir (EXTRA_CA_CERTS_DIR= to skip)"
fi
mkdir -p "$ctx/dist" "$ctx/images"
cp -r dist/rehearsal "$ctx/dist/"
printf '{"type":"module"}\n' > "$ctx/dist/rehearsal/package.json"
cp -r images/rehearsal "$ctx/images/"

for v in "${versions[@]}"; do
  suffix=$channel_tag
  [ "$v" = "$CODEX_VERSION" ] || suffix="$channel_tag-codex-$v"
  build "$PREFIX/worker:$suffix" "$wctx" "$wctx/Dockerfile" \
    --build-arg BASE_IMAGE="$base" --build-arg CODEX_VERSION="$v" \
    ${registry:+--build-arg NPM_CONFIG_REGISTRY="$registry"}
  build "$PREFIX/rehearsal:$suffix" "$ctx" "$ctx/images/rehearsal/Dockerfile" \
    --build-arg WORKER_IMAGE="$PREFIX/worker:$suffix"
done

# The broker: package.json, the lock file and dist/ (never dist/releases).
if [ "$with_broker" = 1 ]; then
  cp package.json package-lock.json "$bctx/"
  mkdir -p "$bctx/dist"
  for d in dist/*; do [ "$d" = dist/releases ] || cp -r "$d" "$bctx/dist/"; done
  cp -r "$wctx/ca" "$bctx/ca"
  build "$PREFIX/broker:$channel_tag" "$bctx" images/broker/Dockerfile \
    --build-arg BASE_IMAGE="$base" --build-arg VERSION="$channel_tag" \
    ${registry:+--build-arg NPM_CONFIG_REGISTRY="$registry"}
fi
