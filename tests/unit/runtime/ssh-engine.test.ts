// The SSH engine connection's own deadline: a server that accepts the TCP connection but never
// speaks SSH (a hung sshd, a port that is something else) fails the connect within its limit
// and the connection is closed, not left open; the engine error then names the engine and the fix.
import { createServer, type AddressInfo, type Socket } from "node:net";
import { afterAll, describe, expect, it } from "vitest";
import { engineFailureMessage } from "../../../src/runtime/engine-errors.js";
import { dialEngine, SshEngineError } from "../../../src/runtime/ssh-engine.js";

const sockets: Socket[] = [];
const silent = createServer((s) => sockets.push(s)); // accepts, says nothing
afterAll(() => {
  for (const s of sockets) s.destroy();
  silent.close();
});

describe("an SSH engine's connect", () => {
  it("ends at its deadline when the server never answers, and closes the connection", async () => {
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
    const port = (silent.address() as AddressInfo).port;
    const e = await dialEngine({ host: "127.0.0.1", port, username: "nobody", identity: undefined, knownHosts: "/nonexistent/known_hosts", connectTimeoutMs: 300 }).then(
      () => null,
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(SshEngineError);
    expect((e as SshEngineError).code).toBe("SSH_TIMEOUT");
    // The server sees the connection closed: nothing is left open behind the failed connect.
    await new Promise<void>((resolve) => {
      const s = sockets[0]!;
      if (s.destroyed || s.readableEnded) return resolve();
      s.once("close", () => resolve());
      s.resume();
    });
    const message = engineFailureMessage(e, { name: "build-3", host: `ssh://nobody@127.0.0.1:${port}` }, "reach the engine");
    expect(message).toContain(`Docker engine "build-3" (ssh://nobody@127.0.0.1:${port}) did not complete the SSH connection in time (SSH_TIMEOUT`);
  });
});
