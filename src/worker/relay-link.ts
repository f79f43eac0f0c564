// A worker's link to the model relay: the channel its connections travel on, and the container's
// relay grant. Three channels, fastest first:
// - netns (a local engine, a broker running as root that sees the container's processes): the
//   broker's own sockets listen on the container's loopback, made there by a short-lived helper
//   in the container's network namespace (nsenter) that hands them over and exits. Codex's
//   connections come straight to the broker: no process of the container's in between.
// - socket (a local engine): the forwarder `docker exec`'d in the container listens on its
//   loopback, and each of Codex's connections gets a unix connection of its own to a socket the
//   broker listens on in the container's CODEX_HOME (relay/forwarder-socket.ts).
// - stdio (any engine, the only way on a remote one): the forwarder's stdio through the engine,
//   its connections multiplexed in frames (relay/channel.ts). No container network either way.
// A forwarder that dies while its container lives (a task's command killed it) is started again,
// a few times at most; the netns channel has no process in the container to kill.
import { spawn } from "node:child_process";
import { chmodSync, chownSync, closeSync, openSync, readFileSync, rmSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { PassThrough } from "node:stream";
import { describeError, WorkerError } from "../errors.js";
import type { Logger } from "../log.js";
import { RelayChannel } from "../relay/channel.js";
import { ForwarderSocket } from "../relay/forwarder-socket.js";
import type { ModelRelay, RelayGrant } from "../relay/model-relay.js";
import type { DockerRuntime } from "../runtime/docker.js";

/** Where the forwarder is in the worker images, and the container ports it listens on. */
export const FORWARDER = "/opt/codex-relay/forwarder.js";
export const RELAY_PORTS = { model: 38080, egress: 38081 } as const;
/** The socket's name in the slot's directory (CODEX_HOME in the container). */
export const RELAY_SOCKET = ".relay.sock";

const MAX_RESTARTS = 5;

export interface RelayLinkOptions {
  docker: DockerRuntime;
  relay: ModelRelay;
  grant: RelayGrant;
  containerId: string;
  container: string;
  logger: Logger;
  /** Whether the container's network is "allowlist" (the egress listener is opened). */
  egress: boolean;
  /** Whether the container still lives (no restart otherwise). */
  alive: () => boolean;
  /**
   * The host directory mounted as the container's CODEX_HOME, on a local engine: the channel is a
   * unix socket there, owned by the container's user. None: the forwarder's stdio.
   */
  socket?: { dir: string; mountedAt: string; user: { uid: number; gid: number } } | undefined;
  /**
   * Listen in the container's network namespace (the netns channel): "only" or "else-socket"
   * (when that namespace cannot be reached from here, the socket channel; needs `socket`).
   */
  netns?: "only" | "else-socket" | undefined;
}

/** A channel asked for by name (pool option; tests and the bench force one). */
export type RelayChannelKind = "netns" | "socket" | "stdio";

/**
 * The link's options for a channel: by default on a local engine the netns channel, else the
 * socket one (when the broker cannot reach the container's network namespace); on a remote
 * engine always stdio.
 */
export function relayChannelOptions(kind: RelayChannelKind | undefined, local: boolean, socket: NonNullable<RelayLinkOptions["socket"]>): Pick<RelayLinkOptions, "socket" | "netns"> {
  const chosen = kind ?? (local ? undefined : "stdio");
  if (chosen === "stdio") return {};
  if (chosen === "socket") return { socket };
  if (chosen === "netns") return { netns: "only" };
  return { socket, netns: "else-socket" };
}

/**
 * Run by node in the container's network namespace (nsenter): listens on the container's loopback
 * at each port it is given, hands each listening socket to the broker over the IPC channel, and
 * exits. Nothing of it stays in the container.
 */
const NETNS_LISTENER = `
const net = require("node:net");
const ports = JSON.parse(process.argv[1]);
const left = new Set(Object.keys(ports));
for (const [name, port] of Object.entries(ports)) {
  const server = net.createServer();
  server.on("error", (e) => { process.send({ name, error: e.message }, () => process.exit(1)); });
  server.listen({ host: "127.0.0.1", port }, () => process.send({ name }, server, () => {
    server.close();
    left.delete(name);
    if (left.size === 0) process.disconnect();
  }));
}
`;

/** Why the netns channel cannot serve a container from this broker, or null. */
function netnsUnreachable(pid: number, containerId: string): string | null {
  if (process.getuid?.() !== 0) return "the broker does not run as root";
  if (!pid) return "the container has no running process";
  try {
    // The pid is the engine's host's: it names this container's process only if the broker
    // shares that host's process namespace (not, e.g., when the broker itself runs in a container).
    if (!readFileSync(`/proc/${pid}/cgroup`, "utf8").includes(containerId)) return `process ${pid} here is not the container's (the broker does not see the engine host's processes)`;
  } catch (e) {
    return `cannot read /proc/${pid}: ${(e as Error).message}`;
  }
  return null;
}

export class RelayLink {
  private restarts = 0;
  private closed = false;
  private socket: ForwarderSocket | undefined;
  /** The directory's fd: the socket is bound through /proc/self/fd, clear of the 108-byte path limit. */
  private dirFd: number | undefined;

  constructor(private readonly opts: RelayLinkOptions) {}

  /** Listens on the slot's socket (once per link). */
  private async listen(): Promise<void> {
    const sock = this.opts.socket!;
    if (this.socket) return;
    rmSync(path.join(sock.dir, RELAY_SOCKET), { force: true });
    this.dirFd = openSync(sock.dir, "r");
    const bindPath = `/proc/self/fd/${this.dirFd}/${RELAY_SOCKET}`;
    const server = (this.socket = new ForwarderSocket()).server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(bindPath, () => resolve());
    });
    // Only the container's user may connect (the directory is 0700 and the user's already).
    chmodSync(bindPath, 0o600);
    if (process.getuid?.() === 0) chownSync(bindPath, sock.user.uid, sock.user.gid);
  }

  /** The netns channel's listening sockets, by listener. */
  private netnsServers: net.Server[] = [];

  /** Opens the channel (the forwarder started and listening, or the netns listeners handed over), bounded. */
  async open(timeoutMs = 15_000): Promise<void> {
    if (this.opts.netns) {
      const state = await this.opts.docker.inspect(this.opts.containerId);
      const why = netnsUnreachable(state?.pid ?? 0, state?.id ?? this.opts.containerId);
      if (!why) return this.openNetns(state!.pid, timeoutMs);
      if (this.opts.netns === "only" || !this.opts.socket) throw new WorkerError("WORKER_FAILED", `${this.opts.container}: the relay cannot listen in the container's network namespace: ${why}`);
      this.opts.logger.debug("relay: the container's network namespace is out of reach; using the socket channel", { container: this.opts.container, why });
    }
    return this.openForwarder(timeoutMs);
  }

  /** The netns channel: the broker's sockets on the container's loopback, no forwarder. */
  private async openNetns(pid: number, timeoutMs: number): Promise<void> {
    const { container } = this.opts;
    const ports: Record<string, number> = { model: RELAY_PORTS.model, ...(this.opts.egress ? { egress: RELAY_PORTS.egress } : {}) };
    const child = spawn("nsenter", [`--net=/proc/${pid}/ns/net`, "--", process.execPath, "-e", NETNS_LISTENER, JSON.stringify(ports)], { stdio: ["ignore", "ignore", "pipe", "ipc"] });
    let stderr = "";
    child.stderr!.on("data", (d: Buffer) => (stderr = (stderr + d.toString("utf8")).slice(-2000)));
    // The channel's connections each come on their own socket (adopted); it has no stdio. Each
    // listening socket serves as soon as it is here: Codex may connect before the last one comes.
    const channel = new RelayChannel(container, { stdin: new PassThrough(), stdout: new PassThrough() });
    this.opts.relay.attach(this.opts.grant, channel);
    const servers: net.Server[] = [];
    const want = Object.keys(ports).length;
    let timer: NodeJS.Timeout | undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        timer = setTimeout(() => reject(new WorkerError("WORKER_TIMEOUT", `${container}: the relay's listeners in the container's network namespace were not ready within ${timeoutMs} ms`)), timeoutMs);
        child.on("error", (e) => reject(new WorkerError("WORKER_FAILED", `${container}: cannot run nsenter to listen in the container's network namespace: ${e.message}`)));
        child.on("message", (m: { name: string; error?: string }, handle?: net.Server) => {
          if (m.error || !handle) return reject(new WorkerError("WORKER_FAILED", `${container}: the relay cannot listen on the container's port ${ports[m.name] ?? "?"} (${m.name}): ${m.error ?? "no socket came back"}`));
          handle.on("connection", (c: net.Socket) => channel.adopt(c, m.name));
          servers.push(handle);
          if (servers.length === want) resolve();
        });
        // "close", not "exit": a process can be seen to exit before its last messages are read.
        child.on("close", (code) => {
          if (servers.length < want) reject(new WorkerError("WORKER_FAILED", `${container}: the helper that listens in the container's network namespace ended (code ${code ?? "unknown"}) before it handed over its sockets${stderr.trim() ? `: ${stderr.trim()}` : ""}`));
        });
      });
    } catch (e) {
      for (const s of servers) s.close();
      channel.close("start failed");
      child.kill();
      throw e;
    } finally {
      clearTimeout(timer);
    }
    this.netnsServers = servers;
    channel.once("close", () => {
      for (const s of this.netnsServers) s.close();
      this.netnsServers = [];
    });
  }

  /** Starts the forwarder and waits until it listens (bounded). */
  private async openForwarder(timeoutMs: number): Promise<void> {
    const { docker, containerId, container, socket } = this.opts;
    if (socket) await this.listen();
    const args = [...(socket ? [`--connect=${socket.mountedAt}/${RELAY_SOCKET}`] : []), `model=${RELAY_PORTS.model}`, ...(this.opts.egress ? [`egress=${RELAY_PORTS.egress}`] : [])];
    const connected = socket ? new Promise<net.Socket>((resolve) => (this.socket!.onControl = resolve)) : null;
    const h = await docker.exec(containerId, ["node", FORWARDER, ...args], { stdin: true });
    let stderr = "";
    h.stderr.on("data", (d: Buffer) => (stderr = (stderr + d.toString("utf8")).slice(-4000)));
    const exited = h.exited.then((code) => {
      const missing = /Cannot find module|MODULE_NOT_FOUND/.test(stderr);
      throw new WorkerError(
        "WORKER_FAILED",
        missing
          ? `${container}: its image has no relay forwarder (${FORWARDER}); rebuild the worker images with npm run images`
          : `${container}: the relay forwarder exited (code ${code ?? "unknown"}) before it listened${stderr.trim() ? `: ${stderr.trim()}` : ""}`,
      );
    });
    exited.catch(() => {});
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new WorkerError("WORKER_TIMEOUT", `${container}: the relay forwarder did not listen within ${timeoutMs} ms`)), timeoutMs)));
    let channel: RelayChannel | undefined;
    try {
      const io = connected ? await Promise.race([connected, exited, late]) : h;
      channel = new RelayChannel(container, connected ? { stdin: io as net.Socket, stdout: io as net.Socket } : h);
      const ch = channel;
      await Promise.race([new Promise<void>((resolve) => ch.once("ready", () => resolve())), exited, late]);
    } catch (e) {
      channel?.close("start failed");
      h.stdin.end();
      throw e;
    } finally {
      clearTimeout(timer);
      if (this.socket) this.socket.onControl = undefined;
    }
    this.opts.relay.attach(this.opts.grant, channel);
    if (this.socket) this.socket.channel = channel;
    channel.once("close", (reason) => {
      h.stdin.end(); // the forwarder exits with its exec's stdin
      if (this.closed || !this.opts.alive()) return;
      if (this.restarts >= MAX_RESTARTS) {
        this.opts.logger.error("the relay forwarder keeps ending; this container cannot reach the model", { container, reason });
        return;
      }
      this.restarts++;
      this.opts.logger.warn("the relay forwarder ended while its container lives; starting it again", { container, reason, restart: this.restarts });
      this.openForwarder(timeoutMs).catch((e: unknown) => this.opts.logger.error("cannot restart the relay forwarder", { container, error: describeError(e) }));
    });
  }

  /** Revokes the container's grant (its token answers 401 from now on) and closes the channel. */
  close(): void {
    this.closed = true;
    this.opts.relay.revoke(this.opts.grant);
    this.socket?.server.close();
    for (const s of this.netnsServers) s.close();
    this.netnsServers = [];
    if (this.dirFd !== undefined) {
      try {
        rmSync(`/proc/self/fd/${this.dirFd}/${RELAY_SOCKET}`, { force: true });
      } catch {
        // the slot's directory is gone
      }
      closeSync(this.dirFd);
      this.dirFd = undefined;
    }
  }
}
