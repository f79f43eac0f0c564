// What every Codex driver (app-server, exec, mcp-server) offers the pool: run a turn (start a
// conversation or continue one), with events as they arrive, cancelled by an AbortSignal, and
// ended at once when the Codex process or its container dies.
import type { ApprovalPolicy, Protocol } from "../config/schema.js";
import { WrapperError, type ErrorCode } from "../errors.js";

/** A typed event of a turn, in the broker's words (drivers translate their protocol into these). */
export type DriverEvent =
  | { kind: "thread"; threadId: string; resumed: boolean }
  | { kind: "turn_started"; turnId: string | null }
  | { kind: "command_started"; command: string }
  | { kind: "command_finished"; command: string; exitCode: number | null; output: string }
  | { kind: "agent_message"; text: string }
  | { kind: "file_change"; paths: string[] }
  /** Codex asked for an approval and the broker's answer went back (see `askApproval`). */
  | { kind: "approval_accepted"; request: string; detail: string; approval: ApprovalRequest }
  | { kind: "approval_declined"; request: string; detail: string; approval?: ApprovalRequest; why?: DeclineReason; message?: string }
  | { kind: "warning"; message: string }
  /** The protocol message as received, for the task's event log. */
  | { kind: "raw"; message: unknown };

export type TurnStatus = "succeeded" | "failed" | "timed_out" | "cancelled" | "lost";

export interface TurnOutcome {
  status: TurnStatus;
  threadId: string | null;
  finalMessage: string | null;
  error: string | null;
  /** Why it did not succeed, as the error that ended it said (absent: succeeded, or no error object said). */
  errorCode?: ErrorCode | undefined;
  usage?: { inputTokens: number; outputTokens: number } | undefined;
}

/** A failed outcome from the error that ended the turn: its message, and its code when it has one. */
export function failedBy(threadId: string | null, e: unknown, prefix = ""): TurnOutcome {
  const message = e instanceof Error ? e.message : typeof e === "string" ? e : JSON.stringify(e);
  return { status: "failed", threadId, finalMessage: null, error: `${prefix}${message}`, ...(e instanceof WrapperError ? { errorCode: e.code } : {}) };
}

/** The code an outcome's status implies when no error object gave one. */
export function outcomeCode(o: Pick<TurnOutcome, "status" | "errorCode">): ErrorCode | undefined {
  if (o.errorCode) return o.errorCode;
  switch (o.status) {
    case "timed_out":
      return "TURN_TIMED_OUT";
    case "cancelled":
      return "CANCELLED";
    case "lost":
      return "CONVERSATION_LOST";
    case "failed":
      return "TURN_FAILED";
    default:
      return undefined;
  }
}

export interface TurnRequest {
  /** Continue this Codex thread; none starts a new one. */
  threadId?: string | undefined;
  prompt: string;
  model?: string | undefined;
  baseInstructions?: string | undefined;
  developerInstructions?: string | undefined;
  /** Codex config overrides (dotted keys → values). */
  config?: Record<string, unknown> | undefined;
  approvalPolicy: ApprovalPolicy;
  /** Variables for the commands Codex runs in this turn (shell_environment_policy.set). */
  env?: Record<string, string> | undefined;
  /** Cancels the turn (status `cancelled`). */
  signal?: AbortSignal | undefined;
  /** Ends the turn as `timed_out` after this long. */
  timeoutMs?: number | undefined;
  /** exec only: which CODEX_HOME lane of the container the turn runs in. */
  lane?: number | undefined;
  onEvent?: ((e: DriverEvent) => void) | undefined;
  /** Who answers the approvals Codex asks for in this turn; none: each is declined. */
  approve?: Approver | undefined;
  /** How long an approval may wait for its answer before it is declined (default 5 min). */
  approvalTimeoutMs?: number | undefined;
}

/** An approval Codex asks for, in the broker's words. */
export interface ApprovalRequest {
  kind: "command" | "patch";
  command?: string | undefined;
  cwd?: string | undefined;
  reason?: string | undefined;
}

/** Why an approval was declined: nobody to ask, the asked one said no or cancelled, no answer in time, the asker went away. */
export type DeclineReason = "no_client" | "client_declined" | "client_cancelled" | "timed_out" | "client_gone";

/** What an approver answers: accept, or decline with why. */
export type ApprovalAnswer = { decision: "accept" } | { decision: "decline"; why: DeclineReason; message?: string };

/** Asks someone (an MCP client, by elicitation) about one approval; `signal` aborts when it is too late to answer. */
export type Approver = (req: ApprovalRequest, opts: { signal: AbortSignal; timeoutMs: number }) => Promise<ApprovalAnswer>;

/** The default `approval_timeout`: an approval unanswered for this long is declined. */
export const DEFAULT_APPROVAL_TIMEOUT_MS = 5 * 60_000;

/**
 * Asks the turn's approver about one approval and always answers: with no approver the approval is
 * declined ("no_client"), past the turn's approval timeout it is declined ("timed_out"), and an
 * approver that fails is read as a client gone. Ends early (declined) when `signal` aborts (the
 * turn was cancelled).
 */
