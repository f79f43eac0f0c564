// A task's check: the command that decides whether the task succeeded, its record, the failure
// the task reports, the note that goes back to Codex for another attempt, and its section of the
// check.log artifact.
import { scrub, scrubBuffer } from "../log.js";
import type { CheckRecord } from "../state/store.js";
import { tailLines, type CommandResult } from "../worker/command.js";

/** How long a check may run when the task does not say (check_timeout). */
export const DEFAULT_CHECK_TIMEOUT_MS = 10 * 60_000;

/** The check's record: known secrets replaced in the tail it keeps. */
export function checkRecord(command: string, r: CommandResult): CheckRecord {
  return {
    command,
    exitCode: r.exitCode,
    timedOut: r.timedOut,
    durationMs: Math.round(r.durationMs),
    bytes: r.bytes,
    outputTail: scrub(tailLines(r.output.toString("utf8"))),
  };
}

function how(c: CheckRecord, timeoutMs: number): string {
  if (c.timedOut) return `did not finish within its check_timeout (${timeoutMs / 1000} s) and was killed`;
  return c.exitCode === null ? "ended without an exit code (its container went away)" : `exited with code ${c.exitCode}`;
}

/** The task's error when its last attempt's check did not pass. */
export function checkFailure(c: CheckRecord, timeoutMs: number, attempt: number, of: number): string {
  const tries = of > 1 ? ` on attempt ${attempt}/${of}` : "";
  const tail = c.outputTail ? `; its last lines:\n${c.outputTail}` : "; it printed nothing";
  return `check \`${c.command}\` ${how(c, timeoutMs)}${tries}${tail}\n(whole output: the check.log artifact)`;
}

/** What goes back to Codex, on the same conversation, when a check failed and attempts remain. */
export function retryPrompt(c: CheckRecord, timeoutMs: number, next: number, of: number): string {
  return [
    `The check \`${c.command}\` ran in the workspace after your turn and ${how(c, timeoutMs)}.`,
    c.outputTail ? `The last lines of its output:\n\`\`\`\n${c.outputTail}\n\`\`\`` : "It printed nothing.",
    `Find the cause and fix it so that the check passes. The check runs again after this turn (attempt ${next} of ${of}).`,
  ].join("\n\n");
}

/** One attempt's section of check.log: a header, then the output as kept; known secrets replaced. */
export function checkLogSection(attempt: number, c: CheckRecord, r: CommandResult, timeoutMs: number): { data: Buffer; redacted: number } {
  const { data, replaced } = scrubBuffer(r.output);
  const head = `=== attempt ${attempt}: $ ${scrub(c.command)}\n`;
  const foot = `\n=== ${how(c, timeoutMs)} after ${(c.durationMs / 1000).toFixed(1)} s; ${r.bytes} bytes of output${r.leftOut ? `, ${r.leftOut} left out in the middle` : ""}\n`;
  return { data: Buffer.concat([Buffer.from(head), data, Buffer.from(foot)]), redacted: replaced };
}
