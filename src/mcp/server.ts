// The broker's MCP server: `batch` launches a mission and (with wait) streams progress and
// returns every task's result; `reply` continues a conversation where it lives; `status` and
// `cancel` follow missions; each artifact (and each task's final message) is a resource. One
// server per client session; they share the broker's state.
//
// tools/list, tools/call and resources/read are the broker's own handlers on the SDK's Server,
// to answer to the letter of the spec (2025-11-25) where McpServer does not: an unknown tool is a
// protocol error (-32602), not a tool result; a missing resource is -32002, not -32602; error
// messages carry no "MCP error <code>:" of their own (the client adds one); and a failed call's
// `structuredContent` ({code, message}) is allowed by the tool's output schema, which the SDK's
// client checks on error results too.
import { readFileSync } from "node:fs";
import path from "node:path";
import { McpServer, ResourceTemplate, type ReadResourceTemplateCallback } from "@modelcontextprotocol/sdk/server/mcp.js";
import { Protocol, type RequestHandlerExtra } from "@modelcontextprotocol/sdk/shared/protocol.js";
import { CallToolRequestSchema, ListToolsRequestSchema, ReadResourceRequestSchema, type CallToolResult, type ReadResourceResult, type ServerNotification, type ServerRequest, type Tool } from "@modelcontextprotocol/sdk/types.js";
import { z } from "zod";
import { outcomeCode, type DriverEvent } from "../codex/driver.js";
import { artifactMimeType } from "../artifacts/mime.js";
import { formatZodIssues, WrapperError } from "../errors.js";
import { readMissionFile, validateMission } from "../mission/load.js";
import type { MissionRunner, ProgressEvent } from "../mission/runner.js";
import { MissionStatusSchema, TASK_STATUSES, taskErrorCode, TaskRecordSchema, type MissionRecord, type TaskStatus } from "../state/record.js";
import type { StateStore } from "../state/store.js";
import { VERSION } from "../version.js";
import type { WorkerPool } from "../pool/pool.js";
import { resolveInsideRoots } from "../worker/workspace.js";
import { clientApprover } from "./approvals.js";
import { ProgressMeter } from "./progress.js";
import { ProtocolError, resourceError, RPC, toolFailure } from "./protocol-error.js";
import { artifactUri, CURSOR, MissionResults, taskLinks, taskText, type MissionResultOut, type TaskResultOut } from "./results.js";

export interface BrokerDeps {
  pool: WorkerPool;
  runner: MissionRunner;
  store: StateStore;
  /** Where each tool call's duration goes (the broker's metrics); none in a bare server. */
  metrics?: { toolCall(tool: string, outcome: "ok" | "error" | "protocol_error", seconds: number): void };
}

type Extra = RequestHandlerExtra<ServerRequest, ServerNotification>;

/** Every result of a broker in rehearsal mode carries its notice (config/rehearsal.ts); no other does. */
const Rehearsal = { rehearsal: z.string().optional().describe("only in rehearsal mode: the answers are scripted by the broker's rehearsal model and no OpenAI call is made") };
/** A task as the tools return it: the stored record (one schema) without the container's name. */
export const TaskResult = TaskRecordSchema.omit({ container: true });
export const MissionResult = z.object({
  missionId: z.string(),
  status: MissionStatusSchema,
  tasks: z.array(TaskResult),
  counts: z.object(Object.fromEntries(TASK_STATUSES.map((s) => [s, z.number()])) as Record<TaskStatus, z.ZodNumber>).optional().describe("the mission's tasks by status, every task counted (also when `tasks` lists only those that changed)"),
  cursor: z.string().optional().describe("pass as `since` to a later status call of this mission to get only the tasks that change after this result"),
  changedAfter: z.string().optional().describe("present when `tasks` lists only the tasks that changed after this cursor (status with since); absent when it lists every task"),
  ...Rehearsal,
});
const RecentMissions = z.object({ missions: z.array(z.object({ missionId: z.string(), name: z.string(), status: MissionStatusSchema, createdAt: z.string(), tasks: z.number() })), ...Rehearsal });
const Cancelling = z.object({ missionId: z.string(), taskId: z.string().optional(), status: z.literal("cancelling"), ...Rehearsal });
/** What a failed call carries: the code and message of the error that failed, unchanged. */
export const ToolFailure = z.object({
  code: z.string().describe("the broker's stable error code, e.g. WORKSPACE_REFUSED, MISSION_INVALID, NOT_FOUND, INVALID_ARGUMENTS"),
  message: z.string(),
  details: z.record(z.string(), z.unknown()).optional(),
  ...Rehearsal,
});

