// Every engine runs the profile's image with the main engine's image ID, also after it came up: a
// test engine whose image under the profile's name changes while the broker runs (another build
// tagged there, as an older build would be) gets the main engine's image again before a container
// of it starts there, and the task runs on those bits. Real engines, a real image (one layer of its
// own on the rehearsal image, so the load finds the rehearsal layers already there).
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EngineConfig } from "../../../src/config/schema.js";
import { createLogger } from "../../../src/log.js";
import { validateMission } from "../../../src/mission/load.js";
import { MissionRunner } from "../../../src/mission/runner.js";
import { DockerRuntime } from "../../../src/runtime/docker.js";
import { ensureImage } from "../../../src/runtime/images.js";
import { StateStore } from "../../../src/state/store.js";
import { removeTestContainersOnEngines, testEngines } from "../support/engines.js";
import { makeWorkspace, REHEARSAL_IMAGE, TEST_LABEL } from "../support/env.js";
import { poolFixture } from "../support/pool.js";

const run = promisify(execFile);
const RUN = `images-${process.pid}`;
const ENG1_SOCK = "unix:///run/cmw-engine-1.sock";
const pools = poolFixture(RUN);
const main = new DockerRuntime();
let remote: EngineConfig[] = [];
let eng1: DockerRuntime;

async function docker(...args: string[]): Promise<string> {
  return (await run("docker", args, { maxBuffer: 16 << 20 })).stdout.trim();
}

/** Builds on eng-1 (its local socket), FROM the rehearsal image, one file of its own, tagged `tag`: the image ID. */
async function buildOnEng1(tag: string): Promise<string> {
  const ctx = mkdtempSync(path.join(os.tmpdir(), "cmw-imgctx-"));
  try {
    writeFileSync(path.join(ctx, "marker"), `${RUN}\n`);
    writeFileSync(path.join(ctx, "Dockerfile"), `FROM ${REHEARSAL_IMAGE}\nLABEL ${TEST_LABEL}=${RUN}\nCOPY marker /marker-${RUN}\n`);
    return await docker("-H", ENG1_SOCK, "build", "-q", "-t", tag, ctx);
  } finally {
    rmSync(ctx, { recursive: true, force: true });
  }
}

beforeAll(async () => {
  remote = await testEngines();
  eng1 = new DockerRuntime({ engine: remote[0]! });
  // eng-1 starts with the main engine's image, so that it comes up at once with nothing to send.
  await ensureImage(main, eng1, REHEARSAL_IMAGE);
}, 300_000);

afterAll(async () => {
  await removeTestContainersOnEngines(RUN);
  // The other build, wherever its tag went; if the fix failed, the tag with it (the next start sends the image again).
  const ids = await docker("-H", ENG1_SOCK, "images", "-q", "--no-trunc", "--filter", `label=${TEST_LABEL}=${RUN}`).catch(() => "");
  const unique = [...new Set(ids.split("\n").filter(Boolean))];
  if (unique.length) await docker("-H", ENG1_SOCK, "rmi", "-f", ...unique).catch(() => "");
}, 120_000);

describe("the same image on every engine", () => {
  it("a test engine whose image under the profile's name changed after it came up gets the main engine's again before a container starts there, and the task runs on it", async () => {
    const lines: string[] = [];
    const logger = createLogger({ level: "info", write: (l) => void lines.push(l) });
    const pool = await pools.start({
      workers: [{ name: "default", capacity: 1, max_containers: 1, engines: ["eng-1"] }],
      engines: [{ name: "local" }, { name: "eng-1", host: remote[0]!.host, tls: remote[0]!.tls, max_containers: 2 }],
      pool: { logger },
    });
    expect(pool.stats().engines.find((e) => e.name === "eng-1")?.state).toBe("up");
    const want = (await main.imageInspect(REHEARSAL_IMAGE))!.id;
    // An older build, as far as the broker can tell: the profile's image name on eng-1 is now another image.
    const other = await buildOnEng1(REHEARSAL_IMAGE);
    expect(other).not.toBe(want);
    expect((await eng1.imageInspect(REHEARSAL_IMAGE))?.id).toBe(other);

    const runner = new MissionRunner(pool, new StateStore(pool.config.stateDir));
    const record = await runner.start(validateMission({ name: "images", tasks: [{ id: "t", prompt: "#fake run echo ran" }] }, pool.config), { workspace: makeWorkspace() }).done;
    const task = record.tasks[0]!;
    expect(task.status, task.error ?? "").toBe("succeeded");
    expect(task.engine).toBe("eng-1");
    // The engine has the main engine's image under the name again, and the task's container runs it.
    expect((await eng1.imageInspect(REHEARSAL_IMAGE))?.id).toBe(want);
    const ran = await docker("-H", ENG1_SOCK, "inspect", "-f", "{{.Image}}", task.container!);
    expect(ran).toBe(want);
    // Said in the log: what differed, and the copy (with its progress).
    expect(lines.some((l) => l.includes("an engine's image differs from the source's") && l.includes(other))).toBe(true);
    expect(lines.some((l) => l.includes("copying an image to an engine") && l.includes('"engine":"eng-1"'))).toBe(true);
    expect(lines.some((l) => l.includes("image copied to an engine") && l.includes(want))).toBe(true);
  }, 300_000);
});
