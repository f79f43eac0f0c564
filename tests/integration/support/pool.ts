// Builds worker pools for tests: the rehearsal image (real Codex inside), network none, a state
// directory and auth file of their own, and the test label on every container.
import { chmodSync, mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach } from "vitest";
import { resolveConfig } from "../../../src/config/load.js";
import type { WrapperConfig } from "../../../src/config/schema.js";
import { DockerRuntime } from "../../../src/runtime/docker.js";
import { WorkerPool, type PoolOptions } from "../../../src/pool/pool.js";
import { INSTANCE_PREFIX, PREFIX, REHEARSAL_IMAGE, removeTestContainers, TEST_API_KEY, TEST_LABEL } from "./env.js";

export const docker = new DockerRuntime();

export interface TestPoolOptions {
  label?: string;
  channel?: "dev" | "release";
  workers?: Record<string, unknown>[];
  auth?: unknown;
  stateDir?: string;
  /** More [broker] keys. */
  broker?: Record<string, unknown>;
  /** [[engines]] entries, as wrapper.toml has them. */
  engines?: Record<string, unknown>[];
  run: string;
  pool?: Partial<PoolOptions>;
}

export function testConfig(o: Omit<TestPoolOptions, "pool">): WrapperConfig {
  const dir = mkdtempSync(path.join(os.tmpdir(), "cmw-pool-"));
  const authFile = path.join(dir, "auth.json");
  writeFileSync(authFile, JSON.stringify(o.auth ?? { OPENAI_API_KEY: TEST_API_KEY }));
  chmodSync(authFile, 0o600);
  const workers = (o.workers ?? [{ name: "default" }]).map((w) => ({ image: REHEARSAL_IMAGE, network: "none", memory: "1g", idle_timeout: 600, sandbox: "workspace-write", ...w }));
  return resolveConfig(
    {
      broker: { label: o.label ?? `${INSTANCE_PREFIX}-test-${o.run}`, channel: o.channel ?? "dev", state_dir: o.stateDir ?? path.join(dir, "state"), auth_file: authFile, allowed_workspace_roots: [os.tmpdir()], image_prefix: PREFIX, ...o.broker },
      workers,
      ...(o.engines ? { engines: o.engines } : {}),
    },
    "test",
    {},
  );
}

export async function startPool(o: TestPoolOptions): Promise<WorkerPool> {
  const pool = new WorkerPool({ config: testConfig(o), docker, extraLabels: { [TEST_LABEL]: o.run }, healthIntervalMs: 1000, ...o.pool });
  await pool.start();
  return pool;
}

/** The agent's `recall:` line parsed, from a final message. */
export function recalled(finalMessage: string | null): string[] {
  const line = (finalMessage ?? "").split("\n").find((l) => l.startsWith("recall: "));
  if (!line) throw new Error(`no recall line in ${JSON.stringify(finalMessage)}`);
  return JSON.parse(line.slice("recall: ".length)) as string[];
}

/**
 * One pool at a time for a test file: `fixture.start(...)` starts it; after each test it is shut
 * down, and after the file every container with the run's test label is removed (even on failure).
 */
export function poolFixture(run: string): { start: (o: Omit<TestPoolOptions, "run">) => Promise<WorkerPool> } {
  let pool: WorkerPool | undefined;
  afterEach(async () => {
    await pool?.shutdown();
    pool = undefined;
  });
  afterAll(() => removeTestContainers(run));
  return {
    start: async (o) => {
      pool = await startPool({ ...o, run });
      return pool;
    },
  };
}
