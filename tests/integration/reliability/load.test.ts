// Load on a broker running as its own process (`serve`), with the real Codex in the rehearsal
// image: 200 tasks submitted at once over 4 containers of capacity 4, while `status` is called
// in a loop; then 50 concurrent MCP sessions over Streamable HTTP, each running small batches.
// Reports the broker's peak RSS and the p99 of `status`; asserts every task finishes, capacity
// is never exceeded and no container is leaked.
import { spawn, type ChildProcess } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LABELS } from "../../../src/worker/container.js";
import { makeWorkspace, REHEARSAL_IMAGE, TEST_API_KEY } from "../support/env.js";
import { docker } from "../support/pool.js";

const label = `cmw-load-${process.pid}`;
let child: ChildProcess;
let base: string;

interface Status { workers: { containers: { name: string; inFlight: number; capacity: number }[] } }

beforeAll(async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "cmw-load-"));
  const auth = path.join(dir, "auth.json");
  writeFileSync(auth, JSON.stringify({ OPENAI_API_KEY: TEST_API_KEY }));
  chmodSync(auth, 0o600);
  const cfg = path.join(dir, "wrapper.toml");
  writeFileSync(cfg, `[broker]\nlabel = "${label}"\nport = 0\nstate_dir = "${dir}/state"\nauth_file = "${auth}"\nallowed_workspace_roots = ["${os.tmpdir()}"]\n[[workers]]\nname = "default"\nimage = "${REHEARSAL_IMAGE}"\nnetwork = "none"\nmemory = "1g"\nsandbox = "workspace-write"\ncapacity = 4\nmax_containers = 4\n`);
  const bin = fileURLToPath(new URL("../../../dist/cli/bin.js", import.meta.url));
  child = spawn(process.execPath, [bin, "serve", "--config", cfg], { stdio: ["ignore", "ignore", "pipe"] });
  base = await new Promise<string>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error("the broker did not start")), 60_000);
    let err = "";
    child.stderr!.on("data", (d: Buffer) => {
      err = (err + d.toString()).slice(-20_000);
      const m = /"url":"(http:\/\/[^"]+)\/mcp"/.exec(err);
      if (m) {
        clearTimeout(t);
        resolve(m[1]!);
      }
    });
  });
});

afterAll(async () => {
  child?.kill("SIGTERM");
  await new Promise((r) => (child?.exitCode !== null ? r(null) : child.once("exit", r)));
  for (const c of await docker.listByLabels({ [LABELS.instance]: label })) await docker.remove(c.id);
});

async function client(name: string): Promise<Client> {
  const c = new Client({ name, version: "0" });
  await c.connect(new StreamableHTTPClientTransport(new URL(`${base}/mcp`)));
  return c;
}
const peakRssMiB = (): number => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, "utf8"))![1]) / 1024;

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
    for (;;) {
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
