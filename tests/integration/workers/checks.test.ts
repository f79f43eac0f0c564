// Tasks that prove themselves (real Docker, the real Codex against the rehearsal model): a check
// command decides a task's success, a failed check goes back to Codex while attempts remain, a
// check that hangs ends by its timeout, a read-only task's check cannot write, and token budgets
// (the task's and the mission's) stop a task's model calls at the relay.
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { junitReport } from "../../../src/cli/run-mission.js";
import { createLogger } from "../../../src/log.js";
import { validateMission } from "../../../src/mission/load.js";
import { MissionRunner } from "../../../src/mission/runner.js";
import type { MissionInput } from "../../../src/mission/schema.js";
import { StateStore, type MissionRecord, type TaskRecord } from "../../../src/state/store.js";
import type { WorkerPool } from "../../../src/pool/pool.js";
import { ALL_DRIVERS, makeWorkspace } from "../support/env.js";
import { poolFixture } from "../support/pool.js";

const RUN = `checks-${process.pid}`;
const pools = poolFixture(RUN);

/** Model requests that reached the rehearsal model (the relay's upstream), from the pool's debug log. */
function upstreamLog(): { lines: string[]; logger: ReturnType<typeof createLogger> } {
  const lines: string[] = [];
  return { lines, logger: createLogger({ level: "debug", write: (l) => void (l.includes("rehearsal model") && lines.push(l)) }) };
}

async function run(pool: WorkerPool, mission: Omit<MissionInput, "name"> & { name?: string }): Promise<{ record: MissionRecord; store: StateStore; ws: string }> {
  const ws = makeWorkspace();
  const store = new StateStore(pool.config.stateDir);
  const runner = new MissionRunner(pool, store);
  const { done } = runner.start(validateMission({ name: "checks", ...mission }, pool.config), { workspace: ws });
  return { record: await done, store, ws };
}

const artifact = (store: StateStore, m: MissionRecord, t: TaskRecord, rel: string): string => readFileSync(path.join(store.missionDir(m.missionId), "artifacts", t.id, rel), "utf8");

describe("a task's check", () => {
  it("decides success: a passing check succeeds; a failing one fails with its exit code and output, in check.log and in JUnit", async () => {
    const pool = await pools.start({ workers: [{ name: "default", capacity: 2, max_containers: 1 }] });
    const { record, store } = await run(pool, {
      tasks: [
        { id: "pass", prompt: "#fake write out/pass.txt ok", check: "test \"$(cat out/pass.txt)\" = ok && echo check-passed" },
        { id: "fail", prompt: "#fake write out/fail.txt nope", check: "echo 'expected yes, got' \"$(cat out/fail.txt)\"; exit 3" },
      ],
    });
    const [pass, fail] = record.tasks as [TaskRecord, TaskRecord];
    expect(pass.status).toBe("succeeded");
    expect(pass.maxAttempts).toBe(1);
    expect(pass.attempts).toHaveLength(1);
    expect(pass.attempts![0]!.check).toMatchObject({ exitCode: 0, timedOut: false, outputTail: "check-passed" });
    expect(artifact(store, record, pass, "check.log")).toContain("check-passed");

    // Codex's turn succeeded; the check decides otherwise.
    expect(fail.attempts![0]!.turn).toBe("succeeded");
    expect(fail.status).toBe("failed");
    expect(fail.errorCode).toBe("check_failed");
    expect(fail.error).toMatch(/check `echo .*` exited with code 3/);
    expect(fail.error).toContain("expected yes, got nope");
    expect(fail.artifacts.map((a) => a.path)).toContain("check.log");
    expect(artifact(store, record, fail, "check.log")).toMatch(/=== attempt 1: \$ echo[\s\S]*expected yes, got nope[\s\S]*=== exited with code 3/);
    expect(record.status).toBe("failed");

    const junit = junitReport(record, (t) => artifact(store, record, t, "check.log"));
    const failCase = /<testcase [^>]*name="fail"[\s\S]*?<\/testcase>/.exec(junit)?.[0] ?? "";
    expect(failCase).toMatch(/<failure message="failed: check `echo [^"]*exited with code 3[^"]*" type="check_failed">/);
    expect(failCase).toMatch(/<system-out>[\s\S]*expected yes, got nope[\s\S]*<\/system-out>/);
    expect(/<testcase [^>]*name="pass"[\s\S]*?<\/testcase>/.exec(junit)?.[0]).not.toContain("<failure");
  });

  it("with attempts = 2, goes back to Codex on the same conversation and succeeds at attempt 2/2; with 1 attempt the same task fails", async () => {
    const pool = await pools.start({ workers: [{ name: "default", capacity: 2, max_containers: 1 }] });
    // The rehearsal model writes the wrong text on its first attempt and the right one on its second.
    const prompt = (f: string): string => `#fake on-attempt 1 write ${f} wrong\n#fake on-attempt 2 write ${f} right`;
    const { record, store } = await run(pool, {
      tasks: [
        { id: "twice", prompt: prompt("two.txt"), check: "grep -q right two.txt || { echo \"two.txt says $(cat two.txt)\"; exit 1; }", attempts: 2 },
        { id: "once", prompt: prompt("one.txt"), check: "grep -q right one.txt" },
      ],
    });
    const [twice, once] = record.tasks as [TaskRecord, TaskRecord];
    expect(twice.status).toBe("succeeded");
    expect(twice.maxAttempts).toBe(2);
    expect(twice.attempts!.map((a) => [a.attempt, a.turn, a.check?.exitCode])).toEqual([[1, "succeeded", 1], [2, "succeeded", 0]]);
    expect(twice.attempts![0]!.check!.outputTail).toBe("two.txt says wrong");
    expect(twice.attempts!.every((a) => a.usage && a.usage.requests > 0)).toBe(true);
    expect(twice.usage!.requests).toBe(twice.attempts!.reduce((n, a) => n + a.usage!.requests, 0));
    expect(twice.finalMessage).toMatch(/^attempt 2\nwrote two.txt/);
    expect(twice.error).toBeNull();
    expect(artifact(store, record, twice, "check.log")).toMatch(/=== attempt 1:[\s\S]*two.txt says wrong[\s\S]*=== attempt 2:/);

    expect(once.status).toBe("failed");
    expect(once.errorCode).toBe("check_failed");
    expect(once.attempts).toHaveLength(1);
  });

  it("ends by its check_timeout when it hangs, and its processes are killed", async () => {
    const pool = await pools.start({ workers: [{ name: "default", capacity: 1, max_containers: 1 }] });
    const began = Date.now();
    const { record } = await run(pool, { tasks: [{ id: "hang", prompt: "#fake write a.txt x", check: "echo waiting; sleep 600 & sleep 601", check_timeout: "2s" }] });
    const hang = record.tasks[0]!;
    expect(hang.status).toBe("failed");
    expect(hang.errorCode).toBe("check_timed_out");
    expect(hang.error).toMatch(/did not finish within its check_timeout \(2 s\) and was killed/);
    expect(hang.attempts![0]!.check).toMatchObject({ timedOut: true, outputTail: "waiting" });
    expect(Date.now() - began).toBeLessThan(120_000);
    // Neither the check's shell nor the child it left in the background is still running.
    const left = await pool.runCommand(hang.conversationId!, { command: "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; done | grep -c '^sleep 60[01]' || true", timeoutMs: 30_000 });
    expect(left.output.toString().trim()).toBe("0");
  });

  it("runs with the task's sandbox and network: a read-only task's check cannot write the workspace, and sees only lo", async () => {
    const pool = await pools.start({ workers: [{ name: "default", capacity: 1, max_containers: 1 }] });
    const { record, ws } = await run(pool, { tasks: [{ id: "ro", prompt: "#fake run ls", sandbox: "read-only", check: "echo nets: $(ls /sys/class/net); echo x > made-by-check.txt" }] });
    const ro = record.tasks[0]!;
    expect(ro.status).toBe("failed");
    expect(ro.errorCode).toBe("check_failed");
    expect(ro.error).toMatch(/Read-only file system/);
    expect(ro.attempts![0]!.check!.outputTail).toMatch(/^nets: lo$/m);
    expect(existsSync(path.join(ws, "made-by-check.txt"))).toBe(false);
  });
});

