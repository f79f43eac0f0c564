// The worker pool: starts worker containers per profile, workspace and sandbox mode (up to each
// profile's max_containers), gives each turn a lane of a container with free capacity (queueing
// fairly when there is none), routes a continued conversation to the container that holds its
// CODEX_HOME slot (a replacement on the same slot when that container died), keeps each
// profile's warm floor (`warm` containers started ahead of demand for known workspaces, see
// docs/warm-pool.md), stops idle containers, replaces dead ones, and at shutdown removes every
// container it started. Where a turn goes is placement.ts's decision; bringing a container up
// is bring-up.ts's; how workers reach the model is model-access.ts's.
import { randomUUID } from "node:crypto";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Readable } from "node:stream";
import { AuthFileError } from "../auth/auth-file.js";
import { AuthSeeder } from "../auth/seeder.js";
import type { ChatgptTokenSource } from "../auth/token-source.js";
import type { ApprovalPolicy, NetworkMode, SandboxMode, WorkerProfile, WrapperConfig } from "../config/schema.js";
import { approvalNote, failedBy, type Approver, type DriverEvent, type TurnOutcome } from "../codex/driver.js";
import { CODEX_PROTOCOLS } from "../codex/protocols.js";
import { describeError, WrapperError } from "../errors.js";
import { scrubValue, silentLogger, type Logger } from "../log.js";
import type { EgressRefusal } from "../relay/egress.js";
import type { RelayStats } from "../relay/model-relay.js";
import { subUsage, ZERO_USAGE, type TaskUsage } from "../relay/usage.js";
import type { DockerRuntime } from "../runtime/docker.js";
import type { ConversationId, ConversationRoute } from "../state/route.js";
import { runCommand, type CommandResult } from "../worker/command.js";
import { CONTAINER_PATHS, egressEnv, IMAGE_UID, LABELS, workerUser } from "../worker/container.js";
import { checkImageForChannel } from "../worker/image-policy.js";
import { RELAY_PORTS, type RelayChannelKind } from "../worker/relay-link.js";
import { checkWorkspaceWritable, resolveWorkspace } from "../worker/workspace.js";
import { fillWorkspaceVolume, packDir, readWorkspaceVolume, type VolumeOptions } from "../worker/workspace-volume.js";
import { bringUp, newWorker, type BringUpContext } from "./bring-up.js";
import type { ThreadStats } from "../codex/app-server-driver.js";
import { ModelAccess, REHEARSAL_LABEL } from "./model-access.js";
import { EngineSet, type Engine, type EngineStatus } from "./engines.js";
import { chooseEngine, chooseProfile, chooseSpare, drainQueue, engineFits, holdsWarmFloor, idleExpired, keyOf, networkOf, place, spareKey, spareStarts, warmBackoff, warmStarts, type EngineView, type Want, type WarmFailure } from "./placement.js";
import { oomNotes, refusalNotes, type Slot, type TurnBudget, type Worker } from "./worker.js";
import { withDeadline } from "../deadline.js";

export { DEFAULT_UPSTREAMS, REHEARSAL_LABEL } from "./model-access.js";
export type { TurnBudget } from "./worker.js";
export type { ConversationId, ConversationRoute } from "../state/route.js";

export interface PoolTurnRequest {
  /** Continue this conversation; none starts a new one. */
  conversationId?: ConversationId | undefined;
  profile?: string | undefined;
  /** A new conversation runs on this profile when it has a free lane or room for a container, else on `profile` (a task's preferred_worker). */
  preferredProfile?: string | undefined;
  workspace?: string | undefined;
  sandbox?: SandboxMode | undefined;
  /** What the turn's commands may reach (default: the profile's network). */
  network?: NetworkMode | undefined;
  /** Hosts added to the profile's allowlist; given alone, they make the network "allowlist". */
  allow?: string[] | undefined;
  prompt: string;
  model?: string | undefined;
  baseInstructions?: string | undefined;
  developerInstructions?: string | undefined;
  config?: Record<string, unknown> | undefined;
  env?: Record<string, string> | undefined;
  approvalPolicy?: ApprovalPolicy | undefined;
  timeoutMs?: number | undefined;
  signal?: AbortSignal | undefined;
  onEvent?: ((e: DriverEvent) => void) | undefined;
  /** Called once the turn has a container (before Codex starts the turn). */
  onAssigned?: ((info: { container: string; slotId: string; engine: string }) => void) | undefined;
  /** A token budget over the turn's model calls: the relay refuses a call it says no to. */
  budget?: TurnBudget | undefined;
  /** Who answers the approvals Codex asks for (the MCP client, by elicitation); none: each is declined. */
  approve?: Approver | undefined;
  /** How long an approval may wait for an answer (default: the profile's approval_timeout). */
  approvalTimeoutMs?: number | undefined;
  /**
   * A new conversation's workspace as a copy: `prepare` makes it (a tar owned by the given user,
   * under a prefix). With `required` (workspace_mode "isolated") the conversation runs on its own
   * copy; without, only when it is placed on an engine that does not see the workspace (a remote
   * one). The pool then makes a volume there, fills it, and runs the conversation's containers on it
   * alone; the result's `isolated` says so. A reply needs nothing: its route names its volume.
   */
  isolated?: { required: boolean; prepare: () => Promise<(user: { uid: number; gid: number }, prefix: string) => Readable> } | undefined;
}

/** A command (a task's check) to run beside a conversation's Codex. */
export interface PoolCommandRequest {
  command: string;
  timeoutMs: number;
  env?: Record<string, string> | undefined;
  signal?: AbortSignal | undefined;
}

export interface PoolTurnResult {
  conversationId: ConversationId | null;
  outcome: TurnOutcome;
  container: string | null;
  /** What the broker saw besides Codex's own account, e.g. a command the kernel killed for memory. */
  notes?: string[];
  /** Tokens the turn's model calls used, as the relay metered them from the upstream's answers. */
  usage?: TaskUsage;
  /** The engine the turn ran on (none: it got no container). */
  engine?: string;
  /** The conversation works on its own copy of the workspace (read it back with readIsolated). */
  isolated?: boolean;
}

export interface PoolOptions {
  config: WrapperConfig;
  /** The runtime of the first engine (where images come from); the others are made from config.engines. */
  docker: DockerRuntime;
  logger?: Logger;
  /** Labels added to every container (tests mark theirs). */
  extraLabels?: Record<string, string>;
  /** Access tokens for a ChatGPT login driven through app-server. */
  tokens?: ChatgptTokenSource;
  healthIntervalMs?: number;
  /** Seconds to wait for a worker's Codex to answer its first request. */
  startTimeoutMs?: number;
  /** Routes known from an earlier run (state store), so replies survive a broker restart. */
  routes?: ConversationRoute[];
  /** Stores a route; a new conversation's turn returns once it resolves (so a reply after a restart finds it). */
  onRoute?: (route: ConversationRoute) => void | Promise<void>;
  /**
   * How workers reach the relay (src/worker/relay-link.ts): on a local engine the broker's sockets
   * on the container's loopback (netns), else a unix socket in CODEX_HOME (socket); on a remote one
   * the forwarder's stdio through the engine. Tests and the bench force one.
   */
  relayChannel?: RelayChannelKind;
  /** Called when a container's Codex first answers, with the time since its creation began (metrics). */
  onContainerReady?: (info: { name: string; profile: string; ms: number }) => void;
}

