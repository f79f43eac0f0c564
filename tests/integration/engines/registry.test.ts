// Images pulled from a registry (a profile's pull = true), against a real one: the tests' own
// read-only Docker Registry HTTP API v2 (support/registry.ts), on 127.0.0.1 for the main engine and
// on eng-1's veth address (10.200.101.1) for that test engine. The main engine pulls a profile's
// image it lacks at the pool's start and a task runs on it (the real Codex, the rehearsal model); a
// test engine pulls it when it comes up and a task runs there; an unknown tag, a registry that does
// not listen and an image whose ID differs from the main engine's each fail naming the engine and
// the image.
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EngineConfig } from "../../../src/config/schema.js";
import { createLogger } from "../../../src/log.js";
import { validateMission } from "../../../src/mission/load.js";
import { MissionRunner } from "../../../src/mission/runner.js";
import type { EngineStatus } from "../../../src/pool/engines.js";
import type { WorkerPool } from "../../../src/pool/pool.js";
import { DockerRuntime } from "../../../src/runtime/docker.js";
import { StateStore, type MissionRecord } from "../../../src/state/store.js";
import { removeTestContainersOnEngines, testEngines } from "../support/engines.js";
import { makeWorkspace, REHEARSAL_IMAGE, removeTestContainers, TEST_LABEL } from "../support/env.js";
import { poolFixture } from "../support/pool.js";
import { startRegistry, type TestRegistry } from "../support/registry.js";

const run = promisify(execFile);
const RUN = `registry-${process.pid}`;
const NS = `cmwreg-${process.pid}`; // the repository namespace of every image this file names
const ENG1_ROOT = "10.200.101.1"; // the root side of eng-1's veth: where eng-1 reaches this machine
const ENG1_SOCK = "unix:///run/cmw-engine-1.sock";
const pools = poolFixture(RUN);
const main = new DockerRuntime();
let remote: EngineConfig[] = [];
let registry: TestRegistry;
/** The image the registry serves as ok:dev (one layer of its own on the rehearsal image), and a different one. */
let okId = "";
let otherId = "";

async function docker(...args: string[]): Promise<string> {
  return (await run("docker", args, { maxBuffer: 16 << 20 })).stdout.trim();
}

/** Builds FROM the rehearsal image with one file of its own (so a layer no engine has), carrying the run's label. */
async function build(tag: string, marker: string): Promise<string> {
  const ctx = mkdtempSync(path.join(os.tmpdir(), "cmw-regctx-"));
  try {
    writeFileSync(path.join(ctx, "marker"), `${marker}\n`);
    writeFileSync(path.join(ctx, "Dockerfile"), `FROM ${REHEARSAL_IMAGE}\nLABEL ${TEST_LABEL}=${RUN}\nCOPY marker /marker-${RUN}\n`);
    return await docker("build", "-q", "-t", tag, ctx);
  } finally {
    rmSync(ctx, { recursive: true, force: true });
  }
}

/**
 * The main engine gets `ref` as the image ok:dev is, by a tag: the main engine cannot pull from
 * eng-1's address (not an insecure registry there). The first test pulled ok:dev onto it; run
 * alone, this pulls it first.
 */
async function tagOnMain(ref: string): Promise<void> {
  const ok = `${registry.at("127.0.0.1")}/${NS}/ok:dev`;
  if (!(await main.imageInspect(ok))) await docker("pull", "-q", ok);
  await docker("tag", ok, ref);
}

/** eng-1 without `ref` (by its local socket). */
async function absentOnEng1(ref: string): Promise<void> {
  await docker("-H", ENG1_SOCK, "rmi", "-f", ref).catch(() => "");
  expect(await new DockerRuntime({ engine: remote[0]! }).imageInspect(ref)).toBeNull();
}

