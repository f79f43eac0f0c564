// The `codex exec --json` driver: each turn is a `docker exec` of `codex exec` in the worker
// container (a reply is `codex exec resume <thread_id>`), its JSONL events parsed as they arrive.
// Each concurrent turn runs in its own CODEX_HOME lane, so no two Codex processes share one.
import { randomUUID } from "node:crypto";
import { WorkerError, WrapperError } from "../errors.js";
import type { DockerRuntime } from "../runtime/docker.js";
import { CONTAINER_PATHS, describeExit, type ExitInfo } from "../worker/container.js";
import { LineSplitter } from "../worker/stream-transport.js";
import { asText, CANCEL_GRACE_MS, envConfig, errorText, failedBy, type CodexDriver, type TurnOutcome, type TurnRequest } from "./driver.js";
import { ExecEvent, execArgv } from "./exec-protocol.js";

/** The folder of the slot's CODEX_HOME that holds one CODEX_HOME per lane: lanes/<n>. */
export const EXEC_LANE_HOMES = "lanes";

export interface ExecDriverOptions {
  name: string;
  docker: DockerRuntime;
  containerId: () => string;
  exited: Promise<ExitInfo>;
}

/** A value for `codex -c key=value`: JSON strings, numbers, booleans and arrays are valid TOML too. */
function tomlValue(v: unknown): string {
  return JSON.stringify(v);
}

export class ExecDriver implements CodexDriver {
  readonly protocol = "exec" as const;
  private exit: ExitInfo | undefined;

  constructor(private readonly opts: ExecDriverOptions) {
    void opts.exited.then((e) => (this.exit = e));
  }

  async open(): Promise<void> {
    // Nothing to set up: every turn is its own process.
  }

  private deathMessage(): string {
    return describeExit(this.exit, this.opts.name);
  }

