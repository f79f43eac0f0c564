// docs/configuration.md documents every wrapper.toml key the code accepts, with its default:
// the keys are read from the zod schema itself, so a key added to the code and not to the doc
// fails here.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { BrokerSchema, EngineSchema, WorkerProfileSchema } from "../../../src/config/schema.js";
import { ENV_OVERRIDES } from "../../../src/config/load.js";

const doc = readFileSync("docs/configuration.md", "utf8");

/** The rows of the markdown table under a heading: key → default column. */
function table(heading: RegExp): Map<string, string> {
  const start = doc.search(heading);
  expect(start, `heading ${heading} in docs/configuration.md`).toBeGreaterThanOrEqual(0);
  const rows = new Map<string, string>();
  for (const line of doc.slice(start).split("\n").slice(1)) {
    if (line.startsWith("#")) break;
    const m = /^\| `([a-z_]+)` \| ([^|]+) \|/.exec(line);
    if (m) rows.set(m[1]!, m[2]!.trim());
  }
  return rows;
}

function keysOf(schema: unknown): string[] {
  // zod 4: an object schema has .shape; a refined one wraps it (def.in / def.schema).
  let s = schema as { shape?: Record<string, unknown>; def?: { in?: unknown; schema?: unknown } };
  for (let i = 0; i < 5 && !s.shape; i++) s = (s.def?.in ?? s.def?.schema) as typeof s;
  return Object.keys(s.shape!);
}

describe("docs/configuration.md", () => {
  it("has a row with a default for every [broker] key", () => {
    const rows = table(/^## \[broker\]/m);
    const keys = keysOf(BrokerSchema);
    expect(keys.length).toBeGreaterThan(10);
    for (const k of keys) {
      expect(rows.has(k), `[broker] ${k} is not documented`).toBe(true);
      expect(rows.get(k), `[broker] ${k} has no default`).not.toBe("");
    }
    expect([...rows.keys()].filter((k) => !keys.includes(k))).toEqual([]);
  });

  it("has a row with a default for every [[workers]] key", () => {
    const rows = table(/^## \[\[workers\]\]/m);
    const keys = keysOf(WorkerProfileSchema);
    expect(keys).toContain("warm_workspaces");
    for (const k of keys) {
      expect(rows.has(k), `[[workers]] ${k} is not documented`).toBe(true);
      expect(rows.get(k), `[[workers]] ${k} has no default`).not.toBe("");
    }
    expect([...rows.keys()].filter((k) => !keys.includes(k))).toEqual([]);
  });

  it("has a row with a default for every [[engines]] key", () => {
    const rows = table(/^## \[\[engines\]\]/m);
    const keys = keysOf(EngineSchema);
    expect(keys).toContain("max_containers");
    for (const k of keys) {
      expect(rows.has(k), `[[engines]] ${k} is not documented`).toBe(true);
      expect(rows.get(k), `[[engines]] ${k} has no default`).not.toBe("");
    }
    expect([...rows.keys()].filter((k) => !keys.includes(k))).toEqual([]);
  });

  it("lists every environment variable the loader applies", () => {
    for (const name of [...Object.keys(ENV_OVERRIDES), "CODEX_WRAPPER_CONFIG", "CODEX_WRAPPER_WORKER_IMAGE"]) expect(doc, name).toContain(`\`${name}\``);
  });
});
