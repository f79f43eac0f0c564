// Container lifecycle in the pool: idle containers are stopped after idle_timeout; a frozen
// (paused) container fails its health probe and is replaced; approvals asked by Codex are
// declined (no human is in the loop) and recorded as events.
import { existsSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
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
});
