// Placement: which container and lane a turn gets, when a container is started (or an idle one
// evicted to make room), which CODEX_HOME slot a new container takes, what the warm floor starts
// and when an idle container may stop, and whether a task's preferred_worker is free. Pure
// decisions over plain data, no I/O: the pool gathers a view of its containers, asks, and
// carries the answer out. A new dimension of placement (an engine) is one more field of the view.
import type { NetworkMode, SandboxMode, WorkerProfile } from "../config/schema.js";

/** What a turn needs: a container of its key; a reply also names its slot and, exec, its lane. */
export interface Want {
  profile: WorkerProfile;
  workspace: string;
  sandbox: SandboxMode;
  network: NetworkMode;
  allow: string[];
  key: string;
  slotId?: string | undefined;
  lane?: number | null | undefined;
  /** An isolated task's workspace volume (part of its key: no other task shares its containers). */
  volume?: string | undefined;
  /** The engine it must run on: a reply's (its conversation lives there). None: placement chooses. */
  engine?: string | undefined;
  /**
   * A new conversation whose workspace the caller can copy: it may then run on an engine that does
   * not see the workspace's path (a remote one), on its own copy. Without it, only engines that see it.
   */
  canCopy?: boolean | undefined;
}

/** An engine as placement sees it. */
export interface EngineView {
  name: string;
  /** Answering; when not, why (named in errors). */
  up: boolean;
  down?: string | undefined;
  /** This broker's containers on it now, over every profile. */
  containers: number;
  maxContainers: number;
  labels: readonly string[];
  /** Paths it sees where the broker does ("/" for a local engine). */
  sharedPaths: readonly string[];
}

/** The one engine of a broker with no [[engines]]: local, unbounded (profiles' max_containers bound it). */
export const LOCAL_ENGINE: EngineView = { name: "local", up: true, containers: 0, maxContainers: Number.MAX_SAFE_INTEGER, labels: [], sharedPaths: ["/"] };

/** Whether a profile may run on an engine: it names none, or the engine's name or one of its labels. */
export function engineFits(profile: Pick<WorkerProfile, "engines">, e: Pick<EngineView, "name" | "labels">): boolean {
  return profile.engines.length === 0 || profile.engines.some((x) => x === e.name || e.labels.includes(x));
}

/** Whether an engine sees a host path where the broker does (a bind mount of it works there). */
export function engineSees(e: Pick<EngineView, "sharedPaths">, workspace: string): boolean {
  return e.sharedPaths.some((p) => p === "/" || workspace === p || workspace.startsWith(p.endsWith("/") ? p : `${p}/`));
}

/**
 * The engine a new container of `want` goes to: the want's own engine (a reply's), else the
 * least-loaded engine that is up, fits the profile, has room and can hold the workspace (sees its
 * path, or the caller can copy it there); ties go to an engine that sees the path, then to config
 * order. `copy`: the container must run on a copy of the workspace. Null with `full`: every
 * fitting engine is full (wait); `refuse`: no fitting engine can ever take it now (fail, saying why).
 */
