// The runtime against real remote engines: two extra dockerd (scripts/test-engines.sh), each in
// its own network namespace, reached only over mutual TLS at 10.200.10N.2:2376. A container's
// stdio works there as on the local socket; an image travels there once with the same ID; and a
// bad certificate, a wrong CA, an unknown host and a killed engine each fail within seconds with
// an error naming the engine and the fix, with no key or certificate material in it.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EngineConfig } from "../../../src/config/schema.js";
import { DockerUnavailableError } from "../../../src/errors.js";
import { DockerRuntime } from "../../../src/runtime/docker.js";
import { ensureImage } from "../../../src/runtime/images.js";
import { killEngine, removeTestContainersOnEngines, startEngine, testEngines } from "../support/engines.js";
import { REHEARSAL_IMAGE, TEST_LABEL } from "../support/env.js";
import { within } from "../support/wait.js";

const RUN = `engines-${process.pid}`;
let engines: EngineConfig[];
let other: { ca: string; cert: string; key: string };

/** A CA of the test's own and a client certificate it signed: trusted by no test engine. */
function otherCa(): { ca: string; cert: string; key: string } {
  const dir = mkdtempSync(path.join(os.tmpdir(), "cmw-other-ca-"));
  const sh = (cmd: string): void => void execFileSync("sh", ["-c", cmd], { cwd: dir, stdio: ["ignore", "ignore", "inherit"] });
  sh("openssl ecparam -name prime256v1 -genkey -noout -out ca-key.pem");
  sh('openssl req -new -x509 -days 1 -key ca-key.pem -subj "/CN=not-the-engines-ca" -addext basicConstraints=critical,CA:TRUE -out ca.pem 2>/dev/null');
  sh("openssl ecparam -name prime256v1 -genkey -noout -out key.pem");
  sh('openssl req -new -key key.pem -subj "/CN=stranger" -out csr.pem 2>/dev/null');
  sh("printf 'extendedKeyUsage=clientAuth\\n' > ext && openssl x509 -req -days 1 -in csr.pem -CA ca.pem -CAkey ca-key.pem -CAcreateserial -extfile ext -out cert.pem 2>/dev/null");
  return { ca: path.join(dir, "ca.pem"), cert: path.join(dir, "cert.pem"), key: path.join(dir, "key.pem") };
}

/** No PEM block and no line of any key or certificate file in the message. */
function expectNoKeyMaterial(message: string, files: string[]): void {
  expect(message).not.toMatch(/-----BEGIN|PRIVATE KEY/);
  for (const f of files) {
    for (const line of readFileSync(f, "utf8").split("\n")) {
      if (line.length > 20 && !line.startsWith("-----")) expect(message).not.toContain(line);
    }
  }
}

async function failure(p: Promise<unknown>): Promise<Error> {
  const e = await within(p.then(() => null, (x: unknown) => x), 15_000, "the call to fail");
  if (!(e instanceof Error)) throw new Error("the call succeeded");
  return e;
}

/** create + attach + start + one line through `cat` and back + remove, on one engine. */
async function roundTrip(d: DockerRuntime): Promise<string> {
  const id = await d.createContainer({
    name: `cmw-test-${RUN}-${d.name}-${Date.now()}`,
    image: REHEARSAL_IMAGE,
    cmd: ["cat"],
    labels: { [TEST_LABEL]: RUN },
    mounts: [],
    network: "none",
    openStdin: true,
  });
  try {
    const s = await d.attach(id);
    await d.start(id);
    const line = `hello ${d.name}\n`;
    const echoed = new Promise<string>((resolve, reject) => {
      let got = "";
      s.stdout.on("data", (b: Buffer) => {
        got += b.toString("utf8");
        if (got.includes("\n")) resolve(got);
      });
      s.stdout.on("end", () => reject(new Error(`stdout ended before the echo (got ${JSON.stringify(got)})`)));
    });
    s.stdin.write(line);
    return await within(echoed, 20_000, "the echoed line");
  } finally {
    await d.remove(id);
  }
}

beforeAll(async () => {
  engines = await testEngines();
  other = otherCa();
});

