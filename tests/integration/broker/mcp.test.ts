// End to end through a real MCP client (the SDK's own Client), the broker, the pool and the real
// Codex in the rehearsal image: batch (with progress), reply, status, cancel, over Streamable
// HTTP and stdio; and the HTTP endpoint's Host, Origin and token checks.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { serve, type ServerType } from "@hono/node-server";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Broker } from "../../../src/broker.js";
import { createApp } from "../../../src/http/app.js";
import { LABELS } from "../../../src/worker/container.js";
import { INSTANCE_PREFIX, makeWorkspace, REHEARSAL_IMAGE, TEST_API_KEY } from "../support/env.js";
import { docker, recalled, testConfig } from "../support/pool.js";
import { within } from "../support/wait.js";

const RUN = `mcp-${process.pid}`;
let broker: Broker;
let http: ServerType;
let url: URL;
let client: Client;

interface TaskOut { id: string; status: string; conversationId: string | null; finalMessage: string | null; error: string | null; errorCode?: string; artifacts: { path: string; size: number; sha256: string }[] }
interface MissionOut { missionId: string; status: string; tasks: TaskOut[] }

beforeAll(async () => {
  broker = new Broker(testConfig({ run: RUN, workers: [{ name: "default", capacity: 2, max_containers: 2 }] }));
  await broker.start();
  http = serve({ fetch: createApp({ broker }).fetch, hostname: "127.0.0.1", port: 0 });
  await new Promise((r) => http.once("listening", r));
  url = new URL(`http://127.0.0.1:${(http.address() as AddressInfo).port}/mcp`);
  client = new Client({ name: "e2e", version: "0" });
  await client.connect(new StreamableHTTPClientTransport(url));
});

afterAll(async () => {
  await client?.close();
  await broker?.stop();
  await new Promise((r) => http?.close(r));
  for (const label of [`${INSTANCE_PREFIX}-test-${RUN}`, `${INSTANCE_PREFIX}-stdio-${process.pid}`]) for (const c of await docker.listByLabels({ [LABELS.instance]: label })) await docker.remove(c.id);
});

async function call(name: string, args: Record<string, unknown>, onprogress?: (p: { message?: string }) => void) {
  return client.callTool({ name, arguments: args }, undefined, { onprogress, timeout: 170_000 });
}

