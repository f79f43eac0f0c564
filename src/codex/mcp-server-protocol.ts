// The subset of `codex mcp-server` (Codex ≤ 0.153.0) the broker uses: the `codex` and
// `codex-reply` tools' arguments and structured output. Checked against the real tools/list.
import { z } from "zod";

export const CodexToolArgs = z.object({
  prompt: z.string(),
  cwd: z.string().optional(),
  model: z.string().optional(),
  sandbox: z.enum(["read-only", "workspace-write", "danger-full-access"]).optional(),
  "approval-policy": z.enum(["on-request", "never"]).optional(),
  "base-instructions": z.string().optional(),
  "developer-instructions": z.string().optional(),
  config: z.record(z.string(), z.unknown()).optional(),
});

export const CodexReplyArgs = z.object({ threadId: z.string(), prompt: z.string() });

export const CodexToolOutput = z.object({ threadId: z.string(), content: z.string() });

export const MCP_TOOL_CONTRACT = {
  codex: { input: CodexToolArgs, output: CodexToolOutput },
  "codex-reply": { input: CodexReplyArgs, output: CodexToolOutput },
} as const;
