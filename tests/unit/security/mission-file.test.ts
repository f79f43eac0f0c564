// Mission and config files built to hurt the parser: too big, alias bombs, deep nesting, a FIFO.
// Each is refused with the project's error naming the file, quickly, without reading it whole.
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadConfig, resolveConfig } from "../../../src/config/load.js";
import { ConfigError, MissionError } from "../../../src/errors.js";
import { loadMission, MAX_MISSION_FILE_BYTES, validateMission } from "../../../src/mission/load.js";

const dir = mkdtempSync(path.join(os.tmpdir(), "cmw-hostile-files-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const config = resolveConfig({ broker: { allowed_workspace_roots: [dir] } }, "test", {});
const file = (name: string, text: string): string => {
  const p = path.join(dir, name);
  writeFileSync(p, text);
  return p;
};
const refusal = (run: () => unknown): Error => {
  try {
    run();
  } catch (e) {
    return e as Error;
  }
  throw new Error("not refused");
};

describe("hostile mission files", () => {
  it("a file over 16 MiB is refused by its size, not read", () => {
    const big = file("big.json", "");
    truncateSync(big, MAX_MISSION_FILE_BYTES + 1); // sparse: costs no disk
    const e = refusal(() => loadMission(big, config));
    expect(e).toBeInstanceOf(MissionError);
    expect(e.message).toBe(`${big}: the mission file is ${MAX_MISSION_FILE_BYTES + 1} bytes, more than the ${MAX_MISSION_FILE_BYTES} (16 MiB) a mission may be; split it into smaller missions`);
  });

  it("a YAML alias bomb is refused, not expanded", () => {
    const lines = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]'];
    for (let i = 1; i < 12; i++) lines.push(`${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(10).fill(`*${String.fromCharCode(96 + i)}`).join(",")}]`);
    lines.push("name: bomb", "tasks: [{id: t, prompt: *l}]");
    const e = refusal(() => loadMission(file("bomb.yaml", lines.join("\n")), config));
    expect(e).toBeInstanceOf(MissionError);
    expect(e.message).toMatch(/bomb\.yaml: not valid YAML: .*alias/i);
  });

  it.each([
    ["json", `{"name":"deep","tasks":[{"id":"t","prompt":"p","config":{"x":${"[".repeat(200_000)}${"]".repeat(200_000)}}}]}`],
    ["yaml", `name: deep\ntasks:\n  - id: t\n    prompt: p\n    config: {x: ${"[".repeat(50_000)}${"]".repeat(50_000)}}\n`],
  ])("a %s mission nested 10^5 deep parses or is refused, never a crash", (ext, text) => {
    try {
      loadMission(file(`deep.${ext}`, text), config);
    } catch (e) {
      expect(e).toBeInstanceOf(MissionError);
      expect((e as Error).message).toMatch(new RegExp(`deep\\.${ext}: `));
    }
  });

  it("a mission object nested 10^4 deep (as MCP arguments) is validated without a crash", () => {
    let deep: unknown = "x";
    for (let i = 0; i < 10_000; i++) deep = { d: deep };
    const m = validateMission({ name: "deep", tasks: [{ id: "t", prompt: "p", config: { deep } }] }, config);
    expect(m.tasks[0]!.id).toBe("t");
    const e = refusal(() => validateMission({ name: "deep", tasks: [{ id: "t", prompt: "p", env: deep }] }, config));
    expect(e).toBeInstanceOf(MissionError);
    expect(e.message).toMatch(/tasks\[0\] \("t"\)\.env\.d: expected a string value/);
  });

  it("a FIFO given to the CLI as a mission is read like a file (process substitution works)", () => {
    const fifo = path.join(dir, "m.fifo");
    execFileSync("mkfifo", [fifo]);
    // The writer is its own process: the read below blocks until it opens the FIFO.
    const writer = spawn("bash", ["-c", `echo '{"name":"fifo","tasks":[{"id":"t","prompt":"p"}]}' > '${fifo}'`], { stdio: "ignore" });
    writer.unref();
    try {
      expect(loadMission(fifo, config).name).toBe("fifo");
    } finally {
      writer.kill("SIGKILL"); // blocked in open() if the read never came
    }
  });
});

describe("hostile config files", () => {
  it.each([
    ["deep arrays", `[broker]\nlabel = ${"[".repeat(100_000)}${"]".repeat(100_000)}\n`],
    ["deep inline tables", `x = ${"{a=".repeat(10_000)}1${"}".repeat(10_000)}\n`],
    ["a huge integer", "[broker]\nport = 123456789012345678901234567890\n"],
    ["a NUL byte", "[broker]\nlabel = \"a\u0000b\"\n"],
  ])("%s: refused with the file and the reason", (_name, text) => {
    const e = refusal(() => loadConfig({ file: file("wrapper.toml", text), env: {} }));
    expect(e).toBeInstanceOf(ConfigError);
    expect(e.message).toMatch(/wrapper\.toml: /);
    expect(e.message).not.toMatch(/undefined|\[object Object\]/);
  });
});