interface Waiter {
  want: Want;
  grant: (g: { worker: Worker; lane: number }) => void;
  fail: (e: Error) => void;
}

export interface PoolStats {
  /**
   * `warm`: started ahead of demand (a warm floor's or a spare); `spare`: a spare no task has taken
   * yet; `held`: how many readers (a task, replies) have yet to read its isolated copy back: while
   * above 0 it is neither evicted nor stopped idle.
   */
  containers: { name: string; engine: string; profile: string; workspace: string; sandbox: string; inFlight: number; capacity: number; state: "starting" | "ready" | "dead"; warm: boolean; spare: boolean; held: number; turns: number }[];
  /** Each engine: up or down (and why), its containers of this broker and its room. */
  engines: EngineStatus[];
  queued: number;
  inFlight: number;
  /** Containers started since the pool started: ahead of demand (warm floor or spare) or for a waiting turn; spares taken by a task. */
  starts: { ahead: number; onDemand: number; sparesTaken: number };
  /** The model relay's counts: calls relayed, requests refused, and calls refused for a spent token budget. */
  relay: RelayStats;
  /** New threads (app-server): taken from those started ahead, started on a task's path, and started ahead. */
  threads: ThreadStats;
}

/** How long each step of a shutdown may wait on the engines before it goes on (ms). */
const SHUTDOWN_STEP_MS = 30_000;

export class WorkerPool {
  readonly session = randomUUID().slice(0, 12);
  private readonly logger: Logger;
  private readonly workers = new Set<Worker>();
  private readonly slots = new Map<string, Slot>();
  private readonly queues = new Map<string, Waiter[]>();
  private readonly routes = new Map<ConversationId, ConversationRoute>();
  private seeder: AuthSeeder | undefined;
  private healthTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private started = false;
  /** Keys (profile, workspace, sandbox) whose warm floor the pool keeps, with what to start. */
  private readonly warmKeys = new Map<string, Want>();
  /** Warm keys whose last start failed: failures in a row, and when to try again. */
  private readonly warmFailures = new Map<string, WarmFailure>();
  private warmTimer: NodeJS.Timeout | undefined;
  private readonly starts = { ahead: 0, onDemand: 0, sparesTaken: 0 };
  /** Spares (profile, engine) whose last start failed: failures in a row, and when to try again. */
  private readonly spareFailures = new Map<string, WarmFailure>();
  /** An empty directory: packed, it gives a spare's volume its root (owned by the worker's user). */
  private emptyDir: string | undefined;
  private readonly threads: ThreadStats = { takenAhead: 0, startedFresh: 0, startedAhead: 0, unloaded: 0 };
  /** A health round is under way (a hung engine makes one last as long as its calls' deadlines). */
  private checking = false;
  /** The model relay, its credential and each profile's upstream (the rehearsal model for a rehearsal image). */
  private readonly access: ModelAccess;
  /** The most turns each live container has run at once (kept while it lives). */
  readonly maxInFlightSeen = new Map<string, number>();
  /** Helper containers of workspace volumes, alive for a copy in or out: no health round reaps them. */
  private readonly helpers = new Set<string>();
  /** The engines workers run on. */
  readonly engines: EngineSet;
  /** How a new conversation's copy is made, should placement put it on a copy (the caller's `isolated.prepare`). */
  private readonly copies = new WeakMap<Want, NonNullable<PoolTurnRequest["isolated"]>["prepare"]>();

  constructor(private readonly opts: PoolOptions) {
    this.logger = (opts.logger ?? silentLogger).child({ instance: opts.config.label });
    this.engines = new EngineSet(opts.config, opts.docker, this.logger);
    this.access = new ModelAccess({ config: opts.config, logger: this.logger, tokens: opts.tokens });
    for (const r of opts.routes ?? []) this.routes.set(r.id, r);
  }

  get config(): WrapperConfig {
    return this.opts.config;
  }

  private profile(name: string | undefined): WorkerProfile {
    const p = name ? this.opts.config.workers.find((w) => w.name === name) : this.opts.config.workers[0];
    if (!p) throw new WrapperError("NOT_FOUND", `profile: no worker profile named "${name}"; known: ${this.opts.config.workers.map((w) => w.name).join(", ")}`);
    return p;
  }

  /**
   * Checks the images against the channel, reads the auth file, and removes this instance's
   * orphans (containers with its label left by an earlier broker). Never touches other labels.
   */
  async start(): Promise<{ reaped: string[] }> {
    const problems = this.opts.config.workers.map((p) => checkImageForChannel(p.image, this.opts.config.channel)).filter((p): p is string => p !== null);
    if (problems.length) throw new WrapperError("IMAGE_REFUSED", `instance ${this.opts.config.label} (${this.opts.config.channel}) refuses to start: ${problems.join("; ")}`);
    const rehearsalImages = new Set<string>();
    for (const p of this.opts.config.workers) {
      const image = await this.engines.sourceImage(p.image); // pulled there first for a profile with pull = true
      if (!image) throw new WrapperError("IMAGE_MISSING", `worker profile "${p.name}": image ${p.image} is missing; build it with npm run images`);
      if (image.labels[REHEARSAL_LABEL]) rehearsalImages.add(p.name);
    }
    for (const w of this.opts.config.warnings) this.logger.warn(w);
    try {
      // Rehearsal mode reads no auth file: there is no login, and no real credential anywhere.
      this.seeder = new AuthSeeder(this.opts.config.rehearsal ? null : this.opts.config.authFile, this.logger);
    } catch (e) {
      if (e instanceof AuthFileError) throw new WrapperError("AUTH_INVALID", `auth: ${e.message}; ${e.fix}`);
      throw e;
    }
    await this.access.open(this.seeder, rehearsalImages);
    this.opts.config.workers.forEach((p, i) => {
      if (p.warm === 0) return;
      p.warm_workspaces.forEach((ws, j) => {
        let workspace: string;
        try {
          workspace = resolveWorkspace(ws, this.opts.config.allowedWorkspaceRoots);
        } catch (e) {
          throw new WrapperError("CONFIG_INVALID", `workers[${i}].warm_workspaces[${j}]: ${describeError(e)}`);
        }
        const net = networkOf(p, undefined, undefined);
        const key = keyOf(p.name, workspace, p.sandbox, net.network, net.allow);
        this.warmKeys.set(key, { profile: p, workspace, sandbox: p.sandbox, ...net, key });
      });
    });
    const reaped = await this.reapOrphans();
    // The other engines: each is used once it answers and has the images (a health round retries one that does not).
    await Promise.all(this.engines.all.slice(1).map((e) => this.engines.probe(e, (x) => this.prepareEngine(x))));
    this.healthTimer = setInterval(() => void this.checkHealth(), this.opts.healthIntervalMs ?? 10_000);
    this.healthTimer.unref();
    this.started = true;
    this.topUpWarm();
    return { reaped };
  }

