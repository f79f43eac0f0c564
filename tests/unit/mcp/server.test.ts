// The broker's MCP server answered over an in-memory transport, without Docker: tools/list and
// the errors of every kind, as the MCP spec (2025-11-25) names them, read through the SDK's own
// client (which also checks every result against the tool's output schema).
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { McpError } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { resolveConfig } from "../../../src/config/load.js";
import { createBrokerServer } from "../../../src/mcp/server.js";
import { MissionRunner } from "../../../src/mission/runner.js";
import { StateStore, type MissionRecord } from "../../../src/state/store.js";
import type { WorkerPool } from "../../../src/pool/pool.js";

let client: Client;
let store: StateStore;
let finished: MissionRecord;
/** What the server told its metrics: one entry per tool call. */
const toolCalls: { tool: string; outcome: string; seconds: number }[] = [];
const root = mkdtempSync(path.join(os.tmpdir(), "cmw-mcp-unit-"));

beforeAll(async () => {
  const config = resolveConfig({ broker: { allowed_workspace_roots: [root], state_dir: path.join(root, "state") } }, "test", {});
  // Only batch and reply run turns; the calls here never reach the pool.
  const pool = { config } as unknown as WorkerPool;
  store = new StateStore(path.join(root, "state"));
  const now = new Date().toISOString();
  finished = {
    missionId: store.newMissionId(), name: "done", status: "succeeded", workspace: root, createdAt: now, updatedAt: now, finishedAt: now, bundle: null,
    tasks: [{ id: "t", status: "succeeded", conversationId: "conv_x", finalMessage: "wrote out/a.txt", error: null, container: "c", startedAt: now, finishedAt: now, artifacts: [{ path: "out/a.md", size: 5, sha256: "0".repeat(64) }] }],
  };
  store.createMission(finished, {});
  const dir = path.join(store.missionDir(finished.missionId), "artifacts", "t", "out");
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, "a.md"), "# hi\n");
  const metrics = { toolCall: (tool: string, outcome: string, seconds: number) => void toolCalls.push({ tool, outcome, seconds }) };
  const server = createBrokerServer({ pool, store, runner: new MissionRunner(pool, store), metrics });
  const [a, b] = InMemoryTransport.createLinkedPair();
  await server.connect(a);
  client = new Client({ name: "unit", version: "0" });
  await client.connect(b);
  await client.listTools(); // the client now checks results against the output schemas
});

afterAll(async () => {
  await client?.close();
});

async function rpcError(p: Promise<unknown>): Promise<McpError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e, "a JSON-RPC error").toBeInstanceOf(McpError);
  return e as McpError;
}

