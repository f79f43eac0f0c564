// A test host of the test's own: a network namespace joined to this machine by a veth pair on
// 10.200.N.0/24 (N from the process id), with a small HTTP server at 10.200.N.2:80 that answers
// every request with its own name and the path. Removed by `close()` (and by `ip netns del` if a
// test died: the namespace's name carries the pid).
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { endChild } from "./wait.js";

export interface TestHost {
  ns: string;
  /** The host's address (in its namespace). */
  address: string;
  /** This machine's address on the pair. */
  hostSide: string;
  close(): Promise<void>;
}

const ip = (...args: string[]): void => void execFileSync("ip", args, { stdio: ["ignore", "ignore", "pipe"] });

const SERVER = `
const http = require("node:http");
http.createServer((req, res) => {
  res.writeHead(200, { "content-type": "text/plain" });
  res.end("testhost says hello to " + req.method + " " + req.url + "\\n");
}).listen(80, process.argv[1], () => console.log("listening"));
`;

export async function startTestHost(): Promise<TestHost> {
  // 150..249: clear of the test engines (10.200.101-1xx, scripts/test-engines.sh).
  const n = 150 + (process.pid % 100);
  const ns = `cmw-th-${process.pid}`;
  const veth = `cmwth${process.pid % 100000}`;
  const address = `10.200.${n}.2`;
  const hostSide = `10.200.${n}.1`;
  let server: ChildProcess | undefined;
  const close = async (): Promise<void> => {
    if (server) await endChild(server);
    try {
      ip("netns", "del", ns);
    } catch {
      // already gone
    }
    try {
      ip("link", "del", veth);
    } catch {
      // went with the namespace
    }
  };
  try {
    ip("netns", "add", ns);
    ip("link", "add", veth, "type", "veth", "peer", "name", `${veth}p`);
    ip("link", "set", `${veth}p`, "netns", ns);
    ip("-n", ns, "link", "set", `${veth}p`, "name", "eth0");
    ip("addr", "add", `${hostSide}/24`, "dev", veth);
    ip("link", "set", veth, "up");
    ip("-n", ns, "link", "set", "lo", "up");
    ip("-n", ns, "addr", "add", `${address}/24`, "dev", "eth0");
    ip("-n", ns, "link", "set", "eth0", "up");
    server = spawn("ip", ["netns", "exec", ns, process.execPath, "-e", SERVER, address], { stdio: ["ignore", "pipe", "inherit"] });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the test host's server in ${ns} did not start within 10 s`)), 10_000);
      server!.stdout!.once("data", () => {
        clearTimeout(timer);
        resolve();
      });
      server!.once("exit", (code) => reject(new Error(`the test host's server in ${ns} exited (${code})`)));
    });
  } catch (e) {
    await close();
    throw e;
  }
  return { ns, address, hostSide, close };
}
