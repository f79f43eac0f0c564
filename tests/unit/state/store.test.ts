import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it, vi } from "vitest";
import { StateStore, writeFileAtomicAsync, type MissionRecord } from "../../../src/state/store.js";

const record = (store: StateStore, status: MissionRecord["status"]): MissionRecord => ({
  missionId: store.newMissionId(),
  name: "m",
  status,
  workspace: "/w",
  createdAt: new Date().toISOString(),
  updatedAt: new Date().toISOString(),
  finishedAt: null,
  bundle: null,
  tasks: [
    { id: "done", status: "succeeded", conversationId: "conv_1", finalMessage: "ok", error: null, container: "c", startedAt: "s", finishedAt: "f", artifacts: [] },
    { id: "busy", status: "running", conversationId: null, finalMessage: null, error: null, container: "c", startedAt: "s", finishedAt: null, artifacts: [] },
  ],
});

describe("StateStore", () => {
  it("keeps records across instances and marks missions a dead broker left running as interrupted", async () => {
    const root = mkdtempSync(path.join(os.tmpdir(), "cmw-state-"));
    const first = new StateStore(root);
    const running = record(first, "running");
    const finished = record(first, "succeeded");
    first.createMission(running, { name: "m" });
    first.createMission(finished, { name: "m" });
    first.appendEvent(running.missionId, "busy", { type: "x" });
    // Events reach the file when the event loop's turn they arrived in ends.
    expect(existsSync(path.join(first.taskDir(running.missionId, "busy"), "events.jsonl"))).toBe(false);
    await new Promise((r) => setImmediate(r));

    const second = new StateStore(root); // the broker restarted
    expect(second.markInterrupted()).toEqual([running.missionId]);
    const r = second.readMission(running.missionId);
    expect(r.status).toBe("interrupted");
    expect(r.tasks.map((t) => t.status)).toEqual(["succeeded", "interrupted"]);
    expect(r.tasks[0]).toMatchObject({ finalMessage: "ok", conversationId: "conv_1" }); // nothing written before is lost
    expect(second.readMission(finished.missionId).status).toBe("succeeded");
    expect(readFileSync(path.join(second.taskDir(running.missionId, "busy"), "events.jsonl"), "utf8")).toContain('"type":"x"');
    // No temp files left behind by the atomic writes.
    expect(readdirSync(second.missionDir(running.missionId)).filter((f) => f.includes(".tmp-"))).toEqual([]);
  });

  it("refuses ids that could name another path", () => {
    const store = new StateStore(mkdtempSync(path.join(os.tmpdir(), "cmw-state-")));
    expect(() => store.missionDir("../../etc")).toThrow(/is not a mission id/);
    expect(() => store.taskDir(store.newMissionId(), "../x")).toThrow(/is not a task id/);
    expect(() => store.readMission("m-20260101000000-abcdef")).toThrow(/no mission m-20260101000000-abcdef/);
    expect(existsSync(path.join(store.root, "missions"))).toBe(false);
  });
});

describe("records on disk", () => {
  it("a record written by the first version (no notes, usage, attempts, bundleZip) still reads, with the same values", () => {
    const root = mkdtempSync(path.join(os.tmpdir(), "cmw-state-old-"));
    const store = new StateStore(root);
    const id = store.newMissionId();
    // The shape of 9e4b9ab's MissionRecord, as it wrote it.
    const old = {
      missionId: id, name: "old", status: "succeeded", workspace: "/w", createdAt: "2026-11-25T05:35:28.204Z", updatedAt: "2026-11-25T05:35:30.365Z", finishedAt: "2026-11-25T05:35:30.365Z", bundle: null,
      tasks: [{ id: "greet", status: "succeeded", conversationId: "conv_1", finalMessage: "wrote out/hello.txt", error: null, container: "c1", startedAt: "s", finishedAt: "f", artifacts: [{ path: "out/hello.txt", size: 8, sha256: "9b" }] }],
    };
    mkdirSync(store.missionDir(id), { recursive: true });
    writeFileSync(path.join(store.missionDir(id), "record.json"), JSON.stringify(old));
    expect(store.readMission(id)).toEqual(old);
  });

  it("a record that is not one is a STATE_ERROR naming the file and the key", () => {
    const root = mkdtempSync(path.join(os.tmpdir(), "cmw-state-bad-"));
    const store = new StateStore(root);
    const id = store.newMissionId();
    mkdirSync(store.missionDir(id), { recursive: true });
    writeFileSync(path.join(store.missionDir(id), "record.json"), JSON.stringify({ missionId: id, name: "x", status: "exploded", workspace: "/w", createdAt: "a", updatedAt: "b", tasks: [] }));
    expect(() => store.readMission(id)).toThrow(expect.objectContaining({ code: "STATE_ERROR", message: expect.stringMatching(/record\.json: not a mission record: status: /) }));
    expect(store.listMissions()).toEqual([]);
  });
});

