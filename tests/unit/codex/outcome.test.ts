// A task's errorCode comes from the error object that ended its turn, unchanged, and only when no
// error object said one does the outcome's status imply it.
import { describe, expect, it } from "vitest";
import { failedBy, outcomeCode } from "../../../src/codex/driver.js";
import { WorkerError } from "../../../src/errors.js";
import { taskErrorCode, TaskErrorCodeSchema } from "../../../src/state/record.js";

describe("turn outcomes' error codes", () => {
  it("keeps the code and the message of the error that failed the turn", () => {
    const o = failedBy("t1", new WorkerError("WORKER_EXITED", "c1 exited with code 137"), "worker c1: ");
    expect(o).toEqual({ status: "failed", threadId: "t1", finalMessage: null, error: "worker c1: c1 exited with code 137", errorCode: "WORKER_EXITED" });
    expect(outcomeCode(o)).toBe("WORKER_EXITED");
    expect(failedBy(null, new Error("plain")).errorCode).toBeUndefined();
  });
  it("falls back on the status only when no error gave a code", () => {
    expect(outcomeCode({ status: "timed_out" })).toBe("TURN_TIMED_OUT");
    expect(outcomeCode({ status: "cancelled" })).toBe("CANCELLED");
    expect(outcomeCode({ status: "lost" })).toBe("CONVERSATION_LOST");
    expect(outcomeCode({ status: "failed" })).toBe("TURN_FAILED");
    expect(outcomeCode({ status: "succeeded" })).toBeUndefined();
  });
  it("every broker error code is a valid task errorCode, in lower case", () => {
    expect(TaskErrorCodeSchema.parse(taskErrorCode("WORKER_EXITED"))).toBe("worker_exited");
    expect(TaskErrorCodeSchema.safeParse("WORKER_EXITED").success).toBe(false);
  });
});
