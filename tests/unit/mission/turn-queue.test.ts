// One turn of a conversation at a time (the integration tests in broker/results and workers/isolated
// drive it through real replies): order, the wait reported, a waiter cancelled, an error that does not
// stall the turns behind it, conversations that do not wait on each other, and a task's hold.
import { describe, expect, it } from "vitest";
import { TurnQueue } from "../../../src/mission/turn-queue.js";

function gate(): { open: () => void; opened: Promise<void> } {
  let open = (): void => {};
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { open, opened };
}

describe("TurnQueue", () => {
  it("runs one conversation's turns one at a time, in the order asked, and tells each how long it waited", async () => {
    const q = new TurnQueue();
    const log: string[] = [];
    const first = gate();
    const a = q.run("c1", undefined, async (waited) => {
      log.push(`a start ${waited}`);
      await first.opened;
      log.push("a end");
      return "a";
    }, () => "a cancelled");
    const b = q.run("c1", undefined, async (waited) => {
      log.push(`b start ${waited >= 20 ? "waited" : waited}`);
      return "b";
    }, () => "b cancelled");
    const c = q.run("c1", undefined, async () => {
      log.push("c start");
      return "c";
    }, () => "c cancelled");
    await new Promise((r) => setTimeout(r, 25));
    expect(log).toEqual(["a start 0"]);
    expect(q.waiting).toBe(2);
    first.open();
    expect(await Promise.all([a, b, c])).toEqual(["a", "b", "c"]);
    expect(log).toEqual(["a start 0", "a end", "b start waited", "c start"]);
    expect(q.waiting).toBe(0);
  });

  it("a waiter whose signal aborts ends cancelled without running; the turns after it still wait for the running one", async () => {
    const q = new TurnQueue();
    const log: string[] = [];
    const first = gate();
    const a = q.run("c1", undefined, async () => {
      await first.opened;
      log.push("a");
      return "a";
    }, () => "a cancelled");
    const ac = new AbortController();
    const b = q.run("c1", ac.signal, async () => {
      log.push("b");
      return "b";
    }, () => "b cancelled");
    const c = q.run("c1", undefined, async () => {
      log.push("c");
      return "c";
    }, () => "c cancelled");
    ac.abort();
    expect(await b).toBe("b cancelled");
    expect(q.waiting).toBe(1); // c still waits; b, cancelled, no longer does
    await new Promise((r) => setTimeout(r, 10));
    expect(log).toEqual([]);
    first.open();
    expect(await Promise.all([a, c])).toEqual(["a", "c"]);
    expect(log).toEqual(["a", "c"]);
    // Already aborted when asked, behind a running turn: cancelled at once.
    const hold = gate();
    const d = q.run("c1", undefined, () => hold.opened.then(() => "d"), () => "d cancelled");
    const e = q.run("c1", AbortSignal.abort(), async () => "e", () => "e cancelled");
    expect(await e).toBe("e cancelled");
    hold.open();
    expect(await d).toBe("d");
  });

  it("a turn that throws passes its error on and the next turn runs; other conversations never wait", async () => {
    const q = new TurnQueue();
    const first = gate();
    const a = q.run("c1", undefined, async () => {
      await first.opened;
      throw new Error("boom");
    }, () => "a cancelled");
    const b = q.run("c1", undefined, async () => "b", () => "b cancelled");
    const other = await q.run("c2", undefined, async (waited) => `other waited ${waited}`, () => "x");
    expect(other).toBe("other waited 0");
    first.open();
    await expect(a).rejects.toThrow("boom");
    expect(await b).toBe("b");
    // Once every turn has ended the conversation starts fresh: no wait.
    expect(await q.run("c1", undefined, async (waited) => waited, () => -1)).toBe(0);
  });

  it("hold keeps the conversation until released: turns asked meanwhile wait, in order", async () => {
    const q = new TurnQueue();
    const release = q.hold("c1");
    const log: string[] = [];
    const a = q.run("c1", undefined, async (waited) => {
      log.push(`a ${waited >= 20 ? "waited" : waited}`);
      return "a";
    }, () => "a cancelled");
    await new Promise((r) => setTimeout(r, 25));
    expect(log).toEqual([]);
    release();
    release(); // twice is harmless
    expect(await a).toBe("a");
    expect(log).toEqual(["a waited"]);
  });
});
