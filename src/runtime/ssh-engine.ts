// The connection to a Docker engine over SSH (`host = "ssh://user@host"`): each HTTP connection
// of the engine client is an SSH session running `docker system dial-stdio` on the remote machine,
// as `docker -H ssh://…` does. Before any credential is sent, the server's host key must be in
// known_hosts (the machine is who it says), and every connect ends within a deadline. No key
// material (private key, passphrase, agent socket content) ever goes into an error.
import { readFileSync } from "node:fs";
import http from "node:http";
import { Duplex } from "node:stream";
import { Client, type ClientChannel, type ConnectConfig } from "ssh2";
import { checkHostKey, fingerprint, hostToken, knownAlgorithms, parseKnownHosts, wireKeyType } from "./known-hosts.js";

/** Where and how to reach an engine over SSH. */
export interface SshTarget {
  host: string;
  port: number;
  username: string | undefined;
  /** A private key file (OpenSSH or PEM, unencrypted); none: the agent at SSH_AUTH_SOCK only. */
  identity: string | undefined;
  /** The known_hosts file the host's key must be in. */
  knownHosts: string;
  /** The longest a connect (TCP, key exchange, login, starting dial-stdio) may take (ms). */
  connectTimeoutMs: number;
}

/** What went wrong on the SSH side, as a code the engine errors turn into a message with the fix. */
export type SshFailure = "SSH_HOST_UNKNOWN" | "SSH_HOST_MISMATCH" | "SSH_HOST_REVOKED" | "SSH_AUTH_FAILED" | "SSH_BAD_IDENTITY" | "SSH_DIAL_FAILED" | "SSH_TIMEOUT" | "SSH_FAILED";

/** An SSH failure: `code` says which, `fingerprint` is the host key the server offered (when it is about the key). */
export class SshEngineError extends Error {
  constructor(
    readonly code: SshFailure,
    message: string,
    readonly details: { fingerprint?: string; keyType?: string; knownHosts?: string; hostToken?: string; lines?: number[] } = {},
  ) {
    super(message);
    this.name = "SshEngineError";
  }
}

function readKnownHosts(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return ""; // no file: every host is unknown
    throw e;
  }
}

/** The private key's content, or an error naming the file (never its content). */
function readIdentity(file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    throw new SshEngineError("SSH_BAD_IDENTITY", `cannot read the identity file ${file} (${(e as NodeJS.ErrnoException).code ?? "error"})`);
  }
}

// The SSH library's one-line reason, only when it is a short sentence (its parse errors never carry
// the key, but nothing long or multi-line goes out either way).
function short(e: unknown): string {
  const m = e instanceof Error ? (e.message.split("\n")[0] ?? "") : "";
  return m.length > 0 && m.length <= 160 && !m.includes("-----") ? m : "";
}

/**
 * The remote `docker system dial-stdio`'s stdio as the HTTP client's socket. Its end is held back
 * until the command's exit status is known: sshd sends the end of its output before the status, and
 * a command that failed (no docker CLI there, an engine it cannot reach) then fails the call with
 * its reason from stderr, instead of the HTTP client's bare "socket hang up".
 */
export class DialStream extends Duplex {
  private exitCode: number | null = null;
  private stderr = "";

  constructor(readonly channel: ClientChannel) {
    super();
    channel.on("data", (b: Buffer) => {
      if (!this.push(b)) channel.pause();
    });
    channel.stderr.on("data", (b: Buffer) => {
      if (this.stderr.length < 2000) this.stderr += b.toString("utf8");
    });
    channel.on("exit", (code: number | null) => (this.exitCode = code));
    channel.on("error", (e: Error) => this.destroy(e));
    channel.on("close", () => {
      if (this.exitCode !== null && this.exitCode !== 0) {
        const why = this.stderr.trim().split("\n")[0]?.slice(0, 200) ?? "";
        this.destroy(new SshEngineError("SSH_DIAL_FAILED", `docker system dial-stdio exited with code ${this.exitCode} on the remote machine${why ? `: ${why}` : ""}`));
      } else this.push(null);
    });
  }

  override _read(): void {
    this.channel.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.channel.write(chunk, cb);
  }

  override _final(cb: (e?: Error | null) => void): void {
    this.channel.end();
    cb();
  }

  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    this.channel.destroy();
    cb(err);
  }
}

