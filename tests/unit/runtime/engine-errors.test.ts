// Engine failures in words a user can act on, checked against a TLS server on 127.0.0.1 with
// certificates the test makes (openssl): a CA the client does not trust, a certificate for
// another address, a client certificate the server refuses, nothing listening, a server that
// never finishes the handshake. Each error names the engine and the fix and never carries key or
// certificate material. No Docker: the server answers /version like an engine would.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { createServer as createHttpsServer, type Server } from "node:https";
import { createConnection, createServer as createTcpServer, type AddressInfo, type Server as TcpServer, type Socket } from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EngineConfig } from "../../../src/config/schema.js";
import { DockerUnavailableError } from "../../../src/errors.js";
import { DockerRuntime, PullProgress } from "../../../src/runtime/docker.js";
import { classifyEngineFailure, engineFailureMessage } from "../../../src/runtime/engine-errors.js";

const dir = mkdtempSync(path.join(os.tmpdir(), "cmw-engine-tls-"));
const sh = (cmd: string): void => void execFileSync("sh", ["-c", cmd], { cwd: dir, stdio: ["ignore", "ignore", "inherit"] });
const f = (name: string): string => path.join(dir, name);

function makeCa(name: string): void {
  sh(`openssl ecparam -name prime256v1 -genkey -noout -out ${name}-key.pem`);
  sh(`openssl req -new -x509 -days 1 -key ${name}-key.pem -subj /CN=${name} -addext basicConstraints=critical,CA:TRUE -out ${name}.pem 2>/dev/null`);
}
function issue(ca: string, name: string, ext: string): void {
  sh(`openssl ecparam -name prime256v1 -genkey -noout -out ${name}-key.pem`);
  sh(`openssl req -new -key ${name}-key.pem -subj /CN=${name} -out ${name}.csr 2>/dev/null`);
  sh(`printf '${ext}' > ${name}.ext && openssl x509 -req -days 1 -in ${name}.csr -CA ${ca}.pem -CAkey ${ca}-key.pem -CAcreateserial -extfile ${name}.ext -out ${name}.pem 2>/dev/null`);
}

const servers: (Server | TcpServer)[] = [];
const sockets: Socket[] = [];
let good: number; // server cert for 127.0.0.1 from ca-a, client cert from ca-a required
let wrongHost: number; // server cert for 127.0.0.2 only
let closed: number;
let hung: number;
// Node's TLS server drops a refused client certificate without an alert (the client sees
// ECONNRESET); dockerd (Go) sends one, as openssl s_server does: that is the server for this case.
let strict: number;
let sServer: ChildProcess | undefined;

async function listen(s: Server | TcpServer): Promise<number> {
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  return (s.address() as AddressInfo).port;
}

beforeAll(async () => {
  makeCa("ca-a");
  makeCa("ca-b");
  issue("ca-a", "server", "subjectAltName=IP:127.0.0.1\\nextendedKeyUsage=serverAuth\\n");
  issue("ca-a", "server-other", "subjectAltName=IP:127.0.0.2\\nextendedKeyUsage=serverAuth\\n");
  issue("ca-a", "client", "extendedKeyUsage=clientAuth\\n");
  issue("ca-b", "stranger", "extendedKeyUsage=clientAuth\\n");
  const engineLike = (cert: string) =>
    createHttpsServer({ cert: readFileSync(f(`${cert}.pem`)), key: readFileSync(f(`${cert}-key.pem`)), ca: readFileSync(f("ca-a.pem")), requestCert: true, rejectUnauthorized: true, maxVersion: "TLSv1.2" }, (req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ Version: "20.10.24", ApiVersion: "1.41" }));
    });
  good = await listen(engineLike("server"));
  wrongHost = await listen(engineLike("server-other"));
  const c = createTcpServer();
  closed = await listen(c);
  await new Promise((r) => c.close(r));
  servers.pop();
  hung = await listen(createTcpServer((s) => void sockets.push(s))); // accepts, never speaks TLS
  const free = createTcpServer();
  strict = await listen(free);
  await new Promise((r) => free.close(r));
  servers.pop();
  sServer = spawn("openssl", ["s_server", "-quiet", "-accept", `127.0.0.1:${strict}`, "-cert", f("server.pem"), "-key", f("server-key.pem"), "-CAfile", f("ca-a.pem"), "-Verify", "1", "-verify_return_error", "-www"], { stdio: "ignore" });
  // Listening once a TCP connection is accepted.
  for (let i = 0; i < 100; i++) {
    const up = await new Promise<boolean>((r) => {
      const c = createConnection(strict, "127.0.0.1", () => (c.destroy(), r(true)));
      c.on("error", () => r(false));
    });
    if (up) break;
    await new Promise((r) => setTimeout(r, 50));
  }
});

