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

/**
 * Headers that describe one hop, never forwarded (RFC 9110 §7.6.1), and the ones the relay sets.
 * Everything else goes upstream as Codex sent it, Content-Length and Content-Encoding included
 * (the body is piped unchanged: with a ChatGPT login Codex sends it zstd-compressed, and the
 * upstream must see the very request the built-in provider would send; tests/integration/
 * security/chatgpt-fidelity.test.ts compares the two).
 */
const HOP = new Set(["connection", "keep-alive", "proxy-connection", "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade", "host", "authorization", "chatgpt-account-id"]);
/** Where Codex's ChatGPT backend calls land (the images' chatgpt_base_url): refused, but expected. */
const BACKEND_PATH = "/backend-api/";

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
  /** Asked before each model call (a POST) of the thread it names: why to refuse it (a spent token budget), or null. */
  admit?: ((threadId: string | null) => string | null) | undefined;
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
  /** Model calls refused because a task's or mission's token budget was spent. */
  budgetRefused: number;
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
  readonly stats: RelayStats = { requests: 0, refused: 0, budgetRefused: 0 };

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
      // Codex's built-in provider (the images' config) tries the Responses WebSocket first. The
      // relay does not carry WebSockets: 426 makes Codex fall back to HTTP + server-sent events
      // at once (measured with 0.169.0: one attempt; a 403 costs five retries, ~6 s, a session).
      const message = `${req.method} ${req.url} (upgrade: ${req.headers.upgrade})`;
      if (req.headers.upgrade?.toLowerCase() === "websocket" && this.isModelCall("POST", req.url)) this.logger.debug("relay declined a WebSocket upgrade; Codex falls back to HTTP", { container: this.channelOf.get(socket)?.name ?? "?", what: message });
      else this.refuse(this.channelOf.get(socket), message);
      const body = JSON.stringify({ error: { message: "relay: WebSocket upgrades are not relayed; use HTTP", type: "relay_error" } });
      socket.end(`HTTP/1.1 426 Upgrade Required\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
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
    const fail = (status: number, message: string, quiet = false): void => {
      if (quiet) this.logger.debug("relay refused a ChatGPT backend call", { container: channel?.name, what: `${req.method} ${req.url}` });
      else this.refuse(channel, `${req.method} ${req.url}: ${message}`);
      req.resume();
      if (!res.headersSent) res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: { message: `relay: ${message}`, type: status === 401 ? "invalid_request_error" : "relay_error", code: status === 401 ? "invalid_api_key" : null } }));
    };
    const url = new URL(req.url ?? "/", "http://relay");
    const sub = url.pathname.startsWith(`${BASE_PATH}/`) ? url.pathname.slice(BASE_PATH.length) : url.pathname;
    if (!this.isModelCall(req.method, req.url)) {
      // Codex's own ChatGPT backend calls (plugins, workspace routing discovery, settings): a
      // turn works without them, and they are no model call, so they stay here, quietly.
      if (url.pathname.startsWith(BACKEND_PATH)) this.stats.refused++;
      return fail(403, `${req.method} ${url.pathname} is not a model API call; the relay forwards only ${MODEL_API.map((a) => `${a.method} ${BASE_PATH}${a.path.source.slice(1, -1).replace(/\\/g, "")}`).join(", ")}`, url.pathname.startsWith(BACKEND_PATH));
    }
    const m = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? "");
    const grant = m ? this.byToken.get(m[1]!) : undefined;
    if (!grant) return fail(401, m ? "this relay token is unknown or was revoked (its container was removed)" : "no relay token (Authorization: Bearer …)");
    if (!channel || grant.channel !== channel) return fail(401, `this relay token belongs to another container, not ${channel?.name ?? "this one"}`);
    // Codex names the thread a request belongs to (0.169: thread-id; 0.153: session_id).
    const threadId = [req.headers["thread-id"], req.headers["session-id"], req.headers.session_id, req.headers.conversation_id].find((v): v is string => typeof v === "string") ?? null;
    const refusal = req.method === "POST" ? (grant.admit?.(threadId) ?? null) : null;
    if (refusal) {
      this.stats.budgetRefused++;
      return fail(403, refusal);
    }
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
    const meter = new UsageMeter((u) => grant.onUsage?.({ ...u, container: grant.container, threadId }));
    await this.upstream.forward({ target: grant.upstream, method: req.method!, path: sub + url.search, headers: forward, body: req, res, meter, logger: this.logger });
  }

  /** A model API call Codex makes (method and path, under the provider's base path). */
  private isModelCall(method: string | undefined, rawUrl: string | undefined): boolean {
    const path = new URL(rawUrl ?? "/", "http://relay").pathname;
    const sub = path.startsWith(`${BASE_PATH}/`) ? path.slice(BASE_PATH.length) : path;
    return MODEL_API.some((a) => a.method === method && a.path.test(sub));
  }

  close(): void {
    for (const g of [...this.byToken.values()]) this.revoke(g);
    this.server.close();
  }
}
