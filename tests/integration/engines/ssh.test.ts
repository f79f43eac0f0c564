// A Docker engine reached over SSH, for real: an sshd of its own in a network namespace
// (scripts/test-ssh-engine.sh), its sessions running `docker system dial-stdio` against test
// engine eng-1, the real Codex in the rehearsal image. A task placed there runs and returns (its
// container is on that engine, the relay reaches it through the engine); a host key that is not
// known, or not the one known, is refused before any login, naming the engine and the fingerprint;
// a bad identity fails without key material; orphans there are reaped by label.
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EngineConfig } from "../../../src/config/schema.js";
import { DockerUnavailableError } from "../../../src/errors.js";
import { validateMission } from "../../../src/mission/load.js";
import { MissionRunner } from "../../../src/mission/runner.js";
import { tokenFingerprint } from "../../../src/rehearsal/plan.js";
import { DockerRuntime } from "../../../src/runtime/docker.js";
import { StateStore } from "../../../src/state/store.js";
import { LABELS } from "../../../src/worker/container.js";
import { removeTestContainersOnEngines } from "../support/engines.js";
import { CONTAINER_GID, CONTAINER_UID, makeWorkspace, removeTestContainers, TEST_API_KEY, TEST_LABEL } from "../support/env.js";
import { poolFixture, testConfig } from "../support/pool.js";
import { type SshTestEngine, sshTestEngine } from "../support/ssh-engine.js";
import { until, within } from "../support/wait.js";

const RUN = `ssh-${process.pid}`;
const pools = poolFixture(RUN);
let ssh: SshTestEngine;
let eng1: DockerRuntime; // the engine behind the sshd, through its own socket: what the broker made there
const dir = mkdtempSync(path.join(os.tmpdir(), "cmw-ssh-test-"));
// An agent in the caller's environment would log in with its own keys: each test says what it gives.
const savedAgent = process.env.SSH_AUTH_SOCK;

beforeAll(() => {
  delete process.env.SSH_AUTH_SOCK;
  ssh = sshTestEngine();
  eng1 = new DockerRuntime({ socketPath: ssh.engineSocket.slice("unix://".length) });
}, 300_000);
afterAll(async () => {
  if (savedAgent !== undefined) process.env.SSH_AUTH_SOCK = savedAgent;
  removeTestContainers(RUN);
  await removeTestContainersOnEngines(RUN);
});

/** The [[engines]] entry of the SSH engine, with `ssh` keys overridden. */
function entry(o: { identity?: string; known_hosts?: string; shared_paths?: string[] } = {}): Record<string, unknown> {
  return { name: "ssh-1", host: ssh.host, ssh: { identity: o.identity ?? ssh.identity, known_hosts: o.known_hosts ?? ssh.known_hosts }, max_containers: 2, labels: ["ssh"], ...(o.shared_paths ? { shared_paths: o.shared_paths } : {}) };
}

/** A runtime for the SSH engine alone (no pool), as the broker makes it. */
function runtime(o: { identity?: string; known_hosts?: string; host?: string } = {}): DockerRuntime {
  const engine: EngineConfig = {
    name: "ssh-1",
    host: o.host ?? ssh.host,
    ssh: { identity: o.identity ?? ssh.identity, knownHosts: o.known_hosts ?? ssh.known_hosts },
    maxContainers: 2,
    labels: [],
    sharedPaths: [],
    local: false,
  };
  return new DockerRuntime({ engine, callTimeoutMs: 15_000 });
}

function file(name: string, content: string): string {
  const p = path.join(dir, name);
  writeFileSync(p, content, { mode: 0o600 });
  return p;
}

/** A new ed25519 key pair of the test's own: [private key file, "ssh-ed25519 AAAA…"]. */
function newKey(name: string): [string, string] {
  const p = path.join(dir, name);
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", name, "-f", p]);
  return [p, readFileSync(`${p}.pub`, "utf8").trim().split(" ").slice(0, 2).join(" ")];
}

/** The SHA256 fingerprint of a public key line, as ssh-keygen -lf prints it. */
function fingerprintOf(publicLine: string): string {
  return execFileSync("ssh-keygen", ["-lf", file(`fp-${Date.now()}.pub`, `${publicLine}\n`)], { encoding: "utf8" }).split(" ")[1]!;
}

async function failure(p: Promise<unknown>): Promise<Error> {
  const e = await within(
    p.then(
      () => null,
      (x: unknown) => x,
    ),
    30_000,
    "the call to fail",
  );
  if (!(e instanceof Error)) throw new Error("the call succeeded");
  return e;
}

/** No PEM block and no line of the key file in the message. */
function expectNoKeyMaterial(message: string, keyFile: string): void {
  expect(message).not.toMatch(/-----BEGIN|PRIVATE KEY/);
  for (const line of readFileSync(keyFile, "utf8").split("\n")) if (line.length > 20 && !line.startsWith("-----")) expect(message).not.toContain(line.slice(0, 40));
}

function workspace(): string {
  const ws = makeWorkspace();
  writeFileSync(path.join(ws, "f.txt"), "base\n");
  execFileSync("chown", ["-R", `${CONTAINER_UID}:${CONTAINER_GID}`, ws]);
  return ws;
}

