// The worker pool: starts worker containers per profile, workspace and sandbox mode (up to each
// profile's max_containers), gives each turn a lane of a container with free capacity (queueing
// fairly when there is none), routes a continued conversation to the container that holds its
// CODEX_HOME slot (a replacement on the same slot when that container died), keeps each
// profile's warm floor (`warm` containers started ahead of demand for known workspaces, see
// docs/warm-pool.md), stops idle containers, replaces dead ones, and at shutdown removes every
// container it started.
import { randomUUID } from "node:crypto";
import path from "node:path";
import { AuthFileError } from "../auth/auth-file.js";
import { ChatgptTokens } from "../auth/chatgpt-tokens.js";
import { ApiKeyCredential, ChatgptCredential, type ModelCredential } from "../auth/credential.js";
import { AuthSeeder, chatgptRelayToken, PLACEHOLDER_ACCOUNT, sentinelAuth } from "../auth/seeder.js";
import type { ApprovalPolicy, NetworkMode, SandboxMode, WorkerProfile, WrapperConfig } from "../config/schema.js";
import type { ChatgptTokenSource } from "../auth/token-source.js";
import type { CodexDriver, DriverEvent, TurnOutcome } from "../codex/driver.js";
import { CODEX_PROTOCOLS } from "../codex/protocols.js";
import { describeError, WrapperError } from "../errors.js";
import { scrubValue, silentLogger, type Logger } from "../log.js";
import type { EgressRefusal } from "../relay/egress.js";
import { ModelRelay, type RelayGrant, type RelayStats } from "../relay/model-relay.js";
import type { UpstreamTarget } from "../relay/upstream.js";
import { addUsage, subUsage, ZERO_USAGE, type TaskUsage, type TokenUsage, type Usage } from "../relay/usage.js";
import { startRehearsalServer, type RehearsalServer } from "../rehearsal/server.js";
import type { DockerRuntime } from "../runtime/docker.js";
import type { ConversationId, ConversationRoute } from "../state/route.js";
import { CONTAINER_PATHS, egressEnv, LABELS, privateDir, WorkerContainer, workerUser } from "./container.js";
import { runCommand, type CommandResult } from "./command.js";
import { checkImageForChannel } from "./image-policy.js";
import { RELAY_PORTS, RelayLink } from "./relay-link.js";
import { checkWorkspaceWritable, resolveWorkspace } from "./workspace.js";

/** The image label that marks a rehearsal image: the broker serves its model itself (the rehearsal model, on loopback). */
export const REHEARSAL_LABEL = "io.codex-mcp-wrapper.rehearsal";
/** Where a relay sends model calls when wrapper.toml names no model_upstream. */
export const DEFAULT_UPSTREAMS = { "api-key": "https://api.openai.com/v1", chatgpt: "https://chatgpt.com/backend-api/codex" } as const;

export type { ConversationId, ConversationRoute } from "../state/route.js";

export interface PoolTurnRequest {
  /** Continue this conversation; none starts a new one. */
  conversationId?: ConversationId | undefined;
  profile?: string | undefined;
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
  onAssigned?: ((info: { container: string; slotId: string }) => void) | undefined;
  /** A token budget over the turn's model calls: the relay refuses a call it says no to. */
  budget?: TurnBudget | undefined;
}

/** A token budget (the runner's): asked before each model call of a turn, told each answer's usage. */
export interface TurnBudget {
  /** Why the next model call must be refused (the budget is spent), or null to let it through. */
  refusal(): string | null;
  /** An answer's usage, as the relay metered it. */
  spend(u: TokenUsage): void;
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
}

export interface PoolOptions {
  config: WrapperConfig;
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
  onRoute?: (route: ConversationRoute) => void;
  /**
   * How workers' forwarders reach the relay: a unix socket in CODEX_HOME (the default on a local
   * engine) or their stdio through the engine (the only way on a remote one; tests force it).
   */
  relayChannel?: "socket" | "stdio";
  /** Called when a container's Codex first answers, with the time since its creation began (metrics). */
  onContainerReady?: (info: { name: string; profile: string; ms: number }) => void;
}