/** A result as a broker in rehearsal mode gives it: the notice first in the text, and in structuredContent. */
function withRehearsalNotice(result: CallToolResult, notice: string): CallToolResult {
  const [first, ...rest] = result.content;
  const content: CallToolResult["content"] = first?.type === "text" ? [{ ...first, text: `${notice}\n\n${first.text}` }, ...rest] : [{ type: "text", text: notice }, ...result.content];
  return { ...result, content, ...(result.structuredContent ? { structuredContent: { ...result.structuredContent, rehearsal: notice } } : {}) };
}

/** Structured results already checked against their tool's output schema (a mission's, part by part). */
const checkedResults = new WeakSet<object>();
const missionResults = new MissionResults((t) => TaskResult.safeParse(t).success);

/**
 * A mission as a tool result: structured, readable text with every task whole, and a link per
 * artifact; with `since` (a cursor of an earlier result), only the tasks that changed after it.
 */
function missionResult(m: MissionRecord, since?: string): CallToolResult & { structuredContent: MissionResultOut } {
  const built = missionResults.build(m, since);
  const out: MissionResultOut = { ...built.out, counts: built.counts, cursor: built.cursor, ...(built.since === "changes" ? { changedAfter: since } : {}) };
  // Each task was checked when it was built; the rest of the result here. A result that fails is
  // left to the whole check in tools/call, which says where.
  if (built.checked && MissionResult.safeParse({ ...out, tasks: [] }).success) checkedResults.add(out);
  return { structuredContent: out, content: [{ type: "text", text: built.text }, ...built.links] };
}

/** A tool of this server: its schemas and what it does with arguments that fit its input. */
interface BrokerTool {
  definition: Tool;
  output: z.ZodType;
  call(args: unknown, extra: Extra): Promise<CallToolResult>;
}

interface ToolSpec<I extends z.ZodRawShape> {
  title: string;
  description: string;
  input: I;
  /** The shapes of a successful result (a failure's is ToolFailure, for every tool). */
  output: z.ZodType[];
  run(args: z.infer<z.ZodObject<I>>, extra: Extra): Promise<CallToolResult>;
}

/** Draft-07, as the SDK's own McpServer lists schemas (its client validates with Ajv's draft-07). */
function jsonSchema(schema: z.ZodType, io: "input" | "output"): Record<string, unknown> {
  const { $schema: _drop, ...rest } = z.toJSONSchema(schema, { target: "draft-7", io, unrepresentable: "any" }) as Record<string, unknown>;
  return rest;
}

function defineTool<I extends z.ZodRawShape>(name: string, spec: ToolSpec<I>): BrokerTool {
  const input = z.object(spec.input);
  const output = spec.output.reduce<z.ZodType>((u, s) => u.or(s), ToolFailure);
  return {
    definition: {
      name,
      title: spec.title,
      description: spec.description,
      inputSchema: { type: "object", ...jsonSchema(input, "input") },
      outputSchema: { type: "object", anyOf: [...spec.output, ToolFailure].map((s) => jsonSchema(s, "output")) },
    },
    output,
    async call(args, extra) {
      // Arguments that do not fit are a tool execution error (the spec's "input validation
      // errors"), so that the model sees what to correct.
      const parsed = input.safeParse(args ?? {});
      if (!parsed.success) return toolFailure(new WrapperError("INVALID_ARGUMENTS", `${name}: ${formatZodIssues(parsed.error, args ?? {}).join("; ")}`));
      try {
        return await spec.run(parsed.data, extra);
      } catch (e) {
        return toolFailure(e);
      }
    },
  };
}

