// A shell command run in a worker's container, beside Codex (a task's check): in the workspace,
// as the container's user, so with the container's mounts and network — the task's sandbox and
// network, never more. It ends by its timeout or a cancel (its whole process group is killed),
// and its output (stdout and stderr, interleaved) is kept within a bound: the head and the tail,
// with a count of the bytes left out between them.
import { randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";
import type { DockerRuntime } from "../runtime/docker.js";

/** The most output kept of one command: its first half and its last half, if it printed more. */
export const COMMAND_OUTPUT_LIMIT = 8 * 1024 * 1024;

export interface CommandRequest {
  command: string;
  workdir: string;
  env?: Record<string, string> | undefined;
  timeoutMs: number;
  signal?: AbortSignal | undefined;
  /** Bytes of output kept (default COMMAND_OUTPUT_LIMIT). */
  limit?: number;
}

export interface CommandResult {
  /** The command's exit code; null when it is unknown (the container went away). */
  exitCode: number | null;
  timedOut: boolean;
  cancelled: boolean;
  durationMs: number;
  /** The output kept: all of it, or its head, a marker naming what was left out, and its tail. */
  output: Buffer;
  /** Bytes the command printed in all. */
  bytes: number;
  /** Bytes left out of `output`. */
  leftOut: number;
}

/** Keeps the first and last `limit / 2` bytes of a stream, and counts the rest. */
export class HeadTail {
  private readonly head: Buffer[] = [];
  private headBytes = 0;
  private tail: Buffer[] = [];
  private tailBytes = 0;
  total = 0;

  constructor(private readonly limit = COMMAND_OUTPUT_LIMIT) {}

  push(chunk: Buffer): void {
    this.total += chunk.length;
    const half = Math.floor(this.limit / 2);
    if (this.headBytes < half) {
      const take = chunk.subarray(0, half - this.headBytes);
      this.head.push(take);
      this.headBytes += take.length;
      chunk = chunk.subarray(take.length);
    }
    if (!chunk.length) return;
    this.tail.push(chunk);
    this.tailBytes += chunk.length;
    if (this.tailBytes > 2 * (this.limit - half)) this.trimTail();
  }

  private trimTail(): void {
    const keep = this.limit - Math.floor(this.limit / 2);
    const all = Buffer.concat(this.tail);
    this.tail = [all.subarray(all.length - keep)];
    this.tailBytes = keep;
  }

  /** What was kept, with a marker where bytes were left out. */
  result(): { data: Buffer; leftOut: number } {
    this.trimTail();
    const tail = Buffer.concat(this.tail);
    const leftOut = this.total - this.headBytes - tail.length;
    if (leftOut <= 0) return { data: Buffer.concat([...this.head, tail]), leftOut: 0 };
    const marker = Buffer.from(`\n[… ${leftOut} bytes of output left out here: the first and last ${Math.floor(this.limit / 2)} bytes are kept …]\n`);
    return { data: Buffer.concat([...this.head, marker, tail]), leftOut };
  }
}

/** The last `lines` lines of a text (at most `chars` characters of them). */
export function tailLines(text: string, lines = 30, chars = 4000): string {
  const t = text.replace(/\s+$/, "");
  const kept = t.split("\n").slice(-lines).join("\n");
  return kept.length > chars ? `…${kept.slice(kept.length - chars)}` : kept;
}

/** Runs `req.command` with `sh -c` in the container, in its own process group. */
export async function runCommand(docker: DockerRuntime, containerId: string, req: CommandRequest): Promise<CommandResult> {
  const began = performance.now();
  const pidFile = `/tmp/cmw-command-${randomUUID()}.pid`;
  // setsid: the command leads a process group of its own, so a timeout ends it and its children.
  const argv = ["setsid", "-w", "sh", "-c", 'echo $$ > "$0"; exec sh -c "$1" 2>&1', pidFile, req.command];
  const kept = new HeadTail(req.limit);
  if (req.signal?.aborted) return { exitCode: null, timedOut: false, cancelled: true, durationMs: 0, output: Buffer.alloc(0), bytes: 0, leftOut: 0 };
  const handle = await docker.exec(containerId, argv, { workdir: req.workdir, env: req.env });
  handle.stdout.on("data", (d: Buffer) => kept.push(d));
  // The command's own stderr is in stdout (2>&1); stderr has setsid's, which says only that a
  // killed command was killed: anything else there (setsid missing, say) is kept, at the end.
  const own: Buffer[] = [];
  handle.stderr.on("data", (d: Buffer) => own.length < 64 && own.push(d));
  let stopped: "timedOut" | "cancelled" | null = null;
  const stop = (why: "timedOut" | "cancelled"): void => {
    if (stopped) return;
    stopped = why;
    void docker.execCollect(containerId, ["sh", "-c", `[ -f ${pidFile} ] && kill -KILL -"$(cat ${pidFile})"`]).catch(() => {});
  };
  const timer = setTimeout(() => stop("timedOut"), req.timeoutMs);
  const onAbort = (): void => stop("cancelled");
  req.signal?.addEventListener("abort", onAbort, { once: true });
  const exitCode = await handle.exited.finally(() => {
    clearTimeout(timer);
    req.signal?.removeEventListener("abort", onAbort);
  });
  void docker.execCollect(containerId, ["rm", "-f", pidFile]).catch(() => {});
  const said = Buffer.concat(own).toString("utf8").replace(/^setsid: child \d+ did not exit normally.*\n?/gm, "");
  if (said.trim()) kept.push(Buffer.from(said));
  const { data, leftOut } = kept.result();
  return { exitCode, timedOut: stopped === "timedOut", cancelled: stopped === "cancelled", durationMs: performance.now() - began, output: data, bytes: kept.total, leftOut };
}
