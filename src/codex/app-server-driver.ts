// The `codex app-server` driver: the container's main process speaks JSON-RPC on its attached
// stdio; one process runs many threads at once. Cancel is `turn/interrupt`; a thread unknown to
// this process (its container was replaced) is continued with `thread/resume`.
import type { ChatgptTokenSource } from "../auth/token-source.js";
import { WorkerError } from "../errors.js";
import { describeExit, exitReport, type ExitInfo } from "../worker/container.js";
import { StreamTransport } from "../worker/stream-transport.js";
import type { AttachedStreams } from "../runtime/docker.js";
import {
  ChatgptAuthTokensLoginParams,
  CommandApprovalParams,
  FileChangeApprovalParams,
  InitializeResponse,
  ThreadResumeResponse,
  ThreadStartResponse,
  ThreadUnsubscribeParams,
  TurnCompletedNotification,
  TurnStartResponse,
} from "./app-server-protocol.js";
import { approvalEvent, askApproval, asText, CANCEL_GRACE_MS, envConfig, errorText, failedBy, type ApprovalRequest, type CodexDriver, type DriverEvent, type TurnOutcome, type TurnRequest } from "./driver.js";
import { JsonRpcPeer } from "./jsonrpc.js";
import type { z } from "zod";
import type { Turn } from "./app-server-protocol.js";

export interface AppServerDriverOptions {
  name: string;
  streams: AttachedStreams;
  exited: Promise<ExitInfo>;
  cwd: string;
  tokens?: ChatgptTokenSource | undefined;
  requestTimeoutMs?: number;
  /**
   * Threads kept started ahead for each of the last settings tasks used here (0: none): a new
   * task with the same settings takes one, and only `turn/start` is left on its path.
   */
  threadsAhead?: number | undefined;
  /** Threads with no turn running kept loaded in Codex (the most recently used; default IDLE_THREADS_LOADED). */
  threadsLoaded?: number | undefined;
  /** Counters to add to (shared by a pool's drivers). */
  threadStats?: ThreadStats | undefined;
}

/**
 * How new threads began: taken from the ones started ahead, or started on the task's path; and
 * how many threads Codex unloaded (`thread/closed`) once they were no longer among the last used.
 */
export interface ThreadStats {
  takenAhead: number;
  startedFresh: number;
  startedAhead: number;
  unloaded: number;
}

/** How many distinct thread settings keep threads started ahead (the most recently used). */
const AHEAD_KEYS = 2;

/**
 * How many threads with no turn running stay loaded in Codex by default (the profile's
 * threads_loaded; the most recently used): a reply to
 * one of them starts its turn at once; an older one is unloaded and a reply to it resumes it from
 * its rollout first. A loaded thread costs Codex about 1.2 MiB, and it never unloads one a client
 * still subscribes to: without this, a warm container's memory grew with every task it served
 * (850–870 MiB of its 1 GiB after about 490 tasks, docs/performance.md, 16:51).
 */
export const IDLE_THREADS_LOADED = 8;

/**
 * Notifications Codex need not send (initialize's `optOutNotificationMethods`, in 0.153.0 and
 * 0.169.0): none is read, and each cost a parse, and some a scrub and an event-log line, on every
 * task. `thread/started` repeats the `thread/start` answer the driver already has;
 * `account/rateLimits/updated` names no thread; `thread/readState/changed` is a UI's unread mark;
 * `remoteControl/status/changed` and `mcpServer/startupStatus/updated` are about the process, not
 * a task. A Codex that does not know a name ignores it (both versions, tried by hand).
 */
export const OPTED_OUT_NOTIFICATIONS = ["thread/started", "account/rateLimits/updated", "thread/readState/changed", "remoteControl/status/changed", "mcpServer/startupStatus/updated"] as const;

type ThreadSettings = Record<string, unknown>;

