// Dev/release isolation: two pools with different labels and channels on one engine each run
// their own containers; shutting one down or reaping orphans never touches the other; an image
// tag that does not fit the channel is refused; after a broker is killed with SIGKILL, the next
// one with the same label removes its orphans, and one with another label does not.
import { execFileSync, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { WrapperError } from "../../../src/errors.js";
import { LABELS } from "../../../src/worker/container.js";
import { WorkerPool } from "../../../src/pool/pool.js";
import { INSTANCE_PREFIX, makeWorkspace, REHEARSAL_IMAGE, removeTestContainers, TEST_LABEL } from "../support/env.js";
import { docker, startPool, testConfig } from "../support/pool.js";

const RUN = `iso-${process.pid}`;
const RELEASE_IMAGE = "cmw-test/rehearsal:9.9.9";
const pools: WorkerPool[] = [];
afterAll(async () => {
  await Promise.all(pools.map((p) => p.shutdown()));
  removeTestContainers(RUN);
  execFileSync("docker", ["rmi", RELEASE_IMAGE], { stdio: "ignore" });
});

const names = async (label: string): Promise<string[]> => (await docker.listByLabels({ [LABELS.instance]: label })).map((c) => c.name).sort();

describe("dev/release isolation", () => {
  it("runs a dev and a release pool side by side, each touching only its own containers", async () => {
    execFileSync("docker", ["tag", REHEARSAL_IMAGE, RELEASE_IMAGE]);
    const dev = await startPool({ run: RUN, label: `${INSTANCE_PREFIX}-dev-${RUN}`, channel: "dev" });
    const rel = await startPool({ run: RUN, label: `${INSTANCE_PREFIX}-rel-${RUN}`, channel: "release", workers: [{ name: "default", image: RELEASE_IMAGE }] });
    pools.push(dev, rel);
    const ws = makeWorkspace();
    const [d, r] = await Promise.all([dev.runTurn({ workspace: ws, prompt: "dev task" }), rel.runTurn({ workspace: ws, prompt: "release task" })]);
    expect(d.outcome.finalMessage).toBe("echo: dev task");
    expect(r.outcome.finalMessage).toBe("echo: release task");
    expect(await names(dev.config.label)).toEqual([d.container]);
    expect(await names(rel.config.label)).toEqual([r.container]);
    for (const c of await docker.listByLabels({ [LABELS.instance]: rel.config.label })) expect(c.labels[LABELS.channel]).toBe("release");

    // Reaping and shutting down the dev pool leaves the release pool's container running.
    expect(await dev.reapOrphans()).toEqual([]);
    await dev.shutdown();
    expect(await names(dev.config.label)).toEqual([]);
    expect(await names(rel.config.label)).toEqual([r.container]);
    const again = await rel.runTurn({ workspace: ws, prompt: "still here" });
    expect(again.outcome.finalMessage).toBe("echo: still here");
    expect(again.container).toBe(r.container);
  });

  it("refuses an image tag that does not fit the channel, with a clear error", async () => {
    const devWithRelease = new WorkerPool({ config: testConfig({ run: RUN, channel: "dev", workers: [{ name: "default", image: RELEASE_IMAGE }] }), docker });
    await expect(devWithRelease.start()).rejects.toThrow(/refuses to start: image cmw-test\/rehearsal:9\.9\.9: a dev instance runs only ":dev" or ":dev-\*" tags/);
    const releaseWithDev = new WorkerPool({ config: testConfig({ run: RUN, channel: "release", workers: [{ name: "default", image: REHEARSAL_IMAGE }] }), docker });
    const err = await releaseWithDev.start().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WrapperError);
    expect((err as WrapperError).code).toBe("IMAGE_REFUSED");
    expect((err as Error).message).toMatch(/a release instance runs only version tags \(X\.Y\.Z\), got ":dev"/);
  });

  it("after a SIGKILLed broker, the next one with its label removes the orphans; another label does not", async () => {
    const bystander = await startPool({ run: RUN, label: `${INSTANCE_PREFIX}-other-${RUN}` });
    pools.push(bystander);
    const ws = makeWorkspace();
    const byTurn = bystander.runTurn({ workspace: ws, prompt: "#fake sleep 4000" });

    const config = testConfig({ run: RUN, label: `${INSTANCE_PREFIX}-killed-${RUN}` });
    const child = spawn(process.execPath, [fileURLToPath(new URL("../support/pool-child.mjs", import.meta.url)), JSON.stringify({ config, labels: { [TEST_LABEL]: RUN }, workspace: ws })], { stdio: ["ignore", "pipe", "inherit"] });
    const assigned = await new Promise<string>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error("the child broker never got a container")), 60_000);
      child.stdout.on("data", (d: Buffer) => {
        const m = /assigned (\S+)/.exec(d.toString());
        if (m) {
          clearTimeout(t);
          resolve(m[1]!);
        }
      });
    });
    child.kill("SIGKILL");
    await new Promise((r) => child.on("close", r));
    expect(await names(config.label)).toEqual([assigned]); // the orphan outlived its broker

    // Another instance starting up leaves it alone; the same label removes it.
    const other = await startPool({ run: RUN, label: `${INSTANCE_PREFIX}-third-${RUN}` });
    pools.push(other);
    expect(await names(config.label)).toEqual([assigned]);
    const successor = new WorkerPool({ config, docker });
    pools.push(successor);
    const { reaped } = await successor.start();
    expect(reaped).toEqual([assigned]);
    expect(await names(config.label)).toEqual([]);
    expect((await byTurn).outcome.status).toBe("succeeded");
    expect((await names(bystander.config.label)).length).toBe(1);
  });
});
