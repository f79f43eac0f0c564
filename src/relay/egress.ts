// The egress proxy of workers whose network is "allowlist": HTTP (absolute-form requests) and
// HTTPS (CONNECT) to the hosts a profile or task names, nothing else. The broker resolves each
// name itself and connects to the address it checked, so a name cannot be re-pointed after the
// check; loopback and link-local addresses (the broker's own services, a cloud metadata service)
// are refused unless the allowlist names that very address, and private ones unless it names the
// host exactly (a wildcard never reaches a private address).
import { lookup } from "node:dns/promises";
import http from "node:http";
import net from "node:net";
import type { Duplex } from "node:stream";
import { describeError } from "../errors.js";
import type { Logger } from "../log.js";
import { dropUnread } from "./upstream.js";

export interface EgressPolicy {
  /** Host names (`registry.npmjs.org`), wildcards (`*.pythonhosted.org`) or IP addresses, optionally `:port`. */
  allow: string[];
}

export interface EgressRefusal {
  /** host:port (or what was asked). */
  target: string;
  reason: string;
}

type AddressClass = "public" | "private" | "loopback" | "link-local" | "unusable";

/** What kind of address `ip` is, for the proxy's SSRF rules. */
export function classifyAddress(ip: string): AddressClass {
  const v6 = net.isIPv6(ip);
  const mapped = v6 && /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped) return classifyAddress(mapped[1]!);
  const check = (ranges: [string, number][]): boolean => {
    const b = new net.BlockList();
    for (const [a, p] of ranges) b.addSubnet(a, p, net.isIPv6(a) ? "ipv6" : "ipv4");
    return b.check(ip, v6 ? "ipv6" : "ipv4");
  };
  if (v6) {
    if (check([["::1", 128]])) return "loopback";
    if (check([["fe80::", 10]])) return "link-local";
    if (check([["fc00::", 7]])) return "private";
    if (check([["::", 128], ["ff00::", 8]])) return "unusable";
    return "public";
  }
  if (check([["127.0.0.0", 8]])) return "loopback";
  if (check([["169.254.0.0", 16]])) return "link-local";
  if (check([["10.0.0.0", 8], ["172.16.0.0", 12], ["192.168.0.0", 16], ["100.64.0.0", 10]])) return "private";
  if (check([["0.0.0.0", 8], ["224.0.0.0", 4], ["240.0.0.0", 4]])) return "unusable";
  return "public";
}

interface Match {
  entry: string;
  exact: boolean;
}

/** The allowlist entry that lets `host:port` through, if any (ports 80 and 443 unless the entry names one). */
export function matchAllow(allow: string[], host: string, port: number): Match | null {
  const h = host.toLowerCase().replace(/^\[|\]$/g, "");
  for (const raw of allow) {
    const entry = raw.toLowerCase().trim();
    const m = /^(.*?)(?::(\d+))?$/.exec(entry.startsWith("[") ? entry.replace(/^\[(.*)\](.*)$/, "$1$2") : entry)!;
    const name = net.isIPv6(entry) ? entry : m[1]!;
    const wantPort = net.isIPv6(entry) ? null : m[2] ? Number(m[2]) : null;
    if (wantPort !== null ? port !== wantPort : port !== 80 && port !== 443) continue;
    if (name === h) return { entry: raw, exact: true };
    if (name.startsWith("*.") && h.endsWith(name.slice(1)) && h.length > name.length - 1) return { entry: raw, exact: false };
  }
  return null;
}

export interface EgressProxyOptions {
  logger: Logger;
  /** Resolves a host name (tests map one to their own test host); default: the system resolver. */
  resolveHost?: ((host: string) => string | undefined) | undefined;
}

interface Served {
  policy: EgressPolicy;
  refused: (r: EgressRefusal) => void;
}

export class EgressProxy {
  private readonly server: http.Server;
  private readonly served = new WeakMap<object, Served>();

  constructor(private readonly opts: EgressProxyOptions) {
    this.server = http.createServer((req, res) => void this.onRequest(req, res));
    this.server.on("connect", (req: http.IncomingMessage, socket: Duplex, head: Buffer) => void this.onConnect(req, socket, head));
    this.server.on("clientError", (_e, socket) => socket.destroy());
  }

