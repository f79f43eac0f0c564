// `codex-mcp-wrapper run-mission`: runs a mission without a server (for CI): progress lines as
// tasks move, a summary table, a JSON report and JUnit XML, exit 0 only if every task
// succeeded; on SIGINT/SIGTERM it cancels the tasks and removes its containers before it exits.
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { loadConfig } from "../config/load.js";
import { chooseRehearsal, withRehearsal } from "../config/rehearsal.js";
import { LiveLines } from "./live-lines.js";
import { createLogger } from "../log.js";
import { loadMission } from "../mission/load.js";
import { MissionRunner, type ProgressEvent } from "../mission/runner.js";
import { DockerRuntime } from "../runtime/docker.js";
import { attemptLabel, notesSuffix, StateStore, writeFileAtomic, type MissionRecord, type TaskRecord } from "../state/store.js";
import { WorkerPool } from "../pool/pool.js";

export const RUN_MISSION_HELP = `Usage: codex-mcp-wrapper run-mission <mission.json|yaml> --workspace <path> [options]

Runs every task of the mission in worker containers, without a server, and exits 0 only if every
task succeeded (1 if any did not, 2 for invalid input). Ctrl-C cancels the tasks and removes the
containers before exiting.

Options:
  --workspace PATH   the directory the tasks work in (default: the mission's workspace)
  --config FILE      wrapper.toml (default: $CODEX_WRAPPER_CONFIG, else built-in defaults)
  --json FILE        write the mission report (JSON) here too
  --junit FILE       write JUnit XML (one testcase per task) for CI dashboards
  --zip              also pack the artifacts as bundle.zip (beside bundle.tar.gz)
  --rehearsal        run the tasks against the built-in rehearsal model (scripted answers, no
                     OpenAI call), even with a login; a dev instance with no Codex login (no auth
                     file) does so by itself`;

const xml = (s: string): string => s.replace(/[<>&"']/g, (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;", "'": "&apos;" })[c]!);

/** How much of a task's check.log a JUnit report carries (its end) in system-out. */
export const JUNIT_CHECK_OUTPUT_BYTES = 64 * 1024;

/**
 * JUnit XML: one testsuite for the mission, one testcase per task. A task with a check has the
 * check's failure as its failure message and the check's output (`checkLog`: the end of its
 * check.log artifact, if given) as its system-out.
 */
export function junitReport(m: MissionRecord, checkLog: (t: TaskRecord) => string | null = () => null): string {
  const secs = (t: { startedAt: string | null; finishedAt: string | null }): string =>
    t.startedAt && t.finishedAt ? ((Date.parse(t.finishedAt) - Date.parse(t.startedAt)) / 1000).toFixed(3) : "0";
  const failures = m.tasks.filter((t) => t.status !== "succeeded").length;
  const cases = m.tasks.map((t) => {
    const u = t.usage;
    const props = u
      ? `\n      <properties>\n${[["model", u.model ?? "unknown"], ["input_tokens", u.inputTokens], ["cached_input_tokens", u.cachedInputTokens], ["output_tokens", u.outputTokens], ["reasoning_output_tokens", u.reasoningOutputTokens], ["model_requests", u.requests]]
          .map(([k, v]) => `        <property name="${k}" value="${xml(String(v))}"/>`)
          .join("\n")}\n      </properties>`
      : "";
    const failure = t.status === "succeeded" ? "" : `\n      <failure message="${xml(`${t.status}: ${t.error ?? ""}`.slice(0, 500))}" type="${t.errorCode ?? t.status}">${xml(t.error ?? "")}</failure>`;
    const log = t.attempts?.some((a) => a.check) ? checkLog(t) : null;
    const out = log !== null ? `\n      <system-out>${xml(log.replace(/[^\t\n\r\x20-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu, "\uFFFD"))}</system-out>` : "";
    const body = props || failure || out ? `${props}${failure}${out}\n    ` : "";
    return `    <testcase classname="${xml(m.name)}" name="${xml(t.id)}" time="${secs(t)}">${body}</testcase>`;
  });
  return `<?xml version="1.0" encoding="UTF-8"?>\n<testsuites>\n  <testsuite name="${xml(m.name)}" tests="${m.tasks.length}" failures="${failures}" errors="0" timestamp="${m.createdAt}">\n${cases.join("\n")}\n  </testsuite>\n</testsuites>\n`;
}

/** "attempt 2/3 " for a task that may take more than one attempt, else "". */
const attemptOf = (e: { attempt: number; of: number }): string => (e.of > 1 ? `attempt ${e.attempt}/${e.of} ` : "");

