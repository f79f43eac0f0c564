// The egress proxy's rules, on plain data: which allowlist entry lets a host through, and which
// addresses need the allowlist to name them (loopback, link-local, private).
import http from "node:http";
import net, { type AddressInfo } from "node:net";
import { describe, expect, it } from "vitest";
import { classifyAddress, EgressProxy, matchAllow } from "../../../src/relay/egress.js";
import { silentLogger } from "../../../src/log.js";
import { withDeadline } from "../../../src/deadline.js";

describe("allowlist matching", () => {
  it("exact names, subdomain wildcards, IP literals and ports", () => {
    const allow = ["registry.npmjs.org", "*.pythonhosted.org", "10.1.2.3", "git.example.com:8443"];
    expect(matchAllow(allow, "registry.npmjs.org", 443)).toEqual({ entry: "registry.npmjs.org", exact: true });
    expect(matchAllow(allow, "REGISTRY.npmjs.org", 80)?.exact).toBe(true);
    expect(matchAllow(allow, "registry.npmjs.org", 22)).toBeNull(); // 80 and 443 unless the entry says
    expect(matchAllow(allow, "files.pythonhosted.org", 443)).toEqual({ entry: "*.pythonhosted.org", exact: false });
    expect(matchAllow(allow, "pythonhosted.org", 443)).toBeNull(); // a wildcard is for subdomains
    expect(matchAllow(allow, "evilpythonhosted.org", 443)).toBeNull();
    expect(matchAllow(allow, "10.1.2.3", 80)?.exact).toBe(true);
    expect(matchAllow(allow, "git.example.com", 8443)?.exact).toBe(true);
    expect(matchAllow(allow, "git.example.com", 443)).toBeNull();
    expect(matchAllow([], "registry.npmjs.org", 443)).toBeNull();
  });

  it("classifies addresses", () => {
    expect(classifyAddress("127.0.0.1")).toBe("loopback");
    expect(classifyAddress("::1")).toBe("loopback");
    expect(classifyAddress("::ffff:127.0.0.1")).toBe("loopback");
    expect(classifyAddress("169.254.169.254")).toBe("link-local");
    expect(classifyAddress("fe80::1")).toBe("link-local");
    for (const a of ["10.0.0.1", "172.16.5.4", "192.168.1.1", "100.64.0.1", "fd00::1"]) expect(classifyAddress(a)).toBe("private");
    for (const a of ["0.0.0.0", "224.0.0.1", "::"]) expect(classifyAddress(a)).toBe("unusable");
    expect(classifyAddress("93.184.216.34")).toBe("public");
  });
});

describe("the proxy's address rules", () => {
  const hosts: Record<string, string> = { "meta.test": "169.254.169.254", "self.test": "127.0.0.1", "lan.test": "10.9.9.9", "x.lan.test": "10.9.9.9", "pub.test": "93.184.216.34" };
  const proxy = new EgressProxy({ logger: silentLogger, resolveHost: (h) => hosts[h] });
  const check = (allow: string[], host: string) => proxy.check({ allow }, host, 443);

  it("never reaches loopback or link-local through a name, only through the address itself", async () => {
    expect(await check(["meta.test"], "meta.test")).toMatchObject({ refusal: { reason: expect.stringMatching(/link-local address on the broker's side/) } });
    expect(await check(["self.test"], "self.test")).toMatchObject({ refusal: { reason: expect.stringMatching(/loopback/) } });
    expect(await check(["169.254.169.254"], "169.254.169.254")).toEqual({ address: "169.254.169.254" });
  });

  it("reaches a private address by its exact name, never through a wildcard", async () => {
    expect(await check(["lan.test"], "lan.test")).toEqual({ address: "10.9.9.9" });
    expect(await check(["*.lan.test"], "x.lan.test")).toMatchObject({ refusal: { reason: expect.stringMatching(/wildcard .* does not reach/) } });
    expect(await check(["*.test"], "pub.test")).toEqual({ address: "93.184.216.34" });
  });

  it("refuses a host not on the list, naming the list", async () => {
    expect(await check(["pub.test"], "lan.test")).toEqual({ refusal: { target: "lan.test:443", reason: "lan.test is not in this task's allowlist (pub.test)" } });
  });
});

describe("a plain-HTTP request whose upstream fails while its body still arrives", () => {
  it("gets its 502, and the next request on the same connection is served (the rest of the body is dropped, not left unread)", async () => {
    // The upstream: a server on 127.0.0.1 that resets each request at its first piece of body.
    const upstream = http.createServer((req) => req.once("data", () => req.socket.destroy()));
    await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", r));
    const upPort = (upstream.address() as AddressInfo).port;
    // The proxy, served connections as a container's egress listener would hand them over.
    const proxy = new EgressProxy({ logger: silentLogger });
    const front = net.createServer((s) => proxy.serve(s, { allow: [`127.0.0.1:${upPort}`] }, () => {}));
    await new Promise<void>((r) => front.listen(0, "127.0.0.1", r));
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const post = (chunks: number): Promise<{ status: number; socket: object }> =>
      new Promise((resolve, reject) => {
        const req = http.request({ host: "127.0.0.1", port: (front.address() as AddressInfo).port, method: "POST", path: `http://127.0.0.1:${upPort}/upload`, agent, headers: { "content-type": "application/octet-stream" } }, (res) => {
          res.resume();
          res.on("end", () => resolve({ status: res.statusCode ?? 0, socket: req.socket! }));
        });
        req.on("error", reject);
        // The body in pieces, the later ones after the upstream has already failed.
        let sent = 0;
        const next = (): void => {
          if (sent++ === chunks) return void req.end();
          req.write(Buffer.alloc(256 * 1024, 0x61));
          setTimeout(next, 20);
        };
        next();
      });
    try {
      const first = await post(12);
      expect(first.status).toBe(502);
      // The same connection (maxSockets 1, kept alive): before the fix this waited for ever.
      const second = await withDeadline(post(1), 5_000, () => {
        throw new Error("the second request got no answer within 5 s");
      });
      expect(second.status).toBe(502);
      expect(second.socket).toBe(first.socket);
    } finally {
      agent.destroy();
      front.close();
      upstream.closeAllConnections();
      upstream.close();
    }
  });
});