  /** Removes containers of this instance's label that this pool did not start (an earlier broker's), on the first engine. */
  async reapOrphans(engine: Engine = this.engines.source): Promise<string[]> {
    const names = await this.removeUnheld(false, engine);
    if (names.length) this.logger.info("removed orphan containers", { engine: engine.config.name, count: names.length, names });
    const volumes = await this.removeVolumes(false, engine);
    if (volumes.length) this.logger.info("removed orphan workspace volumes", { engine: engine.config.name, count: volumes.length, volumes });
    return names;
  }

  /** An engine coming up (or back): the profiles' images that may run there, then its orphans (a dead broker's, or its own from before the engine went away). */
  private async prepareEngine(e: Engine): Promise<void> {
    const images = this.opts.config.workers.filter((p) => engineFits(p, { name: e.config.name, labels: e.config.labels })).map((p) => p.image);
    await this.engines.ensureImages(e, images);
    await this.reapOrphans(e);
    // Workers the pool still counts there (it went away under them) are gone with it.
    for (const w of [...this.workers]) if (w.engine === e.config.name && !w.dead) this.onWorkerExit(w, `engine "${e.config.name}" went away`);
  }

  /**
   * Removes the workspace volumes of this instance's label (only this pool's with `thisSession`)
   * that no slot holds: an earlier broker's at start, whatever is left at shutdown.
   */
  private async removeVolumes(thisSession: boolean, engine: Engine): Promise<string[]> {
    const found = await engine.docker.listVolumesByLabels({ [LABELS.instance]: this.opts.config.label, [LABELS.volume]: "", ...(thisSession ? { [LABELS.session]: this.session } : {}) });
    const held = new Set([...this.slots.values()].filter((s) => s.worker).flatMap((s) => [s.volume, s.home]));
    const unheld = found.filter((v) => !held.has(v.name));
    await Promise.all(unheld.map((v) => engine.docker.removeVolume(v.name)));
    return unheld.map((v) => v.name);
  }

  /** What the volume helpers need: the volume's engine, name and labels, an image, and the reaping guard. */
  private volumeOptions(name: string, profile: WorkerProfile, engine: Engine): VolumeOptions {
    return {
      docker: engine.docker,
      name,
      image: profile.image,
      labels: { [LABELS.instance]: this.opts.config.label, [LABELS.channel]: this.opts.config.channel, [LABELS.session]: this.session, [LABELS.volume]: name, ...this.opts.extraLabels },
      hold: (helper, held) => (held ? this.helpers.add(helper) : this.helpers.delete(helper)),
    };
  }

  /**
   * Holds an isolated conversation's copy until the matching unpin: its container is neither
   * evicted nor stopped when idle. Holds count: two replies under way hold it until both are read back.
   */
  pin(id: ConversationId): void {
    const route = this.routes.get(id);
    const slot = route ? this.slots.get(route.slotId) : undefined;
    if (slot?.volume) slot.pins++;
  }

  /**
   * The caller has read an isolated conversation's copy back: its hold ends, and once no other
   * holds it, its container may be evicted or stopped when idle (which removes the copy).
   */
  unpin(id: ConversationId): void {
    const route = this.routes.get(id);
    const slot = route ? this.slots.get(route.slotId) : undefined;
    if (!slot?.pins) return;
    slot.pins--;
    if (slot.pins === 0) this.drain(this.profile(route!.profile).name);
  }

  /**
   * An isolated conversation's copy of its workspace as a tar stream (entries `./…`), given to
   * `consume` (the copy is read through a helper container, whatever its worker is doing).
   */
  async readIsolated<T>(id: ConversationId, consume: (tar: Readable) => Promise<T>): Promise<T> {
    const route = this.routes.get(id);
    if (!route?.volume) throw new WrapperError("NOT_FOUND", `conversationId: ${id} has no isolated workspace`);
    if (route.lost) throw new WrapperError("NOT_FOUND", `conversationId: ${id}: ${route.lost}`);
    const engine = this.engines.get(route.engine);
    if (!engine.up) throw new WrapperError("ENGINE_DOWN", `conversationId: ${id}: its copy is on engine "${engine.config.name}", which is down${engine.down ? `: ${engine.down}` : ""}`);
    return readWorkspaceVolume(this.volumeOptions(route.volume, this.profile(route.profile), engine), consume);
  }

  /**
   * Removes containers of this instance's label (only this pool's with `thisSession`) that no
   * worker holds, and returns their names. Besides an earlier broker's orphans, these are a
   * container whose removal failed while the engine was away, and one a hung engine created
   * after the pool had given up on the call (past broker.docker_timeout).
   */
  private async removeUnheld(thisSession: boolean, engine: Engine): Promise<string[]> {
    const found = await engine.docker.listByLabels({ [LABELS.instance]: this.opts.config.label, ...(thisSession ? { [LABELS.session]: this.session } : {}) });
    const held = new Set([...[...this.workers].map((w) => w.container.name), ...this.helpers]); // after the list: a worker added since is held
    const unheld = found.filter((c) => !held.has(c.name));
    await Promise.all(unheld.map((c) => engine.docker.remove(c.id)));
    return unheld.map((c) => c.name);
  }

  route(id: ConversationId): ConversationRoute | undefined {
    return this.routes.get(id);
  }

  /** Stores a route through onRoute; a failure is logged (the conversation still answers until a restart). */
  private async saveRoute(route: ConversationRoute): Promise<void> {
    try {
      await this.opts.onRoute?.(route);
    } catch (e) {
      this.logger.error("cannot store a conversation's route: a reply after a broker restart will not find it", { conversationId: route.id, error: describeError(e) });
    }
  }

