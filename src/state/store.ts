// The state store: missions, task records, event logs, artifacts and conversation routes under
// <state_dir>, written so that a crash never leaves a half-written record (temp file, fsync,
// rename). It survives a broker restart: missions that were running are marked interrupted.
import { accessSync, appendFileSync, closeSync, constants, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeSync } from "node:fs";
import fs from "node:fs";
import fsp from "node:fs/promises";
import { promisify } from "node:util";
import path from "node:path";
import { randomUUID } from "node:crypto";
import { scrubValue } from "../log.js";
import type { ConversationRoute } from "./route.js";
import { formatZodIssues, WrapperError } from "../errors.js";
import { MissionRecordSchema, type MissionRecord, type TaskRecord } from "./record.js";
import { TASK_ID } from "./task-id.js";

export type { ArtifactEntry, AttemptRecord, CheckRecord, MissionRecord, MissionStatus, TaskErrorCode, TaskRecord, TaskStatus } from "./record.js";

/** A task's notes as a one-line suffix (` [note; note]`), or "" when it has none. */
export function notesSuffix(notes: string[] | undefined): string {
  return notes?.length ? ` [${notes.join("; ")}]` : "";
}

/**
 * "2/3": the attempt a task that may take several is on (running), or ended on; null for a task
 * of one attempt. The attempt in progress is not in `attempts` until it ends.
 */
export function attemptLabel(t: TaskRecord): string | null {
  if (!t.maxAttempts || t.maxAttempts < 2) return null;
  const ended = t.attempts?.length ?? 0;
  const current = t.status === "running" ? Math.min(ended + 1, t.maxAttempts) : Math.max(ended, 1);
  return `${current}/${t.maxAttempts}`;
}

/** Event files kept open at most, and how often one not written since is closed. */
const EVENT_FDS = 256;
const EVENT_FD_IDLE_MS = 2000;

const MISSION_ID = /^m-[0-9]{14}-[a-f0-9]{6}$/;

const fsCall = {
  open: promisify(fs.open),
  write: promisify(fs.write),
  fsync: promisify(fs.fsync),
  fdatasync: promisify(fs.fdatasync),
  close: promisify(fs.close),
  rename: promisify(fs.rename),
};

/** The conversation routes' log, in routes/ (saveRoute). */
const ROUTE_LOG = "log.jsonl";

/** Parsed records kept for readers (readMission), and lines of the recent list (missionSummaries). */
const RECORDS_CACHED = 8;
const SUMMARIES_CACHED = 1000;

/** A mission in a line: what `status` without an id lists. */
export interface MissionSummary {
  missionId: string;
  name: string;
  status: MissionRecord["status"];
  createdAt: string;
  tasks: number;
}

/** A running mission's task changes, appended; folded into record.json at the mission's end. */
const TASK_LOG = "tasks.jsonl";

/** One line of a mission's task log: the mission's updatedAt and the tasks changed, whole. */
interface TaskLogLine {
  updatedAt: string;
  tasks: readonly TaskRecord[];
}

/**
 * writeFileAtomic off the event loop: the same steps (temp file, fsync, rename, directory fsync)
 * through the thread pool, so a record's fsync does not stall every connection meanwhile. Plain
 * descriptors, not fs/promises' FileHandle: a FileHandle's open, writeFile loop and close cost
 * the event loop about 1.9 ms a write on a loaded machine (a CPU profile of the bench's 200-task
 * scale cell), most of the store's share.
 */
