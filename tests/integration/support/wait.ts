// Bounded waits for the integration tests: every wait names what it waited for and gives up.
import type { ChildProcess } from "node:child_process";
import { withDeadline } from "../../../src/deadline.js";

/** Polls `get` until `ok` holds and returns that value; throws after `ms`, naming `what` and the last value. */
export async function untilValue<T>(get: () => T | Promise<T>, ok: (v: T) => boolean, ms: number, what: string, everyMs = 200): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await get();
    if (ok(v)) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting until ${what}: ${JSON.stringify(v)?.slice(0, 600)}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Polls `cond` until it holds; throws after `ms`, naming `what`. */
export async function until(cond: () => boolean | Promise<boolean>, ms: number, what: string, everyMs = 200): Promise<void> {
  await untilValue(cond, Boolean, ms, what, everyMs);
}

/**
 * Ends a child process: SIGTERM, then SIGKILL after `graceMs`, and resolves once it has exited
 * (at once if it already had, by an exit code or a signal).
 */
export async function endChild(child: ChildProcess, graceMs = 20_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
  await exited;
  clearTimeout(timer);
}

/**
 * The promise's value, or a rejection naming `what` after `ms`: a bound of the test's own, so a
 * wait that never ends fails with the behaviour it was waiting for, not vitest's test timeout.
 */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return withDeadline(p, ms, () => {
    throw new Error(`not within ${ms} ms: ${what}`);
  });
}
