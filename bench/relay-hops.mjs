#!/usr/bin/env node
// The model relay's cost per request without containers or the engine, split at the broker:
// the real forwarder (dist/relay/forwarder.js) as a local process on each channel (a unix socket,
// as on a local engine; its stdio, as through an engine), the relay and the rehearsal model in
// this process, and a client that makes Codex-sized requests (a 38 KB POST, a streamed answer) on
// new connections, as each of Codex's turns does, interleaved with the same request made to the
// model directly. Prints, per side, the p50 of: the whole request; `up`, from the client's send to
// the relay's HTTP server having the request's head; `answer`, from there to the client's last
// byte; and the CPU per request of this process and of the forwarder. Measures a build:
//   node bench/relay-hops.mjs [--dist DIR] [--n 300] [--deltas 200]
// (DIR defaults to this checkout's dist/; point it at another build's dist/ to compare two.)
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";

const { values: opts } = parseArgs({ options: { dist: { type: "string" }, n: { type: "string" }, deltas: { type: "string" } } });
const DIST = path.resolve(opts.dist ?? path.join(import.meta.dirname, "..", "dist"));
const N = Number(opts.n ?? 300);
const { ModelRelay } = await import(path.join(DIST, "relay/model-relay.js"));
const { RelayChannel } = await import(path.join(DIST, "relay/channel.js"));
const { ForwarderSocket } = await import(path.join(DIST, "relay/forwarder-socket.js"));
const { ApiKeyCredential } = await import(path.join(DIST, "auth/credential.js"));
const { startRehearsalServer } = await import(path.join(DIST, "rehearsal/server.js"));

const model = await startRehearsalServer({ port: 0 });
const relay = new ModelRelay();
let headAt = 0;
// The relay's own HTTP server (private in the type; reached here for the timestamp only).
relay.server.prependListener("request", () => (headAt = performance.now()));
const prompt = opts.deltas ? `#fake deltas ${opts.deltas}` : "hello";
const body = JSON.stringify({ model: "rehearsal", instructions: "x".repeat(38000), input: [{ type: "message", role: "user", content: [{ type: "input_text", text: prompt }] }], stream: true });

function one(port, token) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    headAt = 0;
    const req = http.request({ host: "127.0.0.1", port, path: "/v1/responses", method: "POST", agent: false, headers: { authorization: `Bearer ${token}`, "content-type": "application/json", "content-length": Buffer.byteLength(body) } }, (res) => {
      res.resume();
      res.on("end", () => {
        const t1 = performance.now();
        if (res.statusCode !== 200) return reject(new Error(`status ${res.statusCode}`));
        resolve({ total: t1 - t0, up: headAt ? headAt - t0 : NaN, answer: headAt ? t1 - headAt : NaN });
      });
    });
    req.on("error", reject);
    req.end(body);
  });
}

const dirs = [];
async function side(kind) {
  const grant = relay.grant({ container: `hops-${kind}`, upstream: { baseUrl: model.url, credential: new ApiKeyCredential(() => "sk-hops") } });
  const forwarder = path.join(DIST, "relay/forwarder.js");
  let child;
  let channel;
  if (kind === "socket") {
    const dir = mkdtempSync(path.join(os.tmpdir(), "relay-hops-"));
    dirs.push(dir);
    const sockPath = path.join(dir, "relay.sock");
    const fs = new ForwarderSocket();
    await new Promise((r) => fs.server.listen(sockPath, r));
    const control = new Promise((r) => (fs.onControl = r));
    child = spawn(process.execPath, [forwarder, `--connect=${sockPath}`, "model=0"], { stdio: ["pipe", "ignore", "inherit"] });
    const s = await control;
    channel = new RelayChannel(kind, { stdin: s, stdout: s });
    fs.channel = channel;
  } else {
    child = spawn(process.execPath, [forwarder, "model=0"], { stdio: ["pipe", "pipe", "inherit"] });
    channel = new RelayChannel(kind, { stdin: child.stdin, stdout: child.stdout });
  }
  const listeners = await new Promise((r) => channel.once("ready", r));
  relay.attach(grant, channel);
  return { port: listeners.model, token: grant.token, child };
}

const sides = { direct: { port: Number(new URL(model.url).port), token: "sk-hops", child: null }, socket: await side("socket"), stdio: await side("stdio") };
const names = Object.keys(sides);
/** CPU ms a process has used (user + system), from /proc (10 ms ticks). */
const childCpuMs = (c) => {
  const f = readFileSync(`/proc/${c.pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(f[11]) + Number(f[12])) * 10;
};
for (let i = 0; i < 20; i++) for (const k of names) await one(sides[k].port, sides[k].token); // warm-up
const runs = Object.fromEntries(names.map((k) => [k, []]));
for (let i = 0; i < N; i++) for (const k of names.map((_, j) => names[(i + j) % names.length])) runs[k].push(await one(sides[k].port, sides[k].token));
// CPU per request, each side in a block of its own.
const cpu = {};
for (const k of names) {
  const s = sides[k];
  const c0 = process.cpuUsage();
  const f0 = s.child ? childCpuMs(s.child) : 0;
  for (let i = 0; i < N; i++) await one(s.port, s.token);
  const c = process.cpuUsage(c0);
  cpu[k] = { thisProcessUs: Math.round((c.user + c.system) / N), forwarderUs: s.child ? Math.round(((childCpuMs(s.child) - f0) * 1000) / N) : 0 };
}
const p50 = (xs) => {
  const s = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  return s.length ? Math.round(s[Math.floor(s.length / 2)] * 1000) / 1000 : null;
};
const out = Object.fromEntries(names.map((k) => [k, { totalMs: p50(runs[k].map((x) => x.total)), upMs: k === "direct" ? null : p50(runs[k].map((x) => x.up)), answerMs: k === "direct" ? null : p50(runs[k].map((x) => x.answer)), ...cpu[k] }]));
out.addsMs = { socket: Math.round((out.socket.totalMs - out.direct.totalMs) * 1000) / 1000, stdio: Math.round((out.stdio.totalMs - out.direct.totalMs) * 1000) / 1000 };
out.loadavg = os.loadavg().map((x) => Math.round(x * 10) / 10);
console.log(JSON.stringify({ dist: DIST, n: N, prompt, ...out }));
for (const s of Object.values(sides)) s.child?.kill();
for (const d of dirs) rmSync(d, { recursive: true, force: true });
relay.close();
await model.close();
process.exit(0);
