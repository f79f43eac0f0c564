// What a client reads from the broker (issue 21, items 1–3), through the SDK's own client, the
// broker and the real Codex in the rehearsal image: a result whose text carries every task whole
// with resource_link items for its artifacts; progress that strictly increases against a total
// that holds still; each error as the MCP spec names it; and a cancelled call that cancels its
// mission's tasks, unless it said detach.
import type { AddressInfo } from "node:net";
import { serve, type ServerType } from "@hono/node-server";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { McpError, type Progress } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Broker } from "../../../src/broker.js";
import { createApp } from "../../../src/http/app.js";
import { LABELS } from "../../../src/worker/container.js";
import { INSTANCE_PREFIX, makeWorkspace } from "../support/env.js";
import { docker, testConfig } from "../support/pool.js";
import { untilValue } from "../support/wait.js";

const RUN = `results-${process.pid}`;
let broker: Broker;
let http: ServerType;
let client: Client;
let ws: string;

interface TaskOut { id: string; status: string; conversationId: string | null; finalMessage: string | null; artifacts: { path: string; size: number }[] }
interface MissionOut { missionId: string; status: string; tasks: TaskOut[] }
type Content = { type: "text"; text: string } | { type: "resource_link"; uri: string; name: string; title?: string; mimeType?: string; size?: number };

