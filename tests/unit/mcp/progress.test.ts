// MCP progress for a mission: strictly increasing with every notification, never past the total,
// and exactly the total when every task has finished, whatever the order of events.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ProgressMeter } from "../../../src/mcp/progress.js";

describe("ProgressMeter", () => {
  it("strictly increases over any interleaving of events and ends, and ends at the total", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 6 }), fc.array(fc.nat({ max: 20 }), { maxLength: 200 }), (n, picks) => {
        const meter = new ProgressMeter(n);
        const open = Array.from({ length: n }, (_, i) => `t${i}`);
        const values: number[] = [];
        for (const p of picks) {
          if (!open.length) break;
          const id = open[p % open.length]!;
          // one pick in five ends its task; the others are events of it
          if (p % 5 === 0) {
            open.splice(open.indexOf(id), 1);
            values.push(meter.finish(id));
          } else values.push(meter.event(id));
        }
        for (const id of [...open]) values.push(meter.finish(id));
        for (let i = 1; i < values.length; i++) expect(values[i]).toBeGreaterThan(values[i - 1]!);
        for (const v of values) expect(v).toBeLessThanOrEqual(n);
        expect(values.at(-1)).toBe(n);
        expect(meter.total).toBe(n);
      }),
    );
  });

  it("a one-task mission: started, commands, a message, then 1 of 1", () => {
    const meter = new ProgressMeter(1);
    const values = [meter.event("a"), meter.event("a"), meter.event("a"), meter.event("a"), meter.finish("a")];
    expect(values[0]).toBeGreaterThan(0);
    for (let i = 1; i < values.length; i++) expect(values[i]).toBeGreaterThan(values[i - 1]!);
    expect(values.at(-1)).toBe(1);
  });

  it("stays strictly increasing past the events a double can tell apart", () => {
    const meter = new ProgressMeter(2);
    meter.finish("done");
    let last = 0;
    for (let i = 0; i < 200_000; i++) {
      const v = meter.event("busy");
      expect(v > last).toBe(true);
      last = v;
    }
    expect(last).toBeLessThan(2);
    expect(meter.finish("busy")).toBe(2);
  });
});
