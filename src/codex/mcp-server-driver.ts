// The `codex mcp-server` driver (Codex ≤ 0.153.0): the container's main process is an MCP
// server on its attached stdio; the SDK's own Client calls its `codex` and `codex-reply` tools.
// Cancel is the MCP cancellation (the SDK sends notifications/cancelled when the signal aborts).
import { randomUUID } from "node:crypto";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js";
import { WorkerError } from "../errors.js";
import type { AttachedStreams } from "../runtime/docker.js";
import { CONTAINER_PATHS, describeExit, exitReport, type ExitInfo } from "../worker/container.js";
import { StreamTransport } from "../worker/stream-transport.js";
import { asText, envConfig, errorText, failedBy, type CodexDriver, type DriverEvent, type TurnOutcome, type TurnRequest } from "./driver.js";
import { CodexToolArgs, CodexReplyArgs, CodexToolOutput } from "./mcp-server-protocol.js";

export interface McpServerDriverOptions {
  name: string;
  streams: AttachedStreams;
  exited: Promise<ExitInfo>;
}

const TURN_KEY = "io.codex-mcp-wrapper/turn";
/** How long a call that failed on its own waits to hear whether the process ended (ms). */
const EXIT_NOTICE_MS = 1000;

/** A reply to a thread that lived in a process that has ended: mcp-server cannot resume it. */
function threadLost(threadId: string, why?: string): TurnOutcome {
  return { status: "lost", threadId, finalMessage: null, error: `conversation lost: thread ${threadId} lived in a codex mcp-server process that has ended${why ? ` (${why})` : ""}, and mcp-server cannot resume it`, errorCode: "CONVERSATION_LOST" };
}

export class McpServerDriver implements CodexDriver {
  readonly protocol = "mcp-server" as const;
  private readonly client = new Client({ name: "codex-mcp-wrapper", version: "1" });
  private readonly transport: StreamTransport;
  /** tools/call request id → the turn's event sink. */
  private readonly byRequest = new Map<string | number, (e: DriverEvent) => void>();
  private readonly byTurnKey = new Map<string, (e: DriverEvent) => void>();
  private readonly threads = new Set<string>();
  private exit: ExitInfo | undefined;
  private readonly deathAbort = new AbortController();

  constructor(private readonly opts: McpServerDriverOptions) {
    this.transport = new StreamTransport(opts.streams.stdout, opts.streams.stdin, { name: opts.name });
    // Learn which request id the SDK gave each tools/call, to route codex/event notifications.
    const send = this.transport.send.bind(this.transport);
    this.transport.send = async (message: JSONRPCMessage | Record<string, unknown>) => {
      const m = message as { id?: string | number; method?: string; params?: { _meta?: Record<string, unknown> } };
      const key = m.params?._meta?.[TURN_KEY];
      if (m.method === "tools/call" && m.id !== undefined && typeof key === "string") {
        const sink = this.byTurnKey.get(key);
        if (sink) this.byRequest.set(m.id, sink);
      }
      return send(message);
    };
    this.client.fallbackNotificationHandler = async (n) => {
      if (n.method !== "codex/event") return;
      const p = (n.params ?? {}) as { _meta?: { requestId?: string | number }; msg?: Record<string, unknown> };
      const sink = p._meta?.requestId !== undefined ? this.byRequest.get(p._meta.requestId) : undefined;
      if (sink && p.msg) this.translate(sink, p.msg);
    };
    void opts.exited.then((e) => {
      this.exit = e;
      this.deathAbort.abort(this.deathMessage());
    });
  }

  private deathMessage(): string {
    return describeExit(this.exit, this.opts.name);
  }

  private translate(sink: (e: DriverEvent) => void, msg: Record<string, unknown>): void {
    sink({ kind: "raw", message: msg });
    const cmd = Array.isArray(msg.command) ? (msg.command as unknown[]).map(String).join(" ") : asText(msg.command);
    switch (msg.type) {
      case "session_configured":
        // A new thread, named as its turn starts (the tool's result names it only at the end):
        // the pool follows the turn's model calls by it (token budgets).
        if (typeof msg.session_id === "string" && !this.threads.has(msg.session_id)) {
          this.threads.add(msg.session_id);
          sink({ kind: "thread", threadId: msg.session_id, resumed: false });
        }
        break;
      case "exec_command_begin":
        sink({ kind: "command_started", command: cmd });
        break;
      case "exec_command_end":
        sink({ kind: "command_finished", command: cmd, exitCode: typeof msg.exit_code === "number" ? msg.exit_code : null, output: asText(msg.aggregated_output ?? msg.stdout) });
        break;
      case "agent_message":
        sink({ kind: "agent_message", text: asText(msg.message) });
        break;
      case "warning":
        sink({ kind: "warning", message: asText(msg.message) });
        break;
      case "task_started":
        sink({ kind: "turn_started", turnId: typeof msg.turn_id === "string" ? msg.turn_id : null });
        break;
    }
  }

