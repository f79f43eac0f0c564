// The codex-mcp-wrapper command line: one function per command, `--help` on each.
import { parseArgs } from "node:util";
import { loadConfig } from "../config/load.js";
import { chooseRehearsal, withRehearsal } from "../config/rehearsal.js";
import { ConfigError, WrapperError } from "../errors.js";
import { DockerRuntime } from "../runtime/docker.js";
import { VERSION } from "../version.js";
import { formatChecks, runDoctor } from "./doctor.js";
import { RUN_MISSION_HELP, runMission } from "./run-mission.js";
import { KEYGEN_HELP, keygen, release, RELEASE_HELP, VERIFY_HELP, verifyCommand } from "./release.js";
import { SERVE_HELP, serve } from "./serve.js";
import { scaffoldMission } from "../mission/scaffold.js";
import { existsSync, writeFileSync } from "node:fs";

/** Exit codes: 0 success, 1 a check or a task failed, 2 invalid input (usage, config, mission). */
export const EXIT = { ok: 0, failed: 1, invalid: 2 } as const;

const HELP: Record<string, string> = {
  main: `codex-mcp-wrapper ${VERSION}: runs OpenAI Codex workers in Docker containers and serves them over MCP

Usage: codex-mcp-wrapper <command> [options]

Commands:
  serve             run the broker: the MCP server (tools batch, reply, status, cancel) over HTTP or stdio
  doctor            check Docker, the worker images, Codex in them, the auth file and the state directory
  run-mission       run a mission's tasks in worker containers and report (for CI)
  scaffold-mission  write a starter mission that validates and explains each field
  release           build and sign a release (images, npm package, SHA256SUMS, signature)
  verify            check a release directory's signature and files
  release-keygen    make an ed25519 key pair for signing releases
  version           print the version

Run \`codex-mcp-wrapper <command> --help\` for a command's options.`,
  doctor: `Usage: codex-mcp-wrapper doctor [--config wrapper.toml] [--json]

Checks, one line each (✓ passed, ⚠ warning, ✗ failed with the fix):
  the Docker engine answers; each worker profile's image is present and allowed for the
  instance's channel; \`codex --version\` in it supports the profile's protocol; the auth file
  is present, readable, not world-readable (API key or ChatGPT login); with none on a dev
  instance, a warning: the broker starts in rehearsal mode, whose images are checked instead;
  the state directory is writable. Exits 0 only when no check fails.

Options:
  --config FILE   wrapper.toml (default: $CODEX_WRAPPER_CONFIG, else built-in defaults)
  --json          print the checks as JSON`,
  "run-mission": RUN_MISSION_HELP,
  serve: SERVE_HELP,
  release: RELEASE_HELP,
  verify: VERIFY_HELP,
  "release-keygen": KEYGEN_HELP,
  "scaffold-mission": `Usage: codex-mcp-wrapper scaffold-mission [path] [--force]

Writes a starter mission (YAML, default mission.yaml) that validates as written and explains
each field in comments. Refuses to overwrite an existing file unless --force is given.`,
};

async function scaffold(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { force: { type: "boolean" }, help: { type: "boolean", short: "h" } } });
  if (values.help) return print(HELP["scaffold-mission"]!);
  const file = positionals[0] ?? "mission.yaml";
  if (existsSync(file) && !values.force) {
    process.stderr.write(`codex-mcp-wrapper scaffold-mission: ${file} exists; give another path or --force to overwrite\n`);
    return EXIT.invalid;
  }
  writeFileSync(file, scaffoldMission());
  process.stdout.write(`wrote ${file}: edit the tasks, then run codex-mcp-wrapper run-mission ${file} --workspace .\n`);
  return EXIT.ok;
}

async function doctor(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { config: { type: "string" }, json: { type: "boolean" }, help: { type: "boolean", short: "h" } } });
  if (values.help) return print(HELP.doctor!);
  // What serve would run: with no login on a dev instance, the rehearsal images.
  const loaded = loadConfig({ file: values.config });
  const config = withRehearsal(loaded, chooseRehearsal(loaded, false));
  const checks = await runDoctor(config, new DockerRuntime({ callTimeoutMs: config.dockerTimeoutMs }));
  process.stdout.write(values.json ? `${JSON.stringify(checks, null, 2)}\n` : `${formatChecks(checks)}\n`);
  return checks.some((c) => c.status === "fail") ? EXIT.failed : EXIT.ok;
}

function print(text: string): number {
  process.stdout.write(`${text}\n`);
  return EXIT.ok;
}

const COMMANDS: Record<string, (argv: string[]) => Promise<number>> = {
  doctor,
  serve,
  "run-mission": runMission,
  "scaffold-mission": scaffold,
  release,
  verify: verifyCommand,
  "release-keygen": keygen,
  version: async () => print(VERSION),
};

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === "--help" || command === "-h" || command === "help") return print(HELP.main!);
  if (command === "--version" || command === "-V") return print(VERSION);
  const run = COMMANDS[command];
  if (!run) {
    process.stderr.write(`codex-mcp-wrapper: unknown command "${command}"\n\n${HELP.main}\n`);
    return EXIT.invalid;
  }
  try {
    return await run(rest);
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`codex-mcp-wrapper: invalid configuration: ${e.message}\n`);
      return EXIT.invalid;
    }
    if (e instanceof WrapperError) {
      process.stderr.write(`codex-mcp-wrapper: ${e.message}\n`);
      const invalid = ["MISSION_INVALID", "MISSION_UNREADABLE", "WORKSPACE_REFUSED", "CONFIG_INVALID", "RELEASE_REFUSED"].includes(e.code);
      return invalid ? EXIT.invalid : EXIT.failed;
    }
    if (e instanceof TypeError && "code" in e && String(e.code).startsWith("ERR_PARSE_ARGS")) {
      process.stderr.write(`codex-mcp-wrapper ${command}: ${e.message}\n\n${HELP[command] ?? HELP.main}\n`);
      return EXIT.invalid;
    }
    throw e;
  }
}
