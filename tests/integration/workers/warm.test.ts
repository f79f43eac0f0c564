// The warm pool: `warm = N` containers started ahead of demand for known workspaces, so a task
// there starts on a running Codex with no container start; the floor survives idle_timeout and
// is replenished when a warm container dies.
import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import type { WorkerPool } from "../../../src/pool/pool.js";
import { LABELS } from "../../../src/worker/container.js";
import { makeWorkspace } from "../support/env.js";
import { docker, poolFixture, recalled } from "../support/pool.js";
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
    expect(pool.stats().starts).toEqual({ ahead: 2, onDemand: 0, sparesTaken: 0 });
    expect(pool.stats().containers.every((c) => c.warm && c.turns === 0)).toBe(true);

    const r = await pool.runTurn({ workspace: ws, prompt: "#fake write out/warm.txt hello" });
    expect(r.outcome.status).toBe("succeeded");
    expect(warm).toContain(r.container);
    // No container was started for the task: the same two, and no on-demand start.
    expect(pool.stats().starts).toEqual({ ahead: 2, onDemand: 0, sparesTaken: 0 });
    expect(await running(pool)).toEqual(warm);

    // idle_timeout (1 s) passes several health rounds (0.3 s): the floor is not stopped.
    await new Promise((r) => setTimeout(r, 3000));
    expect(await running(pool)).toEqual(warm);

    // A warm container that dies is replaced ahead of demand.
    execFileSync("docker", ["kill", warm[0]!], { stdio: "ignore" });
    await until(() => ready(pool).length === 2 && !ready(pool).includes(warm[0]!), 60_000, "the floor is back to two");
    expect(pool.stats().starts).toEqual({ ahead: 3, onDemand: 0, sparesTaken: 0 });
  });

  it("without warm_workspaces, a workspace keeps its floor once a task has used it", async () => {
    const ws = makeWorkspace();
    const pool = await pools.start({ workers: [{ name: "w", warm: 1, capacity: 2, max_containers: 2, idle_timeout: "1s" }], pool: { healthIntervalMs: 300 } });
    expect(pool.stats().containers).toEqual([]);
    const r = await pool.runTurn({ workspace: ws, prompt: "first" });
    expect(r.outcome.status).toBe("succeeded");
    expect(pool.stats().starts).toEqual({ ahead: 0, onDemand: 1, sparesTaken: 0 });
    await new Promise((r) => setTimeout(r, 3000));
    expect(await running(pool)).toEqual([r.container]);
    const again = await pool.runTurn({ workspace: ws, prompt: "second" });
    expect(again.container).toBe(r.container);
  });

  it("keeps a thread started ahead for the settings last used: the next such task takes it, with no history of another's, and a reply continues it", async () => {
    const ws = makeWorkspace();
    const pool = await pools.start({ workers: [{ name: "w", warm: 1, warm_workspaces: [ws], capacity: 1, max_containers: 1 }] });
    await until(() => ready(pool).length === 1, 60_000, "the warm container is ready");
    const first = await pool.runTurn({ workspace: ws, prompt: "#fake recall" });
    expect(first.outcome.status).toBe("succeeded");
    expect(pool.stats().threads).toMatchObject({ takenAhead: 0, startedFresh: 1 });
    // Once the turn ends, one thread is started ahead with the same settings.
    await until(() => pool.stats().threads.startedAhead === 1, 30_000, "a thread is started ahead");

    const second = await pool.runTurn({ workspace: ws, prompt: "#fake recall" });
    expect(second.outcome.status).toBe("succeeded");
    expect(pool.stats().threads).toMatchObject({ takenAhead: 1, startedFresh: 1 });
    expect(second.container).toBe(first.container);
    expect(second.outcome.threadId).not.toBe(first.outcome.threadId);
    // A thread of its own: it remembers only its own prompt, not the first task's.
    expect(recalled(second.outcome.finalMessage)).toEqual(["#fake recall"]);
    const reply = await pool.runTurn({ conversationId: second.conversationId!, prompt: "#fake recall" });
    expect(reply.outcome.threadId).toBe(second.outcome.threadId);
    expect(recalled(reply.outcome.finalMessage)).toEqual(["#fake recall", "#fake recall"]);

    // Other settings (a model of their own) take no thread started for the first ones.
    const other = await pool.runTurn({ workspace: ws, prompt: "#fake recall", model: "rehearsal-other" });
    expect(other.outcome.status).toBe("succeeded");
    expect(pool.stats().threads).toMatchObject({ takenAhead: 1, startedFresh: 2 });
    // A third settings key: the first key's thread started ahead is no longer kept, and Codex
    // unloads it (no task thread is among them: 3 idle ones, under the 8 kept).
    await until(() => pool.stats().threads.startedAhead === 3, 30_000, "a thread is started ahead for the other settings");
    const third = await pool.runTurn({ workspace: ws, prompt: "#fake recall", model: "rehearsal-third" });
    expect(third.outcome.status).toBe("succeeded");
    await until(() => pool.stats().threads.unloaded === 1, 30_000, "the first settings' thread started ahead is unloaded");
  });

  it("keeps the threads_loaded most recently used idle threads loaded in Codex and has it unload older ones; a reply to an unloaded one resumes it with its history", async () => {
    const ws = makeWorkspace();
    const pool = await pools.start({ workers: [{ name: "w", capacity: 1, max_containers: 1, threads_ahead: 0, threads_loaded: 2 }] });
    const resumed = new Map<string, boolean>();
    const turn = (req: { workspace: string; prompt: string } | { conversationId: string; prompt: string }): ReturnType<WorkerPool["runTurn"]> =>
      pool.runTurn({ ...req, onEvent: (e) => void (e.kind === "thread" && resumed.set(e.threadId, e.resumed)) });
    const firsts = [];
    for (let i = 0; i < 5; i++) {
      const r = await turn({ workspace: ws, prompt: `#fake recall` });
      expect(r.outcome.status, r.outcome.error ?? "").toBe("succeeded");
      firsts.push(r);
    }
    expect(new Set(firsts.map((r) => r.container)).size).toBe(1);
    // Codex's own thread/closed for each of the 3 least recently used: nothing else unloads them.
    await until(() => pool.stats().threads.unloaded === 3, 30_000, "Codex unloads the 3 least recently used threads");
    await new Promise((r) => setTimeout(r, 500));
    expect(pool.stats().threads.unloaded).toBe(3);

    // The oldest: resumed from its rollout, with its history.
    const old = await turn({ conversationId: firsts[0]!.conversationId!, prompt: "#fake recall" });
    expect(old.outcome.threadId).toBe(firsts[0]!.outcome.threadId);
    expect(resumed.get(old.outcome.threadId!)).toBe(true);
    expect(recalled(old.outcome.finalMessage)).toEqual(["#fake recall", "#fake recall"]);
    // Loaded again, it pushes out the least recently used of the others.
    await until(() => pool.stats().threads.unloaded === 4, 30_000, "the next least recently used is unloaded");
    // The most recent: still loaded, its turn starts with no resume.
    const recent = await turn({ conversationId: firsts.at(-1)!.conversationId!, prompt: "#fake recall" });
    expect(resumed.get(recent.outcome.threadId!)).toBe(false);
    expect(recalled(recent.outcome.finalMessage)).toEqual(["#fake recall", "#fake recall"]);
  });

  it("threads_loaded = 0 unloads each thread when its turn ends, and a reply still continues it", async () => {
    const ws = makeWorkspace();
    const pool = await pools.start({ workers: [{ name: "w", capacity: 1, max_containers: 1, threads_ahead: 0, threads_loaded: 0 }] });
    const first = await pool.runTurn({ workspace: ws, prompt: "#fake recall" });
    expect(first.outcome.status, first.outcome.error ?? "").toBe("succeeded");
    await until(() => pool.stats().threads.unloaded === 1, 30_000, "Codex unloads the thread once its turn ends");
    const reply = await pool.runTurn({ conversationId: first.conversationId!, prompt: "#fake recall" });
    expect(recalled(reply.outcome.finalMessage)).toEqual(["#fake recall", "#fake recall"]);
    await until(() => pool.stats().threads.unloaded === 2, 30_000, "and again after the reply's turn");
  });

  it("threads_ahead = 0 starts none ahead", async () => {
    const ws = makeWorkspace();
    const pool = await pools.start({ workers: [{ name: "w", capacity: 1, max_containers: 1, threads_ahead: 0 }] });
    for (let i = 0; i < 2; i++) expect((await pool.runTurn({ workspace: ws, prompt: "#fake recall" })).outcome.status).toBe("succeeded");
    await new Promise((r) => setTimeout(r, 1000));
    expect(pool.stats().threads).toEqual({ takenAhead: 0, startedFresh: 2, startedAhead: 0, unloaded: 0 });
  });

  it("refuses a warm workspace outside the allowed roots, naming the key", async () => {
    await expect(pools.start({ workers: [{ name: "w", warm: 1, warm_workspaces: ["/etc"] }] })).rejects.toThrow(/^workers\[0\]\.warm_workspaces\[0\]: .*\/etc/);
  });
});
