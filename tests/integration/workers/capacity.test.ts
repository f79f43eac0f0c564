// Capacity and faults: never more turns per container than its capacity, nor containers than
// max_containers; a crashed Codex fails its turns at once with the exit code and stderr, and the
// next task gets a working container; a cancel stops a long turn within seconds and frees it.
import { describe, expect, it } from "vitest";
import { ALL_DRIVERS, makeWorkspace } from "../support/env.js";
import { poolFixture } from "../support/pool.js";

const RUN = `cap-${process.pid}`;
const pools = poolFixture(RUN);

describe.each(ALL_DRIVERS)("capacity and faults with %s", (protocol, image) => {
  it("runs six tasks with capacity 2 × 2 containers: at most 2 per container and 4 in all", async () => {
    const pool = await pools.start({ workers: [{ name: "w", protocol, image, capacity: 2, max_containers: 2 }] });
    const p = pool;
    let peak = 0;
    let peakContainers = 0;
    const sampler = setInterval(() => {
      const s = p.stats();
      peak = Math.max(peak, s.inFlight);
      peakContainers = Math.max(peakContainers, s.containers.length);
    }, 20);
    const ws = makeWorkspace();
    const results = await Promise.all(Array.from({ length: 6 }, (_, i) => p.runTurn({ workspace: ws, prompt: `task ${i}\n#fake sleep 1200` })));
    clearInterval(sampler);
    expect(results.map((r) => r.outcome.status)).toEqual(Array(6).fill("succeeded"));
    expect(peak).toBe(4);
    expect(peakContainers).toBe(2);
    expect(new Set(results.map((r) => r.container)).size).toBe(2);
    for (const [, n] of p.maxInFlightSeen) expect(n).toBeLessThanOrEqual(2);
  });

  it("fails the turns of a crashed Codex with the exit code and stderr, then serves the next task", async () => {
    const pool = await pools.start({ workers: [{ name: "w", protocol, image, capacity: 2, max_containers: 1 }] });
    const ws = makeWorkspace();
    const started = Date.now();
    let crashedAfter = 0;
    const [crash, bystander] = await Promise.all([
      pool.runTurn({ workspace: ws, prompt: "#fake sleep 300\n#fake crash" }).then((r) => ((crashedAfter = Date.now() - started), r)),
      pool.runTurn({ workspace: ws, prompt: "#fake sleep 4000" }),
    ]);
    expect(crashedAfter).toBeLessThan(15_000);
    expect(crash.outcome.status).toBe("failed");
    if (protocol !== "exec") {
      // The crash kills the container's main process: every turn on it fails, naming it.
      expect(crash.outcome.error).toMatch(new RegExp(`container ${crash.container} exited with code 137; last stderr lines:\n\\S`));
      expect(bystander.outcome.status).toBe("failed");
      expect(bystander.outcome.error).toContain(crash.container!);
    } else {
      // exec: only that turn's process dies; the container and the other turn go on.
      expect(crash.outcome.error).toMatch(/codex exec in .* exited with code \d+ before the turn ended/);
      expect(bystander.outcome.status).toBe("succeeded");
    }
    const next = await pool.runTurn({ workspace: ws, prompt: "#fake write after-crash.txt ok" });
    expect(next.outcome.status).toBe("succeeded");
  });

  it("cancels a #fake sleep 60000 turn within seconds and frees its capacity", async () => {
    const pool = await pools.start({ workers: [{ name: "w", protocol, image, capacity: 1, max_containers: 1 }] });
    const ws = makeWorkspace();
    const ac = new AbortController();
    let began = 0;
    const turn = pool.runTurn({
      workspace: ws,
      prompt: "#fake sleep 60000",
      signal: ac.signal,
      onEvent: (e) => {
        if (e.kind === "command_started" && !began) {
          began = Date.now();
          setTimeout(() => ac.abort(), 200);
        }
      },
    });
    const r = await turn;
    expect(r.outcome.status).toBe("cancelled");
    expect(Date.now() - began).toBeLessThan(10_000);
    expect(pool.stats().inFlight).toBe(0);
    // The one lane is free again: the next task runs on the same container.
    const next = await pool.runTurn({ workspace: ws, prompt: "after cancel" });
    expect(next.outcome).toMatchObject({ status: "succeeded", finalMessage: "echo: after cancel" });
    expect(next.container).toBe(r.container);
  });
});
