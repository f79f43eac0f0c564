// The relay's usage meter: each response.completed event's usage, however the stream is cut into
// chunks, and nothing from the other events.
import { describe, expect, it } from "vitest";
import { UsageMeter, type Usage } from "../../../src/relay/usage.js";

const sse = (type: string, data: object, crlf = false): string => {
  const nl = crlf ? "\r\n" : "\n";
  return `event: ${type}${nl}data: ${JSON.stringify({ type, ...data })}${nl}${nl}`;
};
const completed = (input: number, output: number, model = "gpt-5.5 ✓") =>
  sse("response.completed", { response: { model, usage: { input_tokens: input, input_tokens_details: { cached_tokens: 7 }, output_tokens: output, output_tokens_details: { reasoning_tokens: 3 } } } });
/** A long answer: deltas (with a character of 4 bytes in each), then its completion. */
const answer = (deltas: number, input: number): string => [sse("response.created", { response: { id: "r" } }), ...Array.from({ length: deltas }, (_, i) => sse("response.output_text.delta", { delta: `d${i} 😀 "response.completed"?` })), completed(input, deltas)].join("");

function meter(chunks: Buffer[]): Usage[] {
  const got: Usage[] = [];
  const m = new UsageMeter((u) => got.push(u));
  for (const c of chunks) m.feed(c);
  return got;
}

describe("UsageMeter", () => {
  it("reports each completed answer's usage, whatever the chunks' boundaries (mid-event, mid-separator, mid-character)", () => {
    const stream = Buffer.from(answer(300, 1200) + answer(5, 99) + sse("response.completed", { response: { model: "m" } }, true));
    const want = [
      { inputTokens: 1200, cachedInputTokens: 7, outputTokens: 300, reasoningOutputTokens: 3, requests: 1, model: "gpt-5.5 ✓" },
      { inputTokens: 99, cachedInputTokens: 7, outputTokens: 5, reasoningOutputTokens: 3, requests: 1, model: "gpt-5.5 ✓" },
      { inputTokens: 0, cachedInputTokens: 0, outputTokens: 0, reasoningOutputTokens: 0, requests: 1, model: "m" },
    ];
    expect(meter([stream])).toEqual(want);
    for (const size of [1, 2, 3, 7, 64, 1000, 16384]) {
      const chunks: Buffer[] = [];
      for (let at = 0; at < stream.length; at += size) chunks.push(stream.subarray(at, at + size));
      expect(meter(chunks), `chunks of ${size} bytes`).toEqual(want);
    }
  });

  it("skips an event too large to be a usage report, and reads the next one", () => {
    const huge = `data: ${"x".repeat(5 * 1024 * 1024)}\n\n`;
    expect(meter([Buffer.from(huge.slice(0, 3_000_000)), Buffer.from(huge.slice(3_000_000) + completed(10, 2))])).toEqual([expect.objectContaining({ inputTokens: 10, outputTokens: 2 })]);
  });
});