describe("the broker's MCP server, without Docker", () => {
  it("lists four tools whose output schemas are objects that admit a result and a failure", async () => {
    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name)).toEqual(["batch", "reply", "status", "cancel"]);
    for (const t of tools) {
      expect(t.outputSchema?.type).toBe("object");
      expect(JSON.stringify(t.outputSchema)).toContain('"code"');
    }
    expect(Object.keys(tools.find((t) => t.name === "batch")!.inputSchema.properties ?? {})).toContain("detach");
    expect(Object.keys(tools.find((t) => t.name === "reply")!.inputSchema.properties ?? {})).toContain("detach");
  });

  it("each tool call goes to the metrics with its tool, outcome and duration; a call of no tool does not", async () => {
    toolCalls.length = 0;
    await client.callTool({ name: "status", arguments: { missionId: finished.missionId } });
    await client.callTool({ name: "status", arguments: { missionId: "m-00000000000000-000000" } });
    await client.callTool({ name: "cancel", arguments: {} });
    await rpcError(client.callTool({ name: "bogus", arguments: {} }));
    expect(toolCalls.map(({ tool, outcome }) => [tool, outcome])).toEqual([
      ["status", "ok"],
      ["status", "error"],
      ["cancel", "error"],
    ]);
    for (const c of toolCalls) expect(c.seconds).toBeGreaterThan(0);
  });

  it("an unknown tool is a protocol error -32602 with one 'MCP error' prefix", async () => {
    const e = await rpcError(client.callTool({ name: "bogus", arguments: {} }));
    expect(e.code).toBe(-32602);
    expect(e.message).toMatch(/^MCP error -32602: Unknown tool: bogus; this server's tools are batch, reply, status, cancel$/);
  });

  it("a request that is not a tools/call or resources/read request is a protocol error -32602, said once", async () => {
    const calls: [unknown, RegExp][] = [
      [{ method: "tools/call", params: { arguments: {} } }, /^MCP error -32602: tools\/call: params\.name: missing; this key is required/],
      [{ method: "tools/call", params: { name: "status", arguments: 5 } }, /^MCP error -32602: tools\/call: params\.arguments: /],
      [{ method: "resources/read", params: {} }, /^MCP error -32602: resources\/read: params\.uri: missing/],
    ];
    for (const [req, message] of calls) {
      const e = await rpcError(client.request(req as Parameters<Client["request"]>[0], z.unknown()));
      expect(e.code).toBe(-32602);
      expect(e.message).toMatch(message);
    }
  });

  it("arguments that do not fit are a tool execution error with code INVALID_ARGUMENTS", async () => {
    const r = await client.callTool({ name: "reply", arguments: { conversationId: 7 } });
    expect(r.isError).toBe(true);
    expect(r.structuredContent).toMatchObject({ code: "INVALID_ARGUMENTS" });
    const { message } = r.structuredContent as { message: string };
    expect(message).toMatch(/^reply: conversationId: .*\nprompt: |^reply: conversationId: .*; prompt: /);
    expect((r.content as { text: string }[])[0]!.text).toBe(`INVALID_ARGUMENTS: ${message}`);
  });

  it("a tool-level failure carries the failing error's own code and message", async () => {
    const outside = await client.callTool({ name: "batch", arguments: { workspace: "/etc", mission: { name: "m", tasks: [{ id: "a", prompt: "p" }] } } });
    expect(outside.isError).toBe(true);
    expect(outside.structuredContent).toMatchObject({ code: "WORKSPACE_REFUSED", message: expect.stringMatching(/\/etc is outside the allowed workspace roots/) });
    const invalid = await client.callTool({ name: "batch", arguments: { workspace: root, mission: { name: "m", tasks: [{ id: "a", prompt: "p", sandbox: "root" }] } } });
    expect(invalid.structuredContent).toMatchObject({ code: "MISSION_INVALID" });
    const unknown = await client.callTool({ name: "status", arguments: { missionId: "m-20260101000000-abcdef" } });
    expect(unknown.structuredContent).toMatchObject({ code: "NOT_FOUND", message: "missionId: no mission m-20260101000000-abcdef; call status without an id to list recent missions" });
    const malformed = await client.callTool({ name: "status", arguments: { missionId: "../etc" } });
    expect(malformed.structuredContent).toMatchObject({ code: "NOT_FOUND" });
    const ended = await client.callTool({ name: "cancel", arguments: { missionId: finished.missionId } });
    expect(ended.structuredContent).toMatchObject({ code: "NOT_RUNNING" });
  });

  it("status gives the whole record, a resource_link per artifact, and the artifact reads with its MIME type", async () => {
    const r = await client.callTool({ name: "status", arguments: { missionId: finished.missionId } });
    expect(r.isError).toBeFalsy();
    const uri = `codex-wrapper://missions/${finished.missionId}/artifacts/t/out/a.md`;
    expect(r.content).toContainEqual(expect.objectContaining({ type: "resource_link", uri, name: "out/a.md", title: "out/a.md", mimeType: "text/markdown", size: 5 }));
    const { resources } = await client.listResources();
    expect(resources).toContainEqual(expect.objectContaining({ uri, title: "out/a.md", mimeType: "text/markdown", size: 5 }));
    expect((await client.readResource({ uri })).contents[0]).toMatchObject({ uri, mimeType: "text/markdown", text: "# hi\n" });
    const final = `codex-wrapper://missions/${finished.missionId}/tasks/t/final-message`;
    expect((await client.readResource({ uri: final })).contents[0]).toMatchObject({ text: "wrote out/a.txt" });
  });

  it("status with since lists only the tasks changed after that cursor; a since that is not a cursor, or without a missionId, names the fix", async () => {
    const whole = await client.callTool({ name: "status", arguments: { missionId: finished.missionId } });
    const { cursor, counts, tasks } = whole.structuredContent as { cursor: string; counts: Record<string, number>; tasks: unknown[] };
    expect(cursor).toMatch(/^[0-9a-f]{8}\.\d+$/);
    expect(counts).toMatchObject({ succeeded: 1, queued: 0, failed: 0 });
    expect(tasks).toHaveLength(1);
    expect(whole.structuredContent).not.toHaveProperty("changedAfter");
    const changes = await client.callTool({ name: "status", arguments: { missionId: finished.missionId, since: cursor } });
    expect(changes.isError).toBeFalsy();
    expect(changes.structuredContent).toMatchObject({ missionId: finished.missionId, status: "succeeded", tasks: [], counts, cursor, changedAfter: cursor });
    expect(changes.content).toEqual([{ type: "text", text: expect.stringContaining(`0 changed after ${cursor}`) }]); // no links: no task listed
    const notCursor = await client.callTool({ name: "status", arguments: { missionId: finished.missionId, since: "yesterday" } });
    expect(notCursor.structuredContent).toMatchObject({ code: "INVALID_ARGUMENTS", message: expect.stringMatching(/^status: since: not a cursor: pass the `cursor` of an earlier status or batch result, or leave since out/) });
    const noMission = await client.callTool({ name: "status", arguments: { since: cursor } });
    expect(noMission.structuredContent).toMatchObject({ code: "INVALID_ARGUMENTS", message: "since: a cursor names a moment of one mission's result; give its missionId too, or leave since out" });
  });

  it("a missing resource is -32002 with the URI in data: no artifact, no mission, a malformed id, no template", async () => {
    const cases = [
      `codex-wrapper://missions/${finished.missionId}/artifacts/t/out/none.txt`,
      "codex-wrapper://missions/m-20260101000000-abcdef/artifacts/t/a.txt",
      "codex-wrapper://missions/not-an-id/artifacts/t/a.txt",
      `codex-wrapper://missions/${finished.missionId}/artifacts/t/../../record.json`,
      "codex-wrapper://elsewhere/x",
    ];
    for (const uri of cases) {
      const e = await rpcError(client.readResource({ uri }));
      expect(e.code, uri).toBe(-32002);
      expect(e.message.match(/MCP error/g), `one prefix: ${e.message}`).toHaveLength(1);
      expect((e.data as { uri: string }).uri).toBe(uri);
    }
  });
});
