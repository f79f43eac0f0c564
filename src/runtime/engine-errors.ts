// What went wrong between the broker and a Docker engine, in words a user can act on: a
// certificate that does not verify, a client certificate the engine refused, a host that does not
// resolve, nothing listening, no route, a connection dropped. Each message names the engine and
// the fix, and carries only the error's code and the library's one-line reason: never a
// certificate, a key or a file's content.

/** Where an engine is, for messages: its name in the config (if any) and its host. */
export interface EnginePlace {
  /** The engine's name in [[engines]]; undefined for the default engine (DOCKER_HOST or the socket). */
  name: string | undefined;
  /** unix:///…, tcp://host:port, ssh://user@host, or a socket path. */
  host: string;
}

/** How an engine call failed, as far as the transport can tell. */
export type EngineFailure = "ssh-host-unknown" | "ssh-host-changed" | "ssh-auth" | "ssh-identity" | "ssh-dial" | "ssh-timeout" | "ssh-failed" | "cert-untrusted" | "cert-wrong-host" | "cert-refused" | "tls-failed" | "unknown-host" | "refused" | "unreachable" | "dropped" | "no-socket";

// Node's codes for a server certificate that does not chain to the CA given in `ca`.
const UNTRUSTED = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "CERT_SIGNATURE_FAILURE",
  "CERT_UNTRUSTED",
  "CERT_REJECTED",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "INVALID_CA",
  "INVALID_PURPOSE",
]);

/** Classifies a transport error of an engine call; null when it is not one (a 404, say). */
export function classifyEngineFailure(e: unknown): EngineFailure | null {
  const code = (e as { code?: unknown } | undefined)?.code;
  if (typeof code !== "string") return null;
  if (code === "SSH_HOST_UNKNOWN") return "ssh-host-unknown";
  if (code === "SSH_HOST_MISMATCH" || code === "SSH_HOST_REVOKED") return "ssh-host-changed";
  if (code === "SSH_AUTH_FAILED") return "ssh-auth";
  if (code === "SSH_BAD_IDENTITY") return "ssh-identity";
  if (code === "SSH_DIAL_FAILED") return "ssh-dial";
  if (code === "SSH_TIMEOUT") return "ssh-timeout";
  if (code === "SSH_FAILED") return "ssh-failed";
  if (UNTRUSTED.has(code)) return "cert-untrusted";
  if (code === "ERR_TLS_CERT_ALTNAME_INVALID") return "cert-wrong-host";
  // The engine's TLS alert: it did not accept (or got no) client certificate.
  if (/^ERR_SSL_.*ALERT_(BAD_CERTIFICATE|UNKNOWN_CA|CERTIFICATE_REQUIRED|CERTIFICATE_UNKNOWN|UNSUPPORTED_CERTIFICATE|ACCESS_DENIED|DECRYPT_ERROR)$/.test(code)) return "cert-refused";
  if (code.startsWith("ERR_SSL_") || code.startsWith("ERR_TLS_") || code === "EPROTO") return "tls-failed";
  if (code === "ENOTFOUND" || code === "EAI_AGAIN" || code === "EAI_NONAME" || code === "EAI_FAIL") return "unknown-host";
  if (code === "ECONNREFUSED") return "refused";
  if (code === "EHOSTUNREACH" || code === "ENETUNREACH" || code === "ETIMEDOUT" || code === "EHOSTDOWN") return "unreachable";
  if (code === "ECONNRESET" || code === "EPIPE" || code === "ECONNABORTED") return "dropped";
  if (code === "ENOENT" || code === "EACCES") return "no-socket";
  return null;
}

/** The engine's local socket path, when it is one (a plain path or unix://…). */
function socketOf(p: EnginePlace): string | null {
  if (p.host.startsWith("unix://")) return p.host.slice("unix://".length);
  return p.host.startsWith("/") ? p.host : null;
}

/**
 * "Docker engine \"eng-1\" (tcp://…)" for a named engine; "Docker engine at /path" for this
 * machine's socket, named only when it is not the default "local" one (the messages of a
 * one-engine broker stay as they were).
 */
export function engineLabel(p: EnginePlace): string {
  const sock = socketOf(p);
  if (sock !== null) return p.name === undefined || p.name === "local" ? `Docker engine at ${sock}` : `Docker engine "${p.name}" at ${sock}`;
  return p.name === undefined ? `Docker engine at ${p.host}` : `Docker engine "${p.name}" (${p.host})`;
}

function hostOf(p: EnginePlace): string {
  try {
    return new URL(p.host).hostname.replace(/^\[|\]$/g, "");
  } catch {
    return p.host;
  }
}

function portOf(p: EnginePlace): number {
  try {
    const u = new URL(p.host);
    return u.port ? Number(u.port) : 22;
  } catch {
    return 22;
  }
}

/** The library's one-line reason, without anything that is not a short sentence (no PEM, no stack). */
function reason(e: unknown): string {
  const m = (e as { message?: unknown } | undefined)?.message;
  if (typeof m !== "string") return "";
  const line = m.split("\n")[0] ?? "";
  if (line.includes("-----BEGIN") || line.length > 200) return "";
  // OpenSSL's "C0…:error:0A000412:SSL routines:ssl3_read_bytes:sslv3 alert bad certificate:…": keep the words.
  const ssl = /SSL routines:[^:]*:([^:]+)/.exec(line);
  return ssl?.[1] ?? line;
}

/**
 * The message for an engine call that failed in transport, or null when `e` is not a transport
 * failure. `what` is the call ("create container x"). The fix depends on where the engine is: a
 * local socket wants the local engine started, a named remote engine its [[engines]] entry checked.
 */
