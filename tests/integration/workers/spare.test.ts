// Spare containers (real Docker, the real Codex against the rehearsal model): a profile with
// `spare = N` keeps N containers started ahead with an empty workspace volume; an isolated task
// for a workspace nobody knew ahead takes one (its container existed before the batch), its copy
// fills the volume, its patch is as without spares, and a new spare replaces it. Two tasks at once
// take one each; none serves two tasks; the pool's shutdown and a SIGKILLed broker's successor
// leave no spare (container or volume) behind.
import { execFileSync, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { MissionInput } from "../../../src/mission/schema.js";
import type { WorkerPool } from "../../../src/pool/pool.js";
import type { TaskRecord } from "../../../src/state/store.js";
import { LABELS } from "../../../src/worker/container.js";
import { removeTestContainers, TEST_LABEL } from "../support/env.js";
import { gitWorkspace, runMission, stored } from "../support/isolated.js";
import { docker, poolFixture, testConfig } from "../support/pool.js";
import { until } from "../support/wait.js";

const RUN = `spare-${process.pid}`;
const pools = poolFixture(RUN);

const run = (pool: WorkerPool, ws: string, mission: Omit<MissionInput, "name">): ReturnType<typeof runMission> => runMission(pool, ws, "spare", mission);
/** The spares up now, by container name. */
const readySpares = (pool: WorkerPool): string[] => pool.stats().containers.filter((c) => c.spare && c.state === "ready").map((c) => c.name);
const ofLabel = (kind: "container" | "volume", label: string): string[] =>
  execFileSync("docker", [kind, "ls", ...(kind === "container" ? ["-a"] : []), "-q", "--filter", `label=${LABELS.instance}=${label}`], { encoding: "utf8" }).split("\n").filter(Boolean);
afterAll(() => {
  // The containers first (a volume in use cannot go), even when a test failed with spares up.
  removeTestContainers(RUN);
  for (const v of execFileSync("docker", ["volume", "ls", "-q", "--filter", `label=${TEST_LABEL}=${RUN}`], { encoding: "utf8" }).split("\n").filter(Boolean)) execFileSync("docker", ["volume", "rm", "-f", v], { stdio: "ignore" });
});

describe("spare containers", () => {
  it("an isolated task for a new workspace takes a spare made before the batch; its patch is right, and a new spare replaces it", async () => {
    const pool = await pools.start({ workers: [{ name: "default", workspace_mode: "isolated", spare: 1, max_containers: 3 }] });
    await until(() => readySpares(pool).length === 1, 120_000, "the spare");
    const [spare] = readySpares(pool) as [string];
    const created = (await docker.listByLabels({ [LABELS.instance]: pool.config.label })).map((c) => c.name);
    expect(created).toEqual([spare]); // the only container, there before any task

    const ws = gitWorkspace();
    const { record, store } = await run(pool, ws, { tasks: [{ id: "edit", prompt: "#fake run cat f.txt\n#fake write f.txt edited\n#fake write new/b.txt fresh" }] });
    const [t] = record.tasks as [TaskRecord];
    expect(t.status, t.error ?? "").toBe("succeeded");
    expect(t.container).toBe(spare);
    expect(t.finalMessage).toContain("base"); // it read the task's copy, filled after it was taken
    const patch = stored(store, record, t, "changes.patch");
    expect(patch).toMatch(/diff --git a\/f.txt b\/f.txt[\s\S]*-base\n\+edited/);
    expect(patch).toMatch(/diff --git a\/new\/b.txt b\/new\/b.txt\nnew file mode 100644[\s\S]*\+fresh/);
    expect(readFileSync(path.join(ws, "f.txt"), "utf8")).toBe("base\n");
    expect(pool.stats().starts).toMatchObject({ onDemand: 0, sparesTaken: 1 });
    // The taken spare is the task's now; a new one is made in the background.
    expect(pool.stats().containers.find((c) => c.name === spare)).toMatchObject({ spare: false, workspace: ws });
    await until(() => readySpares(pool).some((n) => n !== spare), 120_000, "a new spare");
    // A reply goes on with the task's copy, in the container that was the spare.
    const reply = await pool.runTurn({ conversationId: t.conversationId!, prompt: "#fake run cat f.txt" });
    expect(reply.container).toBe(spare);
    expect(reply.outcome.finalMessage).toContain("edited");
  });

  it("two isolated tasks at once take a spare each, and a spare never serves two tasks", async () => {
    const pool = await pools.start({ workers: [{ name: "default", workspace_mode: "isolated", spare: 2, max_containers: 4 }] });
    await until(() => readySpares(pool).length === 2, 120_000, "two spares");
    const before = readySpares(pool);
    const ws = gitWorkspace();
    const { record, store } = await run(pool, ws, {
      tasks: [
        { id: "a", prompt: "#fake write a.txt from-a\n#fake run ls" },
        { id: "b", prompt: "#fake write b.txt from-b\n#fake run ls" },
      ],
    });
    const [a, b] = record.tasks as [TaskRecord, TaskRecord];
    for (const t of [a, b]) expect(t.status, t.error ?? "").toBe("succeeded");
    expect([a.container, b.container].sort()).toEqual([...before].sort());
    // Each copy holds its own task's file only.
    expect(stored(store, record, a, "changes.patch")).toContain("a.txt");
    expect(stored(store, record, a, "changes.patch")).not.toContain("b.txt");
    expect(stored(store, record, b, "changes.patch")).toContain("b.txt");
    expect(stored(store, record, b, "changes.patch")).not.toContain("a.txt");
    // A third task gets neither of them (each holds its task's copy), but a spare made since.
    await until(() => readySpares(pool).length === 2, 120_000, "the spares replaced");
    const { record: third } = await run(pool, ws, { tasks: [{ id: "c", prompt: "#fake run ls" }] });
    const [c] = third.tasks as [TaskRecord];
    expect(c.status, c.error ?? "").toBe("succeeded");
    expect(before).not.toContain(c.container);
    expect(c.finalMessage).not.toMatch(/a\.txt|b\.txt/);
    expect(pool.stats().starts).toMatchObject({ onDemand: 0, sparesTaken: 3 });
  });

  it("a read-only task's spare is filled through a helper (its mount is read-only) and sees its copy", async () => {
    const pool = await pools.start({ workers: [{ name: "default", workspace_mode: "isolated", sandbox: "read-only", spare: 1, max_containers: 2 }] });
    await until(() => readySpares(pool).length === 1, 120_000, "the spare");
    const [spare] = readySpares(pool) as [string];
    const ws = gitWorkspace();
    const { record } = await run(pool, ws, { tasks: [{ id: "read", prompt: "#fake run cat f.txt; touch g.txt 2>&1 || true" }] });
    const [t] = record.tasks as [TaskRecord];
    expect(t.status, t.error ?? "").toBe("succeeded");
    expect(t.container).toBe(spare);
    expect(t.finalMessage).toContain("base");
    expect(t.finalMessage).toMatch(/Read-only file system/);
  });

  it("the pool's shutdown leaves no spare, and a SIGKILLed broker's successor removes its spares and their volumes", async () => {
    const pool = await pools.start({ workers: [{ name: "default", workspace_mode: "isolated", spare: 2, max_containers: 2 }] });
    await until(() => readySpares(pool).length === 2, 120_000, "two spares");
    expect(ofLabel("volume", pool.config.label)).toHaveLength(2);
    await pool.shutdown();
    expect(ofLabel("container", pool.config.label)).toEqual([]);
    expect(ofLabel("volume", pool.config.label)).toEqual([]);

    const config = testConfig({ run: RUN, workers: [{ name: "default", workspace_mode: "isolated", spare: 2, max_containers: 2 }] });
    const child = spawn(process.execPath, [path.resolve(import.meta.dirname, "../support/spare-child.mjs"), JSON.stringify({ config, labels: { [TEST_LABEL]: RUN }, spares: 2 })], { stdio: ["ignore", "pipe", "inherit"] });
    const exited = new Promise((r) => child.once("exit", r));
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    try {
      await until(() => out.includes("ready "), 180_000, "the child broker's spares");
    } finally {
      child.kill("SIGKILL");
      await exited;
    }
    expect(ofLabel("container", config.label)).toHaveLength(2);
    expect(ofLabel("volume", config.label)).toHaveLength(2);
    const next = await pools.start({ label: config.label, workers: [{ name: "default" }] });
    expect(ofLabel("container", config.label)).toEqual([]);
    expect(ofLabel("volume", config.label)).toEqual([]);
    expect(next.stats().containers).toEqual([]);
  });
});