afterAll(async () => {
  sServer?.kill();
  for (const s of sockets) s.destroy();
  for (const s of servers) {
    (s as Server).closeAllConnections?.();
    await new Promise((r) => s.close(r));
  }
});

function engine(port: number, tls: Partial<{ ca: string; cert: string; key: string }> = {}): EngineConfig {
  return {
    name: "build-2",
    host: `tcp://127.0.0.1:${port}`,
    tls: { ca: f("ca-a.pem"), cert: f("client.pem"), key: f("client-key.pem"), ...tls },
    maxContainers: 8,
    labels: [],
    sharedPaths: [],
    local: false,
  };
}

async function pingError(e: EngineConfig, callTimeoutMs = 5_000): Promise<Error> {
  const r = await new DockerRuntime({ engine: e, callTimeoutMs }).ping().then(() => null, (x: unknown) => x);
  if (!(r instanceof Error)) throw new Error("ping succeeded");
  return r;
}

function expectNoKeyMaterial(message: string): void {
  expect(message).not.toMatch(/-----BEGIN|PRIVATE KEY/);
  for (const file of ["client-key.pem", "stranger-key.pem", "client.pem", "stranger.pem", "ca-a.pem", "ca-b.pem"]) {
    for (const line of readFileSync(f(file), "utf8").split("\n")) if (line.length > 20 && !line.startsWith("-----")) expect(message).not.toContain(line);
  }
}

