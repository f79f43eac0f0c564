// Approvals forwarded to the MCP client: an approval Codex asks for in a task (a command to run, a
// patch to apply) becomes an elicitation request to the client whose tool call started the task,
// on that call's own stream (relatedRequestId), and the client's answer goes back to Codex. A
// client that did not declare elicitation gets no question: its tasks' approvals are declined.
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { RequestHandlerExtra } from "@modelcontextprotocol/sdk/shared/protocol.js";
import type { ElicitRequestFormParams, ServerNotification, ServerRequest } from "@modelcontextprotocol/sdk/types.js";
import type { ApprovalAnswer, ApprovalRequest, Approver } from "../codex/driver.js";

type Extra = RequestHandlerExtra<ServerRequest, ServerNotification>;

/** The form the client fills in: one choice, accept or decline. */
export const APPROVAL_FORM: ElicitRequestFormParams["requestedSchema"] = {
  type: "object",
  properties: {
    decision: {
      type: "string",
      title: "Decision",
      description: "accept lets Codex go ahead; decline refuses (Codex is told and carries on without it)",
      oneOf: [
        { const: "accept", title: "Accept" },
        { const: "decline", title: "Decline" },
      ],
    },
  },
  required: ["decision"],
};

/** The question's text: who asks, for what, where and why. */
export function approvalMessage(asker: string, a: ApprovalRequest): string {
  const lines = [a.kind === "command" ? `${asker}: Codex asks to run a command.` : `${asker}: Codex asks to apply a patch (change files).`];
  if (a.command) lines.push(`Command: ${a.command}`);
  if (a.cwd) lines.push(`${a.kind === "command" ? "Working directory" : "Under"}: ${a.cwd}`);
  if (a.reason) lines.push(`Reason: ${a.reason}`);
  lines.push("Accept or decline.");
  return lines.join("\n");
}

/**
 * An approver that asks the client of this tool call, or none when the client did not declare the
 * elicitation capability. `asker` names the task in the question. Questions are asked only while
 * the call is open (`isOpen`); `callOver` aborts the ones in flight when it ends.
 */
export function clientApprover(server: McpServer, extra: Extra, asker: (req: ApprovalRequest) => string, isOpen: () => boolean, callOver: AbortSignal): Approver | undefined {
  if (!server.server.getClientCapabilities()?.elicitation) return undefined;
  return async (req, { signal, timeoutMs }): Promise<ApprovalAnswer> => {
    if (!isOpen() || callOver.aborted) return { decision: "decline", why: "no_client", message: "the tool call that started the task has returned" };
    let result;
    try {
      result = await server.server.elicitInput(
        { mode: "form", message: approvalMessage(asker(req), req), requestedSchema: APPROVAL_FORM },
        // On the call's own stream (Streamable HTTP), and no sooner given up than the approval's timeout.
        { relatedRequestId: extra.requestId, signal: AbortSignal.any([signal, callOver]), timeout: timeoutMs + 1000 },
      );
    } catch (e) {
      return { decision: "decline", why: "client_gone", message: (e as Error).message };
    }
    if (result.action === "cancel") return { decision: "decline", why: "client_cancelled" };
    if (result.action === "accept" && result.content?.decision === "accept") return { decision: "accept" };
    return { decision: "decline", why: "client_declined" };
  };
}