  async runTurn(req: TurnRequest): Promise<TurnOutcome> {
    const onEvent = req.onEvent ?? (() => {});
    if (this.exit) return { status: "failed", threadId: req.threadId ?? null, finalMessage: null, error: this.deathMessage(), errorCode: "WORKER_EXITED" };
    const lane = req.lane ?? 0;
    const config: Record<string, string> = {};
    const overrides = { ...req.config, ...envConfig(req.env), approval_policy: req.approvalPolicy };
    if (req.baseInstructions) Object.assign(overrides, { base_instructions: req.baseInstructions });
    if (req.developerInstructions) Object.assign(overrides, { developer_instructions: req.developerInstructions });
    for (const [k, v] of Object.entries(overrides)) config[k] = tomlValue(v);
    const pidFile = `/tmp/cmw-exec-${randomUUID()}.pid`;
    const argv = ["sh", "-c", 'echo $$ > "$0"; exec "$@"', pidFile, ...execArgv({ threadId: req.threadId, model: req.model, config })];

    let handle;
    try {
      handle = await this.opts.docker.exec(this.opts.containerId(), argv, {
        stdin: true,
        env: { CODEX_HOME: `${CONTAINER_PATHS.codexHome}/${EXEC_LANE_HOMES}/${lane}` },
        workdir: CONTAINER_PATHS.workspace,
      });
    } catch (e) {
      return failedBy(req.threadId ?? null, e instanceof WrapperError ? e : new WorkerError("WORKER_FAILED", (e as Error).message), `${this.opts.name}: cannot start codex exec: `);
    }
    handle.stdin.end(req.prompt);

    let threadId: string | null = req.threadId ?? null;
    let finalMessage: string | null = null;
    let terminal: TurnOutcome | null = null;
    let stderr = "";
    let stopReason: "cancelled" | "timed_out" | null = null;
    handle.stderr.on("data", (d: Buffer) => {
      stderr = (stderr + d.toString("utf8")).slice(-8192);
    });
    const splitter = new LineSplitter(64 * 1024 * 1024);
    handle.stdout.on("data", (chunk: Buffer) => {
      for (const line of splitter.push(chunk)) {
        let msg: unknown;
        try {
          msg = JSON.parse(line);
        } catch {
          continue;
        }
        onEvent({ kind: "raw", message: msg });
        const ev = ExecEvent.safeParse(msg);
        if (!ev.success) continue;
        const e = ev.data;
        if (e.type === "thread.started") {
          threadId = e.thread_id;
          onEvent({ kind: "thread", threadId, resumed: Boolean(req.threadId) });
        } else if (e.type === "turn.started") onEvent({ kind: "turn_started", turnId: null });
        else if (e.type === "item.started" || e.type === "item.completed") {
          const item = e.item as Record<string, unknown>;
          if (item.type === "command_execution") {
            const command = asText(item.command);
            if (e.type === "item.started") onEvent({ kind: "command_started", command });
            else onEvent({ kind: "command_finished", command, exitCode: typeof item.exit_code === "number" ? item.exit_code : null, output: asText(item.aggregated_output) });
          } else if (item.type === "agent_message" && e.type === "item.completed") {
            finalMessage = asText(item.text);
            onEvent({ kind: "agent_message", text: finalMessage });
          } else if (item.type === "error" && e.type === "item.completed") onEvent({ kind: "warning", message: asText(item.message) });
        } else if (e.type === "turn.completed") {
          terminal = { status: "succeeded", threadId, finalMessage, error: null, usage: { inputTokens: e.usage.input_tokens, outputTokens: e.usage.output_tokens } };
        } else if (e.type === "turn.failed") {
          terminal = { status: "failed", threadId, finalMessage, error: errorText(e.error.message), errorCode: "TURN_FAILED" };
        }
      }
    });

    // A stop that does not end the process within the grace period is reported anyway.
    let graceOver: (v: null) => void = () => {};
    const grace = new Promise<null>((r) => (graceOver = r));
    const stop = async (why: "cancelled" | "timed_out"): Promise<void> => {
      if (stopReason) return;
      stopReason = why;
      setTimeout(() => graceOver(null), CANCEL_GRACE_MS).unref();
      const signalProcess = (sig: string): Promise<unknown> =>
        this.opts.docker.execCollect(this.opts.containerId(), ["sh", "-c", `[ -f ${pidFile} ] && kill -${sig} "$(cat ${pidFile})"`]).catch(() => {});
      await signalProcess("TERM");
      setTimeout(() => void signalProcess("KILL"), 3000).unref();
    };
    const onAbort = (): void => void stop("cancelled");
    req.signal?.addEventListener("abort", onAbort, { once: true });
    if (req.signal?.aborted) onAbort();
    const timer = req.timeoutMs ? setTimeout(() => void stop("timed_out"), req.timeoutMs) : undefined;

    const exitCode = await Promise.race([handle.exited, this.opts.exited.then(() => null), grace]);
    clearTimeout(timer);
    req.signal?.removeEventListener("abort", onAbort);
    void this.opts.docker.execCollect(this.opts.containerId(), ["rm", "-f", pidFile]).catch(() => {});

    if (stopReason) {
      return { status: stopReason, threadId, finalMessage, error: stopReason === "timed_out" ? `no answer within ${req.timeoutMs} ms; codex exec was stopped` : "cancelled" };
    }
    if (terminal) return terminal;
    if (this.exit) return { status: "failed", threadId, finalMessage, error: this.deathMessage(), errorCode: "WORKER_EXITED" };
    const tail = stderr.trim().split("\n").slice(-20).join("\n");
    return { ...failedBy(threadId, new WorkerError("WORKER_EXITED", `codex exec in ${this.opts.name} exited with code ${exitCode ?? "unknown"} before the turn ended${tail ? `; last stderr lines:\n${tail}` : ""}`)), finalMessage };
  }

  async close(): Promise<void> {
    // Turns end with their processes; the container's removal ends any still running.
  }
}
