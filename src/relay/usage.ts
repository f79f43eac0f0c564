// Metering at the relay: the usage of each answer, read from the `response.completed` event of
// the Responses API's server-sent events as they pass (the stream itself is not held back).
import { StringDecoder } from "node:string_decoder";
import { z } from "zod";

/** Tokens one model answer used, as the upstream reported them. */
export const UsageSchema = z.object({
  inputTokens: z.number().int().nonnegative(),
  cachedInputTokens: z.number().int().nonnegative(),
  outputTokens: z.number().int().nonnegative(),
  reasoningOutputTokens: z.number().int().nonnegative(),
  /** Model requests this covers. */
  requests: z.number().int().nonnegative(),
});
export type TokenUsage = z.infer<typeof UsageSchema>;

/** A task's usage: what its turn's model calls used, the model that answered, and the worker profile. */
export const TaskUsageSchema = UsageSchema.extend({ model: z.string().nullable(), profile: z.string() });
export type TaskUsage = z.infer<typeof TaskUsageSchema>;

/** One answer's usage, with where it came from. */
export interface Usage extends TokenUsage {
  model: string | null;
  container?: string;
  /** The Codex thread the request named, if it did. */
  threadId?: string | null;
}

export const ZERO_USAGE: TokenUsage = { inputTokens: 0, cachedInputTokens: 0, outputTokens: 0, reasoningOutputTokens: 0, requests: 0 };

const combine = (a: TokenUsage, b: TokenUsage, sign: 1 | -1): TokenUsage => ({
  inputTokens: a.inputTokens + sign * b.inputTokens,
  cachedInputTokens: a.cachedInputTokens + sign * b.cachedInputTokens,
  outputTokens: a.outputTokens + sign * b.outputTokens,
  reasoningOutputTokens: a.reasoningOutputTokens + sign * b.reasoningOutputTokens,
  requests: a.requests + sign * b.requests,
});

/** `a` plus `b`. */
export const addUsage = (a: TokenUsage, b: TokenUsage): TokenUsage => combine(a, b, 1);
/** `a` minus `b`: the usage since snapshot `b` was taken. */
export const subUsage = (a: TokenUsage, b: TokenUsage): TokenUsage => combine(a, b, -1);

const Completed = z.object({
  type: z.literal("response.completed"),
  response: z.looseObject({
    model: z.string().optional(),
    usage: z
      .looseObject({
        input_tokens: z.number().optional(),
        input_tokens_details: z.looseObject({ cached_tokens: z.number().optional() }).nullish(),
        output_tokens: z.number().optional(),
        output_tokens_details: z.looseObject({ reasoning_tokens: z.number().optional() }).nullish(),
      })
      .nullish(),
  }),
});

/** Largest event the meter keeps while it waits for the event's end (a completed event repeats the output). */
const MAX_EVENT = 4 * 1024 * 1024;

/**
 * Reads server-sent events as they stream past and reports each completed answer's usage. Linear
 * in the bytes: a chunk is scanned once from where the last event ended (a long answer's chunk
 * holds dozens of delta events, and slicing the rest anew after each one made it quadratic), and
 * only an event that names response.completed is taken apart. Bytes are decoded across chunk
 * boundaries (a character split between two chunks stays whole).
 */
export class UsageMeter {
  private pending = "";
  private skipping = false;
  private readonly decoder = new StringDecoder("utf8");

  constructor(private readonly report: (u: Usage) => void) {}

  feed(chunk: Buffer): void {
    this.pending += this.decoder.write(chunk);
    const end = /\r?\n\r?\n/g;
    let at = 0;
    for (let m = end.exec(this.pending); m; m = end.exec(this.pending)) {
      const event = this.pending.slice(at, m.index);
      at = m.index + m[0].length;
      if (this.skipping) this.skipping = false;
      else this.onEvent(event);
    }
    this.pending = at ? this.pending.slice(at) : this.pending;
    if (this.pending.length > MAX_EVENT) {
      this.pending = ""; // an event too large to be a usage report: skip to its end
      this.skipping = true;
    }
  }

  private onEvent(event: string): void {
    if (!event.includes('"response.completed"')) return;
    const data = event
      .split(/\r?\n/)
      .filter((l) => l.startsWith("data:"))
      .map((l) => l.slice(5).trimStart())
      .join("\n");
    if (!data.includes('"response.completed"')) return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(data);
    } catch {
      return;
    }
    const r = Completed.safeParse(parsed);
    if (!r.success) return;
    const u = r.data.response.usage;
    this.report({
      inputTokens: u?.input_tokens ?? 0,
      cachedInputTokens: u?.input_tokens_details?.cached_tokens ?? 0,
      outputTokens: u?.output_tokens ?? 0,
      reasoningOutputTokens: u?.output_tokens_details?.reasoning_tokens ?? 0,
      requests: 1,
      model: r.data.response.model ?? null,
    });
  }
}