  async open(): Promise<void> {
    await this.client.connect(this.transport);
  }

  async runTurn(req: TurnRequest): Promise<TurnOutcome> {
    const onEvent = req.onEvent ?? (() => {});
    const threadId = req.threadId ?? null;
    if (threadId && (this.exit || !this.threads.has(threadId))) return threadLost(threadId, this.exit ? this.deathMessage() : undefined);
    if (this.exit) return { status: "failed", threadId, finalMessage: null, error: this.deathMessage(), errorCode: "WORKER_EXITED" };
    const turnKey = randomUUID();
    this.byTurnKey.set(turnKey, onEvent);
    const stop = new AbortController();
    let stopReason: "cancelled" | "timed_out" | "died" | null = null;
    const onAbort = (): void => {
      stopReason ??= "cancelled";
      stop.abort();
    };
    const onDeath = (): void => {
      stopReason ??= "died";
      stop.abort();
    };
    req.signal?.addEventListener("abort", onAbort, { once: true });
    this.deathAbort.signal.addEventListener("abort", onDeath, { once: true });
    if (req.signal?.aborted) onAbort();
    const timer = req.timeoutMs
      ? setTimeout(() => {
          stopReason ??= "timed_out";
          stop.abort();
        }, req.timeoutMs)
      : undefined;
    try {
      const args = threadId
        ? CodexReplyArgs.parse({ threadId, prompt: req.prompt })
        : CodexToolArgs.parse({
            prompt: req.prompt,
            cwd: CONTAINER_PATHS.workspace,
            sandbox: "danger-full-access", // the container is the sandbox
            "approval-policy": req.approvalPolicy === "never" ? "never" : "on-request",
            model: req.model,
            "base-instructions": req.baseInstructions,
            "developer-instructions": req.developerInstructions,
            config: { ...req.config, ...envConfig(req.env) },
          });
      const result = await this.client.callTool(
        { name: threadId ? "codex-reply" : "codex", arguments: args, _meta: { [TURN_KEY]: turnKey } },
        undefined,
        { signal: stop.signal, timeout: 2 ** 31 - 1 },
      );
      const out = CodexToolOutput.safeParse(result.structuredContent);
      const text = out.success ? out.data.content : (result.content as { type: string; text?: string }[]).map((c) => c.text ?? "").join("\n");
      const tid = out.success ? out.data.threadId : threadId;
      if (tid && !this.threads.has(tid)) {
        this.threads.add(tid);
        if (!threadId) onEvent({ kind: "thread", threadId: tid, resumed: false });
      }
      if (result.isError) return { status: "failed", threadId: tid, finalMessage: null, error: errorText(text), errorCode: "TURN_FAILED" };
      return { status: "succeeded", threadId: tid, finalMessage: text, error: null };
    } catch (e) {
      if (this.transport.isClosed) this.exit ??= await exitReport(this.opts.exited);
      // A call that failed on its own may be the process ending under it before its end reached
      // the driver: a moment for that end to be known, so that the turn says what happened.
      else if (stopReason === null) this.exit ??= await exitReport(this.opts.exited, EXIT_NOTICE_MS);
      // A reply's thread lived in this process: with the process, the conversation is gone.
      if (stopReason === "died" || this.exit) return threadId ? threadLost(threadId, this.deathMessage()) : failedBy(null, new WorkerError("WORKER_EXITED", this.deathMessage()));
      if (stopReason === "timed_out") return { status: "timed_out", threadId, finalMessage: null, error: `no answer within ${req.timeoutMs} ms; the call was cancelled` };
      if (stopReason === "cancelled") return { status: "cancelled", threadId, finalMessage: null, error: "cancelled" };
      return failedBy(threadId, e);
    } finally {
      clearTimeout(timer);
      req.signal?.removeEventListener("abort", onAbort);
      this.deathAbort.signal.removeEventListener("abort", onDeath);
      this.byTurnKey.delete(turnKey);
      for (const [id, sink] of this.byRequest) if (sink === onEvent) this.byRequest.delete(id);
    }
  }

  async close(): Promise<void> {
    await this.client.close().catch(() => {});
  }
}