export function engineFailureMessage(e: unknown, place: EnginePlace, what: string): string | null {
  const kind = classifyEngineFailure(e);
  if (kind === null) return null;
  const code = (e as { code: string }).code;
  const at = engineLabel(place);
  const sock = socketOf(place);
  // This machine's engine: the fix is to start it, as before there were several engines.
  const down = at.startsWith("Docker engine at") ? at.replace("Docker engine at", "Docker engine unreachable at") : `${at} is unreachable`;
  const startLocal = `${down} while trying to ${what} (${code}); start Docker (scripts/ensure-docker.sh) and try again`;
  const entry = place.name === undefined ? "DOCKER_CERT_PATH" : `[[engines]] "${place.name}"`;
  const why = reason(e);
  const because = why ? `${code}: ${why}` : code;
  const ssh = place.host.startsWith("ssh://");
  const port = ssh ? portOf(place) : 22;
  const knownHosts = (e as { details?: { knownHosts?: string } }).details?.knownHosts ?? "~/.ssh/known_hosts";
  const keyscan = `ssh-keyscan${port === 22 ? "" : ` -p ${port}`} ${hostOf(place)} >> ${knownHosts}`;
  const sshEntry = place.name === undefined ? "DOCKER_HOST" : `[[engines]] "${place.name}"`;
  switch (kind) {
    case "ssh-host-unknown":
      return `${at}: refused: the SSH host key is not known (${because}) while trying to ${what}; check the fingerprint on that machine (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub) and, if it is the same, add the key: ${keyscan} (or set ${sshEntry} ssh.known_hosts to a file that has it)`;
    case "ssh-host-changed":
      return `${at}: refused: the SSH host key is not the one known_hosts holds for this host: another machine may be answering in its place (${because}) while trying to ${what}; if the host's key was changed on purpose, check the new fingerprint on that machine (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), remove the old line (ssh-keygen -R ${port === 22 ? hostOf(place) : `'[${hostOf(place)}]:${port}'`} -f ${knownHosts}) and add the new one: ${keyscan}`;
    case "ssh-auth":
      return `${at}: the SSH login failed (${because}) while trying to ${what}; the remote user must accept the key in ${sshEntry} ssh.identity or one in the agent at SSH_AUTH_SOCK (its ~/.ssh/authorized_keys), and the user in host (ssh://user@host) must be the right one`;
    case "ssh-identity":
      return `${at}: the SSH identity cannot be used (${because}) while trying to ${what}; set ${sshEntry} ssh.identity to an unencrypted private key file readable by the broker, or leave it out and add the key to the agent at SSH_AUTH_SOCK (ssh-add)`;
    case "ssh-dial":
      return `${at}: logged in over SSH, but the engine did not answer through docker system dial-stdio (${because}) while trying to ${what}; the remote machine needs the docker CLI on the user's PATH and the user must be allowed to use its engine (the docker group, or root): check with ssh ${place.host.slice("ssh://".length)} docker info`;
    case "ssh-timeout":
      return `${at} did not complete the SSH connection in time (${because}) while trying to ${what}; check that the machine is up and that sshd answers at ${place.host} (broker.docker_timeout sets this limit)`;
    case "ssh-failed":
      return `${at}: the SSH connection failed (${because}) while trying to ${what}; check that sshd runs at ${place.host}`;
    case "cert-untrusted":
      return `${at}: its server certificate does not verify against the CA this broker trusts for it (${because}) while trying to ${what}; set ${entry} tls.ca to the CA that signed the engine's --tlscert, or reissue the engine's certificate from that CA`;
    case "cert-wrong-host":
      return `${at}: its server certificate is not issued for ${hostOf(place)} (${code}) while trying to ${what}; reissue the engine's certificate with subjectAltName IP:${hostOf(place)} (or DNS:name), or set host to a name the certificate carries`;
    case "cert-refused":
      return `${at} refused this broker's client certificate (${because}) while trying to ${what}; ${entry} tls.cert and tls.key must be a client certificate (extendedKeyUsage clientAuth) signed by the CA the engine trusts (its --tlscacert)`;
    case "tls-failed":
      return `${at}: the TLS handshake failed (${because}) while trying to ${what}; check that the engine listens with --tlsverify on that port and that ${entry} tls names the right files`;
    case "unknown-host":
      return `${at}: the host name ${hostOf(place)} does not resolve (${code}) while trying to ${what}; check host in ${entry} and this machine's DNS`;
    case "refused":
      if (ssh) return `${at}: nothing accepts connections there (${code}) while trying to ${what}; start sshd on that machine, or fix the port in host (ssh://user@host:port) in ${sshEntry}`;
      return sock !== null || place.name === undefined
        ? startLocal
        : `${at}: nothing accepts connections there (${code}) while trying to ${what}; start dockerd on that machine with -H ${place.host} --tlsverify, or fix host in ${entry}`;
    case "unreachable":
      return sock !== null || place.name === undefined
        ? startLocal
        : `${at} cannot be reached (${code}) while trying to ${what}; check that the machine is up and that the network or a firewall lets this machine reach ${place.host}`;
    case "dropped":
      if (ssh) return `${at} dropped the connection (${code}) while trying to ${what}; the engine or sshd may have stopped or restarted: check that dockerd runs there (docker -H ${place.host} info)`;
      return sock !== null || place.name === undefined
        ? startLocal
        : `${at} dropped the connection (${code}) while trying to ${what}; the engine may have stopped or restarted: check that dockerd runs there (docker -H ${place.host} --tlsverify info)`;
    case "no-socket":
      return startLocal;
  }
}
