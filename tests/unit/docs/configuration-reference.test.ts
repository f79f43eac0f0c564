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
  // Each table: its heading, the schema whose keys it documents, and a key that must be among them.
  it.each([
    { section: "[broker]", heading: /^## \[broker\]/m, schema: BrokerSchema, known: "docker_timeout" },
    { section: "[[workers]]", heading: /^## \[\[workers\]\]/m, schema: WorkerProfileSchema, known: "warm_workspaces" },
    { section: "[[engines]]", heading: /^## \[\[engines\]\]/m, schema: EngineSchema, known: "max_containers" },
  ])("has a row with a default for every $section key, and none for a key the code lacks", ({ section, heading, schema, known }) => {
    const rows = table(heading);
    const keys = keysOf(schema);
    expect(keys).toContain(known);
    for (const k of keys) {
      expect(rows.has(k), `${section} ${k} is not documented`).toBe(true);
      expect(rows.get(k), `${section} ${k} has no default`).not.toBe("");
    }
    expect([...rows.keys()].filter((k) => !keys.includes(k))).toEqual([]);
  });

  it("lists every environment variable the loader applies", () => {
    for (const name of [...Object.keys(ENV_OVERRIDES), "CODEX_WRAPPER_CONFIG", "CODEX_WRAPPER_WORKER_IMAGE"]) expect(doc, name).toContain(`\`${name}\``);
  });
});
