import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { resolveConfig } from "../../../src/config/load.js";
import { MissionError } from "../../../src/errors.js";
import { loadMission, validateMission } from "../../../src/mission/load.js";
import { scaffoldMission } from "../../../src/mission/scaffold.js";

const config = resolveConfig({ workers: [{ name: "default" }, { name: "big" }], broker: { max_prompt_bytes: 100, max_tasks_per_mission: 3 } }, "t", {});

function file(name: string, text: string): string {
  const p = path.join(mkdtempSync(path.join(os.tmpdir(), "cmw-mission-")), name);
  writeFileSync(p, text);
  return p;
}

function problems(input: unknown): string[] {
  try {
    validateMission(input, config);
  } catch (e) {
    if (e instanceof MissionError) return e.details?.problems as string[];
    throw e;
  }
  throw new Error("expected a MissionError");
}

describe("missions", () => {
  it("reads JSON and YAML", () => {
    const m = { name: "m", tasks: [{ id: "a", prompt: "do a", timeout: "90s", artifacts: ["out/**"] }] };
    expect(loadMission(file("m.json", JSON.stringify(m)), config).tasks[0]).toMatchObject({ id: "a", timeout: 90_000 });
    expect(loadMission(file("m.yaml", "name: m\ntasks:\n  - id: a\n    prompt: do a\n"), config).name).toBe("m");
  });

  it("names the task and the field of each problem", () => {
    expect(
      problems({
        name: "m",
        tasks: [
          { id: "build", prompt: "x", promt: "typo" },
          { id: "build", prompt: "y" },
          { id: "c", prompt: "z", preferred_worker: "gpu", artifacts: ["../secrets/*", "/etc/passwd"], sandbox: "yolo" },
        ],
      }),
    ).toEqual([
      'tasks[0] ("build"): unknown field "promt"',
      'tasks[2] ("c").sandbox: expected one of "read-only", "workspace-write", "danger-full-access"',
      'tasks[2] ("c").artifacts[0]: "../secrets/*" climbs out of the workspace with ".."; artifact globs stay inside it',
      'tasks[2] ("c").artifacts[1]: "/etc/passwd" is absolute; artifact globs are relative to the workspace',
    ]);
    expect(problems({ name: "m", tasks: [{ id: "build", prompt: "x" }, { id: "build", prompt: "y" }, { id: "c", prompt: "z", preferred_worker: "gpu" }] })).toEqual([
      'tasks[1] ("build").id: duplicate id, also used by tasks[0]; give each task its own id',
      'tasks[2] ("c").preferred_worker: no worker profile "gpu"; known: "default", "big"',
    ]);
  });

  it("refuses ids with path characters, oversized prompts and too many tasks", () => {
    expect(problems({ name: "m", tasks: [{ id: "../escape", prompt: "x" }] })).toEqual([
      expect.stringMatching(/^tasks\[0\] \("\.\.\/escape"\)\.id: expected an id of letters/),
    ]);
    expect(problems({ name: "m", tasks: [{ id: "a", prompt: "x".repeat(101) }] })).toEqual(['tasks[0] ("a").prompt: 101 bytes, more than the 100 allowed (broker.max_prompt_bytes)']);
    expect(problems({ name: "m", tasks: [1, 2, 3, 4].map((i) => ({ id: `t${i}`, prompt: "x" })) })).toEqual(["tasks: 4 tasks, more than the 3 allowed (broker.max_tasks_per_mission)"]);
  });

  it("says what is wrong with a missing, malformed or empty mission", () => {
    expect(() => loadMission("/nonexistent/m.json", config)).toThrow(/cannot read the mission file \(no such file\)/);
    expect(() => loadMission(file("m.json", "{ nope"), config)).toThrow(/not valid JSON/);
    expect(() => loadMission(file("m.yaml", "name: [unclosed"), config)).toThrow(/not valid YAML/);
    expect(problems({ tasks: [] })).toEqual(["name: expected the mission's name", "tasks: expected at least one task"]);
    expect(problems([1])).toEqual(["(root): expected an object"]);
  });

  it("scaffolds a starter mission that validates", () => {
    const m = loadMission(file("mission.yaml", scaffoldMission()), config);
    expect(m.tasks.map((t) => t.id)).toEqual(["summarize", "check"]);
    expect(m.defaults).toMatchObject({ sandbox: "workspace-write", approval_policy: "never", timeout: 600_000 });
  });
});
