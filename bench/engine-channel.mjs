#!/usr/bin/env node
// The relay's engine channel against its floor (issue 19's relay figure, through an engine): one
// model request (a 38 KB POST with a streamed answer, as Codex makes; a new connection each) from a
// client inside a container, p50 of N × ROUNDS per side, sides interleaved in a rotating order:
//   direct      the rehearsal model on the container's own loopback (no relay);
//   netns       the relay's default channel on the local engine (the broker's sockets on the
//               container's loopback);
//   stdio       the relay forwarder's stdio through the engine's API (a remote engine's channel),
//               on the local engine and on eng-1 (mutual TLS, its own network namespace);
//   exec-floor  no relay: 41 KB written to a node process's stdin through `docker exec` and 1.2 KB
//               written back, the floor of any channel through the engine's exec stdio.
// Needs `npm run build`, the images (IMAGE_PREFIX) and scripts/test-engines.sh up.
//   IMAGE_PREFIX=… [N=40] [ROUNDS=3] [DIST=dist] node bench/engine-channel.mjs
import { readFileSync, mkdtempSync, chownSync, chmodSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
const DIST = path.resolve(process.env.DIST ?? path.join(import.meta.dirname, "..", "dist"));
const { DockerRuntime } = await import(`${DIST}/runtime/docker.js`);
const { ModelRelay } = await import(`${DIST}/relay/model-relay.js`);
const { RelayLink, relayChannelOptions } = await import(`${DIST}/worker/relay-link.js`);
const { ApiKeyCredential } = await import(`${DIST}/auth/credential.js`);
const { startRehearsalServer } = await import(`${DIST}/rehearsal/server.js`);
const { silentLogger } = await import(`${DIST}/log.js`);
const IMAGE = `${process.env.IMAGE_PREFIX ?? "codex-mcp-wrapper"}/rehearsal:dev`;
const N = Number(process.env.N ?? 40);
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const list = JSON.parse(readFileSync("/var/lib/cmw-test-engines/engines.json", "utf8"));
const q = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor((s.length - 1) * p)]; };
const CLIENT = `
const http = require("node:http");
const [per, token, port] = [Number(process.argv[1]), process.argv[2], Number(process.argv[3])];
const body = JSON.stringify({ model: "rehearsal", instructions: "x".repeat(38000), input: [{ type: "message", role: "user", content: [{ type: "input_text", text: "hello" }] }], stream: true });
const one = () => new Promise((resolve, reject) => {
  const t0 = performance.now();
  const req = http.request({ host: "127.0.0.1", port, path: "/v1/responses", method: "POST", agent: false, headers: { authorization: "Bearer " + token, "content-type": "application/json", "content-length": Buffer.byteLength(body) } }, (res) => {
    res.resume();
    res.on("end", () => (res.statusCode === 200 ? resolve(performance.now() - t0) : reject(new Error("status " + res.statusCode))));
  });
  req.on("error", reject);
  req.end(body);
});
(async () => { await one(); const xs = []; for (let i = 0; i < per; i++) xs.push(await one()); process.stdout.write(JSON.stringify(xs)); })().catch((e) => { process.stderr.write(String(e)); process.exit(1); });
`;
const ECHO = `let n=0;const want=Number(process.argv[1]);const reply=Buffer.alloc(1200,120);process.stdin.on("data",d=>{n+=d.length;while(n>=want){n-=want;process.stdout.write(reply);}});`;
const model = await startRehearsalServer({ port: 0 });
const relay = new ModelRelay();
const engines = { local: new DockerRuntime(), "eng-1": new DockerRuntime({ engine: { name: "eng-1", host: list[0].host, tls: list[0].tls, local: false } }) };
const made = [];
const sides = {};
const tmp = mkdtempSync(path.join(os.tmpdir(), "cmw-engine-channel-"));
async function container(docker, tag, env = { CODEX_RELAY: "1" }) {
  const home = path.join(tmp, tag);
  (await import("node:fs")).mkdirSync(home);
  chownSync(home, 10001, 10001); chmodSync(home, 0o700);
  const id = await docker.createContainer({ name: `cmw-engine-channel-${process.pid}-${tag}`, image: IMAGE, cmd: ["sleep", "infinity"], user: "10001:10001", labels: { "io.codex-mcp-wrapper.test": `engine-channel-${process.pid}` }, network: "none", env, mounts: docker.local ? [{ type: "bind", source: home, target: "/codex-home", readOnly: false }] : [] });
  await docker.start(id);
  made.push([docker, id]);
  return { id, home };
}
async function run(docker, id, token, port) {
  const h = await docker.execCollect(id, ["node", "-e", CLIENT, String(N), token, String(port)]);
  if (h.exitCode !== 0) throw new Error(h.stderr);
  return JSON.parse(h.stdout);
}
try {
  for (const [ename, docker] of Object.entries(engines)) {
    const d = await container(docker, `${ename}-direct`, {});
    await new Promise((r) => setTimeout(r, 1500));
    sides[`${ename} direct`] = () => run(docker, d.id, "x", 38080);
    const c = await container(docker, ename);
    const channels = ename === "local" ? ["netns", "stdio"] : ["stdio"];
    for (const ch of channels) {
      const cc = ch === "stdio" && ename === "local" ? c : ch === "netns" ? await container(docker, `${ename}-netns`) : c;
      const grant = relay.grant({ container: `micro-${ename}-${ch}`, upstream: { baseUrl: model.url, credential: new ApiKeyCredential(() => "sk-micro") } });
      const link = new RelayLink({ docker, relay, grant, containerId: cc.id, container: `micro-${ename}-${ch}`, logger: silentLogger, egress: false, alive: () => true, ...relayChannelOptions(ch, docker.local, { dir: cc.home, mountedAt: "/codex-home", user: { uid: 10001, gid: 10001 } }) });
      await link.open();
      sides[`${ename} ${ch}`] = () => run(docker, cc.id, grant.token, 38080);
    }
    // the floor: 41 KB up, 1.2 KB back, over a docker exec's stdio
    const e = await docker.exec(c.id, ["node", "-e", ECHO, "41000"], { stdin: true });
    sides[`${ename} exec-floor`] = async () => {
      const up = Buffer.alloc(41000, 121);
      const xs = [];
      let got = 0, resolve;
      e.stdout.on("data", (d) => { got += d.length; if (got >= 1200) { got -= 1200; resolve(); } });
      for (let i = 0; i <= N; i++) { const t = performance.now(); await new Promise((r) => { resolve = r; e.stdin.write(up); }); xs.push(performance.now() - t); }
      e.stdout.removeAllListeners("data");
      return xs.slice(1);
    };
  }
  const res = Object.fromEntries(Object.keys(sides).map((k) => [k, []]));
  const names = Object.keys(sides);
  for (let r = 0; r < ROUNDS; r++) for (const k of names.map((_, j) => names[(r + j) % names.length])) res[k].push(...(await sides[k]()));
  for (const k of names) console.log(`${k.padEnd(18)} p50 ${q(res[k], 0.5).toFixed(2)} ms  p10 ${q(res[k], 0.1).toFixed(2)}  p90 ${q(res[k], 0.9).toFixed(2)}  n ${res[k].length}`);
} finally {
  for (const [d, id] of made) await d.remove(id).catch(() => {});
  relay.close(); await model.close();
}
process.exit(0);
