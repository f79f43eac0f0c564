// The warm pool: `warm = N` containers started ahead of demand for known workspaces, so a task
// there starts on a running Codex with no container start; the floor survives idle_timeout and
// is replenished when a warm container dies.
import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import type { WorkerPool } from "../../../src/pool/pool.js";
import { LABELS } from "../../../src/worker/container.js";
import { makeWorkspace } from "../support/env.js";
import { docker, poolFixture } from "../support/pool.js";
import { until } from "../support/wait.js";

const RUN = `warm-${process.pid}`;
const pools = poolFixture(RUN);


const ready = (pool: WorkerPool): string[] => pool.stats().containers.filter((c) => c.state === "ready").map((c) => c.name).sort();
const running = async (pool: WorkerPool): Promise<string[]> => (await docker.listByLabels({ [LABELS.instance]: pool.config.label })).map((c) => c.name).sort();

describe("warm workers", () => {
  it("starts `warm` containers per listed workspace before any task, serves a task on one of them, and keeps the floor", async () => {
    const ws = makeWorkspace();
    const pool = await pools.start({ workers: [{ name: "w", warm: 2, warm_workspaces: [ws], capacity: 1, max_containers: 3, idle_timeout: "1s" }], pool: { healthIntervalMs: 300 } });
    await until(() => ready(pool).length === 2, 60_000, "two warm containers are ready");
    const warm = ready(pool);
    expect(await running(pool)).toEqual(warm);
    expect(pool.stats().starts).toEqual({ ahead: 2, onDemand: 0 });
    expect(pool.stats().containers.every((c) => c.warm && c.turns === 0)).toBe(true);

    const r = await pool.runTurn({ workspace: ws, prompt: "#fake write out/warm.txt hello" });
    expect(r.outcome.status).toBe("succeeded");
    expect(warm).toContain(r.container);
    // No container was started for the task: the same two, and no on-demand start.
    expect(pool.stats().starts).toEqual({ ahead: 2, onDemand: 0 });
    expect(await running(pool)).toEqual(warm);

    // idle_timeout (1 s) passes several health rounds (0.3 s): the floor is not stopped.
    await new Promise((r) => setTimeout(r, 3000));
    expect(await running(pool)).toEqual(warm);

    // A warm container that dies is replaced ahead of demand.
    execFileSync("docker", ["kill", warm[0]!], { stdio: "ignore" });
    await until(() => ready(pool).length === 2 && !ready(pool).includes(warm[0]!), 60_000, "the floor is back to two");
    expect(pool.stats().starts).toEqual({ ahead: 3, onDemand: 0 });
  });

  it("without warm_workspaces, a workspace keeps its floor once a task has used it", async () => {
    const ws = makeWorkspace();
    const pool = await pools.start({ workers: [{ name: "w", warm: 1, capacity: 2, max_containers: 2, idle_timeout: "1s" }], pool: { healthIntervalMs: 300 } });
    expect(pool.stats().containers).toEqual([]);
    const r = await pool.runTurn({ workspace: ws, prompt: "first" });
    expect(r.outcome.status).toBe("succeeded");
    expect(pool.stats().starts).toEqual({ ahead: 0, onDemand: 1 });
    await new Promise((r) => setTimeout(r, 3000));
    expect(await running(pool)).toEqual([r.container]);
    const again = await pool.runTurn({ workspace: ws, prompt: "second" });
    expect(again.container).toBe(r.container);
  });

  it("refuses a warm workspace outside the allowed roots, naming the key", async () => {
    await expect(pools.start({ workers: [{ name: "w", warm: 1, warm_workspaces: ["/etc"] }] })).rejects.toThrow(/^workers\[0\]\.warm_workspaces\[0\]: .*\/etc/);
  });
});
