// Runs a Node program from this checkout's node_modules (the MCP Inspector, the conformance suite:
// both need Node ≥ 22, the tests run on 20) in a container of the rehearsal image, whose Node is
// the worker's (22). The container shares the host's network namespace (--network host) so that it
// reaches a broker on 127.0.0.1 as a client on this machine would, never through a bridge address.
// It runs as the test's own uid, with node_modules and this support folder mounted read-only.
import { execFileSync, spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { REHEARSAL_IMAGE, TEST_LABEL } from "./env.js";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
/** Where node_modules is mounted in the container. */
export const NODE_MODULES = "/cmw/node_modules";
/** Where tests/integration/support is mounted in the container. */
export const SUPPORT = "/cmw/support";

export interface Node22Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface Node22Options {
  /** The label value the container carries (TEST_LABEL=<run>), for removal by label. */
  run: string;
  /** Extra `-v` mounts, `host:container[:ro]`. */
  mounts?: string[];
  /** Kills the container after this long (the result then has code null). */
  timeoutMs: number;
}

/** The container's Node version, checked once against what the Inspector asks for (≥ 22.19). */
let checked = false;
function checkNodeVersion(): void {
  if (checked) return;
  const v = execFileSync("docker", ["run", "--rm", "--entrypoint", "node", REHEARSAL_IMAGE, "--version"], { encoding: "utf8" }).trim();
  const [major = 0, minor = 0] = v.replace(/^v/, "").split(".").map(Number);
  if (major < 22 || (major === 22 && minor < 19)) throw new Error(`${REHEARSAL_IMAGE} has Node ${v}; the MCP Inspector needs ≥ 22.19 (rebuild the images)`);
  checked = true;
}

/** `node <args…>` in the container (the image's entrypoint hooks are skipped: no model server starts). */
export async function runNode22(args: string[], o: Node22Options): Promise<Node22Result> {
  checkNodeVersion();
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  const name = `${o.run}-${Math.random().toString(16).slice(2, 10)}`;
  const dockerArgs = [
    "run", "--rm", "--name", name, "--label", `${TEST_LABEL}=${o.run}`, "--network", "host",
    "--user", `${uid}:${gid}`, "-e", "HOME=/tmp", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
    "-v", `${path.join(ROOT, "node_modules")}:${NODE_MODULES}:ro`,
    "-v", `${path.join(ROOT, "tests/integration/support")}:${SUPPORT}:ro`,
    ...(o.mounts ?? []).flatMap((m) => ["-v", m]),
    "--entrypoint", "node", REHEARSAL_IMAGE, ...args,
  ];
  const child = spawn("docker", dockerArgs, { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => void (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => void (stderr += d.toString()));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      execFileSync("docker", ["rm", "-f", name], { stdio: "ignore" });
    } catch {
      // already gone
    }
  }, o.timeoutMs);
  const code = await new Promise<number | null>((resolve) => child.once("close", resolve));
  clearTimeout(timer);
  return { code: timedOut ? null : code, stdout, stderr: timedOut ? `${stderr}\n(killed after ${o.timeoutMs} ms)` : stderr };
}
