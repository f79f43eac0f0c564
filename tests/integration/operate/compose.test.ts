// Both compose files up at once on one engine, with Debian's docker-compose (v1): the dev
// instance (broker:dev) and the release instance (broker:<version>), each a broker container
// starting sibling worker containers through the mounted socket (same-path bind mounts under
// HOME). Each serves `batch` on its own port with the rehearsal image; each one's containers
// carry only its own label; stopping one leaves the other working.
import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import os from "node:os";
import path from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LABELS } from "../../../src/worker/container.js";
import { CONTAINER_GID, CONTAINER_UID, PREFIX, REHEARSAL_IMAGE, TEST_API_KEY } from "../support/env.js";

const COMPOSE_DIR = path.resolve("compose");
const VERSION = `99.0.${process.pid % 100000}`; // a version tag no real release uses
const CREATED_TAGS = [`${PREFIX}/broker:${VERSION}`, `${PREFIX}/rehearsal:${VERSION}`];

interface Instance {
  name: "dev" | "release";
  project: string;
  label: string;
  port: number;
  file: string;
  workspace: string;
  env: NodeJS.ProcessEnv;
  client?: Client;
}

let home: string;
const instances: Instance[] = [];

function compose(inst: Instance, ...args: string[]): string {
  const r = spawnSync("docker-compose", ["-p", inst.project, "-f", inst.file, ...args], { env: inst.env, encoding: "utf8", timeout: 120_000 });
  if (r.status !== 0) throw new Error(`docker-compose ${args.join(" ")} (${inst.name}) failed: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const port = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  return port;
}

function ownedDir(p: string, mode = 0o755): string {
  mkdirSync(p, { recursive: true });
  if (process.getuid?.() === 0) chownSync(p, CONTAINER_UID, CONTAINER_GID);
  chmodSync(p, mode);
  return p;
}

async function waitHealthy(inst: Instance): Promise<Record<string, unknown>> {
  const deadline = Date.now() + 90_000;
  let last = "";
  while (Date.now() < deadline) {
    try {
      const r = await fetch(`http://127.0.0.1:${inst.port}/healthz`);
      if (r.ok) return (await r.json()) as Record<string, unknown>;
      last = `HTTP ${r.status}`;
    } catch (e) {
      last = (e as Error).message;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`${inst.name} broker not healthy after 90 s (${last}); its log:\n${compose(inst, "logs", "--no-color", "--tail", "40")}`);
}

function containersOf(label: string): { id: string; labels: Record<string, string>; image: string; running: boolean }[] {
  const ids = execFileSync("docker", ["ps", "-aq", "--filter", `label=${LABELS.instance}=${label}`], { encoding: "utf8" }).split("\n").filter(Boolean);
  if (!ids.length) return [];
  const info = JSON.parse(execFileSync("docker", ["inspect", ...ids], { encoding: "utf8" })) as { Id: string; Config: { Labels: Record<string, string>; Image: string }; State: { Running: boolean } }[];
  return info.map((c) => ({ id: c.Id, labels: c.Config.Labels, image: c.Config.Image, running: c.State.Running }));
}

async function batch(inst: Instance, id: string): Promise<{ status: string; tasks: { status: string; conversationId: string | null; error: string | null }[] }> {
  const r = await inst.client!.callTool({
    name: "batch",
    arguments: { workspace: inst.workspace, mission: { name: `${inst.name}-${id}`, tasks: [{ id, prompt: `#fake write out/${id}.txt from ${inst.name}`, sandbox: "workspace-write", artifacts: [`out/${id}.txt`] }] } },
  }, undefined, { timeout: 150_000 });
  expect(r.isError, JSON.stringify(r.content)).toBeFalsy();
  return r.structuredContent as never;
}

beforeAll(async () => {
  home = mkdtempSync(path.join(os.tmpdir(), "cmw-compose-home-"));
  chmodSync(home, 0o755);
  mkdirSync(path.join(home, ".codex"), { mode: 0o700 });
  writeFileSync(path.join(home, ".codex", "auth.json"), JSON.stringify({ OPENAI_API_KEY: TEST_API_KEY }), { mode: 0o600 });
  for (const tag of CREATED_TAGS) execFileSync("docker", ["tag", tag.replace(`:${VERSION}`, ":dev"), tag]);

  for (const name of ["dev", "release"] as const) {
    const label = `cmw-compose-${name}-${process.pid}`;
    const workspace = ownedDir(path.join(home, `ws-${name}`));
    const config = path.join(home, `${name}.toml`);
    const image = name === "dev" ? REHEARSAL_IMAGE : `${PREFIX}/rehearsal:${VERSION}`;
    writeFileSync(config, `[broker]\nallowed_workspace_roots = ["${home}"]\n\n[[workers]]\nname = "default"\nimage = "${image}"\nnetwork = "none"\nmemory = "1g"\ncapacity = 2\nmax_containers = 1\n`);
    const port = await freePort();
    instances.push({
      name,
      project: label,
      label,
      port,
      file: path.join(COMPOSE_DIR, `${name}.yml`),
      workspace,
      env: { ...process.env, HOME: home, CODEX_WRAPPER_CONFIG: config, CODEX_WRAPPER_PORT: String(port), CODEX_WRAPPER_LABEL: label, CODEX_WRAPPER_VERSION: VERSION, CODEX_WRAPPER_LOG_LEVEL: "debug" },
    });
  }
});

