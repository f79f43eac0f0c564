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

function make(): BrokerMetrics {
  metrics = new BrokerMetrics({ label: "unit", channel: "dev", version: "0", pool: () => idlePool, activeTasks: () => ({}), repliesWaiting: () => 0 });
  return metrics;
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
    const m = make();
    await sleep(60); // a few samples before the block
    const until = Date.now() + 400;
    while (Date.now() < until) {
      // the main thread held, as a long synchronous piece of work holds it
    }
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
});
