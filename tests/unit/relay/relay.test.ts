// The model relay end to end on this machine, without Docker: the real forwarder (dist/relay,
// as the worker images carry it) runs as a child process whose channel is its stdio (as through
// a remote engine) or a unix socket the broker listens on (as on a local engine), the relay
// serves it, and the upstream is a server on 127.0.0.1. A client talks to the forwarder's port
// as Codex does inside a container.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import net, { type AddressInfo, type Socket } from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { ApiKeyCredential } from "../../../src/auth/credential.js";
import { RelayChannel } from "../../../src/relay/channel.js";
import { ForwarderSocket } from "../../../src/relay/forwarder-socket.js";
import { ModelRelay, type RelayGrant } from "../../../src/relay/model-relay.js";
import type { Usage } from "../../../src/relay/usage.js";

const FORWARDER = path.resolve("dist/relay/forwarder.js");
const KEY = "sk-relay-unit-REAL-KEY-0123456789";

let upstream: http.Server;
let upstreamUrl: string;
/** What the upstream does with the next request. */
let behave: (req: http.IncomingMessage, body: Buffer, res: http.ServerResponse) => void;
const seen: { url: string; headers: http.IncomingHttpHeaders }[] = [];

beforeAll(async () => {
  if (!existsSync(FORWARDER)) throw new Error(`${FORWARDER} is missing: run npm run build (npm test does)`);
  upstream = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      seen.push({ url: req.url ?? "", headers: req.headers });
      behave(req, Buffer.concat(chunks), res);
    });
  });
  await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", r));
  upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/v1`;
});
afterAll(async () => {
  upstream.closeAllConnections();
  await new Promise((r) => upstream.close(r));
});

interface Worker {
  child: ChildProcess;
  channel: RelayChannel;
  grant: RelayGrant;
  port: number;
  usage: Usage[];
}
const relay = new ModelRelay();
const workers: Worker[] = [];
const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const w of workers.splice(0)) {
    relay.revoke(w.grant);
    w.child.kill();
  }
  for (const c of cleanups.splice(0)) c();
  seen.length = 0;
});

/** The channel the forwarder carries connections on; set by each describe block below. */
let kind: "stdio" | "socket" = "stdio";

/** The broker's unix socket of the last socket-channel worker. */
let lastForwarderSocket: ForwarderSocket | undefined;

/** The socket channel: the broker's unix socket, the forwarder told to connect to it. */
async function socketChannel(name: string): Promise<{ child: ChildProcess; channel: RelayChannel }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "cmw-relay-unit-"));
  const fs = (lastForwarderSocket = new ForwarderSocket());
  const sockPath = path.join(dir, "relay.sock");
  await new Promise<void>((r) => fs.server.listen(sockPath, r));
  cleanups.push(() => {
    fs.server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const control = new Promise<Socket>((r) => (fs.onControl = r));
  const child = spawn(process.execPath, [FORWARDER, `--connect=${sockPath}`, "model=0"], { stdio: ["pipe", "ignore", "inherit"] });
  const socket = await control;
  const channel = new RelayChannel(name, { stdin: socket, stdout: socket });
  fs.channel = channel;
  return { child, channel };
}

async function worker(name: string): Promise<Worker> {
  let child: ChildProcess;
  let channel: RelayChannel;
  if (kind === "socket") ({ child, channel } = await socketChannel(name));
  else {
    child = spawn(process.execPath, [FORWARDER, "model=0"], { stdio: ["pipe", "pipe", "inherit"] });
    channel = new RelayChannel(name, { stdin: child.stdin!, stdout: child.stdout! });
  }
  const usage: Usage[] = [];
  const grant = relay.grant({ container: name, upstream: { baseUrl: upstreamUrl, credential: new ApiKeyCredential(() => KEY), idleTimeoutMs: 2000 }, onUsage: (u) => usage.push(u) });
  const listeners = await new Promise<Record<string, number>>((resolve, reject) => {
    channel.once("ready", resolve);
    child.once("exit", (code) => reject(new Error(`forwarder exited ${code}`)));
  });
  relay.attach(grant, channel);
  const w = { child, channel, grant, port: listeners.model!, usage };
  workers.push(w);
  return w;
}

/** A request to a worker's forwarder, as Codex makes it; resolves with the status and the whole body. */
function request(port: number, opts: { path?: string; token?: string; body?: string; method?: string; onFirstChunk?: (chunk: string) => void }): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: "127.0.0.1", port, path: opts.path ?? "/v1/responses", method: opts.method ?? "POST", headers: { "content-type": "application/json", "thread-id": "thread-1", ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}) } },
      (res) => {
        let body = "";
        let first = true;
        res.on("data", (c: Buffer) => {
          if (first) opts.onFirstChunk?.(c.toString());
          first = false;
          body += c.toString();
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(opts.method === "GET" ? undefined : (opts.body ?? "{}"));
  });
}

const completed = (usage: Record<string, unknown>): string => `event: response.completed\ndata: ${JSON.stringify({ type: "response.completed", response: { model: "gpt-test", usage } })}\n\n`;

describe.each(["stdio", "socket"] as const)("the model relay (%s channel)", (channelKind) => {
  beforeAll(() => {
    kind = channelKind;
  });

  it("puts the real key in place of the container's token, and meters the answer's usage by thread", async () => {
    const w = await worker("w-key");
    behave = (_req, _body, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.end(completed({ input_tokens: 120, input_tokens_details: { cached_tokens: 20 }, output_tokens: 7, output_tokens_details: { reasoning_tokens: 3 } }));
    };
    const r = await request(w.port, { token: w.grant.token });
    expect(r.status).toBe(200);
    expect(seen[0]!.headers.authorization).toBe(`Bearer ${KEY}`);
    expect(seen[0]!.url).toBe("/v1/responses");
    expect(w.usage).toEqual([{ inputTokens: 120, cachedInputTokens: 20, outputTokens: 7, reasoningOutputTokens: 3, requests: 1, model: "gpt-test", container: "w-key", threadId: "thread-1" }]);
  });

  it("forwards the first event while the upstream's answer is still open (no buffering)", async () => {
    const w = await worker("w-stream");
    let finish: (() => void) | undefined;
    behave = (_req, _body, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write('event: response.created\ndata: {"type":"response.created"}\n\n');
      finish = () => res.end(completed({ input_tokens: 1, output_tokens: 1 }));
    };
    let firstSeenWhileOpen = false;
    const r = await request(w.port, {
      token: w.grant.token,
      onFirstChunk: (c) => {
        firstSeenWhileOpen = c.includes("response.created") && finish !== undefined;
        finish!(); // the upstream ends only once the client has the first event
      },
    });
    expect(firstSeenWhileOpen).toBe(true);
    expect(r.body).toContain("response.completed");
  });

  it("sends an answer the upstream gives at once (its head, its events, its end) toward the container in one write", async () => {
    const w = await worker("w-one-write");
    behave = (_req, _body, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      for (let i = 0; i < 20; i++) res.write(`event: response.output_text.delta\ndata: {"type":"response.output_text.delta","delta":"${i} "}\n\n`);
      res.end(completed({ input_tokens: 1, output_tokens: 20 }));
    };
    // The writes that leave the broker toward the forwarder while the answer is relayed: on the
    // socket channel the request's own unix connection, on the stdio channel the forwarder's stdin.
    let writes = 0;
    const count = (s: NodeJS.WritableStream): void => {
      const w = s as unknown as { _write: (...a: unknown[]) => unknown; _writev?: (...a: unknown[]) => unknown };
      const write = w._write.bind(w);
      w._write = (...a: unknown[]) => (writes++, write(...a));
      if (w._writev) {
        const writev = w._writev.bind(w);
        w._writev = (...a: unknown[]) => (writes++, writev(...a));
      }
    };
    if (channelKind === "socket") w.channel.on("stream", (s) => count(s));
    else count(w.child.stdin!);
    let head = -1;
    const r = await request(w.port, { token: w.grant.token, onFirstChunk: () => (head = writes) });
    expect(r.status).toBe(200);
    expect(r.body).toContain('"delta":"19 "');
    expect(w.usage).toHaveLength(1);
    // One write, whole: the client's first chunk came when it had already been made, and no other followed.
    expect(head).toBe(1);
    expect(writes).toBe(1);
  });

  it("refuses a path outside the model API, a missing token, another container's token and a revoked one", async () => {
    const a = await worker("w-a");
    const b = await worker("w-b");
    behave = (_req, _body, res) => res.end("{}");
    const files = await request(a.port, { token: a.grant.token, path: "/v1/files" });
    expect(files.status).toBe(403);
    expect(files.body).toContain("POST /v1/files is not a model API call");
    const admin = await request(a.port, { token: a.grant.token, path: "/v1/responses/../../admin", method: "GET" });
    expect(admin.status).toBe(403);
    expect((await request(a.port, {})).status).toBe(401);
    const other = await request(a.port, { token: b.grant.token });
    expect(other.status).toBe(401);
    expect(other.body).toContain("belongs to another container");
    const tokenB = b.grant.token;
    relay.revoke(b.grant);
    const revoked = await request(a.port, { token: tokenB });
    expect(revoked.status).toBe(401);
    expect(revoked.body).toContain("unknown or was revoked");
    expect(seen).toHaveLength(0); // nothing refused reached the upstream
  });

  it("forwards a request as Codex sent it: a compressed body byte for byte, with its Content-Encoding, Content-Length and other headers", async () => {
    const w = await worker("w-asis");
    let got: Buffer | undefined;
    behave = (_req, body, res) => {
      got = body;
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.end(completed({ input_tokens: 1, output_tokens: 1 }));
    };
    const body = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 1, 2, 3, 250, 251, 252]); // bytes, not JSON
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request(
        { host: "127.0.0.1", port: w.port, path: "/v1/responses", method: "POST", headers: { authorization: `Bearer ${w.grant.token}`, "content-type": "application/json", "content-encoding": "zstd", "content-length": String(body.length), version: "0.169.0", "x-codex-routing-hint": "model=m" } },
        (res) => res.resume().on("end", () => resolve(res.statusCode ?? 0)),
      );
      req.on("error", reject);
      req.end(body);
    });
    expect(status).toBe(200);
    expect(got).toEqual(body);
    expect(seen[0]!.headers).toMatchObject({ authorization: `Bearer ${KEY}`, "content-encoding": "zstd", "content-length": String(body.length), version: "0.169.0", "x-codex-routing-hint": "model=m" });
    expect(seen[0]!.headers["transfer-encoding"]).toBeUndefined();
  });

  const upgrade = (port: number, urlPath: string, token: string): Promise<string> =>
    new Promise<string>((resolve, reject) => {
      const req = http.request({ host: "127.0.0.1", port, path: urlPath, headers: { connection: "Upgrade", upgrade: "websocket", "sec-websocket-version": "13", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==", authorization: `Bearer ${token}` } });
      req.on("response", (res) => resolve(String(res.statusCode)));
      req.on("upgrade", () => resolve("upgraded"));
      req.on("error", reject);
      req.end();
    });

  it("answers Codex's WebSocket attempt 426 in the forwarder, with no trip to the broker, so Codex falls back to HTTP at once", async () => {
    const w = await worker("w-ws");
    let reachedBroker = 0;
    w.channel.on("stream", () => reachedBroker++);
    expect(await upgrade(w.port, "/v1/responses", w.grant.token)).toBe("426");
    expect(seen).toHaveLength(0);
    expect(reachedBroker).toBe(0);
    // Any other upgrade still goes to the broker, which refuses it and counts the refusal.
    const refused = relay.stats.refused;
    expect(await upgrade(w.port, "/v1/realtime", w.grant.token)).toBe("426");
    expect(reachedBroker).toBe(1);
    expect(relay.stats.refused).toBe(refused + 1);
  });

  // Only the socket channel has a connection of its own per Codex connection (not defined for stdio, rather than skipped).
  if (channelKind === "socket") it("opens a connection's way to the broker when Codex connects, before its first bytes, and serves it once they come", async () => {
    const w = await worker("w-early");
    let connections = 0;
    lastForwarderSocket!.server.on("connection", () => connections++);
    let streams = 0;
    w.channel.on("stream", () => streams++);
    behave = (req, body, res) => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ method: req.method, body: body.toString() }));
    const socket = net.connect(w.port, "127.0.0.1");
    await new Promise((r) => socket.once("connect", r));
    // Nothing sent yet: the unix connection is there, but it has not said what it is (no stream).
    for (let i = 0; i < 100 && connections === 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(connections).toBe(1);
    expect(streams).toBe(0);
    let answer = "";
    socket.on("data", (d: Buffer) => (answer += d.toString()));
    const closed = new Promise((r) => socket.once("close", r));
    socket.write(`POST /v1/responses HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 9\r\nauthorization: Bearer ${w.grant.token}\r\nconnection: close\r\n\r\n{"a":"b"}`);
    await closed;
    expect(answer).toMatch(/^HTTP\/1\.1 200/);
    expect(answer).toContain('"body":"{\\"a\\":\\"b\\"}"');
    expect(connections).toBe(1); // the one opened ahead carried it
    expect(streams).toBe(1);
    // A connection that goes before saying anything takes its unix connection with it.
    const idle = net.connect(w.port, "127.0.0.1");
    await new Promise((r) => idle.once("connect", r));
    for (let i = 0; i < 100 && connections === 1; i++) await new Promise((r) => setTimeout(r, 20));
    expect(connections).toBe(2);
    const open = lastForwarderSocket!.server.getConnections.bind(lastForwarderSocket!.server);
    const count = (): Promise<number> => new Promise((resolve, reject) => open((e, n) => (e ? reject(e) : resolve(n))));
    const before = await count();
    idle.end();
    for (let i = 0; i < 100 && (await count()) === before; i++) await new Promise((r) => setTimeout(r, 20));
    expect(await count()).toBe(before - 1);
    expect(streams).toBe(1);
  });

  it("carries a request whose head arrives a few bytes at a time, first bytes included", async () => {
    const w = await worker("w-slow-head");
    behave = (req, body, res) => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ method: req.method, body: body.toString() }));
    const send = async (head: string, body: string): Promise<string> => {
      const socket = net.connect(w.port, "127.0.0.1");
      await new Promise((r) => socket.once("connect", r));
      let answer = "";
      socket.on("data", (d: Buffer) => (answer += d.toString()));
      const closed = new Promise((r) => socket.once("close", r));
      for (const piece of [head.slice(0, 2), head.slice(2, 9), head.slice(9)]) {
        socket.write(piece);
        await new Promise((r) => setTimeout(r, 20));
      }
      socket.write(body); // no half-close: Codex keeps its side open until the answer ends
      await closed;
      return answer;
    };
    const auth = `authorization: Bearer ${w.grant.token}\r\nconnection: close\r\n`;
    const post = await send(`POST /v1/responses HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 9\r\n${auth}\r\n`, '{"a":"b"}');
    expect(post).toMatch(/^HTTP\/1\.1 200/);
    expect(post).toContain('"body":"{\\"a\\":\\"b\\"}"');
    const get = await send(`GET /v1/models HTTP/1.1\r\nhost: x\r\n${auth}\r\n`, "");
    expect(get).toMatch(/^HTTP\/1\.1 200/);
    expect(get).toContain('"method":"GET"');
  });

  it("passes an upstream 5xx through, and ends a stalled upstream with an error naming it", async () => {
    const w = await worker("w-fail");
    behave = (_req, _body, res) => res.writeHead(503, { "content-type": "application/json" }).end('{"error":{"message":"overloaded"}}');
    const five = await request(w.port, { token: w.grant.token });
    expect(five.status).toBe(503);
    expect(five.body).toContain("overloaded");
    behave = () => {}; // never answers
    const stalled = await request(w.port, { token: w.grant.token });
    expect(stalled.status).toBe(502);
    expect(stalled.body).toMatch(/relay: the model upstream http:\/\/127\.0\.0\.1:\d+ is unreachable or failed: no answer within 2 s/);
  });

  it("carries a 6 MB request and a 6 MB answer intact both ways (flow control)", async () => {
    const w = await worker("w-big");
    const big = "x".repeat(6 * 1024 * 1024);
    behave = (_req, body, res) => {
      res.writeHead(200, { "content-type": "application/octet-stream" });
      res.end(Buffer.concat([Buffer.from(`${body.length}:`), body]));
    };
    const r = await request(w.port, { token: w.grant.token, body: big });
    expect(r.status).toBe(200);
    expect(r.body.length).toBe(big.length + `${big.length}:`.length);
    expect(r.body.startsWith(`${big.length}:`)).toBe(true);
  });
});