export async function askApproval(req: Pick<TurnRequest, "approve" | "approvalTimeoutMs" | "signal">, approval: ApprovalRequest): Promise<ApprovalAnswer> {
  const approve = req.approve;
  if (!approve) return { decision: "decline", why: "no_client" };
  const timeoutMs = req.approvalTimeoutMs ?? DEFAULT_APPROVAL_TIMEOUT_MS;
  const ctl = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const onAbort = (): void => ctl.abort();
  req.signal?.addEventListener("abort", onAbort, { once: true });
  const late = new Promise<ApprovalAnswer>((resolve) => {
    timer = setTimeout(() => {
      resolve({ decision: "decline", why: "timed_out", message: `${timeoutMs} ms` });
      ctl.abort(); // after: the first answer stands
    }, timeoutMs);
    ctl.signal.addEventListener("abort", () => resolve({ decision: "decline", why: "client_gone", message: "the turn ended before an answer came" }), { once: true });
  });
  try {
    return await Promise.race([
      approve(approval, { signal: ctl.signal, timeoutMs }).catch((e: unknown): ApprovalAnswer => ({ decision: "decline", why: "client_gone", message: asText((e as Error)?.message ?? e) })),
      late,
    ]);
  } finally {
    clearTimeout(timer);
    req.signal?.removeEventListener("abort", onAbort);
    ctl.abort();
  }
}

/** An approval's event for the task's log: accepted, or declined with why. */
export function approvalEvent(request: string, approval: ApprovalRequest, answer: ApprovalAnswer): DriverEvent {
  const detail = approval.command ?? approval.reason ?? approval.kind;
  return answer.decision === "accept"
    ? { kind: "approval_accepted", request, detail, approval }
    : { kind: "approval_declined", request, detail, approval, why: answer.why, ...(answer.message ? { message: answer.message } : {}) };
}

export interface CodexDriver {
  readonly protocol: Protocol;
  /** Readies the protocol (initialize, login); rejects if the process is not answering. */
  open(): Promise<void>;
  runTurn(req: TurnRequest): Promise<TurnOutcome>;
  close(): Promise<void>;
}

/** How long a cancelled turn may take to wind down before it is reported anyway. */
export const CANCEL_GRACE_MS = 10_000;

/** The config override that puts variables into the environment of Codex's commands. */
export function envConfig(env: Record<string, string> | undefined): Record<string, unknown> {
  if (!env || Object.keys(env).length === 0) return {};
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [`shell_environment_policy.set.${k}`, v]));
}

/** A turn as an async stream of events that returns the outcome (`for await` then `.return`). */
export async function* streamTurn(driver: CodexDriver, req: Omit<TurnRequest, "onEvent">): AsyncGenerator<DriverEvent, TurnOutcome> {
  const queue: DriverEvent[] = [];
  let wake: (() => void) | undefined;
  let outcome: TurnOutcome | undefined;
  let failure: unknown;
  const done = driver
    .runTurn({ ...req, onEvent: (e) => (queue.push(e), wake?.()) })
    .then((o) => (outcome = o))
    .catch((e: unknown) => (failure = e))
    .finally(() => wake?.());
  for (;;) {
    while (queue.length) yield queue.shift()!;
    if (outcome || failure !== undefined) break;
    await new Promise<void>((r) => (wake = r));
    wake = undefined;
  }
  await done;
  while (queue.length) yield queue.shift()!;
  if (failure !== undefined) throw failure instanceof Error ? failure : new Error(asText(failure));
  return outcome!;
}

/** A protocol value as text: strings as they are, nothing as "", anything else as JSON. */
export function asText(v: unknown): string {
  if (typeof v === "string") return v;
  if (v === null || v === undefined) return "";
  if (typeof v === "number" || typeof v === "boolean" || typeof v === "bigint") return v.toString();
  return JSON.stringify(v) ?? "";
}

/** Extracts the human message from Codex's error text (often a JSON body from the model API). */
export function errorText(raw: string): string {
  try {
    const j = JSON.parse(raw) as { error?: { message?: unknown } };
    if (typeof j.error?.message === "string") return j.error.message;
  } catch {
    // not JSON
  }
  return raw;
}

const DECLINED_BECAUSE: Record<DeclineReason, string> = {
  no_client: "declined: no client to ask (none that declared elicitation is waiting on this task)",
  client_declined: "declined by the client",
  client_cancelled: "declined: the client dismissed the question",
  timed_out: "declined: no answer within approval_timeout",
  client_gone: "declined: the client went away before answering",
};

/** One line for a task's notes on an approval event, or null for any other event. */
export function approvalNote(e: DriverEvent): string | null {
  if (e.kind !== "approval_accepted" && e.kind !== "approval_declined") return null;
  const a = e.approval;
  const what = a ? `${a.kind}${a.command ? ` \`${a.command.split("\n")[0]!.slice(0, 200)}\`` : ""}${a.cwd ? ` in ${a.cwd}` : ""}` : e.detail;
  const how = e.kind === "approval_accepted" ? "accepted by the client" : DECLINED_BECAUSE[e.why ?? "no_client"];
  const more = e.kind === "approval_declined" && e.message ? ` (${e.message})` : "";
  return `approval for ${what}: ${how}${more}`;
}
