// The tools' results for clients whose model reads only text: a rendering of the structured
// result with nothing dropped (every task's status, conversation, times, usage, attempts, notes,
// error, artifacts and whole final message), and a resource_link for each artifact. Only a final
// message longer than FINAL_MESSAGE_TEXT_LIMIT is cut, with a note naming where the rest is.
import { randomBytes } from "node:crypto";
import type { ResourceLink } from "@modelcontextprotocol/sdk/types.js";
import { mimeTypeByName } from "../artifacts/mime.js";
import type { TaskUsage } from "../relay/usage.js";
import { TASK_STATUSES, taskCounts, type AttemptRecord, type MissionStatus, type TaskCounts, type TaskRecord } from "../state/record.js";

/** Characters of a final message the text carries; the structured result always has all of it. */
export const FINAL_MESSAGE_TEXT_LIMIT = 16_000;

/** A task as the tools return it: the record without the broker's container name. */
export type TaskResultOut = Omit<TaskRecord, "container">;
// A type, not an interface: a tool result's structuredContent is an index-signature object.
export type MissionResultOut = { missionId: string; status: MissionStatus; tasks: TaskResultOut[]; counts?: TaskCounts; cursor?: string; changedAfter?: string };

export const artifactUri = (missionId: string, taskId: string, file: string): string => `codex-wrapper://missions/${missionId}/artifacts/${taskId}/${file}`;
export const finalMessageUri = (missionId: string, taskId: string): string => `codex-wrapper://missions/${missionId}/tasks/${taskId}/final-message`;

/** A resource_link for each artifact of each task. */
export function artifactLinks(missionId: string, tasks: TaskResultOut[]): ResourceLink[] {
  return tasks.flatMap((t) => taskLinks(missionId, t.id, t.artifacts));
}

/** A resource_link for each of a task's artifacts (a reply's are its task's). */
export function taskLinks(missionId: string, taskId: string, artifacts: TaskResultOut["artifacts"]): ResourceLink[] {
  return artifacts.map((a) => ({
      type: "resource_link" as const,
      uri: artifactUri(missionId, taskId, a.path),
      name: a.path,
      title: a.path,
      description: `artifact of task ${taskId}: ${a.size} bytes, sha256 ${a.sha256}`,
      // The table's type; a file it does not know is typed by its content when it is read.
      ...(mimeTypeByName(a.path) ? { mimeType: mimeTypeByName(a.path) } : {}),
      size: a.size,
  }));
}

function usageText(u: TaskUsage): string {
  return `${u.inputTokens} input tokens (${u.cachedInputTokens} cached), ${u.outputTokens} output tokens (${u.reasoningOutputTokens} reasoning), ${u.requests} model requests; model ${u.model ?? "(not named)"}, profile ${u.profile}`;
}

function attemptText(a: AttemptRecord): string[] {
  const lines = [`- attempt ${a.attempt}: turn ${a.turn}${a.turnError ? ` (${a.turnError})` : ""}, ${a.startedAt} → ${a.finishedAt} (${a.durationMs} ms)`];
  if (a.usage) lines.push(`  usage: ${usageText(a.usage)}`);
  if (a.check) {
    const c = a.check;
    lines.push(`  check \`${c.command}\`: ${c.timedOut ? "timed out" : `exit code ${c.exitCode ?? "unknown"}`} in ${c.durationMs} ms, ${c.bytes} bytes of output${c.outputTail ? "; its last lines:" : ""}`);
    if (c.outputTail) lines.push(...c.outputTail.split("\n").map((l) => `    ${l}`));
  }
  return lines;
}

/**
 * One task, readable. `where` names the place a cut final message can be read whole
 * (e.g. `structuredContent.tasks[0].finalMessage, or the resource …`).
 */
export function taskText(t: TaskResultOut, heading: string, where: string, uriOf?: (file: string) => string): string {
  const lines = [`## ${heading}: ${t.status}`];
  if (t.conversationId) lines.push(`conversation: ${t.conversationId} (continue it with reply)`);
  lines.push(`started: ${t.startedAt ?? "not yet"}; finished: ${t.finishedAt ?? "not yet"}${t.engine ? `; engine: ${t.engine}` : ""}`);
  if (t.usage) lines.push(`usage: ${usageText(t.usage)}`);
  if (t.error || t.errorCode) lines.push(`error${t.errorCode ? ` [${t.errorCode}]` : ""}: ${t.error ?? ""}`);
  if (t.notes?.length) lines.push("notes:", ...t.notes.map((n) => `- ${n}`));
  if (t.maxAttempts) {
    lines.push(`attempts: ${t.attempts?.length ?? 0} of at most ${t.maxAttempts}`);
    for (const a of t.attempts ?? []) lines.push(...attemptText(a));
  }
  if (t.artifacts.length) {
    lines.push("artifacts:");
    for (const a of t.artifacts) lines.push(`- ${a.path} (${a.size} bytes, sha256 ${a.sha256}${a.redacted ? `, ${a.redacted} known secret(s) replaced by [redacted]` : ""})${uriOf ? `: ${uriOf(a.path)}` : ""}`);
  }
  if (t.finalMessage !== null) {
    const m = t.finalMessage;
    lines.push("final message:");
    if (m.length <= FINAL_MESSAGE_TEXT_LIMIT) lines.push(m);
    else lines.push(m.slice(0, FINAL_MESSAGE_TEXT_LIMIT), `[cut at ${FINAL_MESSAGE_TEXT_LIMIT} of ${m.length} characters; the whole message: ${where}]`);
  }
  return lines.join("\n");
}