describe("task events", () => {
  it("writes the events of one event-loop turn in one append per task, in order, and before any record write", () => {
    const store = new StateStore(mkdtempSync(path.join(os.tmpdir(), "cmw-events-")));
    const rec = record(store, "running");
    store.createMission(rec, { name: "m" });
    for (let i = 0; i < 3; i++) for (const t of ["a", "b"]) store.appendEvent(rec.missionId, t, { type: "delta", i });
    const file = (t: string): string => path.join(store.taskDir(rec.missionId, t), "events.jsonl");
    expect(existsSync(file("a"))).toBe(false);
    store.saveMission(rec); // a record write brings the events with it first
    for (const t of ["a", "b"]) expect(readFileSync(file(t), "utf8").trim().split("\n").map((l) => (JSON.parse(l) as { i: number }).i)).toEqual([0, 1, 2]);
  });
});

describe("task event files", () => {
  /** How many descriptors this process holds open on each file (Linux's /proc/self/fd). */
  const openFiles = (): Map<string, number> => {
    const counts = new Map<string, number>();
    for (const fd of readdirSync("/proc/self/fd")) {
      try {
        const target = readlinkSync(`/proc/self/fd/${fd}`);
        counts.set(target, (counts.get(target) ?? 0) + 1);
      } catch {
        // closed meanwhile (readdir's own descriptor)
      }
    }
    return counts;
  };
  const openOn = (file: string): number => openFiles().get(file) ?? 0;

  it("keeps a task's events file open between appends, in order across turns, and closes it once idle or on close", async () => {
    vi.useFakeTimers({ toFake: ["setInterval", "clearInterval"] });
    try {
      const store = new StateStore(mkdtempSync(path.join(os.tmpdir(), "cmw-events-fd-")));
      const rec = record(store, "running");
      store.createMission(rec, { name: "m" });
      const file = path.join(store.taskDir(rec.missionId, "a"), "events.jsonl");
      for (let turn = 0; turn < 3; turn++) {
        store.appendEvent(rec.missionId, "a", { type: "delta", i: turn });
        await new Promise((r) => setImmediate(r));
        expect(openOn(file), "one descriptor, kept across turns").toBe(1);
      }
      expect(readFileSync(file, "utf8").trim().split("\n").map((l) => (JSON.parse(l) as { i: number }).i)).toEqual([0, 1, 2]);
      vi.advanceTimersByTime(2000); // a sweep: written since the last, so kept
      expect(openOn(file)).toBe(1);
      vi.advanceTimersByTime(2000); // not written since: closed
      expect(openOn(file)).toBe(0);
      store.appendEvent(rec.missionId, "a", { type: "delta", i: 3 }); // opened again, appended
      store.closeEventFiles();
      expect(openOn(file)).toBe(0);
      expect(readFileSync(file, "utf8").trim().split("\n")).toHaveLength(4);
    } finally {
      vi.useRealTimers();
    }
  });

  it("holds no more than 256 event files open: the least recently written is closed, and appends to it still land", () => {
    const store = new StateStore(mkdtempSync(path.join(os.tmpdir(), "cmw-events-cap-")));
    const rec = record(store, "running");
    store.createMission(rec, { name: "m" });
    const tasks = Array.from({ length: 300 }, (_, i) => `t${i}`);
    const file = (t: string): string => path.join(store.taskDir(rec.missionId, t), "events.jsonl");
    for (const t of tasks) store.appendEvent(rec.missionId, t, { type: "first" });
    store.flushEvents();
    let open = openFiles();
    expect(tasks.filter((t) => open.get(file(t)) === 1)).toHaveLength(256);
    expect(openOn(file("t0")), "the first written is the first closed").toBe(0);
    store.appendEvent(rec.missionId, "t0", { type: "second" });
    store.flushEvents();
    expect(readFileSync(file("t0"), "utf8").trim().split("\n").map((l) => (JSON.parse(l) as { type: string }).type)).toEqual(["first", "second"]);
    store.closeEventFiles();
    open = openFiles();
    expect(tasks.filter((t) => open.has(file(t)))).toEqual([]);
  });
});

describe("writeFileAtomicAsync", () => {
  it("writes the whole content (megabytes too), owner-only, replacing the old, and leaves no temp file", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "cmw-atomic-"));
    const file = path.join(dir, "record.json");
    writeFileSync(file, "old");
    const big = "x".repeat(3 * 1024 * 1024 + 7);
    await writeFileAtomicAsync(file, big);
    expect(readFileSync(file, "utf8")).toBe(big);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir)).toEqual(["record.json"]);
  });
});

