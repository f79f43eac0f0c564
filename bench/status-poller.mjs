#!/usr/bin/env node
// The scale3 measure's `status` client, in a process of its own as a real MCP client is: its
// latencies are then not the bench process's own event-loop delays (that process also serves the
// rehearsal model to every worker and holds the batch call).
//   node bench/status-poller.mjs BASE_URL MISSION_ID [EVERY_MS]
// Calls `status` every EVERY_MS (100 by default), alternately for the mission and for the recent
// list, until the mission is no longer running; then prints one line of JSON: when it saw the end, the latencies
// (ms) of each kind, the mission's final status, and its failed tasks' count and first error.
// The mission's calls pass the last result's cursor as `since` and keep the tasks it lists, as a
// poller of a large mission should; BENCH_STATUS_WHOLE=1 asks for every task each time instead.
// BENCH_STATUS_TRACE=FILE: also each call, a JSON line: when it started (ms since the first),
// its kind, its latency and, for the mission's, how many of its tasks had ended.
import { appendFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [base, missionId, every = "100"] = process.argv.slice(2);
if (!base || !missionId) {
  process.stderr.write("usage: node bench/status-poller.mjs BASE_URL MISSION_ID [EVERY_MS]\n");
  process.exit(2);
}
const client = new Client({ name: "bench-status", version: "0" });
await client.connect(new StreamableHTTPClientTransport(new URL(`${base}/mcp`)));
const mission = [];
const recent = [];
const whole = process.env.BENCH_STATUS_WHOLE === "1";
/** The mission's tasks by id, as the calls have shown them. */
const tasks = new Map();
let cursor;
let final;
/** When the mission was seen ended (ms since the epoch, to the bench's clock on this machine). */
let endedAt;
const trace = process.env.BENCH_STATUS_TRACE;
const first = performance.now();
for (let i = 0; ; i++) {
  const t0 = performance.now();
  const s = await client.callTool({ name: "status", arguments: i % 2 ? {} : { missionId, ...(cursor && !whole ? { since: cursor } : {}) } }, undefined, { timeout: 120_000 });
  const ms = performance.now() - t0;
  if (s.isError) throw new Error(`status: ${JSON.stringify(s.content)}`);
  if (i % 2 === 0) {
    if (!s.structuredContent.changedAfter) tasks.clear(); // every task is listed
    for (const t of s.structuredContent.tasks) tasks.set(t.id, t);
    cursor = s.structuredContent.cursor;
  }
  if (trace) appendFileSync(trace, `${JSON.stringify({ at: Math.round(t0 - first), kind: i % 2 ? "list" : "mission", ms: Math.round(ms * 10) / 10, ...(i % 2 ? {} : { listed: s.structuredContent.tasks.length, ended: [...tasks.values()].filter((t) => t.finishedAt).length }) })}\n`);
  if (i % 2) recent.push(ms);
  else {
    mission.push(ms);
    if (s.structuredContent.status !== "running") {
      endedAt = performance.timeOrigin + performance.now();
      final = { ...s.structuredContent, tasks: [...tasks.values()] };
      break;
    }
  }
  await new Promise((r) => setTimeout(r, Math.max(0, Number(every) - ms)));
}
const failures = final.tasks.filter((t) => t.status !== "succeeded");
// The tasks as the calls listed them (with since: only changes) agree with the mission's counts.
for (const [status, n] of Object.entries(final.counts)) {
  const seen = final.tasks.filter((t) => t.status === status).length;
  if (seen !== n) throw new Error(`status: the calls listed ${seen} ${status} tasks, the mission counts ${n}`);
}
process.stdout.write(`${JSON.stringify({ endedAt, mode: whole ? "whole" : "since", mission, recent, status: final.status, tasks: final.tasks.length, failed: failures.length, firstError: failures[0]?.error ?? null })}\n`);
await client.close();
