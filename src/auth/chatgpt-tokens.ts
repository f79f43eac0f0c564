// A ChatGPT login held by the broker: the single-use refresh token never enters a container.
// Before the access token expires (its JWT `exp`), the broker refreshes once for every
// container (single flight), writes the rotated tokens back to the source auth.json
// atomically, and tells its subscribers (the app-server drivers) to push the new access token.
import { chmodSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { WrapperError } from "../errors.js";
import { redact, silentLogger, type Logger } from "../log.js";
import { readAuthFile } from "./auth-file.js";
import type { ChatgptTokenSource } from "./token-source.js";

/** Codex's own OAuth client id, used for the refresh grant. */
export const CODEX_CLIENT_ID = "app_EMoamEEZ73f0CkXaXp7hrann";

/** The claims of a JWT (unverified: we only read our own token's expiry), or null. */
export function jwtClaims(token: string): Record<string, unknown> | null {
  const part = token.split(".")[1];
  if (!part) return null;
  try {
    const claims = JSON.parse(Buffer.from(part, "base64url").toString("utf8")) as unknown;
    return claims && typeof claims === "object" ? (claims as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

export interface ChatgptTokensOptions {
  authFile: string;
  tokenUrl: string;
  logger?: Logger;
  /** Refresh this long before `exp` (default: a fifth of the token's life, at most 5 minutes). */
  marginMs?: number;
  clientId?: string;
  fetch?: typeof fetch;
}

interface TokenState {
  accessToken: string;
  refreshToken: string;
  accountId: string;
  planType: string | null;
  /** Milliseconds since the epoch, or null when the token carries no `exp`. */
  expiresAt: number | null;
  issuedAt: number;
}

export class ChatgptTokens implements ChatgptTokenSource {
  private state: TokenState;
  private inflight: Promise<void> | null = null;
  private readonly listeners = new Set<() => void>();
  private timer: NodeJS.Timeout | undefined;
  private readonly logger: Logger;
  /** How many refresh calls this broker made (tests, metrics). */
  refreshCount = 0;

  constructor(private readonly opts: ChatgptTokensOptions) {
    this.logger = opts.logger ?? silentLogger;
    const info = readAuthFile(opts.authFile);
    const t = info.json.tokens;
    if (info.kind !== "chatgpt" || !t?.access_token || !t.refresh_token) {
      throw new WrapperError("AUTH_INVALID", `${opts.authFile}: not a ChatGPT login (no access and refresh token)`);
    }
    this.state = this.stateFrom(t.access_token, t.refresh_token, t.account_id ?? null, typeof t.id_token === "string" ? t.id_token : null);
  }

  private stateFrom(accessToken: string, refreshToken: string, accountId: string | null, idToken: string | null): TokenState {
    redact(accessToken);
    redact(refreshToken);
    const claims = jwtClaims(accessToken);
    const auth = (claims?.["https://api.openai.com/auth"] ?? jwtClaims(idToken ?? "")?.["https://api.openai.com/auth"]) as Record<string, unknown> | undefined;
    const acct = accountId ?? (typeof auth?.chatgpt_account_id === "string" ? auth.chatgpt_account_id : null);
    if (!acct) throw new WrapperError("AUTH_INVALID", `${this.opts.authFile}: the ChatGPT login names no account (tokens.account_id)`);
    return {
      accessToken,
      refreshToken,
      accountId: acct,
      planType: typeof auth?.chatgpt_plan_type === "string" ? auth.chatgpt_plan_type : null,
      expiresAt: typeof claims?.exp === "number" ? claims.exp * 1000 : null,
      issuedAt: Date.now(),
    };
  }

  private margin(): number {
    if (this.opts.marginMs !== undefined) return this.opts.marginMs;
    const life = this.state.expiresAt ? this.state.expiresAt - this.state.issuedAt : 3_600_000;
    return Math.min(300_000, Math.max(1000, life / 5));
  }

  private expiring(): boolean {
    return this.state.expiresAt !== null && Date.now() >= this.state.expiresAt - this.margin();
  }

  /** Starts refreshing ahead of each expiry. */
  start(): void {
    this.schedule();
  }

  private schedule(): void {
    clearTimeout(this.timer);
    if (this.state.expiresAt === null) return;
    const wait = Math.max(0, this.state.expiresAt - this.margin() - Date.now());
    this.timer = setTimeout(() => {
      this.refresh().catch((e: unknown) => {
        this.logger.error("ChatGPT token refresh failed; retrying in 30 s", { error: (e as Error).message });
        this.timer = setTimeout(() => this.schedule(), 30_000);
        this.timer.unref();
      });
    }, wait);
    this.timer.unref();
  }

  async current(): Promise<{ accessToken: string; accountId: string; planType: string | null }> {
    if (this.expiring()) await this.refresh();
    const s = this.state;
    return { accessToken: s.accessToken, accountId: s.accountId, planType: s.planType };
  }

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Refreshes once, however many callers ask at the same time. */
  refresh(): Promise<void> {
    this.inflight ??= this.doRefresh().finally(() => {
      this.inflight = null;
    });
    return this.inflight;
  }

  private async doRefresh(): Promise<void> {
    const f = this.opts.fetch ?? fetch;
    this.refreshCount++;
    const res = await f(this.opts.tokenUrl, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ client_id: this.opts.clientId ?? CODEX_CLIENT_ID, grant_type: "refresh_token", refresh_token: this.state.refreshToken, scope: "openid profile email" }),
      signal: AbortSignal.timeout(30_000),
    });
    if (!res.ok) throw new WrapperError("AUTH_INVALID", `ChatGPT token refresh at ${this.opts.tokenUrl} answered ${res.status}; log in again with \`codex login\``);
    const body = (await res.json()) as { access_token?: string; refresh_token?: string; id_token?: string };
    if (!body.access_token) throw new WrapperError("AUTH_INVALID", `ChatGPT token refresh at ${this.opts.tokenUrl} returned no access_token`);
    this.state = this.stateFrom(body.access_token, body.refresh_token ?? this.state.refreshToken, this.state.accountId, body.id_token ?? null);
    this.writeBack(body);
    this.logger.info("ChatGPT tokens refreshed", { expiresAt: this.state.expiresAt ? new Date(this.state.expiresAt).toISOString() : null });
    this.schedule();
    for (const l of this.listeners) l();
  }

  /** Writes the rotated tokens into the source auth.json (temp file, fsync'd by rename, 0600). */
  private writeBack(body: { access_token?: string; refresh_token?: string; id_token?: string }): void {
    const json = JSON.parse(readFileSync(this.opts.authFile, "utf8")) as { tokens?: Record<string, unknown>; last_refresh?: string };
    json.tokens = { ...json.tokens, access_token: body.access_token, refresh_token: this.state.refreshToken, ...(body.id_token ? { id_token: body.id_token } : {}) };
    json.last_refresh = new Date().toISOString();
    const tmp = `${this.opts.authFile}.tmp-${process.pid}`;
    writeFileSync(tmp, JSON.stringify(json, null, 2), { mode: 0o600, flush: true });
    chmodSync(tmp, 0o600);
    renameSync(tmp, this.opts.authFile);
  }

  stop(): void {
    clearTimeout(this.timer);
  }
}
