// Placement decisions without Docker: plain views of containers and slots in, a decision out.
import { describe, expect, it } from "vitest";
import { WorkerProfileSchema, type WorkerProfile } from "../../../src/config/schema.js";
import {
  chooseEngine,
  chooseProfile,
  chooseSpare,
  engineFits,
  engineSees,
  drainQueue,
  freeSlot,
  holdsWarmFloor,
  idleExpired,
  keyOf,
  networkOf,
  place,
  spareStarts,
  warmBackoff,
  warmStarts,
  type ContainerView,
  type EngineView,
  type Placement,
  type SlotView,
  type SpareView,
  type Want,
} from "../../../src/pool/placement.js";

function profile(o: Partial<Record<string, unknown>> & { name: string }): WorkerProfile {
  const p = WorkerProfileSchema.parse(o);
  return { ...p, image: "x/worker:dev", network: "none" };
}

const P = profile({ name: "p", capacity: 2, max_containers: 2 });
const want = (workspace: string, extra: Partial<Want> = {}, p: WorkerProfile = P): Want => ({ profile: p, workspace, sandbox: "read-only", network: "none", allow: [], key: keyOf(p.name, workspace, "read-only"), ...extra });
const A = want("/a");
const B = want("/b");

interface C extends ContainerView {
  name: string;
}
const c = (name: string, key: string, slotId: string, lanes: boolean[], ready = true): C => ({ name, key, slotId, lanes, ready });
const slot = (id: string, key: string, held: boolean): SlotView => ({ id, key, held });

/** A decision with the container named, for readable expectations. */
const named = (d: Placement<C>): unknown => (d.kind === "lane" ? { kind: "lane", container: d.container.name, lane: d.lane } : d.kind === "start" ? { kind: "start", slotId: d.slotId, lane: d.lane, evict: d.evict?.name } : d);

