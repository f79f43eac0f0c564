import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { loadConfig, resolveConfig } from "../../../src/config/load.js";
import { parseDuration, parseSize } from "../../../src/config/schema.js";
import { ConfigError } from "../../../src/errors.js";

function file(text: string): string {
  const p = path.join(mkdtempSync(path.join(os.tmpdir(), "cmw-cfg-")), "wrapper.toml");
  writeFileSync(p, text);
  return p;
}

function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (e) {
    if (e instanceof ConfigError) return (e.details?.problems as string[]) ?? [e.message];
    throw e;
  }
  throw new Error("expected a ConfigError");
}

describe("wrapper.toml", () => {
  it("gives a working dev instance with no file at all", () => {
    const c = loadConfig({ env: {} });
    expect(c).toMatchObject({ label: "codex-wrapper-dev", channel: "dev", host: "127.0.0.1", port: 4105, transport: "http", source: "built-in defaults" });
    expect(c.workers).toHaveLength(1);
    expect(c.workers[0]).toMatchObject({ name: "default", image: "codex-mcp-wrapper/worker:dev", protocol: "app-server", sandbox: "read-only", approval_policy: "never", capacity: 4 });
    // durations are milliseconds, defaults included (zod 4 does not parse a default)
    expect(c.workers[0]).toMatchObject({ idle_timeout: 600_000, turn_timeout: 1_800_000, approval_timeout: 300_000, memory: 2 * 1024 ** 3 });
    expect(c.stateDir).toContain(path.join("codex-mcp-wrapper", "codex-wrapper-dev"));
  });

  it("defaults a release instance to its own label and port 4106", () => {
    const c = resolveConfig({ broker: { channel: "release" } }, "t", {});
    expect(c).toMatchObject({ label: "codex-wrapper", port: 4106 });
    expect(c.workers[0]?.image).toMatch(/^codex-mcp-wrapper\/worker:\d+\.\d+\.\d+$/);
  });

  it("reads sizes, durations and profiles", () => {
    const c = loadConfig({
      file: file(`[broker]\nport = 4999\n[[workers]]\nname = "big"\nimage = "x/worker:dev"\nmemory = "512m"\nidle_timeout = "90s"\ncpus = 1.5\nenv = { FOO = "bar" }\n`),
      env: {},
    });
    expect(c.port).toBe(4999);
    expect(c.workers[0]).toMatchObject({ name: "big", memory: 512 * 1024 * 1024, idle_timeout: 90_000, cpus: 1.5, env: { FOO: "bar" } });
  });

  it("gives one line per problem, naming the key path, the value and what is allowed", () => {
    const problems = problemsOf(() =>
      loadConfig({ file: file(`[broker]\nchannel = "beta"\nport = 70000\nbogus = 1\n[[workers]]\nname = "a"\n[[workers]]\nname = "b"\ncapacity = "two"\nsandbox = "none"\nmemory = "lots"\n`), env: {} }),
    );
    expect(problems).toEqual(
      expect.arrayContaining([
        'broker.channel: expected one of "dev", "release", got "beta"',
        "broker.port: expected a port number from 0 to 65535 (0: any free port), got 70000",
        expect.stringMatching(/^broker: Unrecognized key: "bogus"/),
        'workers[1].capacity: expected a positive integer, got "two"',
        'workers[1].sandbox: expected one of "read-only", "workspace-write", "danger-full-access", got "none"',
        'workers[1].memory: expected a size such as "2g" or "512m", got "lots"',
      ]),
    );
    expect(problems).toHaveLength(6);
  });

  it("refuses duplicate profile names and warm above max_containers", () => {
    expect(problemsOf(() => resolveConfig({ workers: [{ name: "a" }, { name: "a" }] }, "t", {}))).toEqual([
      'workers[1].name: "a" is used by another profile; give each profile its own name',
    ]);
    expect(problemsOf(() => resolveConfig({ workers: [{ name: "a", warm: 5, max_containers: 2 }] }, "t", {}))).toEqual(["workers[0].warm: expected at most max_containers (2), got 5"]);
  });

  it("refuses approval_policy \"untrusted\" on an exec profile (codex exec refuses it), with the fix", () => {
    expect(problemsOf(() => resolveConfig({ workers: [{ name: "a", protocol: "exec", approval_policy: "untrusted" }] }, "t", {}))).toEqual([
      'workers[0].approval_policy: codex exec refuses "untrusted" ("no longer supported"); use "never" or "on-request" with protocol "exec", or protocol "app-server" (which forwards approvals to the client that asked), got "untrusted"',
    ]);
    expect(() => resolveConfig({ workers: [{ name: "a", approval_policy: "untrusted" }] }, "t", {})).not.toThrow();
  });

  it("reads a profile's approval_timeout, and names it when it is not a duration", () => {
    expect(resolveConfig({ workers: [{ name: "a", approval_timeout: "90s" }] }, "t", {}).workers[0]!.approval_timeout).toBe(90_000);
    expect(problemsOf(() => resolveConfig({ workers: [{ name: "a", approval_timeout: "soon" }] }, "t", {}))).toEqual([
      'workers[0].approval_timeout: expected a duration such as "30s", "10m" or a number of seconds, got "soon"',
    ]);
  });

  it("reads a profile's threads_loaded (8 by default), and names it or threads_ahead when out of range", () => {
    expect(resolveConfig({}, "t", {}).workers[0]!.threads_loaded).toBe(8);
    expect(resolveConfig({ workers: [{ name: "a", threads_loaded: 0 }] }, "t", {}).workers[0]!.threads_loaded).toBe(0);
    expect(problemsOf(() => resolveConfig({ workers: [{ name: "a", threads_loaded: 1000 }] }, "t", {}))).toEqual([
      "workers[0].threads_loaded: expected at most 256 threads kept loaded (each costs Codex about 1.2 MiB of the container's memory); 8 is the default, got 1000",
    ]);
    expect(problemsOf(() => resolveConfig({ workers: [{ name: "a", threads_loaded: -1 }] }, "t", {}))).toEqual([
      "workers[0].threads_loaded: expected a whole number of threads from 0 to 256 (0: each thread is unloaded when its turn ends), got -1",
    ]);
    expect(problemsOf(() => resolveConfig({ workers: [{ name: "a", threads_ahead: 9 }] }, "t", {}))).toEqual([
      "workers[0].threads_ahead: expected at most 8 threads started ahead (each costs Codex about 1.2 MiB); 1 is the default, got 9",
    ]);
  });

  it("says where a TOML syntax error is, and that an unreadable file cannot be read", () => {
    expect(() => loadConfig({ file: file("[broker\nport = 1"), env: {} })).toThrow(/not valid TOML/);
    expect(() => loadConfig({ file: "/nonexistent/wrapper.toml", env: {} })).toThrow(/cannot read the config file \(ENOENT\)/);
  });

  it("lets environment variables override the file, and flags override both", () => {
    const f = file(`[broker]\nport = 5000\nlabel = "from-file"\n`);
    const c = loadConfig({ file: f, env: { CODEX_WRAPPER_PORT: "5001", CODEX_WRAPPER_LABEL: "from-env", CODEX_WRAPPER_WORKER_IMAGE: "x/y:dev-1" }, overrides: { port: 5002 } });
    expect(c).toMatchObject({ port: 5002, label: "from-env" });
    expect(c.workers[0]?.image).toBe("x/y:dev-1");
    expect(problemsOf(() => loadConfig({ env: { CODEX_WRAPPER_PORT: "abc" } }))).toEqual(['broker.port: expected a port number from 0 to 65535 (0: any free port), got "abc"']);
  });

  it("accepts the seed's `sse` spelling of the HTTP transport", () => {
    expect(resolveConfig({ broker: { transport: "sse" } }, "t", {}).transport).toBe("http");
  });
});

