// Runs a mission: its tasks go to the pool concurrently (bounded by capacity), each as one Codex
// turn with the task's settings (task → mission defaults → worker profile). Each task's events go
// to its JSONL log, its record is updated as it runs, and its artifacts are collected at the end.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { applyPatch, changesFrom, packCopy, snapshot, type Baseline, type Changes } from "../artifacts/changes.js";
import { collectArtifacts, packArtifacts, packZip, readInside, storeArtifact } from "../artifacts/collect.js";
import { outcomeCode, type Approver, type DriverEvent } from "../codex/driver.js";
import { describeError, errorCodeOf, MissionError } from "../errors.js";
import { silentLogger, type Logger } from "../log.js";
import { addUsage, type TaskUsage } from "../relay/usage.js";
import type { AttemptRecord, MissionRecord, MissionStatus, StateStore, TaskRecord } from "../state/store.js";
import { taskCounts, taskErrorCode, type TaskCounts } from "../state/record.js";
import type { PoolTurnRequest, PoolTurnResult, WorkerPool } from "../pool/pool.js";
import { TaskBudget, TokenBudget } from "./budget.js";
import { TaskEventLog } from "./event-log.js";
import { checkFailure, checkLogSection, checkRecord, DEFAULT_CHECK_TIMEOUT_MS, retryPrompt } from "./check.js";
import { resolveWorkspace } from "../worker/workspace.js";
import { workspaceModeOf } from "./load.js";
import { TurnQueue } from "./turn-queue.js";
import type { Mission, Task } from "./schema.js";

/** What the runner reports while a mission runs (MCP progress, the CLI's lines). */
export type ProgressEvent =
  | { kind: "task_started"; taskId: string; container: string }
  | { kind: "command"; taskId: string; command: string }
  | { kind: "agent_message"; taskId: string; text: string }
  /** A task's check started after its turn. */
  | { kind: "check"; taskId: string; command: string; attempt: number; of: number }
  /** A task's check failed and its conversation goes back to Codex: attempt `attempt` of `of`. */
  | { kind: "attempt"; taskId: string; attempt: number; of: number; reason: string }
  | { kind: "task_finished"; taskId: string; record: TaskRecord };

export interface RunOptions {
  /** Overrides the mission's workspace. */
  workspace?: string | undefined;
  onProgress?: (e: ProgressEvent) => void;
  /** Overrides the mission's bundle format. */
  bundle?: "tar.gz" | "zip" | "both" | undefined;
  /** Who answers the approvals Codex asks for (the MCP client that started the mission); none: declined. */
  approve?: ((taskId: string) => Approver | undefined) | undefined;
}

interface Running {
  record: MissionRecord;
  controllers: Map<string, AbortController>;
  done: Promise<MissionRecord>;
}

/** What a task of a running mission shares with its mission. */
interface TaskContext {
  mission: Mission;
  mrec: MissionRecord;
  workspace: string;
  /** Records a change of `rec` (a task) or, without it, of the mission: see start(). */
  save: (now?: boolean, rec?: TaskRecord) => Promise<void>;
  onProgress: RunOptions["onProgress"];
  /** The mission's max_tokens, if it has one. */
  budget: TokenBudget | undefined;
  /** Cancels the mission's other tasks: its budget is spent. */
  budgetSpent: (by: string, b: TokenBudget) => void;
  /** Why the runner cancelled a task, when it did (the mission's budget). */
  cancelledFor: Map<string, string>;
  approve: RunOptions["approve"];
}

/** How long a record change that is not a task's end may wait to be written with others. */
const SAVE_DELAY_MS = 100;

/** Observers of finished tasks and missions (metrics). */
export interface RunnerHooks {
  taskFinished?: (rec: TaskRecord) => void;
  missionFinished?: (rec: MissionRecord) => void;
}

export class MissionRunner {
  private readonly running = new Map<string, Running>();
  /** Patches being applied, by workspace: one at a time, so each is checked against the last one's result. */
  private readonly applying = new Map<string, Promise<unknown>>();
  /** Isolated conversations whose copy lives on, by conversation, oldest first: a reply's changes come back from each. */
  private readonly copies = new Map<string, KeptCopy>();
  /** Each conversation's turns, one at a time in the order asked: replies, and a task's whole run once its first turn ends (held). */
  private readonly turns = new TurnQueue();
  private readonly logger: Logger;

