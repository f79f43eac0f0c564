// What the isolated-workspace tests share: a git workspace owned by the container's user, a
// mission run to its end through a runner of its own, and a task's stored artifact.
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { validateMission } from "../../../src/mission/load.js";
import { MissionRunner } from "../../../src/mission/runner.js";
import type { MissionInput } from "../../../src/mission/schema.js";
import type { WorkerPool } from "../../../src/pool/pool.js";
import { StateStore, type MissionRecord, type TaskRecord } from "../../../src/state/store.js";
import { CONTAINER_GID, CONTAINER_UID, makeWorkspace } from "./env.js";

/** A git workspace: f.txt ("base") and `setup`'s files committed, all owned by the container's user. */
export function gitWorkspace(setup: (ws: string) => void = () => {}): string {
  const ws = makeWorkspace();
  writeFileSync(path.join(ws, "f.txt"), "base\n");
  setup(ws);
  const git = (...args: string[]): string => execFileSync("git", ["-c", "safe.directory=*", "-C", ws, ...args], { encoding: "utf8" });
  git("init", "-q");
  git("add", ".");
  git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base");
  execFileSync("chown", ["-R", `${CONTAINER_UID}:${CONTAINER_GID}`, ws]);
  return ws;
}

/** Runs a mission named `name` on `ws` to its end; its record and the store it is in. */
export async function runMission(pool: WorkerPool, ws: string, name: string, mission: Omit<MissionInput, "name">): Promise<{ record: MissionRecord; store: StateStore }> {
  const store = new StateStore(pool.config.stateDir);
  const runner = new MissionRunner(pool, store);
  const { done } = runner.start(validateMission({ name, ...mission }, pool.config), { workspace: ws });
  return { record: await done, store };
}

/** A task's artifact as stored, by its path in the task's artifacts. */
export const stored = (store: StateStore, m: MissionRecord, t: TaskRecord, rel: string): string => readFileSync(path.join(store.missionDir(m.missionId), "artifacts", t.id, rel), "utf8");