function summary(m: MissionRecord): string {
  const rows = m.tasks.map((t) => {
    const secs = t.startedAt && t.finishedAt ? `${((Date.parse(t.finishedAt) - Date.parse(t.startedAt)) / 1000).toFixed(1)} s` : "-";
    return [t.id, t.status, attemptLabel(t) ?? "-", secs, String(t.artifacts.length), (t.error ?? "").split("\n")[0]!.slice(0, 80)];
  });
  const head = ["task", "status", "attempt", "time", "artifacts", "error"];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]): string => r.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd();
  return [line(head), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

/** The end of a task's check.log artifact (JUNIT_CHECK_OUTPUT_BYTES of it), or null. */
function readCheckLogEnd(dir: string, t: TaskRecord): string | null {
  const entry = t.artifacts.find((a) => a.path === "check.broker.log") ?? t.artifacts.find((a) => a.path === "check.log");
  if (!entry) return null;
  try {
    const data = readFileSync(path.join(dir, entry.path));
    const end = data.subarray(Math.max(0, data.length - JUNIT_CHECK_OUTPUT_BYTES)).toString("utf8");
    return data.length > JUNIT_CHECK_OUTPUT_BYTES ? `[… the first ${data.length - JUNIT_CHECK_OUTPUT_BYTES} bytes are in the ${entry.path} artifact …]\n${end}` : end;
  } catch {
    return null;
  }
}

export async function runMission(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { workspace: { type: "string" }, config: { type: "string" }, json: { type: "string" }, junit: { type: "string" }, zip: { type: "boolean" }, rehearsal: { type: "boolean" }, help: { type: "boolean", short: "h" } },
  });
  if (values.help) {
    process.stdout.write(`${RUN_MISSION_HELP}\n`);
    return 0;
  }
  if (positionals.length !== 1) {
    process.stderr.write(`codex-mcp-wrapper run-mission: expected one mission file\n\n${RUN_MISSION_HELP}\n`);
    return 2;
  }
  const loaded = loadConfig({ file: values.config });
  const config = withRehearsal(loaded, chooseRehearsal(loaded, values.rehearsal === true));
  const mission = loadMission(positionals[0]!, config);
  const logger = createLogger({ level: "warn" });
  const store = new StateStore(config.stateDir);
  store.onEventsLost = (file, count, error) => logger.warn("cannot append task events", { file, count, error: error.message });
  const pool = new WorkerPool({ config, docker: new DockerRuntime({ callTimeoutMs: config.dockerTimeoutMs }), logger, onRoute: (r) => store.saveRoute(r) });
  const runner = new MissionRunner(pool, store, logger);
  const out = (line: string): void => void process.stdout.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`);

  let interrupted = false;
  let missionId: string | undefined;
  const onSignal = (sig: NodeJS.Signals): void => {
    if (interrupted) return;
    interrupted = true;
    out(`${sig}: cancelling the tasks and removing the containers…`);
    if (missionId) runner.cancel(missionId);
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    if (config.rehearsal) out(config.rehearsal.notice);
    await pool.start();
    // On a terminal: a live line per task, redrawn in place; otherwise (CI logs) plain lines.
    const live = process.stdout.isTTY ? new LiveLines(mission.tasks.map((t) => t.id), (s) => void process.stdout.write(s), process.stdout.columns || 100) : null;
    const onProgress = (e: ProgressEvent): void => {
      if (live) {
        if (e.kind === "task_started") live.update(e.taskId, "running", `on ${e.container}`);
        else if (e.kind === "command") live.update(e.taskId, "running", `$ ${e.command}`);
        else if (e.kind === "agent_message") live.update(e.taskId, "running", e.text);
        else if (e.kind === "check") live.update(e.taskId, "checking", `${attemptOf(e)}$ ${e.command}`);
        else if (e.kind === "attempt") live.update(e.taskId, "running", `attempt ${e.attempt}/${e.of} (${e.reason})`);
        else live.update(e.taskId, e.record.status, e.record.error ?? "");
        return;
      }
      if (e.kind === "task_started") out(`task ${e.taskId}: started on ${e.container}`);
      else if (e.kind === "command") out(`task ${e.taskId}: $ ${e.command.split("\n")[0]!.slice(0, 120)}`);
      else if (e.kind === "check") out(`task ${e.taskId}: check ${attemptOf(e)}$ ${e.command.split("\n")[0]!.slice(0, 120)}`);
      else if (e.kind === "attempt") out(`task ${e.taskId}: attempt ${e.attempt}/${e.of} (${e.reason})`);
      else if (e.kind === "task_finished") {
        const r = e.record;
        const tries = r.maxAttempts && r.maxAttempts > 1 ? ` at attempt ${attemptLabel(r)}` : "";
        out(`task ${e.taskId}: ${r.status}${tries}${r.error ? ` (${r.error.split("\n")[0]})` : ""}${notesSuffix(r.notes)}`);
      }
    };
    const started = runner.start(mission, { workspace: values.workspace, onProgress, bundle: values.zip ? "both" : undefined });
    missionId = started.missionId;
    out(`mission ${mission.name} (${missionId}): ${mission.tasks.length} task(s) in ${runner.status(missionId).workspace}`);
    live?.render();
    if (interrupted) runner.cancel(missionId);
    const record = await started.done;
    process.stdout.write(`\n${summary(record)}\n\nmission ${record.status}; state in ${store.missionDir(record.missionId)}\n${config.rehearsal ? `${config.rehearsal.notice}\n` : ""}`);
    const report = `${JSON.stringify(record, null, 2)}\n`;
    writeFileAtomic(path.join(store.missionDir(record.missionId), "report.json"), report);
    if (values.json) writeFileSync(values.json, report);
    if (values.junit) writeFileSync(values.junit, junitReport(record, (t) => readCheckLogEnd(path.join(store.missionDir(record.missionId), "artifacts", t.id), t)));
    return interrupted ? 130 : record.status === "succeeded" ? 0 : 1;
  } finally {
    await pool.shutdown();
    runner.dropCopies();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}
