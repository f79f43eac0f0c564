// Workers over several Docker engines (real engines: the main one plus the test engines that
// scripts/test-engines.sh makes, each a dockerd in its own network namespace reached only over
// mutual TLS; the real Codex against the rehearsal model). A mission spreads over the engines
// within each one's room, a reply goes back to its conversation's engine, a task on a remote engine
// works on a copy whose changes come back as a patch, a killed engine fails its tasks naming it
// while the others go on, and comes back into use; orphans are reaped on every engine.
import { execFileSync, spawn } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Broker } from "../../../src/broker.js";
import { formatChecks, runDoctor } from "../../../src/cli/doctor.js";
import type { EngineConfig } from "../../../src/config/schema.js";
import { statusSnapshot } from "../../../src/http/status.js";
import { validateMission } from "../../../src/mission/load.js";
import { MissionRunner } from "../../../src/mission/runner.js";
import type { MissionInput } from "../../../src/mission/schema.js";
import type { EngineStatus } from "../../../src/pool/engines.js";
import type { WorkerPool } from "../../../src/pool/pool.js";
import { DockerRuntime } from "../../../src/runtime/docker.js";
import { StateStore, type MissionRecord, type TaskRecord } from "../../../src/state/store.js";
import { LABELS } from "../../../src/worker/container.js";
import { killEngine, removeTestContainersOnEngines, startEngine, testEngines } from "../support/engines.js";
import { CONTAINER_GID, CONTAINER_UID, INSTANCE_PREFIX, makeWorkspace, removeTestContainers, TEST_LABEL } from "../support/env.js";
import { poolFixture, recalled, testConfig } from "../support/pool.js";
import { until } from "../support/wait.js";

const RUN = `engines-${process.pid}`;
const pools = poolFixture(RUN);
let remote: EngineConfig[] = [];

beforeAll(async () => {
  remote = await testEngines();
}, 300_000);
afterAll(async () => {
  removeTestContainers(RUN);
  await removeTestContainersOnEngines(RUN);
});

/** [[engines]]: the main engine as "local", then the test engines, each with room for `max`. */
function engines(max: number, extra: Record<string, unknown> = {}): Record<string, unknown>[] {
  return [{ name: "local", max_containers: max, ...extra }, ...remote.map((e) => ({ name: e.name, host: e.host, tls: e.tls, max_containers: max, labels: ["remote"], ...extra }))];
}

function workspace(): string {
  const ws = makeWorkspace();
  writeFileSync(path.join(ws, "f.txt"), "base\n");
  execFileSync("chown", ["-R", `${CONTAINER_UID}:${CONTAINER_GID}`, ws]);
  return ws;
}

function start(pool: WorkerPool, ws: string, mission: Omit<MissionInput, "name">): { runner: MissionRunner; store: StateStore; missionId: string; done: Promise<MissionRecord> } {
  const store = new StateStore(pool.config.stateDir);
  const runner = new MissionRunner(pool, store);
  const { missionId, done } = runner.start(validateMission({ name: "engines", ...mission }, pool.config), { workspace: ws });
  return { runner, store, missionId, done };
}

const byEngine = (tasks: TaskRecord[]): Record<string, number> => tasks.reduce<Record<string, number>>((n, t) => ({ ...n, [t.engine ?? "?"]: (n[t.engine ?? "?"] ?? 0) + 1 }), {});

