// A child process (here: `docker run -i …`) spoken to with newline-delimited JSON: send lines,
// wait (always with a timeout) for a line that matches.
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { LineSplitter } from "../../../src/worker/stream-transport.js";

export type Msg = Record<string, unknown>;

export class JsonLineProcess {
  readonly lines: Msg[] = [];
  readonly noise: string[] = [];
  stderr = "";
  private readonly child: ChildProcessWithoutNullStreams;
  private waiters: { pred: (m: Msg) => boolean; resolve: (m: Msg) => void }[] = [];
  readonly exited: Promise<number | null>;

  constructor(cmd: string, args: string[]) {
    this.child = spawn(cmd, args, { stdio: ["pipe", "pipe", "pipe"] });
    const splitter = new LineSplitter(64 * 1024 * 1024);
    this.child.stdout.on("data", (chunk: Buffer) => {
      for (const line of splitter.push(chunk)) {
        if (!line.trim()) continue;
        let m: Msg;
        try {
          m = JSON.parse(line) as Msg;
        } catch {
          this.noise.push(line);
          continue;
        }
        this.lines.push(m);
        this.waiters = this.waiters.filter((w) => (w.pred(m) ? (w.resolve(m), false) : true));
      }
    });
    this.child.stderr.on("data", (d: Buffer) => {
      this.stderr = (this.stderr + d.toString("utf8")).slice(-20_000);
    });
    this.exited = new Promise((resolve) => this.child.on("close", (code) => resolve(code)));
  }

  send(msg: Msg): void {
    this.child.stdin.write(`${JSON.stringify(msg)}\n`);
  }

  endInput(): void {
    this.child.stdin.end();
  }

  /** The first line (already seen or still to come) that matches; rejects after timeoutMs. */
  waitFor(pred: (m: Msg) => boolean, timeoutMs = 60_000, what = "a matching line"): Promise<Msg> {
    const seen = this.lines.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.resolve !== done);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; stderr tail:\n${this.stderr.slice(-2000)}`));
      }, timeoutMs);
      const done = (m: Msg): void => {
        clearTimeout(timer);
        resolve(m);
      };
      this.waiters.push({ pred, resolve: done });
      void this.exited.then(() => {
        if (this.waiters.some((w) => w.resolve === done)) {
          clearTimeout(timer);
          reject(new Error(`process exited while waiting for ${what}; stderr tail:\n${this.stderr.slice(-2000)}`));
        }
      });
    });
  }

  kill(): void {
    this.child.kill("SIGKILL");
  }
}
