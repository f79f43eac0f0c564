// A conversation's route, as the store keeps it across broker restarts: the pool writes it when a
// conversation starts and reads it back to send a reply where the conversation lives.
import type { NetworkMode, SandboxMode } from "../config/schema.js";

export type ConversationId = string;

/** Where a conversation lives: its slot (CODEX_HOME), lane (exec) and Codex thread. */
export interface ConversationRoute {
  id: ConversationId;
  profile: string;
  workspace: string;
  sandbox: SandboxMode;
  /** The network its container had (absent in routes stored before 0.2: the profile's). */
  network?: NetworkMode | undefined;
  allow?: string[] | undefined;
  slotId: string;
  lane: number | null;
  threadId: string;
  /** The engine it lives on (absent in routes stored before [[engines]]: the first). */
  engine?: string | undefined;
  /** An isolated conversation's workspace volume (its own copy of the workspace). */
  volume?: string | undefined;
  /** Set when the conversation cannot be continued (mcp-server process ended). */
  lost?: string;
}