describe("place", () => {
  const cases: { name: string; want: Want; live: C[]; slots: SlotView[]; expected: unknown }[] = [
    { name: "a new conversation starts a container on a new slot when none serves its key", want: A, live: [], slots: [], expected: { kind: "start", slotId: null, lane: 0, evict: undefined } },
    { name: "a new conversation reuses the free slot of its key (a dead container's CODEX_HOME)", want: A, live: [], slots: [slot("s1", B.key, false), slot("s2", A.key, false)], expected: { kind: "start", slotId: "s2", lane: 0, evict: undefined } },
    { name: "a held slot of its key is not reused", want: A, live: [c("w1", A.key, "s1", [true, true])], slots: [slot("s1", A.key, true)], expected: { kind: "start", slotId: null, lane: 0, evict: undefined } },
    { name: "a new conversation takes a free lane of a container of its key", want: A, live: [c("w1", A.key, "s1", [true, false])], slots: [], expected: { kind: "lane", container: "w1", lane: 1 } },
    {
      name: "the least busy container of its key wins",
      want: A,
      live: [c("w1", A.key, "s1", [true, false, true]), c("w2", A.key, "s2", [false, false, true])],
      slots: [],
      expected: { kind: "lane", container: "w2", lane: 0 },
    },
    { name: "containers of another key are not shared", want: A, live: [c("w1", B.key, "s1", [false, false])], slots: [], expected: { kind: "start", slotId: null, lane: 0, evict: undefined } },
    {
      name: "without room an idle ready container of another key is evicted",
      want: A,
      live: [c("w1", B.key, "s1", [true, false]), c("w2", B.key, "s2", [false, false])],
      slots: [],
      expected: { kind: "start", slotId: null, lane: 0, evict: "w2" },
    },
    {
      name: "an isolated task's container whose copy is not yet read back (pinned) is never evicted",
      want: A,
      live: [{ ...c("w1", B.key, "s1", [false, false]), pinned: true }, c("w2", B.key, "s2", [true, false])],
      slots: [],
      expected: { kind: "wait" },
    },
    {
      name: "an isolated task (its volume in its key) shares no container, not even an idle one of its workspace",
      want: { ...A, key: keyOf(P.name, "/a", "read-only", "none", [], "vol1"), volume: "vol1" },
      live: [c("w1", A.key, "s1", [false, false])],
      slots: [slot("s1", A.key, false)],
      expected: { kind: "start", slotId: null, lane: 0, evict: undefined },
    },
    { name: "a container still starting is never evicted", want: A, live: [c("w1", B.key, "s1", [false, false], false), c("w2", B.key, "s2", [true, false])], slots: [], expected: { kind: "wait" } },
    { name: "without room or an idle container the turn waits", want: A, live: [c("w1", A.key, "s1", [true, true]), c("w2", B.key, "s2", [true, false])], slots: [], expected: { kind: "wait" } },
    { name: "a reply goes to the container that holds its slot", want: { ...A, slotId: "s2" }, live: [c("w1", A.key, "s1", [false, false]), c("w2", A.key, "s2", [true, false])], slots: [], expected: { kind: "lane", container: "w2", lane: 1 } },
    { name: "a reply waits for its busy holder rather than go elsewhere", want: { ...A, slotId: "s2" }, live: [c("w1", A.key, "s1", [false, false]), c("w2", A.key, "s2", [true, true])], slots: [], expected: { kind: "wait" } },
    { name: "an exec reply keeps its lane", want: { ...A, slotId: "s1", lane: 1 }, live: [c("w1", A.key, "s1", [false, true])], slots: [], expected: { kind: "wait" } },
    { name: "an exec reply gets its own lane when free", want: { ...A, slotId: "s1", lane: 1 }, live: [c("w1", A.key, "s1", [true, false])], slots: [], expected: { kind: "lane", container: "w1", lane: 1 } },
    { name: "a reply whose container died starts a replacement on its slot, on its lane", want: { ...A, slotId: "s9", lane: 1 }, live: [], slots: [slot("s9", A.key, false)], expected: { kind: "start", slotId: "s9", lane: 1, evict: undefined } },
    { name: "a replacement on a slot (no lane kept) uses lane 0", want: { ...A, slotId: "s9", lane: null }, live: [], slots: [], expected: { kind: "start", slotId: "s9", lane: 0, evict: undefined } },
    {
      name: "a replacement without room evicts an idle container of another key",
      want: { ...A, slotId: "s9" },
      live: [c("w1", B.key, "s1", [false, false]), c("w2", A.key, "s2", [true, true])],
      slots: [],
      expected: { kind: "start", slotId: "s9", lane: 0, evict: "w1" },
    },
    { name: "a replacement without room or an idle container waits", want: { ...A, slotId: "s9" }, live: [c("w1", B.key, "s1", [true, false]), c("w2", A.key, "s2", [false, false])], slots: [], expected: { kind: "wait" } },
  ];
  it.each(cases)("$name", ({ want: w, live, slots, expected }) => {
    expect(named(place(w, live, slots))).toEqual(expected);
  });
});

describe("keys, networks and slots", () => {
  it("gives a key per profile, workspace, sandbox and network", () => {
    expect(keyOf("p", "/a", "read-only")).toBe(keyOf("p", "/a", "read-only", "none", []));
    expect(new Set([keyOf("p", "/a", "read-only"), keyOf("q", "/a", "read-only"), keyOf("p", "/b", "read-only"), keyOf("p", "/a", "workspace-write"), keyOf("p", "/a", "read-only", "allowlist", ["x.org"])]).size).toBe(5);
  });

  it("reads the network a turn asks for, else allowlist for named hosts, else the profile's", () => {
    const q = { ...profile({ name: "q" }), network: "allowlist" as const, allow: ["b.org"] };
    expect(networkOf(P, undefined, undefined)).toEqual({ network: "none", allow: [] });
    expect(networkOf(P, undefined, ["z.org", "a.org"])).toEqual({ network: "allowlist", allow: ["a.org", "z.org"] });
    expect(networkOf(q, undefined, ["a.org", "b.org"])).toEqual({ network: "allowlist", allow: ["a.org", "b.org"] });
    expect(networkOf(q, "open", ["a.org"])).toEqual({ network: "open", allow: [] });
  });

  it("finds the first unheld slot of a key", () => {
    expect(freeSlot("k", [slot("1", "k", true), slot("2", "j", false), slot("3", "k", false), slot("4", "k", false)])).toBe("3");
    expect(freeSlot("k", [slot("1", "k", true)])).toBeNull();
  });
});