  constructor(
    private readonly pool: WorkerPool,
    private readonly store: StateStore,
    logger?: Logger,
    private readonly hooks: RunnerHooks = {},
  ) {
    this.logger = logger ?? silentLogger;
  }

  private keepCopy(conversationId: string, copy: KeptCopy): void {
    this.copies.set(conversationId, copy);
    for (const [id, old] of this.copies) {
      if (this.copies.size <= MAX_KEPT_COPIES) break;
      this.forgetCopy(id, old);
      this.overflowed.add(id);
      if (this.overflowed.size > 10 * MAX_KEPT_COPIES) this.overflowed.delete(this.overflowed.values().next().value!);
    }
  }

  /** Conversations whose baseline went for a newer one's (MAX_KEPT_COPIES): a reply says its changes stay in the copy. */
  private readonly overflowed = new Set<string>();

  /** An isolated conversation's copy is gone (its container and volume removed): so is its baseline here. */
  forgetCopy(conversationId: string, copy = this.copies.get(conversationId)): void {
    if (!copy) return;
    this.copies.delete(conversationId);
    rmSync(copy.baseline.workDir, { recursive: true, force: true });
  }

  /** Removes every kept baseline (the broker stops: the copies go with their containers). */
  dropCopies(): void {
    for (const id of [...this.copies.keys()]) this.forgetCopy(id);
  }

  /**
   * A reply: the conversation's next turn (pool.runTurn). On an isolated conversation whose copy
   * the broker still holds, the copy is read back after the turn and what the turn changed comes
   * back as its task's did: the changed files and changes.patch (from the tree the previous turn
   * left), stored among its task's artifacts under replies/<n>/, and applied to the workspace when
   * the task's apply was set (cleanly, or not at all: patch_not_applied). It runs once the
   * conversation's earlier turn (or its task) has ended; `onWait` is told at once if it must wait.
   */
  async reply(req: PoolTurnRequest & { conversationId: string; onWait?: () => void }): Promise<ReplyResult> {
    const cancelled = (): ReplyResult => ({ result: cancelledWaiting(req.conversationId), artifacts: [], notes: [] });
    return this.turns.run(req.conversationId, req.signal, async (waitedMs) => {
      const out = await this.replyNow(req);
      if (waitedMs > 0) out.notes.unshift(waitedNote(waitedMs));
      return out;
    }, cancelled, req.onWait);
  }

  private async replyNow(req: PoolTurnRequest & { conversationId: string }): Promise<ReplyResult> {
    const copy = this.copies.get(req.conversationId);
    // Held until read back: an idle or evicted container would take the copy with it.
    if (copy) this.pool.pin(req.conversationId);
    let result: PoolTurnResult;
    try {
      result = await this.pool.runTurn(req);
    } catch (e) {
      if (copy) this.pool.unpin(req.conversationId);
      throw e;
    }
    const out: ReplyResult = { result, artifacts: [], notes: [] };
    if (!copy) {
      if (this.overflowed.has(req.conversationId) && result.outcome.status !== "lost") out.notes.push(`isolated: this reply's changes stay in its copy and are not returned (the broker keeps the baselines of the last ${MAX_KEPT_COPIES} isolated conversations only)`);
      return out;
    }
    if (result.outcome.status === "lost") {
      this.forgetCopy(req.conversationId, copy);
      return out;
    }
    // One read-back of a copy at a time: each diffs from the tree the one before it left.
    const prior = copy.reading;
    let done = (): void => {};
    copy.reading = new Promise<void>((r) => (done = r));
    await prior;
    const n = ++copy.replies;
    const target: ChangeTarget = { artifacts: [], notes: [], status: result.outcome.status, error: result.outcome.error };
    const dir = path.join(this.store.missionDir(copy.missionId), "artifacts", copy.taskId, "replies", String(n));
    try {
      const b = copy.baseline;
      const changes = await this.pool.readIsolated(req.conversationId, (tar) => changesFrom(b, tar));
      b.tree = changes.after;
      try {
        await this.storeChanges(changes, target, dir, copy.workspace, copy.apply, () => {});
      } finally {
        rmSync(changes.resultDir, { recursive: true, force: true });
      }
    } catch (e) {
      target.notes = [...(target.notes ?? []), `isolated: this reply's changes could not be read back from its copy: ${describeError(e)}`];
    } finally {
      this.pool.unpin(req.conversationId);
      done();
    }
    out.task = { missionId: copy.missionId, taskId: copy.taskId };
    out.artifacts = target.artifacts.map((a) => ({ ...a, path: `replies/${n}/${a.path}` }));
    out.notes = (target.notes ?? []).map((x) => x.replace(/^isolated: /, `isolated (reply ${n}): `));
    if (target.errorCode === "patch_not_applied") out.patchRefused = target.error ?? "its changes do not apply cleanly";
    if (out.artifacts.length) {
      try {
        await this.addArtifacts(copy.missionId, copy.taskId, out.artifacts);
      } catch (e) {
        out.notes.push(`its artifacts could not be added to task ${copy.taskId}'s record: ${describeError(e)}`);
      }
    }
    return out;
  }

