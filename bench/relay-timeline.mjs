#!/usr/bin/env node
// Where one model request's milliseconds go on the relay's stdio channel through an engine: a
// client in a container (a 38 KB POST, a streamed answer, a new connection each, back to back), the
// relay and the rehearsal model in this process, and the p50 of each stage's time since the
// client's send: the client connected and sent; the relay saw the connection (its OPEN frame), the
// request's head and its body's end; the broker wrote the answer's first and last DATA frames; the
// client had the answer's head and end. One clock for both sides (CLOCK_MONOTONIC is the kernel's:
// the container's processes read the same one). Needs `npm run build`, the images and the test engines.
//   IMAGE_PREFIX=… [ENGINE=eng-1|local] [N=30] node bench/relay-timeline.mjs
import { readFileSync } from "node:fs";
import path from "node:path";
const DIST = path.resolve(path.join(import.meta.dirname, "..", "dist"));
const { DockerRuntime } = await import(`${DIST}/runtime/docker.js`);
const { ModelRelay } = await import(`${DIST}/relay/model-relay.js`);
const { RelayChannel } = await import(`${DIST}/relay/channel.js`);
const { RelayLink, relayChannelOptions } = await import(`${DIST}/worker/relay-link.js`);
const { ApiKeyCredential } = await import(`${DIST}/auth/credential.js`);
const { startRehearsalServer } = await import(`${DIST}/rehearsal/server.js`);
const { silentLogger } = await import(`${DIST}/log.js`);
const ENGINE = process.env.ENGINE ?? "eng-1";
const N = Number(process.env.N ?? 30);
const list = JSON.parse(readFileSync("/var/lib/cmw-test-engines/engines.json", "utf8"));
const now = () => Number(process.hrtime.bigint()) / 1e6;
let ev = [];
const mark = (w) => ev.push([now(), w]);
// broker-side hooks
const send0 = RelayChannel.prototype.send;
RelayChannel.prototype.send = function (frame, cb) { mark(`broker → frame type ${frame[0]} ${frame.readUInt32BE(5)} B`); return send0.call(this, frame, cb); };
const model = await startRehearsalServer({ port: 0 });
const relay = new ModelRelay();
relay.server.prependListener("request", (req) => { mark("relay: request head"); req.once("end", () => mark("relay: request body end")); });
relay.server.prependListener("connection", () => mark("relay: connection"));
const CLIENT = `
const http = require("node:http");
const now = () => Number(process.hrtime.bigint()) / 1e6;
const [per, token, port] = [Number(process.argv[1]), process.argv[2], Number(process.argv[3])];
const body = JSON.stringify({ model: "rehearsal", instructions: "x".repeat(38000), input: [{ type: "message", role: "user", content: [{ type: "input_text", text: "hello" }] }], stream: true });
const one = () => new Promise((resolve, reject) => {
  const t = { t0: now() };
  const req = http.request({ host: "127.0.0.1", port, path: "/v1/responses", method: "POST", agent: false, headers: { authorization: "Bearer " + token, "content-type": "application/json", "content-length": Buffer.byteLength(body) } }, (res) => {
    t.head = now();
    res.on("data", () => (t.firstData ??= now()));
    res.on("end", () => { t.end = now(); resolve(t); });
  });
  req.on("socket", (s) => s.on("connect", () => (t.connected = now())));
  req.on("finish", () => (t.sent = now()));
  req.on("error", reject);
  req.end(body);
});
(async () => { await one(); const xs = []; for (let i = 0; i < per; i++) { xs.push(await one()); } process.stdout.write(JSON.stringify(xs)); })().catch((e) => { process.stderr.write(String(e)); process.exit(1); });
`;
const e = list.find((x) => x.name === ENGINE);
const docker = ENGINE === "local" ? new DockerRuntime() : new DockerRuntime({ engine: { name: e.name, host: e.host, tls: e.tls, local: false } });
const id = await docker.createContainer({ name: `cmw-relay-timeline-${process.pid}`, image: `${process.env.IMAGE_PREFIX ?? "codex-mcp-wrapper"}/rehearsal:dev`, cmd: ["sleep", "infinity"], user: "10001:10001", env: { CODEX_RELAY: "1" }, labels: { "io.codex-mcp-wrapper.test": `relay-timeline-${process.pid}` }, network: "none", mounts: [] });
await docker.start(id);
try {
  const grant = relay.grant({ container: "tl", upstream: { baseUrl: model.url, credential: new ApiKeyCredential(() => "sk-tl") } });
  const link = new RelayLink({ docker, relay, grant, containerId: id, container: "tl", logger: silentLogger, egress: false, alive: () => true, ...relayChannelOptions("stdio", false, { dir: "/tmp", mountedAt: "/codex-home", user: { uid: 10001, gid: 10001 } }) });
  await link.open();
  ev = [];
  const h = await docker.execCollect(id, ["node", "-e", CLIENT, String(N), grant.token, "38080"]);
  if (h.exitCode !== 0) throw new Error(h.stderr);
  const reqs = JSON.parse(h.stdout);
  const rows = [];
  for (const r of reqs) {
    const mine = ev.filter(([t]) => t >= r.t0 && t <= r.end + 0.001);
    const at = (w) => { const x = mine.find(([, s]) => s.startsWith(w)); return x ? x[0] - r.t0 : NaN; };
    const lastFrame = mine.filter(([, s]) => s.startsWith("broker → frame type 3")).at(-1);
    rows.push({ connected: r.connected - r.t0, sent: r.sent - r.t0, relayConn: at("relay: connection"), relayHead: at("relay: request head"), bodyEnd: at("relay: request body end"), firstOut: at("broker → frame type 3"), lastOut: lastFrame ? lastFrame[0] - r.t0 : NaN, head: r.head - r.t0, end: r.end - r.t0 });
  }
  const keys = Object.keys(rows[0]);
  const med = (k) => { const s = rows.map((x) => x[k]).filter((x) => !Number.isNaN(x)).sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
  console.log(`${ENGINE}: p50 of ${rows.length} requests, ms since the client's send:`);
  for (const k of keys) console.log(`  ${k.padEnd(12)} ${med(k).toFixed(2)}`);
  link.close();
} finally {
  await docker.remove(id).catch(() => {});
  relay.close(); await model.close();
}
process.exit(0);
