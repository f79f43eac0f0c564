// An engine that accepts connections and never answers (what a hung dockerd looks like from its
// socket): every call fails once its deadline has passed, with an error naming the engine, the
// call and the limit, instead of hanging. `wait` alone has no deadline (it lasts a container's life).
import { createServer, type Server, type Socket } from "node:net";
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DockerUnavailableError } from "../../../src/errors.js";
import { DockerRuntime } from "../../../src/runtime/docker.js";

let server: Server;
const sockets: Socket[] = [];
const socketPath = path.join(mkdtempSync(path.join(os.tmpdir(), "cmw-hung-")), "docker.sock");

beforeAll(async () => {
  server = createServer((s) => void sockets.push(s)); // reads nothing, answers nothing
  await new Promise<void>((r) => server.listen(socketPath, r));
});
afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise((r) => server.close(r));
});

describe("a hung engine", () => {
  it.each([
    ["ping", (d: DockerRuntime) => d.ping(), "reach the engine", "300 ms"],
    ["list", (d: DockerRuntime) => d.listByLabels({ a: "b" }), "list containers", "300 ms"],
    ["inspect", (d: DockerRuntime) => d.inspect("abc"), "inspect abc", "300 ms"],
    ["stop", (d: DockerRuntime) => d.stop("abc", 1), "stop abc", "1300 ms"],
  ] as const)("%s fails after its deadline, naming the engine, the call and the limit", async (_n, run, what, limit) => {
    const d = new DockerRuntime({ socketPath, callTimeoutMs: 300 });
    const e = (await run(d).then(() => null, (x: unknown) => x)) as Error;
    expect(e).toBeInstanceOf(DockerUnavailableError);
    expect(e.message).toBe(`Docker engine at ${socketPath} did not answer within ${limit} while trying to ${what}; it may be hung or overloaded: check \`docker info\`, restart the engine if it does not answer (broker.docker_timeout sets this limit)`);
  });

  it("ping waits at most 5 s even when calls may take longer", async () => {
    const d = new DockerRuntime({ socketPath, callTimeoutMs: 60_000 });
    const e = (await d.ping().then(() => null, (x: unknown) => x)) as Error;
    expect(e.message).toMatch(/did not answer within 5 s while trying to reach the engine/);
  });

  it("wait has no deadline: it is still pending when other calls have failed", async () => {
    const d = new DockerRuntime({ socketPath, callTimeoutMs: 200 });
    let settled = false;
    void d.wait("abc").then(() => (settled = true), () => (settled = true));
    await expect(d.inspect("abc")).rejects.toThrow(/did not answer within 200 ms/);
    await new Promise((r) => setTimeout(r, 300));
    expect(settled).toBe(false);
  });
});
