// HTTP servers on 127.0.0.1 for one test file: each on a free port, all closed after the file's tests.
import type http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll } from "vitest";

/** A `listen(server)` for this file: serves on 127.0.0.1 and gives the port; every server it started is closed (connections and all) after the file's tests. */
export function loopbackServers(): (server: http.Server) => Promise<number> {
  const servers: http.Server[] = [];
  afterAll(async () => {
    for (const s of servers) {
      s.closeAllConnections();
      await new Promise((r) => s.close(r));
    }
  });
  return async (server) => {
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    return (server.address() as AddressInfo).port;
  };
}
