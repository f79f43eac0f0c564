// withDeadline: the work's outcome or the deadline's, whichever comes first, and no timer left
// behind either way (a timer left pending kept `doctor` alive until the CLI's forced exit).
import { describe, expect, it } from "vitest";
import { withDeadline } from "../../src/deadline.js";

const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === "Timeout").length;
const after = <T>(ms: number, v: T): Promise<T> => new Promise((r) => setTimeout(() => r(v), ms));

describe("withDeadline", () => {
  it("gives the work's value when it comes first, and leaves no timer pending", async () => {
    const before = timers();
    await expect(withDeadline(Promise.resolve("done"), 60_000, () => "late")).resolves.toBe("done");
    expect(timers()).toBe(before);
  });

  it("gives the work's failure when it comes first, and leaves no timer pending", async () => {
    const before = timers();
    await expect(withDeadline(Promise.reject(new Error("broke")), 60_000, () => "late")).rejects.toThrow("broke");
    expect(timers()).toBe(before);
  });

  it("gives what late() gives once the deadline passes first, or fails with what it throws", async () => {
    await expect(withDeadline(after(5_000, "done"), 10, () => "late")).resolves.toBe("late");
    await expect(
      withDeadline(after(5_000, "done"), 10, () => {
        throw new Error("too slow");
      }),
    ).rejects.toThrow("too slow");
  });

  it("does not call late() when the work came first", async () => {
    let called = 0;
    await withDeadline(after(5, "done"), 50, () => ++called);
    await after(80, null);
    expect(called).toBe(0);
  });
});
