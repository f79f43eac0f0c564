// The model relay's upstream: the one place the broker sends model requests (the OpenAI API,
// ChatGPT's Codex backend, a gateway, or the rehearsal model on loopback). A request's body
// streams up and its answer streams back as it arrives; failures become an OpenAI-shaped error
// that names the upstream, so Codex shows them and retries as it would against the API.
import http from "node:http";
import https from "node:https";
import net from "node:net";
import type { Duplex, Readable } from "node:stream";
import type { ModelCredential } from "../auth/credential.js";
import type { Logger } from "../log.js";
import { upstreamAgent } from "./proxy.js";
import type { UsageMeter } from "./usage.js";

export interface UpstreamTarget {
  /** Where the provider's base path (…/v1) maps to, e.g. https://api.openai.com/v1. */
  baseUrl: string;
  credential: ModelCredential;
  /** How long the upstream may send nothing, once asked, before the relay gives up (ms). */
  idleTimeoutMs?: number | undefined;
}

const DROP_BACK = new Set(["connection", "keep-alive", "transfer-encoding", "content-length"]);

export interface ForwardRequest {
  target: UpstreamTarget;
  method: string;
  /** The path after the base path, with its query. */
  path: string;
  headers: Record<string, string>;
  body: Readable;
  res: http.ServerResponse;
  meter: UsageMeter;
  logger: Logger;
}

/**
 * Reads and drops what is left of a request whose body was being piped to an upstream that
 * failed. A body left half-read (the pipe undone by the upstream's error) holds its connection
 * paused mid-request, so the client's next request on it (Codex's retry) is never read: measured
 * with a 1 MB request that the upstream reset as it arrived.
 */
export function dropUnread(body: Readable): void {
  body.unpipe();
  body.resume();
}

export class ModelUpstream {
  /** Sends one request upstream and streams the answer into `res`. Never throws. */
  forward(r: ForwardRequest): Promise<void> {
    const base = new URL(r.target.baseUrl);
    const url = new URL(base.pathname.replace(/\/$/, "") + r.path, base);
    const secure = url.protocol === "https:";
    const idleMs = r.target.idleTimeoutMs ?? 300_000;
    return new Promise<void>((resolve) => {
      // What the upstream's answer brings in one turn of the event loop (its head, the events of
      // one read, its end) leaves toward the container in one write: one wake-up for the
      // forwarder and for Codex, not one per piece (the head alone, each chunk, the last chunk).
      // Nothing waits longer than that turn, so each event still goes on as it arrives. A relay
      // channel's stream (stdio) is batched so by its channel (channel.ts): corking it here too
      // would hold its frames one more turn.
      let corked: Duplex | null = null;
      const batch = (): void => {
        const socket = r.res.socket;
        if (corked || !(socket instanceof net.Socket) || socket.destroyed) return;
        corked = socket;
        socket.cork();
        setImmediate(() => {
          const s = corked;
          corked = null;
          s?.uncork();
        });
      };
      let done = false;
      const finish = (): void => {
        if (!done) {
          done = true;
          resolve();
        }
      };
      const fail = (status: number, message: string): void => {
        r.logger.warn("model upstream failed", { upstream: base.origin, status, error: message });
        dropUnread(r.body);
        if (!r.res.headersSent) {
          r.res.writeHead(status, { "content-type": "application/json" });
          r.res.end(JSON.stringify({ error: { message: `relay: ${message}`, type: "relay_error", code: null } }));
        } else r.res.destroy(); // mid-stream: the client sees the stream break, as with the API
        finish();
      };
      const up = (secure ? https : http).request(
        url,
        { method: r.method, headers: r.headers, agent: upstreamAgent(url) },
        (answer) => {
          batch();
          const headers: Record<string, string | string[]> = {};
          for (const [k, v] of Object.entries(answer.headers)) if (v !== undefined && !DROP_BACK.has(k)) headers[k] = v;
          r.res.writeHead(answer.statusCode ?? 502, headers);
          r.res.flushHeaders();
          const sse = /text\/event-stream/.test(String(answer.headers["content-type"] ?? ""));
          answer.on("data", (chunk: Buffer) => {
            batch();
            if (sse) r.meter.feed(chunk);
            if (!r.res.write(chunk)) {
              answer.pause();
              r.res.once("drain", () => answer.resume());
            }
          });
          answer.on("end", () => {
            batch();
            r.res.end();
            finish();
          });
          answer.on("error", (e) => fail(502, `the model upstream ${base.origin} broke off its answer: ${e.message}`));
        },
      );
      up.setTimeout(idleMs, () => up.destroy(new Error(`no answer within ${Math.round(idleMs / 1000)} s`)));
      up.on("error", (e: NodeJS.ErrnoException) => fail(502, `the model upstream ${base.origin} is unreachable or failed: ${e.code ?? e.message}`));
      // The container's side went away (Codex gave up, the container was removed): stop asking.
      r.res.on("close", () => {
        if (!r.res.writableFinished) up.destroy();
        finish();
      });
      r.body.pipe(up);
    });
  }
}
