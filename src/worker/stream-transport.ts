// Newline-delimited JSON over a pair of streams (a container's attached stdout/stdin, or an
// exec's): the MCP SDK's Transport interface, so the SDK's Client can speak MCP over it, and
// the JSON-RPC peer (codex/jsonrpc.ts) can speak app-server over the same class.
import type { Readable, Writable } from "node:stream";
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js";

export interface StreamTransportOptions {
  /** Names the peer in errors: a container name, say. */
  name: string;
  /** A line longer than this is an error (the stream is not a protocol stream). */
  maxLineBytes?: number;
  /** Lines that are not JSON objects (a banner, a warning): passed here, never parsed. */
  onNoise?: (line: string) => void;
}

const NEWLINE = 0x0a;

/** Splits a byte stream into lines without re-scanning what it has already seen. */
export class LineSplitter {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(private readonly maxLineBytes: number) {}

  /** Feeds a chunk; returns the complete lines it finished. Throws on an oversized line. */
  push(chunk: Buffer): string[] {
    const lines: string[] = [];
    let start = 0;
    let nl = chunk.indexOf(NEWLINE, start);
    while (nl >= 0) {
      const piece = chunk.subarray(start, nl);
      const line = this.pendingBytes ? Buffer.concat([...this.pending, piece]).toString("utf8") : piece.toString("utf8");
      this.pending = [];
      this.pendingBytes = 0;
      lines.push(line.endsWith("\r") ? line.slice(0, -1) : line);
      start = nl + 1;
      nl = chunk.indexOf(NEWLINE, start);
    }
    if (start < chunk.length) {
      const rest = chunk.subarray(start);
      this.pending.push(rest);
      this.pendingBytes += rest.length;
      if (this.pendingBytes > this.maxLineBytes) {
        this.pending = [];
        this.pendingBytes = 0;
        throw new Error(`a line over ${this.maxLineBytes} bytes`);
      }
    }
    return lines;
  }
}

export class StreamTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: <T extends JSONRPCMessage>(message: T) => void;

  private closed = false;
  private started = false;
  private readonly splitter: LineSplitter;

  constructor(
    private readonly readable: Readable,
    private readonly writable: Writable,
    private readonly opts: StreamTransportOptions,
  ) {
    this.splitter = new LineSplitter(opts.maxLineBytes ?? 64 * 1024 * 1024);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  async start(): Promise<void> {
    if (this.started) throw new Error(`${this.opts.name}: transport already started`);
    this.started = true;
    this.readable.on("data", this.onData);
    this.readable.on("end", this.onEnd);
    this.readable.on("close", this.onEnd);
    this.readable.on("error", this.onStreamError);
    this.writable.on("error", this.onStreamError);
  }

  private readonly onData = (chunk: Buffer | string): void => {
    let lines: string[];
    try {
      lines = this.splitter.push(typeof chunk === "string" ? Buffer.from(chunk) : chunk);
    } catch (e) {
      this.onerror?.(new Error(`${this.opts.name}: ${(e as Error).message} on stdout`));
      return;
    }
    for (const line of lines) {
      if (!line.trim()) continue;
      let msg: unknown;
      try {
        msg = JSON.parse(line);
      } catch {
        this.opts.onNoise?.(line);
        continue;
      }
      if (msg === null || typeof msg !== "object" || Array.isArray(msg)) {
        this.opts.onNoise?.(line);
        continue;
      }
      try {
        this.onmessage?.(msg as JSONRPCMessage);
      } catch (e) {
        this.onerror?.(e instanceof Error ? e : new Error(String(e)));
      }
    }
  };

  private readonly onEnd = (): void => {
    this.finish();
  };

  private readonly onStreamError = (e: Error): void => {
    if (this.closed) return;
    this.onerror?.(new Error(`${this.opts.name}: stream error: ${e.message}`));
    this.finish();
  };

  private finish(): void {
    if (this.closed) return;
    this.closed = true;
    this.readable.off("data", this.onData);
    this.onclose?.();
  }

  async send(message: JSONRPCMessage | Record<string, unknown>): Promise<void> {
    if (this.closed) throw new Error(`${this.opts.name}: cannot send, the stream is closed`);
    const line = `${JSON.stringify(message)}\n`;
    await new Promise<void>((resolve, reject) => {
      const ok = this.writable.write(line, (err) => (err ? reject(new Error(`${this.opts.name}: write failed: ${err.message}`)) : undefined));
      if (ok) resolve();
      else {
        const onDrain = (): void => {
          this.writable.off("close", onClose);
          resolve();
        };
        const onClose = (): void => {
          this.writable.off("drain", onDrain);
          reject(new Error(`${this.opts.name}: the stream closed while writing`));
        };
        this.writable.once("drain", onDrain);
        this.writable.once("close", onClose);
      }
    });
  }

  async close(): Promise<void> {
    if (!this.closed) {
      try {
        this.writable.end();
      } catch {
        // already ended: closing is best effort
      }
    }
    this.finish();
  }
}