  /** Runs one Codex turn: a new conversation, or the next turn of an existing one. */
  async runTurn(req: PoolTurnRequest): Promise<PoolTurnResult> {
    if (!this.started) throw new WrapperError("WORKER_FAILED", "the pool is not started");
    if (this.closed) throw new WrapperError("WORKER_FAILED", "the broker is shutting down");
    let route = req.conversationId ? this.routes.get(req.conversationId) : undefined;
    if (req.conversationId && !route) throw new WrapperError("NOT_FOUND", `conversationId: no conversation ${req.conversationId}; use an id returned by batch or reply`);
    if (route?.lost) return { conversationId: route.id, container: null, outcome: { status: "lost", threadId: route.threadId, finalMessage: null, error: route.lost, errorCode: "CONVERSATION_LOST" } };

    if (route && (route.volume || this.remote(route.engine)) && !this.slots.has(route.slotId)) {
      // The engine would make an empty volume of that name: the copy was this broker's and is gone.
      route.lost = route.volume
        ? "conversation ended: its isolated workspace copy did not outlive the broker that made it (a restart removes it); its changes are in its task's changes.patch"
        : `conversation ended: its CODEX_HOME on engine "${route.engine}" did not outlive the broker that made it (a restart removes it)`;
      await this.saveRoute(route);
      return { conversationId: route.id, container: null, outcome: { status: "lost", threadId: route.threadId, finalMessage: null, error: route.lost, errorCode: "CONVERSATION_LOST" } };
    }
    const profile = this.profile(route?.profile ?? this.chooseProfile(req.preferredProfile, req.profile));
    const workspace = route?.workspace ?? resolveWorkspace(req.workspace ?? "", this.opts.config.allowedWorkspaceRoots);
    const sandbox = route?.sandbox ?? req.sandbox ?? profile.sandbox;
    const net = route?.network ? { network: route.network, allow: route.allow ?? [] } : networkOf(profile, req.network, req.allow);
    // An isolated copy is written as the worker's user: the source's owner does not matter.
    if (sandbox !== "read-only" && !route?.volume && !req.isolated?.required) {
      const problem = checkWorkspaceWritable(workspace, workerUser(workspace), sandbox);
      if (problem) return { conversationId: route?.id ?? null, container: null, outcome: { status: "failed", threadId: route?.threadId ?? null, finalMessage: null, error: problem, errorCode: "WORKSPACE_REFUSED" } };
    }
    // An isolated conversation's volume is named now and made on the engine its first container gets.
    const volume = route?.volume ?? (!route && req.isolated?.required ? this.volumeName() : undefined);
    const want: Want = {
      profile,
      workspace,
      sandbox,
      ...net,
      key: keyOf(profile.name, workspace, sandbox, net.network, net.allow, volume),
      slotId: route?.slotId,
      lane: route?.lane,
      volume,
      engine: route?.engine,
      canCopy: !route && req.isolated !== undefined,
    };
    if (!route && req.isolated) this.copies.set(want, req.isolated.prepare);
    // warm without warm_workspaces: every workspace a turn has used keeps its floor from then on.
    // (Its floor is topped up once this turn has its own container: see release.) Never an isolated key: it is one task's.
    if (profile.warm > 0 && profile.warm_workspaces.length === 0 && !volume && !this.warmKeys.has(want.key)) this.warmKeys.set(want.key, { ...want, slotId: undefined, lane: undefined });

    let grant: { worker: Worker; lane: number };
    try {
      grant = await this.acquire(want, req.signal);
    } catch (e) {
      if (req.signal?.aborted) return { conversationId: route?.id ?? null, container: null, outcome: { status: "cancelled", threadId: route?.threadId ?? null, finalMessage: null, error: "cancelled while waiting for a worker", errorCode: "CANCELLED" } };
      return { conversationId: route?.id ?? null, container: null, outcome: failedBy(route?.threadId ?? null, e) };
    }
    const { worker, lane } = grant;
    try {
      try {
        await worker.ready;
      } catch (e) {
        return { conversationId: route?.id ?? null, container: worker.container.name, outcome: failedBy(route?.threadId ?? null, e, `worker ${worker.container.name} did not start: `) };
      }
      req.onAssigned?.({ container: worker.container.name, slotId: worker.slot.id, engine: worker.engine });
      const driver = worker.driver!;
      let killed = 0;
      const usageBefore = route ? (worker.usageByThread.get(route.threadId)?.usage ?? ZERO_USAGE) : ZERO_USAGE;
      // A refused connection is the container's, not a lane's: every turn in flight on it hears of it.
      const refused: EgressRefusal[] = [];
      const tell = (r: EgressRefusal): void => {
        refused.push(r);
        req.onEvent?.({ kind: "warning", message: `egress refused: ${r.target}: ${r.reason}` });
      };
      worker.listeners.add(tell);
      // The budget follows the turn's thread: known now for a reply, from its first event for a new one.
      let budgetThread: string | null = null;
      const watch = (threadId: string): void => {
        if (!req.budget || budgetThread) return;
        budgetThread = threadId;
        worker.budgets.set(threadId, req.budget);
        // Answers the relay metered before the thread's event reached the broker were this turn's.
        const early = route ? undefined : worker.usageByThread.get(threadId);
        if (early) req.budget.spend(early.usage);
      };
      if (route) watch(route.threadId);
      const approvals: string[] = [];
      let outcome = await driver
        .runTurn({
        threadId: route?.threadId,
        prompt: req.prompt,
        model: req.model,
        baseInstructions: req.baseInstructions,
        developerInstructions: req.developerInstructions,
        config: req.config,
        env: worker.network === "allowlist" ? { ...egressEnv(RELAY_PORTS.egress), ...req.env } : req.env,
        approvalPolicy: req.approvalPolicy ?? profile.approval_policy,
        timeoutMs: req.timeoutMs ?? profile.turn_timeout,
        signal: req.signal,
        lane,
        approve: req.approve,
        approvalTimeoutMs: req.approvalTimeoutMs ?? profile.approval_timeout,
        // A task's commands can read the worker's credential (Codex must, so any sandbox mode
        // lets them) and print it: what they report leaves the worker with known secrets scrubbed.
        onEvent: (e) => {
          if (e.kind === "command_finished" && e.exitCode === 137) killed++;
          if (e.kind === "thread") watch(e.threadId);
          const note = approvalNote(e);
          if (note) approvals.push(scrubValue(note));
          req.onEvent?.(scrubValue(e));
        },
      })
        .finally(() => {
          worker.listeners.delete(tell);
          if (budgetThread && worker.budgets.get(budgetThread) === req.budget) worker.budgets.delete(budgetThread);
        });
      outcome = scrubValue(outcome);
      // A command that died of SIGKILL may have been the kernel's doing: the cgroup says.
      const notes = [...(killed > 0 ? await oomNotes(worker, killed) : []), ...refusalNotes(refused), ...approvals, ...(this.opts.config.rehearsal ? [this.opts.config.rehearsal.notice] : [])];
      const metered = outcome.threadId ? worker.usageByThread.get(outcome.threadId) : undefined;
      const usage: TaskUsage | undefined = metered ? { ...subUsage(metered.usage, usageBefore), model: metered.model, profile: profile.name } : undefined;
      if (worker.lostReason && outcome.status === "failed") {
        outcome = { ...outcome, status: "lost", error: `${worker.lostReason}${outcome.error ? ` (${outcome.error})` : ""}`, errorCode: "CONVERSATION_LOST" };
      }
      // A reply whose thread went with its process, before or during this turn (the driver cannot
      // resume one, and answers `lost`): every later reply is lost too, said at once.
      if (route && outcome.status === "lost" && !CODEX_PROTOCOLS[driver.protocol].resumesThreads && !route.lost) {
        route.lost = outcome.error ?? "conversation lost: its codex process ended";
        await this.saveRoute(route);
      }
      // A turn that failed on a further engine: if the engine went away, that is what it says (the
      // container's own end may not be known yet: the engine's answer is asked, not awaited).
      // (The first engine's failures show as failed calls, as they always have.)
      const engine = this.engines.get(worker.engine);
      if (outcome.status !== "succeeded" && outcome.status !== "cancelled" && engine !== this.engines.source) {
        if (!worker.engineDown && !(await this.engines.probe(engine, (x) => this.prepareEngine(x)))) this.engineWentDown(engine);
        if (worker.engineDown) outcome = { ...outcome, status: "failed", error: `${worker.engineDown}${outcome.error ? ` (${outcome.error.split("\n")[0]})` : ""}`, errorCode: "ENGINE_DOWN" };
      }
      // A new isolated conversation with no thread cannot be read back or replied to: nothing to hold.
      if (!route && !outcome.threadId && worker.slot.pins > 0) worker.slot.pins--;
      if (!route && outcome.threadId) {
        route = {
          id: `conv_${randomUUID()}`,
          profile: profile.name,
          workspace,
          sandbox,
          network: worker.network,
          allow: worker.allow,
          slotId: worker.slot.id,
          lane: CODEX_PROTOCOLS[driver.protocol].laneHomes !== null ? lane : null,
          threadId: outcome.threadId,
          ...(worker.slot.volume ? { volume: worker.slot.volume } : {}),
          engine: worker.engine,
        };
        this.routes.set(route.id, route);
        await this.saveRoute(route);
      }
      return {
        conversationId: route?.id ?? null,
        container: worker.container.name,
        engine: worker.engine,
        outcome,
        ...(notes.length ? { notes } : {}),
        ...(usage ? { usage } : {}),
        ...(worker.slot.volume ? { isolated: true } : {}),
      };
    } finally {
      this.release(worker, lane);
    }
  }

