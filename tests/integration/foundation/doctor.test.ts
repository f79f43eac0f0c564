// `doctor` on a prepared machine (✓ everywhere, exit 0) and its ✗ lines with the fix when the
// Docker engine is unreachable or an image is missing.
import { mkdtempSync, writeFileSync, chmodSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { formatChecks, runDoctor } from "../../../src/cli/doctor.js";
import { main } from "../../../src/cli/main.js";
import { resolveConfig } from "../../../src/config/load.js";
import { DockerRuntime } from "../../../src/runtime/docker.js";
import { PREFIX, TEST_API_KEY } from "../support/env.js";

function prepared(workers?: Record<string, unknown>[], authMode = 0o600, authBody: unknown = { OPENAI_API_KEY: TEST_API_KEY }) {
  const dir = mkdtempSync(path.join(os.tmpdir(), "cmw-doctor-"));
  const auth = path.join(dir, "auth.json");
  writeFileSync(auth, JSON.stringify(authBody));
  chmodSync(auth, authMode);
  const raw: Record<string, unknown> = { broker: { state_dir: path.join(dir, "state"), auth_file: auth } };
  if (workers) raw.workers = workers;
  return resolveConfig(raw, "test", {});
}

describe("doctor", () => {
  it("passes every check on a prepared machine, through the CLI", async () => {
    const config = prepared([
      { name: "default", image: `${PREFIX}/worker:dev` },
      { name: "legacy", image: `${PREFIX}/worker:dev-codex-0.153.0`, protocol: "mcp-server" },
    ]);
    const checks = await runDoctor(config, new DockerRuntime());
    expect(checks.filter((c) => c.status !== "ok")).toEqual([]);
    const text = formatChecks(checks);
    expect(text).toMatch(/✓ Docker engine .* answers/);
    expect(text).toContain(`✓ worker profile "default": Codex 0.169.0 supports app-server`);
    expect(text).toContain(`✓ worker profile "legacy": Codex 0.153.0 supports mcp-server`);
    expect(text).toContain("API key, mode 600");

    const cfgFile = path.join(path.dirname(config.authFile), "wrapper.toml");
    writeFileSync(cfgFile, `[broker]\nstate_dir = "${config.stateDir}"\nauth_file = "${config.authFile}"\n`);
    const out: string[] = [];
    const write = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((s: string) => (out.push(s), true));
    try {
      expect(await main(["doctor", "--config", cfgFile])).toBe(0);
    } finally {
      process.stdout.write = write;
    }
    expect(out.join("")).not.toContain("✗");
  });

  it("says the engine is unreachable, with the fix, when Docker does not answer", async () => {
    const checks = await runDoctor(prepared(), new DockerRuntime({ socketPath: "/nonexistent/docker.sock" }));
    const text = formatChecks(checks);
    expect(text).toMatch(/✗ Docker engine unreachable: .*docker\.sock/);
    expect(text).toContain("fix: start Docker (on Debian: bash scripts/ensure-docker.sh)");
  });

  it("names a missing image and a protocol the image's Codex does not have, with the fix", async () => {
    const checks = await runDoctor(
      prepared([
        { name: "gone", image: `${PREFIX}/worker:dev-does-not-exist` },
        { name: "old-proto", image: `${PREFIX}/worker:dev`, protocol: "mcp-server" },
      ]),
      new DockerRuntime(),
    );
    const text = formatChecks(checks);
    expect(text).toContain(`✗ worker profile "gone": image ${PREFIX}/worker:dev-does-not-exist is missing\n    fix: build it with \`npm run images\``);
    expect(text).toContain(`✗ worker profile "old-proto": Codex 0.169.0 has no \`mcp-server\` (removed in 0.154.0)`);
  });

  it("refuses a world-readable auth file and warns about a ChatGPT login shared by exec containers", async () => {
    let text = formatChecks(await runDoctor(prepared(undefined, 0o644), new DockerRuntime()));
    expect(text).toMatch(/✗ auth file .* is world-readable \(mode 644\)\n {4}fix: chmod 600 /);
    const chatgpt = { tokens: { access_token: "a.b.c", refresh_token: "rt-secret-0123456789", account_id: "acct" } };
    text = formatChecks(await runDoctor(prepared([{ name: "ex", image: `${PREFIX}/worker:dev`, protocol: "exec", max_containers: 2 }], 0o600, chatgpt), new DockerRuntime()));
    expect(text).toContain("ChatGPT login, mode 600");
    expect(text).toMatch(/⚠ worker profile "ex": a ChatGPT login with protocol exec on up to 2 containers/);
    expect(text).not.toContain("rt-secret-0123456789");
  });
});
