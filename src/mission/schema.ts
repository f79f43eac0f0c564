// The mission contract (JSON or YAML): a name, an optional workspace, mission-wide defaults and
// tasks. A task's settings fall back to the defaults, then to its worker profile.
import path from "node:path";
import { z } from "zod";
import { AllowList, APPROVAL_POLICIES, NETWORKS, parseDuration, parsedBy, SANDBOXES, WORKSPACE_MODES } from "../config/schema.js";
import { TASK_ID } from "../state/task-id.js";

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

const oneOf = <T extends readonly [string, ...string[]]>(values: T) =>
  z.enum(values, { error: `expected one of ${values.map((v) => `"${v}"`).join(", ")}` });

const timeout = parsedBy((v) => {
  const ms = parseDuration(v);
  return ms !== null && ms > 0 ? ms : null;
}, 'expected a duration such as "90s", "10m" or a number of seconds');

/** The most attempts a task may ask for. */
export const MAX_ATTEMPTS = 10;

const maxTokens = z
  .number({ error: "expected a whole number of tokens, such as 200000" })
  .int({ error: "expected a whole number of tokens, such as 200000" })
  .positive({ error: "expected a number of tokens above 0" });

/** A glob relative to the workspace that cannot leave it. */
const artifactGlob = z.string().superRefine((g, ctx) => {
  if (!g.trim()) ctx.addIssue({ code: "custom", message: "expected a glob such as \"dist/**\"" });
  else if (path.isAbsolute(g) || /^[A-Za-z]:[\\/]/.test(g)) ctx.addIssue({ code: "custom", message: `"${g}" is absolute; artifact globs are relative to the workspace` });
  else if (g.split(/[\\/]/).includes("..")) ctx.addIssue({ code: "custom", message: `"${g}" climbs out of the workspace with ".."; artifact globs stay inside it` });
});

/** Settings a task may set, and the mission's defaults may set for all tasks. */
const settings = {
  sandbox: oneOf(SANDBOXES).optional(),
  approval_policy: oneOf(APPROVAL_POLICIES).optional(),
  /** How long an approval may wait for the MCP client's answer before it is declined (default: the profile's, 5 min). */
  approval_timeout: timeout.optional(),
  model: z.string().min(1).optional(),
  profile: z.string().min(1).optional(),
  "base-instructions": z.string().optional(),
  "developer-instructions": z.string().optional(),
  env: z
    .record(z.string().regex(ENV_NAME, { error: "expected a variable name (letters, digits, _)" }), z.string({ error: "expected a string value" }))
    .optional(),
  config: z.record(z.string(), z.unknown()).optional(),
  artifacts: z.array(artifactGlob).optional(),
  timeout: timeout.optional(),
  /** What the task's commands may reach (default: the profile's network, "none" unless it says). */
  network: oneOf(NETWORKS).optional(),
  /** Hosts for network = "allowlist" (added to the profile's). */
  allow: AllowList.optional(),
  /** A shell command run in the task's container and workspace after its turn: exit 0 = succeeded. */
  check: z.string({ error: "expected a shell command" }).trim().min(1, { error: "expected a shell command, such as \"npm test\"" }).optional(),
  /** How long the check may run (default 10 min). */
  check_timeout: timeout.optional(),
  /** Turns a task may take to pass its check: a failed check goes back to Codex while attempts remain. */
  attempts: z
    .number({ error: "expected a whole number of attempts, 1 to 10" })
    .int({ error: "expected a whole number of attempts, 1 to 10" })
    .min(1, { error: "expected at least 1 attempt" })
    .max(MAX_ATTEMPTS, { error: `expected at most ${MAX_ATTEMPTS} attempts` })
    .optional(),
  /** The task's token budget (input + output tokens of all its model calls, every attempt). */
  max_tokens: maxTokens.optional(),
  /** "shared": the workspace itself; "isolated": the task's own copy, its changes returned as changes.patch (default: the profile's). */
  workspace_mode: oneOf(WORKSPACE_MODES).optional(),
  /** Isolated only: apply the task's patch to the workspace when it applies cleanly. */
  apply: z.boolean({ error: "expected true or false" }).optional(),
  /** Isolated only: copy the files .gitignore excludes too (node_modules and the like; default false). */
  copy_ignored: z.boolean({ error: "expected true or false" }).optional(),
};

export const MissionDefaultsSchema = z.strictObject(settings);

export const TaskSchema = z.strictObject({
  id: z.string({ error: "expected an id" }).regex(TASK_ID, { error: "expected an id of letters, digits, '.', '-' and '_' (up to 64, no '/')" }),
  prompt: z.string({ error: "expected the prompt text" }).min(1, { error: "expected the prompt text" }),
  preferred_worker: z.string().min(1).optional(),
  ...settings,
});

export const MissionSchema = z.strictObject({
  name: z.string({ error: "expected the mission's name" }).min(1, { error: "expected the mission's name" }).max(200),
  workspace: z.string().min(1).optional(),
  defaults: MissionDefaultsSchema.optional(),
  /** The artifact bundle's format: tar.gz (default), zip, or both. */
  bundle: oneOf(["tar.gz", "zip", "both"] as const).optional(),
  /** The mission's token budget, over all its tasks: when spent, its running tasks are cancelled. */
  max_tokens: maxTokens.optional(),
  tasks: z.array(TaskSchema, { error: "expected a list of tasks" }).min(1, { error: "expected at least one task" }),
});

export type Mission = z.output<typeof MissionSchema>;
export type MissionInput = z.input<typeof MissionSchema>;
export type Task = z.output<typeof TaskSchema>;