export function chooseEngine(want: Want, engines: readonly EngineView[]): { engine: EngineView; copy: boolean } | { full: true } | { refuse: string } {
  if (want.engine) {
    const e = engines.find((x) => x.name === want.engine);
    if (!e) return { refuse: `engine "${want.engine}", where this conversation lives, is no longer configured` };
    if (!e.up) return { refuse: `engine "${e.name}", where this conversation lives, is down${e.down ? `: ${e.down}` : ""}` };
    return e.containers < e.maxContainers ? { engine: e, copy: false } : { full: true };
  }
  const fitting = engines.filter((e) => engineFits(want.profile, e));
  const holds = (e: EngineView): boolean => want.volume !== undefined || engineSees(e, want.workspace) || want.canCopy === true;
  const usable = fitting.filter((e) => e.up && holds(e));
  if (!usable.length) {
    const down = fitting.filter((e) => !e.up);
    if (down.length) return { refuse: `no engine for profile "${want.profile.name}" is up: ${down.map((e) => `engine "${e.name}" is down${e.down ? ` (${e.down})` : ""}`).join("; ")}` };
    return { refuse: `no engine for profile "${want.profile.name}" sees ${want.workspace} (a remote engine runs a task on its own copy, which this turn cannot have)` };
  }
  const open = usable.filter((e) => e.containers < e.maxContainers);
  if (!open.length) return { full: true };
  const sees = (e: EngineView): number => (want.volume === undefined && engineSees(e, want.workspace) ? 0 : 1);
  const best = open.reduce((a, b) => (b.containers / b.maxContainers < a.containers / a.maxContainers || (b.containers / b.maxContainers === a.containers / a.maxContainers && sees(b) < sees(a)) ? b : a));
  return { engine: best, copy: want.volume === undefined && !engineSees(best, want.workspace) };
}

/** A live container (not dead, not being removed) of the wanted profile, as placement sees it. */
export interface ContainerView {
  key: string;
  /** The engine it runs on (none: the only one). */
  engine?: string | undefined;
  slotId: string;
  /** Busy flags, one per unit of capacity. */
  lanes: readonly boolean[];
  /** Its Codex has answered (a container still starting is never evicted). */
  ready: boolean;
  /** Holds an isolated copy not yet read back (never evicted). */
  pinned?: boolean | undefined;
}

/** A CODEX_HOME slot: its key, and whether a container holds it (one being removed still does, until it is gone). */
export interface SlotView {
  id: string;
  key: string;
  held: boolean;
  /** The engine its CODEX_HOME is on (a reply's container must start there). */
  engine?: string | undefined;
}

/** What a turn gets now: a lane of a live container, a container to start, or a wait. */
export type Placement<C> =
  | { kind: "lane"; container: C; lane: number }
  /**
   * Start a container on this slot (null: a new one) on `engine`, after removing `evict` when there
   * is no room; `copy`: on a copy of the workspace (the engine does not see its path).
   */
  | { kind: "start"; slotId: string | null; lane: number; evict?: C | undefined; engine: string; copy: boolean }
  | { kind: "wait" }
  /** No engine can take it now: fail the turn with this reason. */
  | { kind: "refuse"; reason: string };

/** The identity of what a container serves: turns of one key share containers. */
export const keyOf = (profile: string, workspace: string, sandbox: string, network: NetworkMode = "none", allow: string[] = [], volume = ""): string =>
  [profile, workspace, sandbox, network, allow.join(","), ...(volume ? [volume] : [])].join("\u0000");

/** The network a turn gets: what it asks, else "allowlist" if it names hosts, else the profile's. */
export function networkOf(profile: WorkerProfile, network: NetworkMode | undefined, allow: string[] | undefined): { network: NetworkMode; allow: string[] } {
  const mode = network ?? (allow?.length ? "allowlist" : profile.network);
  return { network: mode, allow: mode === "allowlist" ? [...new Set([...profile.allow, ...(allow ?? [])])].sort() : [] };
}

/**
 * Where a turn goes, given the live containers of its profile and the slots. A reply goes to the
 * container holding its slot (its own lane for exec), or a new container on that slot. A new
 * conversation takes the least busy container of its key with a free lane (of equally busy ones,
 * the one on the engine listed first), else a new container
 * on a free slot of its key. Without room (max_containers), an idle ready container of another
 * key is evicted; else the turn waits.
 */