  /** Adds artifacts to a task's record, so that they are resources of the mission like its own. */
  private async addArtifacts(missionId: string, taskId: string, entries: TaskRecord["artifacts"]): Promise<void> {
    const live = this.running.get(missionId)?.record;
    const rec = live ?? this.store.readMission(missionId, true);
    const task = rec.tasks.find((t) => t.id === taskId);
    if (!task) return;
    task.artifacts = [...task.artifacts.filter((a) => !entries.some((e) => e.path === a.path)), ...entries];
    rec.updatedAt = new Date().toISOString();
    if (live) await this.store.appendTasks(missionId, rec.updatedAt, [task]);
    else await this.store.saveMissionAsync(rec);
  }

  /** Replies waiting now for their conversation's earlier turn, or its task, to end. */
  repliesWaiting(): number {
    return this.turns.waiting;
  }

  /** Tasks of running missions by current status (queued, running, or finished ones). */
  activeTasks(): TaskCounts {
    return taskCounts([...this.running.values()].flatMap(({ record }) => record.tasks));
  }

  /** Validates the workspace, records the mission and starts it; `done` resolves with the final record. */
  start(mission: Mission, opts: RunOptions = {}): { missionId: string; done: Promise<MissionRecord> } {
    const requested = opts.workspace ?? mission.workspace;
    if (!requested) throw new MissionError("MISSION_INVALID", "workspace: no workspace given; pass --workspace (or the batch workspace argument) or set it in the mission");
    const workspace = resolveWorkspace(requested, this.pool.config.allowedWorkspaceRoots);
    const now = new Date().toISOString();
    const record: MissionRecord = {
      missionId: this.store.newMissionId(),
      name: mission.name,
      status: "running",
      workspace,
      createdAt: now,
      updatedAt: now,
      finishedAt: null,
      bundle: null,
      tasks: mission.tasks.map((t) => ({ id: t.id, status: "queued", conversationId: null, finalMessage: null, error: null, container: null, startedAt: null, finishedAt: null, artifacts: [] })),
    };
    this.store.createMission(record, mission);
    const controllers = new Map(mission.tasks.map((t) => [t.id, new AbortController()]));
    let saving = Promise.resolve();
    let queued: Promise<void> | null = null;
    let timer: NodeJS.Timeout | undefined;
    /** Tasks changed since the last write; `whole`: the mission itself changed (its end). */
    const changed = new Set<TaskRecord>();
    let whole = false;
    // Record writes are serialized, and each writes the latest state of what changed: the changed
    // tasks appended to the mission's task log (store.appendTasks), or at the mission's end the
    // whole record. A task's end (and the mission's) is written before it is reported:
    // save(true). Other changes (a task started) are written within SAVE_DELAY_MS, together: a
    // 200-task mission changes its record hundreds of times, and each write is an fsync.
    const save = (now = false, rec?: TaskRecord): Promise<void> => {
      record.updatedAt = new Date().toISOString();
      if (rec) changed.add(rec);
      else whole = true;
      if (!now) {
        timer ??= setTimeout(() => void write(), SAVE_DELAY_MS);
        return saving;
      }
      return write();
    };
    const write = (): Promise<void> => {
      if (queued) return queued; // a write not begun yet: it will carry this change too
      queued = saving
        .then(() => {
          clearTimeout(timer);
          timer = undefined;
          queued = null;
          const tasks = [...changed];
          changed.clear();
          // A write that fails leaves its changes to the next one (the whole record, or appended again).
          if (whole) {
            whole = false;
            return this.store.saveMissionAsync(record).catch((e: unknown) => {
              whole = true;
              throw e;
            });
          }
          if (!tasks.length) return;
          return this.store.appendTasks(record.missionId, record.updatedAt, tasks).catch((e: unknown) => {
            for (const t of tasks) changed.add(t);
            throw e;
          });
        })
        .catch((e: unknown) => this.logger.error("cannot save a mission record", { missionId: record.missionId, error: describeError(e) }));
      saving = queued;
      return queued;
    };
    const cancelledFor = new Map<string, string>();
    const ctx: TaskContext = {
      mission,
      mrec: record,
      workspace,
      save,
      onProgress: opts.onProgress,
      budget: mission.max_tokens ? new TokenBudget("the mission's max_tokens", mission.max_tokens) : undefined,
      cancelledFor,
      approve: opts.approve,
      budgetSpent: (by, b) => {
        const why = `cancelled: ${b.describe()} (its last answer was task ${by}'s)`;
        this.logger.warn("a mission's token budget is spent: cancelling its other tasks", { missionId: record.missionId, used: b.used, limit: b.limit });
        for (const t of record.tasks) {
          if (t.id === by || t.status !== "queued" && t.status !== "running") continue;
          cancelledFor.set(t.id, why);
          controllers.get(t.id)?.abort();
        }
      },
    };
    const done = (async () => {
      await Promise.all(mission.tasks.map((task, i) => this.runTaskHeld(ctx, task, record.tasks[i]!, controllers.get(task.id)!.signal)));
      try {
        const manifest = Object.fromEntries(record.tasks.map((t) => [t.id, t.artifacts]));
        if (record.tasks.some((t) => t.artifacts.length)) {
          const dir = path.join(this.store.missionDir(record.missionId), "artifacts");
          const format = opts.bundle ?? mission.bundle ?? "tar.gz";
          const tarball = await packArtifacts(dir, manifest);
          record.bundle = format === "zip" ? null : tarball;
          if (format !== "tar.gz") record.bundleZip = await packZip(dir);
        }
      } catch (e) {
        this.logger.error("cannot pack the artifacts", { missionId: record.missionId, error: describeError(e) });
      }
      record.status = missionStatus(record);
      record.finishedAt = new Date().toISOString();
      await save(true);
      this.running.delete(record.missionId);
      this.hooks.missionFinished?.(record);
      return record;
    })();
    this.running.set(record.missionId, { record, controllers, done });
    return { missionId: record.missionId, done };
  }