/** A port on 127.0.0.1 with nothing listening (taken, then given back). */
async function closedPort(): Promise<number> {
  const s = http.createServer();
  await new Promise<void>((resolve) => s.listen(0, "127.0.0.1", resolve));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

/** A pool whose one profile pulls `ref` and runs only on eng-1 (the main engine has `ref`, eng-1 not), and eng-1's state. */
async function eng1Pulling(ref: string): Promise<{ pool: WorkerPool; eng1: EngineStatus | undefined }> {
  await tagOnMain(ref);
  await absentOnEng1(ref);
  const pool = await pools.start({
    workers: [{ name: "default", image: ref, pull: true, engines: ["eng-1"] }],
    engines: [{ name: "local" }, { name: "eng-1", host: remote[0]!.host, tls: remote[0]!.tls, max_containers: 2 }],
  });
  return { pool, eng1: pool.stats().engines.find((e) => e.name === "eng-1") };
}

function runTask(pool: WorkerPool, prompt: string, profile?: string): Promise<MissionRecord> {
  const runner = new MissionRunner(pool, new StateStore(pool.config.stateDir));
  return runner.start(validateMission({ name: "registry", tasks: [{ id: "t", prompt, ...(profile ? { profile } : {}) }] }, pool.config), { workspace: makeWorkspace() }).done;
}

function captureLog(): { lines: string[]; logger: ReturnType<typeof createLogger> } {
  const lines: string[] = [];
  return { lines, logger: createLogger({ level: "info", write: (l) => void lines.push(l) }) };
}

/** The blobs an engine (by its address) fetched from the registry: the config, and each layer it lacked. */
const blobsFetched = (from: string, name: string): string[] =>
  registry.hits.filter((h) => h.from === from && h.method === "GET" && h.status === 200 && h.path.startsWith(`/v2/${name}/blobs/`)).map((h) => h.path.slice(h.path.lastIndexOf("/") + 1));

beforeAll(async () => {
  remote = await testEngines();
  okId = await build(`${NS}/ok:dev`, `ok ${RUN}`);
  otherId = await build(`${NS}/other:dev`, `other ${RUN}`);
  registry = await startRegistry(["127.0.0.1", ENG1_ROOT]);
  await registry.add(`${NS}/ok:dev`, `${NS}/ok`, "dev");
  await registry.add(`${NS}/other:dev`, `${NS}/drift`, "dev");
  // The main engine keeps neither: the first test pulls ok:dev (and its own layer) back.
  await docker("rmi", `${NS}/ok:dev`, `${NS}/other:dev`);
}, 600_000);

afterAll(async () => {
  removeTestContainers(RUN);
  await removeTestContainersOnEngines(RUN);
  await registry?.close();
  // Every image this file made or pulled carries the run's label: all their tags go, on both engines.
  for (const host of ["unix:///var/run/docker.sock", ENG1_SOCK]) {
    const ids = await docker("-H", host, "images", "-q", "--no-trunc", "--filter", `label=${TEST_LABEL}=${RUN}`).catch(() => "");
    const unique = [...new Set(ids.split("\n").filter(Boolean))];
    if (unique.length) await docker("-H", host, "rmi", "-f", ...unique).catch(() => "");
  }
}, 120_000);

describe("images pulled from a registry", () => {
  it("the main engine pulls a profile's image it lacks at start, logging it, and a task runs on it", async () => {
    const ref = `${registry.at("127.0.0.1")}/${NS}/ok:dev`;
    expect(await main.imageInspect(ref)).toBeNull();
    const log = captureLog();
    const pool = await pools.start({ workers: [{ name: "default", image: ref, pull: true, capacity: 1, max_containers: 1 }], pool: { logger: log.logger } });
    expect((await main.imageInspect(ref))?.id).toBe(okId);
    // The config and the image's own layer (no engine had it) came from the registry.
    const got = blobsFetched("127.0.0.1", `${NS}/ok`);
    expect(got).toContain(okId);
    expect(got.length).toBeGreaterThanOrEqual(2);
    expect(log.lines.some((l) => l.includes("image pulled on an engine") && l.includes(ref))).toBe(true);
    const record = await runTask(pool, "#fake run echo hi");
    expect(record.tasks[0]!.status, record.tasks[0]!.error ?? "").toBe("succeeded");
    expect(record.tasks[0]!.engine).toBe("local");
  }, 300_000);

  it("a test engine without the image pulls it when it comes up, with the main engine's ID, and a task runs there", async () => {
    const ref = `${registry.at(ENG1_ROOT)}/${NS}/ok:dev`;
    await tagOnMain(ref);
    await absentOnEng1(ref);
    const log = captureLog();
    const pool = await pools.start({
      workers: [{ name: "default", image: ref, pull: true, capacity: 1, max_containers: 1, engines: ["eng-1"] }],
      engines: [{ name: "local" }, { name: "eng-1", host: remote[0]!.host, tls: remote[0]!.tls, max_containers: 2 }],
      pool: { logger: log.logger },
    });
    expect(pool.stats().engines.find((e) => e.name === "eng-1")).toMatchObject({ state: "up" });
    expect((await new DockerRuntime({ engine: remote[0]! }).imageInspect(ref))?.id).toBe(okId);
    const got = blobsFetched("10.200.101.2", `${NS}/ok`); // eng-1's address
    expect(got).toContain(okId);
    expect(got.length).toBeGreaterThanOrEqual(2);
    expect(log.lines.some((l) => l.includes("image pulled on an engine") && l.includes('"engine":"eng-1"'))).toBe(true);
    const record = await runTask(pool, "#fake run echo hi");
    expect(record.tasks[0]!.status, record.tasks[0]!.error ?? "").toBe("succeeded");
    expect(record.tasks[0]!.engine).toBe("eng-1");
  }, 300_000);

  it("a tag the registry does not have stops the start with IMAGE_MISSING naming the engine, the image and the fix", async () => {
    const ref = `${registry.at("127.0.0.1")}/${NS}/ok:dev-nope`;
    const e = (await pools.start({ workers: [{ name: "default", image: ref, pull: true }], engines: [{ name: "local" }] }).then(
      () => null,
      (x: unknown) => x,
    )) as (Error & { code?: string }) | null;
    expect(e?.code).toBe("IMAGE_MISSING");
    expect(e?.message).toContain(`Docker engine at /var/run/docker.sock could not pull ${ref}: manifest for ${ref} not found`);
    expect(e?.message).toContain("the registry has no such image or tag: push it there, or fix the tag in the profile's image");
  }, 120_000);

  it("a registry that does not listen keeps the test engine down, naming it, the image and the fix", async () => {
    const ref = `${ENG1_ROOT}:${await closedPort()}/${NS}/ok:dev`;
    const { pool, eng1 } = await eng1Pulling(ref); // the main engine has it: only eng-1 pulls
    expect(eng1?.state).toBe("down");
    expect(eng1?.reason).toContain(`Docker engine "eng-1" (${remote[0]!.host}) could not pull ${ref}`);
    expect(eng1?.reason).toMatch(/connection refused/);
    expect(eng1?.reason).toContain("this engine cannot reach the registry");
    const record = await runTask(pool, "#fake run echo never");
    expect(record.tasks[0]!.status).toBe("failed");
    expect(record.tasks[0]!.error).toContain("eng-1");
  }, 120_000);

  it("a registry that asks for credentials: refused without registry_auth, naming the fix; pulled with it", async () => {
    const locked = await startRegistry(["127.0.0.1"], { basicAuth: { username: "cmw", password: `pw-${RUN}` } });
    try {
      await tagOnMain(`${registry.at("127.0.0.1")}/${NS}/ok:dev`); // the main engine has ok:dev to serve
      await locked.add(`${registry.at("127.0.0.1")}/${NS}/ok:dev`, `${NS}/locked`, "dev");
      const ref = `${locked.at("127.0.0.1")}/${NS}/locked:dev`;
      const e = (await pools.start({ workers: [{ name: "default", image: ref, pull: true }] }).then(
        () => null,
        (x: unknown) => x,
      )) as (Error & { code?: string }) | null;
      expect(e?.code).toBe("IMAGE_MISSING");
      expect(e?.message).toContain(`could not pull ${ref}`);
      expect(e?.message).toContain("the registry refused the credentials: give the profile registry_auth");
      const dir = mkdtempSync(path.join(os.tmpdir(), "cmw-regauth-"));
      const auth = path.join(dir, "registry.json");
      writeFileSync(auth, JSON.stringify({ username: "cmw", password: `pw-${RUN}` }), { mode: 0o600 });
      await pools.start({ workers: [{ name: "default", image: ref, pull: true, registry_auth: auth }] });
      expect((await main.imageInspect(ref))?.id).toBe(okId);
      expect(locked.hits.some((h) => h.path.endsWith("/manifests/dev") && h.status === 200)).toBe(true);
      rmSync(dir, { recursive: true, force: true });
    } finally {
      await locked.close();
    }
  }, 180_000);

  it("an image whose ID differs from the main engine's is refused on the test engine", async () => {
    // The main engine has drift:dev as ok:dev is; the registry serves another image under that name.
    const ref = `${registry.at(ENG1_ROOT)}/${NS}/drift:dev`;
    const { pool, eng1 } = await eng1Pulling(ref);
    expect(eng1?.state).toBe("down");
    expect(eng1?.reason).toBe(
      `Docker engine "eng-1" (${remote[0]!.host}) has ${ref} as ${otherId}, not ${okId} as on Docker engine at /var/run/docker.sock; the registry's copy differs from the one on Docker engine at /var/run/docker.sock: push that one to the registry (docker push ${ref}), or remove it there (docker rmi ${ref}) so that it is pulled too`,
    );
    const record = await runTask(pool, "#fake run echo never");
    expect(record.tasks[0]!.status).toBe("failed");
  }, 120_000);
});
