// `codex-mcp-wrapper doctor`: checks what the broker needs, one line each, ✓ or ✗ with the fix.
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { AuthFileError, readAuthFile } from "../auth/auth-file.js";
import { loadConfig } from "../config/load.js";
import { chooseRehearsal, withRehearsal } from "../config/rehearsal.js";
import type { WrapperConfig } from "../config/schema.js";
import { describeError } from "../errors.js";
import { engineFits } from "../pool/placement.js";
import { DockerRuntime } from "../runtime/docker.js";
import { upstreamProxy } from "../relay/proxy.js";
import { checkImageForChannel, parseCodexVersion, supportsProtocol } from "../worker/image-policy.js";
import { DEFAULT_UPSTREAMS } from "../pool/model-access.js";
import { withDeadline } from "../deadline.js";

export const DOCTOR_HELP = `Usage: codex-mcp-wrapper doctor [--config wrapper.toml] [--json]

Checks, one line each (✓ passed, ⚠ warning, ✗ failed with the fix):
  the Docker engine answers; each worker profile's image is present and allowed for the
  instance's channel; \`codex --version\` in it supports the profile's protocol; the auth file
  is present, readable, not world-readable (API key or ChatGPT login); with none on a dev
  instance, a warning: the broker starts in rehearsal mode, whose images are checked instead;
  the state directory is writable. Exits 0 only when no check fails.

Options:
  --config FILE   wrapper.toml (default: $CODEX_WRAPPER_CONFIG, else built-in defaults)
  --json          print the checks as JSON`;

/** The command: runs the checks on what serve would run; 0 only when none failed. */
export async function doctor(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { config: { type: "string" }, json: { type: "boolean" }, help: { type: "boolean", short: "h" } } });
  if (values.help) {
    process.stdout.write(`${DOCTOR_HELP}\n`);
    return 0;
  }
  // What serve would run: with no login on a dev instance, the rehearsal images.
  const loaded = loadConfig({ file: values.config });
  const config = withRehearsal(loaded, chooseRehearsal(loaded, false));
  const checks = await runDoctor(config, new DockerRuntime({ callTimeoutMs: config.dockerTimeoutMs }));
  process.stdout.write(values.json ? `${JSON.stringify(checks, null, 2)}\n` : `${formatChecks(checks)}\n`);
  return checks.some((c) => c.status === "fail") ? 1 : 0;
}

export interface Check {
  status: "ok" | "warn" | "fail";
  title: string;
  fix?: string;
}

const ok = (title: string): Check => ({ status: "ok", title });
const fail = (title: string, fix: string): Check => ({ status: "fail", title, fix });
const warn = (title: string, fix: string): Check => ({ status: "warn", title, fix });

/** Runs every check; never throws (a failing check is a line, not an exception). */
export async function runDoctor(config: WrapperConfig, docker: DockerRuntime): Promise<Check[]> {
  const checks: Check[] = [ok(`config: ${config.source} (instance ${config.label}, channel ${config.channel}, ${config.host}:${config.port})`)];

  let dockerUp = false;
  try {
    const v = await docker.ping();
    checks.push(ok(`Docker engine ${v.version} (API ${v.apiVersion}) answers`));
    dockerUp = true;
  } catch (e) {
    checks.push(fail(`Docker engine unreachable: ${describeError(e)}`, "start Docker (on Debian: bash scripts/ensure-docker.sh), or set DOCKER_HOST"));
  }
  // Each further [[engines]] entry: it answers, and has (or will be sent at start) each image it may run.
  for (const engine of config.engines.slice(1)) {
    const where = `engine "${engine.name}" (${engine.host})`;
    try {
      const remote = new DockerRuntime({ engine, callTimeoutMs: Math.min(5_000, config.dockerTimeoutMs) });
      const v = await remote.ping();
      checks.push(ok(`${where}: Docker ${v.version} (API ${v.apiVersion}) answers`));
      for (const profile of config.workers.filter((p) => engineFits(p, engine))) {
        const [here, there] = await Promise.all([dockerUp ? docker.imageInspect(profile.image) : null, remote.imageInspect(profile.image)]);
        if (there && here && there.id === here.id) checks.push(ok(`${where}: image ${profile.image} present, the same as here`));
        else checks.push(warn(`${where}: image ${profile.image} ${there ? "differs from this machine's" : "is missing"}`, profile.pull ? "the engine pulls it at start (pull = true); nothing to do unless that fails" : "the broker copies it there at start (docker save | load); nothing to do unless that fails"));
      }
    } catch (e) {
      checks.push(fail(`${where}: ${describeError(e)}`, "start that engine, check its host and tls paths in wrapper.toml ([[engines]]), and docs/engines.md; the broker starts without it and uses it once it answers"));
    }
  }

  for (const profile of config.workers) {
    const where = `worker profile "${profile.name}"`;
    const policy = checkImageForChannel(profile.image, config.channel);
    if (policy) {
      checks.push(fail(`${where}: ${policy.split(";")[0]}`, policy.split("; ").slice(1).join("; ")));
      continue;
    }
    if (!dockerUp) {
      checks.push(fail(`${where}: image ${profile.image} not checked (no Docker engine)`, "start Docker first"));
      continue;
    }
    try {
      const image = await docker.imageInspect(profile.image);
      if (!image) {
        // pull = true: the broker pulls it at start; its checks below need it here, so doctor does not pull.
        if (profile.pull) checks.push(warn(`${where}: image ${profile.image} is not on this machine yet`, `the broker pulls it at start (pull = true); to check it now: docker pull ${profile.image}`));
        else checks.push(fail(`${where}: image ${profile.image} is missing`, "build it with `npm run images` (or `docker load` a release)"));
        continue;
      }
      checks.push(ok(`${where}: image ${profile.image} present (${Math.round(image.size / 1e6)} MB)`));
      const { version, forwarder } = await probeImage(docker, profile.image);
      if (!forwarder) checks.push(fail(`${where}: image ${profile.image} has no relay forwarder (${FORWARDER}): its Codex could not reach the model`, "rebuild the worker image with this version: npm run images"));
      const parsed = version ? parseCodexVersion(version) : null;
      if (!parsed) {
        checks.push(fail(`${where}: \`codex --version\` in ${profile.image} did not answer (${version ?? "no output"})`, "rebuild the worker image: npm run images"));
      } else if (!supportsProtocol(parsed, profile.protocol)) {
        checks.push(fail(`${where}: Codex ${parsed.join(".")} has no \`${profile.protocol}\` (removed in 0.154.0)`, `use protocol = "app-server", or an image with Codex 0.153.0 (…:dev-codex-0.153.0)`));
      } else {
        checks.push(ok(`${where}: Codex ${parsed.join(".")} supports ${profile.protocol}`));
      }
    } catch (e) {
      checks.push(fail(`${where}: ${describeError(e)}`, "check the Docker engine"));
    }
  }

  // A dev instance with no login starts in rehearsal mode (config/rehearsal.ts): it works, scripted.
  if (config.rehearsal?.reason === "no-login") {
    checks.push(
      warn(
        `auth: no auth file at ${config.authFile}: the broker starts in rehearsal mode (the answers are scripted, no OpenAI call is made)`,
        "run `codex login` (or write an auth.json with OPENAI_API_KEY) for real answers, or set broker.auth_file / CODEX_WRAPPER_AUTH_FILE",
      ),
    );
  } else checkAuth(config, checks);

  try {
    mkdirSync(config.stateDir, { recursive: true, mode: 0o700 });
    const probe = path.join(config.stateDir, `.doctor-${process.pid}`);
    writeFileSync(probe, "ok");
    rmSync(probe);
    checks.push(ok(`state directory ${config.stateDir} is writable`));
  } catch (e) {
    checks.push(fail(`state directory ${config.stateDir} is not writable (${(e as NodeJS.ErrnoException).code ?? describeError(e)})`, "set broker.state_dir (or CODEX_WRAPPER_STATE_DIR) to a writable directory"));
  }
  return checks;
}

