// A task whose command prints 60 MB (real Docker, the real Codex): its event log stays within the
// documented bound (the head of the output, then one output_left_out event with the count and
// the tail), on the app-server and exec drivers.
import { readFileSync, statSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { validateMission } from "../../../src/mission/load.js";
import { MissionRunner } from "../../../src/mission/runner.js";
import { StateStore } from "../../../src/state/store.js";
import { makeWorkspace } from "../support/env.js";
import { poolFixture } from "../support/pool.js";

const RUN = `outbounds-${process.pid}`;
const pools = poolFixture(RUN);
const SIXTY_MB = "#fake run head -c 60000000 /dev/zero | tr '\\0' a | fold -w 200";

describe.each(["app-server", "exec"] as const)("a 60 MB command output with the %s driver", (protocol) => {
  it("leaves an event log within its bound, with how much was left out and the output's tail", async () => {
    const pool = await pools.start({ workers: [{ name: "default", protocol, capacity: 2, max_containers: 1 }] });
    const store = new StateStore(pool.config.stateDir);
    const runner = new MissionRunner(pool, store);
    const tasks = [{ id: "big", prompt: SIXTY_MB }];
    const { done, missionId } = runner.start(validateMission({ name: "big-output", tasks }, pool.config), { workspace: makeWorkspace() });
    const record = await done;
    expect(record.tasks.map((t) => t.status)).toEqual(tasks.map(() => "succeeded"));
    const log = path.join(store.missionDir(missionId), "tasks", "big", "events.jsonl");
    // The bound: 64 KiB of streamed output per command, and no text in an event past 32 KiB.
    expect(statSync(log).size).toBeLessThan(512 * 1024);
    const events = readFileSync(log, "utf8").trim().split("\n").map((l) => JSON.parse(l) as { type: string; leftOutBytes?: number; tail?: string });
    expect(events.at(-1)!.type).toBe("task_finished");
    const command = events.find((e) => e.type === "command_finished") as { output: string } | undefined;
    expect(command!.output).toMatch(/^a{200}\n[\s\S]*\[… \d+ characters left out of the event log …\][\s\S]*a{200}$/);
    if (protocol === "app-server") {
      const left = events.filter((e) => e.type === "output_left_out");
      expect(left).toHaveLength(1);
      expect(left[0]!.leftOutBytes).toBeGreaterThan(10_000_000);
      expect(left[0]!.tail).toMatch(/a{200}\n?$/);
      expect(left[0]!.tail!.length).toBe(16 * 1024);
      console.log(`output bounds (${protocol}): events.jsonl ${statSync(log).size} bytes; ${left[0]!.leftOutBytes} bytes of streamed output left out`);
    }
  });
});
