// What every Codex driver (app-server, exec, mcp-server) offers the pool: run a turn (start a
// conversation or continue one), with events as they arrive, cancelled by an AbortSignal, and
// ended at once when the Codex process or its container dies.
import type { ApprovalPolicy, Protocol } from "../config/schema.js";

/** A typed event of a turn, in the broker's words (drivers translate their protocol into these). */
export type DriverEvent =
  | { kind: "thread"; threadId: string; resumed: boolean }
  | { kind: "turn_started"; turnId: string | null }
  | { kind: "command_started"; command: string }
  | { kind: "command_finished"; command: string; exitCode: number | null; output: string }
  | { kind: "agent_message"; text: string }
  | { kind: "file_change"; paths: string[] }
  | { kind: "approval_declined"; request: string; detail: string }
  | { kind: "warning"; message: string }
  /** The protocol message as received, for the task's event log. */
  | { kind: "raw"; message: unknown };

export type TurnStatus = "succeeded" | "failed" | "timed_out" | "cancelled" | "lost";

export interface TurnOutcome {
  status: TurnStatus;
  threadId: string | null;
  finalMessage: string | null;
  error: string | null;
  usage?: { inputTokens: number; outputTokens: number } | undefined;
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
}

export interface CodexDriver {
  readonly protocol: Protocol;
  /** Readies the protocol (initialize, login); rejects if the process is not answering. */
  open(): Promise<void>;
  runTurn(req: TurnRequest): Promise<TurnOutcome>;
  /** Whether this process already has the thread loaded (else a continue must resume it). */
  hasThread(threadId: string): boolean;
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
