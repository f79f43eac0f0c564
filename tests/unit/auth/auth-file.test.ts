import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { AuthFileError, readAuthFile } from "../../../src/auth/auth-file.js";
import { scrub } from "../../../src/log.js";

function auth(body: string): string {
  const p = path.join(mkdtempSync(path.join(os.tmpdir(), "cmw-auth-")), "auth.json");
  writeFileSync(p, body, { mode: 0o600 });
  return p;
}

describe("readAuthFile", () => {
  it("tells an API key from a ChatGPT login, and registers the secrets for redaction", () => {
    expect(readAuthFile(auth(JSON.stringify({ OPENAI_API_KEY: "sk-abcdefghijkl" }))).kind).toBe("api-key");
    const chatgpt = readAuthFile(auth(JSON.stringify({ OPENAI_API_KEY: null, tokens: { access_token: "at-0123456789", refresh_token: "rt-0123456789", account_id: "a" } })));
    expect(chatgpt.kind).toBe("chatgpt");
    expect(chatgpt.mode).toBe(0o600);
    expect(scrub("token rt-0123456789 and sk-abcdefghijkl")).toBe("token [redacted] and [redacted]");
  });

  it("says what is wrong and how to fix it", () => {
    expect(() => readAuthFile("/nonexistent/auth.json")).toThrow(AuthFileError);
    expect(() => readAuthFile(auth("{not json"))).toThrow(/is not JSON/);
    expect(() => readAuthFile(auth("{}"))).toThrow(/neither an API key nor a ChatGPT login/);
  });
});
