// The `#fake …` directives that script the rehearsal model, parsed from a user message.
// This module has no dependencies beyond the language: it is copied into the rehearsal image.

/** One scripted step of a turn, in the order the prompt gives them. */
export type Directive =
  | { kind: "write"; path: string; text: string }
  | { kind: "run"; command: string }
  /** A shell call that asks to run outside Codex's sandbox (`sandbox_permissions: "require_escalated"`). */
  | { kind: "run-escalated"; command: string }
  | { kind: "env"; name: string }
  | { kind: "sleep"; ms: number }
  | { kind: "fail"; message: string }
  | { kind: "crash" }
  | { kind: "stall" }
  | { kind: "recall" }
  | { kind: "auth" }
  /** The final message streamed as this many deltas (a long answer, for benchmarks). */
  | { kind: "deltas"; count: number }
  /** Every answer of the turn reports this many output tokens (budgets). */
  | { kind: "tokens"; count: number }
  /** The inner directive, only on this attempt of the script (its 1st, 2nd, … user message). */
  | { kind: "on-attempt"; attempt: number; directive: Directive };

/** Directives that become a shell tool call run by Codex. */
export type ToolDirective = Extract<Directive, { kind: "write" | "run" | "run-escalated" | "env" | "sleep" | "crash" }>;

export function isToolDirective(d: Directive): d is ToolDirective {
  return d.kind === "write" || d.kind === "run" || d.kind === "run-escalated" || d.kind === "env" || d.kind === "sleep" || d.kind === "crash";
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** The directives that apply on one attempt: `on-attempt` ones unwrapped on theirs, dropped on the others. */
export function forAttempt(directives: Directive[], attempt: number): Directive[] {
  return directives.flatMap((d) => (d.kind !== "on-attempt" ? [d] : d.attempt === attempt ? [d.directive] : []));
}

/**
 * Parses every line of `text` that starts with `#fake`. Lines that are not directives are
 * ignored; a malformed directive becomes a `fail` so the turn says what was wrong.
 */
export function parseDirectives(text: string): Directive[] {
  const out: Directive[] = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (!line.startsWith("#fake")) continue;
    const rest = line.slice("#fake".length).trim();
    const space = rest.search(/\s/);
    const verb = space < 0 ? rest : rest.slice(0, space);
    const arg = space < 0 ? "" : rest.slice(space + 1).trim();
    out.push(parseOne(verb, arg, line));
  }
  return out;
}

function parseOne(verb: string, arg: string, line: string): Directive {
  const bad = (why: string): Directive => ({ kind: "fail", message: `rehearsal: bad directive "${line}": ${why}` });
  switch (verb) {
    case "write": {
      const space = arg.search(/\s/);
      if (!arg) return bad("expected `#fake write <path> <text>`");
      return space < 0 ? { kind: "write", path: arg, text: "" } : { kind: "write", path: arg.slice(0, space), text: arg.slice(space + 1) };
    }
    case "run":
      return arg ? { kind: "run", command: arg } : bad("expected `#fake run <command>`");
    case "run-escalated":
      return arg ? { kind: "run-escalated", command: arg } : bad("expected `#fake run-escalated <command>`");
    case "env":
      return ENV_NAME.test(arg) ? { kind: "env", name: arg } : bad("expected `#fake env <NAME>` with a variable name");
    case "sleep": {
      const ms = Number(arg);
      return Number.isInteger(ms) && ms >= 0 ? { kind: "sleep", ms } : bad("expected `#fake sleep <milliseconds>`");
    }
    case "fail":
      return { kind: "fail", message: arg || "scripted failure" };
    case "crash":
      return { kind: "crash" };
    case "stall":
      return { kind: "stall" };
    case "recall":
      return { kind: "recall" };
    case "auth":
      return { kind: "auth" };
    case "tokens": {
      const n = Number(arg);
      return Number.isInteger(n) && n >= 0 && n <= 100_000_000 ? { kind: "tokens", count: n } : bad("expected `#fake tokens <count>` (0 to 100000000)");
    }
    case "on-attempt": {
      const m = /^(\d+)\s+(\S+)\s*([\s\S]*)$/.exec(arg);
      if (!m || Number(m[1]) < 1) return bad("expected `#fake on-attempt <n> <directive>`, n from 1, e.g. `#fake on-attempt 2 write out.txt ok`");
      const inner = parseOne(m[2]!, m[3]!, line);
      if (inner.kind === "on-attempt") return bad("on-attempt cannot nest");
      return inner.kind === "fail" && inner.message.startsWith("rehearsal: bad directive") ? inner : { kind: "on-attempt", attempt: Number(m[1]), directive: inner };
    }
    case "deltas": {
      const n = Number(arg);
      return Number.isInteger(n) && n >= 1 && n <= 100_000 ? { kind: "deltas", count: n } : bad("expected `#fake deltas <count>` (1 to 100000)");
    }
    default:
      return bad("unknown verb; known: write, run, run-escalated, env, sleep, fail, crash, stall, recall, auth, deltas, tokens, on-attempt");
  }
}

/** Quotes a string for a POSIX shell. */
export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** The shell command Codex is asked to run for a tool directive. */
export function commandFor(d: ToolDirective): string {
  switch (d.kind) {
    case "write": {
      const p = shellQuote(d.path);
      return `mkdir -p -- "$(dirname -- ${p})" && printf '%s' ${shellQuote(d.text)} > ${p}`;
    }
    case "run":
    case "run-escalated":
      return d.command;
    case "env":
      // A marker around the value tells an empty value from an unset one.
      return `if [ -n "\${${d.name}+x}" ]; then printf 'value=[%s]' "$${d.name}"; else printf 'unset'; fi`;
    case "sleep":
      return `sleep ${(d.ms / 1000).toFixed(3)}`;
    case "crash":
      // Walk up from this shell to the nearest process named codex* and kill it hard.
      return [
        "p=$$",
        'while [ "$p" -gt 1 ]; do',
        '  c=$(cat /proc/$p/comm 2>/dev/null)',
        '  case "$c" in codex*) kill -9 "$p"; exit 0;; esac',
        "  p=$(awk '{print $4}' /proc/$p/stat)",
        "done",
        "echo 'no codex process found' >&2; exit 1",
      ].join("\n");
  }
}