interface Slot {
  id: string;
  key: string;
  dir: string;
  worker: Worker | null;
}

interface Worker {
  key: string;
  profile: WorkerProfile;
  workspace: string;
  sandbox: SandboxMode;
  network: NetworkMode;
  allow: string[];
  relay: RelayLink | null;
  grant: RelayGrant | null;
  /** Usage the relay metered, by Codex thread, with the model that last answered it. */
  usageByThread: Map<string, { usage: TokenUsage; model: string | null }>;
  /** The budgets of the turns in flight, by their Codex thread. */
  budgets: Map<string, TurnBudget>;
  /** The turns in flight, told of each connection the egress proxy refuses. */
  listeners: Set<(r: EgressRefusal) => void>;
  slot: Slot;
  container: WorkerContainer;
  driver: CodexDriver | null;
  /** Busy flags, one per unit of capacity. */
  lanes: boolean[];
  lastUsed: number;
  dead: boolean;
  ready: Promise<void>;
  removing: boolean;
  /** Started to keep a warm floor, not for a waiting turn. */
  ahead: boolean;
  /** Turns granted a lane on it so far. */
  turns: number;
  /** Set when the pool gave up on a live container (frozen): its turns end `lost` with this reason. */
  lostReason?: string;
  /** The container's OOM kills already accounted to a turn. */
  oomKillsSeen: number;
}

interface Want {
  profile: WorkerProfile;
  workspace: string;
  sandbox: SandboxMode;
  network: NetworkMode;
  allow: string[];
  key: string;
  slotId?: string | undefined;
  lane?: number | null | undefined;
}

interface Waiter {
  want: Want;
  grant: (g: { worker: Worker; lane: number }) => void;
  fail: (e: Error) => void;
}

export interface PoolStats {
  containers: { name: string; profile: string; workspace: string; sandbox: string; inFlight: number; capacity: number; state: "starting" | "ready" | "dead"; warm: boolean; turns: number }[];
  queued: number;
  inFlight: number;
  /** Containers started since the pool started: ahead of demand (warm floor) or for a waiting turn. */
  starts: { ahead: number; onDemand: number };
  /** The model relay's counts: calls relayed, requests refused, and calls refused for a spent token budget. */
  relay: RelayStats;
}

const keyOf = (profile: string, workspace: string, sandbox: string, network: NetworkMode = "none", allow: string[] = []): string =>
  [profile, workspace, sandbox, network, allow.join(",")].join("\u0000");