describe("several engines", () => {
  it("spreads a mission of 6 tasks over 3 engines within each one's room; remote tasks work on copies whose patches come back; replies return to their conversation's engine", async () => {
    const pool = await pools.start({ workers: [{ name: "default", capacity: 1, max_containers: 6 }], engines: engines(2) });
    const ws = workspace();
    // All 6 are placed at once (the runner starts a mission's tasks together): no task waits, so each takes a new container.
    const tasks = Array.from({ length: 6 }, (_, i) => ({ id: `t${i}`, prompt: `#fake write out-${i}.txt from-${i}`, artifacts: [`out-${i}.txt`] }));
    const { done } = start(pool, ws, { tasks, defaults: { sandbox: "workspace-write" } });
    const record = await done;
    for (const t of record.tasks) expect(t.status, `${t.id}: ${t.error}`).toBe("succeeded");
    // 2 each: all 6 were placed at once, each engine holding at most its max_containers.
    expect(byEngine(record.tasks)).toEqual({ local: 2, "eng-1": 2, "eng-2": 2 });
    // A shared task that ran on a remote engine worked on a copy: its patch was applied to the
    // workspace (it applies cleanly), and its artifact is its own file.
    for (let i = 0; i < 6; i++) expect(readFileSync(path.join(ws, `out-${i}.txt`), "utf8").trim()).toBe(`from-${i}`);
    for (const t of record.tasks) expect(t.artifacts.map((a) => a.path)).toContain(`out-${t.id.slice(1)}.txt`);
    const onRemote = record.tasks.find((t) => t.engine === "eng-1")!;
    expect(onRemote.artifacts.map((a) => a.path)).toContain("changes.patch");
    expect(pool.stats().engines.map((e) => [e.name, e.state])).toEqual([
      ["local", "up"],
      ["eng-1", "up"],
      ["eng-2", "up"],
    ]);

    // Replies go back where their conversation lives, and continue it.
    for (const t of [onRemote, record.tasks.find((x) => x.engine === "local")!]) {
      const r = await pool.runTurn({ conversationId: t.conversationId!, prompt: "#fake recall" });
      expect(r.outcome.status, r.outcome.error ?? "").toBe("succeeded");
      expect(r.engine).toBe(t.engine);
      expect(recalled(r.outcome.finalMessage)[0]).toContain(`#fake write out-${t.id.slice(1)}.txt`);
    }
  });

  it("two isolated tasks editing one file on remote engines each bring back their own patch; the source is untouched without apply", async () => {
    const pool = await pools.start({ workers: [{ name: "default", capacity: 1, max_containers: 4, workspace_mode: "isolated", engines: ["remote"] }], engines: engines(1) });
    const ws = workspace();
    const { done, store } = start(pool, ws, {
      tasks: [
        { id: "a", prompt: "#fake write f.txt from-a", artifacts: ["f.txt"] },
        { id: "b", prompt: "#fake write f.txt from-b", artifacts: ["f.txt"] },
      ],
      defaults: { sandbox: "workspace-write" },
    });
    const record = await done;
    for (const t of record.tasks) expect(t.status, `${t.id}: ${t.error}`).toBe("succeeded");
    expect(new Set(record.tasks.map((t) => t.engine))).toEqual(new Set(["eng-1", "eng-2"]));
    for (const t of record.tasks) {
      const dir = path.join(store.missionDir(record.missionId), "artifacts", t.id);
      expect(readFileSync(path.join(dir, "f.txt"), "utf8").trim()).toBe(`from-${t.id}`);
      expect(readFileSync(path.join(dir, "changes.patch"), "utf8")).toContain(`+from-${t.id}`);
    }
    expect(readFileSync(path.join(ws, "f.txt"), "utf8")).toBe("base\n");
  });

  it("a killed engine fails its running tasks naming it while the others go on; new tasks go to the live engines; restarted, it is used again", async () => {
    const pool = await pools.start({ workers: [{ name: "default", capacity: 1, max_containers: 9 }], engines: engines(2) });
    const ws = workspace();
    const long = start(pool, ws, { tasks: Array.from({ length: 6 }, (_, i) => ({ id: `long${i}`, prompt: "#fake sleep 60000" })), defaults: { sandbox: "workspace-write" } });
    const running = (): TaskRecord[] => long.runner.status(long.missionId).tasks.filter((t) => t.status === "running" && t.engine);
    await until(() => running().length === 6, 120_000, "the 6 long tasks to run");
    expect(byEngine(running())).toEqual({ local: 2, "eng-1": 2, "eng-2": 2 });

    await killEngine("eng-2");
    try {
      const status = (): TaskRecord[] => long.runner.status(long.missionId).tasks;
      await until(() => status().filter((t) => t.engine === "eng-2").every((t) => t.status === "failed"), 30_000, "eng-2's tasks to fail");
      for (const t of status().filter((x) => x.engine === "eng-2")) {
        expect(t.errorCode).toBe("engine_down");
        expect(t.error).toContain('engine "eng-2"');
      }
      // The other engines' tasks are still running: only eng-2's failed.
      expect(status().filter((t) => t.engine !== "eng-2").map((t) => t.status)).toEqual(["running", "running", "running", "running"]);
      await until(() => pool.stats().engines.find((e) => e.name === "eng-2")?.state === "down", 20_000, "eng-2 to show down");
      long.runner.cancel(long.missionId);
      await long.done;

      // New tasks go to the live engines only.
      const next = await start(pool, ws, { tasks: Array.from({ length: 4 }, (_, i) => ({ id: `n${i}`, prompt: "#fake run echo next" })), defaults: { sandbox: "workspace-write" } }).done;
      for (const t of next.tasks) expect(t.status, `${t.id}: ${t.error}`).toBe("succeeded");
      expect(Object.keys(byEngine(next.tasks)).sort()).toEqual(["eng-1", "local"]);
    } finally {
      await startEngine("eng-2"); // the next tests need it, whatever happened here
    }

    // Started again, it is probed, prepared and used.
    await until(() => pool.stats().engines.find((e) => e.name === "eng-2")?.state === "up", 60_000, "eng-2 to be used again");
    const again = await start(pool, ws, { tasks: Array.from({ length: 6 }, (_, i) => ({ id: `a${i}`, prompt: "#fake sleep 1000" })), defaults: { sandbox: "workspace-write" } }).done;
    for (const t of again.tasks) expect(t.status, `${t.id}: ${t.error}`).toBe("succeeded");
    expect(byEngine(again.tasks)["eng-2"]).toBeGreaterThan(0);
  });

  it("an engine that cannot be reached shows down with the reason in /healthz, the status page, /metrics and doctor; a profile that needs it fails naming it; the other engines work", async () => {
    const ghost = { name: "ghost", host: "tcp://ghost-engine.invalid:2376", tls: remote[0]!.tls, max_containers: 2, labels: ["ghostly"] };
    const config = testConfig({
      run: RUN,
      workers: [{ name: "default", capacity: 1 }, { name: "haunted", capacity: 1, engines: ["ghostly"] }],
      engines: [{ name: "local", max_containers: 2 }, ghost, { name: remote[0]!.name, host: remote[0]!.host, tls: remote[0]!.tls, max_containers: 2 }],
    });
    const broker = new Broker(config);
    try {
      await broker.start();
      // /healthz (open without a token): each engine's state, nothing more.
      expect((await broker.health()).engines).toEqual({ local: "up", ghost: "down", "eng-1": "up" });
      // The status page (behind the token): each engine's state, host and why it is down.
      const engines: EngineStatus[] = (await statusSnapshot(broker)).engines;
      expect(engines.map((e) => [e.name, e.state])).toEqual([
        ["local", "up"],
        ["ghost", "down"],
        ["eng-1", "up"],
      ]);
      expect(engines[1]!.reason).toMatch(/ghost-engine\.invalid/);
      const metrics = (await broker.metrics.render()).body;
      expect(metrics).toContain('codex_wrapper_engine_up{engine="ghost"} 0');
      expect(metrics).toContain('codex_wrapper_engine_up{engine="eng-1"} 1');
      const doctor = formatChecks(await runDoctor(config, new DockerRuntime()));
      expect(doctor).toMatch(/✗ engine "ghost" \(tcp:\/\/ghost-engine\.invalid:2376\): .*ghost-engine\.invalid/);
      expect(doctor).toContain('✓ engine "eng-1" (tcp://10.200.101.2:2376): Docker');
      expect(doctor).not.toContain("BEGIN");

      const ws = workspace();
      const { done } = broker.runner.start(
        validateMission(
          {
            name: "ghostly",
            tasks: [
              { id: "ok", prompt: "#fake run echo fine" },
              { id: "haunted", profile: "haunted", prompt: "#fake run echo never" },
            ],
          },
          config,
        ),
        { workspace: ws },
      );
      const [ok, haunted] = (await done).tasks as [TaskRecord, TaskRecord];
      expect(ok.status, ok.error ?? "").toBe("succeeded");
      expect(haunted.status).toBe("failed");
      expect(haunted.errorCode).toBe("engine_down");
      expect(haunted.error).toContain('engine "ghost" is down');
    } finally {
      await broker.stop();
    }
  });

  it("after a broker is SIGKILLed, the next one reaps its orphans on every engine, and leaves another instance's alone", async () => {
    remote = await testEngines(); // all up (an earlier test restarts one)
    const ws = workspace();
    const shared = engines(1, { shared_paths: [os.tmpdir()] });
    // Another instance (its own label) on the same engines: its containers must survive.
    const other = await pools.start({ label: `${INSTANCE_PREFIX}-test-${RUN}-other`, workers: [{ name: "default", warm: 1, warm_workspaces: [ws], max_containers: 1, engines: ["eng-1"] }], engines: shared });
    await until(() => other.stats().containers.some((c) => c.state === "ready"), 120_000, "the other instance's warm container");
    const otherContainer = other.stats().containers[0]!.name;

    // A broker with a warm floor of 3 over 3 engines (the test engines see the temp directory at
    // the same path: they run on this machine), killed with its containers up.
    const config = testConfig({ run: RUN, engines: shared, workers: [{ name: "default", warm: 3, warm_workspaces: [ws], max_containers: 3 }] });
    const child = spawn(process.execPath, [path.resolve(import.meta.dirname, "../support/engines-child.mjs"), JSON.stringify({ config, labels: { [TEST_LABEL]: RUN } })], { stdio: ["ignore", "pipe", "inherit"] });
    const exited = new Promise((r) => child.once("exit", r));
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    try {
      await until(() => out.includes("ready"), 180_000, "the child broker's 3 warm containers");
      const spread = JSON.parse(out.split("\n").find((l) => l.startsWith("ready "))!.slice(6)) as string[];
      expect(spread.sort()).toEqual(["eng-1", "eng-2", "local"]);
    } finally {
      child.kill("SIGKILL"); // the test's point, and no child left behind if it failed before
      await exited;
    }

    const runtimes = config.engines.map((e, i) => (i === 0 ? new DockerRuntime() : new DockerRuntime({ engine: e })));
    const mine = async (): Promise<number> => (await Promise.all(runtimes.map((d) => d.listByLabels({ [LABELS.instance]: config.label })))).flat().length;
    expect(await mine()).toBe(3);
    const next = await pools.start({ workers: [{ name: "default" }], engines: shared });
    expect(await mine()).toBe(0);
    expect(next.stats().engines.every((e) => e.state === "up")).toBe(true);
    const others = await runtimes[1]!.listByLabels({ [TEST_LABEL]: RUN });
    expect(others.map((c) => c.name)).toContain(otherContainer);
    await other.shutdown();
    expect(existsSync(ws)).toBe(true);
  });
});
