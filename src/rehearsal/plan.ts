// Decides the rehearsal model's next move for one Responses API request. Stateless: where a
// turn stands is read back from the request's input (the tool calls made since the latest
// user message and their outputs), the way a real model sees it.
import { createHash } from "node:crypto";
import { commandFor, forAttempt, isToolDirective, parseDirectives, type Directive } from "./directives.js";

export type Plan =
  | { kind: "call"; name: string; arguments: string; callId: string; outputTokens?: number }
  | { kind: "message"; text: string; deltas?: number; outputTokens?: number }
  | { kind: "fail"; status: number; message: string }
  | { kind: "stall" };

interface InputItem {
  type?: string;
  role?: string;
  content?: unknown;
  call_id?: string;
  name?: string;
  arguments?: string;
  output?: unknown;
}

interface ToolSpec {
  type?: string;
  name?: string;
  parameters?: { properties?: Record<string, unknown> };
}

export interface RequestView {
  input?: unknown;
  tools?: unknown;
}

/** Texts Codex adds as user messages (environment, instructions): not the user's words. */
const CONTEXT_BLOCK = /^\s*<([a-z_]+)>[\s\S]*<\/\1>\s*$/;
const CALL_ID = /^call_fake_d(\d+)_s(\d+)_/;

function textOf(content: unknown): string {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return "";
  return content
    .map((c: unknown) => (c && typeof c === "object" && "text" in c && typeof c.text === "string" ? c.text : ""))
    .join("");
}

/** The user's own messages in the input, oldest first. */
export function userMessages(input: InputItem[]): { index: number; text: string }[] {
  const out: { index: number; text: string }[] = [];
  input.forEach((item, index) => {
    if (item.type !== "message" && item.type !== undefined) return;
    if (item.role !== "user") return;
    const text = textOf(item.content);
    if (!CONTEXT_BLOCK.test(text)) out.push({ index, text });
  });
  return out;
}

export interface ToolResult {
  exitCode: number | null;
  output: string;
  /** Set while the command still runs: the session to poll. */
  runningSession: number | null;
}

/** Reads Codex's exec tool output: a text header (exit code, session) then `Output:`. */
export function parseToolOutput(raw: unknown): ToolResult {
  let text = textOf(raw);
  if (!text && typeof raw === "object" && raw !== null) text = JSON.stringify(raw);
  // Older shell tools answer JSON: {"output": "...", "metadata": {"exit_code": 0}}.
  try {
    const j = JSON.parse(text) as { output?: unknown; metadata?: { exit_code?: unknown } };
    if (j && typeof j === "object" && typeof j.output === "string") {
      const code = typeof j.metadata?.exit_code === "number" ? j.metadata.exit_code : null;
      return { exitCode: code, output: j.output, runningSession: null };
    }
  } catch {
    // not JSON: the text form below
  }
  const exited = /(?:exited with code|Exit code:)\s*(-?\d+)/i.exec(text);
  const running = /running with session ID (\d+)/i.exec(text);
  const marker = text.indexOf("Output:\n");
  const output = marker >= 0 ? text.slice(marker + "Output:\n".length) : text;
  return {
    exitCode: exited ? Number(exited[1]) : null,
    output: output.replace(/\s+$/, ""),
    runningSession: !exited && running ? Number(running[1]) : null,
  };
}

export interface PlanContext {
  /** The bearer token the request carried, if any. */
  token: string | null;
  /** A fresh suffix for call ids. */
  nonce: () => string;
}

/** The sha256 fingerprint `#fake auth` answers: never the token itself. */
export function tokenFingerprint(token: string): string {
  return `sha256:${createHash("sha256").update(token).digest("hex").slice(0, 12)}`;
}

interface ShellTools {
  exec: { name: string; style: "cmd" | "argv" };
  poll: string | null;
  /** Whether the exec tool takes `sandbox_permissions` (Codex offers it under on-request). */
  escalation: boolean;
}

function findShellTools(tools: ToolSpec[]): ShellTools | null {
  let exec: ShellTools["exec"] | null = null;
  let poll: string | null = null;
  let escalation = false;
  for (const t of tools) {
    if (t.type !== "function" || !t.name) continue;
    const props = t.parameters?.properties ?? {};
    if (!exec && ("cmd" in props || ("command" in props && t.name === "shell"))) {
      exec = { name: t.name, style: "cmd" in props ? "cmd" : "argv" };
      escalation = "sandbox_permissions" in props;
    }
    if ("session_id" in props && "chars" in props) poll = t.name;
  }
  return exec ? { exec, poll, escalation } : null;
}

