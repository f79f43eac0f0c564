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

/** A request's body up to this size is kept to be sent again on another connection (see forward). */
const RESEND_BYTES = 1024 * 1024;
/** Sends of one request at most: the first, and one again for each closed kept-alive connection met. */
const MAX_SENDS = 3;

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
      // The body as it streams up, kept (up to RESEND_BYTES) until the answer starts, to send it
      // again on a new connection if the kept-alive one it went on turns out to be closed.
      let kept: Buffer[] | null = [];
      let keptBytes = 0;
      r.body.on("data", (chunk: Buffer) => {
        if (!kept) return;
        keptBytes += chunk.length;
        if (keptBytes > RESEND_BYTES) kept = null;
        else kept.push(chunk);
      });
      let current: http.ClientRequest | undefined;
      /** The container's side went away before the answer ended: the request is not sent again. */
      let gone = false;
      const send = (attempt: number): void => {
        const up = (secure ? https : http).request(
          url,
          { method: r.method, headers: r.headers, agent: upstreamAgent(url) },
          (answer) => {
            kept = null; // answered: it will not be sent again
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
        current = up;
        up.setTimeout(idleMs, () => up.destroy(new Error(`no answer within ${Math.round(idleMs / 1000)} s`)));
        up.on("error", (e: NodeJS.ErrnoException) => {
          // A kept-alive connection that the upstream closed as it sat idle (its keep-alive
          // timeout met the request on its way), before any answer: the request goes again,
          // whole, on another connection (Node's documented pattern, reusedSocket). Codex would
          // send it again too, after the relay's 502 and its own back-off.
          if (kept && !gone && up.reusedSocket && (e.code === "ECONNRESET" || e.code === "EPIPE") && attempt < MAX_SENDS) {
            r.logger.debug("model upstream closed a kept-alive connection: the request goes again on another", { upstream: base.origin, attempt });
            r.body.unpipe(up);
            send(attempt + 1);
            return;
          }
          kept = null;
          fail(502, `the model upstream ${base.origin} is unreachable or failed: ${e.code ?? e.message}`);
        });
        if (attempt > 1) for (const chunk of kept ?? []) up.write(chunk);
        // The whole body has come: what was kept is all of it. Otherwise the rest follows.
        if (r.body.readableEnded) up.end();
        else r.body.pipe(up);
      };
      // The container's side went away (Codex gave up, the container was removed): stop asking.
      r.res.on("close", () => {
        if (!r.res.writableFinished) {
          gone = true;
          current?.destroy();
        }
        finish();
      });
      send(1);
    });
  }
}
