import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it, vi } from "vitest";
import { main } from "../../../src/cli/main.js";
import { VERSION } from "../../../src/version.js";

const BIN = fileURLToPath(new URL("../../../dist/cli/bin.js", import.meta.url));

/** Runs the command line in this process; what it printed and its exit code. */
async function run(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  vi.spyOn(process.stdout, "write").mockImplementation((s) => ((out += String(s)), true));
  vi.spyOn(process.stderr, "write").mockImplementation((s) => ((err += String(s)), true));
  const code = await main(argv);
  vi.restoreAllMocks();
  return { code, out, err };
}

afterEach(() => vi.restoreAllMocks());

describe("the command line", () => {
  it("prints the version and the commands", async () => {
    expect(await run("version")).toEqual({ code: 0, out: `${VERSION}\n`, err: "" });
    expect(await run("--version")).toEqual({ code: 0, out: `${VERSION}\n`, err: "" });
    const help = await run("--help");
    expect(help.code).toBe(0);
    for (const c of ["serve", "doctor", "run-mission", "scaffold-mission", "release", "verify", "release-keygen", "version"]) expect(help.out).toMatch(new RegExp(`^  ${c} `, "m"));
  });

  it("refuses an unknown command (exit 2) with the list of commands, and one named like an object's own property", async () => {
    for (const c of ["frobnicate", "constructor", "toString"]) {
      const r = await run(c);
      expect(r.code).toBe(2);
      expect(r.err).toContain(`unknown command "${c}"`);
      expect(r.err).toContain("Commands:");
    }
  });

  it("gives each command's own help, and its usage after a wrong option (exit 2)", async () => {
    const cases: Array<[string, string]> = [
      ["serve", "Usage: codex-mcp-wrapper serve"],
      ["doctor", "Usage: codex-mcp-wrapper doctor"],
      ["run-mission", "Usage: codex-mcp-wrapper run-mission"],
      ["scaffold-mission", "Usage: codex-mcp-wrapper scaffold-mission"],
      ["release", "Usage: codex-mcp-wrapper release <version>"],
      ["verify", "Usage: codex-mcp-wrapper verify"],
      ["release-keygen", "Usage: codex-mcp-wrapper release-keygen"],
    ];
    for (const [command, usage] of cases) {
      const help = await run(command, "--help");
      expect(help.code, command).toBe(0);
      expect(help.out, command).toContain(usage);
      const wrong = await run(command, "--no-such-option");
      expect(wrong.code, command).toBe(2);
      expect(wrong.err, command).toContain(`codex-mcp-wrapper ${command}: Unknown option '--no-such-option'`);
      expect(wrong.err, command).toContain(usage);
    }
  });

  it("answers `version` without loading any command's modules (the broker, Docker's client, the SDK)", () => {
    // dockerode is CommonJS: NODE_DEBUG=module names each CommonJS module Node loads.
    const r = spawnSync(process.execPath, [BIN, "version"], { encoding: "utf8", timeout: 30_000, env: { ...process.env, NODE_DEBUG: "module" } });
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe(VERSION);
    expect(r.stderr).not.toMatch(/node_modules/);
    // The same check sees them when a command does load them.
    const serve = spawnSync(process.execPath, [BIN, "serve", "--help"], { encoding: "utf8", timeout: 30_000, env: { ...process.env, NODE_DEBUG: "module" } });
    expect(serve.stderr).toMatch(/node_modules\/dockerode\//);
  });
});
