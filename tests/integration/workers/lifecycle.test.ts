// Container lifecycle in the pool: idle containers are stopped after idle_timeout; a frozen
// (paused) container fails its health probe and is replaced; approvals asked by Codex are
// declined (no human is in the loop) and recorded as events; a container whose Codex never
// answers at start fails its turn with WORKER_TIMEOUT and is removed; Codex sends none of the
// notifications the broker opted out of.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { OPTED_OUT_NOTIFICATIONS } from "../../../src/codex/app-server-driver.js";
import type { DriverEvent } from "../../../src/codex/driver.js";
import { LABELS } from "../../../src/worker/container.js";
import { makeWorkspace } from "../support/env.js";
import { docker, poolFixture } from "../support/pool.js";

const RUN = `life-${process.pid}`;
const pools = poolFixture(RUN);

async function until(cond: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe("worker lifecycle", () => {
  it("stops a container that stayed idle past idle_timeout", async () => {
    const pool = await pools.start({ workers: [{ name: "w", idle_timeout: "2s" }], pool: { healthIntervalMs: 500 } });
    const r = await pool.runTurn({ workspace: makeWorkspace(), prompt: "hello" });
    expect(r.outcome.status).toBe("succeeded");
    const label = pool.config.label;
    expect((await docker.listByLabels({ [LABELS.instance]: label })).length).toBe(1);
    await until(async () => (await docker.listByLabels({ [LABELS.instance]: label })).length === 0, 15_000, "the idle container is gone");
    expect(pool.stats().containers).toEqual([]);
  });

  it("replaces a frozen (paused) container", async () => {
    const pool = await pools.start({ workers: [{ name: "w", max_containers: 1 }], pool: { healthIntervalMs: 500 } });
    const ws = makeWorkspace();
    const first = await pool.runTurn({ workspace: ws, prompt: "before" });
    const [c] = await docker.listByLabels({ [LABELS.instance]: pool.config.label });
    await docker.pause(c!.id);
    await until(async () => (await docker.inspect(c!.id)) === null, 15_000, "the paused container is removed");
    const after = await pool.runTurn({ workspace: ws, prompt: "after" });
    expect(after.outcome).toMatchObject({ status: "succeeded", finalMessage: "echo: after" });
    expect(after.container).not.toBe(first.container);
  });

  it("a container whose Codex does not answer within the start budget: the turn fails with WORKER_TIMEOUT naming it, the container is removed, and the next turn gets a new one", async () => {
    const pool = await pools.start({ workers: [{ name: "w", max_containers: 1 }], pool: { startTimeoutMs: 6000 } });
    const label = pool.config.label;
    // Each container of this pool is paused as soon as the engine starts it, once: Codex in it
    // never answers initialize (the netns relay channel opens without the container's processes).
    const paused: string[] = [];
    const watch = spawn("docker", ["events", "--filter", `label=${LABELS.instance}=${label}`, "--filter", "event=start", "--format", "{{.ID}}"]);
    watch.stdout.setEncoding("utf8").on("data", (d: string) => {
      for (const id of d.split("\n").filter(Boolean)) {
        if (paused.length > 0) continue;
        paused.push(id);
        void docker.pause(id).catch(() => {});
      }
    });
    try {
      // The watch is listening: docker events has no ready signal, and --since delivered the start
      // too late to pause Codex before it answered (tried: the turn succeeded).
      await new Promise((r) => setTimeout(r, 500));
      const r = await pool.runTurn({ workspace: makeWorkspace(), prompt: "hello" });
      expect(r.outcome.status).toBe("failed");
      expect(r.outcome.errorCode).toBe("WORKER_TIMEOUT");
      expect(r.outcome.error).toMatch(new RegExp(`^worker ${r.container} did not start: Codex in ${r.container} did not answer within 6000 ms`));
      expect(paused).toHaveLength(1);
      await until(async () => (await docker.inspect(paused[0]!)) === null, 15_000, "the container that did not answer is removed");
    } finally {
      watch.kill();
    }
    const next = await pool.runTurn({ workspace: makeWorkspace(), prompt: "again" });
    expect(next.outcome).toMatchObject({ status: "succeeded", finalMessage: "echo: again" });
  });

  it("declines the approvals Codex asks for, and records them", async () => {
    const pool = await pools.start({ workers: [{ name: "w", approval_policy: "untrusted" }] });
    const ws = makeWorkspace();
    const events: DriverEvent[] = [];
    const r = await pool.runTurn({ workspace: ws, prompt: "#fake write asked.txt please", onEvent: (e) => events.push(e) });
    expect(r.outcome.status).toBe("succeeded");
    expect(r.outcome.finalMessage).toMatch(/write asked\.txt failed/);
    expect(events).toContainEqual(expect.objectContaining({ kind: "approval_declined", request: "item/commandExecution/requestApproval" }));
    expect(existsSync(path.join(ws, "asked.txt"))).toBe(false);
  });

  it("gets none of the notifications it opted out of from Codex, and still the ones a task's record keeps", async () => {
    const pool = await pools.start({ workers: [{ name: "w" }] });
    const methods: string[] = [];
    const r = await pool.runTurn({ workspace: makeWorkspace(), prompt: "#fake run echo opted", onEvent: (e) => void (e.kind === "raw" && methods.push((e.message as { method?: string }).method ?? "")) });
    expect(r.outcome.status).toBe("succeeded");
    for (const m of ["turn/started", "item/started", "item/completed", "thread/tokenUsage/updated", "turn/completed"]) expect(methods).toContain(m);
    // Without the opt-out, thread/readState/changed comes during every turn (Codex 0.169.0).
    expect(methods.filter((m) => (OPTED_OUT_NOTIFICATIONS as readonly string[]).includes(m))).toEqual([]);
  });
});
