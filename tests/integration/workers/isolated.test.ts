// Isolated workspaces (real Docker, the real Codex against the rehearsal model): a task with
// workspace_mode "isolated" works on its own copy in a volume filled through the engine's archive
// API, and its changes come back as changes.patch plus the changed files; the source workspace is
// untouched unless apply = true, parallel tasks do not see each other's files, a patch that does
// not apply is kept with the reason, and the volumes go with the pool (or the next one's reaping).
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { validateMission } from "../../../src/mission/load.js";
import { MissionRunner } from "../../../src/mission/runner.js";
import type { MissionInput } from "../../../src/mission/schema.js";
import type { WorkerPool } from "../../../src/pool/pool.js";
import { StateStore, type TaskRecord } from "../../../src/state/store.js";
import { LABELS } from "../../../src/worker/container.js";
import { INSTANCE_PREFIX, TEST_LABEL } from "../support/env.js";
import { gitWorkspace, runMission, stored } from "../support/isolated.js";
import { poolFixture } from "../support/pool.js";
import { untilValue } from "../support/wait.js";

const RUN = `isolated-${process.pid}`;
const pools = poolFixture(RUN);

/** A git workspace: f.txt committed, node_modules ignored (and present), owned by the container's user. */
const ignoredWorkspace = (): string =>
  gitWorkspace((ws) => {
    writeFileSync(path.join(ws, ".gitignore"), "node_modules/\n");
    mkdirSync(path.join(ws, "node_modules", "left-pad"), { recursive: true });
    writeFileSync(path.join(ws, "node_modules", "left-pad", "index.js"), "module.exports = 1;\n");
  });
const run = (pool: WorkerPool, ws: string, mission: Omit<MissionInput, "name">): ReturnType<typeof runMission> => runMission(pool, ws, "isolated", mission);
const sha = (s: string): string => createHash("sha256").update(s).digest("hex");
const volumes = (): string[] => execFileSync("docker", ["volume", "ls", "-q", "--filter", `label=${TEST_LABEL}=${RUN}`], { encoding: "utf8" }).split("\n").filter(Boolean);
afterAll(() => {
  for (const v of volumes()) execFileSync("docker", ["volume", "rm", "-f", v], { stdio: "ignore" });
});

