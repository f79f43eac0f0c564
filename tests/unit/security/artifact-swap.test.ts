// A task still running in the workspace may swap a directory for a symlink to a host directory
// (and back) while the broker collects another task's artifacts. Collection must never copy the
// host file and never fail because a path vanished under it: it skips what changed.
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { collectArtifacts, readInside } from "../../../src/artifacts/collect.js";

const base = mkdtempSync(path.join(os.tmpdir(), "cmw-swap-"));
afterAll(() => rmSync(base, { recursive: true, force: true }));

describe("artifacts while the workspace changes under the collector", () => {
  it("a directory swapped for a link to a host directory, thousands of times: never the host file, never a crash", async () => {
    const ws = path.join(base, "ws");
    const host = path.join(base, "host");
    mkdirSync(path.join(ws, "d"), { recursive: true });
    mkdirSync(host);
    writeFileSync(path.join(ws, "d", "f.txt"), "inside");
    writeFileSync(path.join(host, "f.txt"), "HOST SECRET");
    // The swapper: d is a real directory, then gone, then a link to the host directory, then back.
    const swapper = spawn("bash", ["-c", `cd '${ws}' && while :; do mv d d.real; ln -s '${host}' d; rm d; mv d.real d; done`], { stdio: "ignore" });
    const seen = { inside: 0, skipped: 0, collected: 0 };
    try {
      const dest = path.join(base, "dest");
      for (let i = 0; i < 4000; i++) {
        const data = readInside(ws, "d/f.txt");
        if (data !== null) expect(data.toString()).toBe("inside");
        rmSync(dest, { recursive: true, force: true });
        const entries = collectArtifacts(ws, ["d/**"], dest);
        for (const e of entries) expect(readFileSync(path.join(dest, e.path), "utf8")).toBe("inside");
        seen.collected += entries.length;
        if (data === null) seen.skipped++;
        else seen.inside++;
      }
    } finally {
      const exited = swapper.exitCode !== null || swapper.signalCode !== null ? null : new Promise((r) => swapper.once("exit", r));
      swapper.kill("SIGKILL");
      await exited;
    }
    // The swaps really happened during the run, and the real file was collected in between.
    expect(seen.skipped).toBeGreaterThan(0);
    expect(seen.inside).toBeGreaterThan(0);
    expect(seen.collected).toBeGreaterThan(0);
  });
});
