// The broker's MCP server: `batch` launches a mission and (with wait) streams progress and
// returns every task's result; `reply` continues a conversation where it lives; `status` and
// `cancel` follow missions. One McpServer per client session; they share the broker's state.
import { readFileSync } from "node:fs";
import path from "node:path";
import { McpServer, ResourceTemplate } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { z } from "zod";
import { describeError, WrapperError } from "../errors.js";
import { readMissionFile, validateMission } from "../mission/load.js";
import type { MissionRunner, ProgressEvent } from "../mission/runner.js";
import { notesSuffix, type MissionRecord, type StateStore, type TaskRecord } from "../state/store.js";
import { VERSION } from "../version.js";
import type { WorkerPool } from "../worker/pool.js";
import { resolveInsideRoots } from "../worker/workspace.js";

export interface BrokerDeps {
  pool: WorkerPool;
  runner: MissionRunner;
  store: StateStore;
}

const UsageResult = z.object({ inputTokens: z.number(), cachedInputTokens: z.number(), outputTokens: z.number(), reasoningOutputTokens: z.number(), requests: z.number(), model: z.string().nullable(), profile: z.string() });

const TaskResult = {
  id: z.string(),
  status: z.string(),
  conversationId: z.string().nullable(),
  finalMessage: z.string().nullable(),
  error: z.string().nullable(),
  artifacts: z.array(z.object({ path: z.string(), size: z.number(), sha256: z.string(), redacted: z.number().optional().describe("how many known secrets were replaced by [redacted] in the copy") })),
  startedAt: z.string().nullable(),
  finishedAt: z.string().nullable(),
  notes: z.array(z.string()).optional().describe("what the broker saw besides Codex's own account, e.g. a command killed for exceeding the memory limit"),
  usage: UsageResult
    .optional()
    .describe("tokens the task's model calls used, metered by the broker's relay from the model's own answers"),
  errorCode: z.enum(["check_failed", "check_timed_out", "budget_exceeded"]).optional().describe("what decided a failure the broker found: the task's check, or a token budget (max_tokens)"),
  maxAttempts: z.number().optional().describe("the attempts the task may take to pass its check"),
  attempts: z
    .array(
      z.object({
        attempt: z.number(),
        turn: z.string().describe("how Codex's turn ended"),
        turnError: z.string().nullable(),
        startedAt: z.string(),
        finishedAt: z.string(),
        durationMs: z.number(),
        usage: UsageResult.optional(),
        check: z.object({ command: z.string(), exitCode: z.number().nullable(), timedOut: z.boolean(), durationMs: z.number(), bytes: z.number(), outputTail: z.string() }).optional(),
      }),
    )
    .optional()
    .describe("each attempt of a task with a check: its turn, its check's result, time and usage"),
};
const MissionResult = { missionId: z.string(), status: z.string(), tasks: z.array(z.object(TaskResult)) };

const taskOut = (t: TaskRecord): z.infer<z.ZodObject<typeof TaskResult>> => ({
  id: t.id,
  status: t.status,
  conversationId: t.conversationId,
  finalMessage: t.finalMessage,
  error: t.error,
  artifacts: t.artifacts,
  startedAt: t.startedAt,
  finishedAt: t.finishedAt,
  ...(t.notes?.length ? { notes: t.notes } : {}),
  ...(t.usage ? { usage: t.usage } : {}),
  ...(t.errorCode ? { errorCode: t.errorCode } : {}),
  ...(t.maxAttempts ? { maxAttempts: t.maxAttempts, attempts: t.attempts ?? [] } : {}),
});
const missionOut = (m: MissionRecord) => ({ missionId: m.missionId, status: m.status, tasks: m.tasks.map(taskOut) });

function summaryText(m: MissionRecord): string {
  const lines = m.tasks.map((t) => `- ${t.id}: ${t.status}${t.conversationId ? ` (conversation ${t.conversationId})` : ""}${t.error ? ` — ${t.error.split("\n")[0]}` : t.finalMessage ? ` — ${t.finalMessage.split("\n")[0]!.slice(0, 200)}` : ""}${notesSuffix(t.notes)}`);
  return `mission ${m.name} (${m.missionId}): ${m.status}\n${lines.join("\n")}`;
}

/** An error as a tool result the model can read (not a protocol error). */
function toolError(e: unknown): CallToolResult {
  return { isError: true, content: [{ type: "text", text: describeError(e) }] };
}