export function place<C extends ContainerView>(want: Want, live: readonly C[], slots: readonly SlotView[], engines: readonly EngineView[] = [LOCAL_ENGINE]): Placement<C> {
  const fixedLane = want.lane !== undefined && want.lane !== null ? want.lane : null;
  const freeLane = (c: C): number => (fixedLane !== null ? (c.lanes[fixedLane] ? -1 : fixedLane) : c.lanes.indexOf(false));
  const room = live.length < want.profile.max_containers;
  const idle = (c: C): boolean => c.key !== want.key && c.lanes.every((b) => !b) && c.ready && !c.pinned;
  const start = (slotId: string | null, lane: number): Placement<C> => {
    // A replacement on a slot starts where the slot's CODEX_HOME is.
    const slotEngine = slotId ? slots.find((s) => s.id === slotId)?.engine : undefined;
    const w = slotEngine && !want.engine ? { ...want, engine: slotEngine } : want;
    const chosen = chooseEngine(w, engines);
    if ("refuse" in chosen) return { kind: "refuse", reason: chosen.refuse };
    if ("engine" in chosen && room) return { kind: "start", slotId, lane, engine: chosen.engine.name, copy: chosen.copy };
    // No room for the profile or on the engines: an idle container of another key makes room for
    // the profile and on its engine.
    for (const c of live.filter(idle)) {
      const freed = engines.map((e) => (e.name === (c.engine ?? LOCAL_ENGINE.name) ? { ...e, containers: e.containers - 1 } : e));
      const again = chooseEngine(w, freed);
      if ("engine" in again) return { kind: "start", slotId, lane, engine: again.engine.name, copy: again.copy, evict: c };
    }
    return { kind: "wait" };
  };

  if (want.slotId) {
    const holder = live.find((c) => c.slotId === want.slotId);
    if (holder) {
      const lane = freeLane(holder);
      return lane >= 0 ? { kind: "lane", container: holder, lane } : { kind: "wait" };
    }
    return start(want.slotId, fixedLane ?? 0);
  }

  const busy = (c: C): number => c.lanes.filter(Boolean).length;
  // Equally busy containers: the engine first in wrapper.toml (the broker's own, as a rule) wins,
  // not whichever container happened to start first. A turn there costs less (the relay on the
  // container's loopback, Codex's stdio on a local socket) than through a further engine's API
  // (the relay through an exec's stdio and the engine: a few ms a model request); with more work
  // than one engine's lanes, the least busy containers take it wherever they are.
  const order = new Map(engines.map((e, i) => [e.name, i]));
  const rank = (c: C): number => order.get(c.engine ?? LOCAL_ENGINE.name) ?? engines.length;
  const candidates = live.filter((c) => c.key === want.key).map((c) => ({ c, lane: freeLane(c) })).filter((x) => x.lane >= 0);
  candidates.sort((a, b) => busy(a.c) - busy(b.c) || rank(a.c) - rank(b.c));
  if (candidates[0]) return { kind: "lane", container: candidates[0].c, lane: candidates[0].lane };
  return start(freeSlot(want.key, slots), 0);
}

/** A slot of this key that no live container holds (a dead container's CODEX_HOME), else null. */
export function freeSlot(key: string, slots: readonly SlotView[]): string | null {
  return slots.find((s) => s.key === key && !s.held)?.id ?? null;
}

/**
 * Grants waiters in arrival order, each what it can have now (asked in turn, so an earlier grant
 * is seen by the next ask); the rest keep waiting in order. A waiter whose ask throws is removed
 * and failed.
 *
 * `alike` names waiters that want the same thing (new conversations of one key): once one of them
 * must wait, the later ones are not asked in this pass, since a grant only ever takes room, never
 * makes it. So a pass over a queue of 200 tasks of one key asks about as many times as it grants,
 * not 200 times (each ask looks at every container and slot).
 */