  /**
   * A task holds its conversation, once its first turn has made one, until it has ended (its check,
   * later attempts, read-back and record done): a reply sent meanwhile (the client found the
   * conversation in `status`) waits instead of running beside the check or changing the copy before
   * it is read back.
   */
  private async runTaskHeld(ctx: TaskContext, task: Task, rec: TaskRecord, signal: AbortSignal): Promise<void> {
    const held: TaskHold = {};
    try {
      await this.runTask(ctx, task, rec, signal, held);
    } finally {
      held.release?.();
    }
  }

  private async runTask(ctx: TaskContext, task: Task, rec: TaskRecord, signal: AbortSignal, held: TaskHold): Promise<void> {
    const { mission, mrec, workspace, save, onProgress } = ctx;
    const d = mission.defaults ?? {};
    const log = (e: unknown): void => {
      try {
        this.store.appendEvent(mrec.missionId, task.id, e);
      } catch (err) {
        this.logger.warn("cannot append a task event", { taskId: task.id, error: describeError(err) });
      }
    };
    // Command output within bounds in the log (docs/missions.md, "Results and state").
    const events = new TaskEventLog(log);
    const onEvent = (e: DriverEvent): void => {
      if (e.kind === "raw") events.codex(e.message);
      else events.write({ type: e.kind, ...e });
      if (e.kind === "command_started") onProgress?.({ kind: "command", taskId: task.id, command: e.command });
      if (e.kind === "agent_message") onProgress?.({ kind: "agent_message", taskId: task.id, text: e.text });
    };
    const check = task.check ?? d.check;
    const checkTimeout = task.check_timeout ?? d.check_timeout ?? DEFAULT_CHECK_TIMEOUT_MS;
    const of = check ? (task.attempts ?? d.attempts ?? 1) : 1;
    const maxTokens = task.max_tokens ?? d.max_tokens;
    const budgets = [...(maxTokens ? [new TokenBudget("the task's max_tokens", maxTokens)] : []), ...(ctx.budget ? [ctx.budget] : [])];
    const budget = budgets.length ? new TaskBudget(budgets, (b) => b === ctx.budget && ctx.budgetSpent(task.id, b)) : undefined;
    const env = { ...d.env, ...task.env };
    if (check) {
      rec.maxAttempts = of;
      rec.attempts = [];
    }
    const turn: PoolTurnRequest = {
      profile: task.profile ?? d.profile,
      preferredProfile: task.preferred_worker,
      workspace,
      sandbox: task.sandbox ?? d.sandbox,
      network: task.network ?? d.network,
      allow: task.allow || d.allow ? [...(d.allow ?? []), ...(task.allow ?? [])] : undefined,
      prompt: task.prompt,
      model: task.model ?? d.model,
      baseInstructions: task["base-instructions"] ?? d["base-instructions"],
      developerInstructions: task["developer-instructions"] ?? d["developer-instructions"],
      config: { ...d.config, ...task.config },
      env,
      approvalPolicy: task.approval_policy ?? d.approval_policy,
      approve: ctx.approve?.(task.id),
      approvalTimeoutMs: task.approval_timeout ?? d.approval_timeout,
      timeoutMs: task.timeout ?? d.timeout,
      signal,
      onEvent,
      budget,
      onAssigned: ({ container, engine }) => {
        rec.container = container;
        rec.engine = engine;
        if (rec.status === "running") return; // a later attempt
        rec.status = "running";
        rec.startedAt = new Date().toISOString();
        void save(false, rec);
        log({ type: "task_started", container });
        onProgress?.({ kind: "task_started", taskId: task.id, container });
      },
    };
    const checkLog = { file: "", redacted: 0 };
    const isolated = workspaceModeOf(task, d, this.pool.config.workers) === "isolated";
    let workDir: string | null = null;
    let baseline: Baseline | undefined;
    let changes: Changes | undefined;
    // The copy is made when the pool asks: always for an isolated task, and for a shared one placed
    // on an engine that does not see the workspace (a remote one), which then runs it on a copy too.
    turn.isolated = {
      required: isolated,
      prepare: async () => {
        workDir ??= mkdtempSync(path.join(os.tmpdir(), "cmw-isolated-"));
        baseline ??= await snapshot(workspace, task.copy_ignored ?? d.copy_ignored ?? false, workDir);
        const b = baseline;
        return (user, prefix) => packCopy(b, user, prefix);
      },
    };
    let ranOnCopy = false;
    try {
      if (ctx.budget?.spent) throw new BudgetCancel(`cancelled before it started: ${ctx.budget.describe()}`);
      for (let attempt = 1; ; attempt++) {
        const began = new Date();
        const result = await this.pool.runTurn(turn);
        if (result.conversationId && !held.release) held.release = this.turns.hold(result.conversationId);
        rec.status = result.outcome.status;
        rec.conversationId = result.conversationId ?? rec.conversationId;
        rec.finalMessage = result.outcome.finalMessage;
        rec.error = result.outcome.error;
        // From the error that ended the turn, as it said it (no re-wording on the way).
        const code = result.outcome.status === "succeeded" ? undefined : outcomeCode(result.outcome);
        rec.errorCode = code ? taskErrorCode(code) : undefined;
        rec.container = result.container ?? rec.container;
        if (result.engine) rec.engine = result.engine;
        if (result.isolated) ranOnCopy = true;
        if (result.usage) rec.usage = rec.usage ? sumUsage(rec.usage, result.usage) : result.usage;
        if (result.notes) {
          // Each note once per task (the rehearsal notice comes with every attempt).
          const fresh = result.notes.filter((n) => !rec.notes?.includes(n));
          rec.notes = [...(rec.notes ?? []), ...fresh];
          for (const note of fresh) log({ type: "note", note });
        }
        const a: AttemptRecord = { attempt, turn: result.outcome.status, turnError: result.outcome.error, startedAt: began.toISOString(), finishedAt: "", durationMs: 0, ...(result.usage ? { usage: result.usage } : {}) };
        const done = (): void => {
          a.finishedAt = new Date().toISOString();
          a.durationMs = Date.now() - began.getTime();
          rec.attempts?.push(a);
        };
        const over = budget?.exceeded();
        if (over && !ctx.cancelledFor.has(task.id)) {
          rec.status = "failed";
          rec.errorCode = "budget_exceeded";
          rec.error = `budget_exceeded: ${over.describe()}${budget!.refused ? `; the broker refused ${budget!.refused} further model call(s)` : ""}${rec.error ? ` (the turn: ${rec.error.split("\n")[0]})` : ""}`;
          done();
          break;
        }
        if (!check || rec.status !== "succeeded" || !rec.conversationId) {
          if (check) done();
          break;
        }
        rec.status = "running"; // until the check decides (status shows the conversation meanwhile)
        log({ type: "check_started", attempt, command: check });
        onProgress?.({ kind: "check", taskId: task.id, command: check, attempt, of });
        const r = await this.pool.runCommand(rec.conversationId, { command: check, timeoutMs: checkTimeout, env, signal });
        const c = checkRecord(check, r);
        a.check = c;
        log({ type: "check_finished", attempt, ...c });
        const section = checkLogSection(attempt, c, r, checkTimeout);
        checkLog.file = this.store.appendTaskLog(mrec.missionId, task.id, "check.log", section.data);
        checkLog.redacted += section.redacted;
        done();
        if (r.cancelled || signal.aborted) {
          rec.status = "cancelled";
          rec.errorCode = "cancelled";
          rec.error = "cancelled while its check ran";
          break;
        }
        if (r.exitCode === 0) {
          rec.status = "succeeded";
          break;
        }
        rec.status = "failed";
        rec.errorCode = c.timedOut ? "check_timed_out" : "check_failed";
        rec.error = checkFailure(c, checkTimeout, attempt, of);
        if (attempt >= of) break;
        const reason = c.timedOut ? "check timed out" : `check exited ${c.exitCode ?? "without a code"}`;
        log({ type: "attempt", attempt: attempt + 1, of, reason });
        onProgress?.({ kind: "attempt", taskId: task.id, attempt: attempt + 1, of, reason });
        rec.status = "running";
        rec.errorCode = undefined;
        void save(false, rec);
        turn.conversationId = rec.conversationId;
        turn.prompt = retryPrompt(c, checkTimeout, attempt + 1, of);
      }
    } catch (e) {
      rec.status = signal.aborted || e instanceof BudgetCancel ? "cancelled" : "failed";
      rec.errorCode = taskErrorCode(rec.status === "cancelled" ? "CANCELLED" : errorCodeOf(e));
      rec.error = describeError(e);
    }
    if (baseline && ranOnCopy && rec.conversationId) {
      // The copy comes back after the last attempt (its check ran on the same copy).
      try {
        const b = baseline;
        changes = await this.pool.readIsolated(rec.conversationId, (tar) => changesFrom(b, tar));
      } catch (e) {
        if (rec.status === "succeeded") {
          rec.status = "failed";
          rec.errorCode = "artifacts_failed";
        }
        rec.error = `${rec.error ? `${rec.error}; ` : ""}its isolated copy could not be read back: ${describeError(e)}`;
      } finally {
        this.pool.unpin(rec.conversationId);
      }
    }
    events.close();
    const why = ctx.cancelledFor.get(task.id);
    if (why && (rec.status === "cancelled" || signal.aborted)) {
      rec.status = "cancelled";
      rec.errorCode = "budget_exceeded";
      rec.error = why;
    } else if (rec.errorCode === undefined) delete rec.errorCode;
    rec.startedAt ??= new Date().toISOString();
    rec.finishedAt = new Date().toISOString();
    const globs = task.artifacts ?? d.artifacts ?? [];
    const dir = path.join(this.store.missionDir(mrec.missionId), "artifacts", task.id);
    try {
      // An isolated task's artifacts are files of its own copy, never another task's.
      rec.artifacts = collectArtifacts(changes?.resultDir ?? workspace, globs, dir);
      if (changes) await this.storeChanges(changes, rec, dir, workspace, task.apply ?? d.apply ?? !isolated, log);
      if (checkLog.file) {
        const name = rec.artifacts.some((x) => x.path === "check.log") ? "check.broker.log" : "check.log";
        rec.artifacts.push(storeArtifact(dir, name, readFileSync(checkLog.file), checkLog.redacted));
      }
    } catch (e) {
      // An artifact the mission asked for and cannot have is a failure, not a footnote.
      if (rec.status === "succeeded") {
        rec.status = "failed";
        rec.errorCode = "artifacts_failed";
      }
      rec.error = `${rec.error ? `${rec.error}; ` : ""}artifacts could not be collected: ${describeError(e)}`;
    }
    if (workDir && baseline && changes && rec.conversationId) {
      // The conversation's copy lives on (a reply works on it): its next turn's changes are a
      // patch from this one's tree. The tree read back goes; the private repository stays.
      rmSync(changes.resultDir, { recursive: true, force: true });
      this.keepCopy(rec.conversationId, { baseline: { ...baseline, tree: changes.after }, missionId: mrec.missionId, taskId: task.id, workspace, apply: task.apply ?? d.apply ?? !isolated, replies: 0, reading: Promise.resolve() });
    } else if (workDir) rmSync(workDir, { recursive: true, force: true });
    log({ type: "task_finished", status: rec.status, error: rec.error, ...(rec.errorCode ? { errorCode: rec.errorCode } : {}) });
    this.hooks.taskFinished?.(rec);
    await save(true, rec);
    onProgress?.({ kind: "task_finished", taskId: task.id, record: rec });
  }

