// The model relay: every worker reaches the model API through the broker, over its relay
// channel (no container network). A request must carry the token the broker gave that very
// container (revoked when the container goes), must be a model API call Codex makes, and goes
// upstream with the real credential in the token's place. Answers stream back chunk by chunk,
// and each `response.completed` event's usage is metered to the container's turns.
import { randomBytes } from "node:crypto";
import http from "node:http";
import type { Duplex } from "node:stream";
import { describeError } from "../errors.js";
import { silentLogger, type Logger } from "../log.js";
import type { RelayChannel } from "./channel.js";
import { EgressProxy, type EgressPolicy, type EgressRefusal } from "./egress.js";
import { ModelUpstream, type UpstreamTarget } from "./upstream.js";
import { UsageMeter, type Usage } from "./usage.js";

/** Paths (after the provider's base path, e.g. /v1) that Codex calls, and their methods. */
const MODEL_API: { method: string; path: RegExp }[] = [
  { method: "POST", path: /^\/responses$/ },
  { method: "POST", path: /^\/responses\/compact$/ },
  { method: "GET", path: /^\/models$/ },
];
/** The base path Codex's provider config in the worker images uses (base_url …/v1). */
const BASE_PATH = "/v1";

/** Headers that describe one hop, never forwarded (RFC 9110 §7.6.1), and the ones the relay sets. */
const HOP = new Set(["connection", "keep-alive", "proxy-connection", "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade", "host", "authorization", "chatgpt-account-id", "content-length"]);

export interface RelayGrantOptions {
  /** The container's name (errors, logs, metrics). */
  container: string;
  upstream: UpstreamTarget;
  /** What the token looks like: an API-key sentinel, or a placeholder JWT for a ChatGPT login. */
  token?: string;
  /** Egress through the broker's proxy (network = "allowlist"); none refuses every connection. */
  egress?: EgressPolicy | undefined;
  onUsage?: ((u: Usage) => void) | undefined;
  onRefused?: ((r: EgressRefusal) => void) | undefined;
}

/** One container's right to the relay: the token it presents, and where its requests go. */
export interface RelayGrant extends RelayGrantOptions {
  token: string;
  channel: RelayChannel | null;
  revoked: boolean;
}

export interface RelayStats {
  requests: number;
  refused: number;
}

export class ModelRelay {
  private readonly byToken = new Map<string, RelayGrant>();
  private readonly byChannel = new Map<RelayChannel, RelayGrant>();
  /** The channel (container) each connection came on. */
  private readonly channelOf = new WeakMap<object, RelayChannel>();
  private readonly server: http.Server;
  private readonly upstream: ModelUpstream;
  private readonly egress: EgressProxy;
  private readonly logger: Logger;
  readonly stats: RelayStats = { requests: 0, refused: 0 };

  constructor(
    opts: { logger?: Logger; resolveHost?: ((host: string) => string | undefined) | undefined } = {},
  ) {
    this.logger = opts.logger ?? silentLogger;
    this.upstream = new ModelUpstream();
    this.egress = new EgressProxy({ logger: this.logger, resolveHost: opts.resolveHost });
    this.server = http.createServer((req, res) => void this.handle(req, res));
    this.server.keepAliveTimeout = 65_000;
    this.server.requestTimeout = 0; // a turn's answer may stream for many minutes
    this.server.on("upgrade", (req: http.IncomingMessage, socket: Duplex) => {
      // Codex's Responses WebSocket transport is off with the relay's provider config (it speaks
      // HTTP + server-sent events); anything else asking to upgrade is refused.
      this.refuse(this.channelOf.get(socket), `${req.method} ${req.url} (upgrade: ${req.headers.upgrade})`);
      socket.end("HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n" + JSON.stringify({ error: { message: "relay: WebSocket upgrades are not relayed", type: "relay_error" } }));
    });
    this.server.on("clientError", (_e, socket) => socket.destroy());
  }

  /** Gives a container its own token (register it before the container starts). */
  grant(opts: RelayGrantOptions): RelayGrant {
    const token = opts.token ?? `cmw-relay-${randomBytes(24).toString("base64url")}`;
    // Not scrubbed from output like a real secret: it is what a task's `cat auth.json` shows, and
    // it is worth nothing outside its own container's channel.
    const g: RelayGrant = { ...opts, token, channel: null, revoked: false };
    this.byToken.set(token, g);
    return g;
  }

