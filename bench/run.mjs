#!/usr/bin/env node
// The benchmark: the broker against the floors of the same work without it, side by side in one
// run, on the real engine with the real Codex in the rehearsal image (docs/performance.md).
//   npm run bench [-- --quick] [--only cold,cold-spare,warm,throughput,drivers,scale,relay,deltas,engines,ssh,scale3,records,status] [--cells 200x4,50x1] [--tasks 250,500,1000,1000q] [--out FILE]
// Prints a table and writes JSON (bench/results/<time>.json by default). Needs `npm run images`.
import { execFileSync, spawn } from "node:child_process";
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { performance } from "node:perf_hooks";
import { serve } from "@hono/node-server";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { Broker } from "../dist/broker.js";
import { resolveConfig } from "../dist/config/load.js";
import { createApp } from "../dist/http/app.js";
import { LineSplitter } from "../dist/worker/stream-transport.js";
import { ApiKeyCredential } from "../dist/auth/credential.js";
import { ModelRelay } from "../dist/relay/model-relay.js";
import { RelayLink, relayChannelOptions } from "../dist/worker/relay-link.js";
import { DockerRuntime } from "../dist/runtime/docker.js";
import { silentLogger } from "../dist/log.js";
import { withDeadline } from "../dist/deadline.js";
import { startRehearsalServer } from "../dist/rehearsal/server.js";
import { renderHtml, renderSvg } from "./report.mjs";

const { values: opts } = parseArgs({ options: { quick: { type: "boolean" }, only: { type: "string" }, out: { type: "string" }, cells: { type: "string" }, tasks: { type: "string" } } });
const QUICK = !!opts.quick;
const ONLY = opts.only ? new Set(opts.only.split(",")) : null;
const PREFIX = process.env.IMAGE_PREFIX ?? "codex-mcp-wrapper";
const IMAGE = `${PREFIX}/rehearsal:dev`;
const LEGACY_IMAGE = `${PREFIX}/rehearsal:dev-codex-0.153.0`;
const RUN = `bench-${process.pid}`;
const TEST_LABEL = "io.codex-mcp-wrapper.test";
const UID = 10001;
const API_KEY = "sk-bench-rehearsal-0123456789abcdef";
const HARDENING = ["--network", "none", "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--read-only", "--tmpfs", "/tmp:rw,nosuid,nodev,mode=1777,size=512m", "--pids-limit", "512", "--memory", "1g", "--cpus", "2"];
const tmp = mkdtempSync(path.join(os.tmpdir(), "cmw-bench-"));
let seq = 0;

// ---------- small helpers ----------
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const TIMED_OUT = Symbol("timed out");
/** The promise's value, or TIMED_OUT after ms (a close that hangs must not hang the bench). */
const within = (p, ms) => withDeadline(p, ms, () => TIMED_OUT);
const median = (xs) => quantile(xs, 0.5);
function quantile(xs, q) {
  const s = [...xs].sort((a, b) => a - b);
  if (!s.length) return NaN;
  const i = (s.length - 1) * q;
  return s[Math.floor(i)] + (s[Math.ceil(i)] - s[Math.floor(i)]) * (i - Math.floor(i));
}
const summary = (xs) => ({ n: xs.length, median: round(median(xs)), p10: round(quantile(xs, 0.1)), p90: round(quantile(xs, 0.9)), min: round(Math.min(...xs)), max: round(Math.max(...xs)), samples: xs.map(round2) });
const round = (x) => Math.round(x * 10) / 10;
const round2 = (x) => Math.round(x * 100) / 100;
const say = (s) => process.stderr.write(`bench: ${s}\n`);

function ownedDir(prefix, mode = 0o755) {
  const d = path.join(tmp, `${prefix}-${++seq}`);
  mkdirSync(d, { recursive: true });
  chownSync(d, UID, UID);
  chmodSync(d, mode);
  return d;
}
function codexHome() {
  const d = ownedDir("home", 0o700);
  writeFileSync(path.join(d, "auth.json"), JSON.stringify({ OPENAI_API_KEY: API_KEY }), { mode: 0o600 });
  chownSync(path.join(d, "auth.json"), UID, UID);
  return d;
}
function authFile() {
  const f = path.join(tmp, `auth-${++seq}.json`);
  writeFileSync(f, JSON.stringify({ OPENAI_API_KEY: API_KEY }), { mode: 0o600 });
  return f;
}
function cleanup() {
  for (const filter of [`label=${TEST_LABEL}=${RUN}`]) {
    const ids = execFileSync("docker", ["ps", "-aq", "--filter", filter], { encoding: "utf8" }).split("\n").filter(Boolean);
    if (ids.length) execFileSync("docker", ["rm", "-f", ...ids], { stdio: "ignore" });
  }
  const rows = execFileSync("docker", ["ps", "-a", "--filter", "label=io.codex-mcp-wrapper.instance", "--format", '{{.ID}} {{.Label "io.codex-mcp-wrapper.instance"}}'], { encoding: "utf8" }).split("\n").filter(Boolean);
  const ids = rows.map((r) => r.split(" ")).filter(([, l]) => l.startsWith(`cmw-${RUN}`)).map(([id]) => id);
  if (ids.length) execFileSync("docker", ["rm", "-f", ...ids], { stdio: "ignore" });
  // Its workspaces, CODEX_HOMEs and state directories: nothing of a run stays in /tmp.
  rmSync(tmp, { recursive: true, force: true });
}
process.on("SIGINT", () => {
  cleanup();
  process.exit(130);
});

// ---------- the floor: Codex driven directly over `docker run -i` stdio ----------
class DirectAppServer {
  /**
   * `home`: a CODEX_HOME (default: one with the API key); `env`: extra container variables.
   * `attach`: instead of a `docker run -i` process, the container is created (`docker create -i`)
   * and its stdio attached from this process through the engine API, with the broker's own
   * DockerRuntime (dockerode's hijacked attach, the broker's demultiplexer): the client whose CPU
   * is the floor of the scale measure's (no CLI process relaying the bytes).
   */
  constructor(image = IMAGE, { home = codexHome(), env = [], engine = [], attach = false } = {}) {
    this.name = `cmw-${RUN}-direct-${++seq}`;
    /** `docker` flags naming another engine (-H tcp://… with its TLS files); none: this machine's. */
    this.engine = engine;
    this.pending = new Map();
    this.waiters = [];
    this.nextId = 1;
    this.spawnedAt = performance.now();
    const lines = new LineSplitter(64 << 20);
    const onData = (d) => lines.push(d).forEach((l) => this.onLine(l));
    const flags = ["--name", this.name, "--label", `${TEST_LABEL}=${RUN}`, ...HARDENING, "--user", `${UID}:${UID}`, "-e", "CODEX_HOME=/codex-home", ...env.flatMap((e) => ["-e", e]), "-v", `${home}:/codex-home`, "-v", `${ownedDir("ws")}:/workspace`, "-w", "/workspace", image, "codex", "app-server"];
    if (attach) {
      if (engine.length) throw new Error("DirectAppServer: attach is for this machine's engine only");
      const id = execFileSync("docker", ["create", "-i", ...flags], { encoding: "utf8" }).trim();
      const docker = new DockerRuntime();
      this.attached = docker.attach(id).then(async (io) => {
        io.stdout.on("data", onData);
        this.stdin = io.stdin;
        await docker.start(id);
      });
    } else {
      this.proc = spawn("docker", [...engine, "run", "-i", "--rm", ...flags], { stdio: ["pipe", "pipe", "ignore"] });
      this.proc.stdout.on("data", onData);
    }
  }
  onLine(line) {
    let m;
    try {
      m = JSON.parse(line);
    } catch {
      return;
    }
    if (m.id !== undefined && (m.result !== undefined || m.error !== undefined)) {
      const p = this.pending.get(m.id);
      this.pending.delete(m.id);
      if (m.error) p?.reject(new Error(m.error.message));
      else p?.resolve(m.result);
    } else if (m.method && m.id !== undefined) {
      this.send({ jsonrpc: "2.0", id: m.id, result: { decision: "decline" } });
    } else if (m.method) {
      const at = performance.now();
      if (m.method === "item/agentMessage/delta") this.deltas?.push(at);
      this.waiters = this.waiters.filter((w) => !(w.method === m.method && w.pred(m.params) && (w.resolve(at), true)));
    }
  }
  send(msg) {
    (this.stdin ?? this.proc.stdin).write(`${JSON.stringify(msg)}\n`);
  }
  request(method, params) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.send({ jsonrpc: "2.0", id, method, params });
    });
  }
  /** Resolves with the time the notification arrived. */
  next(method, pred = () => true) {
    return new Promise((resolve) => this.waiters.push({ method, pred, resolve }));
  }
  async init() {
    await this.attached;
    await this.request("initialize", { clientInfo: { name: "bench", title: "bench", version: "1" }, capabilities: { experimentalApi: true } });
    this.send({ jsonrpc: "2.0", method: "initialized" });
  }
  /** thread/start + turn/start; returns { started, completed } times. */
  async turn(prompt) {
    const t = await this.request("thread/start", { cwd: "/workspace", approvalPolicy: "never", sandbox: "danger-full-access" });
    const threadId = t.thread.id;
    const started = this.next("turn/started", (p) => p.threadId === threadId);
    const completed = this.next("turn/completed", (p) => p.threadId === threadId);
    await this.request("turn/start", { threadId, input: [{ type: "text", text: prompt }] });
    return { started, completed };
  }
  close() {
    (this.stdin ?? this.proc.stdin).end();
    try {
      execFileSync("docker", [...this.engine, "rm", "-f", this.name], { stdio: "ignore" });
    } catch {
      // already gone (--rm)
    }
  }
}