const missionHead = (m: MissionResultOut, name?: string): string => `mission ${name ? `${name} ` : ""}(${m.missionId}): ${m.status}, ${m.tasks.length} task${m.tasks.length === 1 ? "" : "s"}`;

/** The i-th task of a mission, readable. */
const missionTaskText = (missionId: string, t: TaskResultOut, i: number): string =>
  taskText(t, `task ${t.id}`, `structuredContent.tasks[${i}].finalMessage, or the resource ${finalMessageUri(missionId, t.id)}`, (file) => artifactUri(missionId, t.id, file));

/** A mission's result, readable, every task whole. */
export function missionText(m: MissionResultOut, name?: string): string {
  return [missionHead(m, name), ...m.tasks.map((t, i) => missionTaskText(m.missionId, t, i))].join("\n\n");
}

/**
 * A copy of a record's value to compare it with later (sameRecord): its objects and arrays
 * are copied, its strings and other values shared. A task's final message can run to kilobytes
 * and a mission to a thousand tasks; comparing a string with itself is one pointer check, where
 * turning each record into JSON to compare it costs every `status` call time in proportion to all
 * of the mission's text.
 */
function copyOf(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(copyOf);
  if (v !== null && typeof v === "object") {
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) o[k] = copyOf(x);
    return o;
  }
  return v;
}

/**
 * Whether a record's value equals a copy of it (copyOf): the same keys, each with an equal value,
 * arrays of the same length and strings compared as values. A record holds only plain objects,
 * arrays and primitives, so this is all the comparison it needs. node:util's isDeepStrictEqual,
 * used before, also compares prototypes, symbol keys and property descriptors: on a 1,000-task
 * mission that cost 5 ms of each `status` call, nine tenths of the call's CPU (a profile of the
 * broker's HTTP app answering `status` with since, nothing changed).
 */
export function sameRecord(value: unknown, copy: unknown): boolean {
  if (value === copy) return true;
  if (typeof value !== "object" || typeof copy !== "object" || value === null || copy === null) return false;
  if (Array.isArray(value)) {
    if (!Array.isArray(copy) || value.length !== copy.length) return false;
    for (let i = 0; i < value.length; i++) if (!sameRecord(value[i], copy[i])) return false;
    return true;
  }
  if (Array.isArray(copy)) return false;
  const a = value as Record<string, unknown>;
  const b = copy as Record<string, unknown>;
  let keys = 0;
  for (const k in a) {
    if (!Object.hasOwn(a, k)) continue;
    keys++;
    if (!Object.hasOwn(b, k) || !sameRecord(a[k], b[k])) return false;
  }
  for (const k in b) if (Object.hasOwn(b, k)) keys--;
  return keys === 0;
}

/** A task as a mission's result shows it, and what it was made from. */
interface TaskPart {
  /** A copy of the record it was made from (copyOf): the part is reused while the record is the same (sameRecord). */
  copy: unknown;
  index: number;
  out: TaskResultOut;
  text: string;
  links: ResourceLink[];
  /** Whether `out` passed the output schema's check. */
  checked: boolean;
  /** The cursor's number when this part was (re)built: it changed after every cursor below it. */
  changedAt: number;
}

interface MissionMemo {
  parts: Map<string, TaskPart>;
  /** Every task's text, links and check, as the last whole result had them; undefined once a part is built again. */
  whole: { count: number; body: string; links: ResourceLink[]; checked: boolean } | undefined;
}

/** A mission's result as MissionResults builds it. */
export interface BuiltMission {
  /** Every task, or with `since` only those that changed after it. */
  out: MissionResultOut;
  text: string;
  links: ResourceLink[];
  checked: boolean;
  /** Names this moment: `since` in a later call lists only the tasks that change after it. */
  cursor: string;
  counts: TaskCounts;
  /** How `since` was taken: "changes" (only the tasks changed after it are listed) or "unknown" (every task is). */
  since?: "changes" | "unknown";
}

/** Missions whose parts are kept, the most recently asked for: a mission asked for again after it left is built whole once. */
const MEMO_MISSIONS = 8;

