// The broker's Prometheus metrics (served at /metrics): tasks by status, task durations,
// containers by state, container start latency, queue length, plus Node's process metrics.
// Counters and histograms are fed by the runner, the pool and the MCP server; gauges are read at
// scrape time.
// The process metrics are the standard few and the event loop's delay (prom-client's defaults
// add gauges named *_total, which Prometheus's own linter rejects), so the exposition passes
// `promtool check metrics`.
import { monitorEventLoopDelay } from "node:perf_hooks";
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
  private readonly toolCalls: Histogram<"tool" | "outcome">;
  private readonly loopDelay: LoopDelay;

  /** opts.loopCheckMs: how often to look whether the broker has work (tests shorten it). */
  constructor(src: MetricsSources, opts: { loopCheckMs?: number } = {}) {
    const registers = [this.registry];
    processMetrics(registers);
    this.loopDelay = eventLoopLag(registers, () => hasWork(src), opts.loopCheckMs ?? 1000);
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
    this.toolCalls = new Histogram({
      name: "codex_wrapper_mcp_tool_call_seconds",
      help: "MCP tool calls, from the broker reading the call to its result (a batch that waits included), by tool and outcome: ok, error (a result with isError), protocol_error",
      labelNames: ["tool", "outcome"],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30, 300, 1800],
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

  /** One MCP tool call the server answered (tool: one of the server's tools). */
  toolCall(tool: string, outcome: "ok" | "error" | "protocol_error", seconds: number): void {
    this.toolCalls.observe({ tool, outcome }, seconds);
  }

  /** Whether the event loop's delay is being sampled now (only while the broker has work). */
  get sampling(): boolean {
    return this.loopDelay.sampling;
  }

  /** Stops sampling the event loop (the broker has stopped). */
  close(): void {
    this.loopDelay.close();
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

/** Whether the broker has work: a turn queued or running, a mission running, a reply waiting, a container starting. */
function hasWork(src: MetricsSources): boolean {
  const pool = src.pool();
  if (pool.inFlight > 0 || pool.queued > 0 || src.repliesWaiting() > 0) return true;
  if (Object.values(src.activeTasks()).some((n) => n > 0)) return true;
  return pool.containers.some((c) => c.state === "starting");
}

interface LoopDelay {
  readonly sampling: boolean;
  close(): void;
}

/**
 * How late the main thread's event loop ran a timer, the way prom-client's default metrics name
 * it: the median, the 99th percentile and the largest delay since the last scrape (or since the
 * broker started). A request waits that long before the broker reads it, whether the loop was busy
 * or the process was waiting for a CPU. Sampled every 20 ms while the broker has work: the sampler
 * wakes the main thread 50 times a second, which an idle broker otherwise does about 4 times
 * (docs/performance.md). Whether there is work is looked at every `checkMs`; a window with no
 * sample reads 0.
 */
function eventLoopLag(registers: Registry[], busy: () => boolean, checkMs: number): LoopDelay {
  const resolutionMs = 20;
  const delay = monitorEventLoopDelay({ resolution: resolutionMs });
  let sampling = false;
  const check = (): void => {
    const want = busy();
    if (want === sampling) return;
    sampling = want;
    if (want) delay.enable();
    else delay.disable();
  };
  // Not looked at now: the broker builds its pool and runner, the sources, after its metrics.
  const checker = setInterval(check, checkMs);
  checker.unref();
  // Node records the time between two runs of its sampling timer, the timer's own interval
  // included (an idle loop reads 20 ms): what is over the interval is the delay.
  const seconds = (ns: number): number => Math.max(0, ns / 1e6 - resolutionMs) / 1000;
  const p50 = new Gauge({
    name: "nodejs_eventloop_lag_p50_seconds",
    help: "The median delay of the event loop since the last scrape, in seconds (sampled while the broker has work)",
    registers: [],
    collect() {
      // A window with no sample yet reads as 0, not as the histogram's placeholder values.
      const seen = delay.count > 0;
      this.set(seen ? seconds(delay.percentile(50)) : 0);
      p99.set(seen ? seconds(delay.percentile(99)) : 0);
      max.set(seen ? seconds(delay.max) : 0);
      delay.reset();
    },
  });
  const p99 = new Gauge({ name: "nodejs_eventloop_lag_p99_seconds", help: "The 99th percentile of the event loop's delay since the last scrape, in seconds (sampled while the broker has work)", registers: [] });
  const max = new Gauge({ name: "nodejs_eventloop_lag_max_seconds", help: "The largest delay of the event loop since the last scrape, in seconds (sampled while the broker has work)", registers: [] });
  // p50 first: its collect, which sets the other two and starts a new window, runs before they are read.
  for (const r of registers) for (const g of [p50, p99, max]) r.registerMetric(g);
  return {
    get sampling() {
      return sampling;
    },
    close() {
      clearInterval(checker);
      sampling = false;
      delay.disable();
    },
  };
}
