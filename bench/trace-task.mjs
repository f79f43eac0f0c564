#!/usr/bin/env node
// Where a warm task's milliseconds go (issue 20's placement figure): a broker in this process with
// the local engine and the test engines of scripts/test-engines.sh, one warm container (on
// TRACE_ENGINE: eng-1 by default, or local), and a task at a time; prints, for each task, every
// engine API call the broker makes, every line written to and read from Codex's attach stream,
// every chunk of the relay forwarder's stdio (a remote engine's model channel) and every task
// event, each with its time since the batch call. TRACE_THREE=1: a warm container on each of the
// three engines instead, naming the engine each task ran on. Needs `npm run build` and the images.
//   IMAGE_PREFIX=… [TRACE_ENGINE=eng-1|local] [TRACE_THREE=1] [TRACE_RUNS=8] [TRACE_SHOW=2] [TRACE_GAP=300] node bench/trace-task.mjs
// TRACE_SHOW: how many tasks' timelines to print; TRACE_GAP: ms between a task's end and the next
// batch (0: back to back, as the bench's engines measure runs them).
import { readFileSync, mkdirSync, mkdtempSync, writeFileSync, chownSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { serve } from "@hono/node-server";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { Broker } from "../dist/broker.js";
import { resolveConfig } from "../dist/config/load.js";
import { createApp } from "../dist/http/app.js";
import { DockerRuntime } from "../dist/runtime/docker.js";

const PREFIX = process.env.IMAGE_PREFIX ?? "codex-mcp-wrapper";
const IMAGE = `${PREFIX}/rehearsal:dev`;
const ENGINE = process.env.TRACE_ENGINE ?? "eng-1";
const RUNS = Number(process.env.TRACE_RUNS ?? 8);
const tmp = mkdtempSync(path.join(os.tmpdir(), "cmw-trace-"));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let t0 = null;
let log = [];
const mark = (what) => t0 !== null && log.push([performance.now() - t0, what]);

// Every engine call.
for (const name of Object.getOwnPropertyNames(DockerRuntime.prototype)) {
  const d = Object.getOwnPropertyDescriptor(DockerRuntime.prototype, name);
  const f = d.value;
  if (name === "constructor" || typeof f !== "function") continue;
  DockerRuntime.prototype[name] = function (...args) {
    mark(`engine ${this.name ?? "?"}: ${name} →`);
    const r = f.apply(this, args);
    if (r && typeof r.then === "function") r.then(() => mark(`engine ${this.name ?? "?"}: ${name} ←`), () => mark(`engine: ${name} ✗`));
    if (name === "attach" || name === "exec") {
      r.then((s) => {
        const w = s.stdin.write.bind(s.stdin);
        const tag = name === "attach" ? "codex" : "exec";
        s.stdin.write = (chunk, ...rest) => {
          mark(`${tag} stdin ${String(chunk).slice(0, 60).replace(/\n/g, "⏎")} (${chunk.length} B)`);
          return w(chunk, ...rest);
        };
        s.stdout.on("data", (d) => mark(`${tag} stdout ${d.toString("utf8").slice(0, 60).replace(/\n/g, "⏎")} (${d.length} B)`));
      });
    }
    return r;
  };
}

const ws = path.join(tmp, "ws");
mkdirSync(ws);
chownSync(ws, 10001, 10001);
const auth = path.join(tmp, "auth.json");
writeFileSync(auth, JSON.stringify({ OPENAI_API_KEY: "sk-trace-0123456789abcdef" }), { mode: 0o600 });
const list = JSON.parse(readFileSync("/var/lib/cmw-test-engines/engines.json", "utf8"));
const THREE = process.env.TRACE_THREE === "1";
const engines = [{ name: "local", ...(THREE ? { max_containers: 1 } : {}) }, ...list.map((e) => ({ name: e.name, host: e.host, tls: e.tls, shared_paths: [tmp], ...(THREE ? { max_containers: 1 } : {}) }))];
const config = resolveConfig(
  {
    broker: { label: `cmw-trace-${process.pid}`, channel: "dev", state_dir: path.join(tmp, "state"), auth_file: auth, allowed_workspace_roots: [tmp], image_prefix: PREFIX },
    workers: [{ name: "default", image: IMAGE, network: "none", memory: "1g", sandbox: "workspace-write", capacity: 1, ...(THREE ? { max_containers: 3, warm: 3 } : { max_containers: 1, warm: 1, engines: [ENGINE] }), warm_workspaces: [ws] }],
    engines,
  },
  "trace",
  {},
);
const broker = new Broker(config);
await broker.start();
const first = new Map();
const append = broker.store.appendEvent.bind(broker.store);
broker.store.appendEvent = (m, t, e) => {
  mark(`event ${e?.type}`);
  if (e?.type === "turn_started" && !first.has(`${m}/${t}`)) first.set(`${m}/${t}`, performance.now());
  append(m, t, e);
};
const http = serve({ fetch: createApp({ broker }).fetch, hostname: "127.0.0.1", port: 0 });
await new Promise((r) => http.once("listening", r));
const client = new Client({ name: "trace", version: "0" });
await client.connect(new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${http.address().port}/mcp`)));
while (broker.pool.stats().containers.filter((c) => c.state === "ready").length < (THREE ? 3 : 1)) await sleep(100);
const totals = [];
for (let i = 0; i < RUNS + 1; i++) {
  log = [];
  t0 = performance.now();
  const r = await client.callTool({ name: "batch", arguments: { workspace: ws, wait: false, mission: { name: "trace", tasks: [{ id: "t", prompt: "hello" }] } } });
  mark("batch returned");
  const key = `${r.structuredContent.missionId}/t`;
  while (!first.has(key)) await sleep(1);
  const ms = first.get(key) - t0;
  let on = "?";
  for (;;) {
    const s = await client.callTool({ name: "status", arguments: { missionId: r.structuredContent.missionId } });
    on = s.structuredContent?.tasks?.[0]?.engine ?? on;
    if (s.structuredContent?.status !== "running") break;
    await sleep(50);
  }
  mark("mission done");
  await sleep(Number(process.env.TRACE_GAP ?? 300));
  t0 = null;
  if (i === 0) continue; // the first is not warm
  totals.push(ms);
  if (i <= Number(process.env.TRACE_SHOW ?? 2)) for (const [t, w] of log) console.log(`${t.toFixed(2).padStart(9)} ms  ${w}`);
  console.log(`run ${i}: batch → turn_started ${ms.toFixed(1)} ms on ${on}`);
}
totals.sort((a, b) => a - b);
console.log(`${THREE ? "3 engines" : ENGINE}: p50 ${totals[Math.floor(totals.length / 2)].toFixed(1)} ms; all ${totals.map((x) => x.toFixed(1)).join(" ")}`);
await client.close();
await broker.stop();
await new Promise((r) => http.close(r));
process.exit(0);
