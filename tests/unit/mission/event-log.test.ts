// A task's event log within bounds: each command's streamed output up to its head, then counted
// and summed up with its tail when the command ends; the task's head over all commands; long
// texts in any event cut to their first and last part.
import { describe, expect, it } from "vitest";
import { cutText, EVENT_LOG_LIMITS, TaskEventLog } from "../../../src/mission/event-log.js";

const delta = (itemId: string, text: string) => ({ method: "item/commandExecution/outputDelta", params: { itemId, delta: text } });
const done = (id: string) => ({ method: "item/completed", params: { item: { type: "commandExecution", id } } });

describe("the bounded event log", () => {
  it("logs a command's output up to its head, then one output_left_out event with the count and the tail", () => {
    const logged: Record<string, unknown>[] = [];
    const log = new TaskEventLog((e) => logged.push(e as Record<string, unknown>));
    const chunk = "x".repeat(1023) + "\n";
    for (let i = 0; i < 100; i++) log.codex(delta("c1", chunk)); // 100 KiB
    log.codex(done("c1"));
    const deltas = logged.filter((e) => e.type === "codex" && (e.message as { method: string }).method.endsWith("outputDelta"));
    expect(deltas).toHaveLength(EVENT_LOG_LIMITS.commandHead / 1024);
    const left = logged.filter((e) => e.type === "output_left_out");
    expect(left).toEqual([{ type: "output_left_out", itemId: "c1", loggedBytes: 64 * 1024, leftOutBytes: 36 * 1024, tail: chunk.repeat(16) }]);
    expect(logged.at(-1)).toEqual(left[0]); // after the command's own end event
    expect(logged.at(-2)).toEqual({ type: "codex", message: done("c1") });
  });

  it("holds every command to the task's head too, and sums up open commands at the task's end (mcp-server deltas, base64)", () => {
    const logged: Record<string, unknown>[] = [];
    const log = new TaskEventLog((e) => logged.push(e as Record<string, unknown>));
    const kib = Buffer.from("y".repeat(1024)).toString("base64");
    for (let c = 0; c < 80; c++) for (let i = 0; i < 64; i++) log.codex({ type: "exec_command_output_delta", call_id: `k${c}`, chunk: kib });
    log.close();
    const loggedBytes = logged.filter((e) => e.type === "codex").length * 1024;
    expect(loggedBytes).toBe(EVENT_LOG_LIMITS.taskHead);
    const left = logged.filter((e) => e.type === "output_left_out") as { leftOutBytes: number }[];
    expect(left).toHaveLength(80 - EVENT_LOG_LIMITS.taskHead / EVENT_LOG_LIMITS.commandHead);
    expect(left.every((e) => e.leftOutBytes === 64 * 1024)).toBe(true);
  });

  it("cuts any long text in an event to its first and last half, and leaves short ones", () => {
    const logged: Record<string, unknown>[] = [];
    new TaskEventLog((e) => logged.push(e as Record<string, unknown>)).write({ type: "command_finished", output: "a".repeat(100_000), exitCode: 0, nested: [{ text: "short" }] });
    const out = logged[0]!.output as string;
    expect(out.length).toBeLessThan(EVENT_LOG_LIMITS.text + 100);
    expect(out).toContain(`[… ${100_000 - EVENT_LOG_LIMITS.text} characters left out of the event log …]`);
    expect(logged[0]!.nested).toEqual([{ text: "short" }]);
    expect(cutText("abc")).toBe("abc");
  });
});
