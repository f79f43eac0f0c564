// The HTTP face of the broker (Hono): Streamable HTTP at /mcp (a session per client, keyed by
// Mcp-Session-Id), the legacy HTTP+SSE transport at /sse and /messages (older clients, Stelae's
// proxy), /healthz, /metrics (Prometheus) and the status page at / (./status.ts). Host and
// Origin are checked against DNS rebinding; a bearer token, when configured, is required on every
// endpoint but /healthz (a liveness probe).
import { randomUUID, timingSafeEqual } from "node:crypto";
import type { HttpBindings } from "@hono/node-server";
import { RESPONSE_ALREADY_SENT } from "@hono/node-server/utils/response";
import { SSEServerTransport } from "@modelcontextprotocol/sdk/server/sse.js";
import { WebStandardStreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js";
import { Hono, type Context, type Next } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { Broker } from "../broker.js";
import { createBrokerServer } from "../mcp/server.js";
import { addStatusRoutes } from "./status.js";

const MAX_BODY_BYTES = 16 * 2 ** 20;
const LOOPBACK = new Set(["localhost", "127.0.0.1", "[::1]", "::1"]);

export function isLoopback(host: string): boolean {
  return LOOPBACK.has(host) || host.startsWith("127.");
}

export interface AppOptions {
  broker: Broker;
  /** Required bearer token (none: no token check; only allowed on a loopback bind). */
  token?: string | undefined;
}

/** Bearer <token>, or Basic with the token as password (browsers), compared in constant time. */
function tokenMatches(header: string, token: string): boolean {
  let given = /^Bearer\s+(.+)$/i.exec(header)?.[1];
  const basic = /^Basic\s+(.+)$/i.exec(header)?.[1];
  if (given === undefined && basic !== undefined) {
    const decoded = Buffer.from(basic, "base64").toString("utf8");
    given = decoded.slice(decoded.indexOf(":") + 1);
  }
  const a = Buffer.from(given ?? "");
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

function hostnameOf(hostHeader: string): string {
  if (hostHeader.startsWith("[")) return hostHeader.slice(0, hostHeader.indexOf("]") + 1);
  return hostHeader.split(":")[0]!;
}

export function createApp({ broker, token }: AppOptions): Hono<{ Bindings: HttpBindings }> {
  const app = new Hono<{ Bindings: HttpBindings }>();
  const sseSessions = new Map<string, SSEServerTransport>();
  const sessions = new Map<string, WebStandardStreamableHTTPServerTransport>();
  const bindHost = broker.config.host;

  // DNS rebinding: on a loopback bind only loopback names may be used; a browser Origin must be local.
  const guard = async (c: Context, next: Next): Promise<Response | void> => {
    const host = c.req.header("host") ?? "";
    if (isLoopback(bindHost) && !isLoopback(hostnameOf(host))) return c.text(`Host ${host} is not allowed: this broker listens on loopback`, 403);
    const origin = c.req.header("origin");
    if (origin) {
      let ok: boolean;
      try {
        const u = new URL(origin);
        ok = isLoopback(u.hostname) || (!isLoopback(bindHost) && u.host === host);
      } catch {
        ok = false;
      }
      if (!ok) return c.text(`Origin ${origin} is not allowed`, 403);
    }
    if (token && !tokenMatches(c.req.header("authorization") ?? "", token)) {
      // A browser asks for Basic credentials (any user name, the token as password) for the status page.
      c.header("WWW-Authenticate", c.req.path === "/" || c.req.path.startsWith("/status") || c.req.path.startsWith("/missions/") ? 'Basic realm="codex-mcp-wrapper", charset="UTF-8"' : 'Bearer realm="codex-mcp-wrapper"');
      return c.text("Unauthorized: send Authorization: Bearer <token> (a browser: any user name, the token as password)", 401);
    }
    await next();
  };

  // A JSON-RPC message larger than this is refused before it is read (a mission's prompts are
  // limited further by broker.max_prompt_bytes and max_tasks_per_mission).
  const limit = bodyLimit({
    maxSize: MAX_BODY_BYTES,
    onError: (c) => c.json({ jsonrpc: "2.0", error: { code: -32600, message: `request body larger than ${MAX_BODY_BYTES / 2 ** 20} MiB: send smaller missions (or a mission_path)` }, id: null }, 413),
  });

  app.get("/healthz", async (c) => c.json(await broker.health()));
  app.get("/metrics", guard, async (c) => {
    const { contentType, body } = await broker.metrics.render();
    return c.body(body, 200, { "content-type": contentType });
  });
  addStatusRoutes(app, broker, guard);

  app.all("/mcp", guard, limit, async (c) => {
    const sid = c.req.header("mcp-session-id");
    if (sid) {
      const transport = sessions.get(sid);
      if (!transport) return c.json({ jsonrpc: "2.0", error: { code: -32001, message: "Session not found: initialize a new session" }, id: null }, 404);
      return transport.handleRequest(c.req.raw);
    }
    if (c.req.method !== "POST") return c.json({ jsonrpc: "2.0", error: { code: -32000, message: "No session: POST initialize first" }, id: null }, 400);
    const transport: WebStandardStreamableHTTPServerTransport = new WebStandardStreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (id) => void sessions.set(id, transport),
      onsessionclosed: (id) => void sessions.delete(id),
    });
    transport.onclose = () => {
      if (transport.sessionId) sessions.delete(transport.sessionId);
    };
    const server = createBrokerServer(broker);
    await server.connect(transport);
    return transport.handleRequest(c.req.raw);
  });

  // Legacy HTTP+SSE: GET /sse opens the stream (first event: `endpoint`), POST /messages?sessionId=…
  // carries the client's messages (202), every answer goes down the stream. The SDK's transport
  // writes to Node's response itself, so the routes tell Hono the response is already sent.
  app.get("/sse", guard, async (c) => {
    const transport = new SSEServerTransport("/messages", c.env.outgoing);
    sseSessions.set(transport.sessionId, transport);
    transport.onclose = () => void sseSessions.delete(transport.sessionId);
    c.env.outgoing.on("close", () => void transport.close().catch(() => {}));
    const server = createBrokerServer(broker);
    await server.connect(transport);
    return RESPONSE_ALREADY_SENT;
  });

  app.post("/messages", guard, limit, async (c) => {
    const transport = sseSessions.get(c.req.query("sessionId") ?? "");
    if (!transport) return c.text("Unknown or closed SSE session: open a new one with GET /sse", 404);
    await transport.handlePostMessage(c.env.incoming, c.env.outgoing);
    return RESPONSE_ALREADY_SENT;
  });

  return app;
}
