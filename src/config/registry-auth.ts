// Registry credentials for a profile that pulls its image (`registry_auth`): read from a JSON file
// of the user's, at start (an unreadable one is refused then) and again at each pull (a rotated file
// is picked up). Nothing of the file's content appears in an error or a log.
import { readFileSync } from "node:fs";
import { ConfigError } from "../errors.js";

/** What the engine API takes as X-Registry-Auth (dockerode's `authconfig`). */
export interface RegistryAuth {
  username?: string;
  password?: string;
  identitytoken?: string;
  serveraddress: string;
}

/**
 * The registry host of an image reference, by Docker's rule: the first path component when it
 * has a '.' or a ':' or is `localhost`, else Docker Hub.
 */
export function registryHost(ref: string): string {
  const slash = ref.indexOf("/");
  const first = slash < 0 ? "" : ref.slice(0, slash);
  return first && (first.includes(".") || first.includes(":") || first === "localhost") ? first : "docker.io";
}

const FORMATS =
  'write either { "username": "…", "password": "…" } (or { "identitytoken": "…" }), or a Docker config.json whose "auths" has the registry host with an "auth" entry (credential helpers are not read)';

/**
 * Reads the credentials for `ref`'s registry from `file`. Two shapes: the engine API's own
 * ({ username, password } or { identitytoken }), or Docker's config.json ({ auths: { host:
 * { auth: base64("user:password") } } }), whose entry for the image's registry host is taken.
 * CONFIG_INVALID naming `field` (workers[0].registry_auth) when the file cannot be read or holds
 * no credentials for that host.
 */
export function readRegistryAuth(file: string, ref: string, field: string): RegistryAuth {
  const host = registryHost(ref);
  const refuse = (why: string): ConfigError => new ConfigError("CONFIG_INVALID", `${field}: ${file} ${why}; ${FORMATS}`, { field, file });
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new ConfigError("CONFIG_INVALID", `${field}: cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? "unreadable"}); check the path, and that the broker's user may read it`, { field, file });
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    // JSON.parse's own message quotes the text: it could hold a password.
    throw refuse("is not valid JSON");
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) throw refuse("is not a JSON object");
  const o = doc as Record<string, unknown>;
  const str = (v: unknown): string | undefined => (typeof v === "string" && v !== "" ? v : undefined);
  if (typeof o.auths === "object" && o.auths !== null) {
    const auths = o.auths as Record<string, unknown>;
    const entry = auths[host] ?? auths[`http://${host}`] ?? auths[`https://${host}`] ?? (host === "docker.io" ? auths["https://index.docker.io/v1/"] : undefined);
    const e = (typeof entry === "object" && entry !== null ? entry : {}) as Record<string, unknown>;
    const token = str(e.identitytoken);
    if (token) return { identitytoken: token, serveraddress: host };
    const basic = str(e.auth);
    const decoded = basic ? Buffer.from(basic, "base64").toString("utf8") : "";
    const colon = decoded.indexOf(":");
    if (colon > 0) return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1), serveraddress: host };
    throw refuse(`has no "auth" entry for the registry ${host} under "auths"`);
  }
  const token = str(o.identitytoken);
  if (token) return { identitytoken: token, serveraddress: str(o.serveraddress) ?? host };
  const username = str(o.username);
  const password = str(o.password);
  if (username && password) return { username, password, serveraddress: str(o.serveraddress) ?? host };
  throw refuse("holds no username and password");
}