beforeAll(async () => {
  broker = new Broker(testConfig({ run: RUN, workers: [{ name: "default", capacity: 3, max_containers: 2 }] }));
  await broker.start();
  http = serve({ fetch: createApp({ broker }).fetch, hostname: "127.0.0.1", port: 0 });
  await new Promise((r) => http.once("listening", r));
  client = new Client({ name: "results", version: "0" });
  await client.connect(new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${(http.address() as AddressInfo).port}/mcp`)));
  await client.listTools(); // from here the client checks every result against its tool's output schema
  ws = makeWorkspace();
});

afterAll(async () => {
  await client?.close().catch(() => {});
  await broker?.stop();
  await new Promise((r) => http?.close(r));
  for (const c of await docker.listByLabels({ [LABELS.instance]: `${INSTANCE_PREFIX}-test-${RUN}` })) await docker.remove(c.id);
});

async function rpcError(p: Promise<unknown>): Promise<McpError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e, "a JSON-RPC error, not a result").toBeInstanceOf(McpError);
  return e as McpError;
}

/** The mission of this name that the broker started last. */
const missionNamed = (name: string) => broker.store.listMissions(50).find((m) => m.name === name);

/** The first test's mission (its conversations serve the reply test). */
let first: MissionOut;

describe("results, progress and errors", () => {
  it("a 3-task batch: the text has every task's whole final message and its artifacts, a resource_link each; progress strictly increases to a total that holds still", async () => {
    const progress: Progress[] = [];
    const r = await client.callTool(
      {
        name: "batch",
        arguments: { workspace: ws, mission: { name: "whole", tasks: [1, 2, 3].map((i) => ({ id: `w${i}`, prompt: `#fake sleep 300\n#fake write out/w${i}.txt data ${i}\n#fake run echo line one; echo line two`, sandbox: "workspace-write", artifacts: [`out/w${i}.txt`] })) } },
      },
      undefined,
      { onprogress: (p) => progress.push(p), timeout: 170_000 },
    );
    expect(r.isError).toBeFalsy();
    first = r.structuredContent as MissionOut;
    expect(first.tasks.map((t) => t.status)).toEqual(["succeeded", "succeeded", "succeeded"]);
    const content = r.content as Content[];
    const text = content.filter((c) => c.type === "text").map((c) => c.text).join("\n");
    for (const t of first.tasks) {
      // Several lines each (the slept line, the written file, the command's output): all of them.
      expect(t.finalMessage!.split("\n").length, t.finalMessage!).toBeGreaterThan(3);
      expect(text).toContain(`## task ${t.id}: succeeded`);
      expect(text).toContain(t.finalMessage!);
      expect(text).toContain(`conversation: ${t.conversationId}`);
      const uri = `codex-wrapper://missions/${first.missionId}/artifacts/${t.id}/out/${t.id}.txt`;
      expect(text).toContain(`out/${t.id}.txt (${t.artifacts[0]!.size} bytes, sha256 `);
      expect(text).toContain(uri);
      expect(content).toContainEqual({ type: "resource_link", uri, name: `out/${t.id}.txt`, title: `out/${t.id}.txt`, mimeType: "text/plain", size: t.artifacts[0]!.size, description: expect.stringContaining(`artifact of task ${t.id}`) });
    }
    const link = content.find((c): c is Extract<Content, { type: "resource_link" }> => c.type === "resource_link")!;
    expect((await client.readResource({ uri: link.uri })).contents[0]).toMatchObject({ uri: link.uri, mimeType: "text/plain", text: "data 1" });

    expect(progress.length, "a notification per start, command, message and end at least").toBeGreaterThanOrEqual(9);
    for (let i = 1; i < progress.length; i++) expect(progress[i]!.progress, `notification ${i} of ${JSON.stringify(progress)}`).toBeGreaterThan(progress[i - 1]!.progress);
    expect(new Set(progress.map((p) => p.total))).toEqual(new Set([3]));
    expect(progress.at(-1)!.progress).toBe(3);
    // A finished task counts 1 (running ones a fraction each): the k-th end is at k at least.
    const ends = progress.filter((p) => / succeeded$/.test(p.message ?? ""));
    expect(ends).toHaveLength(3);
    ends.forEach((p, i) => expect(p.progress).toBeGreaterThanOrEqual(i + 1));
  });

  it("status gives the same whole text and links; an artifact resource has its own title and MIME type", async () => {
    const r = await client.callTool({ name: "status", arguments: { missionId: first.missionId } });
    const content = r.content as Content[];
    for (const t of first.tasks) expect((content[0] as { text: string }).text).toContain(t.finalMessage!);
    expect(content.filter((c) => c.type === "resource_link")).toHaveLength(3);
    const { resources } = await client.listResources();
    const mine = resources.filter((x) => x.uri.includes(first.missionId));
    expect(mine.map((x) => [x.title, x.mimeType]).sort()).toEqual([1, 2, 3].map((i) => [`out/w${i}.txt`, "text/plain"]));
  });

  it("errors: -32002 for a missing artifact, an unknown mission and a malformed id; -32602 for an unknown tool; isError with the failing error's code otherwise", async () => {
    const missing = [
      `codex-wrapper://missions/${first.missionId}/artifacts/w1/out/none.txt`,
      "codex-wrapper://missions/m-20260101000000-abcdef/artifacts/w1/out/w1.txt",
      "codex-wrapper://missions/not-a-mission-id/artifacts/w1/out/w1.txt",
    ];
    for (const uri of missing) {
      const e = await rpcError(client.readResource({ uri }));
      expect(e.code, uri).toBe(-32002);
      expect(e.message.startsWith("MCP error -32002: "), e.message).toBe(true);
      expect(e.message.indexOf("MCP error", 1), `one prefix: ${e.message}`).toBe(-1);
      expect(e.data).toMatchObject({ uri, code: "NOT_FOUND" });
    }

    const unknownTool = await rpcError(client.callTool({ name: "launch", arguments: {} }));
    expect(unknownTool.code).toBe(-32602);
    expect(unknownTool.message).toBe("MCP error -32602: Unknown tool: launch; this server's tools are batch, reply, status, cancel");

    // The spec (2025-11-25) makes arguments that do not fit a tool execution error, for the model to correct.
    const invalid = await client.callTool({ name: "batch", arguments: { workspace: ws, wait: "yes", mission: { name: "x", tasks: [] } } });
    expect(invalid.isError).toBe(true);
    expect(invalid.structuredContent).toMatchObject({ code: "INVALID_ARGUMENTS", message: expect.stringMatching(/^batch: wait: /) });

    const failures: [string, Record<string, unknown>, string, RegExp][] = [
      ["batch", { workspace: "/etc", mission: { name: "m", tasks: [{ id: "a", prompt: "p" }] } }, "WORKSPACE_REFUSED", /\/etc is outside the allowed workspace roots/],
      ["batch", { workspace: ws, mission: { name: "m", tasks: [{ id: "a", prompt: "p", sandbox: "root" }] } }, "MISSION_INVALID", /tasks\[0\] \("a"\)\.sandbox/],
      ["reply", { conversationId: "conv_nope", prompt: "hi" }, "NOT_FOUND", /^conversationId: no conversation conv_nope; use an id returned by batch or reply$/],
      ["status", { missionId: "m-20260101000000-abcdef" }, "NOT_FOUND", /^missionId: no mission m-20260101000000-abcdef/],
      ["status", { missionId: "../../etc" }, "NOT_FOUND", /is not a mission id/],
      ["cancel", { missionId: first.missionId }, "NOT_RUNNING", /is not running/],
    ];
    for (const [name, args, code, message] of failures) {
      const r = await client.callTool({ name, arguments: args });
      expect(r.isError, `${name} ${JSON.stringify(args)}`).toBe(true);
      expect(r.structuredContent, `${name} ${JSON.stringify(args)}`).toMatchObject({ code, message: expect.stringMatching(message) });
      const { message: said } = r.structuredContent as { message: string };
      expect((r.content as { text: string }[])[0]!.text, "the text is the same error, not re-worded").toBe(`${code}: ${said}`);
    }
  });
});

