// The broker's typed errors: each says what was wrong, where, and what to do, with a stable code.
import type { ZodError } from "zod";

/** The broker's error codes (stable: programs may match them). */
export const ERROR_CODES = [
  "CONFIG_INVALID",
  "CONFIG_UNREADABLE",
  "MISSION_INVALID",
  "MISSION_UNREADABLE",
  "WORKSPACE_REFUSED",
  "IMAGE_REFUSED",
  "IMAGE_MISSING",
  "DOCKER_UNAVAILABLE",
  "WORKER_EXITED",
  "WORKER_FAILED",
  "WORKER_TIMEOUT",
  "PROTOCOL_ERROR",
  "AUTH_INVALID",
  "STATE_ERROR",
  "NOT_FOUND",
  /** A tool's arguments do not fit its input schema. */
  "INVALID_ARGUMENTS",
  /** `cancel` of a mission (or task) that has already ended. */
  "NOT_RUNNING",
  /** A failure that is not one of the broker's own typed errors (a bug, or an unexpected system error). */
  "INTERNAL_ERROR",
  "CANCELLED",
  "RELEASE_REFUSED",
  "VERIFY_FAILED",
  /** A turn ran past its turn_timeout and was interrupted. */
  "TURN_TIMED_OUT",
  /** Codex ended the turn failed (its own account: a model error, say). */
  "TURN_FAILED",
  /** A reply's conversation can no longer be continued (its process or workspace copy is gone). */
  "CONVERSATION_LOST",
  /** A task's artifacts (or its isolated copy) could not be collected. */
  "ARTIFACTS_FAILED",
  /** The Docker engine a task ran on (or its conversation lives on) is down, or no engine for its profile is up. */
  "ENGINE_DOWN",
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

/** Base class: a message for people, a code for programs, optional details. */
export class WrapperError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: Record<string, unknown>,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

export class ConfigError extends WrapperError {}
export class MissionError extends WrapperError {}
export class WorkerError extends WrapperError {}
export class DockerUnavailableError extends WrapperError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("DOCKER_UNAVAILABLE", message, undefined, options);
  }
}

/** Renders a key path the way a user writes it: `workers[1].capacity`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const p of path) {
    if (typeof p === "number") out += `[${p}]`;
    else out += out ? `.${String(p)}` : String(p);
  }
  return out || "(root)";
}

const KINDS: Record<string, string> = { string: "a string", array: "a list", record: "a table of names to values", object: "an object", number: "a number", boolean: "true or false" };

/** What a value is, for an error message: `a list`, `a number`, `nothing`. */
function kindOf(v: unknown): string {
  if (v === undefined) return "nothing";
  if (v === null) return "null";
  if (Array.isArray(v)) return "a list";
  return typeof v === "object" ? "an object" : `a ${typeof v}`;
}

/**
 * A zod `invalid_type` issue in the user's words (zod's "expected array, received undefined"
 * misnames an absent key): that the key is missing, or what was expected and what was given.
 */
export function describeInvalidType(expected: string, given: unknown): string {
  const want = KINDS[expected] ?? expected;
  return given === undefined ? `missing; this key is required (expected ${want})` : `expected ${want}, got ${kindOf(given)}`;
}

/** One line per zod issue: `<path>: <message>, got <value>`. */
export function formatZodIssues(error: ZodError, input: unknown): string[] {
  return error.issues.map((issue) => {
    const where = formatPath(issue.path);
    const value = valueAt(input, issue.path);
    if (issue.code === "invalid_type" && value === undefined) return `${where}: ${describeInvalidType(issue.expected, undefined)}`;
    const got = issue.code === "unrecognized_keys" || value === undefined ? "" : `, got ${JSON.stringify(value)}`;
    return `${where}: ${issue.message}${got}`;
  });
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let v: unknown = input;
  for (const p of path) {
    if (v === null || typeof v !== "object") return undefined;
    v = (v as Record<PropertyKey, unknown>)[p];
  }
  return v;
}

/** The stable code of a thrown value: a WrapperError's own, else INTERNAL_ERROR. */
export function errorCodeOf(e: unknown): ErrorCode {
  return e instanceof WrapperError ? e.code : "INTERNAL_ERROR";
}

/** A short text for an unknown thrown value. */
export function describeError(e: unknown): string {
  if (e instanceof Error) return e.message;
  return typeof e === "string" ? e : JSON.stringify(e);
}
