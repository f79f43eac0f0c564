// The subset of `codex app-server`'s JSON-RPC protocol the broker sends and reads, as zod
// schemas (read from the real binaries 0.169.0 and 0.153.0; see docs/codex-protocols.md). The
// contract test compares each schema with `codex app-server generate-json-schema`, so a method,
// field or enum value that a new Codex drops fails a test instead of a mission.
import { z } from "zod";

export const AppSandboxMode = z.enum(["read-only", "workspace-write", "danger-full-access"]);
export const AppApprovalPolicy = z.enum(["untrusted", "on-request", "never"]);

export const ClientInfo = z.object({ name: z.string(), title: z.string().optional(), version: z.string() });

export const InitializeParams = z.object({
  clientInfo: ClientInfo,
  capabilities: z.object({ experimentalApi: z.boolean().optional() }).optional(),
});
export const InitializeResponse = z.looseObject({ userAgent: z.string() });

export const ThreadStartParams = z.object({
  cwd: z.string().optional(),
  model: z.string().optional(),
  approvalPolicy: AppApprovalPolicy.optional(),
  sandbox: AppSandboxMode.optional(),
  baseInstructions: z.string().optional(),
  developerInstructions: z.string().optional(),
  config: z.record(z.string(), z.unknown()).optional(),
});

export const ThreadRef = z.looseObject({ id: z.string() });
export const ThreadStartResponse = z.looseObject({ thread: ThreadRef });

export const ThreadResumeParams = ThreadStartParams.extend({ threadId: z.string() });
export const ThreadResumeResponse = z.looseObject({ thread: ThreadRef });

export const ThreadUnsubscribeParams = z.object({ threadId: z.string() });
export const ThreadUnsubscribeResponse = z.looseObject({ status: z.enum(["notLoaded", "notSubscribed", "unsubscribed"]) });
export const ThreadClosedNotification = z.object({ threadId: z.string() });

export const TextInput = z.object({ type: z.literal("text"), text: z.string() });
export const TurnStartParams = z.object({ threadId: z.string(), input: z.array(TextInput) });

export const TurnStatus = z.enum(["completed", "interrupted", "failed", "inProgress"]);
export const TurnError = z.looseObject({ message: z.string() });
export const ThreadItem = z.looseObject({ type: z.string(), id: z.string() });
export const Turn = z.looseObject({
  id: z.string(),
  status: TurnStatus,
  error: TurnError.nullable().optional(),
  items: z.array(ThreadItem).optional(),
});
export const TurnStartResponse = z.looseObject({ turn: Turn });

export const TurnInterruptParams = z.object({ threadId: z.string(), turnId: z.string() });

/** `account/login/start` with tokens the broker holds (the refresh token never enters a container). */
export const ChatgptAuthTokensLoginParams = z.object({
  type: z.literal("chatgptAuthTokens"),
  accessToken: z.string(),
  chatgptAccountId: z.string(),
  chatgptPlanType: z.string().nullable().optional(),
});

// Notifications the broker reads.
export const TurnStartedNotification = z.looseObject({ threadId: z.string(), turn: Turn });
export const TurnCompletedNotification = z.looseObject({ threadId: z.string(), turn: Turn });
export const ItemNotification = z.looseObject({ threadId: z.string(), turnId: z.string(), item: ThreadItem });
export const AgentMessageDeltaNotification = z.looseObject({ threadId: z.string(), turnId: z.string(), itemId: z.string(), delta: z.string() });
export const ErrorNotification = z.looseObject({ error: TurnError, willRetry: z.boolean(), threadId: z.string(), turnId: z.string() });
export const ThreadStartedNotification = z.looseObject({ thread: ThreadRef });

// Requests from the app-server the broker answers.
export const CommandApprovalParams = z.looseObject({ threadId: z.string(), turnId: z.string(), itemId: z.string(), command: z.string().nullable().optional(), cwd: z.string().nullable().optional(), reason: z.string().nullable().optional() });
export const FileChangeApprovalParams = z.looseObject({ threadId: z.string(), turnId: z.string(), itemId: z.string(), reason: z.string().nullable().optional(), grantRoot: z.string().nullable().optional() });
export const ApprovalDecision = z.enum(["accept", "decline", "cancel"]);
export const ApprovalResponse = z.object({ decision: ApprovalDecision });
export const ChatgptAuthTokensRefreshParams = z.looseObject({ reason: z.string() });
export const ChatgptAuthTokensRefreshResponse = z.object({
  accessToken: z.string(),
  chatgptAccountId: z.string(),
  chatgptPlanType: z.string().nullable().optional(),
});

export type Direction = "request" | "client-notification" | "notification" | "server-request";

export interface ContractEntry {
  direction: Direction;
  method: string;
  params?: z.ZodType;
  /** The response's definition name in the generated schema, and our schema for it. */
  result?: { definition: string; schema: z.ZodType };
}

/** Everything the broker relies on, checked against the real schema by the contract test. */
export const APP_SERVER_CONTRACT: ContractEntry[] = [
  { direction: "request", method: "initialize", params: InitializeParams, result: { definition: "InitializeResponse", schema: InitializeResponse } },
  { direction: "client-notification", method: "initialized" },
  { direction: "request", method: "thread/start", params: ThreadStartParams, result: { definition: "ThreadStartResponse", schema: ThreadStartResponse } },
  { direction: "request", method: "thread/resume", params: ThreadResumeParams, result: { definition: "ThreadResumeResponse", schema: ThreadResumeResponse } },
  { direction: "request", method: "thread/unsubscribe", params: ThreadUnsubscribeParams, result: { definition: "ThreadUnsubscribeResponse", schema: ThreadUnsubscribeResponse } },
  { direction: "request", method: "turn/start", params: TurnStartParams, result: { definition: "TurnStartResponse", schema: TurnStartResponse } },
  { direction: "request", method: "turn/interrupt", params: TurnInterruptParams },
  { direction: "request", method: "account/login/start", params: ChatgptAuthTokensLoginParams },
  { direction: "notification", method: "thread/started", params: ThreadStartedNotification },
  { direction: "notification", method: "thread/closed", params: ThreadClosedNotification },
  { direction: "notification", method: "turn/started", params: TurnStartedNotification },
  { direction: "notification", method: "item/started", params: ItemNotification },
  { direction: "notification", method: "item/completed", params: ItemNotification },
  { direction: "notification", method: "item/agentMessage/delta", params: AgentMessageDeltaNotification },
  { direction: "notification", method: "turn/completed", params: TurnCompletedNotification },
  { direction: "notification", method: "error", params: ErrorNotification },
  { direction: "server-request", method: "item/commandExecution/requestApproval", params: CommandApprovalParams, result: { definition: "CommandExecutionRequestApprovalResponse", schema: ApprovalResponse } },
  { direction: "server-request", method: "item/fileChange/requestApproval", params: FileChangeApprovalParams, result: { definition: "FileChangeRequestApprovalResponse", schema: ApprovalResponse } },
  { direction: "server-request", method: "account/chatgptAuthTokens/refresh", params: ChatgptAuthTokensRefreshParams, result: { definition: "ChatgptAuthTokensRefreshResponse", schema: ChatgptAuthTokensRefreshResponse } },
];