afterAll(async () => {
  await removeTestContainersOnEngines(RUN);
});

describe("test engines over mutual TLS", () => {
  it("the script made two engines, each with its own ID, neither the main engine", async () => {
    expect(engines.map((e) => e.name)).toEqual(["eng-1", "eng-2"]);
    expect(engines.map((e) => e.host)).toEqual(["tcp://10.200.101.2:2376", "tcp://10.200.102.2:2376"]);
    const versions = await Promise.all(engines.map((e) => new DockerRuntime({ engine: e }).ping()));
    for (const v of versions) expect(v.version).toMatch(/^\d+\./);
  });

  it("ensureImage sends the rehearsal image to an engine once, with the source's image ID", async () => {
    const source = new DockerRuntime();
    const want = await source.imageInspect(REHEARSAL_IMAGE);
    expect(want).not.toBeNull();
    // eng-1 starts without it (removed through its local socket), so the image must travel.
    execFileSync("docker", ["-H", "unix:///run/cmw-engine-1.sock", "rmi", "-f", REHEARSAL_IMAGE], { stdio: "ignore" });
    // Both engines at once (about 900 MB each; on two busy cores a load can take minutes).
    await Promise.all(engines.map(async (engine) => {
      const target = new DockerRuntime({ engine });
      const had = await target.imageInspect(REHEARSAL_IMAGE);
      if (engine.name === "eng-1") expect(had).toBeNull();
      let moved = 0;
      let total: number | null = null;
      const first = await ensureImage(source, target, REHEARSAL_IMAGE, { onProgress: (b, t) => ((moved = b), (total = t)) });
      expect(first).toEqual({ id: want!.id, transferred: had?.id !== want!.id });
      if (first.transferred) {
        expect(moved).toBeGreaterThan(want!.size / 2); // the tar went through, in pieces
        expect(total).toBe(want!.size);
      }
      expect((await target.imageInspect(REHEARSAL_IMAGE))?.id).toBe(want!.id);
      const again = await ensureImage(source, target, REHEARSAL_IMAGE, { onProgress: () => expect.fail("nothing should travel") });
      expect(again).toEqual({ id: want!.id, transferred: false });
    }));
  }, 600_000);

  it("an image the source lacks is IMAGE_MISSING, naming the engine and npm run images", async () => {
    const e = (await failure(ensureImage(new DockerRuntime(), new DockerRuntime({ engine: engines[0]! }), "cmw-no-such/image:dev"))) as Error & { code?: string };
    expect(e.code).toBe("IMAGE_MISSING");
    expect(e.message).toContain("cmw-no-such/image:dev is missing on Docker engine at");
    expect(e.message).toContain('Docker engine "eng-1"');
    expect(e.message).toContain("npm run images");
  });

  it("create, attach, start, a line there and back, remove: on each engine", async () => {
    for (const engine of engines) {
      const d = new DockerRuntime({ engine, callTimeoutMs: 20_000 });
      expect(await roundTrip(d)).toBe(`hello ${engine.name}\n`);
      expect(await d.listByLabels({ [TEST_LABEL]: RUN })).toEqual([]);
    }
  });
});