/** Plans the model's answer to one request. */
export function planResponse(body: RequestView, ctx: PlanContext): Plan {
  const input = (Array.isArray(body.input) ? body.input : []) as InputItem[];
  const tools = (Array.isArray(body.tools) ? body.tools : []) as ToolSpec[];
  const users = userMessages(input);
  const latest = users.at(-1);
  if (!latest) return { kind: "message", text: "echo: (no user message)" };
  const script = scriptOf(users);
  if (!script) return { kind: "message", text: `echo: ${latest.text}` };
  const directives = forAttempt(script.directives, script.attempt);
  const tokens = directives.find((d) => d.kind === "tokens")?.count;
  const spend = tokens !== undefined ? { outputTokens: tokens } : {};

  // What this turn has done so far: the outputs of our calls after the latest user message.
  const calls = new Map<string, { directive: number; seq: number }>();
  const results = new Map<number, ToolResult>();
  let last: { directive: number; seq: number; result: ToolResult } | null = null;
  for (const item of input.slice(latest.index + 1)) {
    const m = item.call_id ? CALL_ID.exec(item.call_id) : null;
    if (!m || !item.call_id) continue;
    if (item.type === "function_call") calls.set(item.call_id, { directive: Number(m[1]), seq: Number(m[2]) });
    if (item.type === "function_call_output") {
      const at = calls.get(item.call_id) ?? { directive: Number(m[1]), seq: Number(m[2]) };
      const result = parseToolOutput(item.output);
      results.set(at.directive, result);
      last = { ...at, result };
    }
  }

  const shell = findShellTools(tools);
  const call = (directive: number, seq: number, name: string, args: Record<string, unknown>): Plan => ({
    kind: "call",
    name,
    arguments: JSON.stringify(args),
    callId: `call_fake_d${directive}_s${seq}_${ctx.nonce()}`,
    ...spend,
  });

  if (last && last.result.runningSession !== null) {
    if (!shell?.poll) return { kind: "fail", status: 400, message: "rehearsal: a command is still running and Codex offers no tool to wait for it" };
    return call(last.directive, last.seq + 1, shell.poll, { session_id: last.result.runningSession, chars: "", yield_time_ms: 30000 });
  }

  for (let i = last ? last.directive + 1 : 0; i < directives.length; i++) {
    const d = directives[i] as Directive;
    if (d.kind === "fail") return { kind: "fail", status: 400, message: d.message };
    if (d.kind === "stall") return { kind: "stall" };
    if (!isToolDirective(d)) continue;
    if (!shell) {
      const names = tools.map((t) => t.name ?? t.type).join(", ");
      return { kind: "fail", status: 400, message: `rehearsal: no shell tool among Codex's tools (${names})` };
    }
    const cmd = commandFor(d);
    const wait = d.kind === "sleep" ? Math.min(Math.max(d.ms + 2000, 250), 30000) : 30000;
    const args: Record<string, unknown> =
      shell.exec.style === "cmd"
        ? { cmd, yield_time_ms: wait }
        : { command: ["bash", "-lc", cmd], timeout_ms: d.kind === "sleep" ? d.ms + 60000 : 600000 };
    // Asks to leave the sandbox, as a real model does under on-request (the field exists only where Codex offers it).
    if (d.kind === "run-escalated") {
      if (!shell.escalation) return { kind: "fail", status: 400, message: "rehearsal: Codex's shell tool offers no sandbox_permissions here (run-escalated needs approval_policy on-request with a sandbox)" };
      Object.assign(args, { sandbox_permissions: "require_escalated", justification: `May I run ${d.command}?` });
    }
    return call(i, 0, shell.exec.name, args);
  }

  const deltas = directives.find((d) => d.kind === "deltas")?.count;
  return { kind: "message", text: finalAnswer(directives, results, users, ctx.token, script.attempt), ...(deltas ? { deltas } : {}), ...spend };
}

/**
 * The directives that script this turn, and which attempt of them it is. The latest user
 * message's own, on its first attempt; a message with none of its own (a check's feedback, say)
 * continues the latest earlier script that has `on-attempt` directives, as its next attempt: the
 * attempt is read back from the conversation, the model itself keeps no state.
 */
function scriptOf(users: { text: string }[]): { directives: Directive[]; attempt: number } | null {
  const own = parseDirectives(users.at(-1)!.text);
  if (own.length) return { directives: own, attempt: 1 };
  for (let k = users.length - 2; k >= 0; k--) {
    const earlier = parseDirectives(users[k]!.text);
    if (!earlier.length) continue;
    return earlier.some((d) => d.kind === "on-attempt") ? { directives: earlier, attempt: users.length - k } : null;
  }
  return null;
}

function finalAnswer(
  directives: Directive[],
  results: Map<number, ToolResult>,
  users: { text: string }[],
  token: string | null,
  attempt: number,
): string {
  const lines: string[] = attempt > 1 ? [`attempt ${attempt}`] : [];
  directives.forEach((d, i) => {
    const r = results.get(i);
    const status = r && r.exitCode !== null && r.exitCode !== 0 ? ` (exit ${r.exitCode})` : "";
    switch (d.kind) {
      case "write":
        lines.push(r && r.exitCode === 0 ? `wrote ${d.path}` : `write ${d.path} failed${status}: ${r?.output ?? "no output"}`);
        break;
      case "run":
      case "run-escalated":
        lines.push(`ran ${d.command}${status}:`, r?.output ?? "");
        break;
      case "env": {
        const v = /^value=\[([\s\S]*)\]$/.exec(r?.output ?? "");
        lines.push(v ? `env ${d.name}=${v[1]}` : `env ${d.name} unset`);
        break;
      }
      case "sleep":
        lines.push(`slept ${d.ms} ms${status}`);
        break;
      case "crash":
        lines.push(`crash: codex is still alive${status}: ${r?.output ?? ""}`);
        break;
      case "recall":
        lines.push(`recall: ${JSON.stringify(users.map((u) => u.text))}`);
        break;
      case "auth":
        lines.push(`auth: ${token ? tokenFingerprint(token) : "none"}`);
        break;
      case "deltas":
        lines.push(Array.from({ length: d.count }, (_, k) => `w${k + 1}`).join(" "));
        break;
      case "tokens":
        lines.push(`spent ${d.count} output tokens per answer`);
        break;
      case "fail":
      case "stall":
      case "on-attempt":
        break;
    }
  });
  return lines.join("\n");
}