describe("a cancelled call", () => {
  it("batch: a client that cancels its waiting call cancels the mission's tasks", async () => {
    const abort = new AbortController();
    const call = client.callTool({ name: "batch", arguments: { workspace: ws, mission: { name: "aborted", tasks: [{ id: "s1", prompt: "#fake sleep 60000" }, { id: "s2", prompt: "#fake sleep 60000" }] } } }, undefined, { signal: abort.signal, timeout: 170_000 });
    const rejected = call.then(() => "resolved", () => "rejected");
    const m = await untilValue(() => missionNamed("aborted"), (x) => x?.tasks.every((t) => t.status === "running") ?? false, 90_000, "both tasks run");
    await new Promise((r) => setTimeout(r, 1500)); // the sleeps are under way
    abort.abort("the user pressed Esc");
    expect(await rejected).toBe("rejected");
    const end = await untilValue(() => broker.runner.status(m!.missionId), (x) => x.status !== "running", 30_000, "the mission ends once its call is cancelled");
    expect(end.status).toBe("cancelled");
    expect(end.tasks.map((t) => t.status)).toEqual(["cancelled", "cancelled"]);
    await untilValue(() => broker.pool.stats().inFlight, (n) => n === 0, 15_000, "no turn is left running");
  });

  it("batch with detach: true: the mission runs on to its end after the call is cancelled", async () => {
    const abort = new AbortController();
    const call = client.callTool({ name: "batch", arguments: { workspace: ws, detach: true, mission: { name: "detached", tasks: [{ id: "d", prompt: "#fake sleep 4000\n#fake write out/detached.txt still here", sandbox: "workspace-write", artifacts: ["out/detached.txt"] }] } } }, undefined, { signal: abort.signal, timeout: 170_000 });
    call.catch(() => {});
    const m = await untilValue(() => missionNamed("detached"), (x) => x?.tasks[0]?.status === "running", 90_000, "the task runs");
    await new Promise((r) => setTimeout(r, 1000));
    abort.abort("the user pressed Esc");
    await new Promise((r) => setTimeout(r, 1000));
    expect(broker.runner.status(m!.missionId).tasks[0]!.status, "still running after the cancel").toBe("running");
    const end = await untilValue(() => broker.runner.status(m!.missionId), (x) => x.status !== "running", 90_000, "the mission ends");
    expect(end.status).toBe("succeeded");
    expect(end.tasks[0]!.artifacts.map((a) => a.path)).toEqual(["out/detached.txt"]);
  });

  it("reply: a cancelled call interrupts the turn and frees its lane", async () => {
    const abort = new AbortController();
    const call = client.callTool({ name: "reply", arguments: { conversationId: first.tasks[0]!.conversationId, prompt: "#fake sleep 60000" } }, undefined, { signal: abort.signal, timeout: 170_000 });
    call.catch(() => {});
    await untilValue(() => broker.pool.stats().inFlight, (n) => n === 1, 60_000, "the reply's turn runs");
    await new Promise((r) => setTimeout(r, 1500));
    abort.abort("the user pressed Esc");
    await untilValue(() => broker.pool.stats().inFlight, (n) => n === 0, 20_000, "the turn is interrupted once its call is cancelled");
  });
});

