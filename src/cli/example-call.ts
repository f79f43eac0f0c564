// The first mission a newcomer runs: a curl sequence against /mcp (initialize, initialized, one
// `batch` with a `#fake write` task), printed by the rehearsal banner and shown in the README.
// curl, not a client package: it needs nothing beyond what a fresh machine has.

/** The example's workspace: world-writable, so the worker (uid 10001 under a root broker) can write it. */
export const EXAMPLE_WORKSPACE = "/tmp/cmw-hello";

/** The shell lines (bash or sh) that run one `#fake write` task on the broker at `mcpUrl`, then show the file. */
export function exampleCall(mcpUrl: string, workspace = EXAMPLE_WORKSPACE): string {
  const init = { jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "curl", version: "1" } } };
  const batch = {
    jsonrpc: "2.0",
    id: 2,
    method: "tools/call",
    params: { name: "batch", arguments: { workspace, mission: { name: "hello", tasks: [{ id: "hello", sandbox: "workspace-write", prompt: "#fake write hello.txt hello from the rehearsal model" }] } } },
  };
  return [
    `mkdir -p -m 777 ${workspace}`,
    `mcp() { curl -sS ${mcpUrl} -H 'content-type: application/json' -H 'accept: application/json, text/event-stream' "$@"; }`,
    `SID=$(mcp -D - -o /dev/null -d '${JSON.stringify(init)}' | tr -d '\\r' | awk 'tolower($1)=="mcp-session-id:" {print $2}')`,
    `mcp -H "mcp-session-id: $SID" -d '{"jsonrpc":"2.0","method":"notifications/initialized"}'`,
    `mcp -H "mcp-session-id: $SID" -d '${JSON.stringify(batch)}'`,
    `cat ${workspace}/hello.txt`,
  ].join("\n");
}

/** What `serve` prints (to stderr) in rehearsal mode: the notice, loudly, and the example call. */
export function rehearsalBanner(notice: string, mcpUrl: string | null): string {
  const rule = "=".repeat(78);
  const lines = [rule, notice, rule];
  if (mcpUrl) lines.push("", "Try a whole mission (one #fake write task) with curl:", "", exampleCall(mcpUrl), "", rule);
  return `${lines.join("\n")}\n`;
}
