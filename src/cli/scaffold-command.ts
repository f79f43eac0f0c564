// `codex-mcp-wrapper scaffold-mission`: writes a starter mission that validates as written.
import { existsSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { scaffoldMission } from "../mission/scaffold.js";

export const SCAFFOLD_HELP = `Usage: codex-mcp-wrapper scaffold-mission [path] [--force]

Writes a starter mission (YAML, default mission.yaml) that validates as written and explains
each field in comments. Refuses to overwrite an existing file unless --force is given.`;

export async function scaffold(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { force: { type: "boolean" }, help: { type: "boolean", short: "h" } } });
  if (values.help) {
    process.stdout.write(`${SCAFFOLD_HELP}\n`);
    return 0;
  }
  const file = positionals[0] ?? "mission.yaml";
  if (existsSync(file) && !values.force) {
    process.stderr.write(`codex-mcp-wrapper scaffold-mission: ${file} exists; give another path or --force to overwrite\n`);
    return 2;
  }
  writeFileSync(file, scaffoldMission());
  process.stdout.write(`wrote ${file}: edit the tasks, then run codex-mcp-wrapper run-mission ${file} --workspace .\n`);
  return 0;
}