describe("the broker over Streamable HTTP", () => {
  let first: MissionOut;
  let ws: string;

  it("batch runs three tasks, streams progress before the result, and returns results and artifacts", async () => {
    ws = makeWorkspace();
    const progress: string[] = [];
    let lastProgressAt = 0;
    const r = await call(
      "batch",
      { workspace: ws, mission: { name: "e2e", tasks: [1, 2, 3].map((i) => ({ id: `w${i}`, prompt: `#fake write out/w${i}.txt data ${i}`, sandbox: "workspace-write", artifacts: [`out/w${i}.txt`] })) } },
      (p) => {
        lastProgressAt = Date.now();
        progress.push(p.message ?? "");
      },
    );
    const resultAt = Date.now();
    expect(r.isError).toBeFalsy();
    first = r.structuredContent as MissionOut;
    expect(first.status).toBe("succeeded");
    expect(first.tasks.map((t) => t.status)).toEqual(["succeeded", "succeeded", "succeeded"]);
    for (const t of first.tasks) {
      expect(t.conversationId).toMatch(/^conv_/);
      const content = `data ${t.id.slice(1)}`;
      expect(readFileSync(path.join(ws, `out/${t.id}.txt`), "utf8")).toBe(content);
      expect(t.artifacts).toEqual([{ path: `out/${t.id}.txt`, size: content.length, sha256: createHash("sha256").update(content).digest("hex") }]);
    }
    expect(progress.filter((m) => / started on /.test(m))).toHaveLength(3);
    expect(progress.filter((m) => /succeeded$/.test(m))).toHaveLength(3);
    expect(lastProgressAt).toBeLessThanOrEqual(resultAt);
    expect((r.content as { text: string }[])[0]!.text).toMatch(/mission e2e \(m-\d+-[a-f0-9]+\): succeeded/);

    // The artifacts are MCP resources too.
    const { resources } = await client.listResources();
    const uri = `codex-wrapper://missions/${first.missionId}/artifacts/w1/out/w1.txt`;
    expect(resources.map((x) => x.uri)).toContain(uri);
    const read = await client.readResource({ uri });
    expect(read.contents[0]).toMatchObject({ uri, text: "data 1" });
    await expect(client.readResource({ uri: `codex-wrapper://missions/${first.missionId}/artifacts/w1/../../record.json` })).rejects.toThrow();
  });

  it("reply continues a conversation on the container that holds it", async () => {
    const conv = first.tasks[1]!.conversationId!;
    // Where the turn really runs: the container that ran the task answers with its own hostname
    // (Docker's default, from the container id), and its Codex still has the task's prompt.
    const ranOn = broker.runner.status(first.missionId).tasks[1]!.container!;
    const hostname = execFileSync("docker", ["inspect", "-f", "{{.Config.Hostname}}", ranOn], { encoding: "utf8" }).trim();
    const others = (await docker.listByLabels({ [LABELS.instance]: `${INSTANCE_PREFIX}-test-${RUN}` })).filter((c) => c.name !== ranOn);
    expect(others.length, "another container could have taken the reply (two containers for three tasks)").toBeGreaterThan(0);
    const prompt = "#fake run hostname\n#fake recall";
    const r = await call("reply", { conversationId: conv, prompt });
    const out = r.structuredContent as TaskOut;
    expect(out.finalMessage ?? "", `the reply runs on the container that holds the conversation (${ranOn}, hostname ${hostname}): ${out.status} ${out.error}`).toMatch(new RegExp(`^ran hostname:\n${hostname}\n`));
    expect(out.status).toBe("succeeded");
    expect(recalled(out.finalMessage), "the container that answered has the conversation's earlier prompt").toEqual(["#fake write out/w2.txt data 2", prompt]);
    const unknown = await call("reply", { conversationId: "conv_nope", prompt: "hi" });
    expect(unknown.isError).toBe(true);
    expect((unknown.content as { text: string }[])[0]!.text).toMatch(/no conversation conv_nope/);
  });

  it("batch with wait=false returns at once; status follows it to the same result", async () => {
    const r = await call("batch", { workspace: ws, wait: false, mission: { name: "later", tasks: [{ id: "a", prompt: "#fake sleep 500\nhello later" }] } });
    const { missionId } = r.structuredContent as MissionOut;
    expect((r.structuredContent as MissionOut).status).toBe("running");
    let s: MissionOut;
    const end = Date.now() + 60_000;
    do {
      await new Promise((res) => setTimeout(res, 300));
      s = (await call("status", { missionId })).structuredContent as MissionOut;
    } while (s.status === "running" && Date.now() < end);
    expect(s.status).toBe("succeeded");
    expect(s.tasks[0]).toMatchObject({ id: "a", status: "succeeded", finalMessage: "slept 500 ms" });
    const recent = (await call("status", {})).structuredContent as { missions: { missionId: string }[] };
    expect(recent.missions.map((m) => m.missionId)).toContain(missionId);
  });

  it("status with since: each poll lists only the tasks changed after the last cursor, and they add up to the whole result", async () => {
    const sleeps = [300, 1500, 3000];
    const r = await call("batch", { workspace: ws, wait: false, mission: { name: "polled", tasks: sleeps.map((ms, i) => ({ id: `s${i}`, prompt: `#fake sleep ${ms}\nhello` })) } });
    const started = r.structuredContent as MissionOut & { cursor: string };
    expect(started.tasks.map((t) => t.id)).toEqual(["s0", "s1", "s2"]);
    const seen = new Map(started.tasks.map((t) => [t.id, t]));
    let cursor = started.cursor;
    const listed: number[] = [];
    let s: MissionOut & { cursor: string; changedAfter?: string; counts: Record<string, number> };
    const end = Date.now() + 60_000;
    do {
      await new Promise((res) => setTimeout(res, 150));
      s = (await call("status", { missionId: started.missionId, since: cursor })).structuredContent as typeof s;
      expect(s.changedAfter).toBe(cursor);
      expect(Object.values(s.counts).reduce((a, b) => a + b)).toBe(3);
      listed.push(s.tasks.length);
      for (const t of s.tasks) seen.set(t.id, t);
      cursor = s.cursor;
    } while (s.status === "running" && Date.now() < end);
    expect(s.status).toBe("succeeded");
    // Most polls found nothing new: they listed no task (the first lists those that started).
    expect(listed.filter((n) => n === 0).length, `tasks listed by each poll: ${listed.join(" ")}`).toBeGreaterThan(listed.length / 2);
    const whole = (await call("status", { missionId: started.missionId })).structuredContent as MissionOut;
    expect([...seen.values()]).toEqual(whole.tasks);
    expect(whole.tasks.map((t) => t.finalMessage)).toEqual(sleeps.map((ms) => `slept ${ms} ms`));
  });

  it("cancel stops a #fake sleep 60000 task within seconds and frees its capacity", async () => {
    const r = await call("batch", { workspace: ws, wait: false, mission: { name: "long", tasks: [{ id: "sleepy", prompt: "#fake sleep 60000" }] } });
    const { missionId } = r.structuredContent as MissionOut;
    const end = Date.now() + 60_000;
    while ((broker.runner.status(missionId).tasks[0]!.status !== "running" || broker.pool.stats().inFlight === 0) && Date.now() < end) await new Promise((res) => setTimeout(res, 200));
    await new Promise((res) => setTimeout(res, 1500)); // the sleep is under way
    const asked = Date.now();
    const c = await call("cancel", { missionId });
    expect(c.isError).toBeFalsy();
    let s: MissionOut;
    do {
      await new Promise((res) => setTimeout(res, 200));
      s = (await call("status", { missionId })).structuredContent as MissionOut;
    } while (s.status === "running" && Date.now() - asked < 30_000);
    expect(s.tasks[0]!.status).toBe("cancelled");
    expect(Date.now() - asked).toBeLessThan(15_000);
    expect(broker.pool.stats().inFlight).toBe(0);
  });

  it("refuses bad missions with the task and field named, starting nothing", async () => {
    const before = broker.store.listMissions(100).length;
    const r = await call("batch", { workspace: ws, mission: { name: "bad", tasks: [{ id: "x", prompt: "p", artifacts: ["/etc/passwd"] }, { id: "x", prompt: "q", bogus: 1 }] } });
    expect(r.isError).toBe(true);
    const text = (r.content as { text: string }[])[0]!.text;
    expect(text).toContain('tasks[0] ("x").artifacts[0]: "/etc/passwd" is absolute');
    expect(text).toContain('tasks[1] ("x"): unknown field "bogus"');
    expect(broker.store.listMissions(100).length).toBe(before);
    const outside = await call("batch", { workspace: "/etc", mission: { name: "m", tasks: [{ id: "a", prompt: "p" }] } });
    expect((outside.content as { text: string }[])[0]!.text).toMatch(/\/etc is outside the allowed workspace roots/);
  });

  it("checks Host and Origin, and a token when one is set", async () => {
    const init = { method: "POST", headers: { "content-type": "application/json", accept: "application/json, text/event-stream" }, body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "x", version: "0" } } }) };
    // fetch will not send a forged Host header; node:http will.
    const evilHost = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(url, { method: "POST", headers: { ...init.headers, host: "evil.example" } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on("error", reject);
      req.end(init.body);
    });
    expect(evilHost).toBe(403);
    const evilOrigin = await fetch(url, { ...init, headers: { ...init.headers, origin: "http://evil.example" } });
    expect(evilOrigin.status).toBe(403);
    const unknownSession = await fetch(url, { ...init, headers: { ...init.headers, "mcp-session-id": "nope" } });
    expect(unknownSession.status).toBe(404);

    const locked = serve({ fetch: createApp({ broker, token: "s3cret-token-value" }).fetch, hostname: "127.0.0.1", port: 0 });
    await new Promise((r) => locked.once("listening", r));
    const lockedUrl = `http://127.0.0.1:${(locked.address() as AddressInfo).port}/mcp`;
    try {
      expect((await fetch(lockedUrl, init)).status).toBe(401);
      expect((await fetch(lockedUrl, { ...init, headers: { ...init.headers, authorization: "Bearer wrong" } })).status).toBe(401);
      expect((await fetch(lockedUrl, { ...init, headers: { ...init.headers, authorization: "Bearer s3cret-token-value" } })).status).toBe(200);
    } finally {
      await new Promise((r) => locked.close(r));
    }
    const health = (await (await fetch(new URL("/healthz", url))).json()) as Record<string, unknown>;
    expect(health).toMatchObject({ label: `${INSTANCE_PREFIX}-test-${RUN}`, channel: "dev", docker: expect.stringMatching(/^ok/) });
  });

  // Last of this block: if timeout_seconds is not applied, the stalled turn holds its lane to the end.
  it("reply's timeout_seconds ends a turn whose model never answers", async () => {
    const conv = first.tasks[2]!.conversationId!;
    const r = await within(call("reply", { conversationId: conv, prompt: "#fake stall", timeout_seconds: 2 }), 60_000, "reply with timeout_seconds 2 to a model that never answers did not end: timeout_seconds is not applied");
    const out = r.structuredContent as TaskOut;
    expect(out.status, "reply's timeout_seconds ends the turn timed_out").toBe("timed_out");
    expect(out.errorCode, "a stable code from the timeout itself").toBe("turn_timed_out");
    expect(out.error, "the error names reply's timeout (timeout_seconds 2 = 2000 ms)").toMatch(/no answer within 2000 ms/);
    expect(r.isError).toBe(true);
  });
});