// ---------- the broker, in this process (its first Codex event is observed in its event log) ----------
async function startBroker(workers, extra = {}, engines = undefined) {
  const label = `cmw-${RUN}-${++seq}`;
  const config = resolveConfig(
    {
      broker: { label, channel: "dev", state_dir: path.join(tmp, `${label}-state`), auth_file: authFile(), allowed_workspace_roots: [tmp], image_prefix: PREFIX, ...extra },
      workers: workers.map((w) => ({ name: "default", image: IMAGE, network: "none", memory: "1g", sandbox: "workspace-write", ...w })),
      ...(engines ? { engines } : {}),
    },
    "bench",
    {},
  );
  const broker = new Broker(config);
  await broker.start();
  const firstEvent = new Map();
  const append = broker.store.appendEvent.bind(broker.store);
  const onEvent = [];
  broker.store.appendEvent = (missionId, taskId, e) => {
    if (e?.type === "turn_started" && !firstEvent.has(`${missionId}/${taskId}`)) firstEvent.set(`${missionId}/${taskId}`, performance.now());
    append(missionId, taskId, e);
    for (const f of onEvent) f(e);
  };
  const http = serve({ fetch: createApp({ broker }).fetch, hostname: "127.0.0.1", port: 0 });
  await new Promise((r) => http.once("listening", r));
  const client = new Client({ name: "bench", version: "0" });
  await client.connect(new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${http.address().port}/mcp`)));
  return {
    broker,
    client,
    firstEvent,
    /** Called with each event after it is in the task's record (events.jsonl). */
    onEvent,
    async batch(workspace, tasks, wait = true) {
      const r = await client.callTool({ name: "batch", arguments: { workspace, wait, mission: { name: "bench", tasks } } }, undefined, { timeout: 900_000 });
      if (r.isError) throw new Error(JSON.stringify(r.content));
      return r.structuredContent;
    },
    async waitReady(n) {
      const end = Date.now() + 120_000;
      while (broker.pool.stats().containers.filter((c) => c.state === "ready").length < n) {
        if (Date.now() > end) throw new Error(`${n} warm containers not ready after 120 s`);
        await sleep(100);
      }
    },
    async stop() {
      await client.close();
      await broker.stop();
      await new Promise((r) => http.close(r));
    },
  };
}

/** The time from the batch call to the task's turn/started, in ms; `engines` (if given) gets the engine the task ran on. */
async function brokerFirstEvent(b, workspace, prompt = "hello", engines = undefined) {
  const t0 = performance.now();
  const r = await b.batch(workspace, [{ id: "t", prompt }], false);
  const key = `${r.missionId}/t`;
  const end = Date.now() + 120_000;
  while (!b.firstEvent.has(key)) {
    if (Date.now() > end) throw new Error("no turn_started within 120 s");
    await sleep(2);
  }
  const ms = b.firstEvent.get(key) - t0;
  // Let the mission finish before the next measurement.
  for (;;) {
    const s = await b.client.callTool({ name: "status", arguments: { missionId: r.missionId } });
    if (s.structuredContent?.status !== "running") {
      engines?.push(s.structuredContent?.tasks?.[0]?.engine ?? "?");
      break;
    }
    await sleep(50);
  }
  return ms;
}

// ---------- the measurements ----------
const results = { machine: machine(), quick: QUICK, startedAt: new Date().toISOString() };

function machine() {
  const cpu = os.cpus();
  return {
    cpu: cpu[0]?.model ?? "unknown",
    cores: cpu.length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    kernel: os.release(),
    node: process.version,
    docker: execFileSync("docker", ["version", "-f", "{{.Server.Version}}"], { encoding: "utf8" }).trim(),
    codex: execFileSync("docker", ["image", "inspect", "-f", '{{index .Config.Labels "io.codex-mcp-wrapper.codex-version"}}', IMAGE], { encoding: "utf8" }).trim(),
  };
}

/**
 * One interleaved cold round: a new broker's batch → turn/started for a new workspace, then a
 * direct app-server's `docker run -i` → turn/started; each time pushed to its list.
 */
async function coldRound(broker, floor, newBroker, newDirect) {
  const b = await newBroker();
  broker.push(await brokerFirstEvent(b, ownedDir("ws")));
  await b.stop();
  const d = newDirect();
  const t0 = d.spawnedAt;
  await d.init();
  const { started, completed } = await d.turn("hello");
  floor.push((await started) - t0);
  await completed;
  d.close();
}

async function cold() {
  const runs = QUICK ? 2 : 5;
  const broker = [];
  const floor = [];
  for (let i = 0; i < runs; i++) {
    // Interleaved, so drift on a noisy machine hits both alike.
    await coldRound(broker, floor, () => startBroker([{ capacity: 1, max_containers: 1 }]), () => new DirectAppServer());
    say(`cold ${i + 1}/${runs}: broker ${round(broker.at(-1))} ms, floor ${round(floor.at(-1))} ms`);
  }
  results.cold = { broker: summary(broker), floor: summary(floor), ratio: Math.round((median(broker) / median(floor)) * 100) / 100 };
}

/**
 * Cold start with a spare: a broker whose isolated profile keeps one spare (created, started, Codex
 * initialized before the batch); batch → turn/started for a task on a new workspace, whose copy
 * fills the spare's volume. Interleaved with the same `docker run -i` floor as `cold`. Also what a
 * spare costs in memory (docker stats of the idle spare before its task).
 */
async function coldSpare() {
  const runs = QUICK ? 2 : 5;
  const broker = [];
  const floor = [];
  const memory = [];
  for (let i = 0; i < runs; i++) {
    const withSpare = async () => {
      const b = await startBroker([{ capacity: 1, max_containers: 2, spare: 1, workspace_mode: "isolated" }]);
      const end = Date.now() + 120_000;
      let spare;
      while (!(spare = b.broker.pool.stats().containers.find((c) => c.spare && c.state === "ready"))) {
        if (Date.now() > end) throw new Error("no spare ready after 120 s");
        await sleep(100);
      }
      await sleep(1000); // let the idle spare settle before its memory is read
      memory.push(containerMemoryMiB(spare.name));
      return b;
    };
    await coldRound(broker, floor, withSpare, () => new DirectAppServer());
    say(`cold-spare ${i + 1}/${runs}: broker ${round(broker.at(-1))} ms, floor ${round(floor.at(-1))} ms, spare ${memory.at(-1)} MiB`);
  }
  results.coldSpare = { broker: summary(broker), floor: summary(floor), ratio: round2(median(broker) / median(floor)), spareMemoryMiB: summary(memory) };
}

/** A container's memory use now, in MiB (docker stats). */
function containerMemoryMiB(name) {
  const used = execFileSync("docker", ["stats", "--no-stream", "--format", "{{.MemUsage}}", name], { encoding: "utf8" }).split("/")[0].trim();
  const m = /^([\d.]+)\s*([KMG]i?B)$/.exec(used);
  if (!m) return NaN;
  return round(Number(m[1]) * { KiB: 1 / 1024, KB: 1 / 1024, MiB: 1, MB: 1, GiB: 1024, GB: 1024 }[m[2]]);
}

async function warm() {
  const runs = QUICK ? 4 : 12;
  const ws = ownedDir("ws");
  const b = await startBroker([{ capacity: 1, max_containers: 1, warm: 1, warm_workspaces: [ws] }]);
  await b.waitReady(1);
  const d = new DirectAppServer();
  await d.init();
  await (await d.turn("hello")).completed; // its first turn pays Codex's lazy start-up, as the broker's warm-up does
  await brokerFirstEvent(b, ws);
  const broker = [];
  const floor = [];
  for (let i = 0; i < runs; i++) {
    broker.push(await brokerFirstEvent(b, ws));
    const t0 = performance.now();
    const { started, completed } = await d.turn("hello");
    floor.push((await started) - t0);
    await completed;
  }
  if (b.broker.pool.stats().starts.onDemand !== 0) throw new Error("a warm run started a container on demand");
  const threads = b.broker.pool.stats().threads;
  // What the threads started ahead cost: the warm container's memory (Codex and the forwarder).
  const memory = (await output("docker", ["stats", "--no-stream", "--format", "{{.MemUsage}}", ...b.broker.pool.stats().containers.map((c) => c.name)])).trim();
  d.close();
  await b.stop();
  results.warm = { broker: summary(broker), floor: summary(floor), addedMsP50: round(median(broker) - median(floor)), ratio: round2(median(broker) / median(floor)), threads, containerMemory: memory };
  say(`warm: broker p50 ${results.warm.broker.median} ms, floor p50 ${results.warm.floor.median} ms`);
}

/**
 * One engine reached two ways: eng-1 over mutual TLS, and the same dockerd over SSH (the sshd of
 * scripts/test-ssh-engine.sh, whose sessions run docker system dial-stdio against eng-1's socket).
 * A warm task's batch → turn/started on each, interleaved (a warm container on each, no copy: the
 * engine sees the bench's directory at the same path).
 */
async function sshEngine() {
  execFileSync("bash", ["scripts/test-engines.sh", "up"], { stdio: ["ignore", "ignore", "inherit"] });
  execFileSync("bash", ["scripts/test-ssh-engine.sh", "up"], { stdio: ["ignore", "ignore", "inherit"] });
  const e1 = JSON.parse(readFileSync("/var/lib/cmw-test-engines/engines.json", "utf8"))[0];
  const s = JSON.parse(readFileSync("/var/lib/cmw-test-ssh/ssh.json", "utf8"));
  const runs = QUICK ? 4 : 12;
  const ws = ownedDir("ws");
  const worker = (engine) => [{ capacity: 1, max_containers: 1, warm: 1, warm_workspaces: [ws], engines: [engine] }];
  const tls = await startBroker(worker(e1.name), {}, [{ name: "local", max_containers: 1 }, { name: e1.name, host: e1.host, tls: e1.tls, shared_paths: [tmp], max_containers: 1 }]);
  const ssh = await startBroker(worker(s.name), {}, [{ name: "local", max_containers: 1 }, { name: s.name, host: s.host, ssh: { identity: s.identity, known_hosts: s.known_hosts }, shared_paths: [tmp], max_containers: 1 }]);
  await tls.waitReady(1);
  await ssh.waitReady(1);
  await brokerFirstEvent(tls, ws);
  await brokerFirstEvent(ssh, ws);
  const overTls = [];
  const overSsh = [];
  for (let i = 0; i < runs; i++) {
    overTls.push(await brokerFirstEvent(tls, ws));
    overSsh.push(await brokerFirstEvent(ssh, ws));
  }
  // One engine call (GET /version), each way.
  const rt = (b) => new DockerRuntime({ engine: b.broker.config.engines[1] });
  const [rtTls, rtSsh] = [rt(tls), rt(ssh)];
  const pingTls = [];
  const pingSsh = [];
  for (let i = 0; i < (QUICK ? 10 : 30); i++) {
    for (const [r, list] of [[rtTls, pingTls], [rtSsh, pingSsh]]) {
      const t0 = performance.now();
      await r.ping();
      list.push(performance.now() - t0);
    }
  }
  // A cold task (a new workspace: a new container, the engine calls of its bring-up), each way.
  const coldTls = [];
  const coldSsh = [];
  for (let i = 0; i < (QUICK ? 2 : 5); i++) {
    coldTls.push(await brokerFirstEvent(tls, ownedDir("ws")));
    coldSsh.push(await brokerFirstEvent(ssh, ownedDir("ws")));
  }
  await tls.stop();
  await ssh.stop();
  results.sshEngine = {
    tls: summary(overTls),
    ssh: summary(overSsh),
    addedMsP50: round(median(overSsh) - median(overTls)),
    call: { tls: summary(pingTls), ssh: summary(pingSsh) },
    cold: { tls: summary(coldTls), ssh: summary(coldSsh), addedMsP50: round(median(coldSsh) - median(coldTls)) },
  };
  say(`ssh: a warm task on eng-1 over SSH takes ${results.sshEngine.addedMsP50} ms more at p50 than over TLS`);
}

/**
 * Several engines (the test engines of scripts/test-engines.sh, each a dockerd in its own network
 * namespace over mutual TLS). Placement: a warm task's batch → turn/started on a broker with one
 * engine against one with three (a warm container on each), interleaved. Cold on a remote engine:
 * a task's first event on eng-1 (which sees the bench's directory at the same path, so no copy is
 * made, as for the floor's bind mount) against `docker -H tcp://… run -i` of app-server there.
 */
async function engines() {
  execFileSync("bash", ["scripts/test-engines.sh", "up"], { stdio: ["ignore", "ignore", "inherit"] });
  const list = JSON.parse(readFileSync("/var/lib/cmw-test-engines/engines.json", "utf8"));
  const remote = list.map((e) => ({ name: e.name, host: e.host, tls: e.tls, shared_paths: [tmp] }));
  // 40 interleaved pairs: with 12, two runs of the same build gave +25.8 and -0.7 ms (p10-p90 of
  // either side is about 60 ms wide on this machine).
  const runs = QUICK ? 4 : 40;
  const ws = ownedDir("ws");
  const one = await startBroker([{ capacity: 1, max_containers: 1, warm: 1, warm_workspaces: [ws] }]);
  const three = await startBroker([{ capacity: 1, max_containers: 3, warm: 3, warm_workspaces: [ws] }], {}, [{ name: "local", max_containers: 1 }, ...remote.map((e) => ({ ...e, max_containers: 1 }))]);
  await one.waitReady(1);
  await three.waitReady(3);
  const spread = three.broker.pool.stats().containers.map((c) => c.engine).sort();
  await brokerFirstEvent(one, ws);
  await brokerFirstEvent(three, ws);
  const b1 = [];
  const b3 = [];
  const on3 = [];
  for (let i = 0; i < runs; i++) {
    b1.push(await brokerFirstEvent(one, ws));
    b3.push(await brokerFirstEvent(three, ws, "hello", on3));
  }
  // Which engine each 3-engine task ran on: the samples split by engine.
  const byEngine = Object.fromEntries([...new Set(on3)].sort().map((e) => [e, summary(b3.filter((_, i) => on3[i] === e))]));
  await one.stop();
  await three.stop();

  const e1 = list[0];
  const flags = ["--tlsverify", "--tlscacert", e1.tls.ca, "--tlscert", e1.tls.cert, "--tlskey", e1.tls.key, "-H", e1.host];
  const coldRuns = QUICK ? 2 : 9;
  const broker = [];
  const floor = [];
  for (let i = 0; i < coldRuns; i++) {
    await coldRound(
      broker,
      floor,
      () => startBroker([{ capacity: 1, max_containers: 1, engines: [e1.name] }], {}, [{ name: "local" }, { ...remote[0], max_containers: 1 }]),
      () => new DirectAppServer(IMAGE, { engine: flags }),
    );
    say(`engines cold ${i + 1}/${coldRuns}: broker on ${e1.name} ${round(broker.at(-1))} ms, docker -H … run -i ${round(floor.at(-1))} ms`);
  }
  results.engines = {
    placement: { oneEngine: summary(b1), threeEngines: summary(b3), addedMsP50: round(median(b3) - median(b1)), spread, byEngine },
    coldRemote: { engine: e1.name, broker: summary(broker), floor: summary(floor), ratio: round2(median(broker) / median(floor)) },
  };
  say(`engines: placement over 3 engines adds ${results.engines.placement.addedMsP50} ms at p50; cold on ${e1.name} ${results.engines.coldRemote.ratio}× the floor`);
}

/**
 * A long streamed answer through the broker (#fake deltas N): the rate at which its message deltas
 * reach the task's record (events.jsonl, written as each arrives), against the rate a direct
 * client of an app-server sees them; and the bench process's peak RSS meanwhile (the broker runs
 * in it), so that an unbounded buffer would show.
 */
async function deltas() {
  const n = QUICK ? 2000 : 10000;
  const runs = QUICK ? 2 : 5;
  const ws = ownedDir("ws");
  const b = await startBroker([{ capacity: 1, max_containers: 1, warm: 1, warm_workspaces: [ws] }]);
  await b.waitReady(1);
  const d = new DirectAppServer();
  await d.init();
  await (await d.turn("hello")).completed;
  await b.batch(ws, [{ id: "t", prompt: "hello" }]);
  let times = [];
  b.onEvent.push((e) => {
    if (e?.type === "codex" && e.message?.method === "item/agentMessage/delta") times.push(performance.now());
  });
  const rateOf = (xs) => ((xs.length - 1) / (xs.at(-1) - xs[0])) * 1000;
  const broker = [];
  const direct = [];
  const rss0 = process.memoryUsage().rss;
  let peak = rss0;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
  for (let i = 0; i < runs; i++) {
    times = [];
    await b.batch(ws, [{ id: "t", prompt: `#fake deltas ${n}` }]);
    if (times.length !== n) throw new Error(`deltas: the record got ${times.length} deltas of ${n}`);
    broker.push(rateOf(times));
    d.deltas = [];
    await (await d.turn(`#fake deltas ${n}`)).completed;
    if (d.deltas.length !== n) throw new Error(`deltas: the direct client got ${d.deltas.length} deltas of ${n}`);
    direct.push(rateOf(d.deltas));
    d.deltas = undefined;
  }
  clearInterval(sampler);
  d.close();
  await b.stop();
  results.deltas = { n, broker: summary(broker), direct: summary(direct), ratio: round2(median(broker) / median(direct)), rssBeforeMiB: round(rss0 / 2 ** 20), peakRssMiB: round(peak / 2 ** 20) };
  say(`deltas: ${n} a turn, broker ${results.deltas.broker.median}/s, direct ${results.deltas.direct.median}/s`);
}

/**
 * One model request below Codex, from inside a container (`node -e` there): `per` sequential
 * POSTs of a Codex-sized request (a 38 KB body, a streamed answer) to the model port, each on a
 * new connection as each of Codex's turns opens one; prints the times in ms as JSON.
 */
const REQUEST_CLIENT = `
const http = require("node:http");
const [per, token] = [Number(process.argv[1]), process.argv[2]];
const body = JSON.stringify({ model: "rehearsal", instructions: "x".repeat(38000), input: [{ type: "message", role: "user", content: [{ type: "input_text", text: "hello" }] }], stream: true });
const one = () => new Promise((resolve, reject) => {
  const t0 = performance.now();
  const req = http.request({ host: "127.0.0.1", port: 38080, path: "/v1/responses", method: "POST", agent: false, headers: { authorization: "Bearer " + token, "content-type": "application/json", "content-length": Buffer.byteLength(body) } }, (res) => {
    res.resume();
    res.on("end", () => (res.statusCode === 200 ? resolve(performance.now() - t0) : reject(new Error("status " + res.statusCode))));
  });
  req.on("error", reject);
  req.end(body);
});
(async () => {
  await one();
  const xs = [];
  for (let i = 0; i < per; i++) xs.push(await one());
  process.stdout.write(JSON.stringify(xs));
})().catch((e) => { process.stderr.write(String(e)); process.exit(1); });
`;
/** A command's stdout; async, so that the relay in this process goes on serving meanwhile. */
function output(cmd, args) {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    p.stdout.on("data", (d) => (out += d));
    p.stderr.on("data", (d) => (err += d));
    p.on("exit", (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.slice(0, 2).join(" ")} exited ${code}: ${err}`))));
  });
}

/**
 * The relay against today's direct path, with the broker's pool out of the picture: the same
 * app-server, driven the same way, with its model on the container's own loopback (the rehearsal
 * image run by hand) or reached through the relay (the forwarder exec'd in the container, the
 * relay and the rehearsal model in this process). A one-request turn, start to completed; and a
 * long streamed answer (#fake deltas 200), deltas per second from the first to the last; and one
 * model request below Codex (REQUEST_CLIENT) in the same containers.
 */
async function relay() {
  const runs = QUICK ? 6 : 30;
  const model = await startRehearsalServer({ port: 0 });
  const relay = new ModelRelay();
  const docker = new DockerRuntime();
  // Today's direct path, and the relay's three channels: the broker's sockets on the container's
  // loopback (netns, the default on a local engine when the broker runs as root), a unix socket
  // in CODEX_HOME (the local fallback) and the forwarder's stdio through the engine (a remote
  // engine's only way).
  const sides = { direct: new DirectAppServer() };
  const links = [];
  for (const channel of ["netns", "socket", "stdio"]) {
    const grant = relay.grant({ container: `bench-${channel}`, upstream: { baseUrl: model.url, credential: new ApiKeyCredential(() => API_KEY) } });
    const home = ownedDir("home", 0o700);
    writeFileSync(path.join(home, "auth.json"), JSON.stringify({ OPENAI_API_KEY: grant.token }), { mode: 0o600 });
    chownSync(path.join(home, "auth.json"), UID, UID);
    const d = new DirectAppServer(IMAGE, { home, env: ["CODEX_RELAY=1"] });
    for (const end = Date.now() + 30_000; ; await sleep(100)) {
      if ((await docker.inspect(d.name).catch(() => null))?.running) break;
      if (Date.now() > end) throw new Error(`${d.name} did not start`);
    }
    const link = new RelayLink({ docker, relay, grant, containerId: d.name, container: d.name, logger: silentLogger, egress: false, alive: () => true, ...relayChannelOptions(channel, true, { dir: home, mountedAt: "/codex-home", user: { uid: UID, gid: UID } }) });
    await link.open();
    links.push(link);
    sides[channel] = d;
    d.token = grant.token;
  }
  sides.direct.token = API_KEY;
  await Promise.all(Object.values(sides).map((d) => d.init()));
  const turnMs = async (d, prompt) => {
    const t0 = performance.now();
    const { completed } = await d.turn(prompt);
    return (await completed) - t0;
  };
  const rate = async (d) => {
    d.deltas = [];
    await turnMs(d, "#fake deltas 200");
    const xs = d.deltas;
    d.deltas = undefined;
    if (xs.length < 2) throw new Error(`expected 200 deltas, saw ${xs.length}`);
    return ((xs.length - 1) / (xs.at(-1) - xs[0])) * 1000;
  };
  const names = Object.keys(sides);
  for (const k of names) {
    await turnMs(sides[k], "hello"); // first turns pay Codex's lazy start-up
    await rate(sides[k]);
  }
  const r0 = relay.stats.requests;
  await turnMs(sides.socket, "hello");
  const requestsPerTurn = relay.stats.requests - r0;
  const turn = Object.fromEntries(names.map((k) => [k, []]));
  const stream = Object.fromEntries(names.map((k) => [k, []]));
  for (let i = 0; i < runs; i++) {
    // Interleaved, in a rotating order, so drift on a noisy machine falls on every side.
    const order = names.map((_, j) => names[(i + j) % names.length]);
    for (const k of order) turn[k].push(await turnMs(sides[k], "hello"));
    for (const k of order) stream[k].push(await rate(sides[k]));
  }
  // One model request, the same containers: a turn's own spread (tens of ms) hides a few ms.
  const request = Object.fromEntries(names.map((k) => [k, []]));
  for (let i = 0; i < (QUICK ? 3 : 6); i++) {
    for (const k of names.map((_, j) => names[(i + j) % names.length])) request[k].push(...JSON.parse(await output("docker", ["exec", sides[k].name, "node", "-e", REQUEST_CLIENT, "20", sides[k].token])));
  }
  for (const l of links) l.close();
  for (const d of Object.values(sides)) d.close();
  relay.close();
  await model.close();
  const ratio = (k) => Math.round((median(stream[k]) / median(stream.direct)) * 100) / 100;
  results.relay = {
    runs,
    requestsPerTurn,
    turn: Object.fromEntries(names.map((k) => [k, summary(turn[k])])),
    addedMsP50: { netns: round(median(turn.netns) - median(turn.direct)), socket: round(median(turn.socket) - median(turn.direct)), stdio: round(median(turn.stdio) - median(turn.direct)) },
    request: Object.fromEntries(names.map((k) => [k, { n: request[k].length, median: round2(median(request[k])), p10: round2(quantile(request[k], 0.1)), p90: round2(quantile(request[k], 0.9)), min: round2(Math.min(...request[k])), max: round2(Math.max(...request[k])), samples: request[k].map(round2) }])),
    requestAddedMsP50: { netns: round2(median(request.netns) - median(request.direct)), socket: round2(median(request.socket) - median(request.direct)), stdio: round2(median(request.stdio) - median(request.direct)) },
    deltasPerSecond: Object.fromEntries(names.map((k) => [k, round(median(stream[k]))])),
    streamRatio: { netns: ratio("netns"), socket: ratio("socket"), stdio: ratio("stdio") },
  };
  say(`relay: turn p50 ${names.map((k) => `${k} ${results.relay.turn[k].median} ms`).join(", ")}`);
}

/** utime and stime in ms (100 ticks a second) from a /proc/…/stat file: a process's or a thread's. */
function ticks(file) {
  const f = readFileSync(file, "utf8").split(") ")[1].split(" ");
  return { user: Number(f[11]) * 10, sys: Number(f[12]) * 10 };
}

/** `n` direct app-servers of the rehearsal image, initialized (`opts`: DirectAppServer's). */
function startDirect(n, opts = {}) {
  return Promise.all(Array.from({ length: n }, async () => {
    const d = new DirectAppServer(IMAGE, opts);
    await d.init();
    return d;
  }));
}

/** `tasks` one-line turns on direct app-servers, `capacity` at a time on each; resolves once all completed. */
async function driveDirect(servers, capacity, tasks) {
  let next = 0;
  await Promise.all(servers.flatMap((d) => Array.from({ length: capacity }, async () => {
    while (next < tasks) {
      next++;
      await (await d.turn("hello")).completed;
    }
  })));
}

async function throughput() {
  const tasks = QUICK ? 48 : 200;
  const rounds = QUICK ? 1 : 3;
  const containers = 4;
  const capacity = 4;
  const broker = [];
  const direct = [];
  let failed = 0;
  // Interleaved rounds: this measure swings most with the machine's other load.
  for (let k = 0; k < rounds; k++) {
    const ws = ownedDir("ws");
    const b = await startBroker([{ capacity, max_containers: containers, warm: containers, warm_workspaces: [ws] }]);
    await b.waitReady(containers);
    let t0 = performance.now();
    const r = await b.batch(ws, Array.from({ length: tasks }, (_, i) => ({ id: `t${i}`, prompt: "hello" })));
    broker.push(performance.now() - t0);
    failed += r.tasks.filter((t) => t.status !== "succeeded").length;
    await b.stop();

    const servers = await startDirect(containers);
    t0 = performance.now();
    await driveDirect(servers, capacity, tasks);
    direct.push(performance.now() - t0);
    servers.forEach((d) => d.close());
    say(`throughput ${k + 1}/${rounds}: broker ${round(broker.at(-1))} ms, direct ${round(direct.at(-1))} ms for ${tasks} tasks`);
  }
  const ratios = broker.map((b, i) => Math.round((direct[i] / b) * 100) / 100);
  results.throughput = { tasks, containers, capacity, rounds, brokerMs: summary(broker), directMs: summary(direct), brokerTasksPerSecond: round(tasks / (median(broker) / 1000)), directTasksPerSecond: round(tasks / (median(direct) / 1000)), ratios, ratio: median(ratios), brokerFailed: failed };
}

async function drivers() {
  const runs = QUICK ? 3 : 6;
  results.drivers = {};
  for (const [protocol, image] of [["app-server", IMAGE], ["exec", IMAGE], ["mcp-server", LEGACY_IMAGE]]) {
    const ws = ownedDir("ws");
    const b = await startBroker([{ protocol, image, capacity: 1, max_containers: 1, warm: 1, warm_workspaces: [ws] }]);
    await b.waitReady(1);
    await b.batch(ws, [{ id: "w", prompt: "hello" }]);
    const total = [];
    const first = [];
    for (let i = 0; i < runs; i++) {
      const t0 = performance.now();
      const r = await b.batch(ws, [{ id: "t", prompt: "#fake run echo hi" }]);
      total.push(performance.now() - t0);
      if (r.tasks[0].status !== "succeeded") throw new Error(`${protocol}: ${r.tasks[0].error}`);
      first.push(b.firstEvent.get(`${r.missionId}/t`) - t0);
    }
    await b.stop();
    results.drivers[protocol] = { task: summary(total), firstEvent: summary(first) };
    say(`driver ${protocol}: task p50 ${results.drivers[protocol].task.median} ms`);
  }
}

/**
 * A process in a cgroup of its own with cpu.shares from the environment variable `envName` (cgroup
 * v1, as root), as a host would run it with more CPU weight than its workers' engines (systemd's
 * CPUWeight=, compose's cpu_shares): BENCH_BROKER_CPU_SHARES=N for the broker,
 * BENCH_CLIENT_CPU_SHARES=N for scale3's status poller (a client on the same host given the
 * weight of a desktop session over a build's containers). Nothing when the variable is not set;
 * the process is killed if it cannot be placed, and its cgroup removed once it has ended.
 */
function cpuWeight(child, role, envName) {
  const shares = process.env[envName];
  if (!shares) return;
  const dir = `/sys/fs/cgroup/cpu/cmw-bench-${role}-${child.pid}`;
  try {
    mkdirSync(dir);
    writeFileSync(path.join(dir, "cpu.shares"), shares);
    writeFileSync(path.join(dir, "cgroup.procs"), String(child.pid));
  } catch (e) {
    child.kill("SIGKILL");
    throw e;
  }
  // Removed once the process has ended, however it ends.
  child.once("exit", () => rmdirSync(dir));
  say(`the ${role} (pid ${child.pid}) runs in ${dir} with cpu.shares ${shares}`);
}

/**
 * The broker as its own process (`serve`) on a config file, so its CPU time and peak RSS are its
 * own, with an MCP client connected. BENCH_NODE_ARGS="--cpu-prof --cpu-prof-dir=DIR" profiles it;
 * BENCH_BROKER_BIN runs another build of it (a before/after comparison).
 */
async function startBrokerProcess(cfg) {
  const nodeArgs = (process.env.BENCH_NODE_ARGS ?? "").split(" ").filter(Boolean);
  const proc = spawn("node", [...nodeArgs, process.env.BENCH_BROKER_BIN ?? "dist/cli/bin.js", "serve", "--config", cfg], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, CODEX_WRAPPER_LOG_LEVEL: "info" } });
  cpuWeight(proc, "broker", "BENCH_BROKER_CPU_SHARES");
  let log = "";
  const port = await new Promise((resolve, reject) => {
    const onData = (d) => {
      log += d.toString();
      if (log.length > 1e6) log = log.slice(-1e5);
      const m = /"port":(\d+)|127\.0\.0\.1:(\d+)/.exec(log);
      if (m) resolve(Number(m[1] ?? m[2]));
    };
    proc.stdout.on("data", onData);
    proc.stderr.on("data", onData);
    proc.once("exit", (c) => reject(new Error(`broker exited ${c}: ${log}`)));
  });
  const base = `http://127.0.0.1:${port}`;
  const client = new Client({ name: "bench", version: "0" });
  await client.connect(new StreamableHTTPClientTransport(new URL(`${base}/mcp`)));
  // utime and stime of the whole process, and of its main thread (the event loop: JavaScript,
  // JSON, the synchronous fs calls); the rest is libuv's pool (async fs: the fsyncs) and V8's
  // helpers (GC).
  const readyContainers = async () => (await (await fetch(`${base}/status.json`)).json()).workers.containers.filter((c) => c.state === "ready");
  let ready = [];
  return {
    proc,
    base,
    client,
    async waitReady(n, ms = 180_000) {
      const end = Date.now() + ms;
      while ((ready = await readyContainers()).length < n) {
        if (Date.now() > end) throw new Error(`${n} warm containers not ready after ${ms / 1000} s`);
        await sleep(200);
      }
    },
    /** The engines of the warm containers, sorted. */
    readyEngines: () => ready.map((c) => c.engine ?? "local").sort(),
    /** The main thread's time on a CPU and waiting for one (ms), from /proc/PID/task/PID/schedstat. */
    sched() {
      const [run, wait] = readFileSync(`/proc/${proc.pid}/task/${proc.pid}/schedstat`, "utf8").split(" ").map(Number);
      return { runMs: run / 1e6, waitMs: wait / 1e6 };
    },
    cpuSplit: () => ({ all: ticks(`/proc/${proc.pid}/stat`), main: ticks(`/proc/${proc.pid}/task/${proc.pid}/stat`) }),
    cpu() {
      const { all, main } = this.cpuSplit();
      return { all: all.user + all.sys, main: main.user + main.sys };
    },
    /** Resets the process's peak RSS (VmHWM) where the kernel allows it (clear_refs 5). */
    resetPeak() {
      try {
        writeFileSync(`/proc/${proc.pid}/clear_refs`, "5");
      } catch {
        // not allowed here: the peak is then over the process's whole life
      }
    },
    /** Its /metrics (a scrape: it also starts a new window of the event loop's delay). */
    metrics: async () => (await fetch(`${base}/metrics`)).text(),
    peakRssMiB: () => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${proc.pid}/status`, "utf8"))[1]) / 1024,
    /** Closes the client and stops the broker: SIGTERM, then SIGKILL if it has not ended within 60 s. */
    async stop() {
      await within(client.close(), 10_000);
      if (proc.exitCode === null && proc.signalCode === null) {
        const exited = new Promise((r) => proc.once("exit", r));
        proc.kill("SIGTERM");
        if ((await within(exited, 60_000)) === TIMED_OUT) {
          say(`the broker (pid ${proc.pid}) did not end within 60 s of SIGTERM: killed`);
          proc.kill("SIGKILL");
          await exited;
        }
      }
    },
  };
}

/**
 * The rehearsal model in a process of its own on loopback, for the measures of the broker's own
 * CPU (scale, scale3): the broker's profile then runs the worker image with \`model_upstream\`
 * pointing here, so the relay forwards to it as to OpenAI and the model's CPU is not the broker's.
 * BENCH_MODEL_IN_BROKER=1 keeps the old setup (the rehearsal image, its model in the broker).
 */
let modelApart;
async function apartModel() {
  if (process.env.BENCH_MODEL_IN_BROKER === "1") return null;
  if (modelApart) return modelApart;
  const proc = spawn("node", ["dist/rehearsal/main.js", "--port", "0"], { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, REHEARSAL_LOG: "stderr" } });
  let log = "";
  const url = await new Promise((resolve, reject) => {
    proc.stderr.on("data", (d) => {
      log += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(log);
      if (m) resolve(m[1]);
      if (log.length > 1e5) log = log.slice(-1e4);
    });
    proc.once("exit", (c) => reject(new Error(`the rehearsal model exited ${c}: ${log}`)));
  });
  process.once("exit", () => proc.kill());
  modelApart = { url, image: `${PREFIX}/worker:dev`, proc };
  return modelApart;
}
/** The [broker] line and the profile's image for a broker whose model runs apart (or in it). */
async function modelSetup() {
  const m = await apartModel();
  return m ? { brokerLine: `model_upstream = "${m.url}"\n`, image: m.image, where: "apart" } : { brokerLine: "", image: IMAGE, where: "in the broker" };
}

async function scaleCell(tasks, containers) {
  const ws = ownedDir("ws");
  const label = `cmw-${RUN}-s${++seq}`;
  const cfg = path.join(tmp, `${label}.toml`);
  const model = await modelSetup();
  writeFileSync(cfg, `[broker]\nlabel = "${label}"\nport = 0\nstate_dir = "${path.join(tmp, `${label}-state`)}"\nauth_file = "${authFile()}"\nallowed_workspace_roots = ["${tmp}"]\n${model.brokerLine}\n[[workers]]\nname = "default"\nimage = "${model.image}"\nnetwork = "none"\nmemory = "1g"\nsandbox = "workspace-write"\ncapacity = 4\nmax_containers = ${containers}\nwarm = ${containers}\nwarm_workspaces = ["${ws}"]\n`);
  const b = await startBrokerProcess(cfg);
  await b.waitReady(containers);
  const split0 = b.cpuSplit();
  const t0 = performance.now();
  const r = await b.client.callTool({ name: "batch", arguments: { workspace: ws, mission: { name: "scale", tasks: Array.from({ length: tasks }, (_, i) => ({ id: `t${i}`, prompt: "hello" })) } } }, undefined, { timeout: 900_000 });
  const wallMs = performance.now() - t0;
  const split1 = b.cpuSplit();
  const cpuMs = split1.all.user + split1.all.sys - split0.all.user - split0.all.sys;
  const cpuDetail = { userMs: split1.all.user - split0.all.user, sysMs: split1.all.sys - split0.all.sys, mainThreadMs: split1.main.user + split1.main.sys - split0.main.user - split0.main.sys };
  const hwm = b.peakRssMiB();
  const failures = r.structuredContent.tasks.filter((t) => t.status !== "succeeded");
  await b.stop();
  return { tasks, containers, model: model.where, wallMs: round(wallMs), brokerCpuMs: round(cpuMs), brokerCpuMsPerTask: round(cpuMs / tasks), ...cpuDetail, peakRssMiB: round(hwm), failed: failures.length, ...(failures.length ? { firstError: failures[0].error } : {}) };
}

/**
 * The CPU floor of a scale cell: the same turns ("hello", capacity 4 on each container) driven by
 * the smallest direct client, the rehearsal image's Codex app-servers with no broker. `attach`:
 * this process attaches through the engine API (its CPU is this process's); otherwise `docker
 * run -i`, whose CLI processes relay the bytes (their CPU counted with this process's). Neither
 * side counts the engine's (dockerd's) CPU, nor the model's.
 */
async function floorCell(tasks, containers, attach) {
  const servers = await startDirect(containers, { attach });
  try {
    // The CLI processes' CPU from /proc, while they run.
    const cliMs = () => servers.reduce((sum, d) => {
      if (!d.proc) return sum;
      const t = ticks(`/proc/${d.proc.pid}/stat`);
      return sum + t.user + t.sys;
    }, 0);
    await Promise.all(servers.map(async (d) => (await d.turn("hello")).completed)); // one unmeasured turn each
    const own0 = process.cpuUsage();
    const cli0 = cliMs();
    const t0 = performance.now();
    await driveDirect(servers, 4, tasks);
    const wallMs = performance.now() - t0;
    const own = process.cpuUsage(own0);
    const ownMs = (own.user + own.system) / 1000;
    const cli = cliMs() - cli0;
    return { tasks, containers, client: attach ? "engine API attach, in this process" : "docker run -i", wallMs: round(wallMs), clientCpuMs: round(ownMs + cli), clientCpuMsPerTask: round((ownMs + cli) / tasks), processMs: round(ownMs), ...(attach ? {} : { cliMs: cli }) };
  } finally {
    servers.forEach((d) => d.close());
  }
}

async function scale() {
  const taskCounts = QUICK ? [1, 10, 50] : [1, 10, 50, 200];
  const containerCounts = QUICK ? [1, 4] : [1, 4, 8];
  results.scale = [];
  const cells = opts.cells ? opts.cells.split(",").map((c) => c.split("x").map(Number)) : containerCounts.flatMap((c) => taskCounts.map((t) => [t, c]));
  for (const [tasks, containers] of cells) {
    {
      const cell = await scaleCell(tasks, containers);
      results.scale.push(cell);
      say(`scale ${tasks} tasks / ${containers} containers: ${cell.wallMs} ms wall, ${cell.brokerCpuMs} ms CPU (${cell.brokerCpuMsPerTask} ms a task; user ${cell.userMs}, sys ${cell.sysMs}, main thread ${cell.mainThreadMs}), ${cell.peakRssMiB} MiB peak RSS${cell.failed ? `, ${cell.failed} failed (the first: ${cell.firstError})` : ""}`);
      // Item 3's cell (200 tasks and more): the CPU a direct client spends on the same turns, next to it.
      if (tasks >= 200 && process.env.BENCH_SCALE_FLOOR !== "0") {
        cell.floor = [];
        for (const attach of [true, false]) {
          const f = await floorCell(tasks, containers, attach);
          cell.floor.push(f);
          say(`  floor, ${f.client}: ${f.wallMs} ms wall, ${f.clientCpuMs} ms CPU (${f.clientCpuMsPerTask} ms a task${f.cliMs !== undefined ? `; the CLI processes ${f.cliMs}` : ""}); the broker ${round(cell.brokerCpuMsPerTask / f.clientCpuMsPerTask)}× that`);
        }
      }
    }
  }
}

/**
 * Scale over 3 engines (issue 22, item 5): the broker as its own process (`serve`) with the local
 * engine and the two test engines of scripts/test-engines.sh as [[engines]], its warm containers
 * on all three before the clock; then N one-line tasks at once in one `batch` (wait=false),
 * followed by `status` calls every ~100 ms from a second MCP client, in a process of its own
 * (bench/status-poller.mjs), until the mission ends. Per
 * N (250, 500, 1000 by default, one broker, one mission after another): wall time, the broker's
 * CPU time (all threads, and its main thread), how long its main thread waited for a CPU
 * (runnable but not running: /proc/PID/task/PID/schedstat), its peak RSS during that mission,
 * the `status` latencies while loaded, and the tasks each engine ran.
 */
async function scale3() {
  // A count ending in q (1000q) runs with no status calls: the batch waits (wall time without
  // the status load, beside the same count with it).
  const counts = opts.tasks ? opts.tasks.split(",") : QUICK ? ["100", "200"] : ["250", "500", "1000"];
  execFileSync("bash", ["scripts/test-engines.sh", "up"], { stdio: ["ignore", "ignore", "inherit"] });
  const list = JSON.parse(readFileSync("/var/lib/cmw-test-engines/engines.json", "utf8"));
  // An engine that already holds the image under another name (same image ID) gets this name as
  // a tag: the broker would otherwise stream the whole image to it at start.
  const model = await modelSetup();
  const id = execFileSync("docker", ["image", "inspect", "-f", "{{.Id}}", model.image], { encoding: "utf8" }).trim();
  for (const e of list) {
    const flags = ["--tlsverify", "--tlscacert", e.tls.ca, "--tlscert", e.tls.cert, "--tlskey", e.tls.key, "-H", e.host];
    try {
      execFileSync("docker", [...flags, "image", "inspect", model.image], { stdio: "ignore" });
    } catch {
      try {
        execFileSync("docker", [...flags, "tag", id, model.image], { stdio: "ignore" });
      } catch {
        // not there under any name: the broker copies it at start
      }
    }
  }
  const perEngine = Number(process.env.BENCH_SCALE3_CONTAINERS ?? 2);
  // BENCH_SCALE3_SLEEP_MS=N: each task runs a command of N ms (#fake sleep), as a task whose
  // model and tools take time: the same tasks at a rate the machine's CPU is not saturated by.
  const sleepMs = Number(process.env.BENCH_SCALE3_SLEEP_MS ?? 0);
  // BENCH_SCALE3_SLEEP_SPREAD=F (0 to 1): task i's command takes N × (1 − F + 2F·u), u spread
  // evenly over [0, 1) (the fractional part of i × the golden ratio), as real tasks differ in
  // length. With 0 (the default) every task takes N ms, so the tasks a round of containers ran end
  // together, in waves: each wave's ends and starts come at the broker at once.
  const sleepSpread = Math.min(1, Math.max(0, Number(process.env.BENCH_SCALE3_SLEEP_SPREAD ?? 0)));
  const sleepOf = (i) => Math.round(sleepMs * (1 - sleepSpread + 2 * sleepSpread * ((i * 0.6180339887498949) % 1)));
  const scale3Prompt = (i) => (sleepMs > 0 ? `#fake sleep ${sleepOf(i)}\nhello` : "hello");
  const containers = perEngine * (1 + list.length);
  const ws = ownedDir("ws");
  const label = `cmw-${RUN}-s${++seq}`;
  const stateDir = path.join(tmp, `${label}-state`);
  const cfg = path.join(tmp, `${label}.toml`);
  const q = JSON.stringify;
  writeFileSync(
    cfg,
    [
      `[broker]\nlabel = "${label}"\nport = 0\nstate_dir = ${q(stateDir)}\nauth_file = ${q(authFile())}\nallowed_workspace_roots = [${q(tmp)}]\n${model.brokerLine}`,
      `[[workers]]\nname = "default"\nimage = "${model.image}"\nnetwork = "none"\nmemory = "1g"\nsandbox = "workspace-write"\ncapacity = 4\nmax_containers = ${containers}\nwarm = ${containers}\nwarm_workspaces = [${q(ws)}]\n`,
      `[[engines]]\nname = "local"\nmax_containers = ${perEngine}\n`,
      ...list.map((e) => `[[engines]]\nname = "${e.name}"\nhost = "${e.host}"\nmax_containers = ${perEngine}\nshared_paths = [${q(tmp)}]\ntls = { ca = ${q(e.tls.ca)}, cert = ${q(e.tls.cert)}, key = ${q(e.tls.key)} }\n`),
    ].join("\n"),
  );
  const b = await startBrokerProcess(cfg);
  try {
    await b.waitReady(containers, 300_000);
    const spread = b.readyEngines();
    say(`scale3: ${containers} warm containers (${spread.join(", ")})`);
    results.scale3 = { containers, capacity: 4, spread, model: model.where, prompt: sleepMs > 0 ? "#fake sleep N\nhello" : "hello", ...(sleepMs > 0 ? { sleepMs: sleepSpread ? `${Math.round(sleepMs * (1 - sleepSpread))}–${Math.round(sleepMs * (1 + sleepSpread))}, spread evenly over the tasks` : `${sleepMs} for every task` } : {}), cells: [] };
    for (const spec of counts) {
      const tasks = parseInt(spec, 10);
      const polled = !String(spec).endsWith("q");
      b.resetPeak();
      const cpu0 = b.cpu();
      const sched0 = b.sched();
      const metrics0 = await b.metrics();
      const t0 = performance.timeOrigin + performance.now();
      // A model name Codex has no metadata for gives it the plain shell tool the rehearsal model drives.
      const mission = { name: "scale3", ...(sleepMs > 0 ? { defaults: { model: "rehearsal" } } : {}), tasks: Array.from({ length: tasks }, (_, i) => ({ id: `t${i}`, prompt: scale3Prompt(i) })) };
      let polls, missionId, wallMs;
      if (polled) {
        const r = await b.client.callTool({ name: "batch", arguments: { workspace: ws, wait: false, mission } }, undefined, { timeout: 900_000 });
        if (r.isError) throw new Error(JSON.stringify(r.content));
        missionId = r.structuredContent.missionId;
        polls = await statusPoller(b.base, missionId);
        wallMs = polls.endedAt - t0;
      } else {
        // No status calls at all: the batch waits, and its answer is the mission's end.
        const r = await b.client.callTool({ name: "batch", arguments: { workspace: ws, mission } }, undefined, { timeout: 900_000 });
        wallMs = performance.timeOrigin + performance.now() - t0;
        missionId = r.structuredContent.missionId;
        const failures = r.structuredContent.tasks.filter((t) => t.status !== "succeeded");
        polls = { mission: [], recent: [], failed: failures.length, firstError: failures[0]?.error ?? null };
      }
      const cpu = b.cpu();
      const sched = b.sched();
      const metrics1 = await b.metrics();
      const record = JSON.parse(readFileSync(path.join(stateDir, "missions", missionId, "record.json"), "utf8"));
      const byEngine = {};
      for (const t of record.tasks) byEngine[t.engine ?? "?"] = (byEngine[t.engine ?? "?"] ?? 0) + 1;
      const failed = polls.failed;
      const cpuMs = cpu.all - cpu0.all;
      const one = polls.mission;
      const recent = polls.recent;
      const cell = {
        tasks,
        statusCalls: polled ? `every ~100 ms, alternately the mission's (${polls.mode === "since" ? "with since: the tasks changed after the last result's cursor" : "every task each time"}) and the recent list, from a process of its own` : "none (the batch waited)",
        wallMs: round(wallMs),
        brokerCpuMs: round(cpuMs),
        brokerCpuMsPerTask: round2(cpuMs / tasks),
        mainThreadMs: round(cpu.main - cpu0.main),
        mainThreadWaitMs: round(sched.waitMs - sched0.waitMs),
        peakRssMiB: round(b.peakRssMiB()),
        statusMs: polled ? { mission: summary(one), recent: summary(recent), missionP99: round2(quantile(one, 0.99)), recentP99: round2(quantile(recent, 0.99)) } : null,
        // The same calls as the broker timed them (its codex_wrapper_mcp_tool_call_seconds: from
        // reading the call to its result), the mission's and the list's together; and how late its
        // event loop ran over the cell: what a call waited before the broker read it.
        statusServer: polled ? serverCalls(metrics0, metrics1, "status", 50) : null,
        eventLoopLagMs: { p50: round2(promGauge(metrics1, "nodejs_eventloop_lag_p50_seconds") * 1000), p99: round2(promGauge(metrics1, "nodejs_eventloop_lag_p99_seconds") * 1000), max: round2(promGauge(metrics1, "nodejs_eventloop_lag_max_seconds") * 1000) },
        byEngine,
        failed,
        ...(failed ? { firstError: polls.firstError } : {}),
      };
      if (cell.statusMs) {
        delete cell.statusMs.mission.samples;
        delete cell.statusMs.recent.samples;
      }
      results.scale3.cells.push(cell);
      say(`scale3 ${tasks} tasks${polled ? "" : " (no status calls)"}: ${cell.wallMs} ms wall, broker CPU ${cell.brokerCpuMs} ms (${cell.brokerCpuMsPerTask} a task, main thread ${cell.mainThreadMs}, waiting for a CPU ${cell.mainThreadWaitMs}), peak RSS ${cell.peakRssMiB} MiB, ${cell.statusMs ? `status p50/p99 ${cell.statusMs.mission.median}/${cell.statusMs.missionP99} ms (${polls.mode === "since" ? "with since" : "whole"}; list ${cell.statusMs.recent.median}/${cell.statusMs.recentP99}; in the broker: ${cell.statusServer.calls} calls, ${round2(cell.statusServer.withinShare * 100)}% within ${cell.statusServer.withinMs} ms, p99 ≤ ${cell.statusServer.p99AtMostMs} ms), ` : ""}event loop lag p50/p99/max ${cell.eventLoopLagMs.p50}/${cell.eventLoopLagMs.p99}/${cell.eventLoopLagMs.max} ms, ${JSON.stringify(byEngine)}${failed ? `, ${failed} failed (the first: ${cell.firstError})` : ""}`);
    }
  } finally {
    await b.stop();
    // A broker that had to be killed left its containers on the other engines (the bench's own
    // cleanup sees this machine's engine only).
    for (const e of list) {
      const flags = ["--tlsverify", "--tlscacert", e.tls.ca, "--tlscert", e.tls.cert, "--tlskey", e.tls.key, "-H", e.host];
      try {
        const ids = execFileSync("docker", [...flags, "ps", "-aq", "--filter", `name=${label}-`], { encoding: "utf8" }).split("\n").filter(Boolean);
        if (ids.length) execFileSync("docker", [...flags, "rm", "-f", ...ids], { stdio: "ignore" });
      } catch {
        // the engine does not answer: its containers stay for its own sweep
      }
    }
  }
}

/** A histogram's cumulative buckets in a Prometheus exposition, [le, count] (le in seconds), of the series with these labels. */
function promBuckets(text, name, labels) {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  const out = [];
  for (const line of text.split("\n")) {
    const m = /^(\S+?)\{(.*)\} (\S+)$/.exec(line);
    if (!m || m[1] !== `${name}_bucket`) continue;
    const have = m[2].split(",");
    if (!want.every((w) => have.includes(w))) continue;
    const le = /le="([^"]+)"/.exec(m[2])[1];
    out.push([le === "+Inf" ? Infinity : Number(le), Number(m[3])]);
  }
  return out;
}

/** A gauge's value in a Prometheus exposition (a series without labels), or null. */
function promGauge(text, name) {
  const m = new RegExp(`^${name} (\\S+)$`, "m").exec(text);
  return m ? Number(m[1]) : null;
}

/**
 * A tool's successful calls between two scrapes of the broker's /metrics, as the broker timed
 * them: how many, the share within `withinMs`, and the smallest bucket bound (ms) that holds 99% of
 * them (the histogram's buckets: 1, 2.5, 5, 10, 25, 50, 100, 250 ms …).
 */
function serverCalls(before, after, tool, withinMs) {
  const b0 = new Map(promBuckets(before, "codex_wrapper_mcp_tool_call_seconds", { tool, outcome: "ok" }));
  const buckets = promBuckets(after, "codex_wrapper_mcp_tool_call_seconds", { tool, outcome: "ok" }).map(([le, n]) => [le, n - (b0.get(le) ?? 0)]);
  const calls = buckets.find(([le]) => le === Infinity)?.[1] ?? 0;
  const within = buckets.find(([le]) => le === withinMs / 1000)?.[1] ?? 0;
  const p99 = buckets.find(([, n]) => n >= 0.99 * calls)?.[0] ?? Infinity;
  return { calls, withinMs, withinShare: calls ? round2(within / calls) : null, p99AtMostMs: p99 === Infinity ? "+Inf" : round2(p99 * 1000) };
}

/** bench/status-poller.mjs on a mission, in a process of its own; its report. */
function statusPoller(base, missionId) {
  return new Promise((resolve, reject) => {
    const child = spawn("node", [path.join(import.meta.dirname, "status-poller.mjs"), base, missionId], { stdio: ["ignore", "pipe", "pipe"] });
    try {
      cpuWeight(child, "client", "BENCH_CLIENT_CPU_SHARES");
    } catch (e) {
      reject(e);
      return;
    }
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err = (err + d).slice(-4000)));
    child.once("error", reject);
    child.once("exit", (code) => {
      try {
        if (code !== 0) throw new Error(`exit ${code}`);
        resolve(JSON.parse(out));
      } catch (e) {
        reject(new Error(`the status poller failed (${e.message}): ${err}`));
      }
    });
  });
}

