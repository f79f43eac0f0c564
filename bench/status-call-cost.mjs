#!/usr/bin/env node
// What one MCP tool call over HTTP costs the broker itself: a broker as its own process (`serve`,
// no warm containers, an empty state directory), an MCP client in this process, and N `status`
// calls of the recent list (the cheapest tool call: what is left is the transport: HTTP, the
// Streamable HTTP transport, JSON-RPC) one every GAP ms. Prints, a call, its main thread's CPU
// and how often it was scheduled (/proc/PID/task/PID/schedstat and status), less what the same
// broker does idle over as long (a couple of timers a second: its work check and its auth file's
// watch).
// Needs `npm run build`.
//   node bench/status-call-cost.mjs [--calls 300] [--gap 20]
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const { values } = parseArgs({ options: { calls: { type: "string", default: "300" }, gap: { type: "string", default: "20" } } });
const N = Number(values.calls);
const GAP = Number(values.gap);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const dir = mkdtempSync(path.join(os.tmpdir(), "cmw-callcost-"));
writeFileSync(path.join(dir, "auth.json"), JSON.stringify({ OPENAI_API_KEY: "sk-callcost-0123456789abcdef" }), { mode: 0o600 });
writeFileSync(path.join(dir, "wrapper.toml"), `[broker]\nlabel = "cmw-callcost-${process.pid}"\nport = 0\nstate_dir = "${dir}/state"\nauth_file = "${dir}/auth.json"\nallowed_workspace_roots = ["${dir}"]\n\n[[workers]]\nname = "default"\nwarm = 0\n`);
const proc = spawn("node", [...(process.env.BENCH_NODE_ARGS ?? "").split(" ").filter(Boolean), "dist/cli/bin.js", "serve", "--config", path.join(dir, "wrapper.toml")], { stdio: ["ignore", "pipe", "pipe"] });
try {
  let log = "";
  const port = await new Promise((resolve, reject) => {
    const onData = (d) => {
      log += d;
      const m = /127\.0\.0\.1:(\d+)/.exec(log);
      if (m) resolve(Number(m[1]));
    };
    proc.stdout.on("data", onData);
    proc.stderr.on("data", onData);
    proc.once("exit", (c) => reject(new Error(`the broker exited ${c}: ${log}`)));
    setTimeout(() => reject(new Error(`the broker did not say its port within 30 s: ${log}`)), 30_000).unref();
  });
  const client = new Client({ name: "bench-call-cost", version: "0" });
  await client.connect(new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${port}/mcp`)));
  const main = () => {
    const status = readFileSync(`/proc/${proc.pid}/task/${proc.pid}/status`, "utf8");
    const [runNs, , slices] = readFileSync(`/proc/${proc.pid}/task/${proc.pid}/schedstat`, "utf8").split(" ").map(Number);
    return { cpuMs: runNs / 1e6, slices, voluntary: Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(status)[1]) };
  };
  const diff = (a, b) => ({ cpuMs: b.cpuMs - a.cpuMs, slices: b.slices - a.slices, voluntary: b.voluntary - a.voluntary });
  for (let i = 0; i < 50; i++) await client.callTool({ name: "status", arguments: {} }); // warm-up, unmeasured
  await sleep(300);
  const t0 = performance.now();
  const a = main();
  for (let i = 0; i < N; i++) {
    const r = await client.callTool({ name: "status", arguments: {} });
    if (r.isError) throw new Error(JSON.stringify(r.content));
    await sleep(GAP);
  }
  const busy = diff(a, main());
  const span = performance.now() - t0;
  const i0 = main();
  await sleep(span);
  const idle = diff(i0, main());
  const per = (k, digits) => ((busy[k] - idle[k]) / N).toFixed(digits);
  console.log(`status (the recent list) over HTTP, ${N} calls ${GAP} ms apart: the broker's main thread ${per("cpuMs", 3)} ms of CPU a call, scheduled ${per("slices", 2)} times a call (${per("voluntary", 2)} of them after waiting for the socket); idle over the same ${Math.round(span)} ms: ${idle.cpuMs.toFixed(1)} ms of CPU, ${idle.slices} times scheduled`);
  await client.close();
} finally {
  proc.kill("SIGTERM");
  await new Promise((r) => (proc.exitCode === null && proc.signalCode === null ? proc.once("exit", r) : r()));
  rmSync(dir, { recursive: true, force: true });
}