  /**
   * Runs a command (a task's check) beside a conversation's Codex: in a container of the same
   * workspace, sandbox and network as its turns (its own, or the slot's next if it went away),
   * holding a lane meanwhile so the pool does not take the container away under it.
   */
  async runCommand(conversationId: ConversationId, req: PoolCommandRequest): Promise<CommandResult> {
    const route = this.routes.get(conversationId);
    if (!route) throw new WrapperError("NOT_FOUND", `conversationId: no conversation ${conversationId}`);
    const profile = this.profile(route.profile);
    const net = route.network ? { network: route.network, allow: route.allow ?? [] } : networkOf(profile, undefined, undefined);
    const want: Want = { profile, workspace: route.workspace, sandbox: route.sandbox, ...net, key: keyOf(profile.name, route.workspace, route.sandbox, net.network, net.allow, route.volume), slotId: route.slotId, lane: route.lane, volume: route.volume, engine: route.engine };
    const { worker, lane } = await this.acquire(want, req.signal);
    try {
      await worker.ready;
      return await runCommand(this.engines.get(worker.engine).docker, worker.container.id, {
        command: req.command,
        workdir: CONTAINER_PATHS.workspace,
        env: worker.network === "allowlist" ? { ...egressEnv(RELAY_PORTS.egress), ...req.env } : req.env,
        timeoutMs: req.timeoutMs,
        signal: req.signal,
      });
    } finally {
      this.release(worker, lane);
    }
  }

