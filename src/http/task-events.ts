// A task's event log (tasks/<id>/events.jsonl) as the few things a person watching wants to see:
// commands run, their output, Codex's messages, notes, the start and the end. Pure: the status
// page's event stream (./status-pages.ts) reads the log and sends what this makes of each line.
import { cutText, outputDelta } from "../mission/event-log.js";

export type ShownKind = "start" | "command" | "output" | "exit" | "message" | "note" | "check" | "end";

/** One line of the task view's event list: a kind (its look) and plain text (shown as text). */
export interface ShownEvent {
  kind: ShownKind;
  text: string;
  at?: string;
  /** An output that takes the place of the output shown since the command started (its whole output, at its end). */
  replace?: true;
}

/** Any one shown text is cut to this (its first and last half): the page's memory stays bounded. */
export const SHOWN_TEXT_LIMIT = 16 * 1024;

/**
 * What a reader of one task's log remembers between lines: the output the running command
 * streamed so far (up to a bound; null past it). Codex does not stream every chunk (0.169.0's
 * unified exec sends no delta for what a command printed before its first yield), so the
 * command's end, which carries its whole output, puts that in place of the stream when they differ.
 */
export interface ShownState {
  streamed: string | null;
}

export const newShownState = (): ShownState => ({ streamed: "" });

const str = (v: unknown): string => (typeof v === "string" ? v : v === undefined || v === null ? "" : JSON.stringify(v));

/** What one logged event shows, or [] for the protocol chatter a person does not need. */
export function shownEvents(event: unknown, state: ShownState): ShownEvent[] {
  if (!event || typeof event !== "object") return [];
  const e = event as Record<string, unknown>;
  const at = typeof e.at === "string" ? e.at : undefined;
  const one = (kind: ShownKind, text: string): ShownEvent[] => [{ kind, text: cutText(text, SHOWN_TEXT_LIMIT), ...(at ? { at } : {}) }];
  switch (e.type) {
    case "task_started":
      return one("start", `started on container ${str(e.container)}`);
    case "command_started":
      state.streamed = "";
      return one("command", `$ ${str(e.command)}`);
    case "codex": {
      const delta = outputDelta(e.message);
      if (!delta) return [];
      if (state.streamed !== null) state.streamed = state.streamed.length + delta.text.length > SHOWN_TEXT_LIMIT ? null : state.streamed + delta.text;
      return one("output", delta.text);
    }
    case "command_finished": {
      // exec --json streams no output: its end event carries it; the others streamed it, maybe not all.
      const whole = typeof e.output === "string" ? e.output : "";
      const output = whole && state.streamed !== null && whole !== state.streamed ? [{ ...one("output", whole)[0]!, ...(state.streamed ? { replace: true as const } : {}) }] : [];
      state.streamed = "";
      return [...output, ...one("exit", `exit ${e.exitCode === null || e.exitCode === undefined ? "?" : str(e.exitCode)}`)];
    }
    case "output_left_out":
      return one("note", `${str(e.leftOutBytes)} bytes of output left out of the log; its end:\n${str(e.tail)}`);
    case "agent_message":
      return one("message", str(e.text));
    case "file_change":
      return one("note", `changed ${Array.isArray(e.paths) ? e.paths.map(str).join(", ") : ""}`);
    case "warning":
      return one("note", `warning: ${str(e.message)}`);
    case "approval_declined":
      return one("note", `declined: ${str(e.request)} ${str(e.detail)}`);
    case "note":
      return one("note", str(e.note));
    case "check_started":
      return one("check", `check (attempt ${str(e.attempt)}): $ ${str(e.command)}`);
    case "check_finished":
      return one("check", `check ${e.timedOut ? "timed out" : `exited ${e.exitCode === null ? "?" : str(e.exitCode)}`}\n${str(e.outputTail)}`);
    case "attempt":
      return one("note", `attempt ${str(e.attempt)} of ${str(e.of)}: ${str(e.reason)}`);
    case "task_finished":
      return one("end", `finished: ${str(e.status)}${e.error ? `: ${str(e.error)}` : ""}`);
    default:
      return [];
  }
}

/**
 * Consecutive output of one batch joined into one line, so a command printing thousands of small
 * deltas sends (and the page keeps) a few lines, not thousands.
 */
export function joinOutput(events: ShownEvent[]): ShownEvent[] {
  const out: ShownEvent[] = [];
  for (const e of events) {
    const last = out[out.length - 1];
    if (e.kind === "output" && last?.kind === "output") {
      last.text = e.replace ? e.text : cutText(last.text + e.text, SHOWN_TEXT_LIMIT);
      if (e.replace) last.replace = true;
    }
    else out.push({ ...e });
  }
  return out;
}
