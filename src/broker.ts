// The broker: one state store, one worker pool and one mission runner for the instance, shared
// by every client session and transport. Marks missions a dead broker left running as
// interrupted, restores conversation routes, and reaps its own orphan containers at start.
import type { WrapperConfig } from "./config/schema.js";
import { silentLogger, type Logger } from "./log.js";
import { BrokerMetrics } from "./metrics/metrics.js";
import { MissionRunner } from "./mission/runner.js";
import { DockerRuntime } from "./runtime/docker.js";
import { StateStore } from "./state/store.js";
import { VERSION } from "./version.js";
import { WorkerPool } from "./pool/pool.js";

export class Broker {
  readonly store: StateStore;
  readonly pool: WorkerPool;
  readonly runner: MissionRunner;
  readonly metrics: BrokerMetrics;
  readonly startedAt = Date.now();

  constructor(
    readonly config: WrapperConfig,
    readonly logger: Logger = silentLogger,
    readonly docker = new DockerRuntime({ callTimeoutMs: config.dockerTimeoutMs }),
  ) {
    this.store = new StateStore(config.stateDir);
    this.store.onEventsLost = (file, count, error) => logger.warn("cannot append task events", { file, count, error: error.message });
    this.metrics = new BrokerMetrics({
      label: config.label,
      channel: config.channel,
      version: VERSION,
      pool: () => this.pool.stats(),
      activeTasks: () => this.runner.activeTasks(),
      repliesWaiting: () => this.runner.repliesWaiting(),
    });
    this.pool = new WorkerPool({
      config,
      docker,
      logger,
      routes: this.store.loadRoutes(),
      onRoute: (r) => {
        // An isolated conversation that ended took its copy along: its baseline here goes too.
        if (r.lost) this.runner.forgetCopy(r.id);
        return this.store.saveRoute(r);
      },
      onContainerReady: (info) => this.metrics.containerReady(info),
    });
    this.runner = new MissionRunner(this.pool, this.store, logger, {
      taskFinished: (rec) => this.metrics.taskFinished(rec),
      missionFinished: (rec) => this.metrics.missionFinished(rec),
    });
  }

  async start(): Promise<void> {
    const interrupted = this.store.markInterrupted();
    if (interrupted.length) this.logger.warn("missions left running by an earlier broker are marked interrupted", { missions: interrupted });
    const { reaped } = await this.pool.start();
    this.logger.info("broker started", { label: this.config.label, channel: this.config.channel, version: VERSION, reaped: reaped.length });
    if (this.config.rehearsal) this.logger.warn(this.config.rehearsal.notice, { rehearsal: true });
  }

  /** What /healthz says. */
  async health(): Promise<Record<string, unknown>> {
    let docker: string;
    try {
      docker = `ok (${(await this.docker.ping()).version})`;
    } catch (e) {
      docker = `unreachable: ${(e as Error).message}`;
    }
    const s = this.pool.stats();
    return {
      label: this.config.label,
      channel: this.config.channel,
      version: VERSION,
      uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000),
      docker,
      workers: { containers: s.containers.length, inFlight: s.inFlight, queued: s.queued },
      // Each engine workers run on, up or down. Only that: /healthz is open without a token, so hosts
      // and reasons are on the status page and in doctor.
      engines: Object.fromEntries(s.engines.map((e) => [e.name, e.state])),
      // Only in rehearsal mode: the answers are scripted, no OpenAI call is made.
      ...(this.config.rehearsal ? { rehearsal: this.config.rehearsal.notice } : {}),
    };
  }

  async stop(): Promise<void> {
    this.runner.cancelAll();
    await this.pool.shutdown();
    this.runner.dropCopies();
    this.store.closeEventFiles();
    this.metrics.close();
  }
}
