// The rehearsal model server: the part of the OpenAI Responses API that Codex uses, answered
// from `#fake` directives in the prompt. Node built-ins only (it runs inside the worker image).
import { randomUUID } from "node:crypto";
import http from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { planResponse, type Plan } from "./plan.js";
import { decodeBody } from "./request-body.js";

export interface RehearsalServerOptions {
  host?: string;
  port?: number;
  /** One line per request, never a token. */
  log?: (line: string) => void;
  /** Seconds since the epoch; a test may move time. */
  now?: () => number;
}

export interface RehearsalServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

/** Reads the `exp` claim of a JWT, or null when the token is not a JWT. */
export function jwtExpiry(token: string): number | null {
  const parts = token.split(".");
  if (parts.length !== 3 || !parts[1]) return null;
  try {
    const claims = JSON.parse(Buffer.from(parts[1], "base64url").toString("utf8")) as { exp?: unknown };
    return typeof claims.exp === "number" ? claims.exp : null;
  } catch {
    return null;
  }
}

function bearer(req: http.IncomingMessage): string | null {
  const h = req.headers.authorization;
  const m = h ? /^Bearer\s+(.+)$/i.exec(h) : null;
  return m?.[1]?.trim() ?? null;
}

function sendError(res: http.ServerResponse, status: number, message: string, code?: string): void {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify({ error: { message, type: status === 401 ? "invalid_request_error" : "rehearsal_error", code: code ?? null } }));
}

/** Writes the plan as the Responses API's server-sent events. */
function streamPlan(res: http.ServerResponse, plan: Extract<Plan, { kind: "call" | "message" }>, model: string): void {
  const responseId = `resp_${randomUUID()}`;
  const event = (type: string, data: Record<string, unknown>): void => {
    res.write(`event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`);
  };
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
  event("response.created", { response: { id: responseId, object: "response", status: "in_progress", model, output: [] } });
  const itemId = `${plan.kind === "call" ? "fc" : "msg"}_${randomUUID()}`;
  const item =
    plan.kind === "call"
      ? { type: "function_call", id: itemId, call_id: plan.callId, name: plan.name, arguments: plan.arguments, status: "completed" }
      : { type: "message", id: itemId, role: "assistant", status: "completed", content: [{ type: "output_text", text: plan.text, annotations: [] }] };
  event("response.output_item.added", { output_index: 0, item: { ...item, status: "in_progress" } });
  if (plan.kind === "message") {
    // One delta, or `deltas` of them (word by word, the last taking the rest), as a long answer streams.
    const words = plan.deltas ? plan.text.split(/(?<= )/) : [plan.text];
    const n = Math.min(plan.deltas ?? 1, words.length);
    for (let k = 0; k < n; k++) event("response.output_text.delta", { item_id: itemId, output_index: 0, content_index: 0, delta: k < n - 1 ? words[k]! : words.slice(k).join("") });
  }
  event("response.output_item.done", { output_index: 0, item });
  const outputTokens = plan.outputTokens ?? Math.max(1, Math.ceil((plan.kind === "call" ? plan.arguments : plan.text).length / 4));
  event("response.completed", {
    response: {
      id: responseId,
      object: "response",
      status: "completed",
      model,
      output: [item],
      usage: {
        input_tokens: 100,
        input_tokens_details: { cached_tokens: 0 },
        output_tokens: outputTokens,
        output_tokens_details: { reasoning_tokens: 0 },
        total_tokens: 100 + outputTokens,
      },
    },
  });
  res.end();
}

/** Starts the server; resolves once it listens. */
export async function startRehearsalServer(opts: RehearsalServerOptions = {}): Promise<RehearsalServer> {
  const log = opts.log ?? (() => {});
  const now = opts.now ?? (() => Date.now() / 1000);
  const sockets = new Set<Socket>();
  let requests = 0;

  const server = http.createServer((req, res) => {
    const answer = async (raw: Buffer): Promise<void> => {
      const path = (req.url ?? "/").split("?")[0];
      if (req.method === "GET" && path === "/healthz") {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ ok: true, requests }));
        return;
      }
      if (req.method !== "POST" || (path !== "/v1/responses" && path !== "/responses")) {
        sendError(res, 404, `rehearsal: no route ${req.method} ${path}`);
        return;
      }
      requests++;
      const token = bearer(req);
      const exp = token ? jwtExpiry(token) : null;
      if (exp !== null && exp <= now()) {
        log(`401 expired token (exp ${exp})`);
        sendError(res, 401, "rehearsal: the access token has expired", "token_expired");
        return;
      }
      let body: { model?: unknown; input?: unknown; tools?: unknown };
      try {
        body = JSON.parse((await decodeBody(raw, req.headers["content-encoding"])).toString("utf8")) as typeof body;
      } catch (e) {
        sendError(res, 400, `rehearsal: the request body is not JSON (content-encoding ${req.headers["content-encoding"] ?? "none"}): ${(e as Error).message}`);
        return;
      }
      const plan = planResponse(body, { token, nonce: () => randomUUID().slice(0, 8) });
      log(`${plan.kind}${plan.kind === "call" ? ` ${plan.name}` : plan.kind === "fail" ? ` ${plan.message}` : ""}`);
      if (plan.kind === "fail") sendError(res, plan.status, plan.message);
      else if (plan.kind === "stall") res.socket?.setTimeout(0); // never answer: only a client timeout ends it
      else streamPlan(res, plan, typeof body.model === "string" ? body.model : "rehearsal");
    };
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => void answer(Buffer.concat(chunks)));
  });
  // Codex's built-in provider (the images' config) tries the Responses WebSocket first. Like the
  // broker's relay, answer 426 so that it uses HTTP at once: a socket closed on it instead makes
  // Codex retry its WebSocket five times, about 6 s a turn (measured with 0.169.0, the image run
  // by hand).
  server.on("upgrade", (_req: http.IncomingMessage, socket: Socket) => {
    // The server stops watching an upgraded socket's errors: a client that resets it on the 426
    // would otherwise be an uncaught error in whatever process hosts this model.
    socket.on("error", () => socket.destroy());
    const body = JSON.stringify({ error: { message: "rehearsal: no WebSocket; use HTTP", type: "rehearsal_error" } });
    socket.end(`HTTP/1.1 426 Upgrade Required\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
  });
  server.on("connection", (s: Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  server.requestTimeout = 0;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, opts.host ?? "127.0.0.1", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const host = opts.host ?? "127.0.0.1";
  return {
    port,
    url: `http://${host}:${port}/v1`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
