// The pieces of checks, attempts and budgets that need no Docker (the mission fields and their
// errors are in load.test.ts): token budgets, the bounded output of a command, the rehearsal model's attempt
// directives, the attempt label and JUnit's failure and system-out for a check.
import { describe, expect, it } from "vitest";
import { junitReport } from "../../../src/cli/run-mission.js";
import { TaskBudget, TokenBudget } from "../../../src/mission/budget.js";
import { parseDirectives } from "../../../src/rehearsal/directives.js";
import { planResponse } from "../../../src/rehearsal/plan.js";
import { ZERO_USAGE } from "../../../src/relay/usage.js";
import { attemptLabel, type MissionRecord, type TaskRecord } from "../../../src/state/store.js";
import { HeadTail, tailLines } from "../../../src/worker/command.js";

describe("token budgets", () => {
  const used = (inputTokens: number, outputTokens: number) => ({ ...ZERO_USAGE, inputTokens, outputTokens, cachedInputTokens: inputTokens, reasoningOutputTokens: outputTokens, requests: 1 });

  it("count input plus output tokens, refuse once spent, and tell who spent a shared budget", () => {
    const mission = new TokenBudget("the mission's max_tokens", 1000);
    const spentBy: string[] = [];
    const a = new TaskBudget([new TokenBudget("the task's max_tokens", 600), mission], (b) => spentBy.push(`a:${b.name}`));
    const b = new TaskBudget([mission], (x) => spentBy.push(`b:${x.name}`));
    a.spend(used(200, 100));
    expect(a.refusal()).toBeNull();
    b.spend(used(300, 100));
    expect(mission.used).toBe(700);
    a.spend(used(250, 50)); // a: 600 of its 600; the mission: 1000 of 1000
    expect(spentBy).toEqual(["a:the task's max_tokens", "a:the mission's max_tokens"]);
    expect(a.refusal()).toBe("budget_exceeded: the task's max_tokens (600 tokens) is spent: 600 used; the broker refuses the task's further model calls");
    expect(a.exceeded()?.name).toBe("the task's max_tokens");
    // b did not spend the mission's budget: it is refused further calls, but only then did it run out.
    expect(b.exceeded()).toBeUndefined();
    expect(b.refusal()).toMatch(/the mission's max_tokens \(1000 tokens\) is spent: 1000 used/);
    expect(b.exceeded()?.name).toBe("the mission's max_tokens");
  });
});

describe("a command's output, kept within a bound", () => {
  it("keeps all of a short output", () => {
    const k = new HeadTail(100);
    k.push(Buffer.from("hello "));
    k.push(Buffer.from("world"));
    expect(k.result()).toEqual({ data: Buffer.from("hello world"), leftOut: 0 });
  });

  it("keeps the head and the tail of a long one, and says how much is left out", () => {
    const k = new HeadTail(20);
    for (let i = 0; i < 1000; i++) k.push(Buffer.from(String(i % 10)));
    const { data, leftOut } = k.result();
    expect(leftOut).toBe(980);
    expect(k.total).toBe(1000);
    const text = data.toString();
    expect(text.startsWith("0123456789")).toBe(true);
    expect(text.endsWith("0123456789")).toBe(true);
    expect(text).toContain("[… 980 bytes of output left out here");
  });

  it("gives the last lines of a text", () => {
    expect(tailLines("a\nb\nc\n\n", 2)).toBe("b\nc");
    expect(tailLines("x".repeat(50), 5, 10)).toBe(`…${"x".repeat(10)}`);
  });
});

describe("the rehearsal model's attempt directives", () => {
  const tools = [{ type: "function", name: "exec_command", parameters: { properties: { cmd: {}, yield_time_ms: {} } } }];
  const ctx = { token: null, nonce: () => "n0" };
  const user = (text: string) => ({ type: "message", role: "user", content: [{ type: "input_text", text }] });
  const script = "#fake on-attempt 1 write f.txt wrong\n#fake on-attempt 2 write f.txt right";

  it("parses on-attempt and tokens, and names a bad one", () => {
    expect(parseDirectives(`${script}\n#fake tokens 50`)).toEqual([
      { kind: "on-attempt", attempt: 1, directive: { kind: "write", path: "f.txt", text: "wrong" } },
      { kind: "on-attempt", attempt: 2, directive: { kind: "write", path: "f.txt", text: "right" } },
      { kind: "tokens", count: 50 },
    ]);
    expect(parseDirectives("#fake on-attempt two write x y")[0]).toMatchObject({ kind: "fail", message: expect.stringMatching(/expected `#fake on-attempt <n> <directive>`/) });
    expect(parseDirectives("#fake on-attempt 2 on-attempt 3 run x")[0]).toMatchObject({ kind: "fail", message: expect.stringMatching(/cannot nest/) });
  });

  it("reads the attempt from the conversation: a later message without directives continues the script", () => {
    const first = planResponse({ input: [user(script)], tools }, ctx);
    expect(first.kind === "call" && JSON.parse(first.arguments).cmd).toContain("wrong");
    const second = planResponse({ input: [user(script), user("The check failed; fix it.")], tools }, ctx);
    expect(second.kind === "call" && JSON.parse(second.arguments).cmd).toContain("right");
    // A script with no on-attempt directive is not continued: a plain reply is echoed.
    expect(planResponse({ input: [user("#fake run ls"), user("hello")], tools }, ctx)).toEqual({ kind: "message", text: "echo: hello" });
  });

  it("reports the given output tokens on every answer of the turn", () => {
    expect(planResponse({ input: [user("#fake tokens 700\n#fake run ls")], tools }, ctx)).toMatchObject({ kind: "call", outputTokens: 700 });
  });
});

describe("attempts in the records and reports", () => {
  const task = (o: Partial<TaskRecord>): TaskRecord => ({ id: "t", status: "failed", conversationId: null, finalMessage: null, error: null, container: null, startedAt: null, finishedAt: null, artifacts: [], ...o });
  const attempt = (n: number, exitCode: number) => ({ attempt: n, turn: "succeeded" as const, turnError: null, startedAt: "", finishedAt: "", durationMs: 1, check: { command: "make test", exitCode, timedOut: false, durationMs: 1, bytes: 3, outputTail: "bad" } });

  it("labels the attempt a task is on, or ended on", () => {
    expect(attemptLabel(task({}))).toBeNull();
    expect(attemptLabel(task({ status: "running", maxAttempts: 3, attempts: [attempt(1, 1)] }))).toBe("2/3");
    expect(attemptLabel(task({ status: "failed", maxAttempts: 3, attempts: [attempt(1, 1), attempt(2, 1), attempt(3, 1)] }))).toBe("3/3");
    expect(attemptLabel(task({ status: "queued", maxAttempts: 2, attempts: [] }))).toBe("1/2");
  });

  it("puts a failed check in JUnit: its error as the failure, its log as system-out", () => {
    const m: MissionRecord = {
      missionId: "m-1",
      name: "ci",
      status: "failed",
      workspace: "/w",
      createdAt: "2026-12-01T00:00:00Z",
      updatedAt: "",
      finishedAt: "",
      bundle: null,
      tasks: [task({ errorCode: "check_failed", error: "check `make test` exited with code 2", maxAttempts: 1, attempts: [attempt(1, 2)] }), task({ id: "plain", status: "succeeded" })],
    };
    const xml = junitReport(m, (t) => (t.id === "t" ? "=== attempt 1: $ make test\n<bad> & \u0001worse\n" : null));
    expect(xml).toContain('<failure message="failed: check `make test` exited with code 2" type="check_failed">');
    expect(xml).toContain("<system-out>=== attempt 1: $ make test\n&lt;bad&gt; &amp; \uFFFDworse\n</system-out>");
    expect(xml).toContain('<testcase classname="ci" name="plain" time="0"></testcase>');
  });
});
