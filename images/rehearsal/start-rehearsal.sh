# Sourced by the worker entrypoint. Under the broker (CODEX_RELAY=1) the rehearsal model is the
# broker's relay upstream and the relay forwarder listens on the port below: start nothing.
# Run by hand (`docker run … rehearsal:dev codex exec …`), start the rehearsal model server on
# loopback and wait (bounded) until it accepts connections, before the main command starts.
[ "${CODEX_RELAY:-}" = 1 ] && return 0
node /opt/rehearsal/main.js </dev/null >/dev/null 2>>"${REHEARSAL_LOG:-/tmp/rehearsal.log}" &
for _ in $(seq 1 200); do
  if (exec 3<>"/dev/tcp/127.0.0.1/${REHEARSAL_PORT:-38080}") 2>/dev/null; then
    return 0
  fi
  sleep 0.025
done
echo "rehearsal: the model server did not start on 127.0.0.1:${REHEARSAL_PORT:-38080}; see ${REHEARSAL_LOG:-/tmp/rehearsal.log}" >&2
return 1
