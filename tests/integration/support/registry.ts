// A small read-only Docker registry for the tests (the Registry HTTP API v2, the parts `docker
// pull` uses): it serves images taken from this machine's engine with `docker save`, as image
// manifests v2 schema 2 whose layers are the saved, uncompressed layer tars (dockerd detects the
// compression itself, and a layer's digest is then its diff_id). Plain HTTP on the addresses it is
// given: dockerd treats 127.0.0.0/8 as an insecure registry by default, and the test engines allow
// 10.200.0.0/16 (scripts/test-engines.sh). Optionally asks for HTTP Basic credentials.
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

const MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json";

interface Blob {
  file: string;
  size: number;
}

interface Served {
  manifest: Buffer;
  digest: string;
}

/** One request the registry answered: what a test can assert on (who pulled what). */
export interface RegistryHit {
  method: string;
  path: string;
  status: number;
  from: string;
}

export interface TestRegistry {
  /** The port it listens on (the same on every address). */
  port: number;
  /** `host:port` for an address it listens on. */
  at(address: string): string;
  /** Serves the local engine's image `source` as `name:tag` (name without the registry host). */
  add(source: string, name: string, tag: string): Promise<void>;
  hits: RegistryHit[];
  close(): Promise<void>;
}

async function sha256File(file: string): Promise<string> {
  const h = createHash("sha256");
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return `sha256:${h.digest("hex")}`;
}

/**
 * Starts a registry on each of `addresses` (one port for all: the first listens on port 0, the
 * others on the port it got). With `basicAuth`, every request but a challenge needs those
 * credentials.
 */
export async function startRegistry(addresses: string[], opts: { basicAuth?: { username: string; password: string } } = {}): Promise<TestRegistry> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "cmw-registry-"));
  const blobs = new Map<string, Blob>();
  const manifests = new Map<string, Served>(); // "name:tag" and "name@digest"
  const hits: RegistryHit[] = [];
  const wantAuth = opts.basicAuth ? `Basic ${Buffer.from(`${opts.basicAuth.username}:${opts.basicAuth.password}`).toString("base64")}` : null;
  let saved = 0;

  const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const url = new URL(req.url ?? "/", "http://registry");
    const send = (status: number, headers: Record<string, string | number> = {}, body?: Buffer | string): void => {
      hits.push({ method: req.method ?? "", path: url.pathname, status, from: req.socket.remoteAddress ?? "" });
      res.writeHead(status, headers);
      res.end(req.method === "HEAD" ? undefined : body);
    };
    const error = (status: number, code: string, message: string): void => {
      const body = JSON.stringify({ errors: [{ code, message }] });
      send(status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) }, body);
    };
    if (req.method !== "GET" && req.method !== "HEAD") return error(405, "UNSUPPORTED", "this registry is read-only");
    if (wantAuth && req.headers.authorization !== wantAuth) {
      res.setHeader("WWW-Authenticate", 'Basic realm="cmw-test-registry"');
      return error(401, "UNAUTHORIZED", "authentication required");
    }
    const v2 = { "Docker-Distribution-API-Version": "registry/2.0" };
    if (url.pathname === "/v2/" || url.pathname === "/v2") return send(200, { ...v2, "Content-Type": "application/json", "Content-Length": 2 }, "{}");
    const m = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/.exec(url.pathname);
    if (!m) return error(404, "NAME_UNKNOWN", "no such path");
    const [, name, kind, ref] = m as unknown as [string, string, string, string];
    if (kind === "manifests") {
      const served = manifests.get(ref.startsWith("sha256:") ? `${name}@${ref}` : `${name}:${ref}`);
      if (!served) return error(404, "MANIFEST_UNKNOWN", `manifest unknown: ${name}:${ref}`);
      return send(200, { ...v2, "Content-Type": MANIFEST_V2, "Content-Length": served.manifest.length, "Docker-Content-Digest": served.digest }, served.manifest);
    }
    const blob = blobs.get(ref);
    if (!blob) return error(404, "BLOB_UNKNOWN", `blob unknown: ${ref}`);
    const headers = { ...v2, "Content-Type": "application/octet-stream", "Content-Length": blob.size, "Docker-Content-Digest": ref };
    if (req.method === "HEAD") return send(200, headers);
    hits.push({ method: "GET", path: url.pathname, status: 200, from: req.socket.remoteAddress ?? "" });
    res.writeHead(200, headers);
    createReadStream(blob.file).pipe(res);
  };

  const servers: http.Server[] = [];
  let port = 0;
  try {
    for (const address of addresses) {
      const server = http.createServer(handler);
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, address, () => resolve());
      });
      servers.push(server);
      port = (server.address() as AddressInfo).port;
    }
  } catch (e) {
    for (const s of servers) s.close();
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }

  return {
    port,
    hits,
    at: (address) => `${address}:${port}`,
    async add(source, name, tag) {
      // docker save's layout (Docker 20.10): manifest.json → Config (<id>.json) and Layers (<dir>/layer.tar).
      const out = path.join(dir, String(saved++));
      // Not a sync call: the registry answers on this process's event loop meanwhile.
      await run("bash", ["-c", 'set -o pipefail; mkdir -p "$1" && docker save "$2" | tar -x -C "$1"', "bash", out, source]);
      const [entry] = JSON.parse(readFileSync(path.join(out, "manifest.json"), "utf8")) as { Config: string; Layers: string[] }[];
      if (!entry) throw new Error(`docker save ${source} wrote no manifest entry`);
      const put = async (file: string): Promise<{ digest: string; size: number }> => {
        const digest = await sha256File(file);
        const size = statSync(file).size;
        blobs.set(digest, { file, size });
        return { digest, size };
      };
      const config = await put(path.join(out, entry.Config));
      const layers: { digest: string; size: number }[] = [];
      for (const l of entry.Layers) layers.push(await put(path.join(out, l)));
      const manifest = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: MANIFEST_V2,
          config: { mediaType: "application/vnd.docker.container.image.v1+json", ...config },
          layers: layers.map((l) => ({ mediaType: "application/vnd.docker.image.rootfs.diff.tar.gzip", ...l })),
        }),
      );
      const digest = `sha256:${createHash("sha256").update(manifest).digest("hex")}`;
      manifests.set(`${name}:${tag}`, { manifest, digest });
      manifests.set(`${name}@${digest}`, { manifest, digest });
    },
    async close() {
      await Promise.all(servers.map((s) => new Promise<void>((resolve) => (s.closeAllConnections(), s.close(() => resolve())))));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
