// The Docker daemon stopped in the middle of a mission and started again, under a running
// broker: the running task fails with a clear error, calls made while it is down fail at once
// with an error naming the engine (no hang), /healthz says the engine is unreachable, and once it
// is back the same broker serves again, without a restart and without leaving a container behind.
//
// A hung engine (dockerd stopped with SIGSTOP: the socket accepts, nothing answers) is the harder
// case: each engine call fails once broker.docker_timeout has passed, naming the engine and the
// limit, /healthz answers within its own 5 s, a running turn ends by its own timeout, and after
// SIGCONT the same broker serves again.
//
// This stops the engine every test uses: it runs in the "integration-alone" vitest project, one
// file at a time after every other file has ended (vitest.config.ts), and the engine is started
// again in `finally` whatever happens.
import { execFileSync, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { serve, type ServerType } from "@hono/node-server";
import { afterAll, describe, expect, it } from "vitest";
import { Broker } from "../../../src/broker.js";
import { createApp } from "../../../src/http/app.js";
import type { WrapperConfig } from "../../../src/config/schema.js";
import type { Mission } from "../../../src/mission/schema.js";
import { LABELS } from "../../../src/worker/container.js";
import { INSTANCE_PREFIX, makeWorkspace } from "../support/env.js";
import { docker, testConfig } from "../support/pool.js";
import { until } from "../support/wait.js";

const RUN = `daemon-${process.pid}`;
const HUNG = `hung-${process.pid}`;
let broker: Broker | undefined;
let http: ServerType | undefined;
let hung: Broker | undefined;
let hungHttp: ServerType | undefined;

/**
 * Signals this machine's default engine by its own pidfile, never by name: `pkill dockerd` would
 * hit every engine on the machine (the multi-engine tests start their own, in their own netns).
 */
const ENGINE_PIDFILE = "/var/run/docker.pid";
function signalEngine(signal: NodeJS.Signals, pid = enginePid()): void {
  if (pid !== null) process.kill(pid, signal);
}
function enginePid(): number | null {
  try {
    return Number(readFileSync(ENGINE_PIDFILE, "utf8").trim()) || null;
  } catch {
    return null;
  }
}
const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
let stoppedPid: number | null = null;

afterAll(async () => {
  if (stoppedPid !== null && alive(stoppedPid)) process.kill(stoppedPid, "SIGCONT");
  ensureEngine();
  for (const b of [broker, hung]) await b?.stop();
  for (const h of [http, hungHttp]) await new Promise((r) => (h ? h.close(r) : r(null)));
  for (const run of [RUN, HUNG]) for (const c of await docker.listByLabels({ [LABELS.instance]: `${INSTANCE_PREFIX}-test-${run}` })) await docker.remove(c.id);
});

/** A broker on the real engine, checking its containers every 500 ms, with /healthz over HTTP. */
async function startBroker(run: string, config: Partial<WrapperConfig> = {}): Promise<{ b: Broker; h: ServerType; healthz: () => Promise<{ docker: string }> }> {
  const b = new Broker({ ...testConfig({ run, workers: [{ name: "default", capacity: 2, max_containers: 2 }] }), ...config });
  (b.pool as unknown as { opts: { healthIntervalMs: number } }).opts.healthIntervalMs = 500;
  await b.start();
  const h = serve({ fetch: createApp({ broker: b }).fetch, hostname: "127.0.0.1", port: 0 });
  await new Promise((r) => h.once("listening", r));
  const healthz = async (): Promise<{ docker: string }> => (await (await fetch(`http://127.0.0.1:${(h.address() as AddressInfo).port}/healthz`, { signal: AbortSignal.timeout(10_000) })).json()) as { docker: string };
  return { b, h, healthz };
}

const engineUp = (): boolean => spawnSync("docker", ["info"], { stdio: "ignore", timeout: 10_000 }).status === 0;
function ensureEngine(): void {
  if (!engineUp()) execFileSync("bash", ["scripts/ensure-docker.sh"], { stdio: "ignore", timeout: 120_000 });
}
const mission = (tasks: Mission["tasks"]): Mission => ({ name: "daemon", tasks });

describe("the Docker daemon stopped and started again under a running broker", () => {
  it("fails clearly while it is down, says so on /healthz, and recovers by itself", async () => {
    const started = await startBroker(RUN);
    broker = started.b;
    http = started.h;
    const healthz = started.healthz;
    expect((await healthz()).docker).toMatch(/^ok/);

    const ws = makeWorkspace();
    const running = broker.runner.start(mission([{ id: "long", prompt: "#fake sleep 60000" }] as Mission["tasks"]), { workspace: ws });
    await until(() => broker!.store.readMission(running.missionId).tasks[0]!.status === "running", 90_000, "the task runs");
    const container = broker.store.readMission(running.missionId).tasks[0]!.container!;

    try {
      const pid = enginePid();
      expect(pid, `the engine's pidfile ${ENGINE_PIDFILE}`).not.toBeNull();
      signalEngine("SIGTERM", pid);
      // Gone, not just shutting down: a stopping dockerd still answers /_ping for a while.
      await until(() => !engineUp() && !alive(pid!), 60_000, "dockerd has exited");

      // The running task ends, failed, naming its container; the mission record says so.
      const interrupted = await running.done;
      expect(interrupted.tasks[0]!.status).toBe("failed");
      expect(interrupted.tasks[0]!.error).toContain(container);
      expect(broker.store.readMission(running.missionId).status).toBe("failed");

      // While it is down: /healthz answers at once, and says the engine is unreachable.
      expect((await healthz()).docker).toMatch(/^unreachable: Docker engine unreachable at \/var\/run\/docker\.sock/);
      // A new task fails at once with an error naming the engine and the fix, not a hang.
      const t0 = Date.now();
      const refused = await broker.runner.start(mission([{ id: "while-down", prompt: "hello" }] as Mission["tasks"]), { workspace: ws }).done;
      expect(Date.now() - t0).toBeLessThan(30_000);
      expect(refused.tasks[0]!.status).toBe("failed");
      expect(refused.tasks[0]!.error).toMatch(/Docker engine unreachable at \/var\/run\/docker\.sock .*start Docker/);
    } finally {
      ensureEngine();
    }

    // Back: the same broker, not restarted, serves again.
    await until(async () => /^ok/.test((await healthz()).docker), 30_000, "/healthz says ok");
    const after = await broker.runner.start(mission([{ id: "after", prompt: "#fake write after.txt back", sandbox: "workspace-write" }] as Mission["tasks"]), { workspace: ws }).done;
    expect(after.status, JSON.stringify(after.tasks)).toBe("succeeded");
    // The container the engine stopped is removed (its removal is retried once the engine answers).
    await until(async () => !(await docker.listByLabels({ [LABELS.instance]: broker!.config.label })).some((c) => c.name === container), 30_000, "the old container is gone");
    expect((await docker.listByLabels({ [LABELS.instance]: broker.config.label })).map((c) => c.name)).toEqual([after.tasks[0]!.container]);
  });
});

describe("the Docker daemon hung (SIGSTOP) under a running broker", () => {
  it("fails each engine call after broker.docker_timeout, says so on /healthz, ends the running turn by its timeout, and recovers after SIGCONT", async () => {
    const started = await startBroker(HUNG, { dockerTimeoutMs: 3000 });
    hung = started.b;
    hungHttp = started.h;
    const { healthz } = started;
    const b = hung;
    const ws = makeWorkspace();
    const warmUp = await b.runner.start(mission([{ id: "first", prompt: "hello" }] as Mission["tasks"]), { workspace: ws }).done;
    expect(warmUp.status, JSON.stringify(warmUp.tasks)).toBe("succeeded");
    const running = b.runner.start(mission([{ id: "long", prompt: "#fake sleep 60000", timeout: 6000 }] as Mission["tasks"]), { workspace: ws });
    await until(() => b.store.readMission(running.missionId).tasks[0]!.status === "running", 60_000, "the task runs");

    try {
      stoppedPid = enginePid();
      expect(stoppedPid, `the engine's pidfile ${ENGINE_PIDFILE}`).not.toBeNull();
      signalEngine("SIGSTOP", stoppedPid);
      // /healthz: the engine's ping waits at most 5 s (here 3 s, the call limit), then says why.
      const h = await healthz();
      expect(h.docker).toMatch(/^unreachable: Docker engine at \/var\/run\/docker\.sock did not answer within 3 s while trying to reach the engine; it may be hung/);
      // A task that needs a new container (another workspace) fails naming the engine and the limit.
      const t0 = Date.now();
      const refused = await b.runner.start(mission([{ id: "while-hung", prompt: "hello" }] as Mission["tasks"]), { workspace: makeWorkspace() }).done;
      expect(Date.now() - t0).toBeLessThan(30_000);
      expect(refused.tasks[0]!.status).toBe("failed");
      expect(refused.tasks[0]!.error).toMatch(/Docker engine at \/var\/run\/docker\.sock did not answer within 3 s while trying to .*broker\.docker_timeout/);
      // The running turn, whose stdio goes through the hung engine, ends by its own timeout.
      const ended = await running.done;
      expect(ended.tasks[0]!.status).toBe("timed_out");
      expect(ended.tasks[0]!.error).toMatch(/no answer within 6000 ms/);
    } finally {
      signalEngine("SIGCONT", stoppedPid);
      stoppedPid = null;
    }

    await until(async () => /^ok/.test((await healthz()).docker), 30_000, "/healthz says ok");
    const after = await b.runner.start(mission([{ id: "after", prompt: "#fake write after.txt back", sandbox: "workspace-write" }] as Mission["tasks"]), { workspace: makeWorkspace() }).done;
    expect(after.status, JSON.stringify(after.tasks)).toBe("succeeded");
    // Nothing is left over beyond what the pool still lists.
    const listed = new Set(b.pool.stats().containers.map((c) => c.name));
    await until(async () => (await docker.listByLabels({ [LABELS.instance]: b.config.label })).every((c) => listed.has(c.name)), 30_000, "no container the pool does not know");
  });
});