/**
 * Opens an SSH connection to the target and logs in: resolves with the connection once it is
 * ready, rejects with an SshEngineError (or the socket's own error: ECONNREFUSED, ENOTFOUND, …)
 * within `deadlineMs`. The host key is checked against known_hosts before the login.
 */
export function connectSsh(t: SshTarget, deadlineMs = t.connectTimeoutMs): Promise<Client> {
  return new Promise<Client>((resolve, reject) => {
    const conn = new Client();
    let settled = false;
    // Set by the host verifier when it refuses the key: the library's own error says only "Host denied".
    let refusal: SshEngineError | null = null;
    const fail = (e: unknown): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      conn.end();
      conn.destroy();
      reject(refusal ?? (e instanceof Error ? e : new Error(String(e))));
    };
    const timer = setTimeout(() => fail(new SshEngineError("SSH_TIMEOUT", `no SSH session within ${deadlineMs} ms`)), deadlineMs);

    let known: ReturnType<typeof parseKnownHosts>;
    let privateKey: Buffer | undefined;
    try {
      known = parseKnownHosts(readKnownHosts(t.knownHosts));
      privateKey = t.identity === undefined ? undefined : readIdentity(t.identity);
    } catch (e) {
      fail(e);
      return;
    }
    const token = hostToken(t.host, t.port);
    const algorithms = knownAlgorithms(known, t.host, t.port);
    const config: ConnectConfig = {
      host: t.host,
      port: t.port,
      username: t.username ?? process.env.USER ?? "root",
      privateKey,
      agent: process.env.SSH_AUTH_SOCK || undefined,
      readyTimeout: deadlineMs,
      keepaliveInterval: 0,
      ...(algorithms ? { algorithms: { serverHostKey: algorithms as NonNullable<ConnectConfig["algorithms"]>["serverHostKey"] } } : {}),
      hostVerifier: (key: Buffer): boolean => {
        const verdict = checkHostKey(known, t.host, t.port, key);
        if (verdict.verdict === "known") return true;
        const fp = fingerprint(key);
        const keyType = wireKeyType(key) ?? "unknown type";
        const details = { fingerprint: fp, keyType, knownHosts: t.knownHosts, hostToken: token };
        if (verdict.verdict === "unknown") refusal = new SshEngineError("SSH_HOST_UNKNOWN", `the host key of ${token} (${keyType} ${fp}) is not in ${t.knownHosts}`, details);
        else if (verdict.verdict === "revoked") refusal = new SshEngineError("SSH_HOST_REVOKED", `the host key of ${token} (${keyType} ${fp}) is revoked in ${t.knownHosts} line ${verdict.line}`, details);
        else refusal = new SshEngineError("SSH_HOST_MISMATCH", `the host key of ${token} (${keyType} ${fp}) is not the one ${t.knownHosts} holds for it (line ${verdict.lines.join(", ")})`, { ...details, lines: verdict.lines });
        return false;
      },
    };
    conn.on("error", (e: Error & { level?: string }) => {
      if (refusal) return fail(refusal);
      if (e.level === "client-authentication" || e.level === "agent")
        return fail(new SshEngineError("SSH_AUTH_FAILED", `the server refused the login as ${config.username}${short(e) ? ` (${short(e)})` : ""}`));
      if (e.level === "client-timeout") return fail(new SshEngineError("SSH_TIMEOUT", `no SSH handshake within ${deadlineMs} ms`));
      if ((e as { code?: unknown }).code !== undefined) return fail(e); // the socket's: ECONNREFUSED, ENOTFOUND, …
      return fail(new SshEngineError("SSH_FAILED", short(e) || "the SSH connection failed"));
    });
    conn.on("close", () => fail(new SshEngineError("SSH_FAILED", "the SSH connection closed before the engine answered")));
    conn.on("ready", () => {
      if (settled) return void conn.end();
      settled = true;
      clearTimeout(timer);
      resolve(conn);
    });
    try {
      conn.connect(config);
    } catch (e) {
      // A private key the library cannot use (encrypted, unknown format): its reason, never the key.
      fail(new SshEngineError("SSH_BAD_IDENTITY", `the identity file ${t.identity ?? ""} cannot be used${short(e) ? ` (${short(e)})` : ""}`));
    }
  });
}