  /** Serves one connection made to a container's egress listener. */
  serve(stream: Duplex, policy: EgressPolicy, refused: (r: EgressRefusal) => void): void {
    this.served.set(stream, { policy, refused });
    this.server.emit("connection", stream);
  }

  /** Checks `host:port` against the policy and resolves it; the address to connect to, or a refusal. */
  async check(policy: EgressPolicy, host: string, port: number): Promise<{ address: string } | { refusal: EgressRefusal }> {
    const target = `${host}:${port}`;
    const match = matchAllow(policy.allow, host, port);
    if (!match) return { refusal: { target, reason: `${host} is not in this task's allowlist (${policy.allow.join(", ") || "empty"})` } };
    let address: string;
    try {
      address = net.isIP(host.replace(/^\[|\]$/g, "")) ? host.replace(/^\[|\]$/g, "") : (this.opts.resolveHost?.(host) ?? (await lookup(host)).address);
    } catch (e) {
      return { refusal: { target, reason: `cannot resolve ${host}: ${describeError(e)}` } };
    }
    const kind = classifyAddress(address);
    const literal = match.entry.replace(/:\d+$/, "").replace(/^\[|\]$/g, "") === address;
    if (kind === "unusable") return { refusal: { target, reason: `${host} resolves to ${address}, which is not a usable address` } };
    if ((kind === "loopback" || kind === "link-local") && !literal)
      return { refusal: { target, reason: `${host} resolves to ${address}, a ${kind} address on the broker's side; allowlist that address itself to reach it` } };
    if (kind === "private" && !match.exact && !literal)
      return { refusal: { target, reason: `${host} resolves to the private address ${address}, which a wildcard (${match.entry}) does not reach; allowlist the host by its exact name` } };
    return { address };
  }

  private async onConnect(req: http.IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const served = this.served.get(socket);
    const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(req.url ?? "");
    if (!served || !m) {
      socket.end("HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n");
      return;
    }
    const host = m[1]!;
    const port = Number(m[2]);
    const r = await this.check(served.policy, host, port);
    if ("refusal" in r) {
      served.refused(r.refusal);
      socket.end(`HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\ncodex-mcp-wrapper egress: refused ${r.refusal.target}: ${r.refusal.reason}\n`);
      return;
    }
    if (socket.destroyed) return; // went away while the host was checked
    const out = net.connect({ host: r.address, port });
    let established = false;
    out.once("connect", () => {
      established = true;
      socket.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      if (head.length) out.write(head);
      out.pipe(socket);
      socket.pipe(out);
    });
    out.on("error", (e: NodeJS.ErrnoException) => {
      if (!established) socket.end(`HTTP/1.1 502 Bad Gateway\r\nconnection: close\r\n\r\ncannot reach ${host}:${port}: ${e.code ?? e.message}\n`);
      else socket.destroy();
    });
    socket.on("error", () => out.destroy());
    socket.on("close", () => out.destroy());
  }

  /** A plain-HTTP request in absolute form (`GET http://host/path`), as curl and npm send through a proxy. */
  private async onRequest(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const served = this.served.get(req.socket);
    let url: URL;
    try {
      url = new URL(req.url ?? "");
      if (url.protocol !== "http:") throw new Error("not http");
    } catch {
      res.writeHead(400, { "content-type": "text/plain" }).end("codex-mcp-wrapper egress: expected an absolute http:// URL or CONNECT\n");
      return;
    }
    const port = Number(url.port || 80);
    const r = served ? await this.check(served.policy, url.hostname, port) : { refusal: { target: url.host, reason: "no policy" } };
    if ("refusal" in r) {
      served?.refused(r.refusal);
      res.writeHead(403, { "content-type": "text/plain" }).end(`codex-mcp-wrapper egress: refused ${r.refusal.target}: ${r.refusal.reason}\n`);
      return;
    }
    const headers = { ...req.headers };
    delete headers["proxy-connection"];
    delete headers["proxy-authorization"];
    const up = http.request({ host: r.address, port, method: req.method, path: url.pathname + url.search, headers: { ...headers, host: url.host } }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    up.on("error", (e: NodeJS.ErrnoException) => {
      dropUnread(req);
      if (!res.headersSent) res.writeHead(502, { "content-type": "text/plain" }).end(`cannot reach ${url.host}: ${e.code ?? e.message}\n`);
      else res.destroy();
    });
    req.pipe(up);
    this.opts.logger.debug("egress request", { target: url.host });
  }
}
