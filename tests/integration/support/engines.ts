// The test engines: extra dockerd on this machine, each in its own network namespace and reached
// only over mutual TLS at tcp://10.200.(100+N).2:2376 (scripts/test-engines.sh makes them; `npm
// test` tears them down at the end). Tests get them as [[engines]] entries, can kill one by its
// own pidfile and start it again, and remove by label what they started on them.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import type { EngineConfig } from "../../../src/config/schema.js";
import { DockerRuntime } from "../../../src/runtime/docker.js";
import { TEST_LABEL } from "./env.js";
import { until } from "./wait.js";

const SCRIPT = path.resolve(import.meta.dirname, "../../../scripts/test-engines.sh");
const STATE = "/var/lib/cmw-test-engines/engines.json";

/** One line of engines.json, as the script writes it. */
interface EngineEntry {
  name: string;
  host: string;
  tls: { ca: string; cert: string; key: string };
  pidfile: string;
  socket: string;
  log: string;
}

function entries(): EngineEntry[] {
  return JSON.parse(readFileSync(STATE, "utf8")) as EngineEntry[];
}

function entry(name: string): EngineEntry {
  const e = entries().find((x) => x.name === name);
  if (!e) throw new Error(`no test engine named ${name} in ${STATE}`);
  return e;
}

function runScript(...args: string[]): void {
  execFileSync("bash", [SCRIPT, ...args], { stdio: ["ignore", "ignore", "inherit"], timeout: 180_000 });
}

/** Brings the test engines up (idempotent: live ones are left alone) and returns them as engines. */
export async function testEngines(opts: { maxContainers?: number } = {}): Promise<EngineConfig[]> {
  runScript("up");
  return entries().map((e) => ({
    name: e.name,
    host: e.host,
    tls: { ...e.tls },
    maxContainers: opts.maxContainers ?? 4,
    labels: ["test", e.name],
    sharedPaths: [],
    local: false,
  }));
}

/** The engine's dockerd pid, from its own pidfile (never by name: the main engine is a dockerd too). */
export function enginePid(name: string): number | null {
  try {
    const pid = Number(readFileSync(entry(name).pidfile, "utf8").trim());
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "";
  } catch {
    return false;
  }
}

/** SIGKILLs an engine's dockerd by its pidfile and waits until it is gone. */
export async function killEngine(name: string): Promise<void> {
  const pid = enginePid(name);
  if (pid === null) throw new Error(`test engine ${name} has no pidfile: is it up?`);
  const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8");
  if (!cmdline.includes(`--pidfile\0${entry(name).pidfile}`)) throw new Error(`pid ${pid} in ${name}'s pidfile is not that engine's dockerd`);
  process.kill(pid, "SIGKILL");
  await until(() => !alive(pid), 10_000, `${name}'s dockerd (pid ${pid}) to die`, 50);
}

/** Starts a stopped engine again (`test-engines.sh up`) and waits until it answers over TLS. */
export async function startEngine(name: string): Promise<void> {
  runScript("up");
  const engine = (await testEngines()).find((e) => e.name === name);
  if (!engine) throw new Error(`no test engine named ${name}`);
  const d = new DockerRuntime({ engine, callTimeoutMs: 5_000 });
  await until(async () => d.ping().then(() => true, () => false), 30_000, `${name} to answer`, 100);
}

/** Removes every container and volume carrying the test label (and, if given, this value) on the test engines. */
export async function removeTestContainersOnEngines(value?: string): Promise<void> {
  const label = { [TEST_LABEL]: value ?? "" };
  for (const engine of await testEngines()) {
    const d = new DockerRuntime({ engine, callTimeoutMs: 20_000 });
    for (const c of await d.listByLabels(label)) await d.remove(c.id);
    for (const v of await d.listVolumesByLabels(label)) await d.removeVolume(v.name);
  }
}
