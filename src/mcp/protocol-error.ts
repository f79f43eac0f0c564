// JSON-RPC errors the broker's MCP server answers with, and tool failures as results. A
// ProtocolError's message goes out as it is: the SDK's McpError puts "MCP error <code>:" in its
// own message, and the client's McpError puts it in again, so a thrown McpError reads twice.
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { describeError, errorCodeOf, WrapperError } from "../errors.js";

/** JSON-RPC codes the MCP spec (2025-11-25) names for the cases the broker meets. */
export const RPC = {
  /** resources/read of a resource that does not exist (server/resources, Error Handling). */
  RESOURCE_NOT_FOUND: -32002,
  /** An unknown tool (server/tools, Error Handling), or a request that fails its schema. */
  INVALID_PARAMS: -32602,
  INTERNAL_ERROR: -32603,
} as const;

/** A JSON-RPC error response: the SDK sends `code`, `message` and `data` as they are. */
export class ProtocolError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly data?: Record<string, unknown>,
  ) {
    super(message);
    this.name = "ProtocolError";
  }
}

/**
 * A resource error for a read of `uri` that failed with `e`: a NOT_FOUND (an unknown mission, a
 * malformed id, no such artifact) is -32002, anything else -32603; `data` keeps the URI and the
 * broker's own code.
 */
export function resourceError(uri: string, e: unknown): ProtocolError {
  if (e instanceof ProtocolError) return e;
  const code = errorCodeOf(e);
  return new ProtocolError(code === "NOT_FOUND" ? RPC.RESOURCE_NOT_FOUND : RPC.INTERNAL_ERROR, describeError(e), { uri, code });
}

/** What a failed tool call carries in `structuredContent`: the failing error's own code and message. */
export interface ToolFailure {
  code: string;
  message: string;
  details?: Record<string, unknown>;
}

/**
 * A tool execution error (`isError: true`) the model can read and act on, from the error object
 * that failed: its code and message, unchanged.
 */
export function toolFailure(e: unknown): CallToolResult {
  const failure: ToolFailure = { code: errorCodeOf(e), message: describeError(e), ...(e instanceof WrapperError && e.details ? { details: e.details } : {}) };
  return { isError: true, structuredContent: { ...failure }, content: [{ type: "text", text: `${failure.code}: ${failure.message}` }] };
}