  /**
   * An isolated task's changes as artifacts: each changed file of its copy (with its sha256, unless
   * its globs took it already) and changes.patch; with apply, the patch goes onto the workspace if
   * the task succeeded and it applies cleanly (else the task fails with patch_not_applied and why).
   */
  private async storeChanges(changes: Changes, rec: ChangeTarget, dir: string, workspace: string, apply: boolean, log: (e: unknown) => void): Promise<void> {
    const have = new Set(rec.artifacts.map((a) => a.path));
    for (const f of changes.files) {
      if (f.status === "deleted" || have.has(f.path)) continue;
      const data = readInside(changes.resultDir, f.path); // a symlink is in the patch only
      if (data !== null) rec.artifacts.push(storeArtifact(dir, f.path, data));
    }
    if (changes.patch.length === 0) {
      rec.notes = [...(rec.notes ?? []), "isolated: no changes (its copy is as it was)"];
      return;
    }
    const name = have.has("changes.patch") ? "changes.broker.patch" : "changes.patch";
    rec.artifacts.push(storeArtifact(dir, name, changes.patch));
    const summary = `isolated: ${changes.files.length} file${changes.files.length > 1 ? "s" : ""} changed, in ${name}`;
    if (!apply) {
      rec.notes = [...(rec.notes ?? []), `${summary}; the workspace is untouched (apply = true applies it)`];
      return;
    }
    if (rec.status !== "succeeded") {
      rec.notes = [...(rec.notes ?? []), `${summary}; not applied: the task did not succeed`];
      return;
    }
    const file = path.join(path.dirname(changes.resultDir), "changes.patch");
    writeFileSync(file, changes.patch, { mode: 0o600 });
    const prior = this.applying.get(workspace) ?? Promise.resolve();
    const mine = prior.catch(() => {}).then(() => applyPatch(workspace, file, path.dirname(changes.resultDir), changes.files));
    this.applying.set(workspace, mine);
    const refused = await mine.finally(() => this.applying.get(workspace) === mine && this.applying.delete(workspace));
    if (refused === null) {
      rec.notes = [...(rec.notes ?? []), `${summary}; applied to the workspace`];
      log({ type: "patch_applied", files: changes.files.length });
      return;
    }
    rec.status = "failed";
    rec.errorCode = "patch_not_applied";
    rec.error = `${rec.error ? `${rec.error}; ` : ""}patch_not_applied: its changes do not apply cleanly to ${workspace} (${refused}); the workspace is untouched and the patch is kept in ${name}: apply it by hand, or run the task again on the changed workspace`;
    log({ type: "patch_not_applied", reason: refused });
  }

