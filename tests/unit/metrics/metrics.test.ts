// The broker's own metrics without a broker: the MCP tool-call histogram and the event loop's
// delay, read through the Prometheus exposition as a scraper reads them.
import { readFileSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { BrokerMetrics } from "../../../src/metrics/metrics.js";
import type { PoolStats } from "../../../src/pool/pool.js";

const idlePool = {
  containers: [],
  engines: [],
  queued: 0,
  inFlight: 0,
  starts: { ahead: 0, onDemand: 0, sparesTaken: 0 },
  relay: { requests: 0, budgetRefused: 0 },
  threads: { takenAhead: 0, startedFresh: 0, unloaded: 0 },
} as unknown as PoolStats;

let metrics: BrokerMetrics | undefined;
afterEach(() => metrics?.close());

/** A pool with a turn running: the broker has work, so its event loop is sampled. */
const busyPool = { ...idlePool, inFlight: 1 };

function make(sources: { pool?: () => PoolStats; activeTasks?: () => Record<string, number>; repliesWaiting?: () => number } = {}, opts: { loopCheckMs?: number } = {}): BrokerMetrics {
  metrics = new BrokerMetrics({ label: "unit", channel: "dev", version: "0", pool: () => idlePool, activeTasks: () => ({}), repliesWaiting: () => 0, ...sources }, opts);
  return metrics;
}

/** Holds the main thread for `ms`, as a long synchronous piece of work holds it. */
function block(ms: number): void {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    // held
  }
}

async function until(what: string, ok: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !ok(); i++) await sleep(10);
  expect(ok(), what).toBe(true);
}

function sample(text: string, line: RegExp): number {
  const m = line.exec(text);
  expect(m, `${line} in the exposition`).not.toBeNull();
  return Number(m![1]);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("broker metrics", () => {
  it("every metric the broker exposes is in docs/status-page.md's table", async () => {
    const { body } = await make().render();
    const names = [...body.matchAll(/^# HELP (\S+) /gm)].map((m) => m[1]!);
    expect(names.length).toBeGreaterThan(20);
    const doc = readFileSync("docs/status-page.md", "utf8");
    expect(names.filter((n) => !doc.includes(`\`${n}\``))).toEqual([]);
  });

  it("counts tool calls by tool and outcome in a histogram of seconds", async () => {
    const m = make();
    m.toolCall("status", "ok", 0.003);
    m.toolCall("status", "ok", 0.2);
    m.toolCall("batch", "error", 0.01);
    const { body } = await m.render();
    expect(sample(body, /^codex_wrapper_mcp_tool_call_seconds_count\{tool="status",outcome="ok"\} (\S+)$/m)).toBe(2);
    expect(sample(body, /^codex_wrapper_mcp_tool_call_seconds_bucket\{le="0.005",tool="status",outcome="ok"\} (\S+)$/m)).toBe(1);
    expect(sample(body, /^codex_wrapper_mcp_tool_call_seconds_bucket\{le="0.25",tool="status",outcome="ok"\} (\S+)$/m)).toBe(2);
    expect(sample(body, /^codex_wrapper_mcp_tool_call_seconds_count\{tool="batch",outcome="error"\} (\S+)$/m)).toBe(1);
  });

  it("the event loop's delay: a 400 ms block shows in the window it fell in, and a scrape starts a new window", async () => {
    const m = make({ pool: () => busyPool }, { loopCheckMs: 10 });
    await until("sampling while a turn runs", () => m.sampling);
    await sleep(60); // a few samples before the block
    block(400);
    await sleep(60);
    const first = (await m.render()).body;
    expect(sample(first, /^nodejs_eventloop_lag_max_seconds (\S+)$/m)).toBeGreaterThanOrEqual(0.35);
    // The sampling timer's own 20 ms are not counted as delay (counted, every sample would be ≥ 20 ms).
    const p50 = sample(first, /^nodejs_eventloop_lag_p50_seconds (\S+)$/m);
    expect(p50).toBeGreaterThanOrEqual(0);
    expect(p50).toBeLessThan(0.02);
    expect(p50).toBeLessThanOrEqual(sample(first, /^nodejs_eventloop_lag_p99_seconds (\S+)$/m));
    await sleep(100);
    const second = (await m.render()).body;
    expect(sample(second, /^nodejs_eventloop_lag_max_seconds (\S+)$/m)).toBeLessThan(0.35);
  });

  it("samples the event loop only while the broker has work: an idle broker is not woken 50 times a second", async () => {
    let pool = idlePool;
    const m = make({ pool: () => pool }, { loopCheckMs: 20 });
    await sleep(60);
    expect(m.sampling).toBe(false);
    block(400);
    await sleep(60);
    // Not sampled, so not seen: the gauges read 0 for a window with no sample.
    expect(sample((await m.render()).body, /^nodejs_eventloop_lag_max_seconds (\S+)$/m)).toBe(0);
    pool = busyPool;
    await until("sampling once a turn runs", () => m.sampling);
    await sleep(60);
    block(400);
    await sleep(60);
    expect(sample((await m.render()).body, /^nodejs_eventloop_lag_max_seconds (\S+)$/m)).toBeGreaterThanOrEqual(0.35);
    pool = idlePool;
    await until("not sampling once the work is done", () => !m.sampling);
  });

  it("counts as work a turn queued or running, a running mission's tasks, a reply waiting and a container starting", async () => {
    const starting = { ...idlePool, containers: [{ state: "starting" }] } as unknown as PoolStats;
    const ready = { ...idlePool, containers: [{ state: "ready" }] } as unknown as PoolStats;
    const cases: [string, Parameters<typeof make>[0], boolean][] = [
      ["idle", {}, false],
      ["a ready container with nothing to do", { pool: () => ready }, false],
      ["a turn running", { pool: () => busyPool }, true],
      ["a turn queued", { pool: () => ({ ...idlePool, queued: 2 }) }, true],
      ["a running mission's tasks", { activeTasks: () => ({ queued: 0, running: 1 }) }, true],
      ["a reply waiting", { repliesWaiting: () => 1 }, true],
      ["a container starting", { pool: () => starting }, true],
    ];
    const made = cases.map(([, sources]) => make(sources, { loopCheckMs: 10 }));
    await sleep(50); // a few looks at the sources
    cases.forEach(([what, , busy], i) => expect(made[i]!.sampling, what).toBe(busy));
    for (const m of made) m.close();
  });
});
