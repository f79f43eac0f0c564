// A task's env reaches the commands Codex runs for that task, through Codex's own config
// overrides (shell_environment_policy.set), not by recreating the container; the next task on
// the same container does not see it.
import { describe, expect, it } from "vitest";
import { ALL_DRIVERS, makeWorkspace } from "../support/env.js";
import { poolFixture } from "../support/pool.js";

const pools = poolFixture(`env-${process.pid}`);

describe.each(ALL_DRIVERS)("task env with %s", (protocol, image) => {
  it("is set for that task's commands only", async () => {
    const pool = await pools.start({ workers: [{ name: "w", protocol, image, capacity: 1, max_containers: 1 }] });
    const ws = makeWorkspace();
    const withEnv = await pool.runTurn({ workspace: ws, prompt: "#fake env CMW_TASK_VAR", env: { CMW_TASK_VAR: "from the task" } });
    expect(withEnv.outcome.finalMessage).toBe("env CMW_TASK_VAR=from the task");
    const next = await pool.runTurn({ workspace: ws, prompt: "#fake env CMW_TASK_VAR" });
    expect(next.container).toBe(withEnv.container); // same container, not recreated
    expect(next.outcome.finalMessage).toBe("env CMW_TASK_VAR unset");
  });
});