  /** Cancels a running mission, or one of its tasks. Returns false when nothing is running. */
  cancel(missionId: string, taskId?: string): boolean {
    const r = this.running.get(missionId);
    if (!r) return false;
    if (taskId) {
      const c = r.controllers.get(taskId);
      if (!c) return false;
      c.abort();
      return true;
    }
    for (const c of r.controllers.values()) c.abort();
    return true;
  }

  /** Cancels every running mission (shutdown). */
  cancelAll(): void {
    for (const id of this.running.keys()) this.cancel(id);
  }

  /** The live record of a running mission, else the stored one. */
  status(missionId: string): MissionRecord {
    return this.running.get(missionId)?.record ?? this.store.readMission(missionId);
  }

}

/** Isolated conversations kept for replies at most; the oldest's baseline goes first (its replies then bring no patch). */
const MAX_KEPT_COPIES = 64;

/** An isolated conversation's copy, as the broker keeps track of it for replies. */
interface KeptCopy {
  /** Its tree as the last turn left it, in the task's private repository. */
  baseline: Baseline;
  missionId: string;
  taskId: string;
  workspace: string;
  /** The task's apply: a reply's patch goes onto the workspace too. */
  apply: boolean;
  /** Replies read back so far. */
  replies: number;
  /** The read-back in progress (replies' read-backs go one at a time). */
  reading: Promise<void>;
}

