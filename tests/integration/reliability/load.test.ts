// Load on a broker running as its own process (`serve`), with the real Codex in the rehearsal
// image: 200 tasks submitted at once over 4 containers of capacity 4, while `status` is called
// in a loop; then 50 concurrent MCP sessions over Streamable HTTP, each running small batches.
// Reports the broker's peak RSS and the p99 of `status`; asserts every task finishes, capacity
// is never exceeded and no container is leaked.
import { readFileSync } from "node:fs";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LABELS } from "../../../src/worker/container.js";
import { startChildBroker, type ChildBroker } from "../support/child-broker.js";
import { makeWorkspace, TEST_API_KEY } from "../support/env.js";
import { docker } from "../support/pool.js";

let broker: ChildBroker;
let label: string;
let base: string;

interface Status { workers: { containers: { name: string; inFlight: number; capacity: number }[] } }

beforeAll(async () => {
  broker = await startChildBroker({ name: "load", auth: { OPENAI_API_KEY: TEST_API_KEY }, capacity: 4, maxContainers: 4, maxTasksPerMission: 200, logLevel: "info" });
  ({ label, base } = broker);
});

afterAll(async () => {
  await broker?.stop();
});

async function client(name: string): Promise<Client> {
  const c = new Client({ name, version: "0" });
  await c.connect(new StreamableHTTPClientTransport(new URL(`${base}/mcp`)));
  return c;
}
const peakRssMiB = (): number => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${broker.child.pid}/status`, "utf8"))![1]) / 1024;

describe("load", () => {
  it("200 tasks at once over 4 containers of capacity 4: all finish, capacity holds, status stays quick", async () => {
    const c = await client("load");
    const ws = makeWorkspace();
    const submitted = await c.callTool({ name: "batch", arguments: { workspace: ws, wait: false, mission: { name: "load", tasks: Array.from({ length: 200 }, (_, i) => ({ id: `t${i}`, prompt: `load ${i}` })) } } });
    const { missionId } = submitted.structuredContent as { missionId: string };
    const latencies: number[] = [];
    let maxInFlight = 0;
    let maxContainers = 0;
    const probe = await client("probe");
    const deadline = Date.now() + 170_000;
    for (;;) {
      if (Date.now() > deadline) throw new Error(`the 200-task mission ${missionId} did not finish within 170 s`);
      const t0 = performance.now();
      const s = (await probe.callTool({ name: "status", arguments: { missionId } })).structuredContent as { status: string; tasks: { status: string }[] };
      latencies.push(performance.now() - t0);
      const page = (await (await fetch(`${base}/status.json`)).json()) as Status;
      for (const w of page.workers.containers) maxInFlight = Math.max(maxInFlight, w.inFlight);
      maxContainers = Math.max(maxContainers, page.workers.containers.length, (await docker.listByLabels({ [LABELS.instance]: label })).length);
      if (s.status !== "running") {
        expect(s.tasks.filter((t) => t.status !== "succeeded")).toEqual([]);
        expect(s.status).toBe("succeeded");
        break;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    latencies.sort((a, b) => a - b);
    const p99 = latencies[Math.floor(latencies.length * 0.99)]!;
    console.log(`load: 200 tasks; status p50 ${latencies[Math.floor(latencies.length / 2)]!.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms over ${latencies.length} calls; broker peak RSS ${peakRssMiB().toFixed(1)} MiB; max in flight per container ${maxInFlight}; max containers ${maxContainers}`);
    expect(maxInFlight).toBeLessThanOrEqual(4);
    expect(maxInFlight).toBeGreaterThan(1);
    expect(maxContainers).toBeLessThanOrEqual(4);
    expect(p99).toBeLessThan(5000); // a generous bound: status must never wait behind the load
    await c.close();
    await probe.close();
  });

  it("50 concurrent MCP sessions, each running small batches, all answered", async () => {
    const ws = makeWorkspace();
    const sessions = await Promise.all(Array.from({ length: 50 }, (_, i) => client(`s${i}`)));
    const results = await Promise.all(
      sessions.map(async (s, i) => {
        const out: string[] = [];
        for (let round = 0; round < 2; round++) {
          const r = await s.callTool({ name: "batch", arguments: { workspace: ws, mission: { name: `s${i}-${round}`, tasks: [{ id: "a", prompt: `session ${i} round ${round}` }] } } }, undefined, { timeout: 170_000 });
          out.push((r.structuredContent as { status: string }).status);
        }
        return out;
      }),
    );
    expect(results.flat().filter((s) => s !== "succeeded")).toEqual([]);
    expect(results.flat()).toHaveLength(100);
    await Promise.all(sessions.map((s) => s.close()));
    expect((await docker.listByLabels({ [LABELS.instance]: label })).length).toBeLessThanOrEqual(4);
    console.log(`load: 50 sessions × 2 batches all succeeded; broker peak RSS ${peakRssMiB().toFixed(1)} MiB`);
  });
});