  private acquire(want: Want, signal: AbortSignal | undefined): Promise<{ worker: Worker; lane: number }> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(new Error("cancelled"));
      const queue = this.queues.get(want.profile.name) ?? [];
      this.queues.set(want.profile.name, queue);
      const waiter: Waiter = {
        want,
        grant: (g) => {
          signal?.removeEventListener("abort", onAbort);
          resolve(g);
        },
        fail: (e) => {
          signal?.removeEventListener("abort", onAbort);
          reject(e);
        },
      };
      const onAbort = (): void => {
        const i = queue.indexOf(waiter);
        if (i >= 0) queue.splice(i, 1);
        reject(new Error("cancelled"));
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      queue.push(waiter);
      this.drain(want.profile.name);
    });
  }

  /** Grants waiters in arrival order, each what it can have now; the rest keep waiting. */
  private drain(profileName: string): void {
    const queue = this.queues.get(profileName);
    if (!queue) return;
    drainQueue(
      queue,
      (waiter) => this.tryGrant(waiter.want),
      (waiter, granted) => {
        granted.worker.lanes[granted.lane] = true;
        granted.worker.turns++;
        const inFlight = granted.worker.lanes.filter(Boolean).length;
        const name = granted.worker.container.name;
        this.maxInFlightSeen.set(name, Math.max(this.maxInFlightSeen.get(name) ?? 0, inFlight));
        waiter.grant(granted);
      },
      (waiter, e) => waiter.fail(e),
      // New conversations of one key want the same; a reply wants its own slot (and lane).
      (waiter) => (waiter.want.slotId ? null : waiter.want.key),
    );
  }

  private liveWorkers(profile: string): Worker[] {
    return [...this.workers].filter((w) => w.profile.name === profile && !w.dead && !w.removing);
  }

  /** The profile a new conversation runs on (placement's choice for a preferred_worker). */
  private chooseProfile(preferred: string | undefined, profile: string | undefined): string | undefined {
    const load = [...this.workers].map((w) => ({ profile: w.profile.name, inFlight: w.lanes.filter(Boolean).length, capacity: w.lanes.length }));
    return chooseProfile(preferred, profile, this.opts.config.workers, load);
  }

  /** Carries out placement's decision for a want: a lane now (starting a container if needed), or null to wait. */
  private tryGrant(want: Want): { worker: Worker; lane: number } | null {
    // A slot known from a stored route (the broker restarted): its directory is still on disk.
    if (want.slotId && !this.slots.has(want.slotId)) this.addSlot(want, want.slotId);
    // A new conversation on its own copy takes a spare if one fits: no container to start.
    if (!want.slotId && want.volume && this.copies.has(want)) {
      const spare = this.takeSpare(want, undefined);
      if (spare) return spare;
    }
    const live = this.liveWorkers(want.profile.name).map((worker) => ({ worker, key: worker.key, engine: worker.engine, slotId: worker.slot.id, lanes: worker.lanes, ready: worker.driver !== null, pinned: worker.slot.pins > 0 }));
    const slots = [...this.slots.values()].map((s) => ({ id: s.id, key: s.key, held: s.worker !== null, engine: s.engine }));
    const d = place(want, live, slots, this.engineViews());
    if (d.kind === "wait") return null;
    if (d.kind === "refuse") throw new WrapperError("ENGINE_DOWN", d.reason);
    if (d.kind === "lane") return { worker: d.container.worker, lane: d.lane };
    if (d.copy && d.slotId === null && this.copies.has(want)) {
      // Placed on an engine that does not see the workspace: a spare there takes the copy.
      const spare = this.takeSpare(want, d.engine);
      if (spare) return spare;
    }
    if (d.evict) void this.removeWorker(d.evict.worker, "evicted to make room");
    if (d.copy) {
      // An engine that does not see the workspace: the conversation runs on its own copy there.
      want.volume = this.volumeName();
      want.key = keyOf(want.profile.name, want.workspace, want.sandbox, want.network, want.allow, want.volume);
    }
    const slot = d.slotId !== null ? this.slots.get(d.slotId)! : this.addSlot(want, randomUUID().slice(0, 8), d.engine);
    return { worker: this.startWorker(want, slot), lane: d.lane };
  }

  /**
   * Gives a new conversation on a copy a spare that fits it (placement's choice; on `engine` when
   * placement chose one): the spare becomes the conversation's container, on its own volume, which
   * is filled with the copy before the turn starts (its `ready` waits for that). A fill that fails
   * removes the container and fails the turn, naming the copy. A new spare is started in the
   * background. Null: none fits.
   */
  private takeSpare(want: Want, engine: string | undefined): { worker: Worker; lane: number } | null {
    const prepare = this.copies.get(want)!;
    const user = workerUser(want.workspace);
    const spares = [...this.workers]
      .filter((w) => w.spare && !w.dead && !w.removing)
      .map((w) => ({ worker: w, profile: w.profile.name, engine: w.engine, sandbox: w.sandbox, network: w.network, allow: w.allow, user: `${w.container.opts.user.uid}:${w.container.opts.user.gid}`, ready: w.driver !== null }));
    const chosen = chooseSpare({ profile: want.profile.name, sandbox: want.sandbox, network: want.network, allow: want.allow, user: `${user.uid}:${user.gid}`, engine }, spares, this.engineViews());
    if (!chosen) return null;
    const worker = chosen.worker;
    const slot = worker.slot;
    // From now on it is this conversation's container alone: its key names its own volume.
    want.volume = slot.volume;
    want.key = keyOf(want.profile.name, want.workspace, want.sandbox, want.network, want.allow, want.volume);
    worker.spare = false;
    worker.key = want.key;
    worker.workspace = want.workspace;
    slot.key = want.key;
    slot.pins = 1; // the taking task's, until it reads its copy back
    this.starts.sparesTaken++;
    const spareUser = worker.container.opts.user;
    worker.ready = worker.ready.then(async () => {
      try {
        const copy = await prepare();
        const e = this.engines.get(worker.engine);
        // Straight into the running container where its mount is writable and its root already
        // has the right owner (the image's user); else through a helper, which sets the root's owner.
        const direct = worker.sandbox !== "read-only" && spareUser.uid === IMAGE_UID;
        await fillWorkspaceVolume(this.volumeOptions(slot.volume!, worker.profile, e), (prefix) => copy(spareUser, prefix), direct ? { id: worker.container.id, path: CONTAINER_PATHS.workspace } : undefined);
      } catch (e) {
        void this.removeWorker(worker, "its spare's workspace copy could not be filled");
        throw new WrapperError(e instanceof WrapperError ? e.code : "WORKER_FAILED", `workspace_mode "isolated": cannot copy ${want.workspace} into spare ${worker.container.name} on engine "${worker.engine}": ${describeError(e)}`);
      }
    });
    worker.ready.catch(() => {}); // the turn that took it reports the failure
    setImmediate(() => this.topUpWarm());
    return { worker, lane: 0 };
  }

  /** Starts a spare of `profile` on `engine`: an empty workspace volume of its own, Codex up, waiting for a task on a copy. */
  private startSpare(profile: WorkerProfile, engine: string): void {
    const net = networkOf(profile, undefined, undefined);
    const volume = this.volumeName();
    const workspace = "(spare)";
    const want: Want = { profile, workspace, sandbox: profile.sandbox, ...net, key: keyOf(profile.name, workspace, profile.sandbox, net.network, net.allow, volume), volume, engine };
    if (!this.emptyDir) {
      this.emptyDir = mkdtempSync(path.join(os.tmpdir(), "cmw-spare-"));
      chmodSync(this.emptyDir, 0o755);
    }
    const empty = this.emptyDir;
    this.copies.set(want, () => Promise.resolve((user, prefix) => packDir(empty, user, prefix)));
    const slot = this.addSlot(want, randomUUID().slice(0, 8), engine);
    slot.pins = 0; // no task's copy yet: demand may evict it
    // The image's user (or the broker's own): a task whose workspace maps to another user starts its own container.
    const uid = process.getuid?.() ?? 0;
    const user = uid !== 0 ? { uid, gid: process.getgid?.() ?? uid } : { uid: IMAGE_UID, gid: IMAGE_UID };
    const worker = this.startWorker(want, slot, true, user, spareKey(profile.name, engine));
    // A turn waiting for room may evict it once it is up (a spare starting is never evicted).
    worker.ready.then(() => this.drain(profile.name), () => {});
  }

  /** Whether a named engine is a remote one (its slots' CODEX_HOME are volumes there). */
  private remote(engine: string | undefined): boolean {
    return engine !== undefined && this.engines.has(engine) && !this.engines.get(engine).config.local;
  }

  /** A new isolated copy's volume name. */
  private volumeName(): string {
    return `${this.opts.config.label}-ws-${randomUUID().slice(0, 12)}`;
  }

  /** Placement's view of the engines, with this pool's containers on each. */
  private engineViews(): EngineView[] {
    const count = new Map<string, number>();
    for (const w of this.workers) if (!w.dead) count.set(w.engine, (count.get(w.engine) ?? 0) + 1);
    return this.engines.views((name) => count.get(name) ?? 0);
  }

  /** A CODEX_HOME slot of the want's key on an engine: a new one, or one a stored route names. */
  private addSlot(want: Want, id: string, engine = want.engine ?? this.engines.source.config.name): Slot {
    const slot: Slot = {
      id,
      key: want.key,
      dir: path.join(this.opts.config.stateDir, "workers", this.opts.config.label, want.profile.name, id),
      engine,
      home: this.remote(engine) ? `${this.opts.config.label}-home-${id}` : undefined,
      worker: null,
      volume: want.volume,
      // A new isolated task's copy is held for it; a stored route's slot (its task ran under an
      // earlier broker) has no holder until a reply pins it.
      pins: want.volume !== undefined && want.slotId === undefined ? 1 : 0,
      copy: this.copies.get(want),
      // A stored route's copy was made by the broker that made it.
      filled: want.volume !== undefined && want.slotId !== undefined,
    };
    this.slots.set(id, slot);
    return slot;
  }

  /** A slot of this key whose container is gone, else a new one (on `engine`). */
  private freeSlot(want: Want, engine: string): Slot {
    for (const s of this.slots.values()) if (s.key === want.key && !s.worker && s.engine === engine) return s;
    return this.addSlot(want, randomUUID().slice(0, 8), engine);
  }

  /** `spareOf`: the spare's failure key (profile, engine), for a spare. */
  private startWorker(want: Want, slot: Slot, ahead = false, user = workerUser(want.workspace), spareOf?: string): Worker {
    if (ahead) this.starts.ahead++;
    else this.starts.onDemand++;
    const engine = this.engines.get(slot.engine);
    const worker = newWorker({ docker: engine.docker, logger: this.logger, config: this.opts.config, session: this.session, extraLabels: this.opts.extraLabels }, want, slot, user, ahead);
    worker.spare = spareOf !== undefined;
    slot.worker = worker;
    this.workers.add(worker);
    worker.ready = bringUp(this.bringUpContext(want.profile, engine), worker, user);
    worker.ready.then(
      () => {
        this.warmFailures.delete(want.key);
        if (spareOf) this.spareFailures.delete(spareOf);
      },
      (e: unknown) => {
        this.logger.error("worker failed to start", { container: worker.container.name, error: describeError(e) });
        if (this.warmKeys.has(want.key)) this.warmFailures.set(want.key, warmBackoff(this.warmFailures.get(want.key), Date.now()));
        if (spareOf) this.spareFailures.set(spareOf, warmBackoff(this.spareFailures.get(spareOf), Date.now()));
        void this.removeWorker(worker, "failed to start");
      },
    );
    return worker;
  }

  private bringUpContext(profile: WorkerProfile, engine: Engine): BringUpContext {
    return {
      docker: engine.docker,
      volume: (name) => this.volumeOptions(name, profile, engine),
      logger: this.logger,
      config: this.opts.config,
      session: this.session,
      extraLabels: this.opts.extraLabels,
      relay: this.access.relay!,
      seeder: this.seeder!,
      planType: this.access.planType,
      upstream: this.access.upstream(profile.name)!,
      relayChannel: this.opts.relayChannel,
      startTimeoutMs: this.opts.startTimeoutMs,
      onContainerReady: this.opts.onContainerReady,
      threadStats: this.threads,
      imageReady: () => this.engines.imageReady(engine, profile.image),
      onExit: (worker, reason) => this.onWorkerExit(worker, reason),
    };
  }

  private onWorkerExit(worker: Worker, reason: string): void {
    if (worker.dead) return;
    worker.dead = true;
    if (worker.slot.worker === worker) worker.slot.worker = null;
    this.workers.delete(worker);
    this.maxInFlightSeen.delete(worker.container.name);
    // The link revokes the container's token; a worker that failed before it had one, directly.
    if (worker.relay) worker.relay.close();
    else if (worker.grant) this.access.relay?.revoke(worker.grant);
    if (!worker.removing) this.logger.warn("worker container ended unexpectedly", { container: worker.container.name, reason });
    void worker.container.remove().catch(() => {}); // if the engine is away, a health round removes it later
    this.drain(worker.profile.name);
    this.topUpWarm();
  }

  /**
   * Starts containers until each warm key has its profile's `warm` live containers, within
   * max_containers. A key whose starts keep failing is retried later, backing off (5 s, 10 s, …
   * up to a minute) instead of looping.
   */
  private topUpWarm(): void {
    if (!this.started || this.closed) return;
    const now = Date.now();
    const live = [...this.workers].filter((w) => !w.dead && !w.removing).map((w) => ({ profile: w.profile.name, key: w.key }));
    const warm = warmStarts(this.warmKeys.values(), live, this.warmFailures, now);
    const starts = warm.starts;
    let retryAt = warm.retryAt;
    for (const want of starts) {
      // Ahead of demand: on an engine that sees the workspace and has room (no copy is made ahead).
      const chosen = chooseEngine({ ...want, canCopy: false }, this.engineViews());
      if ("engine" in chosen) this.startWorker(want, this.freeSlot(want, chosen.engine.name), true);
    }
    // Then the spares (after the floors: a known workspace's floor comes first).
    const waiting = new Set([...this.queues].filter(([, q]) => q.length > 0).map(([name]) => name));
    const counts = [...this.workers].filter((w) => !w.dead && !w.removing).map((w) => ({ profile: w.profile.name, engine: w.engine, spare: w.spare === true }));
    const spares = spareStarts(this.opts.config.workers, this.engineViews(), counts, waiting, this.spareFailures, now);
    for (const s of spares.starts) this.startSpare(this.profile(s.profile), s.engine);
    if (spares.retryAt !== null) retryAt = retryAt === null ? spares.retryAt : Math.min(retryAt, spares.retryAt);
    if (retryAt !== null && !this.warmTimer) {
      this.warmTimer = setTimeout(() => {
        this.warmTimer = undefined;
        this.topUpWarm();
      }, retryAt - now);
      this.warmTimer.unref();
    }
  }

  /** Whether removing this idle worker would take its key below the warm floor. */
  private holdsWarmFloor(w: Worker): boolean {
    if (w.spare) return true; // a spare waits for a task: idle is its job
    const live = this.liveWorkers(w.profile.name).map((o) => ({ profile: o.profile.name, key: o.key }));
    return holdsWarmFloor({ profile: w.profile.name, key: w.key }, w.profile.warm, this.warmKeys.has(w.key), live);
  }

  private release(worker: Worker, lane: number): void {
    worker.lanes[lane] = false;
    worker.lastUsed = Date.now();
    this.drain(worker.profile.name);
    this.topUpWarm();
  }

  private async removeWorker(worker: Worker, why: string): Promise<void> {
    if (worker.removing) return;
    worker.removing = true;
    this.logger.info("removing worker container", { container: worker.container.name, why });
    await worker.driver?.close().catch(() => {});
    await worker.container.remove().catch((e: unknown) => this.logger.warn("cannot remove a worker container; a health round will", { container: worker.container.name, error: describeError(e) }));
    this.onWorkerExit(worker, why);
    // Not when a reply already started the slot's next container on the same copy.
    if (worker.slot.volume && worker.slot.worker === null) await this.dropVolume(worker.slot, why);
  }

  /**
   * Removes an isolated slot's volume once the broker took its container away (idle, evicted,
   * shutdown; a container that died keeps it for its replacement): the conversation's copy is
   * gone, so a reply to it is answered "lost" with the reason.
   */
  private async dropVolume(slot: Slot, why: string): Promise<void> {
    const volume = slot.volume!;
    const engine = this.engines.get(slot.engine);
    this.slots.delete(slot.id);
    for (const r of this.routes.values()) {
      if (r.slotId !== slot.id || r.lost) continue;
      r.lost = `conversation ended: its isolated workspace copy was removed with its container (${why}); its changes are in its task's changes.patch`;
      await this.saveRoute(r);
    }
    for (const v of [volume, slot.home]) {
      if (v) await engine.docker.removeVolume(v).catch((e: unknown) => this.logger.warn("cannot remove a workspace volume; the next broker start removes it", { volume: v, engine: slot.engine, error: describeError(e) }));
    }
  }

  /**
   * An engine stopped answering: its workers are forgotten (their containers are reaped when it
   * comes back), the turns they held fail naming it, and waiting turns that only it could take fail.
   */
  private engineWentDown(e: Engine): void {
    const reason = `engine "${e.config.name}" (${e.config.host}) is down: ${e.down ?? "it does not answer"}`;
    for (const w of [...this.workers]) {
      if (w.engine !== e.config.name || w.dead) continue;
      w.engineDown = reason;
      void w.driver?.close().catch(() => {});
      this.onWorkerExit(w, reason);
    }
    // Its conversations end with it: their CODEX_HOME and copies are volumes there (removed as
    // orphans when it comes back). A reply to one says why.
    for (const slot of [...this.slots.values()]) {
      if (slot.engine !== e.config.name || (!slot.home && !slot.volume)) continue;
      this.slots.delete(slot.id);
      for (const r of this.routes.values()) {
        if (r.slotId !== slot.id || r.lost) continue;
        r.lost = `conversation ended: ${reason}; its Codex home and workspace copy were there`;
        void this.saveRoute(r);
      }
    }
    this.drainAll();
  }

  /** Asks every queue again (an engine changed). */
  private drainAll(): void {
    for (const name of this.queues.keys()) this.drain(name);
  }

  /** Replaces dead or frozen containers and stops idle ones. */
  async checkHealth(): Promise<void> {
    if (this.checking) return; // rounds never overlap
    this.checking = true;
    try {
      await this.healthRound();
    } finally {
      this.checking = false;
    }
  }

  private async healthRound(): Promise<void> {
    const now = Date.now();
    // Every engine but the first (whose failures show as failed calls, as ever) is probed: one
    // that went down fails its tasks, naming it; one that came back is prepared and used again.
    await Promise.all(
      this.engines.all.slice(1).map(async (e) => {
        const wasUp = e.up;
        const up = await this.engines.probe(e, (x) => this.prepareEngine(x));
        if (!up && wasUp) this.engineWentDown(e);
        if (up && !wasUp) {
          this.drainAll();
          this.topUpWarm(); // a warm floor may have room on it now
        }
      }),
    );
    for (const e of this.engines.all.filter((x) => x.up)) {
      await this.removeUnheld(true, e).then(
        (names) => names.length && this.logger.warn("removed containers no worker held", { engine: e.config.name, names }),
        () => {}, // the engine is away: next round
      );
    }
    for (const w of [...this.workers]) {
      if (w.dead || w.removing || !w.driver || w.engineDown) continue;
      if (w.slot.pins === 0 && idleExpired({ lanes: w.lanes, lastUsed: w.lastUsed, idleTimeoutMs: w.profile.idle_timeout }, now, this.holdsWarmFloor(w))) {
        void this.removeWorker(w, `idle for ${Math.round((now - w.lastUsed) / 1000)} s`);
        continue;
      }
      try {
        const state = await this.engines.get(w.engine).docker.inspect(w.container.id);
        if (!state || !state.running) {
          // The container's exit watcher reports a death with its exit code and stderr; the probe
          // only steps in if that report does not come.
          void withDeadline(w.container.exited, 5000, () => undefined).then(() => {
            if (!w.dead) void this.removeWorker(w, "its container is not running");
          });
        } else if (state.paused) {
          w.lostReason = `worker ${w.container.name} stopped answering (its container is paused): it was removed and replaced, and the turns it held are lost`;
          void this.removeWorker(w, "its container is frozen (paused) and cannot answer");
        }
      } catch (e) {
        this.logger.warn("health probe failed", { container: w.container.name, error: describeError(e) });
      }
    }
  }

  stats(): PoolStats {
    const containers = [...this.workers].map((w) => ({
      name: w.container.name,
      engine: w.engine,
      profile: w.profile.name,
      workspace: w.workspace,
      sandbox: w.sandbox,
      inFlight: w.lanes.filter(Boolean).length,
      capacity: w.lanes.length,
      state: w.dead ? ("dead" as const) : w.driver ? ("ready" as const) : ("starting" as const),
      warm: w.ahead,
      spare: w.spare === true,
      held: w.slot.pins,
      turns: w.turns,
    }));
    const perEngine = new Map<string, number>();
    for (const c of containers) if (c.state !== "dead") perEngine.set(c.engine, (perEngine.get(c.engine) ?? 0) + 1);
    return {
      containers,
      engines: this.engines.describe((name) => perEngine.get(name) ?? 0),
      queued: [...this.queues.values()].reduce((n, q) => n + q.length, 0),
      inFlight: containers.reduce((n, c) => n + c.inFlight, 0),
      starts: { ...this.starts },
      threads: { ...this.threads },
      relay: this.access.relay ? { ...this.access.relay.stats } : { requests: 0, refused: 0, budgetRefused: 0 },
    };
  }

  /** The live container holding a conversation's slot, if any (tests, status). */
  containerOf(id: ConversationId): string | null {
    const r = this.routes.get(id);
    const w = r ? this.slots.get(r.slotId)?.worker : undefined;
    return w && !w.dead ? w.container.name : null;
  }

  /** Stops and removes every container this pool started; fails what still waits. */
  async shutdown(): Promise<void> {
    this.closed = true;
    clearInterval(this.healthTimer);
    clearTimeout(this.warmTimer);
    for (const q of this.queues.values()) for (const w of q.splice(0)) w.fail(new WrapperError("WORKER_FAILED", "the broker is shutting down"));
    const workers = [...this.workers];
    // Bounded: an engine that stops answering must not hold the shutdown (each of its calls has a
    // deadline, but a worker on its way up may make several). What is left is reaped by label at
    // the next start.
    const bounded = async (what: string, work: Promise<unknown>): Promise<void> => {
      if ((await withDeadline(work.then(() => null, () => null), SHUTDOWN_STEP_MS, () => "late" as const)) === "late") this.logger.warn(`shutdown: gave up waiting for ${what} after ${SHUTDOWN_STEP_MS / 1000} s; the next start removes what is left, by label`);
    };
    await bounded("containers to be removed", Promise.all(workers.map((w) => this.removeWorker(w, "shutdown"))));
    // One still on its way up (a spare or warm container started in the background) removes what it made.
    await bounded("containers still starting", Promise.allSettled(workers.map((w) => w.ready)));
    // Volumes of slots whose container had died (kept for a replacement that will not come now).
    for (const e of this.engines.all.filter((x) => x.up)) {
      await this.removeVolumes(true, e).catch((err: unknown) => this.logger.warn("cannot remove workspace volumes; the next broker start removes them", { engine: e.config.name, error: describeError(err) }));
    }
    if (this.emptyDir) rmSync(this.emptyDir, { recursive: true, force: true });
    this.seeder?.close();
    await this.access.close();
  }
}