export function drainQueue<W, G>(queue: W[], ask: (w: W) => G | null, grant: (w: W, g: G) => void, fail: (w: W, e: Error) => void, alike?: (w: W) => string | null): void {
  const waiting = new Set<string>();
  for (let i = 0; i < queue.length; ) {
    const waiter = queue[i]!;
    const kind = alike?.(waiter) ?? null;
    if (kind !== null && waiting.has(kind)) {
      i++;
      continue;
    }
    let granted: G | null;
    try {
      granted = ask(waiter);
    } catch (e) {
      queue.splice(i, 1);
      fail(waiter, e as Error);
      continue;
    }
    if (granted !== null) {
      queue.splice(i, 1);
      grant(waiter, granted);
    } else {
      if (kind !== null) waiting.add(kind);
      i++;
    }
  }
}

/** A live container as the warm floor counts it. */
export interface FloorView {
  profile: string;
  key: string;
}

/** A warm key whose last start failed: failures in a row, and when to try again. */
export interface WarmFailure {
  count: number;
  retryAt: number;
}

/**
 * The containers to start so that each warm key has its profile's `warm` live containers, within
 * max_containers (a start for one key leaves less room for the next key of its profile), and when
 * to look again for keys still backing off after failed starts (null: none is).
 */
export function warmStarts(floors: Iterable<Want>, live: readonly FloorView[], failures: ReadonlyMap<string, WarmFailure>, now: number): { starts: Want[]; retryAt: number | null } {
  const starts: Want[] = [];
  const startedBy = new Map<string, number>();
  let retryAt = Infinity;
  for (const want of floors) {
    const started = startedBy.get(want.profile.name) ?? 0;
    const mine = live.filter((c) => c.profile === want.profile.name);
    let have = mine.filter((c) => c.key === want.key).length + starts.filter((s) => s.key === want.key).length;
    let room = want.profile.max_containers - mine.length - started;
    if (have >= want.profile.warm || room <= 0) continue;
    const failed = failures.get(want.key);
    if (failed && failed.retryAt > now) {
      retryAt = Math.min(retryAt, failed.retryAt);
      continue;
    }
    while (have < want.profile.warm && room > 0) {
      starts.push(want);
      startedBy.set(want.profile.name, (startedBy.get(want.profile.name) ?? 0) + 1);
      have++;
      room--;
    }
  }
  return { starts, retryAt: retryAt === Infinity ? null : retryAt };
}

/** After a failed start of a warm key: retried later, backing off 5 s, 10 s, … up to a minute. */
export function warmBackoff(previous: WarmFailure | undefined, now: number): WarmFailure {
  const count = (previous?.count ?? 0) + 1;
  return { count, retryAt: now + Math.min(60_000, 5_000 * 2 ** (count - 1)) };
}

/** Whether removing this container would take its key below the warm floor. */
export function holdsWarmFloor(c: FloorView, warm: number, isWarmKey: boolean, live: readonly FloorView[]): boolean {
  if (!isWarmKey) return false;
  return live.filter((o) => o.profile === c.profile && o.key === c.key).length <= warm;
}

/** Whether an idle container has outlived its profile's idle_timeout (and holds no warm floor). */
export function idleExpired(c: { lanes: readonly boolean[]; lastUsed: number; idleTimeoutMs: number }, now: number, holdsFloor: boolean): boolean {
  return c.lanes.every((b) => !b) && now - c.lastUsed > c.idleTimeoutMs && !holdsFloor;
}

/** A container as preferred_worker sees it: every one the pool holds (starting, ready or being removed). */
export interface LoadView {
  profile: string;
  inFlight: number;
  capacity: number;
}

/**
 * The profile a new task runs on: its preferred_worker when that profile has a free lane or room
 * for a container, else its profile (none: the pool's first).
 */
export function chooseProfile(preferred: string | undefined, profile: string | undefined, profiles: readonly WorkerProfile[], load: readonly LoadView[]): string | undefined {
  if (!preferred) return profile;
  const p = profiles.find((w) => w.name === preferred);
  if (!p) return profile;
  const mine = load.filter((c) => c.profile === preferred);
  const free = mine.some((c) => c.inFlight < c.capacity) || mine.length < p.max_containers;
  return free ? preferred : profile;
}

