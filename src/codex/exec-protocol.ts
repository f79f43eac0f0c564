// The JSONL events of `codex exec --json` the broker reads (the protocol OpenAI's TypeScript SDK
// drives), read from the real 0.169.0 and 0.153.0 binaries. Unknown event types are passed
// through as they are; the ones below must keep these fields.
import { z } from "zod";

export const ExecItem = z.looseObject({ id: z.string(), type: z.string() });

export const ExecEvent = z.discriminatedUnion("type", [
  z.looseObject({ type: z.literal("thread.started"), thread_id: z.string() }),
  z.looseObject({ type: z.literal("turn.started") }),
  z.looseObject({ type: z.literal("item.started"), item: ExecItem }),
  z.looseObject({ type: z.literal("item.updated"), item: ExecItem }),
  z.looseObject({ type: z.literal("item.completed"), item: ExecItem }),
  z.looseObject({ type: z.literal("turn.completed"), usage: z.looseObject({ input_tokens: z.number(), output_tokens: z.number() }) }),
  z.looseObject({ type: z.literal("turn.failed"), error: z.looseObject({ message: z.string() }) }),
  z.looseObject({ type: z.literal("error"), message: z.string() }),
]);
export type ExecEvent = z.infer<typeof ExecEvent>;

/** The argv of one exec turn inside a worker container (prompt on stdin). */
export function execArgv(opts: { threadId?: string | undefined; model?: string | undefined; config?: Record<string, string> }): string[] {
  const argv = ["codex", "exec", "--json", "--skip-git-repo-check", "-s", "danger-full-access", "-C", "/workspace"];
  if (opts.model) argv.push("-m", opts.model);
  for (const [k, v] of Object.entries(opts.config ?? {})) argv.push("-c", `${k}=${v}`);
  if (opts.threadId) argv.push("resume", opts.threadId);
  argv.push("-");
  return argv;
}