describe("the queue", () => {
  it("grants waiters in arrival order, keeps the rest in order, and fails those whose ask throws", () => {
    let free = 2;
    const queue = ["a", "b", "bad", "c", "d"];
    const granted: string[] = [];
    const failed: string[] = [];
    drainQueue(
      queue,
      (w) => {
        if (w === "bad") throw new Error("no profile");
        return w === "b" || free === 0 ? null : free--;
      },
      (w) => granted.push(w),
      (w, e) => failed.push(`${w}: ${e.message}`),
    );
    expect(granted).toEqual(["a", "c"]);
    expect(failed).toEqual(["bad: no profile"]);
    expect(queue).toEqual(["b", "d"]);
  });
});

describe("the queue, waiters alike", () => {
  it("asks no later waiter of a kind once one of that kind must wait, and still asks the others", () => {
    let free = 1;
    const queue = ["a1", "a2", "b1", "a3", "r1", "b2"];
    const asked: string[] = [];
    const granted: string[] = [];
    drainQueue(
      queue,
      (w) => {
        asked.push(w);
        if (w.startsWith("b")) return w;
        return free > 0 ? free-- : null;
      },
      (w) => granted.push(w),
      () => {},
      (w) => (w.startsWith("r") ? null : w[0]!),
    );
    expect(granted).toEqual(["a1", "b1", "b2"]);
    // a3 is not asked: a2 of its kind had to wait. r1 (a reply: no kind) is asked.
    expect(asked).toEqual(["a1", "a2", "b1", "r1", "b2"]);
    expect(queue).toEqual(["a2", "a3", "r1"]);
  });
});

describe("the warm floor", () => {
  const W = profile({ name: "w", warm: 2, max_containers: 3 });
  const X = want("/x", {}, W);
  const Y = want("/y", {}, W);

  it.each([
    { name: "starts up to `warm` containers for a key", floors: [X], live: [], expected: [X.key, X.key] },
    { name: "counts the key's live containers", floors: [X], live: [{ profile: "w", key: X.key }], expected: [X.key] },
    { name: "stops at max_containers, counting the starts of earlier keys", floors: [X, Y], live: [], expected: [X.key, X.key, Y.key] },
    { name: "counts other keys' containers against max_containers", floors: [X], live: [{ profile: "w", key: Y.key }, { profile: "w", key: Y.key }], expected: [X.key] },
    { name: "leaves other profiles out of the count", floors: [X], live: [{ profile: "other", key: "k" }], expected: [X.key, X.key] },
  ])("$name", ({ floors, live, expected }) => {
    const { starts, retryAt } = warmStarts(floors, live, new Map(), 0);
    expect({ keys: starts.map((s) => s.key), retryAt }).toEqual({ keys: expected, retryAt: null });
  });

  it("skips a key that is backing off and says when to look again", () => {
    const failures = new Map([[X.key, { count: 1, retryAt: 5_000 }]]);
    expect(warmStarts([X], [], failures, 1_000)).toEqual({ starts: [], retryAt: 5_000 });
    expect(warmStarts([X], [], failures, 5_000).starts).toHaveLength(2);
  });

  it("backs off 5 s, 10 s, 20 s … up to a minute", () => {
    const steps: number[] = [];
    let f = warmBackoff(undefined, 0);
    for (let i = 0; i < 6; i++, f = warmBackoff(f, 0)) steps.push(f.retryAt);
    expect(steps).toEqual([5_000, 10_000, 20_000, 40_000, 60_000, 60_000]);
  });

  it("keeps a container that holds its key's floor, and lets an idle one go past idle_timeout otherwise", () => {
    const live = [{ profile: "w", key: X.key }, { profile: "w", key: X.key }, { profile: "w", key: Y.key }];
    expect(holdsWarmFloor(live[0]!, 2, true, live)).toBe(true);
    expect(holdsWarmFloor(live[0]!, 1, true, live)).toBe(false);
    expect(holdsWarmFloor(live[2]!, 2, false, live)).toBe(false);
    expect(idleExpired({ lanes: [false, false], lastUsed: 0, idleTimeoutMs: 100 }, 101, false)).toBe(true);
    expect(idleExpired({ lanes: [false, false], lastUsed: 0, idleTimeoutMs: 100 }, 100, false)).toBe(false);
    expect(idleExpired({ lanes: [false, true], lastUsed: 0, idleTimeoutMs: 100 }, 101, false)).toBe(false);
    expect(idleExpired({ lanes: [false, false], lastUsed: 0, idleTimeoutMs: 100 }, 101, true)).toBe(false);
  });
});

