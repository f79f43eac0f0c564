// The SSH test engine: an sshd of its own in network namespace cmw-ssh-1, reached only at
// ssh://root@10.200.110.2, whose sessions run `docker system dial-stdio` against test engine
// eng-1's socket (scripts/test-ssh-engine.sh makes it, with a generated host key and client key).
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";

const SCRIPT = path.resolve(import.meta.dirname, "../../../scripts/test-ssh-engine.sh");
const STATE = "/var/lib/cmw-test-ssh/ssh.json";

/** ssh.json, as the script writes it. */
export interface SshTestEngine {
  name: string;
  /** ssh://root@10.200.110.2 */
  host: string;
  /** The client's private key (authorized on the engine's sshd). */
  identity: string;
  /** A known_hosts file holding the engine's host key. */
  known_hosts: string;
  /** The host key's public line ("ssh-ed25519 AAAA…"). */
  hostKey: string;
  /** The engine the sessions reach (eng-1's socket), to look at what the broker made there. */
  engineSocket: string;
  /** The sshd's log (LogLevel VERBOSE: one "Accepted publickey" line per login). */
  log: string;
  ip: string;
  port: number;
  /** A port of the same sshd where the docker CLI is not on the PATH. */
  noDockerPort: number;
}

/** Brings the SSH engine up (idempotent; it starts the test engines too) and returns where it is. */
export function sshTestEngine(): SshTestEngine {
  execFileSync("bash", [SCRIPT, "up"], { stdio: ["ignore", "ignore", "inherit"], timeout: 300_000 });
  return JSON.parse(readFileSync(STATE, "utf8")) as SshTestEngine;
}