describe("the broker over stdio (serve --transport stdio)", () => {
  it("runs a batch for a client that spawns it", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "cmw-stdio-"));
    const label = `${INSTANCE_PREFIX}-stdio-${process.pid}`;
    const auth = path.join(dir, "auth.json");
    writeFileSync(auth, JSON.stringify({ OPENAI_API_KEY: TEST_API_KEY }));
    chmodSync(auth, 0o600);
    const cfg = path.join(dir, "wrapper.toml");
    writeFileSync(cfg, `[broker]\nlabel = "${label}"\nstate_dir = "${dir}/state"\nauth_file = "${auth}"\nallowed_workspace_roots = ["${os.tmpdir()}"]\n[[workers]]\nname = "default"\nimage = "${REHEARSAL_IMAGE}"\nnetwork = "none"\nsandbox = "workspace-write"\n`);
    const bin = fileURLToPath(new URL("../../../dist/cli/bin.js", import.meta.url));
    const stdio = new Client({ name: "stdio-e2e", version: "0" });
    await stdio.connect(new StdioClientTransport({ command: process.execPath, args: [bin, "serve", "--transport", "stdio", "--config", cfg], stderr: "pipe" }));
    try {
      const { tools } = await stdio.listTools();
      expect(tools.map((t) => t.name).sort()).toEqual(["batch", "cancel", "reply", "status"]);
      const ws = makeWorkspace();
      const r = await stdio.callTool({ name: "batch", arguments: { workspace: ws, mission: { name: "stdio", tasks: [{ id: "s", prompt: "#fake write via-stdio.txt ok" }] } } }, undefined, { timeout: 120_000 });
      expect((r.structuredContent as MissionOut).tasks[0]!.status).toBe("succeeded");
      expect(readFileSync(path.join(ws, "via-stdio.txt"), "utf8")).toBe("ok");
    } finally {
      await stdio.close();
    }
    // Closing stdin ends the broker, which removes its containers.
    const end = Date.now() + 20_000;
    while ((await docker.listByLabels({ [LABELS.instance]: label })).length && Date.now() < end) await new Promise((r) => setTimeout(r, 300));
    expect(await docker.listByLabels({ [LABELS.instance]: label })).toEqual([]);
  });
});