/** A request schema that takes any params: the handler checks them, to answer with the right code. */
const anyParams = <M extends string>(method: M) => z.object({ method: z.literal(method), params: z.unknown().optional() });

/** A progress message's text: the first line, at most 200 characters. */
const line = (s: string): string => s.split("\n")[0]!.slice(0, 200);

/**
 * Waits until a call's progress notifications are sent, before its result. The SDK's client
 * handles notifications a microtask late but responses at once: a result in the same chunk as the
 * last progress would drop it. A short gap keeps them apart.
 */
async function progressSent(sent: Promise<void>[], progressToken: unknown): Promise<void> {
  await Promise.all(sent);
  if (progressToken !== undefined) await new Promise((r) => setTimeout(r, 25));
}

/** Progress messages: what happened, in a line. */
function progressMessage(e: ProgressEvent): string {
  switch (e.kind) {
    case "task_started":
      return `task ${e.taskId} started on ${e.container}`;
    case "command":
      return `task ${e.taskId}: $ ${line(e.command)}`;
    case "agent_message":
      return `task ${e.taskId}: ${line(e.text)}`;
    case "check":
      return `task ${e.taskId}: check${e.of > 1 ? ` (attempt ${e.attempt}/${e.of})` : ""}: $ ${line(e.command)}`;
    case "attempt":
      return `task ${e.taskId}: attempt ${e.attempt}/${e.of} (${e.reason})`;
    case "task_finished":
      return `task ${e.taskId} ${e.record.status}`;
  }
}

/**
 * Calls `cancel` when the client cancels the request (notifications/cancelled). The SDK aborts
 * `extra.signal` for that and also when the connection closes; a closed connection is not a
 * cancellation (a client that drops its connection leaves its mission running, and `status`
 * finds it later), and is told apart by the server having no transport once the abort is over.
 */
function onCancelled(server: McpServer, signal: AbortSignal, cancel: () => void): { cancelled: Promise<void>; dispose: () => void } {
  let resolve!: () => void;
  const cancelled = new Promise<void>((r) => (resolve = r));
  const listener = (): void => {
    queueMicrotask(() => {
      if (server.server.transport !== undefined) cancel();
      resolve();
    });
  };
  if (signal.aborted) listener();
  else signal.addEventListener("abort", listener, { once: true });
  return { cancelled, dispose: () => signal.removeEventListener("abort", listener) };
}

