// Bringing a worker up: its container (the command its protocol runs), its CODEX_HOME seeded
// with a sentinel (never the real credential), its own relay grant and link, and its driver,
// ready when its Codex first answers. What differs per protocol comes from codex/protocols.ts.
import { randomUUID } from "node:crypto";
import path from "node:path";
import { chatgptRelayToken, PLACEHOLDER_ACCOUNT, sentinelAuth, type AuthSeeder } from "../auth/seeder.js";
import type { ThreadStats } from "../codex/app-server-driver.js";
import { CODEX_PROTOCOLS } from "../codex/protocols.js";
import type { WrapperConfig } from "../config/schema.js";
import { describeError, WrapperError } from "../errors.js";
import type { Logger } from "../log.js";
import type { EgressRefusal } from "../relay/egress.js";
import type { ModelRelay } from "../relay/model-relay.js";
import type { UpstreamTarget } from "../relay/upstream.js";
import type { DockerRuntime } from "../runtime/docker.js";
import { CONTAINER_PATHS, privateDir, WorkerContainer } from "../worker/container.js";
import { RelayLink, relayChannelOptions, type RelayChannelKind } from "../worker/relay-link.js";
import { createWorkspaceVolume, packDir, seedVolume, type VolumeOptions } from "../worker/workspace-volume.js";
import type { Want } from "./placement.js";
import { meterUsage, type Slot, type Worker } from "./worker.js";
import { withDeadline } from "../deadline.js";

/** What bringing a worker up needs from the pool, taken when the worker is started. */
export interface BringUpContext {
  /** The runtime of the engine the worker runs on. */
  docker: DockerRuntime;
  /** What the volume helpers need for a volume of this worker's engine (name, labels, image, reaping guard). */
  volume: (name: string) => VolumeOptions;
  logger: Logger;
  config: WrapperConfig;
  /** The pool's session (a container label). */
  session: string;
  extraLabels?: Record<string, string> | undefined;
  relay: ModelRelay;
  seeder: AuthSeeder;
  planType: string | null;
  upstream: UpstreamTarget;
  relayChannel?: RelayChannelKind | undefined;
  startTimeoutMs?: number | undefined;
  onContainerReady?: ((info: { name: string; profile: string; ms: number }) => void) | undefined;
  /** The pool's counts of new threads (shared by its drivers). */
  threadStats?: ThreadStats | undefined;
  /**
   * Makes sure the engine has the profile's image with the source engine's ID (sent again when it
   * drifted), before anything runs it there (the volume helpers, the container); runs beside the
   * seeding of the slot's directory. None: nothing to check.
   */
  imageReady?: (() => Promise<void>) | undefined;
  /** The container ended (the pool forgets the worker). */
  onExit: (worker: Worker, reason: string) => void;
}

/** A worker for `want` on `slot`, its container not yet created. */
export function newWorker(ctx: Pick<BringUpContext, "docker" | "logger" | "config" | "session" | "extraLabels">, want: Want, slot: Slot, user: { uid: number; gid: number }, ahead: boolean): Worker {
  const { profile, workspace, sandbox, network, allow } = want;
  const container = new WorkerContainer({
    docker: ctx.docker,
    logger: ctx.logger,
    instanceLabel: ctx.config.label,
    channel: ctx.config.channel,
    session: ctx.session,
    profile,
    workspace,
    sandbox,
    slotId: slot.id,
    codexHomeDir: slot.dir,
    cmd: [...CODEX_PROTOCOLS[profile.protocol].cmd],
    extraLabels: ctx.extraLabels,
    user,
    network,
    dockerNetwork: profile.docker_network,
    volume: slot.volume,
    homeVolume: slot.home,
  });
  return {
    key: want.key,
    engine: slot.engine,
    profile,
    workspace,
    sandbox,
    network,
    allow,
    relay: null,
    grant: null,
    usageByThread: new Map(),
    budgets: new Map(),
    listeners: new Set(),
    slot,
    container,
    driver: null,
    lanes: new Array<boolean>(profile.capacity).fill(false),
    lastUsed: Date.now(),
    dead: false,
    removing: false,
    ready: Promise.resolve(),
    ahead,
    turns: 0,
    oomKillsSeen: 0,
  };
}

