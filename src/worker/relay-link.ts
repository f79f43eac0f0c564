// A worker's link to the model relay: the forwarder `docker exec`'d in its container (it needs
// no container network, and works the same on a remote engine), the channel its stdio carries,
// and the container's relay grant. A forwarder that dies while its container lives (a task's
// command killed it) is started again, a few times at most.
import { describeError, WorkerError } from "../errors.js";
import type { Logger } from "../log.js";
import { RelayChannel } from "../relay/channel.js";
import type { ModelRelay, RelayGrant } from "../relay/model-relay.js";
import type { DockerRuntime } from "../runtime/docker.js";

/** Where the forwarder is in the worker images, and the container ports it listens on. */
export const FORWARDER = "/opt/codex-relay/forwarder.js";
export const RELAY_PORTS = { model: 38080, egress: 38081 } as const;

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
}

export class RelayLink {
  private restarts = 0;
  private closed = false;

  constructor(private readonly opts: RelayLinkOptions) {}

  /** Starts the forwarder and waits until it listens (bounded). */
  async open(timeoutMs = 15_000): Promise<void> {
    const { docker, containerId, container } = this.opts;
    const listeners = [`model=${RELAY_PORTS.model}`, ...(this.opts.egress ? [`egress=${RELAY_PORTS.egress}`] : [])];
    const h = await docker.exec(containerId, ["node", FORWARDER, ...listeners], { stdin: true });
    let stderr = "";
    h.stderr.on("data", (d: Buffer) => (stderr = (stderr + d.toString("utf8")).slice(-4000)));
    const channel = new RelayChannel(container, h);
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        new Promise<void>((resolve) => channel.once("ready", () => resolve())),
        h.exited.then((code) => {
          const missing = /Cannot find module|MODULE_NOT_FOUND|ENOENT/.test(stderr);
          throw new WorkerError(
            "WORKER_FAILED",
            missing
              ? `${container}: its image has no relay forwarder (${FORWARDER}); rebuild the worker images with npm run images`
              : `${container}: the relay forwarder exited (code ${code ?? "unknown"}) before it listened${stderr.trim() ? `: ${stderr.trim()}` : ""}`,
          );
        }),
        new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new WorkerError("WORKER_TIMEOUT", `${container}: the relay forwarder did not listen within ${timeoutMs} ms`)), timeoutMs))),
      ]);
    } catch (e) {
      channel.close("start failed");
      throw e;
    } finally {
      clearTimeout(timer);
    }
    this.opts.relay.attach(this.opts.grant, channel);
    channel.once("close", (reason) => {
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
  }
}
