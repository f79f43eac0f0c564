// The host end of stdio-socket-pipe.mjs: a unix socket each of whose connections is one broker
// process run with `serve --transport stdio` (its stdin fed from the connection, its stdout written
// back), so that a client in a container can spawn "the broker" over stdio while the broker runs
// here, beside the Docker engine, as it does for a client on this machine. The connection's end
// closes the broker's stdin, which ends the broker.
import { spawn, type ChildProcess } from "node:child_process";
import net from "node:net";
import { endChild } from "./wait.js";

export interface StdioSocket {
  /** The socket's path on the host. */
  path: string;
  /** How many broker processes connections have started. */
  runs: () => number;
  /** Resolves when every broker started so far has exited. */
  idle: () => Promise<void>;
  /** Everything the brokers wrote to stderr. */
  log: () => string;
  close: () => Promise<void>;
}

export async function listenStdioBroker(socketPath: string, command: string, args: string[]): Promise<StdioSocket> {
  const children: ChildProcess[] = [];
  const exits: Promise<unknown>[] = [];
  let log = "";
  const server = net.createServer((conn) => {
    const child = spawn(command, args, { stdio: ["pipe", "pipe", "pipe"] });
    children.push(child);
    exits.push(new Promise((r) => child.once("exit", r)));
    child.stderr.on("data", (d: Buffer) => void (log += d.toString()));
    conn.pipe(child.stdin);
    child.stdout.pipe(conn);
    conn.on("error", () => {}); // its close follows
    conn.on("close", () => child.stdin.end());
    child.stdin.on("error", () => conn.destroy());
    child.once("exit", () => conn.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(socketPath, resolve);
  });
  return {
    path: socketPath,
    runs: () => children.length,
    idle: async () => void (await Promise.all(exits)),
    log: () => log,
    close: async () => {
      await new Promise((r) => server.close(r));
      await Promise.all(children.map((c) => endChild(c)));
    },
  };
}
