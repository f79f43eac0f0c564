// A task's event log (tasks/<id>/events.jsonl) kept within bounds. A command that prints 60 MB
// streams it to the broker as thousands of output deltas, and Codex repeats the whole output in
// the command's end event: logged as they come, one such task left a 45 MB log. Here each
// command's streamed output is logged up to a head, then only counted, and when the command
// ends (or the task does) one `output_left_out` event says how much was left out and carries
// its tail; every other text in an event is cut to its first and last part. (Codex itself keeps
// no command's whole output: its end event and its stream stop past their own caps. A task that
// needs all of it writes it to a file and names the file in its artifacts.)

/** The bounds (docs/missions.md, "Results and state"). */
export const EVENT_LOG_LIMITS = {
  /** Streamed output logged per command before the rest is only counted. */
  commandHead: 64 * 1024,
  /** Streamed output logged per task, over all its commands. */
  taskHead: 4 * 1024 * 1024,
  /** The end of a command's output kept for its `output_left_out` event. */
  tail: 16 * 1024,
  /** Any one text in an event: longer ones keep their first and last half of this. */
  text: 32 * 1024,
};

/** A command's streamed output in a Codex event (app-server, mcp-server), or null. */
export function outputDelta(message: unknown): { key: string; text: string } | null {
  if (!message || typeof message !== "object") return null;
  const m = message as { method?: unknown; params?: { itemId?: unknown; delta?: unknown }; type?: unknown; call_id?: unknown; chunk?: unknown };
  if (m.method === "item/commandExecution/outputDelta" && typeof m.params?.itemId === "string" && typeof m.params.delta === "string") {
    return { key: m.params.itemId, text: m.params.delta };
  }
  if (m.type === "exec_command_output_delta" && typeof m.call_id === "string") {
    const chunk = typeof m.chunk === "string" ? Buffer.from(m.chunk, "base64").toString("utf8") : Array.isArray(m.chunk) ? Buffer.from(m.chunk as number[]).toString("utf8") : "";
    return { key: m.call_id, text: chunk };
  }
  return null;
}

/** The command a Codex event ends, by the key its deltas carry, or null. */
function commandEnd(message: unknown): string | null {
  if (!message || typeof message !== "object") return null;
  const m = message as { method?: unknown; params?: { item?: { type?: unknown; id?: unknown } }; type?: unknown; call_id?: unknown };
  if (m.method === "item/completed" && m.params?.item?.type === "commandExecution" && typeof m.params.item.id === "string") return m.params.item.id;
  if (m.type === "exec_command_end" && typeof m.call_id === "string") return m.call_id;
  return null;
}

/** A text cut to its first and last `limit / 2` characters, with how much was left out between. */
export function cutText(text: string, limit = EVENT_LOG_LIMITS.text): string {
  if (text.length <= limit) return text;
  const half = Math.floor(limit / 2);
  return `${text.slice(0, half)}\n[… ${text.length - 2 * half} characters left out of the event log …]\n${text.slice(-half)}`;
}

/** Whether a value holds a string longer than `limit` (no copy made: most events have none). */
function hasLongText(value: unknown, limit: number): boolean {
  if (typeof value === "string") return value.length > limit;
  if (Array.isArray(value)) return value.some((v) => hasLongText(v, limit));
  if (value && typeof value === "object") {
    for (const k in value) if (hasLongText((value as Record<string, unknown>)[k], limit)) return true;
  }
  return false;
}

/** A value with every long string in it cut (a copy when one is cut; else the value itself). */
export function cutTexts<T>(value: T, limit = EVENT_LOG_LIMITS.text): T {
  return hasLongText(value, limit) ? cutCopy(value, limit) : value;
}

function cutCopy<T>(value: T, limit: number): T {
  if (typeof value === "string") return cutText(value, limit) as T;
  if (Array.isArray(value)) return value.map((v: unknown) => cutCopy(v, limit)) as T;
  if (value && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = cutCopy(v, limit);
    return out as T;
  }
  return value;
}

interface Streaming {
  logged: number;
  leftOut: number;
  tail: string;
}

export class TaskEventLog {
  private taskLogged = 0;
  private readonly streaming = new Map<string, Streaming>();

  constructor(private readonly append: (event: object) => void) {}

  /** Logs one event, its texts cut. */
  write(event: object): void {
    this.append(cutTexts(event));
  }

  /**
   * Logs a Codex event: a command's output delta while the command and the task are under
   * their head, else only counted; a command's end closes its count. Returns false when the
   * event was not logged.
   */
  codex(message: unknown): boolean {
    const delta = outputDelta(message);
    if (delta) {
      const s = this.streaming.get(delta.key) ?? { logged: 0, leftOut: 0, tail: "" };
      this.streaming.set(delta.key, s);
      const bytes = Buffer.byteLength(delta.text);
      if (s.leftOut === 0 && s.logged + bytes <= EVENT_LOG_LIMITS.commandHead && this.taskLogged + bytes <= EVENT_LOG_LIMITS.taskHead) {
        s.logged += bytes;
        this.taskLogged += bytes;
        this.write({ type: "codex", message });
        return true;
      }
      s.leftOut += bytes;
      s.tail = (s.tail + delta.text).slice(-EVENT_LOG_LIMITS.tail);
      return false;
    }
    const ended = commandEnd(message);
    this.write({ type: "codex", message });
    if (ended) this.close(ended);
    return true;
  }

  /** Says how much of a command's output (or every open one's) was left out, with its tail. */
  close(key?: string): void {
    for (const [k, s] of this.streaming) {
      if (key !== undefined && k !== key) continue;
      if (s.leftOut > 0) this.write({ type: "output_left_out", itemId: k, loggedBytes: s.logged, leftOutBytes: s.leftOut, tail: s.tail });
      this.streaming.delete(k);
    }
  }
}
