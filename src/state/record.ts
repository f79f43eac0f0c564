// The mission and task records, as zod schemas: the one source of the stored record's shape and
// of the MCP tools' results (mcp/server.ts derives its output schemas from these). A record file
// written by any earlier version still parses: every field added since the first version is
// optional, and absent nullable fields read as null.
import { z } from "zod";
import { ERROR_CODES, type ErrorCode } from "../errors.js";
import { TaskUsageSchema } from "../relay/usage.js";

export const TASK_STATUSES = ["queued", "running", "succeeded", "failed", "timed_out", "cancelled", "lost", "interrupted"] as const;
export const TaskStatusSchema = z.enum(TASK_STATUSES);
export type TaskStatus = z.infer<typeof TaskStatusSchema>;

/** Tasks by status, every status named (0 where none). */
export type TaskCounts = Record<TaskStatus, number>;

export function taskCounts(tasks: Iterable<{ status: TaskStatus }>): TaskCounts {
  const counts = Object.fromEntries(TASK_STATUSES.map((s) => [s, 0])) as TaskCounts;
  for (const t of tasks) counts[t.status]++;
  return counts;
}

export const MissionStatusSchema = z.enum(["running", "succeeded", "failed", "cancelled", "interrupted"]);
export type MissionStatus = z.infer<typeof MissionStatusSchema>;

export const ArtifactEntrySchema = z.object({
  path: z.string().describe("relative to the workspace; also the resource codex-wrapper://missions/<missionId>/artifacts/<taskId>/<path>"),
  size: z.number(),
  sha256: z.string(),
  redacted: z.number().optional().describe("how many known secrets were replaced by [redacted] in the copy (absent when none)"),
});
export type ArtifactEntry = z.infer<typeof ArtifactEntrySchema>;

/**
 * Why a task did not succeed: what the broker decided (its check, a token budget, a patch that
 * did not apply), else the code of the error that ended it (errors.ts), in lower case.
 */
export const TaskErrorCodeSchema = z.enum(["check_failed", "check_timed_out", "budget_exceeded", "patch_not_applied", ...ERROR_CODES.map((c) => c.toLowerCase() as Lowercase<ErrorCode>)]);
/** A broker error's code as a task's errorCode. */
export const taskErrorCode = (code: ErrorCode): TaskErrorCode => code.toLowerCase() as Lowercase<ErrorCode>;
export type TaskErrorCode = z.infer<typeof TaskErrorCodeSchema>;

/** One run of a task's check. */
export const CheckRecordSchema = z.object({
  command: z.string(),
  exitCode: z.number().nullable().describe("null when unknown (the container went away under it)"),
  timedOut: z.boolean(),
  durationMs: z.number(),
  bytes: z.number().describe("bytes it printed (its whole output is in the check.log artifact, within a bound)"),
  outputTail: z.string().describe("its last lines"),
});
export type CheckRecord = z.infer<typeof CheckRecordSchema>;

/** One attempt of a task: a Codex turn, then (if the turn succeeded) its check. */
export const AttemptRecordSchema = z.object({
  attempt: z.number(),
  turn: TaskStatusSchema.describe("how Codex's turn ended"),
  turnError: z.string().nullable(),
  startedAt: z.string(),
  finishedAt: z.string(),
  durationMs: z.number(),
  usage: TaskUsageSchema.optional(),
  check: CheckRecordSchema.optional(),
});
export type AttemptRecord = z.infer<typeof AttemptRecordSchema>;

export const TaskRecordSchema = z.object({
  id: z.string(),
  status: TaskStatusSchema,
  conversationId: z.string().nullable().default(null).describe("for `reply`"),
  finalMessage: z.string().nullable().default(null).describe("Codex's last message, whole"),
  error: z.string().nullable().default(null),
  container: z.string().nullable().default(null),
  engine: z.string().optional().describe("the Docker engine the task ran on (wrapper.toml [[engines]]; \"local\" without them)"),
  startedAt: z.string().nullable().default(null),
  finishedAt: z.string().nullable().default(null),
  artifacts: z.array(ArtifactEntrySchema).default([]),
  notes: z.array(z.string()).optional().describe("what the broker saw besides Codex's own account, e.g. a command killed for exceeding the memory limit"),
  usage: TaskUsageSchema.optional().describe("tokens the task's model calls used, metered by the broker's relay from the model's own answers"),
  errorCode: TaskErrorCodeSchema.optional().describe("why the task did not succeed, stable for programs: its check (check_failed, check_timed_out), a token budget (budget_exceeded), an isolated task's patch that did not apply (patch_not_applied), else the broker error that ended it in lower case (turn_timed_out, turn_failed, worker_exited, cancelled, conversation_lost, …)"),
  maxAttempts: z.number().optional().describe("the attempts the task may take to pass its check"),
  attempts: z.array(AttemptRecordSchema).optional().describe("each attempt of a task with a check: its turn, its check's result, time and usage"),
});
export type TaskRecord = z.infer<typeof TaskRecordSchema>;

export const MissionRecordSchema = z.object({
  missionId: z.string(),
  name: z.string(),
  status: MissionStatusSchema,
  workspace: z.string(),
  createdAt: z.string(),
  updatedAt: z.string(),
  finishedAt: z.string().nullable().default(null),
  tasks: z.array(TaskRecordSchema),
  bundle: z.string().nullable().default(null).describe("the artifact bundle (tar.gz), if any artifact was kept"),
  bundleZip: z.string().nullable().optional().describe("the zip bundle, when the mission asked for one"),
});
export type MissionRecord = z.infer<typeof MissionRecordSchema>;