describe("engine failures over TLS", () => {
  it("the right CA, host and client certificate answer (the setup the failures below break)", async () => {
    expect(await new DockerRuntime({ engine: engine(good) }).ping()).toEqual({ version: "20.10.24", apiVersion: "1.41" });
  });

  it("a server certificate from a CA the broker does not trust", async () => {
    const e = await pingError(engine(good, { ca: f("ca-b.pem") }));
    expect(e).toBeInstanceOf(DockerUnavailableError);
    expect(e.message).toMatch(/^Docker engine "build-2" \(tcp:\/\/127\.0\.0\.1:\d+\): its server certificate does not verify against the CA this broker trusts for it \([A-Z_]+: [a-z -]+\) while trying to reach the engine; set \[\[engines\]\] "build-2" tls\.ca to the CA that signed the engine's --tlscert/);
    expectNoKeyMaterial(e.message);
  });

  it("a server certificate issued for another address", async () => {
    const e = await pingError(engine(wrongHost));
    expect(e.message).toMatch(/^Docker engine "build-2" \(tcp:\/\/127\.0\.0\.1:\d+\): its server certificate is not issued for 127\.0\.0\.1 \(ERR_TLS_CERT_ALTNAME_INVALID\) while trying to reach the engine; reissue the engine's certificate with subjectAltName IP:127\.0\.0\.1/);
    expectNoKeyMaterial(e.message);
  });

  it("a client certificate the engine refuses", async () => {
    const e = await pingError(engine(strict, { cert: f("stranger.pem"), key: f("stranger-key.pem") }));
    expect(e).toBeInstanceOf(DockerUnavailableError);
    expect(e.message).toMatch(/^Docker engine "build-2" \(tcp:\/\/127\.0\.0\.1:\d+\) refused this broker's client certificate \(ERR_SSL_\w+: [a-z0-9 ]+\) while trying to reach the engine; \[\[engines\]\] "build-2" tls\.cert and tls\.key must be a client certificate/);
    expectNoKeyMaterial(e.message);
  });

  it("nothing listening", async () => {
    const e = await pingError(engine(closed));
    expect(e.message).toMatch(/^Docker engine "build-2" \(tcp:\/\/127\.0\.0\.1:\d+\): nothing accepts connections there \(ECONNREFUSED\) while trying to reach the engine; start dockerd on that machine with -H tcp:\/\/127\.0\.0\.1:\d+ --tlsverify/);
  });

  it("a server that accepts and never finishes the handshake: the deadline covers the connect", async () => {
    const e = await pingError(engine(hung), 400);
    expect(e.message).toMatch(/^Docker engine "build-2" \(tcp:\/\/127\.0\.0\.1:\d+\) did not answer within 400 ms while trying to reach the engine; it may be hung/);
  });
});

describe("classifying engine failures", () => {
  it.each([
    ["ENOTFOUND", "unknown-host"],
    ["EAI_AGAIN", "unknown-host"],
    ["ECONNREFUSED", "refused"],
    ["EHOSTUNREACH", "unreachable"],
    ["ETIMEDOUT", "unreachable"],
    ["ECONNRESET", "dropped"],
    ["SELF_SIGNED_CERT_IN_CHAIN", "cert-untrusted"],
    ["CERT_HAS_EXPIRED", "cert-untrusted"],
    ["ERR_TLS_CERT_ALTNAME_INVALID", "cert-wrong-host"],
    ["ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED", "cert-refused"],
    ["ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE", "cert-refused"],
    ["ERR_SSL_WRONG_VERSION_NUMBER", "tls-failed"],
    ["ENOENT", "no-socket"],
    ["ERR_SOMETHING_ELSE", null],
  ] as const)("%s is %s", (code, kind) => {
    expect(classifyEngineFailure(Object.assign(new Error("x"), { code }))).toBe(kind);
  });

  it("a status error is no transport failure", () => {
    expect(classifyEngineFailure(Object.assign(new Error("no such container"), { statusCode: 404 }))).toBeNull();
  });

  it("an unknown host names the host and where to fix it", () => {
    const m = engineFailureMessage(Object.assign(new Error("getaddrinfo ENOTFOUND build-9"), { code: "ENOTFOUND" }), { name: "build-9", host: "tcp://build-9:2376" }, "list containers");
    expect(m).toBe('Docker engine "build-9" (tcp://build-9:2376): the host name build-9 does not resolve (ENOTFOUND) while trying to list containers; check host in [[engines]] "build-9" and this machine\'s DNS');
  });

  it("this machine's engine keeps its message: start Docker", () => {
    const refused = Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" });
    const start = "start Docker (scripts/ensure-docker.sh) and try again";
    expect(engineFailureMessage(refused, { name: undefined, host: "/var/run/docker.sock" }, "list containers")).toBe(`Docker engine unreachable at /var/run/docker.sock while trying to list containers (ECONNREFUSED); ${start}`);
    expect(engineFailureMessage(refused, { name: "local", host: "unix:///var/run/docker.sock" }, "list containers")).toBe(`Docker engine unreachable at /var/run/docker.sock while trying to list containers (ECONNREFUSED); ${start}`);
    expect(engineFailureMessage(refused, { name: "spare", host: "unix:///run/spare.sock" }, "list containers")).toBe(`Docker engine "spare" at /run/spare.sock is unreachable while trying to list containers (ECONNREFUSED); ${start}`);
  });

  it("a message never carries a PEM block the library put in its reason", () => {
    const e = Object.assign(new Error("-----BEGIN PRIVATE KEY----- abc"), { code: "ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE" });
    expect(engineFailureMessage(e, { name: "x", host: "tcp://h:2376" }, "ping")).not.toContain("BEGIN");
  });
});

describe("pull progress", () => {
  it("adds the bytes of every layer, with a total once each layer said its size", () => {
    const p = new PullProgress();
    expect(p.add({ id: "a", status: "Pulling fs layer" })).toBe(false);
    expect(p.add({ id: "a", status: "Downloading", progressDetail: { current: 100, total: 1000 } })).toBe(true);
    expect([p.bytes, p.total]).toEqual([100, 1000]);
    expect(p.add({ id: "b", status: "Downloading", progressDetail: { current: 50, total: 500 } })).toBe(true);
    expect([p.bytes, p.total]).toEqual([150, 1500]);
    expect(p.add({ id: "a", status: "Download complete" })).toBe(true);
    expect([p.bytes, p.total]).toEqual([1050, 1500]);
    expect(p.add({ id: "c", status: "Downloading", progressDetail: { current: 7 } })).toBe(true);
    expect([p.bytes, p.total]).toEqual([1057, null]);
    expect(p.add({ status: "Digest: sha256:…" })).toBe(false);
  });
});
