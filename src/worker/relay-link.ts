// A worker's link to the model relay: the forwarder `docker exec`'d in its container, the
// channel its connections travel on, and the container's relay grant. The channel is the
// forwarder's stdio (through the engine: no container network, works on any engine) or, on a
// local engine, a unix socket the broker listens on in the container's CODEX_HOME, where each of
// Codex's connections gets a unix connection of its own (relay/forwarder-socket.ts: the engine,
// the framing and the multiplexing are out of the data path). A forwarder that dies while its
// container lives (a task's command killed it) is started again, a few times at most.
import { chmodSync, chownSync, closeSync, openSync, rmSync } from "node:fs";
import net from "node:net";
import path from "node:path";
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

  /** Starts the forwarder and waits until it listens (bounded). */
  async open(timeoutMs = 15_000): Promise<void> {
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
      this.open(timeoutMs).catch((e: unknown) => this.opts.logger.error("cannot restart the relay forwarder", { container, error: describeError(e) }));
    });
  }

  /** Revokes the container's grant (its token answers 401 from now on) and closes the channel. */
  close(): void {
    this.closed = true;
    this.opts.relay.revoke(this.opts.grant);
    this.socket?.server.close();
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