/** Where the worker images carry the relay's forwarder. */
const FORWARDER = "/opt/codex-relay/forwarder.js";

/** `codex --version` in the image (null if it did not answer), and whether it has the relay's forwarder. */
async function probeImage(docker: DockerRuntime, image: string): Promise<{ version: string | null; forwarder: boolean }> {
  const out = await runInImage(docker, image, ["sh", "-c", `test -f ${FORWARDER} && echo 'forwarder: present'; codex --version`]);
  const lines = (out ?? "").split("\n");
  const forwarder = lines.includes("forwarder: present");
  return { version: out === null ? null : lines.filter((l) => l !== "forwarder: present").join("\n").trim() || null, forwarder };
}

async function runInImage(docker: DockerRuntime, image: string, cmd: string[]): Promise<string | null> {
  const id = await docker.createContainer({
    name: `codex-wrapper-doctor-${process.pid}-${Date.now()}`,
    image,
    cmd,
    labels: { "io.codex-mcp-wrapper.doctor": "1" },
    mounts: [],
    network: "none",
    capDrop: ["ALL"],
    securityOpt: ["no-new-privileges"],
  });
  try {
    const streams = await docker.attach(id);
    const out: Buffer[] = [];
    streams.stdout.on("data", (d: Buffer) => out.push(d));
    streams.stderr.on("data", (d: Buffer) => out.push(d));
    await docker.start(id);
    const code = await withDeadline(docker.wait(id), 30_000, () => null);
    const text = Buffer.concat(out).toString("utf8").trim();
    return code === 0 ? text : text || null;
  } finally {
    await docker.remove(id);
  }
}

/** Renders the checks as lines: `✓ title` or `✗ title` + `  fix: …`. */
export function formatChecks(checks: Check[]): string {
  return checks
    .map((c) => {
      const mark = c.status === "ok" ? "✓" : c.status === "warn" ? "⚠" : "✗";
      return c.fix && c.status !== "ok" ? `${mark} ${c.title}\n    fix: ${c.fix}` : `${mark} ${c.title}`;
    })
    .join("\n");
}

/** The auth file: readable, not world-readable, and where the relay sends its model calls. */
function checkAuth(config: WrapperConfig, checks: Check[]): void {
  try {
    const auth = readAuthFile(config.authFile);
    if (auth.mode & 0o004) {
      checks.push(fail(`auth file ${auth.path} is world-readable (mode ${auth.mode.toString(8)})`, `chmod 600 ${auth.path}`));
    } else {
      checks.push(ok(`auth file ${auth.path}: ${auth.kind === "api-key" ? "API key" : "ChatGPT login"}, mode ${auth.mode.toString(8)}`));
      // Where the relay sends model calls (profiles on a rehearsal image are answered in the broker).
      const upstream = new URL(config.modelUpstream ?? DEFAULT_UPSTREAMS[auth.kind]);
      const proxy = upstreamProxy(upstream);
      checks.push(ok(`model upstream ${upstream.href.replace(/\/$/, "")} (${proxy ? `through the proxy ${proxy}, from the environment` : "direct"})`));
    }
  } catch (e) {
    if (e instanceof AuthFileError) checks.push(fail(`auth: ${e.message}`, e.fix));
    else checks.push(fail(`auth: ${describeError(e)}`, "check broker.auth_file"));
  }
}
