// The codex-mcp-wrapper command line: one function per command, `--help` on each. Each command's
// module is loaded when that command runs: loading them all (the broker, Docker's client, the
// MCP SDK, zod) took about 0.7 s before even `version` or `--help` could answer.
import { ConfigError, WrapperError } from "../errors.js";
import { VERSION } from "../version.js";

/** Exit codes: 0 success, 1 a check or a task failed, 2 invalid input (usage, config, mission). */
export const EXIT = { ok: 0, failed: 1, invalid: 2 } as const;

const HELP = `codex-mcp-wrapper ${VERSION}: runs OpenAI Codex workers in Docker containers and serves them over MCP

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

Run \`codex-mcp-wrapper <command> --help\` for a command's options.`;

interface Command {
  run: (argv: string[]) => Promise<number>;
  /** Printed after a usage error. */
  help: string;
}

/** A command whose module is loaded when it runs. */
const lazy =
  <M>(load: () => Promise<M>, pick: (m: M) => Command) =>
  async (): Promise<Command> =>
    pick(await load());

const COMMANDS: Record<string, () => Promise<Command>> = {
  doctor: lazy(() => import("./doctor.js"), (m) => ({ run: m.doctor, help: m.DOCTOR_HELP })),
  serve: lazy(() => import("./serve.js"), (m) => ({ run: m.serve, help: m.SERVE_HELP })),
  "run-mission": lazy(() => import("./run-mission.js"), (m) => ({ run: m.runMission, help: m.RUN_MISSION_HELP })),
  "scaffold-mission": lazy(() => import("./scaffold-command.js"), (m) => ({ run: m.scaffold, help: m.SCAFFOLD_HELP })),
  release: lazy(() => import("./release.js"), (m) => ({ run: m.release, help: m.RELEASE_HELP })),
  verify: lazy(() => import("./release.js"), (m) => ({ run: m.verifyCommand, help: m.VERIFY_HELP })),
  "release-keygen": lazy(() => import("./release.js"), (m) => ({ run: m.keygen, help: m.KEYGEN_HELP })),
  version: async () => ({ run: async () => print(VERSION), help: HELP }),
};

function print(text: string): number {
  process.stdout.write(`${text}\n`);
  return EXIT.ok;
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === "--help" || command === "-h" || command === "help") return print(HELP);
  if (command === "--version" || command === "-V") return print(VERSION);
  const load = Object.hasOwn(COMMANDS, command) ? COMMANDS[command] : undefined;
  if (!load) {
    process.stderr.write(`codex-mcp-wrapper: unknown command "${command}"\n\n${HELP}\n`);
    return EXIT.invalid;
  }
  const cmd = await load();
  try {
    return await cmd.run(rest);
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
      process.stderr.write(`codex-mcp-wrapper ${command}: ${e.message}\n\n${cmd.help}\n`);
      return EXIT.invalid;
    }
    throw e;
  }
}
