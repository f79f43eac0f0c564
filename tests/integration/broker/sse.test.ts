// The legacy HTTP+SSE transport, spoken the way Stelae's proxy speaks it (a raw client: GET /sse,
// first event `endpoint`, POST each message there expecting 202, read every answer from the
// stream, one JSON message per `data:` line), and through the SDK's own SSE client.
import { request } from "node:http";
import type { AddressInfo } from "node:net";
import { readFileSync } from "node:fs";
import path from "node:path";
import { serve, type ServerType } from "@hono/node-server";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { SSEClientTransport } from "@modelcontextprotocol/sdk/client/sse.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Broker } from "../../../src/broker.js";
import { createApp } from "../../../src/http/app.js";
import { LABELS } from "../../../src/worker/container.js";
import { INSTANCE_PREFIX, makeWorkspace } from "../support/env.js";
import { docker, testConfig } from "../support/pool.js";

const RUN = `sse-${process.pid}`;
let broker: Broker;
let http: ServerType;
let base: string;

beforeAll(async () => {
  broker = new Broker(testConfig({ run: RUN, workers: [{ name: "default", sandbox: "workspace-write" }] }));
  await broker.start();
  http = serve({ fetch: createApp({ broker }).fetch, hostname: "127.0.0.1", port: 0 });
  await new Promise((r) => http.once("listening", r));
  base = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await broker?.stop();
  (http as import("node:http").Server | undefined)?.closeAllConnections(); // open SSE streams
  await new Promise((r) => http?.close(r));
  for (const c of await docker.listByLabels({ [LABELS.instance]: `${INSTANCE_PREFIX}-test-${RUN}` })) await docker.remove(c.id);
});

/** A minimal legacy-SSE client, as Stelae's Go proxy behaves. */
class RawSseClient {
  private buffer = "";
  private readonly events: { event: string; data: string; seq: number }[] = [];
  private seq = 0;
  private waiters: (() => void)[] = [];
  private close: (() => void) | undefined;

  async open(url: string): Promise<string> {
    await new Promise<void>((resolve, reject) => {
      const req = request(url, { headers: { accept: "text/event-stream" } }, (res) => {
        expect(res.statusCode).toBe(200);
        expect(res.headers["content-type"]).toMatch(/text\/event-stream/);
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => this.feed(chunk));
        resolve();
      });
      req.on("error", reject);
      req.end();
      this.close = () => req.destroy();
    });
    const endpoint = await this.next((e) => e.event === "endpoint", 30_000);
    return new URL(endpoint.data, url).toString();
  }

  private feed(chunk: string): void {
    this.buffer += chunk;
    let i: number;
    while ((i = this.buffer.indexOf("\n\n")) >= 0) {
      const block = this.buffer.slice(0, i);
      this.buffer = this.buffer.slice(i + 2);
      let event = "message";
      const data: string[] = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
      }
      if (data.length) this.events.push({ event, data: data.join("\n"), seq: this.seq++ });
    }
    for (const w of this.waiters.splice(0)) w();
  }

  async next(pred: (e: { event: string; data: string }) => boolean, timeoutMs: number): Promise<{ event: string; data: string; seq: number }> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const i = this.events.findIndex(pred);
      if (i >= 0) return this.events.splice(i, 1)[0]!;
      if (Date.now() > end) throw new Error("timed out waiting for an SSE event");
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 500);
      });
    }
  }

  /** POSTs one JSON-RPC message; Stelae expects 202 and reads the answer from the stream. */
  async post(endpoint: string, msg: Record<string, unknown>): Promise<number> {
    return new Promise((resolve, reject) => {
      const req = request(endpoint, { method: "POST", headers: { "content-type": "application/json" } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on("error", reject);
      req.end(JSON.stringify(msg));
    });
  }

  /** Sends a request and returns its answer, with the answer's place in the stream (seq). */
  async call(endpoint: string, id: number, method: string, params: unknown, timeoutMs = 60_000): Promise<Record<string, unknown> & { seq: number }> {
    expect(await this.post(endpoint, { jsonrpc: "2.0", id, method, params })).toBe(202);
    const answer = await this.next((e) => e.event === "message" && (JSON.parse(e.data) as { id?: unknown }).id === id, timeoutMs);
    return { ...(JSON.parse(answer.data) as Record<string, unknown>), seq: answer.seq };
  }

  dispose(): void {
    this.close?.();
  }
}

describe("the legacy HTTP+SSE transport", () => {
  it("serves a Stelae-style raw client: initialize, tools/list and a batch", async () => {
    const sse = new RawSseClient();
    try {
      const endpoint = await sse.open(`${base}/sse`);
      expect(endpoint).toMatch(new RegExp(`^${base}/messages\\?sessionId=`));
      const init = await sse.call(endpoint, 1, "initialize", { protocolVersion: "2024-11-05", capabilities: {}, clientInfo: { name: "mcp-proxy", version: "0" } });
      expect((init.result as { serverInfo: { name: string } }).serverInfo.name).toBe("codex-mcp-wrapper");
      expect(await sse.post(endpoint, { jsonrpc: "2.0", method: "notifications/initialized" })).toBe(202);
      const list = await sse.call(endpoint, 2, "tools/list", {});
      expect((list.result as { tools: { name: string }[] }).tools.map((t) => t.name).sort()).toEqual(["batch", "cancel", "reply", "status"]);
      const ws = makeWorkspace();
      const r = await sse.call(endpoint, 3, "tools/call", { name: "batch", _meta: { progressToken: 7 }, arguments: { workspace: ws, mission: { name: "stelae", tasks: [{ id: "s", prompt: "#fake write stelae.txt via sse" }] } } }, 120_000);
      // Progress went down the stream before the result.
      const progressed = await sse.next((e) => e.event === "message" && e.data.includes('"task s succeeded"'), 1000);
      expect(JSON.parse(progressed.data)).toMatchObject({ method: "notifications/progress", params: { progressToken: 7, progress: 1, total: 1 } });
      expect(progressed.seq).toBeLessThan(r.seq);
      const result = r.result as { structuredContent: { status: string; tasks: { status: string }[] } };
      expect(result.structuredContent.status).toBe("succeeded");
      expect(readFileSync(path.join(ws, "stelae.txt"), "utf8")).toBe("via sse");
      expect(await sse.post(`${base}/messages?sessionId=unknown`, { jsonrpc: "2.0", id: 9, method: "tools/list" })).toBe(404);
    } finally {
      sse.dispose();
    }
  });

  it("serves the SDK's own SSE client, progress included", async () => {
    const client = new Client({ name: "sdk-sse", version: "0" });
    await client.connect(new SSEClientTransport(new URL(`${base}/sse`)));
    try {
      const progress: string[] = [];
      const ws = makeWorkspace();
      const r = await client.callTool(
        { name: "batch", arguments: { workspace: ws, mission: { name: "sdk-sse", tasks: [{ id: "a", prompt: "#fake write a.txt 1" }, { id: "b", prompt: "#fake write b.txt 2" }] } } },
        undefined,
        { onprogress: (p) => progress.push(p.message ?? ""), timeout: 120_000 },
      );
      expect((r.structuredContent as { status: string }).status).toBe("succeeded");
      expect(progress, JSON.stringify(progress)).toContain("task a succeeded");
      expect(progress).toContain("task b succeeded");
    } finally {
      await client.close();
    }
  });
});
