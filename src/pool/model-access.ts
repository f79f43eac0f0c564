// How workers reach the model: the broker's relay, the credential it injects (an API key, or a
// ChatGPT login refreshed ahead of expiry, one refresh for every container) and each profile's
// upstream. No container gets the credential. A profile on a rehearsal image is answered by the
// rehearsal model on loopback.
import type { AuthSeeder } from "../auth/seeder.js";
import { ChatgptTokens } from "../auth/chatgpt-tokens.js";
import { ApiKeyCredential, ChatgptCredential, type ModelCredential } from "../auth/credential.js";
import type { ChatgptTokenSource } from "../auth/token-source.js";
import type { WrapperConfig } from "../config/schema.js";
import type { Logger } from "../log.js";
import { ModelRelay } from "../relay/model-relay.js";
import type { UpstreamTarget } from "../relay/upstream.js";
import { startRehearsalServer, type RehearsalServer } from "../rehearsal/server.js";

/** The image label that marks a rehearsal image: the broker serves its model itself (the rehearsal model, on loopback). */
export const REHEARSAL_LABEL = "io.codex-mcp-wrapper.rehearsal";
/** Where a relay sends model calls when wrapper.toml names no model_upstream. */
export const DEFAULT_UPSTREAMS = { "api-key": "https://api.openai.com/v1", chatgpt: "https://chatgpt.com/backend-api/codex" } as const;

export class ModelAccess {
  /** Every worker reaches the model through it; none holds a real credential. */
  relay: ModelRelay | undefined;
  /** The ChatGPT login's plan, shown to Codex in its placeholder token. */
  planType: string | null = null;
  private readonly upstreams = new Map<string, UpstreamTarget>();
  /** The ChatGPT login held here, when no source was given. */
  private ownTokens: ChatgptTokens | undefined;
  private rehearsal: RehearsalServer | undefined;

  constructor(private readonly opts: { config: WrapperConfig; logger: Logger; tokens?: ChatgptTokenSource | undefined }) {}

  /** Starts the relay (and the rehearsal model for `rehearsalProfiles`) for the login the seeder read. */
  async open(seeder: AuthSeeder, rehearsalProfiles: Set<string>): Promise<void> {
    const { config, logger } = this.opts;
    let credential: ModelCredential;
    if (seeder.kind === "chatgpt") {
      if (!this.opts.tokens) {
        this.ownTokens = new ChatgptTokens({ authFile: config.authFile, tokenUrl: config.chatgptTokenUrl, logger });
        this.ownTokens.start();
      }
      const tokens = this.opts.tokens ?? this.ownTokens!;
      credential = new ChatgptCredential(tokens);
      this.planType = (await tokens.current()).planType;
    } else credential = new ApiKeyCredential(() => seeder.info.json.OPENAI_API_KEY ?? "");
    const hosts = config.egressHosts;
    this.relay = new ModelRelay({ logger, resolveHost: (h) => hosts[h.toLowerCase()] });
    const rehearsalMode = !!config.rehearsal;
    if (rehearsalProfiles.size || rehearsalMode) {
      this.rehearsal = await startRehearsalServer({ host: "127.0.0.1", port: 0, log: (line) => logger.debug("rehearsal model", { line }) });
    }
    for (const p of config.workers) {
      // In rehearsal mode every profile's model is the rehearsal model, whatever its image.
      const baseUrl = rehearsalMode || rehearsalProfiles.has(p.name) ? this.rehearsal!.url : (config.modelUpstream ?? DEFAULT_UPSTREAMS[seeder.kind]);
      this.upstreams.set(p.name, { baseUrl, credential, idleTimeoutMs: config.modelTimeoutMs });
    }
  }

  /** Where a profile's model calls go, with the credential the relay puts in. */
  upstream(profile: string): UpstreamTarget | undefined {
    return this.upstreams.get(profile);
  }

  async close(): Promise<void> {
    this.ownTokens?.stop();
    this.relay?.close();
    await this.rehearsal?.close();
  }
}
