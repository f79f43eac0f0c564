// Threads started ahead are kept by their settings' key: the same settings must give the same
// key in any key order (a task's config comes from TOML, YAML and defaults merged), and any
// difference must give another key (a thread must never carry settings its task did not ask for).
import { describe, expect, it } from "vitest";
import { settingsKey } from "../../../src/codex/app-server-driver.js";

describe("settingsKey", () => {
  it("is the same for the same settings in any key order, and leaves out unset values", () => {
    const a = { cwd: "/workspace", model: "m", config: { "a.b": 1, x: [1, { y: 2, z: 3 }] }, baseInstructions: undefined };
    const b = { config: { x: [1, { z: 3, y: 2 }], "a.b": 1 }, model: "m", cwd: "/workspace" };
    expect(settingsKey(a)).toBe(settingsKey(b));
  });
  it("differs for any difference, array order included", () => {
    const base = { cwd: "/workspace", model: "m", config: { x: [1, 2] } };
    for (const other of [{ ...base, model: "n" }, { ...base, config: { x: [2, 1] } }, { ...base, developerInstructions: "" }, { ...base, config: { x: [1, 2], y: null } }]) expect(settingsKey(other)).not.toBe(settingsKey(base));
  });
});
