// Reads Codex's auth.json (the file to seed workers from) and says what it is: an API key, or
// a ChatGPT login (whose refresh token must stay with the broker). Never logs its content.
import { readFileSync, statSync } from "node:fs";
import { z } from "zod";
import { redact } from "../log.js";

const AuthJson = z.looseObject({
  OPENAI_API_KEY: z.string().nullable().optional(),
  tokens: z
    .looseObject({
      id_token: z.unknown().optional(),
      access_token: z.string().optional(),
      refresh_token: z.string().optional(),
      account_id: z.string().nullable().optional(),
    })
    .nullable()
    .optional(),
  last_refresh: z.string().nullable().optional(),
});
export type AuthJson = z.infer<typeof AuthJson>;

export type AuthKind = "api-key" | "chatgpt";

export interface AuthFileInfo {
  path: string;
  kind: AuthKind;
  mode: number;
  json: AuthJson;
}

export class AuthFileError extends Error {
  constructor(
    message: string,
    readonly fix: string,
  ) {
    super(message);
    this.name = "AuthFileError";
  }
}

/** Reads and classifies an auth.json; registers its secrets for redaction. */
export function readAuthFile(path: string): AuthFileInfo {
  let mode: number;
  let text: string;
  try {
    mode = statSync(path).mode & 0o777;
    text = readFileSync(path, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new AuthFileError(`no auth file at ${path}`, "run `codex login` (or write an auth.json with OPENAI_API_KEY), or set broker.auth_file / CODEX_WRAPPER_AUTH_FILE");
    throw new AuthFileError(`cannot read ${path} (${code})`, "make it readable by the user running the broker");
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new AuthFileError(`${path} is not JSON`, "run `codex login` again to rewrite it");
  }
  const r = AuthJson.safeParse(parsed);
  if (!r.success) throw new AuthFileError(`${path} does not look like Codex's auth.json`, "run `codex login` again to rewrite it");
  const json = r.data;
  redact(json.OPENAI_API_KEY);
  redact(json.tokens?.access_token);
  redact(json.tokens?.refresh_token);
  if (typeof json.tokens?.id_token === "string") redact(json.tokens.id_token);
  if (json.tokens?.refresh_token) return { path, kind: "chatgpt", mode, json };
  if (json.OPENAI_API_KEY) return { path, kind: "api-key", mode, json };
  throw new AuthFileError(`${path} holds neither an API key nor a ChatGPT login`, "run `codex login` (ChatGPT) or `codex login --with-api-key`");
}
