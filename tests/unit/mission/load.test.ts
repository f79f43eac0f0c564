import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { resolveConfig } from "../../../src/config/load.js";
import { MissionError } from "../../../src/errors.js";
import { loadMission, validateMission, workspaceModeOf } from "../../../src/mission/load.js";
import { scaffoldMission } from "../../../src/mission/scaffold.js";

const config = resolveConfig({ workers: [{ name: "default" }, { name: "big" }], broker: { max_prompt_bytes: 100, max_tasks_per_mission: 3 } }, "t", {});

function file(name: string, text: string): string {
  const p = path.join(mkdtempSync(path.join(os.tmpdir(), "cmw-mission-")), name);
  writeFileSync(p, text);
  return p;
}

/** The problems validateMission lists for a mission (it must throw a MissionError). */
function problems(input: unknown, cfg = config): string[] {
  try {
    validateMission(input, cfg);
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

describe("mission fields: check, check_timeout, attempts, max_tokens", () => {
  it("reads them on a task, in defaults and (max_tokens) on the mission", () => {
    const m = validateMission({ name: "m", max_tokens: 9000, defaults: { check: "npm test", attempts: 3, max_tokens: 4000 }, tasks: [{ id: "a", prompt: "p", check_timeout: "90s" }] }, config);
    expect(m.max_tokens).toBe(9000);
    expect(m.defaults).toMatchObject({ check: "npm test", attempts: 3, max_tokens: 4000 });
    expect(m.tasks[0]!.check_timeout).toBe(90_000);
  });

  it("names the field and the fix for each bad value", () => {
    expect(problems({ name: "m", tasks: [{ id: "a", prompt: "p", check: "  " }] })).toEqual(['tasks[0] ("a").check: expected a shell command, such as "npm test"']);
    expect(problems({ name: "m", tasks: [{ id: "a", prompt: "p", check: "x", attempts: 0 }] })).toEqual(['tasks[0] ("a").attempts: expected at least 1 attempt']);
    expect(problems({ name: "m", tasks: [{ id: "a", prompt: "p", check: "x", attempts: 11 }] })).toEqual(['tasks[0] ("a").attempts: expected at most 10 attempts']);
    expect(problems({ name: "m", tasks: [{ id: "a", prompt: "p", check: "x", attempts: 1.5 }] })).toEqual(['tasks[0] ("a").attempts: expected a whole number of attempts, 1 to 10']);
    expect(problems({ name: "m", tasks: [{ id: "a", prompt: "p", max_tokens: -1 }] })).toEqual(['tasks[0] ("a").max_tokens: expected a number of tokens above 0']);
    expect(problems({ name: "m", max_tokens: "lots", tasks: [{ id: "a", prompt: "p" }] })).toEqual(["max_tokens: expected a whole number of tokens, such as 200000"]);
    expect(problems({ name: "m", tasks: [{ id: "a", prompt: "p", check: "x", check_timeout: "soon" }] })[0]).toMatch(/^tasks\[0\] \("a"\)\.check_timeout: expected a duration/);
  });

  it("reads approval_timeout as milliseconds, and names the field when it is not a duration", () => {
    const m = validateMission({ name: "m", defaults: { approval_timeout: "2m" }, tasks: [{ id: "a", prompt: "p", approval_timeout: 30 }] }, config);
    expect(m.defaults?.approval_timeout).toBe(120_000);
    expect(m.tasks[0]!.approval_timeout).toBe(30_000);
    expect(problems({ name: "m", tasks: [{ id: "a", prompt: "p", approval_timeout: "forever" }] })[0]).toMatch(/^tasks\[0\] \("a"\)\.approval_timeout: expected a duration/);
    expect(problems({ name: "m", defaults: { approval_timeout: 0 }, tasks: [{ id: "a", prompt: "p" }] })[0]).toMatch(/^defaults\.approval_timeout: expected a duration/);
  });

  it("refuses attempts without a check to decide them", () => {
    expect(problems({ name: "m", tasks: [{ id: "a", prompt: "p", attempts: 2 }] })).toEqual([
      'tasks[0] ("a").attempts: 2 attempts need a check to decide each one; set check (e.g. "npm test") on the task or in defaults, or drop attempts',
    ]);
    expect(() => validateMission({ name: "m", defaults: { check: "true" }, tasks: [{ id: "a", prompt: "p", attempts: 2 }] }, config)).not.toThrow();
  });
});

describe("approval_policy and the exec driver", () => {
  it("refuses \"untrusted\" on a task whose profile runs codex exec (which refuses it), naming the field and the fix; app-server takes it", () => {
    const mixed = resolveConfig({ workers: [{ name: "app" }, { name: "ex", protocol: "exec" }] }, "t", {});
    const bad = (m: unknown): string[] => problems(m, mixed);
    expect(bad({ name: "m", tasks: [{ id: "a", prompt: "p", profile: "ex", approval_policy: "untrusted" }] })).toEqual([
      'tasks[0] ("a").approval_policy: "untrusted" cannot run on worker profile "ex" (protocol "exec"): codex exec refuses it; use "never" or "on-request", or a profile with protocol "app-server" (which forwards approvals to the client that asked)',
    ]);
    expect(bad({ name: "m", defaults: { profile: "ex", approval_policy: "untrusted" }, tasks: [{ id: "a", prompt: "p" }] })).toHaveLength(1);
    expect(() => validateMission({ name: "m", tasks: [{ id: "a", prompt: "p", approval_policy: "untrusted" }] }, mixed)).not.toThrow();
    expect(() => validateMission({ name: "m", tasks: [{ id: "a", prompt: "p", profile: "ex", approval_policy: "on-request" }] }, mixed)).not.toThrow();
  });
});

describe("workspace_mode, apply and copy_ignored", () => {
  const iso = resolveConfig({ workers: [{ name: "default" }, { name: "iso", workspace_mode: "isolated" }] }, "t", {});
  const problemsWith = (input: unknown): string[] => problems(input, iso);

  it("default to shared; a profile, the defaults or the task makes a task isolated", () => {
    expect(iso.workers.map((w) => w.workspace_mode)).toEqual(["shared", "isolated"]);
    const m = validateMission({ name: "m", tasks: [{ id: "a", prompt: "p" }, { id: "b", prompt: "p", profile: "iso", apply: true }, { id: "c", prompt: "p", workspace_mode: "isolated", copy_ignored: true }] }, iso);
    expect(m.tasks.map((t) => workspaceModeOf(t, m.defaults, iso.workers))).toEqual(["shared", "isolated", "isolated"]);
    const d = validateMission({ name: "m", defaults: { workspace_mode: "isolated", apply: true }, tasks: [{ id: "a", prompt: "p" }, { id: "b", prompt: "p", workspace_mode: "shared", apply: false }] }, iso);
    expect(d.tasks.map((t) => workspaceModeOf(t, d.defaults, iso.workers))).toEqual(["isolated", "shared"]);
  });

  it("name the field and the fix for a bad value, and for apply or copy_ignored on a shared task", () => {
    expect(problemsWith({ name: "m", tasks: [{ id: "a", prompt: "p", workspace_mode: "copy" }] })).toEqual(['tasks[0] ("a").workspace_mode: expected one of "shared", "isolated"']);
    expect(problemsWith({ name: "m", tasks: [{ id: "a", prompt: "p", workspace_mode: "isolated", apply: "yes" }] })).toEqual(['tasks[0] ("a").apply: expected true or false']);
    expect(problemsWith({ name: "m", defaults: { apply: true }, tasks: [{ id: "a", prompt: "p" }, { id: "b", prompt: "p", copy_ignored: true, workspace_mode: "isolated" }] })).toEqual([
      'tasks[0] ("a").apply: only an isolated task has a copy (a patch to apply), and this one is "shared"; set workspace_mode = "isolated" on the task or in defaults, or drop apply',
    ]);
    expect(() => resolveConfig({ workers: [{ name: "a", workspace_mode: "private" }] }, "wrapper.toml", {})).toThrow(/workers\[0\]\.workspace_mode: expected one of "shared", "isolated"/);
  });
});