export async function writeFileAtomicAsync(file: string, data: string, mode = 0o600): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}-${randomUUID().slice(0, 8)}`;
  const fd = await fsCall.open(tmp, "w", mode);
  try {
    const bytes = Buffer.from(data);
    for (let at = 0; at < bytes.length; ) at += (await fsCall.write(fd, bytes, at, bytes.length - at, null)).bytesWritten;
    await fsCall.fsync(fd);
  } finally {
    await fsCall.close(fd);
  }
  await fsCall.rename(tmp, file);
  try {
    const dir = await fsCall.open(path.dirname(file), "r");
    await fsCall.fsync(dir).finally(() => fsCall.close(dir));
  } catch {
    // some filesystems cannot fsync a directory: the rename is still atomic
  }
}

/** Writes a file so that readers see the old content or the new, never a torn one. */
export function writeFileAtomic(file: string, data: string, mode = 0o600): void {
  mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}-${randomUUID().slice(0, 8)}`;
  const fd = openSync(tmp, "w", mode);
  try {
    writeSync(fd, data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
  try {
    const dir = openSync(path.dirname(file), "r");
    fsyncSync(dir);
    closeSync(dir);
  } catch {
    // some filesystems cannot fsync a directory: the rename is still atomic
  }
}

export class StateStore {
  readonly missionsDir: string;
  readonly routesDir: string;

  constructor(readonly root: string) {
    this.missionsDir = path.join(root, "missions");
    this.routesDir = path.join(root, "routes");
  }

  newMissionId(): string {
    const stamp = new Date().toISOString().replace(/\D/g, "").slice(0, 14);
    return `m-${stamp}-${randomUUID().replace(/-/g, "").slice(0, 6)}`;
  }

  /** The mission's directory; refuses ids that could name another path. */
  missionDir(missionId: string): string {
    if (!MISSION_ID.test(missionId)) throw new WrapperError("NOT_FOUND", `missionId: "${missionId}" is not a mission id (m-<timestamp>-<hex>)`);
    return path.join(this.missionsDir, missionId);
  }

  taskDir(missionId: string, taskId: string): string {
    if (!TASK_ID.test(taskId)) throw new WrapperError("NOT_FOUND", `taskId: "${taskId}" is not a task id`);
    return path.join(this.missionDir(missionId), "tasks", taskId);
  }

  createMission(record: MissionRecord, given: unknown): void {
    const dir = this.missionDir(record.missionId);
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      // The task log exists before record.json's write, whose directory fsync makes both names
      // durable: an append to it then needs only the file's own fdatasync.
      closeSync(openSync(path.join(dir, TASK_LOG), "a", 0o600));
      // As given, but for a known secret (a key handed to a task in its env, say): never on disk.
      writeFileAtomic(path.join(dir, "mission.json"), `${JSON.stringify(scrubValue(given), null, 2)}\n`);
      this.saveMission(record);
    } catch (e) {
      rmSync(dir, { recursive: true, force: true });
      // A recursive mkdir reports a read-only parent oddly (ENOENT): ask the directory itself.
      let code = (e as NodeJS.ErrnoException).code;
      try {
        accessSync(this.root, constants.W_OK);
      } catch (probe) {
        code = (probe as NodeJS.ErrnoException).code ?? code;
      }
      const why = code === "EROFS" ? "is read-only (EROFS)" : code === "ENOSPC" ? "is full (ENOSPC)" : code === "EACCES" ? "is not writable (EACCES)" : `cannot be written (${(e as Error).message})`;
      throw new WrapperError("STATE_ERROR", `the state directory ${this.root} ${why}: the mission was not started; free space or fix its permissions (broker.state_dir)`, { code });
    }
  }

  /**
   * A mission record as it is written: compact JSON on one line. A running mission's record is
   * written again at each task's end, whole, so a 200-task mission writes it hundreds of times;
   * indented, each took twice the CPU (V8's JSON.stringify has a fast path only without a gap)
   * and 40% more bytes to fsync. `jq . record.json` shows it indented.
   */
  private static recordText(record: MissionRecord): string {
    return `${JSON.stringify(record)}\n`;
  }

  /**
   * Writes the whole record (record.json, atomically). A record that is no longer running holds
   * every task's last state, so its task log (below) is folded in and removed.
   */
  saveMission(record: MissionRecord): void {
    this.forget(record.missionId);
    this.flushEvents();
    const dir = this.missionDir(record.missionId);
    writeFileAtomic(path.join(dir, "record.json"), StateStore.recordText(record));
    if (record.status !== "running") this.dropTaskLog(record.missionId);
  }

  /** saveMission off the event loop (a mission's end). */
  async saveMissionAsync(record: MissionRecord): Promise<void> {
    this.forget(record.missionId);
    this.flushEvents();
    await writeFileAtomicAsync(path.join(this.missionDir(record.missionId), "record.json"), StateStore.recordText(record));
    if (record.status !== "running") this.dropTaskLog(record.missionId);
  }

  /**
   * A running mission's task changes: the given tasks, whole, appended as one line to the
   * mission's tasks.jsonl and fdatasync'ed before this resolves, so the change is as durable as a
   * record.json write. Rewriting record.json whole at each task's end (JSON, temp file, two
   * fsyncs, rename) cost O(tasks) each time, O(tasks²) over a mission: most of the broker's CPU
   * per task at hundreds of tasks. readMission replays the lines over record.json while the
   * mission runs; its end writes record.json whole (saveMission) and drops the log. A line torn
   * by a crash was never reported (the append had not returned): it is skipped on reading.
   */
  async appendTasks(missionId: string, updatedAt: string, tasks: readonly TaskRecord[]): Promise<void> {
    // The parsed record changes; the mission's line in the recent list does not (a task's change
    // leaves its name, status, creation and task count as they are). Dropping that line too had
    // the list read and replay a running 1,000-task mission at each call: about a fifth of what
    // the broker allocated during such a mission (a heap sampling of the 1,000-task scale3 run).
    this.records.delete(missionId);
    this.flushEvents();
    const file = path.join(this.missionDir(missionId), TASK_LOG);
    // After a failed append (a full disk, say) the file may end in part of a line: start afresh.
    const lead = this.tornLogs.has(file) ? "\n" : "";
    const bytes = Buffer.from(`${lead}${JSON.stringify({ updatedAt, tasks } satisfies TaskLogLine)}\n`);
    const fd = await fsCall.open(file, "a", 0o600);
    try {
      for (let at = 0; at < bytes.length; ) at += (await fsCall.write(fd, bytes, at, bytes.length - at, null)).bytesWritten;
      await fsCall.fdatasync(fd);
      this.tornLogs.delete(file);
    } catch (e) {
      this.tornLogs.add(file);
      throw e;
    } finally {
      await fsCall.close(fd);
    }
  }

  /** Task logs whose last append failed (they may end in part of a line). */
  private readonly tornLogs = new Set<string>();

  private dropTaskLog(missionId: string): void {
    const file = path.join(this.missionDir(missionId), TASK_LOG);
    this.tornLogs.delete(file);
    // record.json says the mission is over, and a reader then ignores the log: removing it is tidying.
    rmSync(file, { force: true });
  }

  /**
   * A mission's record as stored (a running mission's task log replayed over it). The record is
   * shared with the next readers for as long as its files have not changed (the same inode, size
   * and mtime of record.json, the same size of the task log): do not change it; `fresh` reads a
   * copy of the caller's own. Each `status` of a finished 1,000-task mission used to read and
   * check 0.7 MB of JSON again.
   */
  readMission(missionId: string, fresh = false): MissionRecord {
    const dir = this.missionDir(missionId);
    const file = path.join(dir, "record.json");
    const stamp = this.recordStamp(dir);
    if (stamp === null) throw new WrapperError("NOT_FOUND", `missionId: no mission ${missionId}; call status without an id to list recent missions`);
    const cached = fresh ? undefined : this.records.get(missionId);
    if (cached?.stamp === stamp) {
      this.records.delete(missionId); // most recently used last
      this.records.set(missionId, cached);
      return cached.record;
    }
    const record = this.parseMission(dir, file);
    if (!fresh) {
      this.records.set(missionId, { stamp, record });
      if (this.records.size > RECORDS_CACHED) this.records.delete(this.records.keys().next().value!);
    }
    return record;
  }

  /** Drops what is kept of a mission this process writes (its files' stamp would tell too, a write later). */
  private forget(missionId: string): void {
    this.records.delete(missionId);
    this.summaries.delete(missionId);
  }

  /** Parsed records by mission, least recently read first (readMission). */
  private readonly records = new Map<string, { stamp: string; record: MissionRecord }>();
  /** Each mission's line in the recent list, by mission (missionSummaries). */
  private readonly summaries = new Map<string, { stamp: string; summary: MissionSummary }>();

  /** What changes when a mission's stored record does: null when it has none. */
  private recordStamp(dir: string): string | null {
    const st = fs.statSync(path.join(dir, "record.json"), { throwIfNoEntry: false });
    if (!st) return null;
    const log = fs.statSync(path.join(dir, TASK_LOG), { throwIfNoEntry: false });
    return `${st.ino}:${st.size}:${st.mtimeMs}:${log?.size ?? -1}`;
  }

  private parseMission(dir: string, file: string): MissionRecord {
    const raw = JSON.parse(readFileSync(file, "utf8")) as unknown;
    // A running mission's later task changes are in its task log (appendTasks).
    if ((raw as { status?: unknown } | null)?.status === "running") StateStore.replayTaskLog(raw as { updatedAt?: string; tasks?: unknown }, path.join(dir, TASK_LOG));
    // Parsed, not cast: a record written by an earlier version gets the fields added since.
    const parsed = MissionRecordSchema.safeParse(raw);
    if (!parsed.success) throw new WrapperError("STATE_ERROR", `${file}: not a mission record: ${formatZodIssues(parsed.error, undefined).join("; ")}`);
    return parsed.data;
  }

  /** Applies a task log's lines, in order, over a record as read (each task by its id). */
  private static replayTaskLog(raw: { updatedAt?: string; tasks?: unknown }, file: string): void {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch {
      return; // none: a record from before the log, or no change since the mission began
    }
    if (!Array.isArray(raw.tasks)) return;
    const tasks = raw.tasks as { id?: unknown }[];
    const at = new Map(tasks.map((t, i) => [t?.id, i]));
    for (const l of text.split("\n")) {
      if (!l) continue;
      let line: Partial<Record<keyof TaskLogLine, unknown>> | null;
      try {
        line = JSON.parse(l) as Partial<Record<keyof TaskLogLine, unknown>> | null;
      } catch {
        continue; // torn by a crash mid-append: never reported
      }
      // Each task whole, as it was at that write; checked with the whole record after.
      const changed = line?.tasks;
      if (!Array.isArray(changed)) continue;
      for (const t of changed as { id?: unknown }[]) {
        const i = at.get(t?.id);
        if (i !== undefined) tasks[i] = t;
      }
      if (typeof line?.updatedAt === "string") raw.updatedAt = line.updatedAt;
    }
  }

  /** Recent missions, newest first (shared records: see readMission; `fresh` for copies). */
  listMissions(limit = 20, fresh = false): MissionRecord[] {
    return this.recentIds(limit).flatMap((id) => {
      try {
        return [this.readMission(id, fresh)];
      } catch {
        return [];
      }
    });
  }

  /**
   * The recent missions in a line each, newest first: what `status` without an id lists. Each is
   * read once and kept while its record.json is unchanged; a running mission's record changes
   * only at its end (its tasks go to the task log), so a list asked for ten times a second
   * during a 1,000-task mission reads nothing again.
   */
  missionSummaries(limit = 20): MissionSummary[] {
    return this.recentIds(limit).flatMap((id) => {
      try {
        const dir = this.missionDir(id);
        const st = fs.statSync(path.join(dir, "record.json"), { throwIfNoEntry: false });
        if (!st) return [];
        const stamp = `${st.ino}:${st.size}:${st.mtimeMs}`;
        const cached = this.summaries.get(id);
        if (cached?.stamp === stamp) return [cached.summary];
        const m = this.readMission(id);
        const summary: MissionSummary = { missionId: m.missionId, name: m.name, status: m.status, createdAt: m.createdAt, tasks: m.tasks.length };
        this.summaries.set(id, { stamp, summary });
        if (this.summaries.size > SUMMARIES_CACHED) this.summaries.delete(this.summaries.keys().next().value!);
        return [summary];
      } catch {
        return [];
      }
    });
  }

  private recentIds(limit: number): string[] {
    if (!existsSync(this.missionsDir)) return [];
    return readdirSync(this.missionsDir)
      .filter((d) => MISSION_ID.test(d))
      .sort()
      .reverse()
      .slice(0, limit);
  }

  /** Each task's events.jsonl by `missionId/taskId`: its directory made, its id checked, once. */
  private readonly eventFiles = new Map<string, string>();

  /** Event lines not yet written, by file: written together once this turn of the event loop ends. */
  private readonly pendingEvents = new Map<string, string[]>();
  private eventFlush: NodeJS.Immediate | undefined;

  /**
   * Event files kept open between appends, least recently written first. A running task appends
   * at every turn of the event loop that brought it an event, and opening and closing the file
   * each time (appendFileSync) was most of the cost of an append. One not written since the last
   * sweep is closed (the sweep runs every EVENT_FD_IDLE_MS while any is open), and no more than
   * EVENT_FDS stay open. The bytes reach the file at the same moment either way.
   */
  private readonly eventFds = new Map<string, { fd: number; used: boolean }>();
  private eventSweep: NodeJS.Timeout | undefined;

  /**
   * Appends an event to a task's events.jsonl. The events that arrive in one turn of the event
   * loop (a chunk of Codex's output holds dozens of a long answer's deltas) are written in one
   * append per file, at the end of that turn: one append each cost about 0.2 ms, and a model that
   * streams 8,000 deltas a second outran the broker (the bench's deltas measure). Every record
   * write (saveMission) writes them first, so a task's record never runs ahead of its events.
   */
  appendEvent(missionId: string, taskId: string, event: unknown): void {
    const file = this.eventFile(missionId, taskId);
    const line = `${JSON.stringify({ at: new Date().toISOString(), ...(event as object) })}\n`;
    const lines = this.pendingEvents.get(file);
    if (lines) lines.push(line);
    else this.pendingEvents.set(file, [line]);
    this.eventFlush ??= setImmediate(() => this.flushEvents());
  }

  /** Writes the events appended so far (each file's in one append). */
  flushEvents(): void {
    if (this.eventFlush) clearImmediate(this.eventFlush);
    this.eventFlush = undefined;
    const pending = [...this.pendingEvents];
    this.pendingEvents.clear();
    for (const [file, lines] of pending) {
      try {
        const data = Buffer.from(lines.join(""));
        const fd = this.eventFd(file);
        try {
          for (let at = 0; at < data.length; ) at += writeSync(fd, data, at, data.length - at);
        } catch (e) {
          this.closeEventFd(file);
          throw e;
        }
      } catch (e) {
        this.onEventsLost(file, lines.length, e as Error);
      }
    }
  }

  /** Closes the event files kept open (a broker stopping; any left are closed by the idle sweep). */
  closeEventFiles(): void {
    this.flushEvents();
    for (const file of [...this.eventFds.keys()]) this.closeEventFd(file);
  }

  private eventFd(file: string): number {
    const open = this.eventFds.get(file);
    if (open) {
      this.eventFds.delete(file); // to the end: the most recently written
      this.eventFds.set(file, open);
      open.used = true;
      return open.fd;
    }
    const fd = openSync(file, "a", 0o600);
    this.eventFds.set(file, { fd, used: true });
    if (this.eventFds.size > EVENT_FDS) this.closeEventFd(this.eventFds.keys().next().value as string);
    if (!this.eventSweep) {
      this.eventSweep = setInterval(() => {
        for (const [f, o] of this.eventFds) {
          if (o.used) o.used = false;
          else this.closeEventFd(f);
        }
        if (this.eventFds.size === 0) {
          clearInterval(this.eventSweep);
          this.eventSweep = undefined;
        }
      }, EVENT_FD_IDLE_MS);
      this.eventSweep.unref();
    }
    return fd;
  }

  private closeEventFd(file: string): void {
    const open = this.eventFds.get(file);
    if (!open) return;
    this.eventFds.delete(file);
    try {
      closeSync(open.fd);
    } catch {
      // already closed: nothing held
    }
  }

  /** Told when a task's events could not be written (a full disk, say); the broker logs it. */
  onEventsLost: (file: string, count: number, error: Error) => void = (file, count, error) => {
    process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), level: "warn", msg: "cannot append task events", file, count, error: error.message })}\n`);
  };

  /** Appends to one of a task's logs beside its events (check.log); returns its path. */
  appendTaskLog(missionId: string, taskId: string, name: "check.log", data: Buffer | string): string {
    const file = path.join(path.dirname(this.eventFile(missionId, taskId)), name);
    appendFileSync(file, data, { mode: 0o600 });
    return file;
  }

  /** A task's events.jsonl, its directory made (mkdir is idempotent: this is a cache, not a record). */
  private eventFile(missionId: string, taskId: string): string {
    const key = `${missionId}/${taskId}`;
    let file = this.eventFiles.get(key);
    if (!file) {
      const dir = this.taskDir(missionId, taskId);
      mkdirSync(dir, { recursive: true });
      if (this.eventFiles.size > 10_000) this.eventFiles.clear();
      file = path.join(dir, "events.jsonl");
      this.eventFiles.set(key, file);
    }
    return file;
  }

  /**
   * Stores a conversation's route (off the event loop); resolved once it is on disk. Routes are
   * appended to one log, routes/log.jsonl, a line each, the last line of an id winning; the
   * routes saved while a write is on its way go together in the next (one write, one fdatasync).
   * A file per route, written atomically, cost two fsyncs and eight file-system calls per task
   * (the biggest part of the store's share of a task's CPU in the 200-task scale profile).
   */
  saveRoute(route: ConversationRoute): Promise<void> {
    const line = `${JSON.stringify(route)}\n`;
    if (!this.routeBatch) {
      const batch: string[] = [];
      const written = this.routeWrite.then(() => {
        this.routeBatch = undefined; // later routes go in the next write
        return this.appendRoutes(batch.join(""));
      });
      this.routeBatch = { lines: batch, written };
      this.routeWrite = written.catch(() => {});
    }
    this.routeBatch.lines.push(line);
    return this.routeBatch.written;
  }

  /** The routes waiting for the next write, and when they are on disk. */
  private routeBatch: { lines: string[]; written: Promise<void> } | undefined;
  /** The last route write (settled either way): the next one starts after it. */
  private routeWrite: Promise<void> = Promise.resolve();
  /** Whether the log's name is known durable (its directory fsync'ed after it was made). */
  private routeLogMade = false;

  private get routeLog(): string {
    return path.join(this.routesDir, ROUTE_LOG);
  }

  private async appendRoutes(data: string): Promise<void> {
    if (!this.routeLogMade) {
      await fsp.mkdir(this.routesDir, { recursive: true });
      closeSync(openSync(this.routeLog, "a", 0o600));
      // A log that a crash left ending in part of a line: the next line starts on its own.
      const { size } = fs.statSync(this.routeLog);
      if (size) {
        const fd = openSync(this.routeLog, "r");
        const last = Buffer.alloc(1);
        try {
          fs.readSync(fd, last, 0, 1, size - 1);
        } finally {
          closeSync(fd);
        }
        if (last[0] !== 0x0a) this.routeLogTorn = true;
      }
      try {
        const dir = await fsCall.open(this.routesDir, "r");
        await fsCall.fsync(dir).finally(() => fsCall.close(dir));
      } catch {
        // some filesystems cannot fsync a directory
      }
      this.routeLogMade = true;
    }
    // After a failed append the log may end in part of a line: the next starts on a line of its own.
    const bytes = Buffer.from(this.routeLogTorn ? `\n${data}` : data);
    const fd = await fsCall.open(this.routeLog, "a", 0o600);
    try {
      for (let at = 0; at < bytes.length; ) at += (await fsCall.write(fd, bytes, at, bytes.length - at, null)).bytesWritten;
      await fsCall.fdatasync(fd);
      this.routeLogTorn = false;
    } catch (e) {
      this.routeLogTorn = true;
      throw e;
    } finally {
      await fsCall.close(fd);
    }
  }

  private routeLogTorn = false;

  /** Every route stored: the files of earlier versions (routes/<id>.json), then the log's lines in order. */
  loadRoutes(): ConversationRoute[] {
    if (!existsSync(this.routesDir)) return [];
    const routes = new Map<string, ConversationRoute>();
    const keep = (r: unknown): void => {
      if (typeof (r as ConversationRoute | null)?.id === "string") routes.set((r as ConversationRoute).id, r as ConversationRoute);
    };
    for (const f of readdirSync(this.routesDir).filter((f) => f.endsWith(".json"))) {
      try {
        keep(JSON.parse(readFileSync(path.join(this.routesDir, f), "utf8")));
      } catch {
        // unreadable: skipped, as before
      }
    }
    let log = "";
    try {
      log = readFileSync(this.routeLog, "utf8");
    } catch {
      // no log yet
    }
    for (const line of log.split("\n")) {
      if (!line) continue;
      try {
        keep(JSON.parse(line));
      } catch {
        // a line torn by a crash: its save had not returned
      }
    }
    return [...routes.values()];
  }

  /** At start-up: missions a dead broker left running are marked interrupted (nothing else changes). */
  markInterrupted(): string[] {
    const changed: string[] = [];
    for (const m of this.listMissions(Number.MAX_SAFE_INTEGER, true)) {
      if (m.status !== "running") continue;
      const now = new Date().toISOString();
      m.status = "interrupted";
      m.updatedAt = now;
      m.finishedAt = now;
      for (const t of m.tasks) {
        if (t.status === "running" || t.status === "queued") {
          t.status = "interrupted";
          t.error = "the broker stopped before this task finished";
          t.finishedAt = now;
        }
      }
      this.saveMission(m);
      changed.push(m.missionId);
    }
    return changed;
  }
}