afterAll(async () => {
  for (const inst of instances) {
    await inst.client?.close().catch(() => {});
    spawnSync("docker-compose", ["-p", inst.project, "-f", inst.file, "down", "-v", "--timeout", "30"], { env: inst.env, stdio: "ignore", timeout: 120_000 });
    const left = containersOf(inst.label).map((c) => c.id);
    if (left.length) execFileSync("docker", ["rm", "-f", "-v", ...left], { stdio: "ignore" });
  }
  spawnSync("docker", ["rmi", ...CREATED_TAGS], { stdio: "ignore" });
  if (home) rmSync(home, { recursive: true, force: true });
});

describe("compose: the dev and release instances side by side on one engine", () => {
  it("both come up from their compose files, each on its own port, label and channel", async () => {
    for (const inst of instances) compose(inst, "up", "-d");
    for (const inst of instances) {
      const health = await waitHealthy(inst);
      expect(health).toMatchObject({ label: inst.label, channel: inst.name });
      expect(String(health.docker)).toMatch(/^ok/);
      inst.client = new Client({ name: `compose-${inst.name}`, version: "0" });
      await inst.client.connect(new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${inst.port}/mcp`)));
    }
    // The broker containers themselves run the images each file names.
    const brokerImage = (inst: Instance): string => execFileSync("docker", ["inspect", "-f", "{{.Config.Image}}", compose(inst, "ps", "-q").trim()], { encoding: "utf8" }).trim();
    expect(brokerImage(instances[0]!)).toBe(`${PREFIX}/broker:dev`);
    expect(brokerImage(instances[1]!)).toBe(`${PREFIX}/broker:${VERSION}`);
    // Each broker weighs eight worker containers on the CPU (its workers run at Docker's default).
    for (const inst of instances) expect(execFileSync("docker", ["inspect", "-f", "{{.HostConfig.CpuShares}}", compose(inst, "ps", "-q").trim()], { encoding: "utf8" }).trim()).toBe("8192");
  });

  it("batch runs on each; each instance's workers carry only its own label, channel and image", async () => {
    const results = await Promise.all(instances.map((inst) => batch(inst, "first")));
    for (const [i, inst] of instances.entries()) {
      expect(results[i]!.status, JSON.stringify(results[i])).toBe("succeeded");
      // Written by the worker through the same-path bind mount, read here on the host.
      expect(readFileSync(path.join(inst.workspace, "out/first.txt"), "utf8")).toBe(`from ${inst.name}`);
    }
    const [dev, rel] = instances as [Instance, Instance];
    const devWorkers = containersOf(dev.label);
    const relWorkers = containersOf(rel.label);
    expect(devWorkers).toHaveLength(1);
    expect(relWorkers).toHaveLength(1);
    for (const c of devWorkers) expect([c.labels[LABELS.instance], c.labels[LABELS.channel], c.image]).toEqual([dev.label, "dev", REHEARSAL_IMAGE]);
    for (const c of relWorkers) expect([c.labels[LABELS.instance], c.labels[LABELS.channel], c.image]).toEqual([rel.label, "release", `${PREFIX}/rehearsal:${VERSION}`]);
    // Each worker's CODEX_HOME is under its own instance's state directory.
    const mounts = (id: string): string[] => (JSON.parse(execFileSync("docker", ["inspect", "-f", "{{json .Mounts}}", id], { encoding: "utf8" })) as { Source: string }[]).map((m) => m.Source);
    expect(mounts(devWorkers[0]!.id).some((s) => s.startsWith(path.join(home, ".local/state/codex-mcp-wrapper", dev.label)))).toBe(true);
    expect(mounts(relWorkers[0]!.id).some((s) => s.startsWith(path.join(home, ".local/state/codex-mcp-wrapper", rel.label)))).toBe(true);
  });

  it("stopping the dev instance removes its workers and leaves the release instance serving", async () => {
    const [dev, rel] = instances as [Instance, Instance];
    const relWorker = containersOf(rel.label)[0]!.id;
    await dev.client!.close();
    dev.client = undefined;
    compose(dev, "down", "--timeout", "30");
    expect(containersOf(dev.label)).toEqual([]);
    expect(containersOf(rel.label).map((c) => [c.id, c.running])).toEqual([[relWorker, true]]);
    const again = await batch(rel, "second");
    expect(again.status).toBe("succeeded");
    expect(readFileSync(path.join(rel.workspace, "out/second.txt"), "utf8")).toBe("from release");
    expect(containersOf(rel.label).map((c) => c.id)).toEqual([relWorker]);
  });
});
