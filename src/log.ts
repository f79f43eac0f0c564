// Structured logging: one JSON object per line on stderr, with a level. Secrets registered
// with `redact()` are replaced wherever they appear, so no token reaches a log.
export type Level = "debug" | "info" | "warn" | "error";
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

const secrets = new Set<string>();

/** Registers a secret (an API key, a token) never to be written out. */
export function redact(secret: string | undefined | null): void {
  if (!secret || secret.length < 8) return;
  secrets.add(secret);
  // A log line is JSON: a secret with a quote, a backslash or a control character appears there
  // escaped, so that form is replaced too.
  const escaped = JSON.stringify(secret).slice(1, -1);
  if (escaped !== secret) secrets.add(escaped);
}

/** Replaces every registered secret in `text`. */
export function scrub(text: string): string {
  let out = text;
  for (const s of secrets) if (out.includes(s)) out = out.split(s).join("[redacted]");
  return out;
}

/**
 * `value` with every registered secret replaced in its strings: for what Codex reports (events,
 * final messages), since a task's commands can read the worker's own credential and print it.
 * The value itself when no string in it holds a secret (almost every event): it is only read
 * then, and copied only along the way to a string that changes.
 */
export function scrubValue<T>(value: T): T {
  if (secrets.size === 0 || !holdsSecret(value)) return value;
  return scrubCopy(value);
}

/** Whether a string in `value` holds a registered secret (a walk that copies nothing). */
function holdsSecret(value: unknown): boolean {
  if (typeof value === "string") {
    for (const s of secrets) if (value.includes(s)) return true;
    return false;
  }
  if (value === null || typeof value !== "object") return false;
  if (Array.isArray(value)) return value.some(holdsSecret);
  for (const k in value) if (holdsSecret((value as Record<string, unknown>)[k])) return true;
  return false;
}

function scrubCopy<T>(value: T): T {
  if (typeof value === "string") return scrub(value) as T;
  if (value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) return value.map((v: unknown) => (holdsSecret(v) ? scrubCopy(v) : v)) as T;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = holdsSecret(v) ? scrubCopy(v) : v;
  return out as T;
}

const REDACTED = Buffer.from("[redacted]");

/** `data` with every registered secret's bytes replaced, and how many were. */
export function scrubBuffer(data: Buffer): { data: Buffer; replaced: number } {
  let out = data;
  let replaced = 0;
  for (const s of secrets) {
    const needle = Buffer.from(s);
    if (out.indexOf(needle) === -1) continue;
    const parts: Buffer[] = [];
    let from = 0;
    for (let at = out.indexOf(needle); at !== -1; at = out.indexOf(needle, from)) {
      parts.push(out.subarray(from, at), REDACTED);
      from = at + needle.length;
      replaced++;
    }
    parts.push(out.subarray(from));
    out = Buffer.concat(parts);
  }
  return { data: out, replaced };
}

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

export interface LoggerOptions {
  level?: Level;
  write?: (line: string) => void;
  base?: Record<string, unknown>;
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const envLevel = process.env.CODEX_WRAPPER_LOG_LEVEL as Level | undefined;
  const min = ORDER[opts.level ?? (envLevel && envLevel in ORDER ? envLevel : "info")];
  const write = opts.write ?? ((line: string) => process.stderr.write(line));
  const base = opts.base ?? {};
  const emit = (level: Level, msg: string, fields?: Record<string, unknown>): void => {
    if (ORDER[level] < min) return;
    const record = { time: new Date().toISOString(), level, msg, ...base, ...fields };
    write(`${scrub(JSON.stringify(record, errorReplacer))}\n`);
  };
  return {
    debug: (m, f) => emit("debug", m, f),
    info: (m, f) => emit("info", m, f),
    warn: (m, f) => emit("warn", m, f),
    error: (m, f) => emit("error", m, f),
    child: (fields) => createLogger({ ...opts, level: levelOf(min), base: { ...base, ...fields } }),
  };
}

function levelOf(n: number): Level {
  return (Object.keys(ORDER) as Level[]).find((k) => ORDER[k] === n) ?? "info";
}

function errorReplacer(_key: string, value: unknown): unknown {
  if (value instanceof Error) return { name: value.name, message: value.message, ...("code" in value ? { code: value.code } : {}) };
  return value;
}

/** A logger that drops everything (tests, library use). */
export const silentLogger: Logger = createLogger({ write: () => {} });