describe("token budgets", () => {
  it.each(ALL_DRIVERS)("a task over its max_tokens ends budget_exceeded, and no further model call reaches the upstream (%s)", async (protocol, image) => {
    const up = upstreamLog();
    const pool = await pools.start({ workers: [{ name: "default", protocol, image, capacity: 1, max_containers: 1 }], pool: { logger: up.logger } });
    // Each answer reports 1000 output tokens: the first (a tool call) spends the 500-token budget.
    const { record } = await run(pool, { tasks: [{ id: "greedy", prompt: "#fake tokens 1000\n#fake run echo one\n#fake run echo two", max_tokens: 500 }] });
    const t = record.tasks[0]!;
    expect(t.status).toBe("failed");
    expect(t.errorCode).toBe("budget_exceeded");
    expect(t.error).toMatch(/^budget_exceeded: the task's max_tokens \(500 tokens\) is spent: 1100 used/);
    expect(up.lines).toHaveLength(1);
    expect(pool.stats().relay.budgetRefused).toBeGreaterThanOrEqual(1);
    expect(t.usage).toMatchObject({ inputTokens: 100, outputTokens: 1000, requests: 1 });
  });

  it("a mission over its max_tokens cancels its other running tasks, and says so", async () => {
    const pool = await pools.start({ workers: [{ name: "default", capacity: 2, max_containers: 1 }] });
    const { record } = await run(pool, {
      max_tokens: 500,
      tasks: [
        { id: "slow", prompt: "#fake sleep 30000\n#fake write late.txt too late" },
        { id: "greedy", prompt: "#fake sleep 2000\n#fake tokens 1000\n#fake run echo more" },
      ],
    });
    const [slow, greedy] = record.tasks as [TaskRecord, TaskRecord];
    expect(greedy.status).toBe("failed");
    expect(greedy.errorCode).toBe("budget_exceeded");
    expect(greedy.error).toMatch(/the mission's max_tokens \(500 tokens\) is spent/);
    expect(slow.status).toBe("cancelled");
    expect(slow.errorCode).toBe("budget_exceeded");
    expect(slow.error).toMatch(/^cancelled: the mission's max_tokens \(500 tokens\) is spent: \d+ used \(its last answer was task greedy's\)/);
    expect(record.status).toBe("failed");
  });
});
