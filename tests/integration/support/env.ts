// Shared facts for integration tests: image names, the test label, and fixtures (a
// CODEX_HOME with a seeded auth.json, a workspace) owned by the uid the container runs as.
import { execFileSync } from "node:child_process";
import { chmodSync, chownSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";

/** Every container a test starts carries this label, so cleanup can find it. */
export const TEST_LABEL = "io.codex-mcp-wrapper.test";
export const PREFIX = process.env.IMAGE_PREFIX ?? "codex-mcp-wrapper";
export const REHEARSAL_IMAGE = `${PREFIX}/rehearsal:dev`;
export const LEGACY_CODEX = process.env.CODEX_LEGACY_VERSION ?? "0.153.0";
export const REHEARSAL_IMAGE_LEGACY = `${PREFIX}/rehearsal:dev-codex-${LEGACY_CODEX}`;
export const TEST_API_KEY = "sk-test-rehearsal-0123456789abcdef";
/**
 * The first word of every broker instance a test starts (`cmw-test-…`, `cmw-sec-api-…`). A run
 * sharing the engine with another run that sweeps (see global-setup.ts) sets its own,
 * CMW_INSTANCE_PREFIX=cmw24 say, so that the other run's sweep of `cmw-…` leaves its containers be.
 */
export const INSTANCE_PREFIX = process.env.CMW_INSTANCE_PREFIX ?? "cmw";

/** Every driver with the rehearsal image it runs on (mcp-server needs Codex ≤ 0.153.0). */
export const ALL_DRIVERS = [
  ["app-server", REHEARSAL_IMAGE],
  ["exec", REHEARSAL_IMAGE],
  ["mcp-server", REHEARSAL_IMAGE_LEGACY],
] as const;

const isRoot = process.getuid?.() === 0;
/** The uid:gid containers run as: the image's codex user when tests run as root. */
export const CONTAINER_UID = isRoot ? 10001 : (process.getuid?.() ?? 10001);
export const CONTAINER_GID = isRoot ? 10001 : (process.getgid?.() ?? 10001);
export const CONTAINER_USER = `${CONTAINER_UID}:${CONTAINER_GID}`;

function own(p: string, mode: number): void {
  if (isRoot) chownSync(p, CONTAINER_UID, CONTAINER_GID);
  chmodSync(p, mode);
}

/** A fresh directory under the OS temp dir, owned by the container user. */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), `cmw-${prefix}-`));
  own(dir, 0o755);
  return dir;
}

/** A CODEX_HOME (0700) holding an API-key auth.json (0600). */
export function makeCodexHome(apiKey = TEST_API_KEY): string {
  const dir = tempDir("home");
  own(dir, 0o700);
  const auth = path.join(dir, "auth.json");
  writeFileSync(auth, JSON.stringify({ OPENAI_API_KEY: apiKey }));
  own(auth, 0o600);
  return dir;
}

export function makeWorkspace(): string {
  const dir = tempDir("ws");
  mkdirSync(dir, { recursive: true });
  return dir;
}

function listTestContainers(filter: string): string[] {
  return execFileSync("docker", ["ps", "-aq", "--filter", filter], { encoding: "utf8" }).split("\n").filter(Boolean);
}

/**
 * Removes every container carrying the test label (and, if given, this value), and checks
 * that none is left: a container already being removed (`--rm`) is waited for, up to 20 s.
 */
export function removeTestContainers(value?: string): void {
  const filter = value ? `label=${TEST_LABEL}=${value}` : `label=${TEST_LABEL}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    const ids = listTestContainers(filter);
    if (ids.length === 0) return;
    try {
      execFileSync("docker", ["rm", "-f", "-v", ...ids], { stdio: "ignore" });
    } catch {
      // "removal already in progress" or "no such container": look again
    }
    if (Date.now() > deadline) throw new Error(`containers with ${filter} are still there after 20 s: ${listTestContainers(filter).join(" ")}`);
    execFileSync("sleep", ["0.2"]);
  }
}

/**
 * Removes every volume a test's pool left (they carry the test label; a child broker's carry an
 * instance label of INSTANCE_PREFIX): a test that fails while an isolated copy is being read back
 * can end before its pool removes the copy's volume. Run after removeTestContainers (a volume
 * still mounted cannot be removed).
 */
export function removeTestVolumes(): void {
  const tested = execFileSync("docker", ["volume", "ls", "-q", "--filter", `label=${TEST_LABEL}`], { encoding: "utf8" }).split("\n").filter(Boolean);
  const names = [...new Set([...tested, ...labelledWith(["volume", "ls"], "{{.Name}}", INSTANCE, `${INSTANCE_PREFIX}-`)])];
  if (names.length) execFileSync("docker", ["volume", "rm", "-f", ...names], { stdio: "ignore" });
}

/** The hardening every worker container gets; tests assert it is in force. */
export const HARDENING = ["--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--network", "none", "--pids-limit", "512"];

/** `field` of each object a `docker` listing (`ps -a`, `volume ls`) shows whose `label` starts with `prefix`. */
function labelledWith(list: string[], field: string, label: string, prefix: string): string[] {
  return execFileSync("docker", [...list, "--filter", `label=${label}`, "--format", `${field} {{.Label "${label}"}}`], { encoding: "utf8" })
    .split("\n")
    .filter(Boolean)
    .map((r) => r.split(" ") as [string, string])
    .filter(([, value]) => value.startsWith(prefix))
    .map(([x]) => x);
}
const INSTANCE = "io.codex-mcp-wrapper.instance";

/**
 * The net under every test: containers started by a broker in a child process carry only their
 * instance label; tests name their instances `cmw-…` (INSTANCE_PREFIX), so any such container is a test's leftover.
 */
export function removeTestInstances(): void {
  const ids = [
    ...labelledWith(["ps", "-a"], "{{.ID}}", INSTANCE, `${INSTANCE_PREFIX}-`),
    // Broker containers a compose test brought up (projects named cmw-compose-…).
    ...labelledWith(["ps", "-a"], "{{.ID}}", "com.docker.compose.project", "cmw-compose-"),
  ];
  if (ids.length) execFileSync("docker", ["rm", "-f", "-v", ...ids], { stdio: "ignore" });
}