/** What a task's (or a reply's) changes are stored into. */
type ChangeTarget = Pick<TaskRecord, "artifacts" | "notes" | "status" | "error" | "errorCode">;

/** A reply's turn, and what came back from its isolated copy (nothing for a shared workspace). */
export interface ReplyResult {
  result: PoolTurnResult;
  /** Its changed files and changes.patch, paths under its task's artifacts (replies/<n>/…). */
  artifacts: TaskRecord["artifacts"];
  notes: string[];
  /** Why its patch was not applied to the workspace (the task's apply was set). */
  patchRefused?: string;
  /** The task whose conversation it continues, when its artifacts are that task's. */
  task?: { missionId: string; taskId: string };
}

/** A task the runner cancels before it starts: its mission's token budget is spent. */
class BudgetCancel extends Error {}

/** Releases a task's hold on its conversation (set once its first turn made one). */
interface TaskHold {
  release?: () => void;
}

/** A turn cancelled before it began, while the conversation's earlier turn still ran. */
function cancelledWaiting(conversationId: string): PoolTurnResult {
  return { conversationId, container: null, outcome: { status: "cancelled", threadId: null, finalMessage: null, error: "cancelled while waiting for the conversation's earlier turn to end", errorCode: "CANCELLED" } };
}

function waitedNote(ms: number): string {
  return `waited ${(ms / 1000).toFixed(1)} s for the conversation's earlier turn to end (one turn of a conversation runs at a time)`;
}

/** Two turns' usage as one (the later turn's model, if it names one). */
function sumUsage(a: TaskUsage, b: TaskUsage): TaskUsage {
  return { ...addUsage(a, b), model: b.model ?? a.model, profile: b.profile };
}

function missionStatus(m: MissionRecord): MissionStatus {
  const s = m.tasks.map((t) => t.status);
  if (s.every((x) => x === "succeeded")) return "succeeded";
  if (s.some((x) => x === "cancelled") && s.every((x) => x === "succeeded" || x === "cancelled")) return "cancelled";
  return "failed";
}