/** Seeds the slot, starts the container, opens its relay link and its driver; sets them on the worker. */
export async function bringUp(ctx: BringUpContext, worker: Worker, user: { uid: number; gid: number }): Promise<void> {
  const { profile, slot, container } = worker;
  const began = performance.now();
  // Checked while the slot's directory is seeded; awaited before the image runs on the engine.
  const image = ctx.imageReady?.();
  image?.catch(() => {}); // awaited below: a failure is the start's, not an unhandled rejection
  const seeder = ctx.seeder;
  // The container's own relay token is all it gets: the sentinel in its auth.json (or, for a
  // ChatGPT login over app-server, the placeholder access token pushed to it).
  const grant = ctx.relay.grant({
    container: container.name,
    upstream: ctx.upstream,
    ...(seeder.kind === "chatgpt" ? { token: chatgptRelayToken(randomUUID(), ctx.planType) } : {}),
    egress: worker.network === "allowlist" ? { allow: worker.allow } : undefined,
    onUsage: (u) => meterUsage(worker, u),
    admit: (threadId) => (threadId ? (worker.budgets.get(threadId)?.refusal() ?? null) : null),
    onRefused: (r: EgressRefusal) => worker.listeners.forEach((tell) => tell(r)),
  });
  worker.grant = grant;
  const protocol = CODEX_PROTOCOLS[profile.protocol];
  const pushed = seeder.kind === "chatgpt" && protocol.pushesChatgptTokens;
  const auth = pushed ? null : sentinelAuth(seeder.kind, grant.token, ctx.planType);
  privateDir(slot.dir, user);
  if (protocol.laneHomes !== null) {
    // One CODEX_HOME per concurrent Codex process: <laneHomes>/<n> (mounted under /codex-home).
    privateDir(path.join(slot.dir, protocol.laneHomes), user);
    for (let lane = 0; lane < profile.capacity; lane++) {
      const dir = path.join(slot.dir, protocol.laneHomes, String(lane));
      privateDir(dir, user);
      seeder.seed({ dir, user, auth });
    }
  } else seeder.seed({ dir: slot.dir, user, auth });
  await image; // the volume helpers below run the profile's image on the engine too
  // On a remote engine the seeded directory is copied into the slot's CODEX_HOME volume there
  // (again for each container of the slot: what Codex wrote in the volume stays).
  if (slot.home) await seedVolume(ctx.volume(slot.home), (prefix) => packDir(slot.dir, user, prefix));
  if (slot.volume && !slot.filled) {
    // An isolated copy is made on the engine the slot's first container runs on.
    try {
      const copy = await slot.copy!();
      await createWorkspaceVolume(ctx.volume(slot.volume), (prefix) => copy(user, prefix));
      slot.filled = true;
    } catch (e) {
      throw new WrapperError(e instanceof WrapperError ? e.code : "WORKER_FAILED", `workspace_mode "isolated": cannot copy ${worker.workspace} into a volume on engine "${slot.engine}": ${describeError(e)}`);
    }
  }
  // The pool may have given up on it meanwhile (its shutdown, an eviction): nothing is created
  // after that, and what was being created is removed (a spare or warm container is started in
  // the background, so a shutdown can come while it is on its way).
  await gone(worker, ctx);
  await container.start();
  await gone(worker, ctx);
  worker.relay = new RelayLink({
    docker: ctx.docker,
    relay: ctx.relay,
    grant,
    containerId: container.id,
    container: container.name,
    logger: ctx.logger,
    egress: worker.network === "allowlist",
    alive: () => !worker.dead && !worker.removing,
    ...relayChannelOptions(ctx.relayChannel, ctx.docker.local, { dir: slot.dir, mountedAt: CONTAINER_PATHS.codexHome, user }),
  });
  // One budget for starting: a loaded machine can take a while to start the forwarder or the netns helper too.
  await worker.relay.open(ctx.startTimeoutMs ?? 60_000);
  const placeholder = { accessToken: grant.token, accountId: PLACEHOLDER_ACCOUNT, planType: ctx.planType };
  const driver = protocol.driver({
    name: container.name,
    docker: ctx.docker,
    containerId: () => container.id,
    streams: container.streams!,
    exited: container.exited,
    tokens: pushed ? { current: () => Promise.resolve(placeholder), subscribe: () => () => {} } : undefined,
    // An isolated task's container serves that task alone: a thread started ahead would never be taken.
    threadsAhead: slot.volume ? 0 : profile.threads_ahead,
    threadsLoaded: profile.threads_loaded,
    threadStats: ctx.threadStats,
  });
  void container.exited.then((exit) => ctx.onExit(worker, exit.reason));
  const timeoutMs = ctx.startTimeoutMs ?? 60_000;
  await withDeadline(
    Promise.race([
      driver.open(),
      container.exited.then((e) => Promise.reject(new WrapperError("WORKER_EXITED", `${e.reason}${e.stderrTail ? `; last stderr lines:\n${e.stderrTail}` : ""}`))),
    ]),
    timeoutMs,
    () => {
      throw new WrapperError("WORKER_TIMEOUT", `Codex in ${container.name} did not answer within ${timeoutMs} ms`);
    },
  );
  worker.driver = driver;
  ctx.onContainerReady?.({ name: container.name, profile: profile.name, ms: performance.now() - began });
}

/** Throws, removing the worker's container (and a volume it made, its slot gone with it), if the pool is removing it. */
async function gone(worker: Worker, ctx: BringUpContext): Promise<void> {
  if (!worker.removing && !worker.dead) return;
  await worker.container.remove().catch(() => {}); // a leftover carries the labels: reaped later
  // As the pool's own removal does: the copy goes with the slot's last container the broker took away.
  if (worker.removing && worker.slot.volume && worker.slot.worker === null) await ctx.docker.removeVolume(worker.slot.volume).catch(() => {});
  throw new WrapperError("WORKER_FAILED", `${worker.container.name} was removed by the broker before it was up`);
}
