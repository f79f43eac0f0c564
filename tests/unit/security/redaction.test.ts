// The logger never writes a registered secret, whatever characters it holds: a JSON log line
// escapes quotes, backslashes and control characters, and the escaped form is scrubbed too.
import { describe, expect, it } from "vitest";
import { createLogger, redact, scrub } from "../../../src/log.js";

function logged(fields: Record<string, unknown>): string {
  const lines: string[] = [];
  createLogger({ level: "debug", write: (l) => lines.push(l) }).error("request refused", fields);
  return lines.join("");
}

describe("secrets in logs", () => {
  it.each([
    ["a plain secret", "sk-plain-0123456789"],
    ["a secret with a quote and a backslash", 'pa"ss\\word-0123456789'],
    ["a secret with a newline and a tab", "line1\nline2\tend-0123456789"],
    ["a non-ASCII secret", "clé-secrète-0123456789"],
  ])("%s is replaced in every field, message and error", (_name, secret) => {
    redact(secret);
    const out = logged({ header: `Bearer ${secret}`, nested: { list: [secret] }, err: new Error(`bad token ${secret}`) });
    expect(out).toContain("[redacted]");
    expect(out).not.toContain(secret);
    expect(out).not.toContain(JSON.stringify(secret).slice(1, -1));
    expect(JSON.parse(out)).toMatchObject({ level: "error", msg: "request refused" }); // still one JSON line
  });

  it("scrub replaces a registered secret in any text; short strings are not registered", () => {
    redact("abc");
    expect(scrub("abc def")).toBe("abc def");
    redact("sk-scrub-0123456789");
    expect(scrub("key=sk-scrub-0123456789;")).toBe("key=[redacted];");
  });
});