describe("preferred_worker", () => {
  const fast = profile({ name: "fast", max_containers: 1 });
  const slow = profile({ name: "slow" });
  it.each([
    { name: "no preference: the task's profile", preferred: undefined, load: [], expected: "slow" },
    { name: "an unknown preference: the task's profile", preferred: "gone", load: [], expected: "slow" },
    { name: "room for a container: the preferred profile", preferred: "fast", load: [], expected: "fast" },
    { name: "a free lane: the preferred profile", preferred: "fast", load: [{ profile: "fast", inFlight: 3, capacity: 4 }], expected: "fast" },
    { name: "full and at max_containers: the task's profile", preferred: "fast", load: [{ profile: "fast", inFlight: 4, capacity: 4 }], expected: "slow" },
  ])("$name", ({ preferred, load, expected }) => {
    expect(chooseProfile(preferred, "slow", [fast, slow], load)).toBe(expected);
  });
});

describe("engines", () => {
  const e = (name: string, containers: number, o: Partial<EngineView> = {}): EngineView => ({ name, up: true, containers, maxContainers: 4, labels: [], sharedPaths: [], ...o });
  const local = (containers: number, o: Partial<EngineView> = {}): EngineView => e("local", containers, { sharedPaths: ["/"], ...o });
  const big = profile({ name: "big", engines: ["big"] });
  const named2 = (r: ReturnType<typeof chooseEngine>): unknown => ("engine" in r ? { engine: r.engine.name, copy: r.copy } : r);
  const cases: { name: string; want: Want; engines: EngineView[]; expected: unknown }[] = [
    { name: "the least-loaded engine with room, on a copy when it does not see the workspace", want: { ...A, canCopy: true }, engines: [local(2), e("r1", 1), e("r2", 3)], expected: { engine: "r1", copy: true } },
    { name: "load is relative to each engine's room", want: { ...A, canCopy: true }, engines: [local(2, { maxContainers: 8 }), e("r1", 2)], expected: { engine: "local", copy: false } },
    { name: "a tie goes to an engine that sees the workspace", want: { ...A, canCopy: true }, engines: [e("r1", 1), local(1)], expected: { engine: "local", copy: false } },
    { name: "without a copy, only engines that see the workspace", want: A, engines: [local(3), e("r1", 0)], expected: { engine: "local", copy: false } },
    { name: "a remote engine declaring the path shared needs no copy", want: A, engines: [local(3), e("r1", 0, { sharedPaths: ["/a"] })], expected: { engine: "r1", copy: false } },
    { name: "a path only sharing a prefix is not shared", want: want("/ab"), engines: [e("r1", 0, { sharedPaths: ["/a"] })], expected: { refuse: 'no engine for profile "p" sees /ab (a remote engine runs a task on its own copy, which this turn cannot have)' } },
    { name: "an isolated task always runs on its copy", want: { ...A, volume: "v1" }, engines: [local(1), e("r1", 0)], expected: { engine: "r1", copy: false } },
    { name: "down engines are skipped", want: { ...A, canCopy: true }, engines: [local(3), e("r1", 0, { up: false, down: "refused" })], expected: { engine: "local", copy: false } },
    { name: "full engines: wait", want: { ...A, canCopy: true }, engines: [local(4), e("r1", 4)], expected: { full: true } },
    { name: "a profile's label picks its engines", want: want("/a", { canCopy: true }, big), engines: [local(0), e("r1", 3, { labels: ["big"] })], expected: { engine: "r1", copy: true } },
    { name: "a profile whose engines are all down is refused, naming them", want: want("/a", { canCopy: true }, big), engines: [local(0), e("r1", 0, { labels: ["big"], up: false, down: "connect ECONNREFUSED" })], expected: { refuse: 'no engine for profile "big" is up: engine "r1" is down (connect ECONNREFUSED)' } },
    { name: "a reply goes to its conversation's engine even when another is emptier", want: { ...A, engine: "r1" }, engines: [local(0), e("r1", 3)], expected: { engine: "r1", copy: false } },
    { name: "a reply whose engine is down is refused, naming it", want: { ...A, engine: "r1" }, engines: [local(0), e("r1", 0, { up: false, down: "gone" })], expected: { refuse: 'engine "r1", where this conversation lives, is down: gone' } },
  ];
  it.each(cases)("$name", ({ want: w, engines, expected }) => {
    expect(named2(chooseEngine(w, engines))).toEqual(expected);
  });

  it("place starts a replacement on its slot's engine, and makes room on a full engine by evicting an idle container there", () => {
    const engines = [local(0), e("r1", 1, { maxContainers: 1 })];
    const onR1 = (name: string, key: string, slotId: string, lanes: boolean[]): C => ({ ...c(name, key, slotId, lanes), engine: "r1" });
    expect(place({ ...A, slotId: "s9" }, [], [{ id: "s9", key: A.key, held: false, engine: "r1" }], [local(0), e("r1", 0)])).toMatchObject({ kind: "start", slotId: "s9", engine: "r1" });
    const d = place({ ...A, engine: "r1", slotId: "s9" }, [onR1("w1", B.key, "s1", [false, false])], [{ id: "s9", key: A.key, held: false, engine: "r1" }], engines);
    expect(d).toMatchObject({ kind: "start", engine: "r1" });
    expect(d.kind === "start" && d.evict?.name).toBe("w1");
    expect(place({ ...A, engine: "r1", slotId: "s9" }, [onR1("w1", B.key, "s1", [true, false])], [], engines)).toEqual({ kind: "wait" });
  });

  it("a new conversation takes an equally busy container on the engine listed first, whatever order the containers started in; a less busy one elsewhere still wins", () => {
    const engines = [local(1), e("r1", 1), e("r2", 1)];
    const on = (name: string, engine: string, lanes: boolean[]): C => ({ ...c(name, A.key, `s-${name}`, lanes), engine });
    // The remote containers came up first (they are first in the pool's list).
    const idle = [on("w-r2", "r2", [false]), on("w-r1", "r1", [false]), on("w-local", "local", [false])];
    expect(named(place(A, idle, [], engines))).toEqual({ kind: "lane", container: "w-local", lane: 0 });
    expect(named(place(A, [on("w-r2", "r2", [false]), on("w-r1", "r1", [false])], [], engines))).toEqual({ kind: "lane", container: "w-r1", lane: 0 });
    // Load first: a busy local container gives way to an idle remote one.
    expect(named(place(A, [on("w-r1", "r1", [false, false]), on("w-local", "local", [true, false])], [], engines))).toEqual({ kind: "lane", container: "w-r1", lane: 0 });
  });

  it("profiles fit engines by name or label; a path is seen under a shared path", () => {
    expect(engineFits(big, { name: "x", labels: ["big"] })).toBe(true);
    expect(engineFits(big, { name: "big", labels: [] })).toBe(true);
    expect(engineFits(big, { name: "x", labels: ["small"] })).toBe(false);
    expect(engineFits(P, { name: "x", labels: [] })).toBe(true);
    expect(engineSees({ sharedPaths: ["/srv/"] }, "/srv/x")).toBe(true);
    expect(engineSees({ sharedPaths: ["/srv"] }, "/srv")).toBe(true);
    expect(engineSees({ sharedPaths: ["/srv"] }, "/srvx")).toBe(false);
  });
});

