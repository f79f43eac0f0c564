import http from "node:http";
import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { startRehearsalServer, type RehearsalServer } from "../../../src/rehearsal/server.js";

let server: RehearsalServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

const jwt = (exp: number) =>
  ["e30", Buffer.from(JSON.stringify({ exp })).toString("base64url"), "sig"].join(".");

async function post(body: unknown, token?: string, signal?: AbortSignal): Promise<Response> {
  if (!server) throw new Error("no server");
  return fetch(`${server.url}/responses`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
    signal,
  });
}

const prompt = (text: string) => ({ model: "m", input: [{ type: "message", role: "user", content: [{ type: "input_text", text }] }], tools: [] });

describe("rehearsal server", () => {
  it("answers a WebSocket upgrade 426, so Codex's built-in provider uses HTTP at once", async () => {
    server = await startRehearsalServer();
    const answer = await new Promise<string>((resolve, reject) => {
      const req = http.request(`${server!.url}/responses`, { headers: { connection: "Upgrade", upgrade: "websocket", "sec-websocket-version": "13", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==" } });
      req.on("response", (res) => resolve(String(res.statusCode)));
      req.on("upgrade", () => resolve("upgraded"));
      req.on("error", reject);
      req.end();
    });
    expect(answer).toBe("426");
  });

  it("survives a client that resets its connection on the 426 (the server stops watching an upgraded socket's errors)", async () => {
    server = await startRehearsalServer();
    const { port } = new URL(server.url);
    for (let i = 0; i < 20; i++) {
      await new Promise<void>((resolve) => {
        const c = net.connect(Number(port), "127.0.0.1", () => {
          c.write("GET /v1/responses HTTP/1.1\r\nhost: x\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\r\n");
          c.resetAndDestroy();
        });
        c.on("error", () => {});
        c.on("close", () => setTimeout(resolve, 10));
      });
    }
    // Unhandled, the reset's error would be thrown in this process (vitest fails the run); the server still answers.
    expect((await post(prompt("hi"), "sk-x")).status).toBe(200);
  });

  it("streams a completed response as server-sent events", async () => {
    server = await startRehearsalServer();
    const res = await post(prompt("hi"), "sk-x");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/event-stream");
    const events = (await res.text()).split("\n\n").filter(Boolean).map((e) => e.split("\n")[0]);
    expect(events).toEqual([
      "event: response.created",
      "event: response.output_item.added",
      "event: response.output_text.delta",
      "event: response.output_item.done",
      "event: response.completed",
    ]);
  });

  it("streams #fake deltas N as N text deltas that add up to the final message", async () => {
    server = await startRehearsalServer();
    const body = await (await post(prompt("#fake deltas 200"), "sk-x")).text();
    const deltas = body.split("\n\n").filter((e) => e.startsWith("event: response.output_text.delta")).map((e) => (JSON.parse(e.split("\ndata: ")[1]!) as { delta: string }).delta);
    expect(deltas).toHaveLength(200);
    expect(deltas.join("")).toBe(Array.from({ length: 200 }, (_, k) => `w${k + 1}`).join(" "));
  });

  it("answers 400 with the message for #fake fail", async () => {
    server = await startRehearsalServer();
    const res = await post(prompt("#fake fail nope"));
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: { message: "nope" } });
  });

  it("answers 401 to a JWT whose exp has passed, and serves one that is still valid", async () => {
    let now = 1000;
    server = await startRehearsalServer({ now: () => now });
    expect((await post(prompt("hi"), jwt(1500))).status).toBe(200);
    now = 1500;
    const res = await post(prompt("hi"), jwt(1500));
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ error: { code: "token_expired" } });
  });

  it("never answers #fake stall until the client gives up", async () => {
    server = await startRehearsalServer();
    const ac = new AbortController();
    const pending = post(prompt("#fake stall"), undefined, ac.signal);
    const raced = await Promise.race([pending.then(() => "answered"), new Promise((r) => setTimeout(() => r("still waiting"), 300))]);
    expect(raced).toBe("still waiting");
    ac.abort();
    await expect(pending).rejects.toThrow();
  });

  it("reads a zstd-compressed body (Codex's ChatGPT mode sends one), also on Node 20", async () => {
    server = await startRehearsalServer({ port: 0 });
    // zstd -c of prompt("hello from zstd") as JSON, made with the zstd command-line tool.
    const body = Buffer.from("KLUv/QRY/QIAcoYUGYA5LQZoXOyNpEkyQjwuPEKEyG2gaEZCTg+LMWzFzL3MYpaP1URxMg2KRLzCdr2HWwC6RSm4TqfJ9mGm6yMEVO9sH4LYFcPeBEGG67ONd+RZCQMAKsJfXaHdoaBUaaAB", "base64");
    const r = await fetch(`${server.url}/responses`, { method: "POST", headers: { "content-type": "application/json", "content-encoding": "zstd" }, body });
    expect(r.status).toBe(200);
    expect(await r.text()).toContain("response.completed");
    const bad = await fetch(`${server.url}/responses`, { method: "POST", headers: { "content-type": "application/json", "content-encoding": "zstd" }, body: "not zstd" });
    expect(bad.status).toBe(400);
    expect(await bad.text()).toContain("content-encoding zstd");
  });

  it("answers unknown routes with 404", async () => {
    server = await startRehearsalServer();
    const res = await fetch(server.url.replace("/v1", "/nope"));
    expect(res.status).toBe(404);
  });
});
