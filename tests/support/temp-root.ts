// Global setup for both test projects: the run's own temp root, removed when the run ends. Every
// cmw-* directory a test makes (workspaces, CODEX_HOMEs, state dirs, child brokers' dirs) is made
// under it (see use-temp-root.ts), so a run leaves nothing in the system's temp dir and removes
// only what it made: another run on the same machine has a root of its own.
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { TestProject } from "vitest/node";

declare module "vitest" {
  export interface ProvidedContext {
    tempRoot: string;
  }
}

let root: string | undefined;

export function setup(project: TestProject): void {
  root = mkdtempSync(path.join(os.tmpdir(), "cmw-run-"));
  chmodSync(root, 0o755); // workers run as another uid and must reach the workspaces inside
  project.provide("tempRoot", root);
}

export function teardown(): void {
  if (!root) return;
  try {
    rmSync(root, { recursive: true, force: true, maxRetries: 3 });
  } catch (e) {
    throw new Error(`cannot remove this run's temp root ${root}: ${(e as Error).message}`, { cause: e });
  }
}
