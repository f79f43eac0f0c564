// Loads a mission (a file, JSON or YAML, or an object) and checks it against the contract and
// the broker's configuration. Every problem is one line naming the task and the field; nothing
// is started for an invalid mission.
import { readFileSync, statSync } from "node:fs";
import path from "node:path";
import { parse as parseYaml } from "yaml";
import type { WorkerProfile, WorkspaceMode, WrapperConfig } from "../config/schema.js";
import { describeInvalidType, formatPath, MissionError } from "../errors.js";
import { MissionSchema, type Mission, type Task } from "./schema.js";

/** The largest mission file read: the same as the largest request body the HTTP endpoint takes. */
export const MAX_MISSION_FILE_BYTES = 16 * 1024 * 1024;

/** Reads a mission file (.json, .yaml, .yml; other names: JSON, then YAML). */
export function readMissionFile(file: string): unknown {
  let size: number;
  try {
    size = statSync(file).size;
  } catch (e) {
    throw unreadable(file, e);
  }
  // A huge file would be read whole and parsed on the event loop, stalling every other call.
  if (size > MAX_MISSION_FILE_BYTES) {
    throw new MissionError("MISSION_INVALID", `${file}: the mission file is ${size} bytes, more than the ${MAX_MISSION_FILE_BYTES} (16 MiB) a mission may be; split it into smaller missions`);
  }
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw unreadable(file, e);
  }
  const ext = path.extname(file).toLowerCase();
  if (ext === ".json") return parseJson(text, file);
  if (ext === ".yaml" || ext === ".yml") return parseYamlText(text, file);
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return parseYamlText(text, file);
  }
}

function unreadable(file: string, e: unknown): MissionError {
  const code = (e as NodeJS.ErrnoException).code;
  return new MissionError("MISSION_UNREADABLE", `${file}: cannot read the mission file (${code === "ENOENT" ? "no such file" : code}); check the path`);
}

function parseJson(text: string, file: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new MissionError("MISSION_INVALID", `${file}: not valid JSON: ${(e as Error).message}`);
  }
}

function parseYamlText(text: string, file: string): unknown {
  try {
    return parseYaml(text, { maxAliasCount: 100 }) as unknown;
  } catch (e) {
    throw new MissionError("MISSION_INVALID", `${file}: not valid YAML: ${(e as Error).message.split("\n")[0]}`);
  }
}

/** Names a path in user terms: `tasks[2] ("build").prompt`. */
function describePath(p: readonly PropertyKey[], input: unknown): string {
  if (p[0] === "tasks" && typeof p[1] === "number") {
    const tasks = (input as { tasks?: unknown[] } | null)?.tasks;
    const id = (tasks?.[p[1]] as { id?: unknown } | undefined)?.id;
    const head = `tasks[${p[1]}]${typeof id === "string" ? ` ("${id}")` : ""}`;
    const rest = formatPath(p.slice(2));
    return rest === "(root)" ? head : `${head}.${rest}`;
  }
  return formatPath(p);
}

