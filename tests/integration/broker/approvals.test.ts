// Approvals forwarded by MCP elicitation, end to end: the SDK's own Client (with and without the
// elicitation capability), the broker over Streamable HTTP, the pool and the real Codex
// (app-server, approval_policy "untrusted") in the rehearsal image. An accepted approval lets the
// command run (its file exists), a declined one does not; a client without the capability, and a
// client that does not answer within approval_timeout, get their tasks' approvals declined; each
// approval is in the task's notes and events.
import { existsSync, readFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { serve, type ServerType } from "@hono/node-server";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { ElicitRequestSchema, type ElicitRequest, type ElicitResult } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Broker } from "../../../src/broker.js";
import { createApp } from "../../../src/http/app.js";
import { LABELS } from "../../../src/worker/container.js";
import { INSTANCE_PREFIX, makeWorkspace } from "../support/env.js";
import { docker, testConfig } from "../support/pool.js";

const RUN = `approvals-${process.pid}`;
let broker: Broker;
let http: ServerType;
let url: URL;
/** A client that declared elicitation: `answer` says what it answers each question. */
let asking: Client;
/** A client that did not. */
let plain: Client;
let answer: (q: ElicitRequest["params"]) => Promise<ElicitResult>;
const questions: ElicitRequest["params"][] = [];

interface TaskOut { id: string; status: string; conversationId: string | null; finalMessage: string | null; notes?: string[] }
interface MissionOut { missionId: string; status: string; tasks: TaskOut[] }

beforeAll(async () => {
  broker = new Broker(testConfig({ run: RUN, workers: [{ name: "default", capacity: 4, max_containers: 1, approval_policy: "untrusted" }] }));
  await broker.start();
  http = serve({ fetch: createApp({ broker }).fetch, hostname: "127.0.0.1", port: 0 });
  await new Promise((r) => http.once("listening", r));
  url = new URL(`http://127.0.0.1:${(http.address() as AddressInfo).port}/mcp`);
  asking = new Client({ name: "asking", version: "0" }, { capabilities: { elicitation: {} } });
  asking.setRequestHandler(ElicitRequestSchema, (req) => {
    questions.push(req.params);
    return answer(req.params);
  });
  await asking.connect(new StreamableHTTPClientTransport(url));
  plain = new Client({ name: "plain", version: "0" });
  await plain.connect(new StreamableHTTPClientTransport(url));
});

afterAll(async () => {
  await asking?.close();
  await plain?.close();
  await broker?.stop();
  await new Promise((r) => http?.close(r));
  for (const c of await docker.listByLabels({ [LABELS.instance]: `${INSTANCE_PREFIX}-test-${RUN}` })) await docker.remove(c.id);
});

/** Runs a one-task mission that writes `file` (a command Codex asks approval for under "untrusted"). */
async function writeTask(client: Client, ws: string, file: string, extra: Record<string, unknown> = {}): Promise<{ mission: MissionOut; task: TaskOut; events: { type: string; why?: string }[] }> {
  const r = await client.callTool({ name: "batch", arguments: { workspace: ws, mission: { name: "approvals", tasks: [{ id: "t1", prompt: `#fake write ${file} made`, ...extra }] } } }, undefined, { timeout: 170_000 });
  expect(r.isError).toBeFalsy();
  const mission = r.structuredContent as MissionOut;
  const file_ = path.join(broker.store.missionDir(mission.missionId), "tasks", "t1", "events.jsonl");
  const events = readFileSync(file_, "utf8").trim().split("\n").map((l) => JSON.parse(l) as { type: string; why?: string });
  return { mission, task: mission.tasks[0]!, events };
}

const approvalEvents = (events: { type: string }[]) => events.filter((e) => e.type === "approval_accepted" || e.type === "approval_declined");