describe("sizes and durations", () => {
  it("parses the usual spellings", () => {
    expect(parseSize("2g")).toBe(2 * 1024 ** 3);
    expect(parseSize("512MiB")).toBe(512 * 1024 ** 2);
    expect(parseSize("nope")).toBeNull();
    expect(parseDuration("500ms")).toBe(500);
    expect(parseDuration("10m")).toBe(600_000);
    expect(parseDuration(30)).toBe(30_000);
    expect(parseDuration("soon")).toBeNull();
  });
});

describe("worker networks", () => {
  it("default to none; allowlist takes hosts; a Docker network's name is read as open on it, with a warning", () => {
    const c = resolveConfig({ workers: [{ name: "a" }, { name: "b", network: "allowlist", allow: ["registry.npmjs.org", "*.pythonhosted.org", "10.0.0.7:8080"] }, { name: "c", network: "bridge" }] }, "t", {});
    expect(c.workers.map((w) => w.network)).toEqual(["none", "allowlist", "open"]);
    expect(c.workers[1]!.allow).toEqual(["registry.npmjs.org", "*.pythonhosted.org", "10.0.0.7:8080"]);
    expect(c.workers[2]!.docker_network).toBe("bridge");
    expect(c.warnings).toEqual([expect.stringMatching(/^workers\[2\]\.network = "bridge" names a Docker network: read as network = "open" with docker_network = "bridge"/)]);
    expect(resolveConfig({}, "t", {}).warnings).toEqual([]);
  });

  it("refuses an allowlist entry that is not a host, naming the field", () => {
    expect(problemsOf(() => resolveConfig({ workers: [{ name: "a", network: "allowlist", allow: ["http://x.org/path"] }] }, "t", {}))[0]).toMatch(/^workers\[0\]\.allow\[0\]: expected a host name/);
    expect(problemsOf(() => resolveConfig({ broker: { egress_hosts: { "x.test": "not-an-ip" } } }, "t", {}))[0]).toMatch(/^broker\.egress_hosts\.x\.test: expected an IP address/);
  });
});