/** Starts `docker system dial-stdio` in a new session of a logged-in connection, within `deadlineMs`. */
export function openDial(conn: Client, deadlineMs: number): Promise<DialStream> {
  return new Promise<DialStream>((resolve, reject) => {
    let settled = false;
    const timer = setTimeout(() => {
      settled = true;
      reject(new SshEngineError("SSH_TIMEOUT", `the remote docker system dial-stdio did not start within ${deadlineMs} ms`));
    }, deadlineMs);
    conn.exec("docker system dial-stdio", (err, stream: ClientChannel) => {
      clearTimeout(timer);
      if (settled) return void stream?.destroy(); // too late: the caller has gone on
      settled = true;
      if (err) return reject(new SshEngineError("SSH_DIAL_FAILED", `the server would not run docker system dial-stdio${short(err) ? ` (${short(err)})` : ""}`));
      resolve(new DialStream(stream));
    });
  });
}

/** One SSH connection, its own session for one engine connection: connects, starts dial-stdio, and ends with the stream. */
export async function dialEngine(t: SshTarget): Promise<Duplex> {
  const started = Date.now();
  const conn = await connectSsh(t);
  try {
    const stream = await openDial(conn, Math.max(1, t.connectTimeoutMs - (Date.now() - started)));
    stream.once("close", () => conn.end());
    return stream;
  } catch (e) {
    conn.end();
    throw e;
  }
}

// Sessions per SSH connection: sshd's MaxSessions is 10 by default; a few are left for slack.
const SESSIONS_PER_CONNECTION = 8;
// A connection with no session open is closed after this long.
const IDLE_MS = 15_000;

interface SharedConnection {
  ready: Promise<Client>;
  /** Sessions open or being opened on it. */
  sessions: number;
  dead: boolean;
  idle: NodeJS.Timeout | undefined;
}

/**
 * An HTTP agent whose every connection is a session (`docker system dial-stdio`) on a shared SSH
 * connection to the engine: the key exchange and login are paid once per connection, not per
 * engine call, as with OpenSSH's ControlMaster. At most SESSIONS_PER_CONNECTION sessions share a
 * connection (more open another); a connection closes when idle, and one that failed is dropped
 * so the next call connects again (the host key checked again). No HTTP keep-alive: a session
 * serves one request or one attached stream, and ends with it.
 */
export function sshAgent(t: SshTarget): http.Agent {
  const agent = new http.Agent({ keepAlive: false });
  const shared: SharedConnection[] = [];

  const drop = (c: SharedConnection): void => {
    c.dead = true;
    clearTimeout(c.idle);
    const i = shared.indexOf(c);
    if (i >= 0) shared.splice(i, 1);
  };
  const take = (): SharedConnection => {
    let c = shared.find((x) => !x.dead && x.sessions < SESSIONS_PER_CONNECTION);
    if (!c) {
      const fresh: SharedConnection = { ready: connectSsh(t), sessions: 0, dead: false, idle: undefined };
      fresh.ready.then(
        (conn) => {
          conn.on("close", () => drop(fresh));
          conn.on("error", () => drop(fresh));
        },
        () => drop(fresh),
      );
      shared.push(fresh);
      c = fresh;
    }
    clearTimeout(c.idle);
    c.sessions++;
    return c;
  };
  const release = (c: SharedConnection, conn: Client | undefined): void => {
    c.sessions--;
    if (c.sessions > 0) return;
    if (c.dead) return void conn?.end(); // dropped while sessions were open: the last one ends it
    c.idle = setTimeout(() => {
      drop(c);
      conn?.end();
    }, IDLE_MS);
    c.idle.unref(); // an idle connection does not keep the broker's process alive
  };

  const dial = async (): Promise<Duplex> => {
    const started = Date.now();
    const c = take();
    let conn: Client | undefined;
    try {
      conn = await c.ready;
      const stream = await openDial(conn, Math.max(1, t.connectTimeoutMs - (Date.now() - started)));
      const done = conn;
      // The session's own end (the channel's), whether or not the stream's user ever ends its side.
      stream.channel.once("close", () => release(c, done));
      return stream;
    } catch (e) {
      // A connection that cannot open a session (the server's MaxSessions lower than ours, or it
      // went away) is not given more; the next call makes a new one.
      if (conn) drop(c);
      release(c, conn);
      throw e;
    }
  };
  // Node's Agent takes an async createConnection through its callback.
  (agent as unknown as { createConnection: (o: unknown, cb: (err: Error | null, s?: Duplex) => void) => void }).createConnection = (_o, cb) => {
    dial().then(
      (s) => cb(null, s),
      (e: unknown) => cb(e instanceof Error ? e : new Error(String(e))),
    );
  };
  return agent;
}
