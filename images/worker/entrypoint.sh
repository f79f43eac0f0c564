#!/bin/bash
# Runs every hook in /etc/codex-worker/entrypoint.d (sourced, in name order: a hook may
# start a helper in the background), then replaces itself with the container's command.
# Nothing here writes to stdout: the main command's stdout is Codex's protocol stream.
set -e
for hook in /etc/codex-worker/entrypoint.d/*.sh; do
  [ -e "$hook" ] || continue
  # shellcheck disable=SC1090
  . "$hook" >&2
done
exec "$@"