describe("[[engines]]", () => {
  const pems = (): { ca: string; cert: string; key: string } => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "cmw-tls-"));
    for (const f of ["ca", "cert", "key"]) writeFileSync(path.join(dir, `${f}.pem`), "-----BEGIN SECRET-----\nnot-a-real-key\n");
    return { ca: path.join(dir, "ca.pem"), cert: path.join(dir, "cert.pem"), key: path.join(dir, "key.pem") };
  };

  it("default to one local engine: DOCKER_HOST or the local socket, nothing else changes", () => {
    expect(resolveConfig({}, "t", {}).engines).toEqual([{ name: "local", host: "unix:///var/run/docker.sock", tls: undefined, maxContainers: Number.MAX_SAFE_INTEGER, labels: [], sharedPaths: ["/"], local: true }]);
    const remote = resolveConfig({}, "t", { DOCKER_HOST: "tcp://10.0.0.5:2376", DOCKER_TLS_VERIFY: "1", DOCKER_CERT_PATH: "/certs" }).engines[0]!;
    expect(remote).toMatchObject({ name: "local", host: "tcp://10.0.0.5:2376", tls: { ca: "/certs/ca.pem", cert: "/certs/cert.pem", key: "/certs/key.pem" }, local: false, sharedPaths: [] });
  });

  it("reads engines with TLS, capacity and labels; a profile may require a name or a label", () => {
    const tls = pems();
    const c = resolveConfig(
      { engines: [{ name: "local" }, { name: "build-2", host: "tcp://10.0.0.12:2376", tls, max_containers: 3, labels: ["big"] }], workers: [{ name: "a", engines: ["big"] }, { name: "b", engines: ["local", "build-2"] }] },
      "t",
      {},
    );
    expect(c.engines.map((e) => [e.name, e.local, e.maxContainers, e.labels])).toEqual([
      ["local", true, 8, []],
      ["build-2", false, 3, ["big"]],
    ]);
    expect(c.engines[1]!.tls).toEqual(tls);
    expect(c.workers.map((w) => w.engines)).toEqual([["big"], ["local", "build-2"]]);
  });

  it("refuses a label no engine has, a duplicate name, a remote tcp engine without TLS, and unreadable key files, naming each field and never the key", () => {
    const tls = pems();
    const problems = problemsOf(() =>
      resolveConfig(
        {
          engines: [
            { name: "a", host: "tcp://10.0.0.1:2376" },
            { name: "a", host: "tcp://10.0.0.2:2376", tls: { ...tls, key: "/nonexistent/key.pem" } },
            { name: "c", host: "unix:///run/x.sock", tls },
          ],
        },
        "t",
        {},
      ),
    );
    expect(problems).toEqual([
      expect.stringMatching(/^engines\[0\]\.tls: engine "a" at tcp:\/\/10\.0\.0\.1:2376 has no tls/),
      'engines[1].name: "a" is used by another engine; give each engine its own name',
      "engines[1].tls.key: cannot read /nonexistent/key.pem (ENOENT); check the path",
      expect.stringMatching(/^engines\[2\]\.tls: TLS applies to a tcp:\/\/ host only/),
    ]);
    expect(problems.join("\n")).not.toContain("not-a-real-key");
    expect(problemsOf(() => resolveConfig({ engines: [{ name: "x", labels: ["small"] }], workers: [{ name: "w", engines: ["gpu"] }] }, "t", {}))).toEqual([
      'workers[0].engines[0]: no engine is named or labelled "gpu"; known engines: x (labels small). Add the label to an [[engines]] entry or remove it from the profile',
    ]);
    expect(problemsOf(() => resolveConfig({ engines: [{ name: "x", host: "http://h:1" }] }, "t", {}))[0]).toMatch(/^engines\[0\]\.host: expected "unix:\/\/\/path\/docker.sock", "tcp:\/\/host:2376" or "ssh:\/\/user@host"/);
  });

  it("an ssh:// engine: known_hosts defaults to ~/.ssh/known_hosts and paths expand; ssh on another host and an unreadable identity are refused", () => {
    const c = resolveConfig({ engines: [{ name: "local" }, { name: "s", host: "ssh://deploy@build-3.example:2222" }, { name: "t", host: "ssh://h", ssh: { identity: "/dev/null", known_hosts: "~/kh" } }] }, "t", {});
    expect(c.engines[1]!.ssh).toEqual({ identity: undefined, knownHosts: path.join(os.homedir(), ".ssh", "known_hosts") });
    expect(c.engines[2]!.ssh).toEqual({ identity: "/dev/null", knownHosts: path.join(os.homedir(), "kh") });
    expect(c.engines[0]!.ssh).toBeUndefined();
    expect(
      problemsOf(() =>
        resolveConfig(
          {
            engines: [
              { name: "a", host: "tcp://127.0.0.1:2375", ssh: { known_hosts: "/x" } },
              { name: "b", host: "ssh://h", ssh: { identity: "/nonexistent/id_ed25519" } },
            ],
          },
          "t",
          {},
        ),
      ),
    ).toEqual([
      expect.stringMatching(/^engines\[0\]\.ssh: ssh applies to an ssh:\/\/ host only/),
      "engines[1].ssh.identity: cannot read /nonexistent/id_ed25519 (ENOENT); check the path",
    ]);
  });
});
