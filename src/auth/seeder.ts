// Workers' auth.json holds a sentinel, never the real login: for an API key, the container's own
// relay token in OPENAI_API_KEY; for a ChatGPT login, placeholder tokens (a JWT-shaped access
// token that is the container's relay token, and no usable refresh token). The model relay puts
// the real credential in the sentinel's place. The broker's copy of the real login (`info`)
// follows the auth file as it changes.
import { chmodSync, chownSync, renameSync, rmSync, unwatchFile, watchFile, writeFileSync } from "node:fs";
import path from "node:path";
import { REHEARSAL_KEY } from "../config/rehearsal.js";
import type { Logger } from "../log.js";
import { readAuthFile, type AuthFileInfo } from "./auth-file.js";

export interface SeedTarget {
  dir: string;
  user: { uid: number; gid: number };
  /** The auth.json to write, or null for none (a ChatGPT login pushed over app-server). */
  auth: Record<string, unknown> | null;
}

/** The account id placeholder a ChatGPT worker sends; the relay puts the real one in its place. */
export const PLACEHOLDER_ACCOUNT = "cmw-relay-account";

/** A JWT-shaped placeholder (unsigned) carrying `claims`; Codex reads a ChatGPT token's claims, never its signature. */
export function placeholderJwt(claims: Record<string, unknown>): string {
  const part = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString("base64url");
  return `${part({ alg: "none", typ: "JWT" })}.${part(claims)}.cmw-relay`;
}

/** A ChatGPT relay token: a placeholder JWT that does not expire while the container lives. */
export function chatgptRelayToken(nonce: string, planType: string | null): string {
  return placeholderJwt({
    sub: `cmw-relay-${nonce}`,
    exp: Math.floor(Date.now() / 1000) + 10 * 365 * 24 * 3600,
    "https://api.openai.com/auth": { chatgpt_account_id: PLACEHOLDER_ACCOUNT, chatgpt_plan_type: planType ?? "plus" },
  });
}

/** The sentinel auth.json of a worker whose relay token is `token`. */
export function sentinelAuth(kind: AuthFileInfo["kind"], token: string, planType: string | null): Record<string, unknown> {
  if (kind === "api-key") return { OPENAI_API_KEY: token };
  return {
    OPENAI_API_KEY: null,
    tokens: {
      id_token: placeholderJwt({ email: "worker@codex-mcp-wrapper.invalid", "https://api.openai.com/auth": { chatgpt_account_id: PLACEHOLDER_ACCOUNT, chatgpt_plan_type: planType ?? "plus" } }),
      access_token: token,
      refresh_token: "cmw-relay-no-refresh-token",
      account_id: PLACEHOLDER_ACCOUNT,
    },
    last_refresh: new Date().toISOString(),
  };
}

export class AuthSeeder {
  private watching = false;
  info: AuthFileInfo;

  /** `source` null: rehearsal mode, no login; workers get a sentinel for a key that does not exist. */
  constructor(
    private readonly source: string | null,
    private readonly logger: Logger,
  ) {
    if (source === null) {
      this.info = { path: "(rehearsal mode: no login)", kind: "api-key", mode: 0o600, json: { OPENAI_API_KEY: REHEARSAL_KEY } };
      return;
    }
    this.info = readAuthFile(source);
    watchFile(source, { interval: 1000 }, () => this.reload());
    this.watching = true;
  }

  get kind(): AuthFileInfo["kind"] {
    return this.info.kind;
  }

  /** Writes a worker's sentinel auth.json (0600, owned by the worker's user), or removes it. */
  seed(t: SeedTarget): void {
    const dest = path.join(t.dir, "auth.json");
    if (!t.auth) {
      rmSync(dest, { force: true });
      return;
    }
    const tmp = `${dest}.tmp-${process.pid}`;
    writeFileSync(tmp, JSON.stringify(t.auth, null, 2), { mode: 0o600 });
    chmodSync(tmp, 0o600);
    if (process.getuid?.() === 0) chownSync(tmp, t.user.uid, t.user.gid);
    renameSync(tmp, dest);
  }

  /** The auth file changed (a new key, `codex login` again): the relay uses the new login from now on. */
  private reload(): void {
    if (this.source === null) return;
    try {
      const next = readAuthFile(this.source);
      if (next.kind !== this.info.kind) {
        this.logger.warn("the auth file's login kind changed; restart the broker to use it", { was: this.info.kind, now: next.kind });
        return;
      }
      this.info = next;
      this.logger.info("auth file changed; the relay uses the new login");
    } catch (e) {
      this.logger.warn("auth file changed but cannot be read; the relay keeps the previous login", { error: (e as Error).message });
    }
  }

  close(): void {
    if (this.watching && this.source !== null) unwatchFile(this.source);
    this.watching = false;
  }
}
