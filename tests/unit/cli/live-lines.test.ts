import { describe, expect, it } from "vitest";
import { LiveLines } from "../../../src/cli/live-lines.js";

const plain = (s: string): string => s.replace(/\x1b\[\d*[AK]/g, ""); // eslint-disable-line no-control-regex

describe("LiveLines", () => {
  it("draws one line per task and redraws the block in place", () => {
    let clock = 1000;
    const out: string[] = [];
    const live = new LiveLines(["build", "test"], (s) => out.push(s), 60, () => clock);
    live.render();
    expect(out[0]!.startsWith("\r")).toBe(true); // nothing drawn yet: no cursor move
    expect(plain(out[0]!)).toBe("\rbuild  queued   \ntest   queued   \n");
    live.update("build", "running", "$ npm test\nmore");
    clock = 4000;
    live.update("build", "succeeded");
    const last = out.at(-1)!;
    expect(last.startsWith("\x1b[2A\r")).toBe(true); // back over the two lines drawn before
    expect(plain(last)).toBe("\rbuild  succeeded 3s\ntest   queued   \n");
    clock = 9000;
    live.update("test", "running");
    expect(plain(out.at(-1)!)).toContain("build  succeeded 3s"); // a finished task's clock stopped
  });

  it("cuts lines to the terminal width", () => {
    const out: string[] = [];
    new LiveLines(["t"], (s) => out.push(s), 20).update("t", "running", "x".repeat(100));
    expect(plain(out[0]!).split("\n")[0]!.length).toBeLessThanOrEqual(21);
  });
});