/**
 * A spare container as placement sees it: started ahead on an engine with an empty workspace
 * volume and its Codex up (or coming up), for a new conversation on a copy of a workspace not
 * known ahead. `user` is the uid:gid it runs as.
 */
export interface SpareView {
  profile: string;
  engine: string;
  sandbox: SandboxMode;
  network: NetworkMode;
  allow: readonly string[];
  user: string;
  /** Its Codex has answered (one still starting can be taken too: the task waits for less). */
  ready: boolean;
}

/**
 * The spare a new conversation on a copy takes: one of its profile, sandbox, network (and
 * allowlist) and user, on an engine that is up (on `engine` when placement already chose one for
 * the copy); a ready one before one still starting, then the least-loaded engine, then config
 * order. Null: none fits (the conversation starts a container of its own, as without spares).
 */
export function chooseSpare<S extends SpareView>(want: Pick<Want, "sandbox" | "network" | "allow"> & { profile: string; user: string; engine?: string | undefined }, spares: readonly S[], engines: readonly EngineView[]): S | null {
  const order = new Map(engines.map((e, i) => [e.name, i]));
  const load = (s: S): number => {
    const e = engines.find((x) => x.name === s.engine)!;
    return e.containers / e.maxContainers;
  };
  const fits = spares.filter(
    (s) =>
      s.profile === want.profile &&
      s.sandbox === want.sandbox &&
      s.network === want.network &&
      s.allow.join(",") === want.allow.join(",") &&
      s.user === want.user &&
      (want.engine === undefined || s.engine === want.engine) &&
      engines.some((e) => e.name === s.engine && e.up),
  );
  fits.sort((a, b) => Number(b.ready) - Number(a.ready) || load(a) - load(b) || order.get(a.engine)! - order.get(b.engine)!);
  return fits[0] ?? null;
}

/** A live container as the spare top-up counts it. */
export interface SpareCount {
  profile: string;
  engine: string;
  spare: boolean;
}

/** The key of a profile's spares on an engine: their start failures back off together. */
export const spareKey = (profile: string, engine: string): string => `${profile}\u0000${engine}`;

/**
 * The spares to start so that each profile with `spare = N` has N on every engine that is up and
 * fits it, within its max_containers and each engine's room (other containers count too, and a
 * start leaves less room for the next), never for a profile whose turns wait for room (demand
 * first), and when to look again for a profile and engine still backing off after failed starts
 * (failures are keyed `profile\0engine`; null: none is).
 */
export function spareStarts(
  profiles: readonly Pick<WorkerProfile, "name" | "spare" | "max_containers" | "engines">[],
  engines: readonly EngineView[],
  live: readonly SpareCount[],
  waiting: ReadonlySet<string>,
  failures: ReadonlyMap<string, WarmFailure>,
  now: number,
): { starts: { profile: string; engine: string }[]; retryAt: number | null } {
  const starts: { profile: string; engine: string }[] = [];
  let retryAt = Infinity;
  for (const p of profiles) {
    if (p.spare === 0 || waiting.has(p.name)) continue;
    let room = p.max_containers - live.filter((c) => c.profile === p.name).length;
    for (const e of engines) {
      if (!e.up || !engineFits(p, e)) continue;
      const failed = failures.get(spareKey(p.name, e.name));
      if (failed && failed.retryAt > now) {
        retryAt = Math.min(retryAt, failed.retryAt);
        continue;
      }
      let have = live.filter((c) => c.profile === p.name && c.engine === e.name && c.spare).length;
      let engineRoom = e.maxContainers - e.containers - starts.filter((s) => s.engine === e.name).length;
      while (have < p.spare && room > 0 && engineRoom > 0) {
        starts.push({ profile: p.name, engine: e.name });
        have++;
        room--;
        engineRoom--;
      }
    }
  }
  return { starts, retryAt: retryAt === Infinity ? null : retryAt };
}