export function createBrokerServer(deps: BrokerDeps): McpServer {
  const server = new McpServer({ name: "codex-mcp-wrapper", version: VERSION });

  server.registerTool(
    "batch",
    {
      title: "Run a mission of Codex tasks",
      description:
        "Runs a mission: each task is a prompt that a Codex worker carries out in its own container on the given workspace. Give the mission inline (`mission`: {name, tasks: [{id, prompt, sandbox?, artifacts?, timeout?}], defaults?}) or as a file path (`mission_path`). With wait=true (default) it returns when every task has finished, with each task's status, final message, conversation id (for `reply`) and artifacts; with wait=false it returns the missionId at once (poll `status`).",
      inputSchema: {
        mission: z.record(z.string(), z.unknown()).optional().describe("The mission object: {name, workspace?, defaults?, tasks: [{id, prompt, ...}]}"),
        mission_path: z.string().optional().describe("Path of a mission file (JSON or YAML) on the broker's machine"),
        workspace: z.string().optional().describe("Directory the tasks work in (overrides the mission's workspace)"),
        wait: z.boolean().optional().describe("Wait for the mission to finish (default true)"),
      },
      outputSchema: MissionResult,
    },
    async (args, extra) => {
      try {
        if (!args.mission === !args.mission_path) throw new WrapperError("MISSION_INVALID", "give exactly one of `mission` (an object) or `mission_path` (a file)");
        // A file the client names on the broker's machine: only under the allowed roots.
        const raw = args.mission ?? readMissionFile(resolveInsideRoots(args.mission_path!, deps.pool.config.allowedWorkspaceRoots, "mission_path", "file"));
        const mission = validateMission(raw, deps.pool.config, args.mission_path ?? "mission");
        const progressToken = extra._meta?.progressToken;
        let progress = 0;
        const total = mission.tasks.length;
        // Every notification is awaited before the result goes out, so progress never trails it.
        const sent: Promise<void>[] = [];
        const notify = (message: string): void => {
          if (progressToken === undefined) return;
          sent.push(extra.sendNotification({ method: "notifications/progress", params: { progressToken, progress, total, message } }).catch(() => {}));
        };
        const onProgress = (e: ProgressEvent): void => {
          if (e.kind === "task_started") notify(`task ${e.taskId} started on ${e.container}`);
          else if (e.kind === "command") notify(`task ${e.taskId}: $ ${e.command.split("\n")[0]!.slice(0, 200)}`);
          else if (e.kind === "agent_message") notify(`task ${e.taskId}: ${e.text.split("\n")[0]!.slice(0, 200)}`);
          else if (e.kind === "check") notify(`task ${e.taskId}: check${e.of > 1 ? ` (attempt ${e.attempt}/${e.of})` : ""}: $ ${e.command.split("\n")[0]!.slice(0, 200)}`);
          else if (e.kind === "attempt") notify(`task ${e.taskId}: attempt ${e.attempt}/${e.of} (${e.reason})`);
          else {
            progress++;
            notify(`task ${e.taskId} ${e.record.status}`);
          }
        };
        const { missionId, done } = deps.runner.start(mission, { workspace: args.workspace, onProgress });
        if (args.wait === false) {
          const rec = deps.runner.status(missionId);
          return { structuredContent: missionOut(rec), content: [{ type: "text", text: `mission ${missionId} started (${total} tasks); call status with this missionId to follow it` }] };
        }
        const rec = await done;
        await Promise.all(sent);
        // The SDK's client handles notifications a microtask late but responses at once: a result
        // in the same chunk as the last progress would drop it. A short gap keeps them apart.
        if (progressToken !== undefined) await new Promise((r) => setTimeout(r, 25));
        return { structuredContent: missionOut(rec), content: [{ type: "text", text: summaryText(rec) }] };
      } catch (e) {
        return toolError(e);
      }
    },
  );

  server.registerTool(
    "reply",
    {
      title: "Continue a Codex conversation",
      description: "Sends a follow-up prompt to a conversation started by `batch` (its conversationId). It runs on the container that holds the conversation (or a replacement on the same Codex home) and returns the same shape as one task of `batch`.",
      inputSchema: {
        conversationId: z.string().describe("A conversationId from a batch or reply result"),
        prompt: z.string().min(1).describe("The next message for Codex"),
        timeout_seconds: z.number().positive().optional().describe("Interrupt the turn after this many seconds"),
      },
      outputSchema: TaskResult,
    },
    async (args) => {
      try {
        if (Buffer.byteLength(args.prompt) > deps.pool.config.maxPromptBytes) throw new WrapperError("MISSION_INVALID", `prompt: more than ${deps.pool.config.maxPromptBytes} bytes (broker.max_prompt_bytes)`);
        const startedAt = new Date().toISOString();
        const r = await deps.pool.runTurn({ conversationId: args.conversationId, prompt: args.prompt, timeoutMs: args.timeout_seconds ? args.timeout_seconds * 1000 : undefined });
        const out = {
          id: args.conversationId,
          status: r.outcome.status,
          conversationId: r.conversationId,
          finalMessage: r.outcome.finalMessage,
          error: r.outcome.error,
          artifacts: [],
          startedAt,
          finishedAt: new Date().toISOString(),
          ...(r.notes ? { notes: r.notes } : {}),
          ...(r.usage ? { usage: r.usage } : {}),
        };
        const text = r.outcome.error ? `${r.outcome.status}: ${r.outcome.error}` : (r.outcome.finalMessage ?? r.outcome.status);
        return { structuredContent: out, content: [{ type: "text", text: `${text}${notesSuffix(r.notes)}` }], isError: r.outcome.status !== "succeeded" };
      } catch (e) {
        return toolError(e);
      }
    },
  );

  server.registerTool(
    "status",
    {
      title: "Mission status",
      description: "The status of a mission and its tasks (missionId), or of the recent missions (no argument).",
      inputSchema: { missionId: z.string().optional().describe("A missionId from batch") },
    },
    async (args) => {
      try {
        if (args.missionId) {
          const rec = deps.runner.status(args.missionId);
          return { structuredContent: missionOut(rec), content: [{ type: "text", text: summaryText(rec) }] };
        }
        const recent = deps.store.listMissions(20).map((m) => ({ missionId: m.missionId, name: m.name, status: m.status, createdAt: m.createdAt, tasks: m.tasks.length }));
        return { structuredContent: { missions: recent }, content: [{ type: "text", text: recent.map((m) => `${m.missionId} ${m.name}: ${m.status} (${m.tasks} tasks)`).join("\n") || "no missions yet" }] };
      } catch (e) {
        return toolError(e);
      }
    },
  );

  server.registerTool(
    "cancel",
    {
      title: "Cancel a mission or a task",
      description: "Cancels a running mission (missionId), or one task of it (taskId too). Running Codex turns are interrupted.",
      inputSchema: { missionId: z.string(), taskId: z.string().optional() },
    },
    async (args) => {
      const ok = deps.runner.cancel(args.missionId, args.taskId);
      if (!ok) {
        try {
          deps.runner.status(args.missionId); // an unknown mission says so, with what to do
        } catch (e) {
          return toolError(e);
        }
      }
      return ok
        ? { content: [{ type: "text", text: `cancelling ${args.taskId ? `task ${args.taskId} of ` : ""}mission ${args.missionId}` }] }
        : toolError(new Error(`missionId: mission ${args.missionId}${args.taskId ? ` has no running task ${args.taskId}` : " is not running"}`));
    },
  );

  // Each artifact is a resource: codex-wrapper://missions/<missionId>/artifacts/<taskId>/<path>.
  const artifactUri = (missionId: string, taskId: string, file: string): string => `codex-wrapper://missions/${missionId}/artifacts/${taskId}/${file}`;
  server.registerResource(
    "artifacts",
    new ResourceTemplate("codex-wrapper://missions/{missionId}/artifacts/{taskId}/{+path}", {
      list: async () => ({
        resources: deps.store.listMissions(20).flatMap((m) =>
          m.tasks.flatMap((t) => t.artifacts.map((a) => ({ uri: artifactUri(m.missionId, t.id, a.path), name: `${m.name}/${t.id}/${a.path}`, description: `sha256 ${a.sha256}, ${a.size} bytes` }))),
        ),
      }),
    }),
    { title: "Mission artifacts", description: "Files a task produced (its artifact globs), as collected when it finished" },
    async (uri, vars) => {
      const missionId = String(vars.missionId);
      const taskId = String(vars.taskId);
      const file = decodeURIComponent(String(vars.path));
      const record = deps.store.readMission(missionId).tasks.find((t) => t.id === taskId);
      const entry = record?.artifacts.find((a) => a.path === file);
      if (!entry) throw new WrapperError("NOT_FOUND", `no artifact ${file} for task ${taskId} of mission ${missionId}`);
      const root = path.join(deps.store.missionDir(missionId), "artifacts", taskId);
      const full = path.resolve(root, entry.path);
      if (!full.startsWith(root + path.sep)) throw new WrapperError("NOT_FOUND", `artifact path ${file} leaves the artifacts directory`);
      const data = readFileSync(full);
      const text = data.toString("utf8");
      return Buffer.from(text, "utf8").equals(data)
        ? { contents: [{ uri: uri.href, mimeType: "text/plain", text }] }
        : { contents: [{ uri: uri.href, mimeType: "application/octet-stream", blob: data.toString("base64") }] };
    },
  );

  return server;
}