export function createBrokerServer(deps: BrokerDeps): McpServer {
  const server = new McpServer({ name: "codex-mcp-wrapper", version: VERSION });
  const tools = new Map<string, BrokerTool>();

  tools.set(
    "batch",
    defineTool("batch", {
      title: "Run a mission of Codex tasks",
      description:
        "Runs a mission: each task is a prompt that a Codex worker carries out in its own container on the given workspace. Give the mission inline (`mission`: {name, tasks: [{id, prompt, sandbox?, artifacts?, timeout?}], defaults?}) or as a file path (`mission_path`). With wait=true (default) it returns when every task has finished, with each task's status, final message, conversation id (for `reply`) and artifacts; with wait=false it returns the missionId at once (poll `status`). Cancelling a waiting call cancels the mission's tasks, unless detach=true.",
      input: {
        mission: z.record(z.string(), z.unknown()).optional().describe("The mission object: {name, workspace?, defaults?, tasks: [{id, prompt, ...}]}"),
        mission_path: z.string().optional().describe("Path of a mission file (JSON or YAML) on the broker's machine"),
        workspace: z.string().optional().describe("Directory the tasks work in (overrides the mission's workspace)"),
        wait: z.boolean().optional().describe("Wait for the mission to finish (default true)"),
        detach: z.boolean().optional().describe("Keep the mission running if this call is cancelled (default false: cancelling the call cancels the mission's tasks)"),
      },
      output: [MissionResult],
      async run(args, extra) {
        if (!args.mission === !args.mission_path) throw new WrapperError("MISSION_INVALID", "give exactly one of `mission` (an object) or `mission_path` (a file)");
        // A file the client names on the broker's machine: only under the allowed roots.
        const raw = args.mission ?? readMissionFile(resolveInsideRoots(args.mission_path!, deps.pool.config.allowedWorkspaceRoots, "mission_path", "file"));
        const mission = validateMission(raw, deps.pool.config, args.mission_path ?? "mission");
        const progressToken = extra._meta?.progressToken;
        const waiting = args.wait !== false;
        const meter = new ProgressMeter(mission.tasks.length);
        // Progress only while the request is open (the spec: only for an in-progress request).
        let open = waiting && progressToken !== undefined;
        // Every notification is awaited before the result goes out, so progress never trails it.
        const sent: Promise<void>[] = [];
        const onProgress = (e: ProgressEvent): void => {
          if (!open || progressToken === undefined) return;
          const progress = e.kind === "task_finished" ? meter.finish(e.taskId) : meter.event(e.taskId);
          sent.push(extra.sendNotification({ method: "notifications/progress", params: { progressToken, progress, total: meter.total, message: progressMessage(e) } }).catch(() => {}));
        };
        // Approvals go to this client (if it declared elicitation) while this call waits for the mission.
        const callOver = new AbortController();
        const approver = (taskId: string) => clientApprover(server, extra, () => `Task ${taskId} of mission ${mission.name}`, () => waiting && !callOver.signal.aborted, callOver.signal);
        const { missionId, done } = deps.runner.start(mission, { workspace: args.workspace, onProgress, approve: approver });
        if (!waiting) {
          const started = missionResult(deps.runner.status(missionId));
          const { cursor } = started.structuredContent;
          return { ...started, content: [{ type: "text", text: `mission ${missionId} started (${mission.tasks.length} tasks); call status with this missionId to follow it, and since="${cursor}" for only the tasks that change after this` }] };
        }
        const abort = onCancelled(server, extra.signal, () => {
          if (!args.detach) deps.runner.cancel(missionId);
        });
        try {
          // A cancelled request gets no response (the SDK drops it): stop waiting at once.
          const rec = await Promise.race([done, abort.cancelled.then(() => deps.runner.status(missionId))]);
          await progressSent(sent, progressToken);
          return missionResult(rec);
        } finally {
          open = false;
          callOver.abort();
          abort.dispose();
        }
      },
    }),
  );

  tools.set(
    "reply",
    defineTool("reply", {
      title: "Continue a Codex conversation",
      description:
        "Sends a follow-up prompt to a conversation started by `batch` (its conversationId). It runs on the container that holds the conversation (or a replacement on the same Codex home) and returns the same shape as one task of `batch`. If the conversation's turn (or its task) is still running, it waits for that to end first: one turn of a conversation runs at a time. Cancelling the call interrupts the turn, unless detach=true.",
      input: {
        conversationId: z.string().describe("A conversationId from a batch or reply result"),
        prompt: z.string().min(1).describe("The next message for Codex"),
        timeout_seconds: z.number().positive().optional().describe("Interrupt the turn after this many seconds"),
        detach: z.boolean().optional().describe("Let the turn run on if this call is cancelled (default false: cancelling the call interrupts the turn)"),
      },
      output: [TaskResult.extend(Rehearsal)],
      async run(args, extra) {
        if (Buffer.byteLength(args.prompt) > deps.pool.config.maxPromptBytes) throw new WrapperError("MISSION_INVALID", `prompt: more than ${deps.pool.config.maxPromptBytes} bytes (broker.max_prompt_bytes)`);
        const startedAt = new Date().toISOString();
        const turn = new AbortController();
        const abort = onCancelled(server, extra.signal, () => {
          if (!args.detach) turn.abort();
        });
        const callOver = new AbortController();
        const approve = clientApprover(server, extra, () => `Conversation ${args.conversationId}`, () => !callOver.signal.aborted, callOver.signal);
        // Progress as batch's, of one: a wait for the conversation's earlier turn, its commands and messages.
        const progressToken = extra._meta?.progressToken;
        const meter = new ProgressMeter(1);
        const sent: Promise<void>[] = [];
        const progress = (message: string, end = false): void => {
          if (progressToken === undefined || callOver.signal.aborted) return;
          const value = end ? meter.finish("reply") : meter.event("reply");
          sent.push(extra.sendNotification({ method: "notifications/progress", params: { progressToken, progress: value, total: 1, message } }).catch(() => {}));
        };
        const onEvent = (e: DriverEvent): void => {
          if (e.kind === "command_started") progress(`$ ${line(e.command)}`);
          else if (e.kind === "agent_message") progress(line(e.text));
        };
        const onWait = (): void => progress("waiting for the conversation's earlier turn to end (one turn of a conversation runs at a time)");
        try {
          // On an isolated conversation, what the turn changed in its copy comes back as artifacts.
          const { result: r, artifacts, notes, patchRefused, task } = await deps.runner.reply({ conversationId: args.conversationId, prompt: args.prompt, timeoutMs: args.timeout_seconds ? args.timeout_seconds * 1000 : undefined, signal: turn.signal, approve, onEvent, onWait });
          const allNotes = [...(r.notes ?? []), ...notes];
          const status = patchRefused && r.outcome.status === "succeeded" ? "failed" : r.outcome.status;
          progress(`reply ${status}`, true);
          await progressSent(sent, progressToken);
          const out: TaskResultOut = {
            id: args.conversationId,
            status,
            conversationId: r.conversationId,
            finalMessage: r.outcome.finalMessage,
            error: patchRefused ?? r.outcome.error,
            ...(patchRefused ? { errorCode: "patch_not_applied" as const } : r.outcome.status !== "succeeded" && outcomeCode(r.outcome) ? { errorCode: taskErrorCode(outcomeCode(r.outcome)!) } : {}),
            artifacts,
            startedAt,
            finishedAt: new Date().toISOString(),
            ...(allNotes.length ? { notes: allNotes } : {}),
            ...(r.usage ? { usage: r.usage } : {}),
            ...(r.engine ? { engine: r.engine } : {}),
          };
          // A reply's artifacts are its task's (resources of the mission, under replies/<n>/).
          const uriOf = task ? (file: string) => artifactUri(task.missionId, task.taskId, file) : undefined;
          const text = taskText(out, `reply to ${args.conversationId}`, "structuredContent.finalMessage", uriOf);
          const links = task ? taskLinks(task.missionId, task.taskId, artifacts) : [];
          return { structuredContent: out, content: [{ type: "text", text }, ...links], isError: status !== "succeeded" };
        } finally {
          callOver.abort();
          abort.dispose();
        }
      },
    }),
  );

  tools.set(
    "status",
    defineTool("status", {
      title: "Mission status",
      description:
        "The status of a mission and its tasks (missionId), or of the recent missions (no argument). Each mission's result has a `cursor`: pass it as `since` in the next call to get only the tasks that changed after it (with the counts of all of them), which keeps polling a large mission cheap.",
      input: {
        missionId: z.string().optional().describe("A missionId from batch"),
        since: z
          .string()
          .regex(CURSOR, "not a cursor: pass the `cursor` of an earlier status or batch result, or leave since out for every task")
          .optional()
          .describe("the `cursor` of an earlier result of this mission: only the tasks that changed after it are listed"),
      },
      output: [MissionResult, RecentMissions],
      async run(args) {
        if (args.missionId) return missionResult(deps.runner.status(args.missionId), args.since);
        if (args.since !== undefined) throw new WrapperError("INVALID_ARGUMENTS", "since: a cursor names a moment of one mission's result; give its missionId too, or leave since out");
        const recent = deps.store.missionSummaries(20);
        const text = recent.map((m) => `${m.missionId} ${m.name}: ${m.status} (${m.tasks} tasks, created ${m.createdAt})`).join("\n") || "no missions yet";
        return { structuredContent: { missions: recent }, content: [{ type: "text", text }] };
      },
    }),
  );

  tools.set(
    "cancel",
    defineTool("cancel", {
      title: "Cancel a mission or a task",
      description: "Cancels a running mission (missionId), or one task of it (taskId too). Running Codex turns are interrupted.",
      input: { missionId: z.string(), taskId: z.string().optional() },
      output: [Cancelling],
      async run(args) {
        if (!deps.runner.cancel(args.missionId, args.taskId)) {
          deps.runner.status(args.missionId); // an unknown mission says so (NOT_FOUND), with what to do
          throw new WrapperError("NOT_RUNNING", `missionId: mission ${args.missionId}${args.taskId ? ` has no running task ${args.taskId}` : " is not running"}`);
        }
        const out = { missionId: args.missionId, ...(args.taskId ? { taskId: args.taskId } : {}), status: "cancelling" as const };
        return { structuredContent: out, content: [{ type: "text", text: `cancelling ${args.taskId ? `task ${args.taskId} of ` : ""}mission ${args.missionId}` }] };
      },
    }),
  );

  server.server.registerCapabilities({ tools: { listChanged: false } });
  server.server.setRequestHandler(ListToolsRequestSchema, () => ({ tools: [...tools.values()].map((t) => t.definition) }));
  // Registered with a schema that lets any params through, and on Protocol rather than Server:
  // the SDK answers a request that fails the handler's schema with -32603 and zod's JSON, and
  // Server's own tools/call check throws an McpError whose message the client prefixes twice.
  // A request that is not a tools/call request is a protocol error -32602 (the spec's "malformed
  // request"), said once.
  Protocol.prototype.setRequestHandler.call(server.server, anyParams("tools/call"), async (raw, extra) => {
    const parsed = CallToolRequestSchema.safeParse(raw);
    if (!parsed.success) throw new ProtocolError(RPC.INVALID_PARAMS, `tools/call: ${formatZodIssues(parsed.error, raw).join("; ")}`);
    const request = parsed.data;
    const tool = tools.get(request.params.name);
    if (!tool) throw new ProtocolError(RPC.INVALID_PARAMS, `Unknown tool: ${request.params.name}; this server's tools are ${[...tools.keys()].join(", ")}`, { tool: request.params.name });
    const started = performance.now();
    let outcome: "ok" | "error" | "protocol_error" = "protocol_error";
    try {
      const result = await tool.call(request.params.arguments, extra);
      if (!result.isError && !checkedResults.has(result.structuredContent ?? {})) {
        // The result is built from the same schemas; a mismatch is the broker's bug, said as one.
        const ok = tool.output.safeParse(result.structuredContent);
        if (!ok.success) throw new ProtocolError(RPC.INTERNAL_ERROR, `${request.params.name}: the broker built a result its output schema refuses: ${formatZodIssues(ok.error, result.structuredContent).join("; ")}`);
      }
      outcome = result.isError ? "error" : "ok";
      const rehearsal = deps.pool.config.rehearsal;
      return rehearsal ? withRehearsalNotice(result, rehearsal.notice) : result;
    } finally {
      deps.metrics?.toolCall(request.params.name, outcome, (performance.now() - started) / 1000);
    }
  });

  // Each artifact is a resource: codex-wrapper://missions/<missionId>/artifacts/<taskId>/<path>.
  const artifacts = new ResourceTemplate("codex-wrapper://missions/{missionId}/artifacts/{taskId}/{+path}", {
    list: async () => ({
      resources: deps.store.listMissions(20).flatMap((m) =>
        m.tasks.flatMap((t) =>
          t.artifacts.map((a) => ({
            uri: artifactUri(m.missionId, t.id, a.path),
            name: `${m.name}/${t.id}/${a.path}`,
            title: a.path,
            description: `artifact of task ${t.id} of mission ${m.name} (${m.missionId}): ${a.size} bytes, sha256 ${a.sha256}`,
            mimeType: artifactMimeType(a.path, true),
            size: a.size,
          })),
        ),
      ),
    }),
  });
  const readArtifact: ReadResourceTemplateCallback = async (uri, vars) => {
    const missionId = String(vars.missionId);
    const taskId = String(vars.taskId);
    const file = decodeURIComponent(String(vars.path));
    const record = deps.store.readMission(missionId).tasks.find((t) => t.id === taskId);
    const entry = record?.artifacts.find((a) => a.path === file);
    if (!entry) throw new WrapperError("NOT_FOUND", `no artifact ${file} for task ${taskId} of mission ${missionId}; status with the missionId lists its artifacts`);
    const root = path.join(deps.store.missionDir(missionId), "artifacts", taskId);
    const full = path.resolve(root, entry.path);
    if (!full.startsWith(root + path.sep)) throw new WrapperError("NOT_FOUND", `artifact path ${file} leaves the artifacts directory`);
    const data = readFileSync(full);
    const text = data.toString("utf8");
    const utf8 = Buffer.from(text, "utf8").equals(data);
    const mimeType = artifactMimeType(entry.path, utf8);
    return utf8 ? { contents: [{ uri: uri.href, mimeType, text }] } : { contents: [{ uri: uri.href, mimeType, blob: data.toString("base64") }] };
  };
  server.registerResource("artifacts", artifacts, { title: "Mission artifacts", description: "Files a task produced (its artifact globs), as collected when it finished; each listed with its own path as title and a MIME type" }, readArtifact);

  // A task's whole final message, for a client whose text result cut it (results.ts).
  const finalMessages = new ResourceTemplate("codex-wrapper://missions/{missionId}/tasks/{taskId}/final-message", { list: undefined });
  const readFinalMessage: ReadResourceTemplateCallback = async (uri, vars) => {
    const missionId = String(vars.missionId);
    const taskId = String(vars.taskId);
    const task = deps.runner.status(missionId).tasks.find((t) => t.id === taskId);
    if (task?.finalMessage == null) throw new WrapperError("NOT_FOUND", `task ${taskId} of mission ${missionId} has no final message${task ? ` (it is ${task.status})` : ""}`);
    return { contents: [{ uri: uri.href, mimeType: "text/markdown", text: task.finalMessage }] };
  };
  server.registerResource("final-messages", finalMessages, { title: "A task's final message", description: "The whole final message of a task of a mission", mimeType: "text/markdown" }, readFinalMessage);

  const readers: [ResourceTemplate, ReadResourceTemplateCallback][] = [
    [artifacts, readArtifact],
    [finalMessages, readFinalMessage],
  ];
  server.server.setRequestHandler(anyParams("resources/read"), async (raw, extra): Promise<ReadResourceResult> => {
    const parsed = ReadResourceRequestSchema.safeParse(raw);
    if (!parsed.success) throw new ProtocolError(RPC.INVALID_PARAMS, `resources/read: ${formatZodIssues(parsed.error, raw).join("; ")}`);
    const { uri } = parsed.data.params;
    let url: URL;
    try {
      url = new URL(uri);
    } catch {
      throw new ProtocolError(RPC.INVALID_PARAMS, `not a URI: ${uri}`, { uri });
    }
    for (const [template, read] of readers) {
      const vars = template.uriTemplate.match(url.toString());
      if (!vars) continue;
      try {
        return await read(url, vars, extra);
      } catch (e) {
        throw resourceError(uri, e);
      }
    }
    throw new ProtocolError(RPC.RESOURCE_NOT_FOUND, `Resource not found: ${uri}; this server's resources are codex-wrapper://missions/<missionId>/artifacts/<taskId>/<path> and …/tasks/<taskId>/final-message`, { uri });
  });

  return server;
}
