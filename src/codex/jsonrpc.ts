// A small JSON-RPC peer over a StreamTransport: requests by id (each with a timeout), notifications,
// and requests from the other side (always answered). When the stream closes, every pending
// request fails at once with the reason, so nothing waits on a dead process.
import { WorkerError } from "../errors.js";
import type { StreamTransport } from "../worker/stream-transport.js";

interface Pending {
  method: string;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout | undefined;
  cleanup: () => void;
}

export interface RequestOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
}

export type NotificationHandler = (method: string, params: unknown) => void;
export type RequestHandler = (method: string, params: unknown) => Promise<unknown>;

/** An error answer from the peer. */
export class RpcError extends Error {
  constructor(
    readonly method: string,
    readonly rpcCode: number,
    message: string,
    readonly data?: unknown,
  ) {
    super(`${method}: ${message} (code ${rpcCode})`);
    this.name = "RpcError";
  }
}

export class JsonRpcPeer {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly notificationHandlers = new Set<NotificationHandler>();
  private requestHandler: RequestHandler | undefined;
  private closeReason: (() => Error) | undefined;
  private readonly closedPromise: Promise<void>;
  private resolveClosed!: () => void;

  constructor(
    private readonly transport: StreamTransport,
    private readonly opts: { name: string; defaultTimeoutMs?: number; withVersionField?: boolean },
  ) {
    this.closedPromise = new Promise((r) => (this.resolveClosed = r));
    transport.onmessage = (m) => this.dispatch(m);
    transport.onclose = () => this.failAll(this.closeReason?.() ?? new WorkerError("WORKER_EXITED", `${opts.name}: the Codex process closed its output`));
    transport.onerror = () => {
      // Errors that do not close the stream (a malformed line) are not fatal to the session.
    };
  }

  async start(): Promise<void> {
    await this.transport.start();
  }

  /** Resolves when the stream has closed. */
  get closed(): Promise<void> {
    return this.closedPromise;
  }

  get isClosed(): boolean {
    return this.transport.isClosed;
  }

  /** Sets how pending requests are failed when the stream closes (e.g. with the exit code). */
  setCloseReason(reason: () => Error): void {
    this.closeReason = reason;
  }

  onNotification(handler: NotificationHandler): () => void {
    this.notificationHandlers.add(handler);
    return () => this.notificationHandlers.delete(handler);
  }

  onRequest(handler: RequestHandler): void {
    this.requestHandler = handler;
  }

  private envelope(body: Record<string, unknown>): Record<string, unknown> {
    return this.opts.withVersionField === false ? body : { jsonrpc: "2.0", ...body };
  }

  async request<T = unknown>(method: string, params: unknown, opts: RequestOptions = {}): Promise<T> {
    if (this.transport.isClosed) throw this.closeReason?.() ?? new WorkerError("WORKER_EXITED", `${this.opts.name}: cannot call ${method}, the Codex process has exited`);
    const id = this.nextId++;
    const timeoutMs = opts.timeoutMs ?? this.opts.defaultTimeoutMs ?? 60_000;
    const result = new Promise<T>((resolve, reject) => {
      const onAbort = (): void => {
        this.settle(id)?.reject(new WorkerError("CANCELLED", `${this.opts.name}: ${method} was cancelled`));
      };
      const timer =
        timeoutMs > 0
          ? setTimeout(() => {
              this.settle(id)?.reject(new WorkerError("WORKER_TIMEOUT", `${this.opts.name}: no answer to ${method} within ${timeoutMs} ms`));
            }, timeoutMs)
          : undefined;
      opts.signal?.addEventListener("abort", onAbort, { once: true });
      this.pending.set(id, {
        method,
        resolve: resolve as (v: unknown) => void,
        reject,
        timer,
        cleanup: () => opts.signal?.removeEventListener("abort", onAbort),
      });
    });
    try {
      await this.transport.send(this.envelope({ id, method, params }));
    } catch (e) {
      this.settle(id)?.reject(new WorkerError("WORKER_EXITED", `${this.opts.name}: cannot send ${method}: ${(e as Error).message}`));
    }
    return result;
  }

  async notify(method: string, params?: unknown): Promise<void> {
    await this.transport.send(this.envelope(params === undefined ? { method } : { method, params }));
  }

  private settle(id: number): Pending | undefined {
    const p = this.pending.get(id);
    if (!p) return undefined;
    this.pending.delete(id);
    if (p.timer) clearTimeout(p.timer);
    p.cleanup();
    return p;
  }

  private dispatch(msg: Record<string, unknown>): void {
    const hasId = typeof msg.id === "number" || typeof msg.id === "string";
    if (hasId && typeof msg.method !== "string") {
      const p = typeof msg.id === "number" ? this.settle(msg.id) : undefined;
      if (!p) return; // an answer nobody waits for any more (timed out, cancelled)
      if (msg.error && typeof msg.error === "object") {
        const err = msg.error as { code?: unknown; message?: unknown; data?: unknown };
        p.reject(new RpcError(p.method, typeof err.code === "number" ? err.code : -1, typeof err.message === "string" ? err.message : "error", err.data));
      } else p.resolve(msg.result);
      return;
    }
    if (typeof msg.method !== "string") return;
    if (hasId) {
      void this.answer(msg.id as number | string, msg.method, msg.params);
      return;
    }
    for (const h of this.notificationHandlers) h(msg.method, msg.params);
  }

  private async answer(id: number | string, method: string, params: unknown): Promise<void> {
    let reply: Record<string, unknown>;
    try {
      if (!this.requestHandler) throw new RpcError(method, -32601, "no handler for server requests");
      reply = { id, result: await this.requestHandler(method, params) };
    } catch (e) {
      const code = e instanceof RpcError ? e.rpcCode : -32603;
      reply = { id, error: { code, message: e instanceof Error ? e.message : String(e) } };
    }
    try {
      await this.transport.send(this.envelope(reply));
    } catch {
      // the process is gone: its pending requests fail through onclose
    }
  }

  private failAll(error: Error): void {
    for (const id of [...this.pending.keys()]) this.settle(id)?.reject(error);
    this.resolveClosed();
  }

  async close(): Promise<void> {
    await this.transport.close();
  }
}
