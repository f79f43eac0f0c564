// The tools' results for clients whose model reads only text: a rendering of the structured
// result with nothing dropped (every task's status, conversation, times, usage, attempts, notes,
// error, artifacts and whole final message), and a resource_link for each artifact. Only a final
// message longer than FINAL_MESSAGE_TEXT_LIMIT is cut, with a note naming where the rest is.
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
  return tasks.flatMap((t) =>
    t.artifacts.map((a) => ({
      type: "resource_link" as const,
      uri: artifactUri(missionId, t.id, a.path),
      name: a.path,
      title: a.path,
      description: `artifact of task ${t.id}: ${a.size} bytes, sha256 ${a.sha256}`,
      // The table's type; a file it does not know is typed by its content when it is read.
      ...(mimeTypeByName(a.path) ? { mimeType: mimeTypeByName(a.path) } : {}),
      size: a.size,
    })),
  );
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

/** A mission's result, readable, every task whole. */
export function missionText(m: MissionResultOut, name?: string): string {
  const head = `mission ${name ? `${name} ` : ""}(${m.missionId}): ${m.status}, ${m.tasks.length} task${m.tasks.length === 1 ? "" : "s"}`;
  const tasks = m.tasks.map((t, i) =>
    taskText(t, `task ${t.id}`, `structuredContent.tasks[${i}].finalMessage, or the resource ${finalMessageUri(m.missionId, t.id)}`, (file) => artifactUri(m.missionId, t.id, file)),
  );
  return [head, ...tasks].join("\n\n");
}
