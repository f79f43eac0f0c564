import { describe, expect, it } from "vitest";
import { streamTurn, type CodexDriver, type DriverEvent, type TurnRequest } from "../../../src/codex/driver.js";

/** A driver double for the stream adapter only (the real drivers are tested against real Codex). */
function driver(events: DriverEvent[], end: "ok" | "throw"): CodexDriver {
  return {
    protocol: "app-server",
    open: async () => {},
    close: async () => {},
    runTurn: async (req: TurnRequest) => {
      for (const e of events) {
        await new Promise((r) => setTimeout(r, 1));
        req.onEvent?.(e);
      }
      if (end === "throw") throw new Error("boom");
      return { status: "succeeded", threadId: "t", finalMessage: "done", error: null };
    },
  };
}

describe("streamTurn", () => {
  it("yields every event in order, then returns the outcome", async () => {
    const events: DriverEvent[] = [{ kind: "turn_started", turnId: "u" }, { kind: "agent_message", text: "hi" }];
    const gen = streamTurn(driver(events, "ok"), { prompt: "p", approvalPolicy: "never" });
    const seen: DriverEvent[] = [];
    let r = await gen.next();
    while (!r.done) {
      seen.push(r.value);
      r = await gen.next();
    }
    expect(seen).toEqual(events);
    expect(r.value).toMatchObject({ status: "succeeded", finalMessage: "done" });
  });

  it("rethrows the driver's failure after the events it sent", async () => {
    const gen = streamTurn(driver([{ kind: "warning", message: "w" }], "throw"), { prompt: "p", approvalPolicy: "never" });
    expect((await gen.next()).value).toEqual({ kind: "warning", message: "w" });
    await expect(gen.next()).rejects.toThrow("boom");
  });
});
