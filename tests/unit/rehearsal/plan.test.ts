import { describe, expect, it } from "vitest";
import { parseToolOutput, planResponse, tokenFingerprint, type Plan } from "../../../src/rehearsal/plan.js";

const tools = [
  { type: "function", name: "exec_command", parameters: { properties: { cmd: {}, yield_time_ms: {} } } },
  { type: "function", name: "write_stdin", parameters: { properties: { session_id: {}, chars: {} } } },
];
const ctx = { token: "sk-test-123", nonce: () => "n0" };
const user = (text: string) => ({ type: "message", role: "user", content: [{ type: "input_text", text }] });
const call = (callId: string) => ({ type: "function_call", call_id: callId, name: "exec_command", arguments: "{}" });
const output = (callId: string, text: string) => ({ type: "function_call_output", call_id: callId, output: text });
const done = (out: string, code = 0) => `Chunk ID: x\nWall time: 0.1 seconds\nProcess exited with code ${code}\nOutput:\n${out}`;

function expectCall(p: Plan): Extract<Plan, { kind: "call" }> {
  if (p.kind !== "call") throw new Error(`expected a call, got ${JSON.stringify(p)}`);
  return p;
}

describe("planResponse", () => {
  it("echoes a prompt without directives", () => {
    expect(planResponse({ input: [user("hello")], tools }, ctx)).toEqual({ kind: "message", text: "echo: hello" });
  });

  it("runs tool directives one call at a time, then answers with their results", () => {
    const prompt = user("#fake write a.txt hi\n#fake run echo yo\n#fake auth");
    const first = expectCall(planResponse({ input: [prompt], tools }, ctx));
    expect(first.name).toBe("exec_command");
    expect(JSON.parse(first.arguments).cmd).toContain("a.txt");
    const second = expectCall(planResponse({ input: [prompt, call(first.callId), output(first.callId, done(""))], tools }, ctx));
    expect(JSON.parse(second.arguments).cmd).toBe("echo yo");
    const final = planResponse(
      { input: [prompt, call(first.callId), output(first.callId, done("")), call(second.callId), output(second.callId, done("yo"))], tools },
      ctx,
    );
    expect(final).toEqual({ kind: "message", text: `wrote a.txt\nran echo yo:\nyo\nauth: ${tokenFingerprint("sk-test-123")}` });
  });

  it("polls a command that is still running until it exits", () => {
    const prompt = user("#fake sleep 40000");
    const first = expectCall(planResponse({ input: [prompt], tools }, ctx));
    expect(JSON.parse(first.arguments).yield_time_ms).toBe(30000);
    const running = "Chunk ID: x\nWall time: 30.0 seconds\nProcess running with session ID 7\nOutput:\n";
    const poll = expectCall(planResponse({ input: [prompt, call(first.callId), output(first.callId, running)], tools }, ctx));
    expect(poll.name).toBe("write_stdin");
    expect(JSON.parse(poll.arguments)).toMatchObject({ session_id: 7, chars: "" });
    const final = planResponse({ input: [prompt, call(first.callId), output(first.callId, running), call(poll.callId), output(poll.callId, done(""))], tools }, ctx);
    expect(final).toEqual({ kind: "message", text: "slept 40000 ms" });
  });

  it("fails with 400 when a fail directive is reached, after the steps before it", () => {
    const prompt = user("#fake run true\n#fake fail boom");
    const first = expectCall(planResponse({ input: [prompt], tools }, ctx));
    expect(planResponse({ input: [prompt, call(first.callId), output(first.callId, done(""))], tools }, ctx)).toEqual({ kind: "fail", status: 400, message: "boom" });
  });

  it("stalls on #fake stall", () => {
    expect(planResponse({ input: [user("#fake stall")], tools }, ctx)).toEqual({ kind: "stall" });
  });

  it("recalls every user message but Codex's own context blocks", () => {
    const input = [user("<environment_context>\n<cwd>/w</cwd>\n</environment_context>"), user("first"), { type: "message", role: "assistant", content: [] }, user("#fake recall")];
    expect(planResponse({ input, tools }, ctx)).toEqual({ kind: "message", text: `recall: ${JSON.stringify(["first", "#fake recall"])}` });
  });

  it("reports a failed write with its exit code", () => {
    const prompt = user("#fake write a.txt hi");
    const first = expectCall(planResponse({ input: [prompt], tools }, ctx));
    const final = planResponse({ input: [prompt, call(first.callId), output(first.callId, done("Read-only file system", 1))], tools }, ctx);
    expect(final).toEqual({ kind: "message", text: "write a.txt failed (exit 1): Read-only file system" });
  });

  it("asks to leave the sandbox for #fake run-escalated, where Codex's shell tool offers it", () => {
    const escalating = [{ type: "function", name: "exec_command", parameters: { properties: { cmd: {}, sandbox_permissions: {}, justification: {} } } }];
    const first = expectCall(planResponse({ input: [user("#fake run-escalated touch x")], tools: escalating }, ctx));
    expect(JSON.parse(first.arguments)).toMatchObject({ cmd: "touch x", sandbox_permissions: "require_escalated", justification: "May I run touch x?" });
    expect(JSON.parse(expectCall(planResponse({ input: [user("#fake run touch x")], tools: escalating }, ctx)).arguments)).not.toHaveProperty("sandbox_permissions");
    expect(planResponse({ input: [user("#fake run-escalated touch x")], tools }, ctx)).toMatchObject({ kind: "fail", status: 400, message: expect.stringContaining("no sandbox_permissions") });
  });

  it("says so when Codex offers no shell tool", () => {
    expect(planResponse({ input: [user("#fake run ls")], tools: [] }, ctx)).toMatchObject({ kind: "fail", status: 400, message: expect.stringContaining("no shell tool") });
  });
});

describe("parseToolOutput", () => {
  it("reads the JSON form of older shell tools", () => {
    expect(parseToolOutput(JSON.stringify({ output: "hi\n", metadata: { exit_code: 3 } }))).toEqual({ exitCode: 3, output: "hi\n", runningSession: null });
  });
});
