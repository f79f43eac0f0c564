// The logger never writes a registered secret, whatever characters it holds: a JSON log line
// escapes quotes, backslashes and control characters, and the escaped form is scrubbed too.
import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { collectArtifacts } from "../../../src/artifacts/collect.js";
import { createLogger, redact, scrub, scrubBuffer, scrubValue } from "../../../src/log.js";

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

  it("scrubValue cleans what Codex reports (events, outcomes), escaped forms included, and leaves clean values as they are", () => {
    const secret = 'sk-"value"-0123456789';
    redact(secret);
    const event = { kind: "command_output", text: `OPENAI_API_KEY=${secret}`, nested: [{ json: JSON.stringify({ k: secret }) }] };
    const clean = scrubValue(event);
    expect(JSON.stringify(clean)).not.toContain("0123456789");
    expect(clean.text).toBe("OPENAI_API_KEY=[redacted]");
    const untouched = { kind: "agent_message", text: "nothing here" };
    expect(scrubValue(untouched)).toBe(untouched);
    expect(scrubValue(null)).toBeNull();
  });

  it("scrubValue copies only the path to a string that changes: the event it was given is left as it was, clean branches are shared", () => {
    const secret = "sk-branch-0123456789";
    redact(secret);
    const clean = { command: ["ls", "-l"], cwd: "/work" };
    const event = { kind: "raw", message: { params: { item: clean, output: [`key ${secret}`, "ok"] } } };
    const before = JSON.stringify(event);
    const out = scrubValue(event);
    expect(JSON.stringify(event), "the input is not modified").toBe(before);
    expect(out).not.toBe(event);
    expect(out.message.params.output).toEqual(["key [redacted]", "ok"]);
    expect(out.message.params.item, "a branch with no secret is the same object").toBe(clean);
  });

  it("scrubBuffer replaces every occurrence and counts them; an artifact copy carries no secret and says so", () => {
    const secret = "sk-artifact-0123456789";
    redact(secret);
    const { data, replaced } = scrubBuffer(Buffer.from(`a ${secret} b ${secret}${secret}`));
    expect(data.toString()).toBe("a [redacted] b [redacted][redacted]");
    expect(replaced).toBe(3);
    const ws = mkdtempSync(path.join(os.tmpdir(), "cmw-redact-ws-"));
    const dest = mkdtempSync(path.join(os.tmpdir(), "cmw-redact-dest-"));
    mkdirSync(path.join(ws, "out"));
    writeFileSync(path.join(ws, "out/auth-copy.json"), JSON.stringify({ OPENAI_API_KEY: secret }));
    writeFileSync(path.join(ws, "out/clean.txt"), "clean");
    const entries = collectArtifacts(ws, ["out/**"], dest);
    expect(entries.map((e) => [e.path, e.redacted])).toEqual([
      ["out/auth-copy.json", 1],
      ["out/clean.txt", undefined],
    ]);
    expect(readFileSync(path.join(dest, "out/auth-copy.json"), "utf8")).toBe('{"OPENAI_API_KEY":"[redacted]"}');
    // The manifest describes the copy that leaves, not the file that was read: a hash of the
    // secret-bearing original would let anyone holding the manifest confirm a guessed secret.
    const sha = (s: string): string => createHash("sha256").update(s).digest("hex");
    const copy = readFileSync(path.join(dest, "out/auth-copy.json"));
    const entry = entries[0]!;
    expect(entry.sha256, "a redacted artifact's sha256 is the hash of the redacted copy").toBe(createHash("sha256").update(copy).digest("hex"));
    expect(entry.sha256, "a redacted artifact's sha256 is not the hash of the secret-bearing original").not.toBe(sha(JSON.stringify({ OPENAI_API_KEY: secret })));
    expect(entry.size, "a redacted artifact's size is the size of the redacted copy").toBe(copy.length);
  });
});
