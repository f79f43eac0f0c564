// The tools' results for clients whose model reads only text: a rendering of the structured
// result with nothing dropped (every task's status, conversation, times, usage, attempts, notes,
// error, artifacts and whole final message), and a resource_link for each artifact. Only a final
// message longer than FINAL_MESSAGE_TEXT_LIMIT is cut, with a note naming where the rest is.
import { isDeepStrictEqual } from "node:util";
import type { ResourceLink } from "@modelcontextprotocol/sdk/types.js";
import { mimeTypeByName } from "../artifacts/mime.js";
import type { TaskUsage } from "../relay/usage.js";
import type { AttemptRecord, MissionStatus, TaskRecord } from "../state/record.js";

/** Characters of a final message the text carries; the structured result always has all of it. */
export const FINAL_MESSAGE_TEXT_LIMIT = 16_000;

/** A task as the tools return it: the record without the broker's container name. */
export type TaskResultOut = Omit<TaskRecord, "container">;
// A type, not an interface: a tool result's structuredContent is an index-signature object.
export type MissionResultOut = { missionId: string; status: MissionStatus; tasks: TaskResultOut[] };

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
 * A copy of a record's value to compare it with later (isDeepStrictEqual): its objects and arrays
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

/** A task as a mission's result shows it, and what it was made from. */
interface TaskPart {
  /** A copy of the record it was made from (copyOf): the part is reused while the record is the same. */
  copy: unknown;
  index: number;
  out: TaskResultOut;
  text: string;
  links: ResourceLink[];
  /** Whether `out` passed the output schema's check. */
  checked: boolean;
}

/**
 * A mission as a tool result (structured, text and links, as `missionText` and `artifactLinks`
 * make them), built again only for the tasks whose record changed since the mission was last
 * asked for. A client that polls `status` ten times a second during a 1,000-task mission had the
 * whole result built and checked against the output schema each time (about 15 ms of CPU a call
 * on this project's 2-core machines), though only the few tasks that ended in between changed.
 * `check` is the output schema's check of one task; `checked` says every task passed it.
 */
export class MissionResults {
  /** By record (the runner's live one while the mission runs, then the store's), by task id. */
  private readonly parts = new WeakMap<object, { parts: Map<string, TaskPart>; last: { head: string; count: number; text: string; links: ResourceLink[]; checked: boolean } | undefined }>();

  constructor(private readonly check: (t: TaskResultOut) => boolean) {}

  build(m: { missionId: string; name: string; status: MissionStatus; tasks: TaskRecord[] }): { out: MissionResultOut; text: string; links: ResourceLink[]; checked: boolean } {
    let memo = this.parts.get(m);
    if (!memo) this.parts.set(m, (memo = { parts: new Map<string, TaskPart>(), last: undefined }));
    const { parts } = memo;
    const tasks: TaskResultOut[] = [];
    let changed = memo.last?.count !== m.tasks.length;
    m.tasks.forEach((t, i) => {
      let part = parts.get(t.id);
      if (!part || part.index !== i || !isDeepStrictEqual(t, part.copy)) {
        const out = taskOut(t);
        part = { copy: copyOf(t), index: i, out, text: missionTaskText(m.missionId, out, i), links: taskLinks(m.missionId, out.id, out.artifacts), checked: this.check(out) };
        parts.set(t.id, part);
        changed = true;
      }
      tasks.push(part.out);
    });
    const out: MissionResultOut = { missionId: m.missionId, status: m.status, tasks };
    const head = missionHead(out, m.name);
    // Nothing changed since the last call: its text and links serve again.
    if (!changed && memo.last?.head === head) return { out, text: memo.last.text, links: memo.last.links, checked: memo.last.checked };
    const all = tasks.map((t) => parts.get(t.id)!);
    const text = [head, ...all.map((p) => p.text)].join("\n\n");
    const links = all.flatMap((p) => p.links);
    const checked = all.every((p) => p.checked);
    memo.last = { head, count: tasks.length, text, links, checked };
    return { out, text, links, checked };
  }
}

/** A task as the tools return it: its record without the container's name, and no empty notes. */
export const taskOut = (t: TaskRecord): TaskResultOut => {
  const { container: _container, ...rest } = t;
  // Absent rather than empty, as in the record: notes only when there are some.
  if (!rest.notes?.length) delete rest.notes;
  return rest;
};
