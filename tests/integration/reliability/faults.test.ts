// Faults a broker must survive, each on the real Codex in the rehearsal image: a worker killed
// from outside (`docker kill`), a process OOM-killed under the container's memory limit, a worker
// that stops answering (`docker pause`), a model that never answers (`#fake stall`, with every
// driver: each has its own turn timer), a client
// that disconnects during a waiting `batch`, and a state directory that is full or read-only.
// After each: the broker keeps serving, the record says what happened, no orphan container, and
// what was collected before the fault is still there.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { serve, type ServerType } from "@hono/node-server";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { Broker } from "../../../src/broker.js";
import { createApp } from "../../../src/http/app.js";
import type { Mission } from "../../../src/mission/schema.js";
import type { MissionRecord } from "../../../src/state/store.js";
import { LABELS } from "../../../src/worker/container.js";
import { ALL_DRIVERS, INSTANCE_PREFIX, makeWorkspace } from "../support/env.js";
import { docker, testConfig } from "../support/pool.js";
import { untilValue, within } from "../support/wait.js";

const RUN = `faults-${process.pid}`;
let broker: Broker | undefined;
let http: ServerType | undefined;
const mounts: string[] = [];

afterEach(async () => {
  try {
    await broker?.stop();
  } finally {
    broker = undefined;
    if (http && "closeAllConnections" in http) http.closeAllConnections(); // a client a failed test left connected must not hold close() open
    await new Promise((r) => (http ? http.close(r) : r(null)));
    http = undefined;
  }
});
afterAll(async () => {
  for (const m of mounts) spawnSync("umount", ["-l", m]);
  for (const c of await docker.listByLabels({ [LABELS.instance]: `${INSTANCE_PREFIX}-test-${RUN}` })) await docker.remove(c.id);
});

async function start(workers: Record<string, unknown>[], stateDir?: string): Promise<Broker> {
  broker = new Broker(testConfig({ run: RUN, workers, stateDir }));
  (broker.pool as unknown as { opts: { healthIntervalMs: number } }).opts.healthIntervalMs = 500;
  await broker.start();
  return broker;
}


const mission = (tasks: Mission["tasks"], extra: Partial<Mission> = {}): Mission => ({ name: "faults", tasks, ...extra });
const containers = async (b: Broker): Promise<string[]> => (await docker.listByLabels({ [LABELS.instance]: b.config.label })).map((c) => c.name);

/** The broker still serves: a fresh one-task mission succeeds. */
async function stillServes(b: Broker, ws: string): Promise<MissionRecord> {
  const after = await b.runner.start(mission([{ id: "after", prompt: "#fake write after.txt ok", sandbox: "workspace-write" }] as Mission["tasks"]), { workspace: ws }).done;
  expect(after.status, JSON.stringify(after.tasks)).toBe("succeeded");
  return after;
}

