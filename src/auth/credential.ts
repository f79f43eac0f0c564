// The credential the model relay puts in place of a worker's sentinel: the API key, or a
// ChatGPT login's current access token and account (refreshed ahead of expiry by ChatgptTokens,
// one refresh for every container). Only the broker holds it; no container ever sees it.
import type { AuthFileInfo } from "./auth-file.js";
import type { ChatgptTokens } from "./chatgpt-tokens.js";

export interface ModelCredential {
  readonly kind: AuthFileInfo["kind"];
  /** The request headers that carry it upstream (replacing the worker's). */
  headers(): Promise<Record<string, string>>;
}

/** An API key: `Authorization: Bearer <key>`. */
export class ApiKeyCredential implements ModelCredential {
  readonly kind = "api-key" as const;
  constructor(private readonly key: () => string) {}

  headers(): Promise<Record<string, string>> {
    return Promise.resolve({ authorization: `Bearer ${this.key()}` });
  }
}

/** A ChatGPT login: the current access token and the account it belongs to. */
export class ChatgptCredential implements ModelCredential {
  readonly kind = "chatgpt" as const;
  constructor(private readonly tokens: Pick<ChatgptTokens, "current">) {}

  async headers(): Promise<Record<string, string>> {
    const t = await this.tokens.current();
    return { authorization: `Bearer ${t.accessToken}`, "chatgpt-account-id": t.accountId };
  }
}