/** Validates a parsed mission; throws MissionError with one line per problem. */
export function validateMission(input: unknown, config: WrapperConfig, source = "mission"): Mission {
  const problems: string[] = [];
  if (input === null || typeof input !== "object" || Array.isArray(input)) {
    throw new MissionError("MISSION_INVALID", `${source}: expected a mission object with name and tasks`, { problems: ["(root): expected an object"] });
  }
  const parsed = MissionSchema.safeParse(input, { reportInput: true });
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const where = describePath(issue.path, input);
      if (issue.code === "unrecognized_keys") for (const k of issue.keys) problems.push(`${where}: unknown field "${k}"`);
      // (Only zod's own wording: the schema's messages already speak the user's words.)
      else if (issue.code === "invalid_type" && issue.message.startsWith("Invalid input:")) problems.push(`${where}: ${describeInvalidType(issue.expected, issue.input)}`);
      else problems.push(`${where}: ${issue.message}`);
    }
  } else {
    const m = parsed.data;
    const profiles = new Set(config.workers.map((w) => w.name));
    const known = [...profiles].map((p) => `"${p}"`).join(", ");
    if (m.tasks.length > config.maxTasksPerMission) problems.push(`tasks: ${m.tasks.length} tasks, more than the ${config.maxTasksPerMission} allowed (broker.max_tasks_per_mission)`);
    if (m.defaults?.profile && !profiles.has(m.defaults.profile)) problems.push(`defaults.profile: no worker profile "${m.defaults.profile}"; known: ${known}`);
    const seen = new Map<string, number>();
    m.tasks.forEach((t, i) => {
      const where = `tasks[${i}] ("${t.id}")`;
      const first = seen.get(t.id);
      if (first !== undefined) problems.push(`${where}.id: duplicate id, also used by tasks[${first}]; give each task its own id`);
      else seen.set(t.id, i);
      if (t.profile && !profiles.has(t.profile)) problems.push(`${where}.profile: no worker profile "${t.profile}"; known: ${known}`);
      if (t.preferred_worker && !profiles.has(t.preferred_worker)) problems.push(`${where}.preferred_worker: no worker profile "${t.preferred_worker}"; known: ${known}`);
      const attempts = t.attempts ?? m.defaults?.attempts;
      if (attempts !== undefined && attempts > 1 && !(t.check ?? m.defaults?.check)) {
        problems.push(`${where}.attempts: ${attempts} attempts need a check to decide each one; set check (e.g. "npm test") on the task or in defaults, or drop attempts`);
      }
      // codex exec 0.169 refuses "untrusted" at start ("no longer supported"): say so now, not as a failed task.
      const profile = taskProfile(t, m.defaults, config.workers);
      const policy = t.approval_policy ?? m.defaults?.approval_policy;
      if (profile?.protocol === "exec" && policy === "untrusted") {
        problems.push(`${where}.approval_policy: "untrusted" cannot run on worker profile "${profile.name}" (protocol "exec"): codex exec refuses it; use "never" or "on-request", or a profile with protocol "app-server" (which forwards approvals to the client that asked)`);
      }
      const mode = workspaceModeOf(t, m.defaults, config.workers);
      for (const key of ["apply", "copy_ignored"] as const) {
        if ((t[key] ?? m.defaults?.[key]) === true && mode !== "isolated") {
          problems.push(`${where}.${key}: only an isolated task has a copy (${key === "apply" ? "a patch to apply" : "to copy ignored files into"}), and this one is "${mode}"; set workspace_mode = "isolated" on the task or in defaults, or drop ${key}`);
        }
      }
      const bytes = Buffer.byteLength(t.prompt);
      if (bytes > config.maxPromptBytes) problems.push(`${where}.prompt: ${bytes} bytes, more than the ${config.maxPromptBytes} allowed (broker.max_prompt_bytes)`);
    });
  }
  if (problems.length) {
    throw new MissionError("MISSION_INVALID", `${source}: ${problems.length} problem${problems.length > 1 ? "s" : ""}:\n  ${problems.join("\n  ")}`, { problems });
  }
  return parsed.data!;
}

/** Reads and validates a mission file. */
export function loadMission(file: string, config: WrapperConfig): Mission {
  return validateMission(readMissionFile(file), config, file);
}

/**
 * Where a task works: its workspace_mode, else the defaults', else its profile's (the task's, the
 * defaults', else the first). A preferred_worker does not change it: it is decided before placement.
 */
export function workspaceModeOf(t: Task, defaults: Mission["defaults"], workers: readonly WorkerProfile[]): WorkspaceMode {
  const profile = taskProfile(t, defaults, workers);
  return t.workspace_mode ?? defaults?.workspace_mode ?? profile?.workspace_mode ?? "shared";
}

/** A task's worker profile as the mission names it: the task's, the defaults', else the first. */
export function taskProfile(t: Task, defaults: Mission["defaults"], workers: readonly WorkerProfile[]): WorkerProfile | undefined {
  const name = t.profile ?? defaults?.profile;
  return (name ? workers.find((w) => w.name === name) : undefined) ?? workers[0];
}