describe("replies to one conversation at once", () => {
  interface ReplyOut { status: string; finalMessage: string | null; error: string | null; notes?: string[] }
  const reply = (conversationId: string, prompt: string, signal?: AbortSignal, onprogress?: (p: Progress) => void) =>
    client.callTool({ name: "reply", arguments: { conversationId, prompt } }, undefined, { timeout: 170_000, signal, ...(onprogress ? { onprogress } : {}) }).then((r) => r.structuredContent as ReplyOut);

  it("a second reply sent while a turn runs waits for it and then runs, in order; one cancelled while it waits never runs", async () => {
    const r = await client.callTool({ name: "batch", arguments: { workspace: ws, mission: { name: "queued-replies", tasks: [{ id: "q", prompt: "start" }] } } }, undefined, { timeout: 170_000 });
    const conv = (r.structuredContent as MissionOut).tasks[0]!.conversationId!;
    expect(conv).toMatch(/^conv_/);

    const slow = reply(conv, "#fake sleep 3000\nslow one");
    await untilValue(() => broker.pool.stats().inFlight, (n) => n === 1, 60_000, "the slow reply's turn runs");
    const progress: Progress[] = [];
    const next = reply(conv, "#fake run echo hi\n#fake recall\nnext one", undefined, (p) => progress.push(p));
    const waitingGauge = async (): Promise<string | undefined> => /^codex_wrapper_replies_waiting (\d+)$/m.exec((await broker.metrics.render()).body)?.[1];
    await untilValue(waitingGauge, (v) => v === "1", 15_000, "the second reply to wait (/metrics)");
    const a = await slow;
    const b = await next;
    expect(await waitingGauge()).toBe("0");
    // Codex refuses a second turn of a thread while one runs: before the queue, b failed at once
    // ("thread … already has a turn running").
    expect(a.status, a.error ?? "").toBe("succeeded");
    expect(b.status, b.error ?? "").toBe("succeeded");
    expect(a.notes ?? []).not.toContainEqual(expect.stringContaining("waited"));
    expect(b.notes).toContainEqual(expect.stringMatching(/^waited \d+\.\d s for the conversation's earlier turn to end/));
    // b ran after a, on the same thread: its model saw a's message before its own.
    const heard = JSON.parse(/recall: (.*)/.exec(b.finalMessage!)![1]!) as string[];
    expect(heard.map((m) => m.split("\n").at(-1))).toEqual(["start", "slow one", "next one"]);
    // Its progress: the wait, its command, its message, its end; strictly increasing to a total of 1.
    expect(progress.map((p) => p.message)).toEqual(["waiting for the conversation's earlier turn to end (one turn of a conversation runs at a time)", expect.stringMatching(/^\$ .*echo hi/), expect.stringMatching(/^ran echo hi/), "reply succeeded"]);
    for (let i = 1; i < progress.length; i++) expect(progress[i]!.progress).toBeGreaterThan(progress[i - 1]!.progress);
    expect(progress.every((p) => p.total === 1)).toBe(true);
    expect(progress.at(-1)!.progress).toBe(1);

    // Cancelled while it waits: it ends at once, and the turn asked after it still runs after the first.
    const abort = new AbortController();
    const slow2 = reply(conv, "#fake sleep 3000\nslow two");
    await untilValue(() => broker.pool.stats().inFlight, (n) => n === 1, 60_000, "the second slow reply's turn runs");
    const dropped = reply(conv, "dropped one", abort.signal).then(() => "resolved", () => "rejected");
    const last = reply(conv, "#fake recall\nlast one");
    await untilValue(waitingGauge, (v) => v === "2", 15_000, "both replies to wait (/metrics)");
    abort.abort("the user pressed Esc");
    expect(await dropped).toBe("rejected");
    expect((await slow2).status).toBe("succeeded");
    const l = await last;
    expect(l.status, l.error ?? "").toBe("succeeded");
    const heard2 = JSON.parse(/recall: (.*)/.exec(l.finalMessage!)![1]!) as string[];
    expect(heard2.map((m) => m.split("\n").at(-1))).toEqual(["start", "slow one", "next one", "slow two", "last one"]);
    await untilValue(() => broker.pool.stats().inFlight, (n) => n === 0, 15_000, "no turn is left running");
  });
});