/**
 * A mission as a tool result (structured, text and links, as `missionText` and `artifactLinks`
 * make them), built again only for the tasks whose record changed since the mission was last
 * asked for. A client that polls `status` ten times a second during a 1,000-task mission had the
 * whole result built and checked against the output schema each time (about 15 ms of CPU a call
 * on this project's 2-core machines), though only the few tasks that ended in between changed.
 * `check` is the output schema's check of one task; `checked` says every task passed it.
 *
 * Each result carries a cursor; given back as `since`, the result lists only the tasks whose
 * record changed after the call that gave it. Sending a 1,000-task result to a poller costs far
 * more than building it (about 15 ms over HTTP with one-line messages, 70 ms with 2,000-character
 * ones, for each end: docs/performance.md). A cursor is this process's own (`<instance>.<n>`): one
 * from before a restart, or any other that this broker did not give, lists every task.
 */
export class MissionResults {
  /** By mission id, the most recently asked for last. */
  private readonly memos = new Map<string, MissionMemo>();
  private readonly instance = randomBytes(4).toString("hex");
  /** The last cursor's number: counts the calls that built a part again. */
  private seq = 0;

  constructor(private readonly check: (t: TaskResultOut) => boolean) {}

  build(m: { missionId: string; name: string; status: MissionStatus; tasks: TaskRecord[] }, since?: string): BuiltMission {
    let memo = this.memos.get(m.missionId);
    if (memo) this.memos.delete(m.missionId);
    else memo = { parts: new Map<string, TaskPart>(), whole: undefined };
    this.memos.set(m.missionId, memo);
    if (this.memos.size > MEMO_MISSIONS) this.memos.delete(this.memos.keys().next().value!);
    const { parts } = memo;
    const stamp = this.seq + 1;
    const all = m.tasks.map((t, i) => {
      let part = parts.get(t.id);
      if (!part || part.index !== i || !sameRecord(t, part.copy)) {
        const out = taskOut(t);
        part = { copy: copyOf(t), index: i, out, text: missionTaskText(m.missionId, out, i), links: taskLinks(m.missionId, out.id, out.artifacts), checked: this.check(out), changedAt: stamp };
        parts.set(t.id, part);
        memo.whole = undefined;
        this.seq = stamp;
      }
      return part;
    });
    const cursor = `${this.instance}.${this.seq}`;
    const full: MissionResultOut = { missionId: m.missionId, status: m.status, tasks: all.map((p) => p.out) };
    const counts = taskCounts(full.tasks);
    const head = missionHead(full, m.name);
    const after = since === undefined ? undefined : this.cursorNumber(since);
    if (after !== undefined) {
      const changed = all.filter((p) => p.changedAt > after);
      const text = [`${head} (${countsText(counts)}); ${changed.length} changed after ${since}\n${cursorLine(cursor)}`, ...changed.map((p) => p.text)].join("\n\n");
      return { out: { ...full, tasks: changed.map((p) => p.out) }, text, links: changed.flatMap((p) => p.links), checked: changed.every((p) => p.checked), cursor, counts, since: "changes" };
    }
    // No part built again since the last whole result: its tasks' text and links serve again.
    if (memo.whole?.count !== all.length) memo.whole = { count: all.length, body: all.map((p) => p.text).join("\n\n"), links: all.flatMap((p) => p.links), checked: all.every((p) => p.checked) };
    const { body, links, checked } = memo.whole;
    const unknown = since === undefined ? "" : `\ncursor ${since} is not one this broker gave (it restarted since, or the cursor is another's): every task is listed`;
    const text = `${head}${unknown}\n${cursorLine(cursor)}${body ? `\n\n${body}` : ""}`;
    return { out: full, text, links, checked, cursor, counts, ...(since === undefined ? {} : { since: "unknown" as const }) };
  }

  /** The number of one of this process's cursors; undefined for any other (another process's, or one not given yet). */
  private cursorNumber(since: string): number | undefined {
    const m = CURSOR.exec(since);
    if (!m || m[1] !== this.instance) return undefined;
    const n = Number(m[2]);
    return n <= this.seq ? n : undefined;
  }
}

/** A cursor's shape, whether or not this process gave it. */
export const CURSOR = /^([0-9a-f]{8})\.(\d{1,15})$/;

const cursorLine = (cursor: string): string => `cursor: ${cursor} (status with since="${cursor}" lists only the tasks that change after this)`;

const countsText = (c: TaskCounts): string => TASK_STATUSES.filter((s) => c[s]).map((s) => `${c[s]} ${s}`).join(", ") || "no tasks";

/** A task as the tools return it: its record without the container's name, and no empty notes. */
export const taskOut = (t: TaskRecord): TaskResultOut => {
  const { container: _container, ...rest } = t;
  // Absent rather than empty, as in the record: notes only when there are some.
  if (!rest.notes?.length) delete rest.notes;
  return rest;
};
