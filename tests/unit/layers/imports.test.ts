// The folders of src/ form layers: no import runs back up, so the graph of folder → folder
// imports has no cycle (worker⇄codex, auth→codex→worker→auth and mission⇄state once did).
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";

const SRC = "src";

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? sources(p) : e.name.endsWith(".ts") ? [p] : [];
  });
}

/** The folder of src/ a file is in ("." for src/ itself). */
const folderOf = (file: string): string => path.relative(SRC, path.dirname(file)).split(path.sep)[0] || ".";

/** Folder → folders it imports from (relative imports only; src/ itself left out). */
function folderGraph(): Map<string, Map<string, string>> {
  const graph = new Map<string, Map<string, string>>();
  for (const file of sources(SRC)) {
    const from = folderOf(file);
    for (const m of readFileSync(file, "utf8").matchAll(/\bfrom\s+"(\.[^"]+)"/g)) {
      const to = folderOf(path.join(path.dirname(file), m[1]!));
      if (to === from || to === "." || from === ".") continue;
      const edges = graph.get(from) ?? new Map<string, string>();
      edges.set(to, `${file} imports ${m[1]!}`);
      graph.set(from, edges);
    }
  }
  return graph;
}

/** Every cycle found by a depth-first walk, each as "a -> b -> a" with the import that closes it. */
function cycles(graph: Map<string, Map<string, string>>): string[] {
  const found: string[] = [];
  const state = new Map<string, "open" | "done">();
  const walk = (node: string, stack: string[]): void => {
    state.set(node, "open");
    for (const [next, why] of graph.get(node) ?? []) {
      if (state.get(next) === "open") found.push(`${[...stack.slice(stack.indexOf(next)), node, next].join(" -> ")} (${why})`);
      else if (!state.has(next)) walk(next, [...stack, node]);
    }
    state.set(node, "done");
  };
  for (const node of graph.keys()) if (!state.has(node)) walk(node, []);
  return found;
}

describe("layers", () => {
  it("no import in src/ runs back up: the folder graph has no cycle", () => {
    expect(cycles(folderGraph())).toEqual([]);
  });

  it("placement does no I/O: it imports no module but the config's types", () => {
    const imports = [...readFileSync("src/pool/placement.ts", "utf8").matchAll(/^import .* from "([^"]+)";$/gm)].map((m) => m[1]);
    expect(imports).toEqual(["../config/schema.js"]);
  });
});