describe("approvals forwarded to the MCP client (app-server driver)", () => {
  it("an accepted approval lets Codex's command run, and is recorded", async () => {
    questions.length = 0;
    answer = async () => ({ action: "accept", content: { decision: "accept" } });
    const ws = makeWorkspace();
    const { task, events } = await writeTask(asking, ws, "accepted.txt");
    expect(task.status).toBe("succeeded");
    expect(readFileSync(path.join(ws, "accepted.txt"), "utf8")).toBe("made");
    expect(task.finalMessage).toMatch(/wrote accepted\.txt/);
    // The question names the task, the command and its directory, and asks for one choice.
    expect(questions).toHaveLength(1);
    const q = questions[0]! as { message: string; requestedSchema: { properties: Record<string, unknown>; required?: string[] } };
    expect(q.message).toMatch(/^Task t1 of mission approvals: Codex asks to run a command/);
    expect(q.message).toContain("accepted.txt");
    expect(q.message).toMatch(/Working directory: \/workspace/);
    expect(q.requestedSchema.required).toEqual(["decision"]);
    expect(task.notes).toContainEqual(expect.stringMatching(/^approval for command .*accepted\.txt.* in \/workspace: accepted by the client$/));
    expect(approvalEvents(events)).toEqual([expect.objectContaining({ type: "approval_accepted", request: "item/commandExecution/requestApproval" })]);
  });

  it("a declined approval keeps Codex's command from running, and is recorded", async () => {
    questions.length = 0;
    answer = async () => ({ action: "accept", content: { decision: "decline" } });
    const ws = makeWorkspace();
    const { task, events } = await writeTask(asking, ws, "declined.txt");
    expect(questions).toHaveLength(1);
    expect(existsSync(path.join(ws, "declined.txt"))).toBe(false);
    expect(task.finalMessage).toMatch(/write declined\.txt failed/);
    expect(task.notes).toContainEqual(expect.stringMatching(/declined\.txt.*: declined by the client$/));
    expect(approvalEvents(events)).toEqual([expect.objectContaining({ type: "approval_declined", why: "client_declined" })]);
  });

  it("a client that dismisses the question (cancel) declines", async () => {
    questions.length = 0;
    answer = async () => ({ action: "cancel" });
    const ws = makeWorkspace();
    const { task, events } = await writeTask(asking, ws, "dismissed.txt");
    expect(questions).toHaveLength(1);
    expect(existsSync(path.join(ws, "dismissed.txt"))).toBe(false);
    expect(approvalEvents(events)).toEqual([expect.objectContaining({ type: "approval_declined", why: "client_cancelled" })]);
    expect(task.notes).toContainEqual(expect.stringMatching(/declined: the client dismissed the question$/));
  });

  it("a client without the elicitation capability is not asked: the approval is declined and recorded", async () => {
    questions.length = 0;
    answer = async () => ({ action: "accept", content: { decision: "accept" } });
    const ws = makeWorkspace();
    const { task, events } = await writeTask(plain, ws, "unasked.txt");
    expect(questions).toHaveLength(0);
    expect(existsSync(path.join(ws, "unasked.txt"))).toBe(false);
    expect(task.finalMessage).toMatch(/write unasked\.txt failed/);
    expect(approvalEvents(events)).toEqual([expect.objectContaining({ type: "approval_declined", why: "no_client" })]);
    expect(task.notes).toContainEqual(expect.stringMatching(/unasked\.txt.*: declined: no client to ask/));
  });

  it("no answer within the task's approval_timeout declines", async () => {
    questions.length = 0;
    answer = () => new Promise<ElicitResult>(() => {}); // never answers
    const ws = makeWorkspace();
    const { task, events } = await writeTask(asking, ws, "late.txt", { approval_timeout: "2s" });
    expect(questions).toHaveLength(1);
    expect(existsSync(path.join(ws, "late.txt"))).toBe(false);
    expect(task.status).toBe("succeeded"); // the turn goes on without the command
    expect(approvalEvents(events)).toEqual([expect.objectContaining({ type: "approval_declined", why: "timed_out" })]);
    expect(task.notes).toContainEqual(expect.stringMatching(/late\.txt.*: declined: no answer within approval_timeout \(2000 ms\)$/));
  });

  it("a client that ends its session while asked declines, and the task runs on", async () => {
    const leaving = new Client({ name: "leaving", version: "0" }, { capabilities: { elicitation: {} } });
    let asked!: () => void;
    const wasAsked = new Promise<void>((r) => (asked = r));
    leaving.setRequestHandler(ElicitRequestSchema, () => {
      asked();
      return new Promise<ElicitResult>(() => {}); // gone before it answers
    });
    const transport = new StreamableHTTPClientTransport(url);
    await leaving.connect(transport);
    const ws = makeWorkspace();
    const call = leaving.callTool({ name: "batch", arguments: { workspace: ws, mission: { name: "leaving", tasks: [{ id: "t1", prompt: "#fake write gone.txt made" }] } } }, undefined, { timeout: 170_000 }).catch(() => null);
    await wasAsked;
    // Ends its session (DELETE), as a client that quits does; a dropped stream alone is not an end
    // (Streamable HTTP lets a client resume): that one is declined at approval_timeout.
    await transport.terminateSession();
    await leaving.close();
    await call;
    const [m] = ((await plain.callTool({ name: "status", arguments: {} })).structuredContent as { missions: { missionId: string; name: string }[] }).missions.filter((x) => x.name === "leaving");
    let task: TaskOut | undefined;
    for (let i = 0; i < 300 && !task; i++) {
      const r = (await plain.callTool({ name: "status", arguments: { missionId: m!.missionId } })).structuredContent as MissionOut;
      if (r.status !== "running") task = r.tasks[0];
      else await new Promise((r) => setTimeout(r, 200));
    }
    expect(task?.status).toBe("succeeded");
    expect(existsSync(path.join(ws, "gone.txt"))).toBe(false);
    expect(task?.notes).toContainEqual(expect.stringMatching(/gone\.txt.*: declined: the client went away before answering/));
  });

  // The container is the sandbox: Codex runs with danger-full-access, where on-request has nothing
  // to escalate from. A model that asks anyway (sandbox_permissions: "require_escalated") is not
  // asked about: the command runs. Only "untrusted" makes this Codex ask (docs/mcp.md).
  it("on-request: an escalation the model asks for runs without a question (Codex runs with danger-full-access)", async () => {
    questions.length = 0;
    answer = async () => ({ action: "accept", content: { decision: "decline" } });
    const ws = makeWorkspace();
    const r = await asking.callTool({ name: "batch", arguments: { workspace: ws, mission: { name: "approvals", tasks: [{ id: "t1", prompt: "#fake run-escalated touch escalated.txt", approval_policy: "on-request" }] } } }, undefined, { timeout: 170_000 });
    const task = (r.structuredContent as MissionOut).tasks[0]!;
    expect(task.finalMessage).toMatch(/^ran touch escalated\.txt:/);
    expect(questions).toHaveLength(0);
    expect(existsSync(path.join(ws, "escalated.txt"))).toBe(true);
    expect(task.notes ?? []).not.toContainEqual(expect.stringMatching(/^approval for /));
  });

  it("reply forwards its turn's approvals to its own client", async () => {
    answer = async () => ({ action: "accept", content: { decision: "accept" } });
    const ws = makeWorkspace();
    const { task } = await writeTask(asking, ws, "first.txt");
    questions.length = 0;
    const r = await asking.callTool({ name: "reply", arguments: { conversationId: task.conversationId, prompt: "#fake write second.txt again" } }, undefined, { timeout: 170_000 });
    expect(r.isError).toBeFalsy();
    expect(questions).toHaveLength(1);
    expect((questions[0] as { message: string }).message).toMatch(new RegExp(`^Conversation ${task.conversationId}: Codex asks to run a command`));
    expect(readFileSync(path.join(ws, "second.txt"), "utf8")).toBe("again");
    expect((r.structuredContent as TaskOut).notes).toContainEqual(expect.stringMatching(/second\.txt.*: accepted by the client$/));
  });
});
