// The broker's Prometheus metrics (served at /metrics): tasks by status, task durations,
// containers by state, container start latency, queue length, plus Node's process metrics.
// Counters and histograms are fed by the runner and the pool; gauges are read at scrape time.
// The process metrics are the standard few (prom-client's defaults add gauges named *_total,
// which Prometheus's own linter rejects), so the exposition passes `promtool check metrics`.
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { MissionRecord, TaskRecord } from "../state/store.js";
import type { PoolStats } from "../pool/pool.js";

export interface MetricsSources {
  label: string;
  channel: string;
  version: string;
  pool: () => PoolStats;
  /** Tasks of running missions by their current status (queued, running). */
  activeTasks: () => Record<string, number>;
  /** Replies waiting for their conversation's earlier turn, or its task, to end. */
  repliesWaiting: () => number;
}

const CONTAINER_STATES = ["starting", "ready", "dead"] as const;

export class BrokerMetrics {
  readonly registry = new Registry();
  private readonly tasks: Counter<"status">;
  private readonly missions: Counter<"status">;
  private readonly tokens: Counter<"profile" | "model" | "kind">;
  private readonly taskDuration: Histogram<"status">;
  private readonly containerStart: Histogram<"profile">;

  constructor(src: MetricsSources) {
    const registers = [this.registry];
    processMetrics(registers);
    new Gauge({ name: "codex_wrapper_info", help: "The instance: label, channel and version (always 1)", labelNames: ["label", "channel", "version"], registers }).set({ label: src.label, channel: src.channel, version: src.version }, 1);
    this.tasks = new Counter({ name: "codex_wrapper_tasks_finished_total", help: "Tasks finished, by final status", labelNames: ["status"], registers });
    this.missions = new Counter({ name: "codex_wrapper_missions_finished_total", help: "Missions finished, by final status", labelNames: ["status"], registers });
    this.tokens = new Counter({
      name: "codex_wrapper_tokens_total",
      help: "Model tokens used by finished tasks, metered at the relay: kind input (cached included), cached (input served from the cache), output (reasoning included)",
      labelNames: ["profile", "model", "kind"],
      registers,
    });
    this.taskDuration = new Histogram({
      name: "codex_wrapper_task_duration_seconds",
      help: "Task duration from start on a worker to its end, by final status",
      labelNames: ["status"],
      buckets: [0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800],
      registers,
    });
    this.containerStart = new Histogram({
      name: "codex_wrapper_container_start_seconds",
      help: "Time from creating a worker container to its Codex answering",
      labelNames: ["profile"],
      buckets: [0.25, 0.5, 1, 2, 3, 5, 10, 20, 60],
      registers,
    });
    new Gauge({
      name: "codex_wrapper_tasks",
      help: "Tasks of running missions, by current status (queued or running)",
      labelNames: ["status"],
      registers,
      collect() {
        const active = src.activeTasks();
        for (const s of ["queued", "running"]) this.set({ status: s }, active[s] ?? 0);
      },
    });
    new Gauge({
      name: "codex_wrapper_containers",
      help: "Worker containers of this instance, by state",
      labelNames: ["state"],
      registers,
      collect() {
        const { containers } = src.pool();
        for (const s of CONTAINER_STATES) this.set({ state: s }, containers.filter((c) => c.state === s).length);
      },
    });
    new Gauge({
      name: "codex_wrapper_spare_containers",
      help: "Spare worker containers (started ahead with an empty workspace volume, no task has taken them yet)",
      registers,
      collect() {
        this.set(src.pool().containers.filter((c) => c.spare && c.state !== "dead").length);
      },
    });
    new Gauge({
      name: "codex_wrapper_engine_up",
      help: "Each Docker engine workers run on: 1 when it answers, 0 when it is down",
      labelNames: ["engine"],
      registers,
      collect() {
        for (const e of src.pool().engines) this.set({ engine: e.name }, e.state === "up" ? 1 : 0);
      },
    });
    new Gauge({
      name: "codex_wrapper_engine_containers",
      help: "This instance's worker containers on each Docker engine",
      labelNames: ["engine"],
      registers,
      collect() {
        for (const e of src.pool().engines) this.set({ engine: e.name }, e.containers);
      },
    });
    new Gauge({
      name: "codex_wrapper_queue_length",
      help: "Turns waiting for a free lane on a worker",
      registers,
      collect() {
        this.set(src.pool().queued);
      },
    });
    new Gauge({
      name: "codex_wrapper_turns_in_flight",
      help: "Codex turns running on workers now",
      registers,
      collect() {
        this.set(src.pool().inFlight);
      },
    });
    new Gauge({
      name: "codex_wrapper_replies_waiting",
      help: "Replies waiting for their conversation's earlier turn, or its task, to end (one turn of a conversation runs at a time)",
      registers,
      collect() {
        this.set(src.repliesWaiting());
      },
    });
    new Counter({
      name: "codex_wrapper_model_calls_total",
      help: "Model calls the relay forwarded upstream",
      registers,
      collect() {
        this.reset();
        this.inc(src.pool().relay.requests);
      },
    });
    new Counter({
      name: "codex_wrapper_budget_refusals_total",
      help: "Model calls the relay refused because the task's or its mission's token budget (max_tokens) was spent",
      registers,
      collect() {
        this.reset();
        this.inc(src.pool().relay.budgetRefused);
      },
    });
    new Counter({
      name: "codex_wrapper_threads_total",
      help: "New Codex threads (app-server), by how they began: taken from those started ahead (ahead), or started on the task's path (fresh)",
      labelNames: ["start"],
      registers,
      collect() {
        this.reset();
        const t = src.pool().threads;
        this.inc({ start: "ahead" }, t.takenAhead);
        this.inc({ start: "fresh" }, t.startedFresh);
      },
    });
    new Counter({
      name: "codex_wrapper_threads_unloaded_total",
      help: "Codex threads (app-server) unloaded once they were no longer among the most recently used of their container; a reply to one resumes it",
      registers,
      collect() {
        this.reset();
        this.inc(src.pool().threads.unloaded);
      },
    });
    new Gauge({
      name: "codex_wrapper_capacity",
      help: "Lanes (concurrent turns) of the live worker containers",
      registers,
      collect() {
        this.set(src.pool().containers.reduce((n, c) => n + c.capacity, 0));
      },
    });
  }