describe("spares", () => {
  const e = (name: string, containers: number, o: Partial<EngineView> = {}): EngineView => ({ name, up: true, containers, maxContainers: 4, labels: [], sharedPaths: [], ...o });
  interface S extends SpareView {
    name: string;
  }
  const sp = (name: string, engine: string, o: Partial<SpareView> = {}): S => ({ name, profile: "p", engine, sandbox: "read-only", network: "none", allow: [], user: "10001:10001", ready: true, ...o });
  const task = { profile: "p", sandbox: "read-only" as const, network: "none" as const, allow: [] as string[], user: "10001:10001" };
  const choose: { name: string; want: Parameters<typeof chooseSpare>[0]; spares: S[]; engines: EngineView[]; expected: string | null }[] = [
    { name: "a task on a copy takes a spare of its profile and settings", want: task, spares: [sp("s1", "local")], engines: [e("local", 1)], expected: "s1" },
    { name: "none: the task starts its own container", want: task, spares: [], engines: [e("local", 0)], expected: null },
    { name: "never another profile's", want: task, spares: [sp("s1", "local", { profile: "q" })], engines: [e("local", 1)], expected: null },
    { name: "never another sandbox's", want: { ...task, sandbox: "workspace-write" }, spares: [sp("s1", "local")], engines: [e("local", 1)], expected: null },
    { name: "never another network's or allowlist's", want: { ...task, network: "allowlist", allow: ["a.example"] }, spares: [sp("s1", "local", { network: "allowlist", allow: ["b.example"] })], engines: [e("local", 1)], expected: null },
    { name: "never another user's", want: { ...task, user: "1000:1000" }, spares: [sp("s1", "local")], engines: [e("local", 1)], expected: null },
    { name: "a ready one before one still starting", want: task, spares: [sp("s1", "local", { ready: false }), sp("s2", "local")], engines: [e("local", 2)], expected: "s2" },
    { name: "then the least-loaded engine", want: task, spares: [sp("s1", "local"), sp("s2", "r1")], engines: [e("local", 3), e("r1", 1)], expected: "s2" },
    { name: "then config order", want: task, spares: [sp("s2", "r1"), sp("s1", "local")], engines: [e("local", 1), e("r1", 1)], expected: "s1" },
    { name: "only on the engine placement chose for the copy", want: { ...task, engine: "r1" }, spares: [sp("s1", "local"), sp("s2", "r1")], engines: [e("local", 0), e("r1", 3)], expected: "s2" },
    { name: "never on an engine that is down", want: task, spares: [sp("s1", "r1")], engines: [e("local", 0), e("r1", 1, { up: false })], expected: null },
  ];
  it.each(choose)("$name", ({ want: w, spares, engines, expected }) => {
    expect(chooseSpare(w, spares, engines)?.name ?? null).toBe(expected);
  });

  const Q = { name: "p", spare: 2, max_containers: 4, engines: [] as string[] };
  const live = (engine: string, spare: boolean, profile = "p") => ({ profile, engine, spare });
  const tops: { name: string; profiles: (typeof Q)[]; engines: EngineView[]; live: ReturnType<typeof live>[]; waiting?: string[]; expected: string[] }[] = [
    { name: "spare = N on every engine that is up and fits", profiles: [Q], engines: [e("local", 0), e("r1", 0), e("r2", 0, { up: false })], live: [], expected: ["p@local", "p@local", "p@r1", "p@r1"] },
    { name: "only what is missing: a taken spare is replaced", profiles: [Q], engines: [e("local", 2)], live: [live("local", true), live("local", false)], expected: ["p@local"] },
    { name: "within max_containers (other containers count)", profiles: [{ ...Q, max_containers: 3 }], engines: [e("local", 2), e("r1", 0)], live: [live("local", false), live("local", false)], expected: ["p@local"] },
    { name: "within an engine's room", profiles: [Q], engines: [e("local", 3)], live: [], expected: ["p@local"] },
    { name: "none while the profile's turns wait for room", profiles: [Q], engines: [e("local", 0)], live: [], waiting: ["p"], expected: [] },
    { name: "none for a profile with spare = 0", profiles: [{ ...Q, spare: 0 }], engines: [e("local", 0)], live: [], expected: [] },
    { name: "only on engines the profile fits", profiles: [{ ...Q, spare: 1, engines: ["big"] }], engines: [e("local", 0), e("r1", 0, { labels: ["big"] })], live: [], expected: ["p@r1"] },
  ];
  it.each(tops)("$name", ({ profiles, engines, live: l, waiting, expected }) => {
    const { starts, retryAt } = spareStarts(profiles, engines, l, new Set(waiting ?? []), new Map(), 0);
    expect(starts.map((s) => `${s.profile}@${s.engine}`)).toEqual(expected);
    expect(retryAt).toBeNull();
  });

  it("skips a profile and engine backing off after failed starts and says when to look again", () => {
    const failures = new Map([["p\u0000local", { count: 1, retryAt: 5_000 }]]);
    expect(spareStarts([Q], [e("local", 0), e("r1", 0)], [], new Set(), failures, 1_000)).toEqual({ starts: [{ profile: "p", engine: "r1" }, { profile: "p", engine: "r1" }], retryAt: 5_000 });
    expect(spareStarts([Q], [e("local", 0)], [], new Set(), failures, 6_000).starts).toHaveLength(2);
  });
});
