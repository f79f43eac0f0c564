// What a ChatGPT login offers whoever needs its access token: the relay's credential, and the
// app-server driver, which pushes a token to Codex. Declared here, beside the login it describes.

/** Access tokens the broker holds for a ChatGPT login (the refresh token stays with it). */
export interface ChatgptTokenSource {
  current(): Promise<{ accessToken: string; accountId: string; planType: string | null }>;
  /** Called with each new access token; returns an unsubscribe function. */
  subscribe(listener: () => void): () => void;
}
