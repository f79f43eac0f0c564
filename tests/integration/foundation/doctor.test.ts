// `doctor` on a prepared machine (✓ everywhere, exit 0) and its ✗ lines with the fix when the
// Docker engine is unreachable or an image is missing.
import { spawnSync } from "node:child_process";
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

/** `codex-mcp-wrapper doctor --config <file>` in this process: its exit code and what it printed. */
async function doctorCli(cfgFile: string): Promise<{ code: number; out: string[] }> {
  const out: string[] = [];
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((s: string) => (out.push(s), true));
  try {
    return { code: await main(["doctor", "--config", cfgFile]), out };
  } finally {
    process.stdout.write = write;
  }
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
    const { code, out } = await doctorCli(cfgFile);
    expect(code).toBe(0);
    expect(out.join("")).not.toContain("✗");
  });

  it("with no auth file on a dev instance: a warning that the broker starts in rehearsal mode, the rehearsal images checked, exit 0", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "cmw-doctor-"));
    const cfgFile = path.join(dir, "wrapper.toml");
    writeFileSync(cfgFile, `[broker]\nstate_dir = "${dir}/state"\nauth_file = "${dir}/no-such-auth.json"\nimage_prefix = "${PREFIX}"\n`);
    const { code, out } = await doctorCli(cfgFile);
    expect(code).toBe(0);
    const text = out.join("");
    expect(text).toContain(`⚠ auth: no auth file at ${dir}/no-such-auth.json: the broker starts in rehearsal mode (the answers are scripted, no OpenAI call is made)\n    fix: run \`codex login\``);
    expect(text).toContain(`✓ worker profile "default": image ${PREFIX}/rehearsal:dev`);
    expect(text).not.toContain("✗");
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

  it("refuses a world-readable auth file, and names the model upstream and the proxy it goes through", async () => {
    let text = formatChecks(await runDoctor(prepared(undefined, 0o644), new DockerRuntime()));
    expect(text).toMatch(/✗ auth file .* is world-readable \(mode 644\)\n {4}fix: chmod 600 /);
    const chatgpt = { tokens: { access_token: "a.b.c", refresh_token: "rt-secret-0123456789", account_id: "acct" } };
    const saved = process.env.HTTPS_PROXY;
    process.env.HTTPS_PROXY = "http://user:pw@127.0.0.1:3128";
    try {
      text = formatChecks(await runDoctor(prepared([{ name: "ex", image: `${PREFIX}/worker:dev`, protocol: "exec", max_containers: 2 }], 0o600, chatgpt), new DockerRuntime()));
    } finally {
      if (saved === undefined) delete process.env.HTTPS_PROXY;
      else process.env.HTTPS_PROXY = saved;
    }
    expect(text).toContain("ChatGPT login, mode 600");
    // The refresh token stays with the broker (the relay), so exec containers sharing a login is no longer a warning.
    expect(text).not.toContain("⚠");
    expect(text).toContain("✓ model upstream https://chatgpt.com/backend-api/codex (through the proxy http://127.0.0.1:3128, from the environment)");
    expect(text).not.toContain("rt-secret-0123456789");
    expect(text).not.toContain("user:pw");
  });

  it("names an image without the relay's forwarder, with the fix", async () => {
    const tag = `${PREFIX}/worker:dev-doctor-no-forwarder-${process.pid}`;
    const run = spawnSync("docker", ["run", "--name", `cmw-doctor-strip-${process.pid}`, "--user", "0", "--entrypoint", "rm", `${PREFIX}/worker:dev`, "-f", "/opt/codex-relay/forwarder.js"], { encoding: "utf8" });
    expect(run.status, run.stderr).toBe(0);
    try {
      // The image as it was, but for the file: its own entrypoint, command and user back.
      const changes = ['ENTRYPOINT ["/usr/bin/tini","--","/usr/local/bin/worker-entrypoint"]', 'CMD ["codex","app-server"]', "USER codex"].flatMap((c) => ["--change", c]);
      expect(spawnSync("docker", ["commit", ...changes, `cmw-doctor-strip-${process.pid}`, tag]).status).toBe(0);
      const text = formatChecks(await runDoctor(prepared([{ name: "stripped", image: tag }]), new DockerRuntime()));
      expect(text).toContain(`✗ worker profile "stripped": image ${tag} has no relay forwarder (/opt/codex-relay/forwarder.js): its Codex could not reach the model\n    fix: rebuild the worker image with this version: npm run images`);
      expect(text).toContain(`✓ worker profile "stripped": Codex 0.169.0 supports app-server`);
    } finally {
      spawnSync("docker", ["rm", "-f", `cmw-doctor-strip-${process.pid}`]);
      spawnSync("docker", ["rmi", "-f", tag]);
    }
  });
});