/** A stable key for thread settings: the same settings in any key order give the same key. */
export function settingsKey(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(settingsKey).join(",")}]`;
  if (v && typeof v === "object") {
    const entries = Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== undefined);
    return `{${entries
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([k, x]) => `${JSON.stringify(k)}:${settingsKey(x)}`)
      .join(",")}}`;
  }
  return JSON.stringify(v) ?? "null";
}

interface ActiveTurn {
  turnId: string | null;
  /** The turn's request: who answers its approvals, and how long they may wait. */
  req: TurnRequest;
  onEvent: (e: DriverEvent) => void;
  finish: (o: TurnOutcome) => void;
  messages: string[];
  /** Codex rejects turn/interrupt before turn/started: a stop waits for it. */
  started: boolean;
  /** Set once a stop is asked for: sends turn/interrupt once the turn has started. */
  interrupt?: () => void;
}

export class AppServerDriver implements CodexDriver {
  readonly protocol = "app-server" as const;
  private readonly peer: JsonRpcPeer;
  private readonly loaded = new Set<string>();
  /** Loaded threads with no turn running, least recently used first (at most threadsLoaded). */
  private readonly idle = new Set<string>();
  /** Threads being unsubscribed: a turn on one waits for it, then resumes it. */
  private readonly unloading = new Map<string, Promise<void>>();
  private readonly active = new Map<string, ActiveTurn>();
  private exit: ExitInfo | undefined;
  private unsubscribe: (() => void) | undefined;
  /** Threads started ahead, by settings key (most recently used key last); each resolves to its id, or null if it failed. */
  private readonly ahead = new Map<string, Promise<string | null>[]>();
  private readonly threadStats: ThreadStats;

  constructor(private readonly opts: AppServerDriverOptions) {
    this.threadStats = opts.threadStats ?? { takenAhead: 0, startedFresh: 0, startedAhead: 0, unloaded: 0 };
    const transport = new StreamTransport(opts.streams.stdout, opts.streams.stdin, { name: opts.name });
    this.peer = new JsonRpcPeer(transport, { name: opts.name, withVersionField: false, defaultTimeoutMs: opts.requestTimeoutMs ?? 60_000 });
    this.peer.setCloseReason(() => this.deathError());
    this.peer.onNotification((method, params) => this.onNotification(method, params));
    this.peer.onRequest((method, params) => this.onServerRequest(method, params));
    void opts.exited.then((exit) => {
      this.exit = exit;
      this.failAll(this.deathError());
    });
    // The stream closes a moment before Docker reports the exit: wait (bounded) for the exit code
    // and stderr, so the error names them.
    void this.peer.closed.then(async () => {
      this.exit ??= await exitReport(opts.exited);
      this.failAll(this.deathError());
    });
  }

  private deathError(): WorkerError {
    return new WorkerError("WORKER_EXITED", describeExit(this.exit, this.opts.name), { container: this.opts.name, exitCode: this.exit?.exitCode ?? null });
  }

  async open(): Promise<void> {
    await this.peer.start();
    const init = InitializeResponse.safeParse(
      await this.peer.request("initialize", {
        clientInfo: { name: "codex-mcp-wrapper", title: "codex-mcp-wrapper", version: "1" },
        capabilities: { experimentalApi: true, optOutNotificationMethods: [...OPTED_OUT_NOTIFICATIONS] },
      }),
    );
    if (!init.success) throw new WorkerError("PROTOCOL_ERROR", `${this.opts.name}: unexpected initialize answer`);
    await this.peer.notify("initialized");
    if (this.opts.tokens) {
      await this.login();
      this.unsubscribe = this.opts.tokens.subscribe(() => {
        // A re-login during a turn fails that turn (real 0.169.0: "application network policy is
        // unavailable"); between turns it works. So push now only when idle, else before the next turn.
        this.loginPending = true;
        if (this.active.size === 0) void this.login().catch(() => {});
      });
    }
  }

  private loginPending = false;

  /** Pushes the broker's current ChatGPT access token into this app-server. */
  private async login(): Promise<void> {
    if (!this.opts.tokens || this.peer.isClosed) return;
    this.loginPending = false;
    const t = await this.opts.tokens.current();
    const params = ChatgptAuthTokensLoginParams.parse({ type: "chatgptAuthTokens", accessToken: t.accessToken, chatgptAccountId: t.accountId, chatgptPlanType: t.planType });
    await this.peer.request("account/login/start", params);
  }

  async runTurn(req: TurnRequest): Promise<TurnOutcome> {
    const onEvent = req.onEvent ?? (() => {});
    if (this.exit || this.peer.isClosed) return failedBy(req.threadId ?? null, this.deathError());
    const settings = {
      cwd: this.opts.cwd,
      model: req.model,
      approvalPolicy: req.approvalPolicy,
      sandbox: "danger-full-access" as const, // the container is the sandbox
      baseInstructions: req.baseInstructions,
      developerInstructions: req.developerInstructions,
      config: { ...req.config, ...envConfig(req.env) },
    };
    let threadId: string;
    /** Set for a new thread: its settings' key, whose threads ahead are topped up once this turn ends. */
    let key: string | undefined;
    try {
      if (this.loginPending) await this.login();
      if (req.threadId) {
        this.idle.delete(req.threadId);
        await this.unloading.get(req.threadId);
      }
      if (!req.threadId) {
        key = settingsKey(settings);
        const ready = await this.takeAhead(key);
        if (ready) {
          threadId = ready;
          this.threadStats.takenAhead++;
        } else {
          const r = ThreadStartResponse.parse(await this.peer.request("thread/start", settings, { signal: req.signal }));
          threadId = r.thread.id;
          this.threadStats.startedFresh++;
        }
        onEvent({ kind: "thread", threadId, resumed: false });
      } else if (!this.loaded.has(req.threadId)) {
        const r = ThreadResumeResponse.parse(await this.peer.request("thread/resume", { ...settings, threadId: req.threadId }, { signal: req.signal }));
        threadId = r.thread.id;
        onEvent({ kind: "thread", threadId, resumed: true });
      } else threadId = req.threadId;
    } catch (e) {
      if (req.signal?.aborted) return { status: "cancelled", threadId: req.threadId ?? null, finalMessage: null, error: "cancelled before the turn started" };
      return failedBy(req.threadId ?? null, e);
    }
    this.loaded.add(threadId);
    if (this.active.has(threadId)) return failedBy(threadId, new WorkerError("WORKER_FAILED", `thread ${threadId} already has a turn running`));

    return new Promise<TurnOutcome>((resolve) => {
      let settled = false;
      let stopReason: "cancelled" | "timed_out" | null = null;
      let graceTimer: NodeJS.Timeout | undefined;
      const turn: ActiveTurn = {
        turnId: null,
        req,
        started: false,
        onEvent,
        messages: [],
        finish: (o) => {
          if (settled) return;
          settled = true;
          this.active.delete(threadId);
          this.park(threadId);
          if (this.loginPending && this.active.size === 0) void this.login().catch(() => {});
          clearTimeout(timeout);
          clearTimeout(graceTimer);
          req.signal?.removeEventListener("abort", onAbort);
          // Replaced after the turn, not during it: starting a thread takes Codex's time from the turn.
          if (key !== undefined) this.startAhead(key, settings);
          // Ended because we stopped it (Codex's "interrupted", or the grace ran out): say why.
          if (stopReason === "timed_out" && o.status === "cancelled") resolve({ ...o, status: "timed_out", error: `no answer within ${req.timeoutMs} ms; the turn was interrupted` });
          else resolve(o);
        },
      };
      const stop = (why: "cancelled" | "timed_out"): void => {
        if (settled || stopReason) return;
        stopReason = why;
        const interrupt = (): void => {
          if (settled || !turn.started || !turn.turnId) return;
          // Rejected while Codex is still setting the turn up: ask again shortly (until the grace ends).
          void this.peer.request("turn/interrupt", { threadId, turnId: turn.turnId }, { timeoutMs: CANCEL_GRACE_MS }).catch(() => {
            if (!settled && !this.peer.isClosed) setTimeout(interrupt, 250).unref();
          });
        };
        // The turn id may not be known yet: then it is sent once it is (see onNotification).
        turn.interrupt = interrupt;
        interrupt();
        graceTimer = setTimeout(
          () => turn.finish({ status: "cancelled", threadId, finalMessage: null, error: "cancelled" }),
          CANCEL_GRACE_MS,
        );
      };
      const onAbort = (): void => stop("cancelled");
      const timeout = req.timeoutMs ? setTimeout(() => stop("timed_out"), req.timeoutMs) : undefined;
      req.signal?.addEventListener("abort", onAbort, { once: true });
      this.active.set(threadId, turn);
      if (req.signal?.aborted) onAbort();

      this.peer
        .request("turn/start", { threadId, input: [{ type: "text", text: req.prompt }] })
        .then((raw) => {
          const r = TurnStartResponse.parse(raw);
          turn.turnId ??= r.turn.id;
        })
        .catch((e: unknown) => turn.finish(failedBy(threadId, e)));
    });
  }

  /**
   * A thread's turn ended: it joins the idle ones (most recently used last), and the least recently
   * used beyond threadsLoaded is unsubscribed, which makes Codex unload it (the container runs
   * Codex with `thread_unload_delay_secs = 0`).
   */
  private park(threadId: string): void {
    if (!this.loaded.has(threadId)) return;
    this.idle.delete(threadId);
    this.idle.add(threadId);
    while (this.idle.size > (this.opts.threadsLoaded ?? IDLE_THREADS_LOADED)) {
      const oldest = this.idle.values().next().value!;
      this.idle.delete(oldest);
      this.unload(oldest);
    }
  }

  private unload(threadId: string): void {
    this.loaded.delete(threadId);
    if (this.exit || this.peer.isClosed) return;
    // Not answered (an older Codex, a process going away): it stays loaded in Codex, and a turn on it resumes it, which works either way.
    const done = this.peer
      .request("thread/unsubscribe", ThreadUnsubscribeParams.parse({ threadId }))
      .then(
        () => {},
        () => {},
      )
      .finally(() => this.unloading.delete(threadId));
    this.unloading.set(threadId, done);
  }

  /** A thread started ahead with these settings, or null (none, or it failed to start). */
  private async takeAhead(key: string): Promise<string | null> {
    const list = this.ahead.get(key);
    if (!list) return null;
    // Most recently used last: the keys that stop being used are the first dropped.
    this.ahead.delete(key);
    this.ahead.set(key, list);
    for (let next = list.shift(); next; next = list.shift()) {
      const id = await next;
      if (id) return id;
    }
    return null;
  }

  /** Keeps `threadsAhead` threads started for these settings, within the last AHEAD_KEYS settings used. */
  private startAhead(key: string, settings: ThreadSettings): void {
    const want = this.opts.threadsAhead ?? 0;
    if (want <= 0 || this.exit || this.peer.isClosed) return;
    let list = this.ahead.get(key);
    if (!list) {
      list = [];
      this.ahead.set(key, list);
      // A started thread unused costs Codex about 1.2 MiB (docs/performance.md): those of settings
      // no longer among the last used are unloaded (else tasks of ever new settings would each leave one).
      while (this.ahead.size > AHEAD_KEYS) {
        const oldest = this.ahead.keys().next().value!;
        for (const started of this.ahead.get(oldest)!) void started.then((id) => id && this.unload(id));
        this.ahead.delete(oldest);
      }
    }
    while (list.length < want) {
      this.threadStats.startedAhead++;
      const started = this.peer
        .request("thread/start", settings)
        .then((raw) => {
          const id = ThreadStartResponse.parse(raw).thread.id;
          this.loaded.add(id);
          return id;
        })
        .catch(() => null);
      list.push(started);
    }
  }

  private onNotification(method: string, params: unknown): void {
    const p = (params ?? {}) as { threadId?: string; turnId?: string; item?: Record<string, unknown>; turn?: z.infer<typeof Turn> };
    const threadId = p.threadId;
    if (method === "thread/closed") {
      if (threadId && !this.loaded.has(threadId)) this.threadStats.unloaded++;
      return;
    }
    const turn = threadId ? this.active.get(threadId) : undefined;
    if (!turn) return;
    turn.onEvent({ kind: "raw", message: { method, params } });
    switch (method) {
      case "turn/started":
        if (p.turn?.id && !turn.started) {
          turn.turnId ??= p.turn.id;
          turn.started = true;
          turn.onEvent({ kind: "turn_started", turnId: p.turn.id });
          turn.interrupt?.();
        }
        break;
      case "item/started":
      case "item/completed":
        this.onItem(turn, method === "item/started", p.item ?? {});
        break;
      case "warning":
        turn.onEvent({ kind: "warning", message: asText((params as { message?: unknown }).message) });
        break;
      case "turn/completed": {
        const n = TurnCompletedNotification.safeParse(params);
        if (!n.success) return;
        const t = n.data.turn;
        const items = (t.items ?? []).filter((i) => i.type === "agentMessage").map((i) => asText((i as { text?: unknown }).text));
        const finalMessage = items.at(-1) ?? turn.messages.at(-1) ?? null;
        if (t.status === "completed") turn.finish({ status: "succeeded", threadId: n.data.threadId, finalMessage, error: null });
        else if (t.status === "interrupted") turn.finish({ status: "cancelled", threadId: n.data.threadId, finalMessage, error: "interrupted" });
        else turn.finish({ status: "failed", threadId: n.data.threadId, finalMessage, error: errorText(t.error?.message ?? "the turn failed"), errorCode: "TURN_FAILED" });
        break;
      }
    }
  }

  private onItem(turn: ActiveTurn, started: boolean, item: Record<string, unknown>): void {
    const type = item.type;
    if (type === "commandExecution") {
      const command = asText(item.command);
      if (started) turn.onEvent({ kind: "command_started", command });
      else turn.onEvent({ kind: "command_finished", command, exitCode: typeof item.exitCode === "number" ? item.exitCode : null, output: asText(item.aggregatedOutput) });
    } else if (type === "agentMessage" && !started) {
      const text = asText(item.text);
      turn.messages.push(text);
      turn.onEvent({ kind: "agent_message", text });
    } else if (type === "fileChange" && !started) {
      const changes = Array.isArray(item.changes) ? (item.changes as { path?: unknown }[]) : [];
      turn.onEvent({ kind: "file_change", paths: changes.map((c) => asText(c.path)) });
    }
  }

  /**
   * Server requests are always answered: tokens given; approvals asked of the turn's approver (the
   * MCP client that started it, by elicitation) and declined when there is none, it says no, or
   * no answer comes within the turn's approval timeout.
   */
  private async onServerRequest(method: string, params: unknown): Promise<unknown> {
    if (method === "account/chatgptAuthTokens/refresh") {
      if (!this.opts.tokens) throw new Error("this broker holds no ChatGPT login");
      const t = await this.opts.tokens.current();
      return { accessToken: t.accessToken, chatgptAccountId: t.accountId, chatgptPlanType: t.planType };
    }
    if (method.endsWith("/requestApproval")) {
      const approval = approvalOf(method, params);
      const threadId = (params as { threadId?: unknown } | null)?.threadId;
      const turn = typeof threadId === "string" ? this.active.get(threadId) : undefined;
      // An approval for no turn of ours (it ended meanwhile) has nobody to ask.
      const answer = turn ? await askApproval(turn.req, approval) : ({ decision: "decline", why: "no_client" } as const);
      turn?.onEvent(approvalEvent(method, approval, answer));
      return { decision: answer.decision };
    }
    throw new Error(`codex-mcp-wrapper does not answer ${method}`);
  }

  private failAll(error: Error): void {
    for (const [threadId, turn] of [...this.active]) turn.finish(failedBy(threadId, error));
  }

  async close(): Promise<void> {
    this.unsubscribe?.();
    // A process that already died is reported as such, not as closed by the broker.
    this.failAll(this.exit || this.peer.isClosed ? this.deathError() : new WorkerError("WORKER_EXITED", `${this.opts.name} was closed by the broker`));
    await this.peer.close();
  }
}

/** An approval request of app-server in the broker's words: the command, its directory, the reason. */
function approvalOf(method: string, params: unknown): ApprovalRequest {
  const text = (v: unknown): string | undefined => (typeof v === "string" && v ? v : undefined);
  if (method === "item/commandExecution/requestApproval") {
    const p = CommandApprovalParams.safeParse(params);
    const raw = (p.success ? p.data : (params ?? {})) as { command?: unknown; cwd?: unknown; reason?: unknown };
    return { kind: "command", command: text(raw.command), cwd: text(raw.cwd), reason: text(raw.reason) };
  }
  const p = FileChangeApprovalParams.safeParse(params);
  const raw = (p.success ? p.data : (params ?? {})) as { reason?: unknown; grantRoot?: unknown };
  return { kind: "patch", cwd: text(raw.grantRoot), reason: text(raw.reason) };
}