  taskFinished(rec: TaskRecord): void {
    this.tasks.inc({ status: rec.status });
    const u = rec.usage;
    if (u) {
      const labels = { profile: u.profile, model: u.model ?? "unknown" };
      this.tokens.inc({ ...labels, kind: "input" }, u.inputTokens);
      this.tokens.inc({ ...labels, kind: "cached" }, u.cachedInputTokens);
      this.tokens.inc({ ...labels, kind: "output" }, u.outputTokens);
    }
    if (rec.startedAt && rec.finishedAt) this.taskDuration.observe({ status: rec.status }, Math.max(0, Date.parse(rec.finishedAt) - Date.parse(rec.startedAt)) / 1000);
  }

  missionFinished(rec: MissionRecord): void {
    this.missions.inc({ status: rec.status });
  }

  containerReady(info: { profile: string; ms: number }): void {
    this.containerStart.observe({ profile: info.profile }, info.ms / 1000);
  }

  /** The Prometheus text exposition. */
  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}

/** process_* as Prometheus's client libraries name them: memory, CPU time, start time. */
function processMetrics(registers: Registry[]): void {
  const startSeconds = Math.round(Date.now() / 1000 - process.uptime());
  new Gauge({ name: "process_resident_memory_bytes", help: "Resident memory size in bytes", registers, collect() {
    this.set(process.memoryUsage().rss);
  } });
  new Gauge({ name: "process_heap_bytes", help: "V8 heap in use, in bytes", registers, collect() {
    this.set(process.memoryUsage().heapUsed);
  } });
  new Gauge({ name: "process_start_time_seconds", help: "Start time of the process since the Unix epoch, in seconds", registers }).set(startSeconds);
  new Counter({ name: "process_cpu_seconds_total", help: "User and system CPU time spent, in seconds", registers, collect() {
    const { user, system } = process.cpuUsage();
    this.reset();
    this.inc((user + system) / 1e6);
  } });
}
