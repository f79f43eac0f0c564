// A profile's registry credentials (registry_auth, with pull = true): the file's two shapes, the
// registry host an image names, and refusals that name the key and never quote the file.
import { chmodSync, mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { resolveConfig } from "../../../src/config/load.js";
import { readRegistryAuth, registryHost } from "../../../src/config/registry-auth.js";

const dir = mkdtempSync(path.join(os.tmpdir(), "cmw-regauth-"));
function file(name: string, text: string): string {
  const p = path.join(dir, name);
  writeFileSync(p, text);
  chmodSync(p, 0o600);
  return p;
}
const SECRET = "s3cret-Pa55word-do-not-print";

describe("registry_auth", () => {
  it.each([
    ["registry.example:5000/team/worker:dev", "registry.example:5000"],
    ["127.0.0.1:5000/w:dev", "127.0.0.1:5000"],
    ["localhost/w:dev", "localhost"],
    ["ghcr.io/org/w:dev", "ghcr.io"],
    ["codex-mcp-wrapper/worker:dev", "docker.io"],
    ["worker:dev", "docker.io"],
  ])("the registry host of %s is %s", (ref, host) => expect(registryHost(ref)).toBe(host));

  it("reads { username, password } and a Docker config.json's entry for the image's host", () => {
    expect(readRegistryAuth(file("plain.json", JSON.stringify({ username: "u", password: SECRET })), "r.example:5000/w:dev", "f")).toEqual({ username: "u", password: SECRET, serveraddress: "r.example:5000" });
    const cfg = file("config.json", JSON.stringify({ auths: { "other.example": { auth: "eDp5" }, "r.example:5000": { auth: Buffer.from(`u:${SECRET}`).toString("base64") } } }));
    expect(readRegistryAuth(cfg, "r.example:5000/w:dev", "f")).toEqual({ username: "u", password: SECRET, serveraddress: "r.example:5000" });
  });

  it("refuses a file without credentials for the host, or not JSON, naming the key and quoting nothing of it", () => {
    const cfg = file("nohost.json", JSON.stringify({ auths: { "other.example": { auth: Buffer.from(`u:${SECRET}`).toString("base64") } } }));
    expect(() => readRegistryAuth(cfg, "r.example:5000/w:dev", "workers[0].registry_auth")).toThrow(/^workers\[0\]\.registry_auth: .* has no "auth" entry for the registry r\.example:5000 under "auths"/);
    const bad = file("bad.json", `{ "username": "u", "password": ${SECRET} }`);
    let message = "";
    try {
      readRegistryAuth(bad, "r.example:5000/w:dev", "workers[0].registry_auth");
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toMatch(/^workers\[0\]\.registry_auth: .*bad\.json is not valid JSON; write either/);
    expect(message).not.toContain(SECRET);
  });

  it("the config refuses registry_auth without pull, and an unreadable file, naming the key", () => {
    const workers = (w: Record<string, unknown>) => ({ broker: { allowed_workspace_roots: [os.tmpdir()] }, workers: [{ name: "default", image: "r.example:5000/w:dev", ...w }] });
    const ok = file("ok.json", JSON.stringify({ username: "u", password: SECRET }));
    expect(() => resolveConfig(workers({ registry_auth: ok }), "test", {})).toThrow(/workers\[0\]\.registry_auth: applies only to an image pulled from a registry; add pull = true/);
    expect(() => resolveConfig(workers({ pull: true, registry_auth: path.join(dir, "missing.json") }), "test", {})).toThrow(/workers\[0\]\.registry_auth: cannot read .*missing\.json \(ENOENT\); check the path/);
    const c = resolveConfig(workers({ pull: true, registry_auth: ok }), "test", {});
    expect(c.workers[0]).toMatchObject({ pull: true, registry_auth: ok });
    expect(JSON.stringify(c)).not.toContain(SECRET);
  });
});