describe("engine failures name the engine and the fix", () => {
  it("a client certificate from another CA: the engine refuses it", async () => {
    const engine = { ...engines[0]!, tls: { ca: engines[0]!.tls!.ca, cert: other.cert, key: other.key } };
    const e = await failure(new DockerRuntime({ engine }).ping());
    expect(e).toBeInstanceOf(DockerUnavailableError);
    expect(e.message).toMatch(/^Docker engine "eng-1" \(tcp:\/\/10\.200\.101\.2:2376\) refused this broker's client certificate \(ERR_SSL_\w+/);
    expect(e.message).toContain('[[engines]] "eng-1" tls.cert and tls.key must be a client certificate');
    expectNoKeyMaterial(e.message, [other.cert, other.key, engines[0]!.tls!.ca]);
  });

  it("a CA that did not sign the engine's certificate: the engine is not trusted", async () => {
    const engine = { ...engines[1]!, tls: { ...engines[1]!.tls!, ca: other.ca } };
    const e = await failure(new DockerRuntime({ engine }).ping());
    expect(e).toBeInstanceOf(DockerUnavailableError);
    expect(e.message).toMatch(/^Docker engine "eng-2" \(tcp:\/\/10\.200\.102\.2:2376\): its server certificate does not verify against the CA this broker trusts for it \(UNABLE_TO_VERIFY_LEAF_SIGNATURE/);
    expect(e.message).toContain('set [[engines]] "eng-2" tls.ca to the CA that signed');
    expectNoKeyMaterial(e.message, [other.ca, engines[1]!.tls!.cert, engines[1]!.tls!.key]);
  });

  it("an unknown host: the name does not resolve", () => {
    // In a network namespace of its own with no route, so the name lookup never leaves this
    // machine: the resolver is unreachable and getaddrinfo answers EAI_AGAIN at once.
    const engine = { ...engines[0]!, name: "nowhere", host: "tcp://cmw-no-such-engine.invalid:2376" };
    const script = `
      import { DockerRuntime } from ${JSON.stringify(path.resolve("dist/runtime/docker.js"))};
      const d = new DockerRuntime({ engine: JSON.parse(process.argv[1]) });
      d.ping().then(() => console.log(JSON.stringify({ ok: true })), (e) => console.log(JSON.stringify({ name: e.name, message: e.message })));`;
    const out = execFileSync("unshare", ["--net", "--", process.execPath, "--input-type=module", "-e", script, JSON.stringify(engine)], { encoding: "utf8", timeout: 20_000 });
    const r = JSON.parse(out) as { name?: string; message?: string };
    expect(r.name).toBe("DockerUnavailableError");
    expect(r.message).toMatch(/^Docker engine "nowhere" \(tcp:\/\/cmw-no-such-engine\.invalid:2376\): the host name cmw-no-such-engine\.invalid does not resolve \((ENOTFOUND|EAI_AGAIN)\) while trying to reach the engine; check host in \[\[engines\]\] "nowhere"/);
    expectNoKeyMaterial(r.message!, [engine.tls!.cert, engine.tls!.key]);
  });

  it("a killed engine fails calls at once, naming it; restarted, it is used again", async () => {
    const engine = engines[1]!;
    const d = new DockerRuntime({ engine, callTimeoutMs: 20_000 });
    await d.ping();
    await killEngine(engine.name);
    try {
      const e = await failure(d.listByLabels({ [TEST_LABEL]: RUN }));
      expect(e).toBeInstanceOf(DockerUnavailableError);
      expect(e.message).toMatch(/^Docker engine "eng-2" \(tcp:\/\/10\.200\.102\.2:2376\)(: nothing accepts connections there \(ECONNREFUSED\)| dropped the connection \(ECONNRESET\)) while trying to list containers/);
      const again = await failure(d.ping());
      expect(again.message).toMatch(/^Docker engine "eng-2" .*ECONNREFUSED.*start dockerd on that machine/);
      expectNoKeyMaterial(again.message, [engine.tls!.cert, engine.tls!.key]);
    } finally {
      await startEngine(engine.name);
    }
    expect(await roundTrip(d)).toBe("hello eng-2\n");
  });

  it("a hung engine (stopped dockerd): calls and attach fail at their deadline, naming it", async () => {
    const engine = engines[0]!;
    const pid = Number(readFileSync("/run/cmw-engine-1.pid", "utf8"));
    const fresh = new DockerRuntime({ engine, callTimeoutMs: 1_000 });
    process.kill(pid, "SIGSTOP");
    try {
      const e = await failure(fresh.ping());
      expect(e.message).toBe('Docker engine "eng-1" (tcp://10.200.101.2:2376) did not answer within 1 s while trying to reach the engine; it may be hung or overloaded: check `docker info`, restart the engine if it does not answer (broker.docker_timeout sets this limit)');
      const a = await failure(fresh.attach("abc"));
      expect(a.message).toMatch(/^Docker engine "eng-1" .* did not answer within 1 s while trying to attach to abc/);
    } finally {
      process.kill(pid, "SIGCONT");
    }
  });
});