/**
 * A mission's record writes alone, without Docker or Codex (issue 22, item 3): N tasks each
 * started (written within 100 ms, together, as the runner does) and ended (written before it is
 * reported), with the record as the runner keeps it, 8 tasks ending at a time. Two ways, in one
 * process, interleaved: the whole record.json rewritten at each write (saveMissionAsync, as
 * before), and the changed tasks appended to the mission's task log (appendTasks) with the whole
 * record at the end. The process CPU time (user + system, every thread: the fsyncs run in
 * libuv's pool) per task.
 */
async function records() {
  const { StateStore } = await import("../dist/state/store.js");
  const counts = opts.tasks ? opts.tasks.split(",").map(Number) : QUICK ? [200] : [200, 1000];
  const rounds = QUICK ? 1 : 2;
  results.records = [];
  const one = async (n, mode) => {
    const store = new StateStore(path.join(tmp, `records-${++seq}`));
    const now = () => new Date().toISOString();
    const rec = { missionId: store.newMissionId(), name: "records", status: "running", workspace: tmp, createdAt: now(), updatedAt: now(), finishedAt: null, bundle: null, tasks: Array.from({ length: n }, (_, i) => ({ id: `t${i}`, status: "queued", conversationId: null, finalMessage: null, error: null, container: null, startedAt: null, finishedAt: null, artifacts: [] })) };
    store.createMission(rec, { name: "records" });
    const write = (tasks) => (mode === "whole" ? store.saveMissionAsync(rec) : store.appendTasks(rec.missionId, rec.updatedAt, tasks));
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    for (let i = 0; i < n; i += 8) {
      const batch = rec.tasks.slice(i, i + 8);
      for (const t of batch) Object.assign(t, { status: "running", container: "cmw-records-default-0", engine: "local", startedAt: now() });
      rec.updatedAt = now();
      await write(batch);
      await Promise.all(batch.map(async (t, k) => {
        Object.assign(t, { status: "succeeded", conversationId: `conv_${i + k}`, finalMessage: "hello: the rehearsal model answers this way", finishedAt: now(), usage: { requests: 1, inputTokens: 1200, cachedInputTokens: 0, outputTokens: 12, reasoningOutputTokens: 0, totalTokens: 1212, model: "gpt-5", profile: "default" } });
        rec.updatedAt = now();
        await write([t]);
      }));
    }
    rec.status = "succeeded";
    rec.finishedAt = now();
    await store.saveMissionAsync(rec);
    const c = process.cpuUsage(c0);
    const cpuMs = (c.user + c.system) / 1000;
    if (store.readMission(rec.missionId).tasks.some((t) => t.status !== "succeeded")) throw new Error("records: a task's end was not read back");
    return { cpuMs: round(cpuMs), cpuMsPerTask: round2(cpuMs / n), wallMs: round(performance.now() - t0) };
  };
  for (const n of counts) {
    const cell = { tasks: n, whole: [], log: [] };
    for (let k = 0; k < rounds; k++) for (const mode of k % 2 ? ["log", "whole"] : ["whole", "log"]) cell[mode].push(await one(n, mode));
    results.records.push(cell);
    say(`records ${n} tasks: CPU ms per task, whole record.json each write ${cell.whole.map((r) => r.cpuMsPerTask).join(" / ")}, task log ${cell.log.map((r) => r.cpuMsPerTask).join(" / ")}`);
  }
}

