// The relay's upstream and kept-alive connections: a request that meets a connection the upstream
// closed while it sat idle goes again, whole, on another connection, so Codex gets its answer and
// not a 502; a request that fails on a new connection is not sent again. All on 127.0.0.1.
import { createHash } from "node:crypto";
import http from "node:http";
import type { Socket } from "node:net";
import { beforeAll, describe, expect, it } from "vitest";
import { ApiKeyCredential } from "../../../src/auth/credential.js";
import { silentLogger } from "../../../src/log.js";
import { ModelUpstream } from "../../../src/relay/upstream.js";
import { UsageMeter } from "../../../src/relay/usage.js";
import { loopbackServers } from "../../support/loopback-servers.js";

const listen = loopbackServers();

const sha = (b: Buffer | string): string => createHash("sha256").update(b).digest("hex");

/** What the upstream saw: each request, with the connection it came on and what became of it. */
const seen: { socket: number; n: number; outcome: "answered" | "dropped" | "held"; bodySha?: string }[] = [];
/**
 * "second": the second request on any connection is dropped (the connection closed as it came);
 * "all": every request is; "hold": the second request on a connection is held, never answered.
 */
let drop: "second" | "all" | "hold" = "second";
let modelPort: number;
let relayPort: number;

beforeAll(async () => {
  const ids = new WeakMap<Socket, { id: number; n: number }>();
  let sockets = 0;
  modelPort = await listen(
    http.createServer((req, res) => {
      let s = ids.get(req.socket);
      if (!s) ids.set(req.socket, (s = { id: ++sockets, n: 0 }));
      s.n++;
      if (drop === "hold" && s.n >= 2) {
        seen.push({ socket: s.id, n: s.n, outcome: "held" });
        return;
      }
      if (drop === "all" || s.n >= 2) {
        seen.push({ socket: s.id, n: s.n, outcome: "dropped" });
        req.socket.destroy(); // as a server whose keep-alive timeout closed the connection as the request arrived
        return;
      }
      const body: Buffer[] = [];
      req.on("data", (c: Buffer) => body.push(c));
      req.on("end", () => {
        const all = Buffer.concat(body);
        seen.push({ socket: s.id, n: s.n, outcome: "answered", bodySha: sha(all) });
        res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ bytes: all.length, sha: sha(all) }));
      });
    }),
  );
  const upstream = new ModelUpstream();
  relayPort = await listen(
    http.createServer((req, res) => {
      void upstream.forward({ target: { baseUrl: `http://127.0.0.1:${modelPort}/v1`, credential: new ApiKeyCredential(() => "sk-real") }, method: req.method!, path: req.url!, headers: { "content-type": "application/json" }, body: req, res, meter: new UsageMeter(() => {}), logger: silentLogger });
    }),
  );
});

async function post(body: string): Promise<{ status: number; json: unknown }> {
  const res = await fetch(`http://127.0.0.1:${relayPort}/responses`, { method: "POST", body, headers: { "content-type": "application/json" } });
  const text = await res.text();
  return { status: res.status, json: res.headers.get("content-type")?.includes("json") ? JSON.parse(text) : text };
}

describe("the model upstream's kept-alive connections", () => {
  it("sends a request again, whole, on another connection when the kept-alive one it went on was closed", async () => {
    drop = "second";
    seen.length = 0;
    const first = JSON.stringify({ input: "a".repeat(1000) });
    expect(await post(first)).toEqual({ status: 200, json: { bytes: first.length, sha: sha(first) } });
    // The agent keeps the first connection and sends the next request on it: the upstream closes it.
    const second = JSON.stringify({ input: "b".repeat(200_000) });
    expect(await post(second)).toEqual({ status: 200, json: { bytes: second.length, sha: sha(second) } });
    expect(seen).toEqual([
      { socket: 1, n: 1, outcome: "answered", bodySha: sha(first) },
      { socket: 1, n: 2, outcome: "dropped" },
      { socket: 2, n: 1, outcome: "answered", bodySha: sha(second) },
    ]);
  });

  it("does not send again a request that failed on a new connection: the relay answers 502", async () => {
    drop = "all";
    seen.length = 0;
    // The agent's free connection (socket 2 above) is reused first, and dropped: that one goes
    // again, on a new connection, which is dropped too; there it stops.
    const r = await post(JSON.stringify({ input: "c" }));
    expect(r.status).toBe(502);
    expect(JSON.stringify(r.json)).toMatch(/relay: the model upstream http:\/\/127\.0\.0\.1:\d+ is unreachable or failed: ECONNRESET/);
    expect(seen.map((s) => `${s.socket}.${s.n} ${s.outcome}`)).toEqual(["2.2 dropped", "3.1 dropped"]);
  });

  it("does not send again a request whose client went away (the relay's own ending of it is no closed connection)", async () => {
    drop = "second";
    seen.length = 0;
    expect((await post("{}")).status).toBe(200); // a connection kept alive, answered once
    drop = "hold";
    const abort = new AbortController();
    const asked = fetch(`http://127.0.0.1:${relayPort}/responses`, { method: "POST", body: "{}", signal: abort.signal }).catch((e: Error) => e.name);
    await expect.poll(() => seen.length).toBe(2); // the request is at the upstream, held
    abort.abort(); // Codex gives up: the relay ends its request upstream, on the reused connection
    expect(await asked).toBe("AbortError");
    await new Promise((r) => setTimeout(r, 500));
    expect(seen.map((s) => s.outcome)).toEqual(["answered", "held"]); // nothing sent again
  });
});
