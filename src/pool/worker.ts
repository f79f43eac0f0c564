// A worker as the pool holds it: one container of a key on a CODEX_HOME slot, its lanes, its
// relay grant and driver, and what the relay tells about it (usage by thread, refused egress),
// with the notes a turn gets from them.
import type { Readable } from "node:stream";
import type { NetworkMode, SandboxMode, WorkerProfile } from "../config/schema.js";
import type { CodexDriver } from "../codex/driver.js";
import type { EgressRefusal } from "../relay/egress.js";
import type { RelayGrant } from "../relay/model-relay.js";
import { addUsage, ZERO_USAGE, type TokenUsage, type Usage } from "../relay/usage.js";
import type { WorkerContainer } from "../worker/container.js";
import type { RelayLink } from "../worker/relay-link.js";

/** A token budget (the runner's): asked before each model call of a turn, told each answer's usage. */
export interface TurnBudget {
  /** Why the next model call must be refused (the budget is spent), or null to let it through. */
  refusal(): string | null;
  /** An answer's usage, as the relay metered it. */
  spend(u: TokenUsage): void;
}

/** A CODEX_HOME directory on the host; a replacement container of a dead one takes it over. */
export interface Slot {
  id: string;
  key: string;
  /** The host directory of its CODEX_HOME: mounted on a local engine; on a remote one, what is copied into `home`. */
  dir: string;
  /** The engine its CODEX_HOME (and isolated copy) is on. */
  engine: string;
  /** On a remote engine: the named volume holding its CODEX_HOME, seeded through the engine API. */
  home?: string | undefined;
  worker: Worker | null;
  /** An isolated task's workspace volume: mounted by every container of the slot, removed with the slot's last one. */
  volume?: string | undefined;
  /**
   * How many holders have yet to read its copy back (the task that made it, and each reply
   * under way; each unpins once): while above 0, its container is neither evicted nor stopped idle.
   */
  pins: number;
  /** Makes the copy that fills `volume` (the volume is made by the slot's first container, on its engine). */
  copy?: (() => Promise<(user: { uid: number; gid: number }, prefix: string) => Readable>) | undefined;
  /** The volume has been made and filled. */
  filled?: boolean | undefined;
}

export interface Worker {
  key: string;
  /** The engine its container runs on. */
  engine: string;
  profile: WorkerProfile;
  workspace: string;
  sandbox: SandboxMode;
  network: NetworkMode;
  allow: string[];
  relay: RelayLink | null;
  grant: RelayGrant | null;
  /** Usage the relay metered, by Codex thread, with the model that last answered it. */
  usageByThread: Map<string, { usage: TokenUsage; model: string | null }>;
  /** The budgets of the turns in flight, by their Codex thread. */
  budgets: Map<string, TurnBudget>;
  /** The turns in flight, told of each connection the egress proxy refuses. */
  listeners: Set<(r: EgressRefusal) => void>;
  slot: Slot;
  container: WorkerContainer;
  driver: CodexDriver | null;
  /** Busy flags, one per unit of capacity. */
  lanes: boolean[];
  lastUsed: number;
  dead: boolean;
  ready: Promise<void>;
  removing: boolean;
  /** Started to keep a warm floor or a spare, not for a waiting turn. */
  ahead: boolean;
  /** A spare: started ahead with an empty workspace volume, waiting for a task on a copy (none has taken it yet). */
  spare?: boolean | undefined;
  /** Turns granted a lane on it so far. */
  turns: number;
  /** Set when the pool gave up on a live container (frozen): its turns end `lost` with this reason. */
  lostReason?: string;
  /** Set when its engine went down: its turns fail `engine_down` with this reason. */
  engineDown?: string;
  /** The container's OOM kills already accounted to a turn. */
  oomKillsSeen: number;
}

/** The relay metered an answer on this worker's container: counted to the thread it named. */
export function meterUsage(worker: Worker, u: Usage): void {
  const key = u.threadId ?? "";
  const seen = worker.usageByThread.get(key);
  worker.usageByThread.set(key, { usage: addUsage(seen?.usage ?? ZERO_USAGE, u), model: u.model ?? seen?.model ?? null });
  if (u.threadId) worker.budgets.get(u.threadId)?.spend(u);
}

/** Notes for a turn in which `killed` commands died of SIGKILL, if the kernel's OOM killer did it. */
export async function oomNotes(worker: Worker, killed: number): Promise<string[]> {
  const total = await worker.container.oomKills();
  if (total === null || total <= worker.oomKillsSeen) return [];
  const n = total - worker.oomKillsSeen;
  worker.oomKillsSeen = total;
  const limit = Math.round(worker.profile.memory / 1024 / 1024);
  return [`out of memory: the kernel killed ${n} process${n > 1 ? "es" : ""} in container ${worker.container.name} for exceeding its memory limit (${limit} MiB; workers.memory), and ${killed} command${killed > 1 ? "s" : ""} of this turn ended by SIGKILL (exit code 137)`];
}

/** One note per refused target: what was refused, why, and how often. */
export function refusalNotes(refusals: EgressRefusal[]): string[] {
  const byTarget = new Map<string, { reason: string; count: number }>();
  for (const r of refusals) {
    const seen = byTarget.get(r.target);
    if (seen) seen.count++;
    else byTarget.set(r.target, { reason: r.reason, count: 1 });
  }
  return [...byTarget].map(([target, { reason, count }]) => `egress refused: ${target}${count > 1 ? ` (${count} times)` : ""}: ${reason}`);
}
