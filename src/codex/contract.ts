// Checks the broker's protocol subset (zod schemas) against the JSON Schema a real Codex
// binary generates: every method must exist, every field we send or read must exist, and every
// enum value we use must be allowed. Pure functions; the schema is loaded from a folder.
import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { z } from "zod";
import type { ContractEntry, Direction } from "./app-server-protocol.js";

export type JsonSchema = { [key: string]: unknown };

export interface GeneratedSchema {
  /** Every named definition across the folder (file titles and their `definitions`). */
  definitions: Map<string, JsonSchema>;
  /** The method unions: ClientRequest, ClientNotification, ServerNotification, ServerRequest. */
  unions: Record<Direction, JsonSchema | undefined>;
}

const UNION_FILES: Record<Direction, string> = {
  request: "ClientRequest",
  "client-notification": "ClientNotification",
  notification: "ServerNotification",
  "server-request": "ServerRequest",
};

function jsonFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) return jsonFiles(p);
    return name.endsWith(".json") ? [p] : [];
  });
}

/** Loads the output of `codex app-server generate-json-schema --out DIR`. */
export function loadGeneratedSchema(dir: string): GeneratedSchema {
  const definitions = new Map<string, JsonSchema>();
  const byFile = new Map<string, JsonSchema>();
  for (const file of jsonFiles(dir)) {
    const doc = JSON.parse(readFileSync(file, "utf8")) as JsonSchema;
    byFile.set(path.basename(file, ".json"), doc);
    const defs = (doc.definitions ?? doc.$defs ?? {}) as Record<string, JsonSchema>;
    for (const [name, def] of Object.entries(defs)) if (!definitions.has(name)) definitions.set(name, def);
    const title = typeof doc.title === "string" ? doc.title : path.basename(file, ".json");
    if (!definitions.has(title)) definitions.set(title, doc);
  }
  const unions = Object.fromEntries(Object.entries(UNION_FILES).map(([d, f]) => [d, byFile.get(f)])) as GeneratedSchema["unions"];
  return { definitions, unions };
}

/** Resolves `$ref` and flattens anyOf/oneOf/allOf into the plain schemas they may be. */
function variants(schema: unknown, gen: GeneratedSchema, seen = new Set<string>()): JsonSchema[] {
  if (!schema || typeof schema !== "object") return [];
  const s = schema as JsonSchema;
  if (typeof s.$ref === "string") {
    const name = s.$ref.replace(/^#\/(definitions|\$defs)\//, "");
    if (seen.has(name)) return [];
    seen.add(name);
    return variants(gen.definitions.get(name), gen, seen);
  }
  const parts = [s.anyOf, s.oneOf, s.allOf].filter(Array.isArray).flat() as unknown[];
  const own = { ...s };
  delete own.anyOf;
  delete own.oneOf;
  delete own.allOf;
  const hasOwn = Object.keys(own).some((k) => !["description", "title", "$schema", "definitions", "default"].includes(k));
  return [...(hasOwn ? [own] : []), ...parts.flatMap((p) => variants(p, gen, new Set(seen)))];
}

function enumValues(candidates: JsonSchema[]): Set<unknown> {
  const out = new Set<unknown>();
  for (const c of candidates) {
    if (Array.isArray(c.enum)) for (const v of c.enum) out.add(v);
    if ("const" in c) out.add(c.const);
  }
  return out;
}

/** Lists where `mine` (our schema, as JSON Schema) asks for something `theirs` does not have. */
export function compareSchemas(mine: unknown, theirs: unknown, gen: GeneratedSchema, where: string): string[] {
  const m = mine as JsonSchema;
  if (!m || typeof m !== "object") return [];
  // Our own unions (nullable, optional): check each non-null branch.
  for (const key of ["anyOf", "oneOf"] as const) {
    if (Array.isArray(m[key])) {
      return (m[key] as JsonSchema[]).filter((b) => b.type !== "null").flatMap((b) => compareSchemas(b, theirs, gen, where));
    }
  }
  const candidates = variants(theirs, gen);
  const problems: string[] = [];
  const ours = Array.isArray(m.enum) ? m.enum : "const" in m ? [m.const] : null;
  if (ours) {
    const allowed = enumValues(candidates);
    for (const v of ours) if (!allowed.has(v)) problems.push(`${where}: value ${JSON.stringify(v)} is not allowed (allowed: ${[...allowed].map((a) => JSON.stringify(a)).join(", ") || "no enum"})`);
    return problems;
  }
  if (m.type === "object" && m.properties && typeof m.properties === "object") {
    for (const [prop, sub] of Object.entries(m.properties as Record<string, unknown>)) {
      const matches = candidates.filter((c) => c.properties && typeof c.properties === "object" && prop in (c.properties));
      if (matches.length === 0) {
        problems.push(`${where}.${prop}: field missing`);
        continue;
      }
      const theirsProp = { anyOf: matches.map((c) => (c.properties as Record<string, unknown>)[prop]) };
      problems.push(...compareSchemas(sub, theirsProp, gen, `${where}.${prop}`));
    }
  }
  if (m.type === "array" && m.items) {
    const items = candidates.filter((c) => c.items).map((c) => c.items);
    if (items.length === 0) problems.push(`${where}: expected an array`);
    else problems.push(...compareSchemas(m.items, { anyOf: items }, gen, `${where}[]`));
  }
  return problems;
}

function methodVariant(gen: GeneratedSchema, direction: Direction, method: string): JsonSchema | undefined {
  const union = gen.unions[direction];
  if (!union) return undefined;
  return variants(union, gen).find((v) => {
    const mm = (v.properties as Record<string, JsonSchema> | undefined)?.method;
    return mm !== undefined && enumValues(variants(mm, gen)).has(method);
  });
}

/** Checks a whole contract; an empty list means the real binary supports everything in it. */
export function checkContract(contract: ContractEntry[], gen: GeneratedSchema): string[] {
  const problems: string[] = [];
  for (const entry of contract) {
    const label = `${entry.direction} ${entry.method}`;
    if (!gen.unions[entry.direction]) {
      problems.push(`${label}: the schema has no ${UNION_FILES[entry.direction]}.json`);
      continue;
    }
    const variant = methodVariant(gen, entry.direction, entry.method);
    if (!variant) {
      problems.push(`${label}: method missing`);
      continue;
    }
    if (entry.params) {
      const theirs = (variant.properties as Record<string, unknown>).params;
      if (!theirs) problems.push(`${label}: takes no params`);
      else problems.push(...compareSchemas(z.toJSONSchema(entry.params, { io: "input", unrepresentable: "any" }), theirs, gen, `${label} params`));
    }
    if (entry.result) {
      const def = gen.definitions.get(entry.result.definition);
      if (!def) problems.push(`${label}: response definition ${entry.result.definition} missing`);
      else problems.push(...compareSchemas(z.toJSONSchema(entry.result.schema, { io: "input", unrepresentable: "any" }), def, gen, `${label} result`));
    }
  }
  return problems;
}
