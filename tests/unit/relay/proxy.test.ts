// The relay's upstream behind an outbound proxy (HTTP_PROXY / HTTPS_PROXY, as on a CI runner or
// a corporate network): http upstreams go through it in absolute form, https ones by CONNECT,
// loopback never does, and NO_PROXY is honoured. Everything here is on 127.0.0.1; the upstream
// names (model.test) are never resolved on this machine, only named to the proxy.
import http from "node:http";
import type { Socket } from "node:net";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { ApiKeyCredential } from "../../../src/auth/credential.js";
import { silentLogger } from "../../../src/log.js";
import { upstreamProxy } from "../../../src/relay/proxy.js";
import { ModelUpstream } from "../../../src/relay/upstream.js";
import { UsageMeter } from "../../../src/relay/usage.js";
import { loopbackServers } from "../../support/loopback-servers.js";

const listen = loopbackServers();
const saved = { HTTP_PROXY: process.env.HTTP_PROXY, HTTPS_PROXY: process.env.HTTPS_PROXY, NO_PROXY: process.env.NO_PROXY };
afterEach(() => {
  for (const [k, v] of Object.entries(saved)) if (v === undefined) delete process.env[k];
  else process.env[k] = v;
});

let modelPort: number;
let proxyPort: number;
const proxied: string[] = [];
let relayPort: number;
let target = "";

beforeAll(async () => {
  modelPort = await listen(http.createServer((req, res) => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ path: req.url, auth: req.headers.authorization }))));
  // The proxy: absolute-form requests are sent on to the model server; CONNECT is refused (403).
  const proxy = http.createServer((req, res) => {
    proxied.push(`${req.method} ${req.url}`);
    const up = http.request({ host: "127.0.0.1", port: modelPort, path: new URL(req.url!).pathname, method: req.method, headers: req.headers }, (a) => {
      res.writeHead(a.statusCode!, a.headers);
      a.pipe(res);
    });
    req.pipe(up);
  });
  proxy.on("connect", (req: http.IncomingMessage, socket: Socket) => {
    proxied.push(`CONNECT ${req.url}`);
    socket.end("HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n");
  });
  proxyPort = await listen(proxy);
  // The relay's side: each request is forwarded to `target` by the upstream, as the relay does.
  const upstream = new ModelUpstream();
  relayPort = await listen(
    http.createServer((req, res) => {
      void upstream.forward({ target: { baseUrl: target, credential: new ApiKeyCredential(() => "sk-real") }, method: req.method!, path: req.url!, headers: { authorization: "Bearer sk-real" }, body: req, res, meter: new UsageMeter(() => {}), logger: silentLogger });
    }),
  );
});

async function get(path: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${relayPort}${path}`);
  return { status: res.status, body: await res.text() };
}

describe("the model upstream behind an outbound proxy", () => {
  it("sends an http upstream's requests through HTTP_PROXY, in absolute form", async () => {
    process.env.HTTP_PROXY = `http://127.0.0.1:${proxyPort}`;
    target = "http://model.test/v1";
    proxied.length = 0;
    const r = await get("/models");
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toEqual({ path: "/v1/models", auth: "Bearer sk-real" });
    expect(proxied).toEqual(["GET http://model.test/v1/models"]);
    expect(upstreamProxy(new URL(target))).toBe(`http://127.0.0.1:${proxyPort}`);
  });

  it("tunnels an https upstream through HTTPS_PROXY with CONNECT (here refused, and the relay says so)", async () => {
    process.env.HTTPS_PROXY = `http://user:secret@127.0.0.1:${proxyPort}`;
    target = "https://model.test/v1";
    proxied.length = 0;
    const r = await get("/models");
    expect(proxied).toEqual(["CONNECT model.test:443"]);
    expect(r.status).not.toBe(200);
    expect(upstreamProxy(new URL(target))).toBe(`http://127.0.0.1:${proxyPort}`); // no credentials in what is shown
  });

  it("never sends loopback through the proxy, and honours NO_PROXY", async () => {
    process.env.HTTP_PROXY = `http://127.0.0.1:${proxyPort}`;
    target = `http://127.0.0.1:${modelPort}/v1`;
    proxied.length = 0;
    expect((await get("/models")).status).toBe(200);
    expect(proxied).toEqual([]);
    process.env.NO_PROXY = "model.test";
    expect(upstreamProxy(new URL("http://model.test/v1"))).toBeNull();
    expect(upstreamProxy(new URL("http://other.test/v1"))).toBe(`http://127.0.0.1:${proxyPort}`);
  });
});