describe("record.json", () => {
  it("is written as compact JSON on one line (a mission's end writes it whole, with every task) and reads back the same", async () => {
    const store = new StateStore(mkdtempSync(path.join(os.tmpdir(), "cmw-record-")));
    const rec = record(store, "running");
    store.createMission(rec, { name: "m" });
    rec.tasks[1]!.status = "succeeded";
    await store.saveMissionAsync(rec);
    const text = readFileSync(path.join(store.missionDir(rec.missionId), "record.json"), "utf8");
    expect(text).toBe(`${JSON.stringify(rec)}\n`);
    expect(store.readMission(rec.missionId)).toEqual(rec);
  });
});

describe("a running mission's task log (tasks.jsonl)", () => {
  const logOf = (store: StateStore, id: string): string => path.join(store.missionDir(id), "tasks.jsonl");

  it("appends each change of tasks, replayed in order over record.json on reading; the mission's end writes the record whole and drops the log", async () => {
    const store = new StateStore(mkdtempSync(path.join(os.tmpdir(), "cmw-tasklog-")));
    const rec = record(store, "running");
    store.createMission(rec, { name: "m" });
    const created = readFileSync(path.join(store.missionDir(rec.missionId), "record.json"), "utf8");
    const busy = rec.tasks[1]!;
    busy.finalMessage = "half";
    await store.appendTasks(rec.missionId, "u1", [busy]);
    busy.status = "succeeded";
    busy.finalMessage = "done";
    busy.finishedAt = "f2";
    await store.appendTasks(rec.missionId, "u2", [busy]);
    // record.json is not rewritten for a task's change; the log has one line per change.
    expect(readFileSync(path.join(store.missionDir(rec.missionId), "record.json"), "utf8")).toBe(created);
    expect(readFileSync(logOf(store, rec.missionId), "utf8").trim().split("\n")).toHaveLength(2);
    const read = new StateStore(store.root).readMission(rec.missionId); // as a restarted broker reads it
    expect(read.tasks.map((t) => [t.id, t.status, t.finalMessage])).toEqual([["done", "succeeded", "ok"], ["busy", "succeeded", "done"]]);
    expect(read.updatedAt).toBe("u2");
    expect(read.status).toBe("running");

    rec.status = "succeeded";
    await store.saveMissionAsync(rec);
    expect(existsSync(logOf(store, rec.missionId))).toBe(false);
    expect(store.readMission(rec.missionId)).toEqual(rec);
  });

  it("a line torn by a crash mid-append is skipped and the lines before it stand; the next broker marks the mission interrupted and drops the log", async () => {
    const store = new StateStore(mkdtempSync(path.join(os.tmpdir(), "cmw-tasklog-torn-")));
    const rec = record(store, "running");
    store.createMission(rec, { name: "m" });
    rec.tasks[1]!.finalMessage = "before the crash";
    await store.appendTasks(rec.missionId, "u1", [rec.tasks[1]!]);
    // The crash: part of the next line reached the disk; its append never returned.
    writeFileSync(logOf(store, rec.missionId), '{"updatedAt":"u2","tasks":[{"id":"busy","status":"succ', { flag: "a" });
    const next = new StateStore(store.root);
    expect(next.readMission(rec.missionId).tasks[1]).toMatchObject({ status: "running", finalMessage: "before the crash" });
    expect(next.markInterrupted()).toEqual([rec.missionId]);
    expect(existsSync(logOf(store, rec.missionId))).toBe(false);
    const after = next.readMission(rec.missionId);
    expect(after.status).toBe("interrupted");
    expect(after.tasks[0]).toMatchObject({ status: "succeeded", finalMessage: "ok" });
    expect(after.tasks[1]).toMatchObject({ status: "interrupted", finalMessage: "before the crash" });
  });

  it("a log left beside a finished record (a crash between the record's write and the log's removal) is ignored", async () => {
    const store = new StateStore(mkdtempSync(path.join(os.tmpdir(), "cmw-tasklog-left-")));
    const rec = record(store, "running");
    store.createMission(rec, { name: "m" });
    await store.appendTasks(rec.missionId, "u1", [{ ...rec.tasks[1]!, finalMessage: "stale" }]);
    const log = readFileSync(logOf(store, rec.missionId));
    rec.status = "succeeded";
    rec.tasks[1]!.status = "succeeded";
    rec.tasks[1]!.finalMessage = "final";
    await store.saveMissionAsync(rec);
    writeFileSync(logOf(store, rec.missionId), log); // as if the removal had not happened
    expect(store.readMission(rec.missionId).tasks[1]).toMatchObject({ status: "succeeded", finalMessage: "final" });
  });

  it("keeps a record read while its files are unchanged, and reads it again when another store (a second broker process) writes it", async () => {
    const root = mkdtempSync(path.join(os.tmpdir(), "cmw-state-"));
    const broker = new StateStore(root);
    const other = new StateStore(root); // run-mission, or a broker started after this one
    const rec = record(broker, "running");
    broker.createMission(rec, { name: "m" });
    const read = other.readMission(rec.missionId);
    expect(other.readMission(rec.missionId)).toBe(read); // kept: nothing changed
    expect(other.readMission(rec.missionId, true)).not.toBe(read); // fresh: a copy of its own
    expect(other.missionSummaries()).toEqual([{ missionId: rec.missionId, name: "m", status: "running", createdAt: rec.createdAt, tasks: 2 }]);

    // A task ends (appended to the task log), then the mission (record.json rewritten).
    rec.tasks[1] = { ...rec.tasks[1]!, status: "succeeded", finalMessage: "done", finishedAt: "f" };
    await broker.appendTasks(rec.missionId, new Date().toISOString(), [rec.tasks[1]]);
    expect(other.readMission(rec.missionId).tasks[1]).toMatchObject({ status: "succeeded", finalMessage: "done" });
    expect(other.missionSummaries()[0]!.status).toBe("running");
    rec.status = "succeeded";
    await broker.saveMissionAsync(rec);
    expect(other.readMission(rec.missionId).status).toBe("succeeded");
    expect(other.missionSummaries()[0]!.status).toBe("succeeded");
  });

  it("the recent list keeps a running mission's line across its tasks' changes (the store that appends them does not read the mission again), and has its end", async () => {
    const store = new StateStore(mkdtempSync(path.join(os.tmpdir(), "cmw-state-")));
    const rec = record(store, "running");
    store.createMission(rec, { name: "m" });
    const reads = vi.spyOn(store, "readMission");
    expect(store.missionSummaries()).toEqual([{ missionId: rec.missionId, name: "m", status: "running", createdAt: rec.createdAt, tasks: 2 }]);
    for (let i = 0; i < 3; i++) {
      rec.tasks[1] = { ...rec.tasks[1]!, finalMessage: `step ${i}` };
      await store.appendTasks(rec.missionId, new Date().toISOString(), [rec.tasks[1]]);
      expect(store.missionSummaries()[0]).toMatchObject({ status: "running", tasks: 2 });
    }
    expect(reads).toHaveBeenCalledTimes(1); // the first list only
    expect(store.readMission(rec.missionId).tasks[1]!.finalMessage).toBe("step 2"); // the record itself is read afresh
    rec.status = "succeeded";
    await store.saveMissionAsync(rec);
    expect(store.missionSummaries()[0]!.status).toBe("succeeded");
  });

  it("stores conversation routes in one log, the last line of an id winning, over the route files of earlier versions", async () => {
    const root = mkdtempSync(path.join(os.tmpdir(), "cmw-state-"));
    const route = (id: string, extra: object = {}) => ({ id, profile: "default", workspace: "/w", sandbox: "workspace-write" as const, slotId: "s1", lane: null, threadId: `th-${id}`, engine: "local", ...extra });
    // A route file as an earlier version wrote it, which a route in the log then replaces.
    mkdirSync(path.join(root, "routes"), { recursive: true });
    writeFileSync(path.join(root, "routes", "conv_old.json"), JSON.stringify(route("conv_old")));
    writeFileSync(path.join(root, "routes", "conv_kept.json"), JSON.stringify(route("conv_kept")));
    const store = new StateStore(root);
    // Saved in one turn of the event loop: all resolve once on disk.
    await Promise.all([store.saveRoute(route("conv_a")), store.saveRoute(route("conv_b")), store.saveRoute(route("conv_old", { lost: "gone" }))]);
    await store.saveRoute(route("conv_a", { lost: "its container was removed" }));
    // A line torn by a crash (its save never returned) is skipped.
    writeFileSync(path.join(root, "routes", "log.jsonl"), `${readFileSync(path.join(root, "routes", "log.jsonl"), "utf8")}{"id":"conv_torn","prof`);
    const byId = Object.fromEntries(new StateStore(root).loadRoutes().map((r) => [r.id, r]));
    expect(Object.keys(byId).sort()).toEqual(["conv_a", "conv_b", "conv_kept", "conv_old"]);
    expect(byId.conv_a!.lost).toBe("its container was removed");
    expect(byId.conv_b!.lost).toBeUndefined();
    expect(byId.conv_old!.lost).toBe("gone");
    // After a torn line, the next save starts a line of its own.
    const again = new StateStore(root);
    await again.saveRoute(route("conv_c"));
    expect(new StateStore(root).loadRoutes().map((r) => r.id)).toContain("conv_c");
  });
});