describe("an engine over SSH", () => {
  it("a task placed on the SSH engine runs and returns: its container is on that engine, the relay reaches it through the engine, a reply goes back there", async () => {
    const pool = await pools.start({ workers: [{ name: "default", capacity: 1, max_containers: 1, engines: ["ssh"] }], engines: [{ name: "local", max_containers: 2 }, entry()] });
    expect(pool.stats().engines.map((e) => [e.name, e.state])).toEqual([
      ["local", "up"],
      ["ssh-1", "up"],
    ]);
    const ws = workspace();
    // A mission's task: on a remote engine it works on its own copy of the workspace.
    const store = new StateStore(pool.config.stateDir);
    const runner = new MissionRunner(pool, store);
    const prompt = "#fake run echo forwarders=$(pgrep -fc '^node /opt/codex-relay/forwarder.js')\n#fake auth\n#fake write out.txt over-ssh";
    const record = await runner.start(validateMission({ name: "ssh", tasks: [{ id: "t", prompt, artifacts: ["out.txt"] }], defaults: { sandbox: "workspace-write" } }, pool.config), { workspace: ws }).done;
    const r = record.tasks[0]!;
    expect(r.status, r.error ?? "").toBe("succeeded");
    expect(r.engine).toBe("ssh-1");
    const out = r.finalMessage ?? "";
    // The relay's forwarder runs in the container, its stdio through the engine (network none);
    // the rehearsal model saw the real credential, which only the relay could have put there.
    expect(out).toContain("forwarders=1");
    expect(out).toContain(`auth: ${tokenFingerprint(TEST_API_KEY)}`);
    // Its copy's change came back as a patch, applied to the workspace (a shared task, applies cleanly).
    expect(r.artifacts.map((a) => a.path)).toEqual(expect.arrayContaining(["out.txt", "changes.patch"]));
    expect(readFileSync(path.join(ws, "out.txt"), "utf8").trim()).toBe("over-ssh");
    // The container is on the engine behind the sshd (eng-1), not on the main one.
    const label = { [LABELS.instance]: pool.config.label };
    const there = await eng1.listByLabels(label);
    expect(there.map((c) => c.name)).toEqual([r.container]);
    expect(await new DockerRuntime().listByLabels(label)).toEqual([]);
    expect((await eng1.inspect(there[0]!.id))?.networkMode).toBe("none");

    const again = await pool.runTurn({ conversationId: r.conversationId!, prompt: "#fake run echo second" });
    expect(again.outcome.status, again.outcome.error ?? "").toBe("succeeded");
    expect(again.engine).toBe("ssh-1");
  });

  it("engine calls share SSH connections: 12 at once log in twice (8 sessions a connection), the next ones reuse them", async () => {
    const logins = (): number => (readFileSync(ssh.log, "utf8").match(/Accepted publickey for root/g) ?? []).length;
    const d = runtime();
    const before = logins();
    const answers = await Promise.all(Array.from({ length: 12 }, () => d.ping()));
    expect(answers.every((a) => /^\d/.test(a.version))).toBe(true);
    await until(() => logins() - before >= 2, 5_000, "sshd to log the logins", 50);
    expect(logins() - before).toBe(2);
    for (let i = 0; i < 5; i++) await d.ping();
    expect(logins() - before).toBe(2);
  });

  it("a host key that is not in known_hosts is refused, naming the engine, the fingerprint offered and the fix; the engine shows down with that reason", async () => {
    const empty = file("known_hosts-empty", "");
    const e = await failure(runtime({ known_hosts: empty }).ping());
    expect(e).toBeInstanceOf(DockerUnavailableError);
    expect(e.message).toContain(`Docker engine "ssh-1" (${ssh.host})`);
    expect(e.message).toContain("SSH_HOST_UNKNOWN");
    expect(e.message).toContain(fingerprintOf(ssh.hostKey));
    expect(e.message).toContain(`ssh-keyscan ${ssh.ip} >> ${empty}`);
    expectNoKeyMaterial(e.message, ssh.identity);

    const pool = await pools.start({ workers: [{ name: "default", capacity: 1 }], engines: [{ name: "local", max_containers: 2 }, entry({ known_hosts: empty })] });
    const down = pool.stats().engines.find((x) => x.name === "ssh-1")!;
    expect(down.state).toBe("down");
    expect(down.reason).toContain(fingerprintOf(ssh.hostKey));
  });

  it("a host key other than the one known_hosts holds for the host is refused as a possible impostor, showing the fingerprint offered", async () => {
    const [, other] = newKey("impostor");
    const wrong = file("known_hosts-wrong", `${ssh.ip} ${other}\n`);
    const e = await failure(runtime({ known_hosts: wrong }).ping());
    expect(e).toBeInstanceOf(DockerUnavailableError);
    expect(e.message).toContain(`Docker engine "ssh-1"`);
    expect(e.message).toContain("SSH_HOST_MISMATCH");
    expect(e.message).toContain("another machine may be answering in its place");
    expect(e.message).toContain(fingerprintOf(ssh.hostKey));
    expect(e.message).not.toContain(fingerprintOf(other));
    expect(e.message).toContain(`ssh-keygen -R ${ssh.ip} -f ${wrong}`);
  });

  it("the right key under a hashed name (ssh-keygen -H) is known", async () => {
    const hashed = file("known_hosts-hashed", readFileSync(ssh.known_hosts, "utf8"));
    execFileSync("ssh-keygen", ["-q", "-H", "-f", hashed], { stdio: "ignore" });
    expect(readFileSync(hashed, "utf8")).not.toContain(ssh.ip);
    expect((await runtime({ known_hosts: hashed }).ping()).version).toMatch(/^\d/);
  });

  it("without an identity, the key comes from the agent at SSH_AUTH_SOCK", async () => {
    const sock = path.join(dir, "agent.sock");
    const agent = spawn("ssh-agent", ["-D", "-a", sock], { stdio: "ignore" });
    try {
      await until(() => existsSync(sock), 10_000, "ssh-agent's socket", 50);
      const noIdentity = (): DockerRuntime =>
        new DockerRuntime({ engine: { name: "ssh-1", host: ssh.host, ssh: { identity: undefined, knownHosts: ssh.known_hosts }, maxContainers: 1, labels: [], sharedPaths: [], local: false }, callTimeoutMs: 15_000 });
      process.env.SSH_AUTH_SOCK = sock;
      // The agent holds no key yet: the login fails, naming the agent.
      const refused = await failure(noIdentity().ping());
      expect(refused.message).toContain("SSH_AUTH_FAILED");
      execFileSync("ssh-add", ["-q", ssh.identity], { env: { ...process.env, SSH_AUTH_SOCK: sock }, stdio: "ignore" });
      expect((await noIdentity().ping()).version).toMatch(/^\d/);
    } finally {
      delete process.env.SSH_AUTH_SOCK;
      agent.kill();
    }
  });

  it("an identity the engine's user does not accept, and one that is no key, each fail clearly without key material", async () => {
    const [stranger] = newKey("stranger");
    const refused = await failure(runtime({ identity: stranger }).ping());
    expect(refused).toBeInstanceOf(DockerUnavailableError);
    expect(refused.message).toContain(`Docker engine "ssh-1"`);
    expect(refused.message).toContain("SSH_AUTH_FAILED");
    expect(refused.message).toContain("authorized_keys");
    expectNoKeyMaterial(refused.message, stranger);

    const garbage = file("not-a-key", `${"x".repeat(64)}\nsecret-looking-line-${"y".repeat(40)}\n`);
    const unusable = await failure(runtime({ identity: garbage }).ping());
    expect(unusable).toBeInstanceOf(DockerUnavailableError);
    expect(unusable.message).toContain("SSH_BAD_IDENTITY");
    expect(unusable.message).toContain(garbage);
    expectNoKeyMaterial(unusable.message, garbage);
  });

  it("a machine without the docker CLI (on a port other than 22, known as [host]:port) fails clearly after the login", async () => {
    const known = file("known_hosts-port", `[${ssh.ip}]:${ssh.noDockerPort} ${ssh.hostKey}\n`);
    const e = await failure(runtime({ host: `ssh://root@${ssh.ip}:${ssh.noDockerPort}`, known_hosts: known }).ping());
    expect(e).toBeInstanceOf(DockerUnavailableError);
    expect(e.message).toContain(`Docker engine "ssh-1" (ssh://root@${ssh.ip}:${ssh.noDockerPort})`);
    expect(e.message).toContain("SSH_DIAL_FAILED");
    expect(e.message).toContain("exited with code 127");
    expect(e.message).toContain("needs the docker CLI on the user's PATH");
  });

  it("after a broker is SIGKILLed, the next one reaps its orphans on the SSH engine by label", async () => {
    const ws = workspace();
    const engines = [{ name: "local", max_containers: 1 }, entry({ shared_paths: [os.tmpdir()] })];
    const config = testConfig({ run: RUN, engines, workers: [{ name: "default", warm: 1, warm_workspaces: [ws], max_containers: 1, engines: ["ssh"] }] });
    const child = spawn(process.execPath, [path.resolve(import.meta.dirname, "../support/engines-child.mjs"), JSON.stringify({ config, labels: { [TEST_LABEL]: RUN } })], { stdio: ["ignore", "pipe", "inherit"] });
    const exited = new Promise((r) => child.once("exit", r));
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    try {
      await until(() => out.includes("ready"), 180_000, "the child broker's warm container on the SSH engine");
      expect(out).toContain('ready ["ssh-1"]');
    } finally {
      child.kill("SIGKILL");
      await exited;
    }
    const mine = async (): Promise<number> => (await eng1.listByLabels({ [LABELS.instance]: config.label })).length;
    expect(await mine()).toBe(1);
    const next = await pools.start({ workers: [{ name: "default", engines: ["ssh"] }], engines });
    expect(next.stats().engines.find((e) => e.name === "ssh-1")?.state).toBe("up");
    expect(await mine()).toBe(0);
  });
});