describe("workspace_mode isolated", () => {
  it("returns changes.patch and the changed files with their sha256, leaves the source untouched and copies no ignored node_modules", async () => {
    const pool = await pools.start({ workers: [{ name: "default", workspace_mode: "isolated" }] });
    const ws = ignoredWorkspace();
    const { record, store } = await run(pool, ws, {
      tasks: [{ id: "edit", prompt: "#fake write f.txt edited\n#fake write new/b.txt fresh\n#fake run ls -A; ls node_modules 2>&1 || true", check: "grep -q edited f.txt" }],
    });
    const [t] = record.tasks as [TaskRecord];
    expect(t.status, t.error ?? "").toBe("succeeded");
    // The copy had the tracked files, not the ignored bulk.
    expect(t.finalMessage).toContain(".gitignore");
    expect(t.finalMessage).toMatch(/ls: cannot access 'node_modules'/);
    const patch = stored(store, record, t, "changes.patch");
    expect(patch).toMatch(/diff --git a\/f.txt b\/f.txt[\s\S]*-base\n\+edited/);
    expect(patch).toMatch(/diff --git a\/new\/b.txt b\/new\/b.txt\nnew file mode 100644[\s\S]*\+fresh/);
    const byPath = Object.fromEntries(t.artifacts.map((a) => [a.path, a]));
    expect(byPath["f.txt"]?.sha256).toBe(sha(stored(store, record, t, "f.txt")));
    expect(stored(store, record, t, "new/b.txt")).toMatch(/^fresh\n?$/);
    expect(byPath["new/b.txt"]?.sha256).toBe(sha(stored(store, record, t, "new/b.txt")));
    expect(byPath["changes.patch"]?.sha256).toBe(sha(patch));
    // The source workspace is as it was.
    expect(readFileSync(path.join(ws, "f.txt"), "utf8")).toBe("base\n");
    expect(existsSync(path.join(ws, "new"))).toBe(false);
    expect(execFileSync("git", ["-c", "safe.directory=*", "-C", ws, "status", "--porcelain"], { encoding: "utf8" })).toBe("");
    // A reply continues on the task's copy, not on the source.
    const reply = await pool.runTurn({ conversationId: t.conversationId!, prompt: "#fake run cat f.txt" });
    expect(reply.outcome.finalMessage).toContain("edited");
    // The copy lives in a volume of the pool's labels until its container goes; then it goes too.
    expect(volumes()).toHaveLength(1);
    await pool.shutdown();
    expect(volumes()).toEqual([]);
  });

  it("runs parallel tasks on copies of their own: each its own patch and artifacts, the source untouched", async () => {
    const pool = await pools.start({ workers: [{ name: "default", capacity: 4, max_containers: 3 }] });
    const ws = ignoredWorkspace();
    const { record, store } = await run(pool, ws, {
      defaults: { workspace_mode: "isolated", artifacts: ["reports/**"] },
      tasks: [
        { id: "one", prompt: "#fake write f.txt one\n#fake write reports/one.md by one" },
        { id: "two", prompt: "#fake write f.txt two" },
        { id: "three", prompt: "#fake run ls" },
      ],
    });
    const [one, two, three] = record.tasks as [TaskRecord, TaskRecord, TaskRecord];
    for (const t of record.tasks) expect(t.status, `${t.id}: ${t.error}`).toBe("succeeded");
    expect(new Set(record.tasks.map((t) => t.container)).size).toBe(3);
    expect(stored(store, record, one, "changes.patch")).toMatch(/-base\n\+one/);
    expect(stored(store, record, two, "changes.patch")).toMatch(/-base\n\+two/);
    // Task one's report is task one's alone; a task that changed nothing has no patch.
    expect(one.artifacts.map((a) => a.path).sort()).toEqual(["changes.patch", "f.txt", "reports/one.md"]);
    expect(two.artifacts.map((a) => a.path).sort()).toEqual(["changes.patch", "f.txt"]);
    expect(three.artifacts).toEqual([]);
    expect(three.notes).toContain("isolated: no changes (its copy is as it was)");
    expect(readFileSync(path.join(ws, "f.txt"), "utf8")).toBe("base\n");
    expect(existsSync(path.join(ws, "reports"))).toBe(false);
  });

  it("with apply = true applies a clean patch; a second patch on the same lines is kept, and its task says why", async () => {
    const pool = await pools.start({ workers: [{ name: "default", max_containers: 2 }] });
    const ws = ignoredWorkspace();
    const { record, store } = await run(pool, ws, {
      defaults: { workspace_mode: "isolated", apply: true },
      tasks: [
        { id: "one", prompt: "#fake write f.txt one\n#fake write added.txt new" },
        { id: "two", prompt: "#fake write f.txt two" },
      ],
    });
    const applied = record.tasks.filter((t) => t.status === "succeeded");
    const refused = record.tasks.filter((t) => t.status === "failed");
    expect(applied).toHaveLength(1);
    expect(refused).toHaveLength(1);
    const [won, lost] = [applied[0]!, refused[0]!];
    expect(won.notes?.some((n) => n.endsWith("applied to the workspace"))).toBe(true);
    expect(readFileSync(path.join(ws, "f.txt"), "utf8")).toMatch(new RegExp(`^${won.id}\n?$`));
    expect(existsSync(path.join(ws, "added.txt"))).toBe(won.id === "one");
    expect(lost.errorCode).toBe("patch_not_applied");
    expect(lost.error).toMatch(/do not apply cleanly .*f\.txt.*the workspace is untouched and the patch is kept in changes\.patch/);
    expect(stored(store, record, lost, "changes.patch")).toMatch(new RegExp(`-base\n\\+${lost.id}`));
  });

  it("a reply to an isolated conversation brings back what it changed, from the tree the turn before left: a patch and files of its own under replies/<n>/, applied with the task's apply", async () => {
    const pool = await pools.start({ workers: [{ name: "default", workspace_mode: "isolated" }] });
    const ws = ignoredWorkspace();
    const store = new StateStore(pool.config.stateDir);
    const runner = new MissionRunner(pool, store);
    const { done } = runner.start(validateMission({ name: "replies", defaults: { apply: true }, tasks: [{ id: "edit", prompt: "#fake write f.txt edited" }] }, pool.config), { workspace: ws });
    const record = await done;
    const t = record.tasks[0]!;
    expect(t.status, t.error ?? "").toBe("succeeded");
    expect(readFileSync(path.join(ws, "f.txt"), "utf8")).toMatch(/^edited\n?$/);

    const first = await runner.reply({ conversationId: t.conversationId!, prompt: "#fake write f.txt again\n#fake write g.txt new" });
    expect(first.result.outcome.status).toBe("succeeded");
    expect(first.task).toEqual({ missionId: record.missionId, taskId: "edit" });
    expect(first.artifacts.map((a) => a.path).sort()).toEqual(["replies/1/changes.patch", "replies/1/f.txt", "replies/1/g.txt"]);
    const patch1 = stored(store, record, t, "replies/1/changes.patch");
    expect(patch1).toMatch(/-edited\n(\\ No newline at end of file\n)?\+again/); // from the task's tree, not from the source's base
    expect(patch1).not.toContain("-base");
    expect(first.notes.some((n) => n.startsWith("isolated (reply 1): 2 files changed") && n.endsWith("applied to the workspace"))).toBe(true);
    expect(readFileSync(path.join(ws, "f.txt"), "utf8")).toMatch(/^again\n?$/);
    expect(readFileSync(path.join(ws, "g.txt"), "utf8")).toMatch(/^new\n?$/);
    // The task's record lists them: resources of the mission like the task's own.
    expect(store.readMission(record.missionId).tasks[0]!.artifacts.map((a) => a.path)).toEqual(expect.arrayContaining(["changes.patch", "replies/1/changes.patch", "replies/1/g.txt"]));

    const second = await runner.reply({ conversationId: t.conversationId!, prompt: "#fake run rm g.txt" });
    expect(second.artifacts.map((a) => a.path)).toEqual(["replies/2/changes.patch"]);
    expect(stored(store, record, t, "replies/2/changes.patch")).toMatch(/deleted file mode 100644[\s\S]*-new/);
    expect(existsSync(path.join(ws, "g.txt"))).toBe(false);
    // A reply that changes nothing says so.
    const third = await runner.reply({ conversationId: t.conversationId!, prompt: "#fake run cat f.txt" });
    expect(third.artifacts).toEqual([]);
    expect(third.notes).toContain("isolated (reply 3): no changes (its copy is as it was)");
    await pool.shutdown();
    runner.dropCopies();
  });

  it("two replies at once to one isolated conversation run one after the other: the second waits for the first's turn and read-back, and each one's changes come back apart", async () => {
    const pool = await pools.start({ workers: [{ name: "default", workspace_mode: "isolated" }] });
    const ws = ignoredWorkspace();
    const store = new StateStore(pool.config.stateDir);
    const runner = new MissionRunner(pool, store);
    const record = await runner.start(validateMission({ name: "holds", tasks: [{ id: "edit", prompt: "#fake write f.txt edited" }] }, pool.config), { workspace: ws }).done;
    const t = record.tasks[0]!;
    expect(t.status, t.error ?? "").toBe("succeeded");
    const held = (): number | undefined => pool.stats().containers.find((c) => c.name === pool.containerOf(t.conversationId!))?.held;
    expect(held()).toBe(0); // the task's copy is read back

    const slow = runner.reply({ conversationId: t.conversationId!, prompt: "#fake sleep 4000\n#fake write a.txt A" });
    expect(held()).toBe(1);
    // A second reply while the first's turn runs: it waits (Codex runs one turn of a thread at a
    // time, and refused it at once before), holding nothing meanwhile; the first still holds its copy.
    const quick = runner.reply({ conversationId: t.conversationId!, prompt: "#fake write b.txt B" });
    await new Promise((r) => setTimeout(r, 1000));
    expect(held()).toBe(1);
    const a = await slow;
    expect(a.result.outcome.status).toBe("succeeded");
    expect(a.artifacts.map((x) => x.path).sort()).toEqual(["replies/1/a.txt", "replies/1/changes.patch"]);
    const b = await quick;
    expect(b.result.outcome.status, b.result.outcome.error ?? "").toBe("succeeded");
    expect(b.notes[0]).toMatch(/^waited \d+\.\d s for the conversation's earlier turn to end/);
    // Its changes are its own: read back from the tree the first one left, not mixed with it.
    expect(b.artifacts.map((x) => x.path).sort()).toEqual(["replies/2/b.txt", "replies/2/changes.patch"]);
    expect(stored(store, record, t, "replies/2/changes.patch")).not.toContain("a.txt");
    expect(held()).toBe(0);
    await pool.shutdown();
    runner.dropCopies();
  });

  it("a reply sent while its task's check still runs waits for the task to end: the task's changes are its own, the reply's come back apart", async () => {
    const pool = await pools.start({ workers: [{ name: "default", workspace_mode: "isolated" }] });
    const ws = ignoredWorkspace();
    const store = new StateStore(pool.config.stateDir);
    const runner = new MissionRunner(pool, store);
    const started = runner.start(validateMission({ name: "held", tasks: [{ id: "edit", prompt: "#fake write a.txt A", check: "sleep 3" }] }, pool.config), { workspace: ws });
    // The conversation shows in status once the first turn has ended, while the check runs (the task
    // still running until the check decides).
    const running = await untilValue(() => ({ ...runner.status(started.missionId).tasks[0]! }), (t) => !["queued", "running"].includes(t.status) || t.conversationId !== null, 60_000, "the task's conversation while its check runs", 50);
    expect(running.status).toBe("running");
    const reply = runner.reply({ conversationId: running.conversationId!, prompt: "#fake write b.txt B" });
    const record = await started.done;
    const t = record.tasks[0]!;
    expect(t.status, t.error ?? "").toBe("succeeded");
    // The task's changes are read back before the reply's turn touches the copy.
    expect(t.artifacts.map((x) => x.path).sort()).toEqual(["a.txt", "changes.patch", "check.log"]);
    expect(stored(store, record, t, "changes.patch")).not.toContain("b.txt");
    const r = await reply;
    expect(r.result.outcome.status, r.result.outcome.error ?? "").toBe("succeeded");
    expect(r.notes[0]).toMatch(/^waited \d+\.\d s for the conversation's earlier turn to end/);
    expect(r.artifacts.map((x) => x.path).sort()).toEqual(["replies/1/b.txt", "replies/1/changes.patch"]);
    expect(stored(store, record, t, "replies/1/changes.patch")).not.toContain("a.txt");
    await pool.shutdown();
    runner.dropCopies();
  });

  it("reaps an earlier broker's workspace volumes of its own label at start, and no other label's", async () => {
    const label = `${INSTANCE_PREFIX}-test-${RUN}-reap`;
    const make = (name: string, instance: string): void =>
      void execFileSync("docker", ["volume", "create", "--label", `${LABELS.instance}=${instance}`, "--label", `${LABELS.volume}=${name}`, "--label", `${LABELS.session}=gone`, "--label", `${TEST_LABEL}=${RUN}`, name], { stdio: "ignore" });
    make(`${label}-ws-orphan`, label);
    make(`${label}-other-ws-kept`, `${label}-other`);
    try {
      await pools.start({ label });
      expect(volumes()).toEqual([`${label}-other-ws-kept`]);
    } finally {
      for (const v of volumes()) execFileSync("docker", ["volume", "rm", "-f", v], { stdio: "ignore" });
    }
  });
});