  /** Serves a container's channel: model calls here, egress to the proxy (if its grant has one). */
  attach(grant: RelayGrant, channel: RelayChannel): void {
    if (grant.revoked) {
      channel.close("the container's relay grant was revoked");
      return;
    }
    if (grant.channel) this.byChannel.delete(grant.channel);
    grant.channel = channel;
    this.byChannel.set(channel, grant);
    channel.on("stream", (s, listener) => {
      if (listener === "model") {
        this.channelOf.set(s, channel);
        this.server.emit("connection", s);
      } else if (listener === "egress" && grant.egress) this.egress.serve(s, grant.egress, (r) => this.onEgressRefused(grant, r));
      else {
        this.onEgressRefused(grant, { target: `listener ${listener}`, reason: "this container has no network (network = \"none\")" });
        s.destroy();
      }
    });
    channel.on("close", () => {
      if (this.byChannel.get(channel) === grant) this.byChannel.delete(channel);
    });
  }

  /** Revokes a container's token (it is being removed): its channel closes, its token answers 401. */
  revoke(grant: RelayGrant): void {
    grant.revoked = true;
    this.byToken.delete(grant.token);
    if (grant.channel) {
      this.byChannel.delete(grant.channel);
      grant.channel.close("the container was removed");
    }
  }

  private onEgressRefused(grant: RelayGrant, r: EgressRefusal): void {
    this.stats.refused++;
    this.logger.info("egress refused", { container: grant.container, target: r.target, reason: r.reason });
    grant.onRefused?.(r);
  }

  private refuse(channel: RelayChannel | undefined, what: string): void {
    this.stats.refused++;
    this.logger.warn("relay refused a request", { container: channel?.name ?? "unknown", what });
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const channel = this.channelOf.get(req.socket);
    const fail = (status: number, message: string): void => {
      this.refuse(channel, `${req.method} ${req.url}: ${message}`);
      req.resume();
      if (!res.headersSent) res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: { message: `relay: ${message}`, type: status === 401 ? "invalid_request_error" : "relay_error", code: status === 401 ? "invalid_api_key" : null } }));
    };
    const url = new URL(req.url ?? "/", "http://relay");
    const sub = url.pathname.startsWith(`${BASE_PATH}/`) ? url.pathname.slice(BASE_PATH.length) : url.pathname;
    if (!MODEL_API.some((a) => a.method === req.method && a.path.test(sub))) return fail(403, `${req.method} ${url.pathname} is not a model API call; the relay forwards only ${MODEL_API.map((a) => `${a.method} ${BASE_PATH}${a.path.source.slice(1, -1).replace(/\\/g, "")}`).join(", ")}`);
    const m = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? "");
    const grant = m ? this.byToken.get(m[1]!) : undefined;
    if (!grant) return fail(401, m ? "this relay token is unknown or was revoked (its container was removed)" : "no relay token (Authorization: Bearer …)");
    if (!channel || grant.channel !== channel) return fail(401, `this relay token belongs to another container, not ${channel?.name ?? "this one"}`);
    this.stats.requests++;

    let headers: Record<string, string>;
    try {
      headers = await grant.upstream.credential.headers();
    } catch (e) {
      return fail(502, `the broker has no usable credential: ${describeError(e)}`);
    }
    const forward: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) if (!HOP.has(k) && typeof v === "string") forward[k] = v;
    Object.assign(forward, headers);
    // Codex names the thread a request belongs to (0.169: thread-id; 0.153: session_id).
    const threadId = [req.headers["thread-id"], req.headers["session-id"], req.headers.session_id, req.headers.conversation_id].find((v): v is string => typeof v === "string") ?? null;
    const meter = new UsageMeter((u) => grant.onUsage?.({ ...u, container: grant.container, threadId }));
    await this.upstream.forward({ target: grant.upstream, method: req.method!, path: sub + url.search, headers: forward, body: req, res, meter, logger: this.logger });
  }

  close(): void {
    for (const g of [...this.byToken.values()]) this.revoke(g);
    this.server.close();
  }
}