describe("faults", () => {
  it("a worker killed with docker kill mid-task: the task fails naming the container and signal; earlier artifacts are kept", async () => {
    const b = await start([{ name: "default", capacity: 2, max_containers: 1 }]);
    const ws = makeWorkspace();
    const { missionId, done } = b.runner.start(
      mission([
        { id: "quick", prompt: "#fake write out/quick.txt kept", sandbox: "workspace-write", artifacts: ["out/quick.txt"] },
        { id: "long", prompt: "#fake sleep 60000" },
      ] as Mission["tasks"]),
      { workspace: ws },
    );
    const rec = await untilValue(() => b.store.readMission(missionId), (r) => r.tasks[0]!.status === "succeeded" && r.tasks[1]!.status === "running", 90_000, "quick done, long running");
    const victim = rec.tasks[1]!.container!;
    execFileSync("docker", ["kill", victim], { stdio: "ignore" });
    const final = await done;
    expect(final.status).toBe("failed");
    expect(final.tasks[1]).toMatchObject({ status: "failed", container: victim, errorCode: "worker_exited" });
    expect(final.tasks[1]!.error).toMatch(new RegExp(`${victim}.*(exited with code 137|killed)`));
    // The finished task keeps its result and its artifact, in the record and the bundle.
    expect(final.tasks[0]).toMatchObject({ status: "succeeded", artifacts: [{ path: "out/quick.txt", size: 4 }] });
    expect(readFileSync(path.join(b.store.missionDir(missionId), "artifacts/quick/out/quick.txt"), "utf8")).toBe("kept");
    expect(final.bundle && existsSync(final.bundle)).toBe(true);
    expect(b.store.readMission(missionId)).toEqual(final);
    await stillServes(b, ws);
    expect(await containers(b)).not.toContain(victim);
    expect((await containers(b)).length).toBe(1);
  });

  it("a process OOM-killed under the container's memory limit: the task says so, and the container keeps serving", async () => {
    const b = await start([{ name: "default", capacity: 1, max_containers: 1, memory: "384m" }]);
    const ws = makeWorkspace();
    const hog = `node -e "const a=[];for(;;)a.push(Buffer.alloc(1<<24,1))"`;
    const r = await b.runner.start(mission([{ id: "hog", prompt: `#fake run ${hog}` }] as Mission["tasks"]), { workspace: ws }).done;
    const t = r.tasks[0]!;
    const events = readFileSync(path.join(b.store.taskDir(r.missionId, "hog"), "events.jsonl"), "utf8");
    // The kernel killed the hog (SIGKILL, exit 137) inside the container's cgroup; Codex saw the
    // command die and finished its turn; the broker's record and event log both carry it.
    expect(events).toMatch(/"type":"command_finished".*"exitCode":137/);
    expect(t.status).toBe("succeeded");
    // ...and the broker, reading the container's cgroup, says it was the memory limit.
    expect(t.notes).toEqual([`out of memory: the kernel killed 1 process in container ${t.container} for exceeding its memory limit (384 MiB; workers.memory), and 1 command of this turn ended by SIGKILL (exit code 137)`]);
    expect(events).toMatch(/"type":"note","note":"out of memory: /);
    expect(b.store.readMission(r.missionId).tasks[0]!.notes).toEqual(t.notes);
    const [c] = await docker.listByLabels({ [LABELS.instance]: b.config.label });
    const inspect = JSON.parse(execFileSync("docker", ["inspect", c!.id], { encoding: "utf8" })) as { HostConfig: { Memory: number; MemorySwap: number }; State: { Running: boolean } }[];
    expect(inspect[0]!.HostConfig.Memory).toBe(384 * 1024 ** 2);
    expect(inspect[0]!.HostConfig.MemorySwap).toBe(384 * 1024 ** 2); // no swap beyond the limit
    expect(inspect[0]!.State.Running).toBe(true);
    const after = await stillServes(b, ws);
    expect(after.tasks[0]!.container).toBe(t.container);
  });

  it("Codex itself OOM-killed (its oom_score_adj raised, then a hog): the task fails naming the memory limit, and a new container serves", async () => {
    const b = await start([{ name: "default", capacity: 1, max_containers: 1, memory: "384m" }]);
    const ws = makeWorkspace();
    // A process may raise the OOM score of its own user's processes: the kernel then picks Codex.
    const hog = `node -e "const a=[];for(;;)a.push(Buffer.alloc(1<<24,1))"`;
    const prompt = `#fake run for p in $(pgrep codex); do echo 1000 > /proc/$p/oom_score_adj; done; ${hog}`;
    const r = await b.runner.start(mission([{ id: "codex-oom", prompt }] as Mission["tasks"]), { workspace: ws }).done;
    const t = r.tasks[0]!;
    expect(t.status).toBe("failed");
    expect(t.error).toMatch(new RegExp(`container ${t.container} was killed for exceeding its memory limit \\(384 MiB\\)`));
    await untilValue(() => containers(b), (names) => !names.includes(t.container!), 15_000, "the dead container is gone");
    const after = await stillServes(b, ws);
    expect(after.tasks[0]!.container).not.toBe(t.container);
  });

  it("a worker that stops answering (docker pause): the probe replaces it and its tasks end lost, with the reason", async () => {
    const b = await start([{ name: "default", capacity: 2, max_containers: 1 }]);
    const ws = makeWorkspace();
    const { missionId, done } = b.runner.start(mission([{ id: "frozen", prompt: "#fake sleep 60000" }] as Mission["tasks"]), { workspace: ws });
    const rec = await untilValue(() => b.store.readMission(missionId), (r) => r.tasks[0]!.status === "running", 90_000, "the task runs");
    const victim = rec.tasks[0]!.container!;
    execFileSync("docker", ["pause", victim], { stdio: "ignore" });
    const final = await done;
    expect(final.tasks[0]!.status).toBe("lost");
    expect(final.tasks[0]!.errorCode).toBe("conversation_lost");
    expect(final.tasks[0]!.error).toMatch(new RegExp(`worker ${victim} stopped answering \\(its container is paused\\)`));
    expect(final.status).toBe("failed");
    await untilValue(() => containers(b), (names) => !names.includes(victim), 15_000, "the frozen container is gone");
    await stillServes(b, ws);
  });

  it("a client that disconnects during a waiting batch: the mission goes on, and status from a new session has its result", async () => {
    const b = await start([{ name: "default", capacity: 2, max_containers: 1 }]);
    http = serve({ fetch: createApp({ broker: b }).fetch, hostname: "127.0.0.1", port: 0 });
    await new Promise((r) => http!.once("listening", r));
    const url = new URL(`http://127.0.0.1:${(http.address() as AddressInfo).port}/mcp`);
    const ws = makeWorkspace();
    const gone = new Client({ name: "gone", version: "0" });
    const transport = new StreamableHTTPClientTransport(url);
    await gone.connect(transport);
    const call = gone.callTool({ name: "batch", arguments: { workspace: ws, mission: { name: "orphaned", tasks: [{ id: "a", prompt: "#fake sleep 3000" }, { id: "b", prompt: "#fake write b.txt written", sandbox: "workspace-write", artifacts: ["b.txt"] }] } } }, undefined, { timeout: 120_000 });
    call.catch(() => {});
    const missionId = (await untilValue(() => b.store.listMissions(1), (l) => l[0]?.tasks.some((t) => t.status === "running") ?? false, 90_000, "the mission runs"))[0]!.missionId;
    await transport.close(); // the client goes away mid-call
    await gone.close().catch(() => {});
    const fresh = new Client({ name: "fresh", version: "0" });
    await fresh.connect(new StreamableHTTPClientTransport(url));
    const s = await untilValue(async () => (await fresh.callTool({ name: "status", arguments: { missionId } })).structuredContent as { status: string; tasks: { status: string; artifacts: unknown[] }[] }, (v) => v.status !== "running", 90_000, "the mission ends");
    expect(s.status).toBe("succeeded");
    expect(s.tasks.map((t) => t.status)).toEqual(["succeeded", "succeeded"]);
    expect(s.tasks[1]!.artifacts).toHaveLength(1);
    await fresh.close();
  });

  it("a full, then read-only, state directory: the task fails clearly and earlier records stay readable", async () => {
    const stateDir = mkdtempSync(path.join(os.tmpdir(), "cmw-fullstate-"));
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=4m", "tmpfs", stateDir]);
    mounts.push(stateDir);
    try {
      const b = await start([{ name: "default", capacity: 1, max_containers: 1 }], stateDir);
      const ws = makeWorkspace();
      const first = await b.runner.start(mission([{ id: "ok", prompt: "#fake write small.txt fine", sandbox: "workspace-write", artifacts: ["small.txt"] }] as Mission["tasks"]), { workspace: ws }).done;
      expect(first.status).toBe("succeeded");
      const firstRecord = readFileSync(path.join(b.store.missionDir(first.missionId), "record.json"), "utf8");

      // Full: the task's artifact (6 MB) cannot be stored in a 4 MB state directory.
      mkdirSync(path.join(ws, "big"), { recursive: true });
      execFileSync("dd", ["if=/dev/urandom", `of=${path.join(ws, "big/blob.bin")}`, "bs=1M", "count=6"], { stdio: "ignore" });
      const full = await b.runner.start(mission([{ id: "big", prompt: "hello", artifacts: ["big/blob.bin"] }] as Mission["tasks"]), { workspace: ws }).done;
      expect(full.tasks[0]!.error).toMatch(/artifacts could not be collected: .*(ENOSPC|no space left)/i);
      expect(full.status).toBe("failed");
      expect(b.store.readMission(full.missionId).tasks[0]!.error).toMatch(/ENOSPC|no space left/i);

      // Read-only: a new mission is refused with a clear error; nothing stored is lost. (A
      // read-only bind of the directory over itself: the worker's own mount of its CODEX_HOME
      // stays writable, as when a disk flips read-only under a running container.)
      execFileSync("mount", ["--bind", stateDir, stateDir]);
      mounts.push(stateDir);
      execFileSync("mount", ["-o", "remount,bind,ro", stateDir]);
      expect(() => b.runner.start(mission([{ id: "x", prompt: "hello" }] as Mission["tasks"]), { workspace: ws })).toThrow(/state directory .* (read-only|EROFS)/i);
      expect(readFileSync(path.join(b.store.missionDir(first.missionId), "record.json"), "utf8")).toBe(firstRecord);
      expect(b.store.readMission(first.missionId).status).toBe("succeeded");
      expect(b.store.listMissions().map((m) => m.missionId).sort()).toEqual([first.missionId, full.missionId].sort());
    } finally {
      await broker?.stop();
      broker = undefined;
      spawnSync("umount", ["-l", stateDir]);
      spawnSync("umount", ["-l", stateDir]);
      rmSync(stateDir, { recursive: true, force: true });
    }
  });
});

describe.each(ALL_DRIVERS)("a model that never answers, with %s", (protocol, image) => {
  it("#fake stall: the task's timeout ends it timed_out, and the same container serves the next", async () => {
    const b = await start([{ name: "default", protocol, image, capacity: 1, max_containers: 1 }]);
    const ws = makeWorkspace();
    // Nothing but the task's timeout can end this turn: a bound of the test's own names it.
    const r = await within(b.runner.start(mission([{ id: "stalled", prompt: "#fake stall", timeout: 4000 }] as Mission["tasks"]), { workspace: ws }).done, 60_000, `the task's timeout (4000 ms) did not end a turn whose model never answers (${protocol} driver)`);
    expect(r.tasks[0]!.status, `the task's timeout ends a stalled turn timed_out (${protocol} driver): ${r.tasks[0]!.error}`).toBe("timed_out");
    expect(r.tasks[0]!.error).toMatch(/no answer within 4000 ms/);
    const after = await stillServes(b, ws);
    expect(after.tasks[0]!.container).toBe(r.tasks[0]!.container);
  });
});
