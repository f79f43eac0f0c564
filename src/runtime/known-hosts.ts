// Checks an SSH server's host key against an OpenSSH known_hosts file, as `ssh` does before it
// trusts a machine: plain and hashed (`|1|salt|hash`) host names, `[host]:port` for a port other
// than 22, `*`/`?` wildcards and `!` negation, and `@revoked` lines. `@cert-authority` lines (host
// certificates) are not supported and are skipped. Pure: the caller reads the file.
import { createHash, createHmac } from "node:crypto";

/** One usable line of a known_hosts file. */
export interface KnownHostLine {
  /** 1-based line number in the file, for messages. */
  line: number;
  /** The comma-separated host patterns, or one hashed name (`|1|salt|hash`). */
  patterns: string[];
  /** The key type the line names (ssh-ed25519, ecdsa-sha2-nistp256, ssh-rsa, …). */
  keyType: string;
  /** The public key in the SSH wire format (base64-decoded from the file). */
  key: Buffer;
  revoked: boolean;
}

/** The lines of a known_hosts file that carry a host key (comments, blanks, certificate authorities and malformed lines left out). */
export function parseKnownHosts(text: string): KnownHostLine[] {
  const out: KnownHostLine[] = [];
  text.split("\n").forEach((raw, i) => {
    const fields = raw.trim().split(/\s+/);
    if (fields[0] === undefined || fields[0] === "" || fields[0].startsWith("#")) return;
    let revoked = false;
    if (fields[0].startsWith("@")) {
      if (fields[0] === "@revoked") revoked = true;
      else return; // @cert-authority: a CA for host certificates, not a host key
      fields.shift();
    }
    const [hosts, keyType, b64] = fields;
    if (hosts === undefined || keyType === undefined || b64 === undefined || !/^[A-Za-z0-9+/]+=*$/.test(b64)) return;
    const key = Buffer.from(b64, "base64");
    // The blob names its own type first; a line whose blob says another type is not a key of that type.
    if (wireKeyType(key) !== keyType) return;
    out.push({ line: i + 1, patterns: hosts.split(","), keyType, key, revoked });
  });
  return out;
}

/** The key type a public key blob (SSH wire format) names, or null when it is no such blob. */
export function wireKeyType(key: Buffer): string | null {
  if (key.length < 4) return null;
  const n = key.readUInt32BE(0);
  if (n === 0 || n > 64 || key.length < 4 + n) return null;
  return key.subarray(4, 4 + n).toString("latin1");
}

/** The key's SHA256 fingerprint as OpenSSH prints it (`ssh-keygen -lf`): `SHA256:` and unpadded base64. */
export function fingerprint(key: Buffer): string {
  return `SHA256:${createHash("sha256").update(key).digest("base64").replace(/=+$/, "")}`;
}

/** The name known_hosts stores for a host and port: `host`, or `[host]:port` for another port than 22. */
export function hostToken(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

function glob(pattern: string, name: string): boolean {
  const re = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".")}$`, "i");
  return re.test(name);
}

/** Whether one line's patterns name the host (`token` from hostToken). */
export function lineMatches(patterns: string[], token: string): boolean {
  let matched = false;
  for (const p of patterns) {
    if (p.startsWith("|1|")) {
      const [, , salt, hash] = p.split("|");
      if (salt === undefined || hash === undefined) continue;
      const mac = createHmac("sha1", Buffer.from(salt, "base64")).update(token).digest("base64");
      if (mac === hash) matched = true;
      continue;
    }
    const negated = p.startsWith("!");
    if (glob(negated ? p.slice(1) : p, token)) {
      if (negated) return false; // a negated match excludes the host whatever else matches
      matched = true;
    }
  }
  return matched;
}

/** What known_hosts says of the key a host offered. */
export type HostKeyVerdict =
  | { verdict: "known"; line: number }
  | { verdict: "unknown" }
  /** The host is listed, but not with this key: another machine, or the host's key changed. */
  | { verdict: "mismatch"; lines: number[] }
  | { verdict: "revoked"; line: number };

/** Checks the key `host:port` offered against the parsed known_hosts lines. */
export function checkHostKey(lines: KnownHostLine[], host: string, port: number, key: Buffer): HostKeyVerdict {
  const revoked = lines.find((l) => l.revoked && l.key.equals(key));
  if (revoked) return { verdict: "revoked", line: revoked.line };
  const token = hostToken(host, port);
  const mine = lines.filter((l) => !l.revoked && lineMatches(l.patterns, token));
  const same = mine.find((l) => l.key.equals(key));
  if (same) return { verdict: "known", line: same.line };
  if (mine.length === 0) return { verdict: "unknown" };
  return { verdict: "mismatch", lines: mine.map((l) => l.line) };
}

// The host-key algorithms (as the SSH library names them) that can present a key of each type.
const ALGORITHMS: Record<string, string[]> = {
  "ssh-ed25519": ["ssh-ed25519"],
  "ecdsa-sha2-nistp256": ["ecdsa-sha2-nistp256"],
  "ecdsa-sha2-nistp384": ["ecdsa-sha2-nistp384"],
  "ecdsa-sha2-nistp521": ["ecdsa-sha2-nistp521"],
  "ssh-rsa": ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"],
};

/**
 * The host-key algorithms to ask the server for: those of the key types known_hosts holds for the
 * host (as `ssh` prefers them), so that a host known by its RSA key is not called changed because
 * it offered its ed25519 one first. Null when none is known (any algorithm: the key is refused anyway).
 */
export function knownAlgorithms(lines: KnownHostLine[], host: string, port: number): string[] | null {
  const token = hostToken(host, port);
  const types = new Set(lines.filter((l) => !l.revoked && lineMatches(l.patterns, token)).map((l) => l.keyType));
  const algos = [...types].flatMap((t) => ALGORITHMS[t] ?? []);
  return algos.length > 0 ? algos : null;
}