/**
 * The `status` tool alone, without Docker or Codex (issue 22, item 5): the broker's MCP server
 * over the SDK's in-memory transport, read by the SDK's client (which checks each result against
 * the output schema, as real clients do), on a store holding five missions of N tasks (the
 * newest running, with a third of its tasks running), once with one-line final messages and once
 * with 2,000-character ones. Per call, p50 and p99 and the CPU time of this process (server and
 * client both): `status` of one finished mission; of the running one with 5 of its tasks changed
 * in place before each call (as a loaded broker's are), whole and with `since` (each result's
 * cursor passed back, as a poller does); and of the recent list. Then over HTTP the same.
 */
async function statusCost() {
  const { InMemoryTransport } = await import("@modelcontextprotocol/sdk/inMemory.js");
  const { createBrokerServer } = await import("../dist/mcp/server.js");
  const { MissionRunner } = await import("../dist/mission/runner.js");
  const { StateStore } = await import("../dist/state/store.js");
  const counts = opts.tasks ? opts.tasks.split(",").map(Number) : [200, 1000];
  results.status = [];
  // Final messages of the rehearsal's one line, and of 2,000 characters (a real answer's size).
  for (const [n, messageChars] of counts.flatMap((n) => [[n, 0], [n, 2000]])) {
    const message = messageChars ? "an answer of some length. ".repeat(messageChars / 25).slice(0, messageChars) : "hello: the rehearsal model answers this way";
    const root = ownedDir("status");
    const config = resolveConfig({ broker: { allowed_workspace_roots: [root], state_dir: path.join(root, "state") } }, "test", {});
    const store = new StateStore(path.join(root, "state"));
    const now = () => new Date().toISOString();
    const ids = [];
    for (let m = 0; m < 5; m++) {
      const rec = { missionId: store.newMissionId(), name: "status", status: m === 4 ? "running" : "succeeded", workspace: root, createdAt: now(), updatedAt: now(), finishedAt: null, bundle: null, tasks: Array.from({ length: n }, (_, i) => ({ id: `t${i}`, status: m === 4 && i % 3 === 0 ? "running" : "succeeded", conversationId: `conv_${i}`, finalMessage: message, error: null, container: "cmw-x-default-0", engine: "local", startedAt: now(), finishedAt: now(), artifacts: [], usage: { requests: 1, inputTokens: 1200, cachedInputTokens: 0, outputTokens: 12, reasoningOutputTokens: 0, totalTokens: 1212, model: "gpt-5", profile: "default" } })) };
      store.createMission(rec, {});
      ids.push(rec.missionId);
      while (store.newMissionId().slice(0, 16) === rec.missionId.slice(0, 16)) await sleep(50); // ids sort by second
    }
    const pool = { config };
    const runner = new MissionRunner(pool, store);
    const server = createBrokerServer({ pool, store, runner });
    const [a, b] = InMemoryTransport.createLinkedPair();
    await server.connect(a);
    const client = new Client({ name: "bench-status", version: "0" });
    await client.connect(b);
    await client.listTools();
    // k status calls of `via` (after one unmeasured): latency p50/p99 and this process's CPU a call.
    // `args` may be a function (called before each call); `after` sees each result.
    const timeWith = (via) => async (args, k = QUICK ? 20 : 100, before = () => {}, after = () => {}) => {
      const argsOf = typeof args === "function" ? args : () => args;
      after(await via.callTool({ name: "status", arguments: argsOf() }));
      const xs = [];
      const c0 = process.cpuUsage();
      for (let i = 0; i < k; i++) {
        before(i);
        const t0 = performance.now();
        const r = await via.callTool({ name: "status", arguments: argsOf() });
        if (r.isError) throw new Error(JSON.stringify(r.content));
        xs.push(performance.now() - t0);
        after(r);
      }
      const c = process.cpuUsage(c0);
      return { p50: round(median(xs)), p99: round(quantile(xs, 0.99)), cpuMsPerCall: round2((c.user + c.system) / 1000 / k) };
    };
    const time = timeWith(client);
    // The running mission as a loaded broker has it: a few tasks changed in place between calls,
    // as the runner changes its live records (here the record the store keeps, which status reads).
    const running = store.readMission(ids[4]);
    const change = (i) => {
      for (let k = 0; k < 5; k++) {
        const t = running.tasks[(i * 5 + k) % n];
        Object.assign(t, t.status === "running" ? { status: "succeeded", finishedAt: now() } : { status: "running", finishedAt: null });
      }
    };
    // A poller that passes each result's cursor back as `since`: only the changed tasks come back.
    let cursor;
    const since = () => ({ missionId: ids[4], ...(cursor ? { since: cursor } : {}) });
    const keep = (r) => void (cursor = r.structuredContent.cursor);
    const cell = { tasks: n, messageChars: message.length, mission: await time({ missionId: ids[0] }), changing: await time({ missionId: ids[4] }, undefined, change), changingSince: await time(since, undefined, change, keep), recent: await time({}) };
    await client.close();
    // The same broker's server over HTTP (Streamable HTTP, as clients reach it; the SDK's client in
    // this process): what the transport adds, the result written and read as a server-sent event.
    const http = serve({ fetch: createApp({ broker: { config, pool, store, runner } }).fetch, hostname: "127.0.0.1", port: 0 });
    await new Promise((r) => http.once("listening", r));
    const overHttp = new Client({ name: "bench-status-http", version: "0" });
    await overHttp.connect(new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${http.address().port}/mcp`)));
    const viaHttp = timeWith(overHttp);
    cursor = undefined;
    cell.http = { mission: await viaHttp({ missionId: ids[0] }), changing: await viaHttp({ missionId: ids[4] }, undefined, change), changingSince: await viaHttp(since, undefined, change, keep), recent: await viaHttp({}) };
    await overHttp.close();
    await new Promise((r) => http.close(r));
    results.status.push(cell);
    say(`status, ${n}-task missions (final messages of ${cell.messageChars} characters), in process: one mission p50 ${cell.mission.p50} ms, p99 ${cell.mission.p99} ms, CPU ${cell.mission.cpuMsPerCall} ms a call; with 5 tasks changed before each call p50 ${cell.changing.p50} ms, CPU ${cell.changing.cpuMsPerCall} ms a call; the recent list p50 ${cell.recent.p50} ms, p99 ${cell.recent.p99} ms, CPU ${cell.recent.cpuMsPerCall} ms a call; over HTTP one mission p50 ${cell.http.mission.p50} ms, p99 ${cell.http.mission.p99} ms, the running one with 5 changed p50/p99 ${cell.http.changing.p50}/${cell.http.changing.p99} ms whole and ${cell.http.changingSince.p50}/${cell.http.changingSince.p99} ms with since (CPU ${cell.http.changing.cpuMsPerCall} / ${cell.http.changingSince.cpuMsPerCall} ms a call), the list p50 ${cell.http.recent.p50} ms (client and server CPU ${cell.http.mission.cpuMsPerCall} / ${cell.http.recent.cpuMsPerCall} ms a call)`);
  }
}

function table() {
  const lines = [];
  const m = results.machine;
  lines.push(`machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB; Docker ${m.docker}; Node ${m.node}; Codex ${m.codex}${QUICK ? " (quick run)" : ""}`);
  const row = (name, s) => `${name.padEnd(34)} ${String(s.median).padStart(9)} ${String(s.p10).padStart(9)} ${String(s.p90).padStart(9)} ${String(s.n).padStart(4)}`;
  lines.push(`${"measure (ms)".padEnd(34)} ${"median".padStart(9)} ${"p10".padStart(9)} ${"p90".padStart(9)} ${"n".padStart(4)}`);
  if (results.cold) lines.push(row("cold start, broker", results.cold.broker), row("cold start, floor (docker run -i)", results.cold.floor), `  cold ratio broker/floor: ${results.cold.ratio} (target ≤ 1.10)`);
  if (results.coldSpare) {
    const r = results.coldSpare;
    lines.push(row("cold start with a spare, broker", r.broker), row("cold start, floor (docker run -i)", r.floor), `  cold with a spare (isolated task, new workspace): broker/floor ${r.ratio} (target ≤ 0.85); a spare's memory ${r.spareMemoryMiB.median} MiB (median)`);
  }
  if (results.warm) lines.push(row("warm start, broker", results.warm.broker), row("warm start, floor (direct pipe)", results.warm.floor), `  warm: broker/floor ${results.warm.ratio}× at p50 (target ≤ 0.6×: threads started ahead), ${results.warm.addedMsP50} ms; threads taken ahead ${results.warm.threads.takenAhead}, started on the task's path ${results.warm.threads.startedFresh}; warm container memory ${results.warm.containerMemory}`);
  if (results.drivers) for (const [p, d] of Object.entries(results.drivers)) lines.push(row(`task end to end, ${p}`, d.task));
  if (results.throughput) {
    const t = results.throughput;
    lines.push(`throughput, ${t.tasks} tasks on ${t.containers}×${t.capacity}, ${t.rounds} round(s): broker ${t.brokerTasksPerSecond}/s, direct ${t.directTasksPerSecond}/s (medians), ratio ${t.ratio} (rounds: ${t.ratios.join(", ")}; target ≥ 0.8)${t.brokerFailed ? `, ${t.brokerFailed} failed` : ""}`);
  }
  if (results.deltas) {
    const r = results.deltas;
    lines.push(row(`deltas/s, ${r.n} a turn, to the record`, r.broker), row(`deltas/s, ${r.n} a turn, direct client`, r.direct));
    lines.push(`  deltas: broker/direct ${r.ratio}× at p50 (target ≥ 0.9); bench process RSS ${r.rssBeforeMiB} MiB before, ${r.peakRssMiB} MiB at its peak`);
  }
  if (results.relay) {
    const r = results.relay;
    lines.push(row("warm turn, direct model", r.turn.direct), row("warm turn, relay in the container's netns", r.turn.netns), row("warm turn, relay over a unix socket", r.turn.socket), row("warm turn, relay over the engine", r.turn.stdio));
    lines.push(`  relay adds ${r.addedMsP50.netns} ms at p50 in the container's netns (local engine, the default), ${r.addedMsP50.socket} ms over a unix socket (local fallback), ${r.addedMsP50.stdio} ms through the engine (target ≤ 2); ${r.requestsPerTurn} model request(s) per turn`);
    lines.push(row("model request, direct", r.request.direct), row("model request, relay in the netns", r.request.netns), row("model request, relay over the socket", r.request.socket), row("model request, relay over the engine", r.request.stdio));
    lines.push(`  per model request (new connection, 38 KB body) the relay adds ${r.requestAddedMsP50.netns} ms at p50 in the netns, ${r.requestAddedMsP50.socket} ms over the socket, ${r.requestAddedMsP50.stdio} ms through the engine`);
    lines.push(`long answer (200 deltas), deltas/s: direct ${r.deltasPerSecond.direct}, netns ${r.deltasPerSecond.netns} (ratio ${r.streamRatio.netns}), socket ${r.deltasPerSecond.socket} (ratio ${r.streamRatio.socket}), engine ${r.deltasPerSecond.stdio} (ratio ${r.streamRatio.stdio}) (target ≥ 0.9)`);
  }
  if (results.engines) {
    const r = results.engines;
    lines.push(row("warm task, 1 engine", r.placement.oneEngine), row("warm task, 3 engines", r.placement.threeEngines));
    lines.push(`  placement over 3 engines (${r.placement.spread.join(", ")}) adds ${r.placement.addedMsP50} ms at p50 per task over 1 engine (target ≤ 2)`);
    if (r.placement.byEngine) lines.push(`  3-engine tasks by engine: ${Object.entries(r.placement.byEngine).map(([e, x]) => `${e} ${x.n} at p50 ${x.median} ms`).join(", ")}`);
    lines.push(row(`cold start on ${r.coldRemote.engine}, broker`, r.coldRemote.broker), row(`cold start on ${r.coldRemote.engine}, docker -H run -i`, r.coldRemote.floor));
    lines.push(`  cold start on a remote engine: ${r.coldRemote.ratio}× the docker -H … run -i floor there (target ≤ 1.10)`);
  }
  if (results.sshEngine) {
    const r = results.sshEngine;
    lines.push(row("warm task, eng-1 over TLS", r.tls), row("warm task, eng-1 over SSH", r.ssh));
    lines.push(`  over SSH a warm task's batch → turn/started takes ${r.addedMsP50} ms more at p50 (its container is up and attached already)`);
    lines.push(row("engine call (version), TLS", r.call.tls), row("engine call (version), SSH", r.call.ssh));
    lines.push(row("cold task, eng-1 over TLS", r.cold.tls), row("cold task, eng-1 over SSH", r.cold.ssh));
    lines.push(`  a cold task (new container) takes ${r.cold.addedMsP50} ms more at p50 over SSH: each engine call is a session and a docker system dial-stdio on the remote machine`);
  }
  if (results.scale) {
    lines.push(`${"scale: tasks × containers".padEnd(28)} ${"wall ms".padStart(9)} ${"CPU ms".padStart(9)} ${"ms/task".padStart(8)} ${"RSS MiB".padStart(8)}`);
    for (const c of results.scale) lines.push(`${`${c.tasks} × ${c.containers}`.padEnd(28)} ${String(c.wallMs).padStart(9)} ${String(c.brokerCpuMs).padStart(9)} ${String(round(c.wallMs / c.tasks)).padStart(8)} ${String(c.peakRssMiB).padStart(8)}${c.failed ? `  (${c.failed} failed)` : ""}`);
    for (const c of results.scale) for (const f of c.floor ?? []) lines.push(`  CPU a task at ${c.tasks} × ${c.containers}: broker ${c.brokerCpuMsPerTask} ms, a direct client (${f.client}) ${f.clientCpuMsPerTask} ms: ${round(c.brokerCpuMsPerTask / f.clientCpuMsPerTask)}×`);
  }
  if (results.status) for (const c of results.status) lines.push(`status alone (in process, ${c.tasks}-task missions, ${c.messageChars}-character final messages): one mission p50/p99 ${c.mission.p50}/${c.mission.p99} ms, ${c.mission.cpuMsPerCall} ms CPU a call; 5 tasks changed before each call ${c.changing.p50}/${c.changing.p99} ms, ${c.changing.cpuMsPerCall} ms CPU${c.changingSince ? `, with since ${c.changingSince.p50}/${c.changingSince.p99} ms, ${c.changingSince.cpuMsPerCall} ms CPU` : ""}; recent list ${c.recent.p50}/${c.recent.p99} ms, ${c.recent.cpuMsPerCall} ms CPU${c.http ? `; over HTTP one mission ${c.http.mission.p50}/${c.http.mission.p99} ms${c.http.changingSince ? `, the running one with 5 changed ${c.http.changing.p50}/${c.http.changing.p99} ms whole, ${c.http.changingSince.p50}/${c.http.changingSince.p99} ms with since` : ""}, recent list ${c.http.recent.p50}/${c.http.recent.p99} ms` : ""}`);
  if (results.records) {
    for (const c of results.records) lines.push(`record writes alone, ${c.tasks} tasks: broker CPU per task, whole record.json at each write ${c.whole.map((r) => r.cpuMsPerTask).join(" / ")} ms, task log ${c.log.map((r) => r.cpuMsPerTask).join(" / ")} ms`);
  }
  if (results.scale3) {
    const r = results.scale3;
    lines.push(`scale over 3 engines, ${r.containers} warm containers × ${r.capacity} (${r.spread.join(", ")}):`);
    lines.push(`${"  tasks".padEnd(10)} ${"wall ms".padStart(9)} ${"CPU ms".padStart(8)} ${"CPU/task".padStart(8)} ${"RSS MiB".padStart(8)} ${"status p50/p99 ms".padStart(18)}  per engine`);
    for (const c of r.cells) lines.push(`${`  ${c.tasks}`.padEnd(10)} ${String(c.wallMs).padStart(9)} ${String(c.brokerCpuMs).padStart(8)} ${String(c.brokerCpuMsPerTask).padStart(8)} ${String(c.peakRssMiB).padStart(8)} ${(c.statusMs ? `${c.statusMs.mission.median}/${c.statusMs.missionP99}` : "no calls").padStart(18)}  ${Object.entries(c.byEngine).map(([k, v]) => `${k} ${v}`).join(", ")}${c.failed ? `  (${c.failed} failed)` : ""}`);
    lines.push(`  the broker's main thread waited for a CPU (runnable, not running): ${r.cells.map((c) => `${c.tasks} tasks ${round(c.mainThreadWaitMs / 1000)} s of ${round(c.wallMs / 1000)} s`).join(", ")}`);
    const polledCells = r.cells.filter((c) => c.statusMs);
    // The targets are read at the largest count (with status calls, where there are some).
    const largest = (cs) => cs.reduce((a, c) => (!a || c.tasks > a.tasks ? c : a), undefined);
    const last = largest(polledCells) ?? largest(r.cells);
    lines.push(`  targets at ${last.tasks} tasks: peak RSS ${last.peakRssMiB} MiB (< 200 MB: ${last.peakRssMiB * 1.048576 < 200 ? "met" : "not met"})${last.statusMs ? `, status p99 ${last.statusMs.missionP99} ms (< 50: ${last.statusMs.missionP99 < 50 ? "met" : "not met"})` : ""}`);
    for (const [kind, cs] of [["with status calls", polledCells], ["without status calls", r.cells.filter((c) => !c.statusMs)]]) if (cs.length) lines.push(`  wall ms per task ${kind}: ${cs.map((c) => `${c.tasks} tasks ${round2(c.wallMs / c.tasks)}`).join(", ")}`);
  }
  return lines.join("\n");
}

try {
  for (const [name, fn] of Object.entries({ cold, "cold-spare": coldSpare, warm, relay, deltas, throughput, drivers, engines, ssh: sshEngine, scale, scale3, records, status: statusCost })) {
    if (ONLY && !ONLY.has(name)) continue;
    say(`${name}…`);
    await fn();
  }
} finally {
  cleanup();
}
results.finishedAt = new Date().toISOString();
const out = opts.out ?? path.join("bench", "results", `${results.startedAt.replace(/[:.]/g, "-")}.json`);
mkdirSync(path.dirname(out), { recursive: true });
writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`);
// The figures drawn: an SVG and an HTML page beside the JSON (bench/report.mjs).
const drawn = out.replace(/\.json$/, "");
writeFileSync(`${drawn}.svg`, renderSvg(results));
writeFileSync(`${drawn}.html`, renderHtml(results));
console.log(table());
console.log(`\nJSON: ${out}\nSVG: ${drawn}.svg\nHTML: ${drawn}.html`);
process.exit(0);