/** The network a turn gets: what it asks, else "allowlist" if it names hosts, else the profile's. */
function networkOf(profile: WorkerProfile, network: NetworkMode | undefined, allow: string[] | undefined): { network: NetworkMode; allow: string[] } {
  const mode = network ?? (allow?.length ? "allowlist" : profile.network);
  return { network: mode, allow: mode === "allowlist" ? [...new Set([...profile.allow, ...(allow ?? [])])].sort() : [] };
}

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
  private readonly warmFailures = new Map<string, { count: number; retryAt: number }>();
  private warmTimer: NodeJS.Timeout | undefined;
  private readonly starts = { ahead: 0, onDemand: 0 };
  /** A health round is under way (a hung engine makes one last as long as its calls' deadlines). */
  private checking = false;
  /** The ChatGPT login this pool holds, when no source was given. */
  private ownTokens: ChatgptTokens | undefined;
  /** Every worker reaches the model through it; none holds a real credential. */
  private relay: ModelRelay | undefined;
  private readonly upstreams = new Map<string, UpstreamTarget>();
  /** The rehearsal model, for profiles on a rehearsal image (the relay's upstream, on loopback). */
  private rehearsal: RehearsalServer | undefined;
  private planType: string | null = null;
  /** The most turns each live container has run at once (kept while it lives). */
  readonly maxInFlightSeen = new Map<string, number>();

  constructor(private readonly opts: PoolOptions) {
    this.logger = (opts.logger ?? silentLogger).child({ instance: opts.config.label });
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
      const image = await this.opts.docker.imageInspect(p.image);
      if (!image) throw new WrapperError("IMAGE_MISSING", `worker profile "${p.name}": image ${p.image} is missing; build it with npm run images`);
      if (image.labels[REHEARSAL_LABEL]) rehearsalImages.add(p.name);
    }
    for (const w of this.opts.config.warnings) this.logger.warn(w);
    try {
      this.seeder = new AuthSeeder(this.opts.config.authFile, this.logger);
    } catch (e) {
      if (e instanceof AuthFileError) throw new WrapperError("AUTH_INVALID", `auth: ${e.message}; ${e.fix}`);
      throw e;
    }
    await this.startRelay(rehearsalImages);
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
    this.healthTimer = setInterval(() => void this.checkHealth(), this.opts.healthIntervalMs ?? 10_000);
    this.healthTimer.unref();
    this.started = true;
    this.topUpWarm();
    return { reaped };
  }

  /**
   * The model relay and each profile's upstream. The broker holds the login: an API key, or a
   * ChatGPT login it refreshes ahead of expiry (one refresh for every container); no container
   * gets either. A profile on a rehearsal image is answered by the rehearsal model on loopback.
   */
  private async startRelay(rehearsalImages: Set<string>): Promise<void> {
    const seeder = this.seeder!;
    let credential: ModelCredential;
    if (seeder.kind === "chatgpt") {
      if (!this.opts.tokens) {
        this.ownTokens = new ChatgptTokens({ authFile: this.opts.config.authFile, tokenUrl: this.opts.config.chatgptTokenUrl, logger: this.logger });
        this.ownTokens.start();
      }
      const tokens = this.opts.tokens ?? this.ownTokens!;
      credential = new ChatgptCredential(tokens);
      this.planType = (await tokens.current()).planType;
    } else credential = new ApiKeyCredential(() => seeder.info.json.OPENAI_API_KEY ?? "");
    const hosts = this.opts.config.egressHosts;
    this.relay = new ModelRelay({ logger: this.logger, resolveHost: (h) => hosts[h.toLowerCase()] });
    if (rehearsalImages.size) {
      this.rehearsal = await startRehearsalServer({ host: "127.0.0.1", port: 0, log: (line) => this.logger.debug("rehearsal model", { line }) });
    }
    for (const p of this.opts.config.workers) {
      const baseUrl = rehearsalImages.has(p.name) ? this.rehearsal!.url : (this.opts.config.modelUpstream ?? DEFAULT_UPSTREAMS[seeder.kind]);
      this.upstreams.set(p.name, { baseUrl, credential, idleTimeoutMs: this.opts.config.modelTimeoutMs });
    }
  }

  /** Removes containers of this instance's label that this pool did not start (an earlier broker's). */
  async reapOrphans(): Promise<string[]> {
    const names = await this.removeUnheld(false);
    if (names.length) this.logger.info("removed orphan containers", { count: names.length, names });
    return names;
  }

  /**
   * Removes containers of this instance's label (only this pool's with `thisSession`) that no
   * worker holds, and returns their names. Besides an earlier broker's orphans, these are a
   * container whose removal failed while the engine was away, and one a hung engine created
   * after the pool had given up on the call (past broker.docker_timeout).
   */
  private async removeUnheld(thisSession: boolean): Promise<string[]> {
    const found = await this.opts.docker.listByLabels({ [LABELS.instance]: this.opts.config.label, ...(thisSession ? { [LABELS.session]: this.session } : {}) });
    const held = new Set([...this.workers].map((w) => w.container.name)); // after the list: a worker added since is held
    const unheld = found.filter((c) => !held.has(c.name));
    await Promise.all(unheld.map((c) => this.opts.docker.remove(c.id)));
    return unheld.map((c) => c.name);
  }

  route(id: ConversationId): ConversationRoute | undefined {
    return this.routes.get(id);
  }

  /** Runs one Codex turn: a new conversation, or the next turn of an existing one. */
  async runTurn(req: PoolTurnRequest): Promise<PoolTurnResult> {
    if (!this.started) throw new WrapperError("WORKER_FAILED", "the pool is not started");
    if (this.closed) throw new WrapperError("WORKER_FAILED", "the broker is shutting down");
    let route = req.conversationId ? this.routes.get(req.conversationId) : undefined;
    if (req.conversationId && !route) throw new WrapperError("NOT_FOUND", `conversationId: no conversation ${req.conversationId}; use an id returned by batch or reply`);
    if (route?.lost) return { conversationId: route.id, container: null, outcome: { status: "lost", threadId: route.threadId, finalMessage: null, error: route.lost } };

    const profile = this.profile(route?.profile ?? req.profile);
    const workspace = route?.workspace ?? resolveWorkspace(req.workspace ?? "", this.opts.config.allowedWorkspaceRoots);
    const sandbox = route?.sandbox ?? req.sandbox ?? profile.sandbox;
    const net = route?.network ? { network: route.network, allow: route.allow ?? [] } : networkOf(profile, req.network, req.allow);
    if (sandbox !== "read-only") {
      const problem = checkWorkspaceWritable(workspace, workerUser(workspace), sandbox);
      if (problem) return { conversationId: route?.id ?? null, container: null, outcome: { status: "failed", threadId: route?.threadId ?? null, finalMessage: null, error: problem } };
    }
    const want: Want = { profile, workspace, sandbox, ...net, key: keyOf(profile.name, workspace, sandbox, net.network, net.allow), slotId: route?.slotId, lane: route?.lane };
    // warm without warm_workspaces: every workspace a turn has used keeps its floor from then on.
    // (Its floor is topped up once this turn has its own container: see release.)
    if (profile.warm > 0 && profile.warm_workspaces.length === 0 && !this.warmKeys.has(want.key)) this.warmKeys.set(want.key, { ...want, slotId: undefined, lane: undefined });

    let grant: { worker: Worker; lane: number };
    try {
      grant = await this.acquire(want, req.signal);
    } catch (e) {
      if (req.signal?.aborted) return { conversationId: route?.id ?? null, container: null, outcome: { status: "cancelled", threadId: route?.threadId ?? null, finalMessage: null, error: "cancelled while waiting for a worker" } };
      return { conversationId: route?.id ?? null, container: null, outcome: { status: "failed", threadId: route?.threadId ?? null, finalMessage: null, error: describeError(e) } };
    }
    const { worker, lane } = grant;
    try {
      try {
        await worker.ready;
      } catch (e) {
        return { conversationId: route?.id ?? null, container: worker.container.name, outcome: { status: "failed", threadId: route?.threadId ?? null, finalMessage: null, error: `worker ${worker.container.name} did not start: ${describeError(e)}` } };
      }
      req.onAssigned?.({ container: worker.container.name, slotId: worker.slot.id });
      const driver = worker.driver!;
      if (route && !CODEX_PROTOCOLS[driver.protocol].resumesThreads && !driver.hasThread(route.threadId)) {
        route.lost = `conversation lost: its codex mcp-server process ended (mcp-server cannot resume a thread in a new process)`;
        this.opts.onRoute?.(route);
        return { conversationId: route.id, container: worker.container.name, outcome: { status: "lost", threadId: route.threadId, finalMessage: null, error: route.lost } };
      }
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
        // A task's commands can read the worker's credential (Codex must, so any sandbox mode
        // lets them) and print it: what they report leaves the worker with known secrets scrubbed.
        onEvent: (e) => {
          if (e.kind === "command_finished" && e.exitCode === 137) killed++;
          if (e.kind === "thread") watch(e.threadId);
          req.onEvent?.(scrubValue(e));
        },
      })
        .finally(() => {
          worker.listeners.delete(tell);
          if (budgetThread && worker.budgets.get(budgetThread) === req.budget) worker.budgets.delete(budgetThread);
        });
      outcome = scrubValue(outcome);
      // A command that died of SIGKILL may have been the kernel's doing: the cgroup says.
      const notes = [...(killed > 0 ? await this.oomNotes(worker, killed) : []), ...refusalNotes(refused)];
      const metered = outcome.threadId ? worker.usageByThread.get(outcome.threadId) : undefined;
      const usage: TaskUsage | undefined = metered ? { ...subUsage(metered.usage, usageBefore), model: metered.model, profile: profile.name } : undefined;
      if (worker.lostReason && outcome.status === "failed") {
        outcome = { ...outcome, status: "lost", error: `${worker.lostReason}${outcome.error ? ` (${outcome.error})` : ""}` };
      }
      if (!route && outcome.threadId) {
        route = { id: `conv_${randomUUID()}`, profile: profile.name, workspace, sandbox, network: worker.network, allow: worker.allow, slotId: worker.slot.id, lane: CODEX_PROTOCOLS[driver.protocol].laneHomes !== null ? lane : null, threadId: outcome.threadId };
        this.routes.set(route.id, route);
        this.opts.onRoute?.(route);
      }
      return { conversationId: route?.id ?? null, container: worker.container.name, outcome, ...(notes.length ? { notes } : {}), ...(usage ? { usage } : {}) };
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
    const want: Want = { profile, workspace: route.workspace, sandbox: route.sandbox, ...net, key: keyOf(profile.name, route.workspace, route.sandbox, net.network, net.allow), slotId: route.slotId, lane: route.lane };
    const { worker, lane } = await this.acquire(want, req.signal);
    try {
      await worker.ready;
      return await runCommand(this.opts.docker, worker.container.id, {
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
    for (let i = 0; i < queue.length; ) {
      const waiter = queue[i]!;
      let granted: { worker: Worker; lane: number } | null;
      try {
        granted = this.tryGrant(waiter.want);
      } catch (e) {
        queue.splice(i, 1);
        waiter.fail(e as Error);
        continue;
      }
      if (granted) {
        queue.splice(i, 1);
        granted.worker.lanes[granted.lane] = true;
        granted.worker.turns++;
        const inFlight = granted.worker.lanes.filter(Boolean).length;
        const name = granted.worker.container.name;
        this.maxInFlightSeen.set(name, Math.max(this.maxInFlightSeen.get(name) ?? 0, inFlight));
        waiter.grant(granted);
      } else i++;
    }
  }

  private liveWorkers(profile: string): Worker[] {
    return [...this.workers].filter((w) => w.profile.name === profile && !w.dead && !w.removing);
  }

  private tryGrant(want: Want): { worker: Worker; lane: number } | null {
    const freeLane = (w: Worker): number => (want.lane !== undefined && want.lane !== null ? (w.lanes[want.lane] ? -1 : want.lane) : w.lanes.indexOf(false));
    const live = this.liveWorkers(want.profile.name);
    const room = live.length < want.profile.max_containers;

    if (want.slotId) {
      const holder = live.find((w) => w.slot.id === want.slotId);
      if (holder) {
        const lane = freeLane(holder);
        return lane >= 0 ? { worker: holder, lane } : null;
      }
      const slot = this.slots.get(want.slotId) ?? this.adoptSlot(want);
      if (room) return { worker: this.startWorker(want, slot), lane: want.lane ?? 0 };
      const victim = this.evictable(want);
      if (victim) {
        void this.removeWorker(victim, "evicted to make room");
        return { worker: this.startWorker(want, slot), lane: want.lane ?? 0 };
      }
      return null;
    }

    const candidates = live.filter((w) => w.key === want.key).map((w) => ({ w, lane: freeLane(w) })).filter((c) => c.lane >= 0);
    candidates.sort((a, b) => a.w.lanes.filter(Boolean).length - b.w.lanes.filter(Boolean).length);
    if (candidates[0]) return { worker: candidates[0].w, lane: candidates[0].lane };
    if (room) return { worker: this.startWorker(want, this.freeSlot(want)), lane: 0 };
    const victim = this.evictable(want);
    if (victim) {
      void this.removeWorker(victim, "evicted to make room");
      return { worker: this.startWorker(want, this.freeSlot(want)), lane: 0 };
    }
    return null;
  }

  /** An idle container of the same profile serving another workspace or sandbox mode. */
  private evictable(want: Want): Worker | undefined {
    return this.liveWorkers(want.profile.name).find((w) => w.key !== want.key && w.lanes.every((b) => !b) && w.driver !== null);
  }

  /** A slot of this key whose container is gone, else a new one. */
  private freeSlot(want: Want): Slot {
    for (const s of this.slots.values()) if (s.key === want.key && !s.worker) return s;
    const id = randomUUID().slice(0, 8);
    const slot: Slot = { id, key: want.key, dir: path.join(this.opts.config.stateDir, "workers", this.opts.config.label, want.profile.name, id), worker: null };
    this.slots.set(id, slot);
    return slot;
  }

  /** A slot known from a stored route (the broker restarted): its directory is still on disk. */
  private adoptSlot(want: Want): Slot {
    const id = want.slotId!;
    const slot: Slot = { id, key: want.key, dir: path.join(this.opts.config.stateDir, "workers", this.opts.config.label, want.profile.name, id), worker: null };
    this.slots.set(id, slot);
    return slot;
  }

  private startWorker(want: Want, slot: Slot, ahead = false): Worker {
    const { profile, workspace, sandbox, network, allow } = want;
    if (ahead) this.starts.ahead++;
    else this.starts.onDemand++;
    const user = workerUser(workspace);
    const cmd = [...CODEX_PROTOCOLS[profile.protocol].cmd];
    const container = new WorkerContainer({
      docker: this.opts.docker,
      logger: this.logger,
      instanceLabel: this.opts.config.label,
      channel: this.opts.config.channel,
      session: this.session,
      profile,
      workspace,
      sandbox,
      slotId: slot.id,
      codexHomeDir: slot.dir,
      cmd,
      extraLabels: this.opts.extraLabels,
      user,
      network,
      dockerNetwork: profile.docker_network,
    });
    const worker: Worker = {
      key: want.key,
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
    slot.worker = worker;
    this.workers.add(worker);
    worker.ready = this.bringUp(worker, user);
    worker.ready.then(
      () => this.warmFailures.delete(want.key),
      (e: unknown) => {
        this.logger.error("worker failed to start", { container: container.name, error: describeError(e) });
        if (this.warmKeys.has(want.key)) {
          const count = (this.warmFailures.get(want.key)?.count ?? 0) + 1;
          this.warmFailures.set(want.key, { count, retryAt: Date.now() + Math.min(60_000, 5_000 * 2 ** (count - 1)) });
        }
        void this.removeWorker(worker, "failed to start");
      },
    );
    return worker;
  }

  private async bringUp(worker: Worker, user: { uid: number; gid: number }): Promise<void> {
    const { profile, slot, container } = worker;
    const began = performance.now();
    const seeder = this.seeder!;
    // The container's own relay token is all it gets: the sentinel in its auth.json (or, for a
    // ChatGPT login over app-server, the placeholder access token pushed to it).
    const grant = this.relay!.grant({
      container: container.name,
      upstream: this.upstreams.get(profile.name)!,
      ...(seeder.kind === "chatgpt" ? { token: chatgptRelayToken(randomUUID(), this.planType) } : {}),
      egress: worker.network === "allowlist" ? { allow: worker.allow } : undefined,
      onUsage: (u) => this.onUsage(worker, u),
      admit: (threadId) => (threadId ? (worker.budgets.get(threadId)?.refusal() ?? null) : null),
      onRefused: (r) => worker.listeners.forEach((tell) => tell(r)),
    });
    worker.grant = grant;
    const protocol = CODEX_PROTOCOLS[profile.protocol];
    const pushed = seeder.kind === "chatgpt" && protocol.pushesChatgptTokens;
    const auth = pushed ? null : sentinelAuth(seeder.kind, grant.token, this.planType);
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
    await container.start();
    worker.relay = new RelayLink({
      docker: this.opts.docker,
      relay: this.relay!,
      grant,
      containerId: container.id,
      container: container.name,
      logger: this.logger,
      egress: worker.network === "allowlist",
      alive: () => !worker.dead && !worker.removing,
      socket: (this.opts.relayChannel ?? (this.opts.docker.local ? "socket" : "stdio")) === "socket" ? { dir: slot.dir, mountedAt: CONTAINER_PATHS.codexHome, user } : undefined,
    });
    await worker.relay.open();
    const streams = container.streams!;
    const placeholder = { accessToken: grant.token, accountId: PLACEHOLDER_ACCOUNT, planType: this.planType };
    const driver: CodexDriver = protocol.driver({
      name: container.name,
      docker: this.opts.docker,
      containerId: () => container.id,
      streams,
      exited: container.exited,
      tokens: pushed ? { current: () => Promise.resolve(placeholder), subscribe: () => () => {} } : undefined,
    });
    void container.exited.then((exit) => this.onWorkerExit(worker, exit.reason));
    const timeoutMs = this.opts.startTimeoutMs ?? 60_000;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      driver.open(),
      container.exited.then((e) => Promise.reject(new WrapperError("WORKER_EXITED", `${e.reason}${e.stderrTail ? `; last stderr lines:\n${e.stderrTail}` : ""}`))),
      new Promise((_, reject) => (timer = setTimeout(() => reject(new WrapperError("WORKER_TIMEOUT", `Codex in ${container.name} did not answer within ${timeoutMs} ms`)), timeoutMs))),
    ]).finally(() => clearTimeout(timer));
    worker.driver = driver;
    this.opts.onContainerReady?.({ name: container.name, profile: profile.name, ms: performance.now() - began });
  }

  private onWorkerExit(worker: Worker, reason: string): void {
    if (worker.dead) return;
    worker.dead = true;
    if (worker.slot.worker === worker) worker.slot.worker = null;
    this.workers.delete(worker);
    this.maxInFlightSeen.delete(worker.container.name);
    // The link revokes the container's token; a worker that failed before it had one, directly.
    if (worker.relay) worker.relay.close();
    else if (worker.grant) this.relay?.revoke(worker.grant);
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
    let nextRetry = Infinity;
    for (const want of this.warmKeys.values()) {
      const live = this.liveWorkers(want.profile.name);
      let have = live.filter((w) => w.key === want.key).length;
      let room = want.profile.max_containers - live.length;
      if (have >= want.profile.warm || room <= 0) continue;
      const failed = this.warmFailures.get(want.key);
      if (failed && failed.retryAt > now) {
        nextRetry = Math.min(nextRetry, failed.retryAt);
        continue;
      }
      while (have < want.profile.warm && room > 0) {
        this.startWorker(want, this.freeSlot(want), true);
        have++;
        room--;
      }
    }
    if (nextRetry !== Infinity && !this.warmTimer) {
      this.warmTimer = setTimeout(() => {
        this.warmTimer = undefined;
        this.topUpWarm();
      }, nextRetry - now);
      this.warmTimer.unref();
    }
  }

  /** Whether removing this idle worker would take its key below the warm floor. */
  private holdsWarmFloor(w: Worker): boolean {
    if (!this.warmKeys.has(w.key)) return false;
    return this.liveWorkers(w.profile.name).filter((o) => o.key === w.key).length <= w.profile.warm;
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
  }

  /** The relay metered an answer on this worker's container: counted to the thread it named. */
  private onUsage(worker: Worker, u: Usage): void {
    const key = u.threadId ?? "";
    const seen = worker.usageByThread.get(key);
    worker.usageByThread.set(key, { usage: addUsage(seen?.usage ?? ZERO_USAGE, u), model: u.model ?? seen?.model ?? null });
    if (u.threadId) worker.budgets.get(u.threadId)?.spend(u);
  }

  /** Notes for a turn in which `killed` commands died of SIGKILL, if the kernel's OOM killer did it. */
  private async oomNotes(worker: Worker, killed: number): Promise<string[]> {
    const total = await worker.container.oomKills();
    if (total === null || total <= worker.oomKillsSeen) return [];
    const n = total - worker.oomKillsSeen;
    worker.oomKillsSeen = total;
    const limit = Math.round(worker.profile.memory / 1024 / 1024);
    return [`out of memory: the kernel killed ${n} process${n > 1 ? "es" : ""} in container ${worker.container.name} for exceeding its memory limit (${limit} MiB; workers.memory), and ${killed} command${killed > 1 ? "s" : ""} of this turn ended by SIGKILL (exit code 137)`];
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
    await this.removeUnheld(true).then(
      (names) => names.length && this.logger.warn("removed containers no worker held", { names }),
      () => {}, // the engine is away: next round
    );
    for (const w of [...this.workers]) {
      if (w.dead || w.removing || !w.driver) continue;
      const idle = w.lanes.every((b) => !b);
      if (idle && now - w.lastUsed > w.profile.idle_timeout && !this.holdsWarmFloor(w)) {
        void this.removeWorker(w, `idle for ${Math.round((now - w.lastUsed) / 1000)} s`);
        continue;
      }
      try {
        const state = await this.opts.docker.inspect(w.container.id);
        if (!state || !state.running) {
          // The container's exit watcher reports a death with its exit code and stderr; the probe
          // only steps in if that report does not come.
          void Promise.race([w.container.exited, new Promise((r) => setTimeout(r, 5000))]).then(() => {
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
      profile: w.profile.name,
      workspace: w.workspace,
      sandbox: w.sandbox,
      inFlight: w.lanes.filter(Boolean).length,
      capacity: w.lanes.length,
      state: w.dead ? ("dead" as const) : w.driver ? ("ready" as const) : ("starting" as const),
      warm: w.ahead,
      turns: w.turns,
    }));
    return {
      containers,
      queued: [...this.queues.values()].reduce((n, q) => n + q.length, 0),
      inFlight: containers.reduce((n, c) => n + c.inFlight, 0),
      starts: { ...this.starts },
      relay: this.relay ? { ...this.relay.stats } : { requests: 0, refused: 0, budgetRefused: 0 },
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
    await Promise.all([...this.workers].map((w) => this.removeWorker(w, "shutdown")));
    this.seeder?.close();
    this.ownTokens?.stop();
    this.relay?.close();
    await this.rehearsal?.close();
  }
}

/** One note per refused target: what was refused, why, and how often. */
function refusalNotes(refusals: EgressRefusal[]): string[] {
  const byTarget = new Map<string, { reason: string; count: number }>();
  for (const r of refusals) {
    const seen = byTarget.get(r.target);
    if (seen) seen.count++;
    else byTarget.set(r.target, { reason: r.reason, count: 1 });
  }
  return [...byTarget].map(([target, { reason, count }]) => `egress refused: ${target}${count > 1 ? ` (${count} times)` : ""}: ${reason}`);
}
