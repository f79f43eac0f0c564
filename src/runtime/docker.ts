// The one place that speaks to the Docker engine (the only import of dockerode). The rest of
// the broker sees containers through the small interface below: create, attach, start, exec,
// stop, remove, inspect, list by label, image inspect, and named volumes with the archive API
// (a tar into or out of a container's path: what an engine on another machine needs).
import { readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { PassThrough, pipeline, type Readable, Transform, type Writable } from "node:stream";
import Docker from "dockerode";
import type { RegistryAuth } from "../config/registry-auth.js";
import type { EngineConfig } from "../config/schema.js";
import { DockerUnavailableError, WrapperError } from "../errors.js";
import { type EnginePlace, engineFailureMessage, engineLabel } from "./engine-errors.js";
import { sshAgent } from "./ssh-engine.js";
import { demuxStream } from "./demux.js";

export interface Mount {
  /** A host path (bind, the default) or a named volume's name (volume). */
  source: string;
  target: string;
  readOnly: boolean;
  type?: "bind" | "volume";
}

export interface VolumeSummary {
  name: string;
  labels: Record<string, string>;
}

export interface ContainerSpec {
  name: string;
  image: string;
  cmd?: string[];
  env?: Record<string, string>;
  labels: Record<string, string>;
  user?: string;
  workdir?: string;
  mounts: Mount[];
  tmpfs?: Record<string, string>;
  readOnlyRootfs?: boolean;
  network: string;
  memoryBytes?: number;
  cpus?: number;
  pidsLimit?: number;
  capDrop?: string[];
  capAdd?: string[];
  securityOpt?: string[];
  /** Keep stdin open for an attached protocol stream. */
  openStdin?: boolean;
}

export interface AttachedStreams {
  stdin: Writable;
  stdout: Readable;
  stderr: Readable;
}

export interface ExecOptions {
  env?: Record<string, string>;
  user?: string;
  workdir?: string;
  stdin?: boolean;
}

export interface ExecHandle extends AttachedStreams {
  /** Resolves with the exit code once the process ends (or the stream closes). */
  exited: Promise<number | null>;
}

export interface ContainerSummary {
  id: string;
  name: string;
  image: string;
  state: string;
  labels: Record<string, string>;
}

export interface ContainerState {
  id: string;
  name: string;
  /** Its main process on the engine's host (0 when it does not run). */
  pid: number;
  running: boolean;
  paused: boolean;
  status: string;
  exitCode: number | null;
  oomKilled: boolean;
  startedAt: string;
  finishedAt: string;
  labels: Record<string, string>;
  mounts: { source: string; destination: string; readOnly: boolean }[];
  user: string;
  capDrop: string[];
  securityOpt: string[];
  readOnlyRootfs: boolean;
  networkMode: string;
}

export interface ImageInfo {
  id: string;
  tags: string[];
  labels: Record<string, string>;
  size: number;
}

export interface EngineInfo {
  version: string;
  apiVersion: string;
}

function statusOf(e: unknown): number | undefined {
  const s = (e as { statusCode?: unknown } | undefined)?.statusCode;
  return typeof s === "number" ? s : undefined;
}

/**
 * The dockerode options for an engine's host: a unix socket, tcp (mutual TLS with `tls`), or ssh
 * (an agent whose connections are SSH sessions running `docker system dial-stdio`, the host key
 * checked against known_hosts; `connectTimeoutMs` bounds each connect).
 */
export function clientOptions(engine: Pick<EngineConfig, "host" | "tls" | "ssh">, connectTimeoutMs = 60_000): Docker.DockerOptions {
  const u = new URL(engine.host);
  if (u.protocol === "unix:") return { socketPath: u.pathname };
  if (u.protocol === "ssh:") {
    const host = u.hostname.replace(/^\[|\]$/g, "");
    const port = u.port ? Number(u.port) : 22;
    const agent = sshAgent({
      host,
      port,
      username: decodeURIComponent(u.username) || undefined,
      identity: engine.ssh?.identity,
      knownHosts: engine.ssh?.knownHosts ?? path.join(os.homedir(), ".ssh", "known_hosts"),
      connectTimeoutMs,
    });
    // Plain HTTP over the agent's SSH sessions; the host and port only fill the Host header.
    // docker-modem takes `agent` (its types leave it out).
    return { protocol: "http", host, port, agent } as Docker.DockerOptions;
  }
  const base = { host: u.hostname.replace(/^\[|\]$/g, ""), port: Number(u.port) };
  if (!engine.tls) return { ...base, protocol: "http" };
  return { ...base, protocol: "https", ca: readFileSync(engine.tls.ca), cert: readFileSync(engine.tls.cert), key: readFileSync(engine.tls.key) };
}

/** A Docker engine, reached through its socket (DOCKER_HOST or /var/run/docker.sock) or, given an engine, its host. */
export class DockerRuntime {
  private readonly docker: Docker;
  private readonly place: EnginePlace;
  /** The engine runs on this machine (a unix socket): a bind mount's source is a path here. */
  readonly local: boolean;
  /** The engine's name in the config ("local" for the default one). */
  readonly name: string;

  /** How long one call may take (ms); a hung engine must fail a call, not hang it. */
  private readonly callTimeoutMs: number;

  constructor(opts: { socketPath?: string; callTimeoutMs?: number; engine?: EngineConfig } = {}) {
    this.callTimeoutMs = opts.callTimeoutMs ?? 60_000;
    if (opts.engine) {
      this.docker = new Docker(clientOptions(opts.engine, this.callTimeoutMs));
      this.name = opts.engine.name;
      this.place = { name: opts.engine.name, host: opts.engine.host };
      this.local = opts.engine.local;
      return;
    }
    const socketPath = opts.socketPath ?? (process.env.DOCKER_HOST?.startsWith("unix://") ? process.env.DOCKER_HOST.slice(7) : undefined);
    // DOCKER_HOST=ssh://…: through the same verified SSH sessions as an [[engines]] entry, not the library's own (which checks no host key).
    const viaSsh = !socketPath && process.env.DOCKER_HOST?.startsWith("ssh://");
    this.docker = socketPath ? new Docker({ socketPath }) : viaSsh ? new Docker(clientOptions({ host: process.env.DOCKER_HOST! }, this.callTimeoutMs)) : new Docker();
    this.name = "local";
    this.place = { name: undefined, host: socketPath ?? process.env.DOCKER_HOST ?? "/var/run/docker.sock" };
    this.local = socketPath !== undefined || !process.env.DOCKER_HOST;
  }

  /** How messages name this engine: `Docker engine "eng-1" (tcp://…)`, or `Docker engine at /var/run/docker.sock`. */
  get label(): string {
    return engineLabel(this.place);
  }

  /** The engine's failure as a DockerUnavailableError naming the engine and the fix, or `e` itself when it is no transport failure. */
  engineError(e: unknown, what: string): Error {
    if (e instanceof DockerUnavailableError) return e;
    const message = engineFailureMessage(e, this.place, what);
    if (message !== null) return new DockerUnavailableError(message, { cause: e });
    return e instanceof Error ? e : new Error(String(e));
  }

  /** IMAGE_MISSING for a pull the engine refused, naming the engine, the image, what it said and the fix. */
  private pullError(ref: string, engineSays: string): WrapperError {
    return new WrapperError("IMAGE_MISSING", `${this.label} could not pull ${ref}: ${engineSays}; ${pullFix(engineSays)}`, { image: ref, engine: this.name });
  }

  private lateError(what: string, ms: number): DockerUnavailableError {
    const s = ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
    return new DockerUnavailableError(`${this.label} did not answer within ${s} while trying to ${what}; it may be hung or overloaded: check \`docker info\`, restart the engine if it does not answer (broker.docker_timeout sets this limit)`);
  }

  /**
   * Runs an engine call, turning "no daemon", a TLS or name failure, and "no answer within
   * `deadlineMs`" into DockerUnavailableError naming the engine. The deadline covers the connect
   * and the TLS handshake too. At the deadline the call's signal aborts (calls that take one drop
   * their connection); a call without one is abandoned, not cancelled: the engine may still carry
   * it out once it answers again, as with any client that gave up.
   */
  private async call<T>(what: string, fn: (signal: AbortSignal) => Promise<T>, deadlineMs: number | null = this.callTimeoutMs): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const abort = new AbortController();
    try {
      if (deadlineMs === null) return await fn(abort.signal);
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          reject(this.lateError(what, deadlineMs));
          abort.abort();
        }, deadlineMs);
      });
      const call = fn(abort.signal);
      call.catch(() => {}); // abandoned after the deadline: its own failure is of no interest then
      return await Promise.race([call, late]);
    } catch (e) {
      throw this.engineError(e, what);
    } finally {
      clearTimeout(timer);
    }
  }

  async ping(): Promise<EngineInfo> {
    const v = await this.call("reach the engine", () => this.docker.version(), Math.min(5_000, this.callTimeoutMs));
    return { version: v.Version, apiVersion: v.ApiVersion };
  }

  async imageInspect(ref: string): Promise<ImageInfo | null> {
    try {
      const i = await this.call(`inspect image ${ref}`, () => this.docker.getImage(ref).inspect());
      return { id: i.Id, tags: i.RepoTags ?? [], labels: i.Config?.Labels ?? {}, size: i.Size };
    } catch (e) {
      if (statusOf(e) === 404) return null;
      throw e;
    }
  }

  async createContainer(spec: ContainerSpec): Promise<string> {
    const c = await this.call(`create container ${spec.name}`, () =>
      this.docker.createContainer({
        name: spec.name,
        Image: spec.image,
        Cmd: spec.cmd,
        Env: Object.entries(spec.env ?? {}).map(([k, v]) => `${k}=${v}`),
        Labels: spec.labels,
        User: spec.user,
        WorkingDir: spec.workdir,
        OpenStdin: spec.openStdin ?? false,
        StdinOnce: false,
        AttachStdin: spec.openStdin ?? false,
        AttachStdout: true,
        AttachStderr: true,
        Tty: false,
        HostConfig: {
          Mounts: spec.mounts.map((m) => ({ Type: m.type ?? ("bind" as const), Source: m.source, Target: m.target, ReadOnly: m.readOnly })),
          Tmpfs: spec.tmpfs,
          ReadonlyRootfs: spec.readOnlyRootfs ?? false,
          NetworkMode: spec.network,
          Memory: spec.memoryBytes,
          MemorySwap: spec.memoryBytes, // no swap beyond the limit: an OOM is an OOM
          NanoCpus: spec.cpus ? Math.round(spec.cpus * 1e9) : undefined,
          PidsLimit: spec.pidsLimit,
          CapDrop: spec.capDrop,
          CapAdd: spec.capAdd,
          SecurityOpt: spec.securityOpt,
          Init: false, // the image's own init (tini) is PID 1
        },
      }),
    );
    return c.id;
  }

  /** Attaches to a created container's stdio (no TTY: the stream is demultiplexed). */
  async attach(id: string): Promise<AttachedStreams> {
    const container = this.docker.getContainer(id);
    const stream = await this.call<NodeJS.ReadWriteStream>(`attach to ${id}`, (signal) =>
      container.attach({ stream: true, stdin: true, stdout: true, stderr: true, hijack: true, abortSignal: signal }),
    );
    const { stdout, stderr } = demuxStream(stream);
    return { stdin: stream as unknown as Writable, stdout, stderr };
  }

  async start(id: string): Promise<void> {
    await this.call(`start ${id}`, () => this.docker.getContainer(id).start());
  }

  /** Runs a process in a running container with its stdio attached. */
  async exec(id: string, cmd: string[], opts: ExecOptions = {}): Promise<ExecHandle> {
    const container = this.docker.getContainer(id);
    const exec = await this.call(`exec in ${id}`, () =>
      container.exec({
        Cmd: cmd,
        Env: Object.entries(opts.env ?? {}).map(([k, v]) => `${k}=${v}`),
        User: opts.user,
        WorkingDir: opts.workdir,
        AttachStdin: opts.stdin ?? false,
        AttachStdout: true,
        AttachStderr: true,
        Tty: false,
      }),
    );
    const stream = (await this.call(`start exec in ${id}`, (signal) =>
      exec.start({ hijack: true, stdin: opts.stdin ?? false, Tty: false, abortSignal: signal }),
    )) as NodeJS.ReadWriteStream;
    const { stdout, stderr } = demuxStream(stream);
    const exited = new Promise<number | null>((resolve) => {
      let done = false;
      const finish = (): void => {
        if (done) return;
        done = true;
        this.call(`inspect exec in ${id}`, () => exec.inspect()).then(
          (info) => resolve(info.ExitCode ?? null),
          () => resolve(null),
        );
      };
      stream.on("end", finish);
      stream.on("close", finish);
      stream.on("error", finish);
    });
    return { stdin: stream as unknown as Writable, stdout, stderr, exited };
  }

  /** Runs a short command to completion and returns its output. */
  async execCollect(id: string, cmd: string[], opts: ExecOptions = {}): Promise<{ exitCode: number | null; stdout: string; stderr: string }> {
    const h = await this.exec(id, cmd, opts);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    h.stdout.on("data", (d: Buffer) => out.push(d));
    h.stderr.on("data", (d: Buffer) => err.push(d));
    const exitCode = await h.exited;
    return { exitCode, stdout: Buffer.concat(out).toString("utf8"), stderr: Buffer.concat(err).toString("utf8") };
  }

  async stop(id: string, timeoutSeconds = 5): Promise<void> {
    try {
      await this.call(`stop ${id}`, () => this.docker.getContainer(id).stop({ t: timeoutSeconds }), this.callTimeoutMs + timeoutSeconds * 1000);
    } catch (e) {
      const s = statusOf(e);
      if (s !== 304 && s !== 404) throw e; // already stopped or gone
    }
  }

  async remove(id: string): Promise<void> {
    try {
      await this.call(`remove ${id}`, () => this.docker.getContainer(id).remove({ force: true, v: true }));
    } catch (e) {
      const s = statusOf(e);
      if (s !== 404 && s !== 409) throw e; // gone, or removal already under way
    }
  }

  async inspect(id: string): Promise<ContainerState | null> {
    try {
      const i = await this.call(`inspect ${id}`, () => this.docker.getContainer(id).inspect());
      return {
        id: i.Id,
        name: i.Name.replace(/^\//, ""),
        pid: i.State.Pid ?? 0,
        running: i.State.Running,
        paused: i.State.Paused,
        status: i.State.Status,
        exitCode: i.State.Running ? null : i.State.ExitCode,
        oomKilled: i.State.OOMKilled,
        startedAt: i.State.StartedAt,
        finishedAt: i.State.FinishedAt,
        labels: i.Config.Labels ?? {},
        mounts: (i.Mounts ?? []).map((m) => ({ source: m.Source, destination: m.Destination, readOnly: !m.RW })),
        user: i.Config.User ?? "",
        // @types/dockerode types these two as any
        capDrop: (i.HostConfig.CapDrop as string[] | undefined) ?? [],
        securityOpt: (i.HostConfig.SecurityOpt as string[] | undefined) ?? [],
        readOnlyRootfs: i.HostConfig.ReadonlyRootfs ?? false,
        networkMode: i.HostConfig.NetworkMode ?? "",
      };
    } catch (e) {
      if (statusOf(e) === 404) return null;
      throw e;
    }
  }

  /** Waits for a container to stop; resolves with its exit code. */
  async wait(id: string): Promise<number | null> {
    try {
      const r = (await this.call(`wait for ${id}`, () => this.docker.getContainer(id).wait(), null)) as { StatusCode?: number };
      return r.StatusCode ?? null;
    } catch (e) {
      if (statusOf(e) === 404) return null;
      throw e;
    }
  }

  async pause(id: string): Promise<void> {
    await this.call(`pause ${id}`, () => this.docker.getContainer(id).pause());
  }

  /** Containers (running or not) carrying every given label (value "" matches any value). */
  async listByLabels(labels: Record<string, string>): Promise<ContainerSummary[]> {
    const filters = { label: Object.entries(labels).map(([k, v]) => (v === "" ? k : `${k}=${v}`)) };
    const list = await this.call("list containers", () => this.docker.listContainers({ all: true, filters }));
    return list.map((c) => ({
      id: c.Id,
      name: (c.Names[0] ?? "").replace(/^\//, ""),
      image: c.Image,
      state: c.State,
      labels: c.Labels ?? {},
    }));
  }

  /** Creates a named volume with these labels (the instance's, so reaping finds it). */
  async createVolume(name: string, labels: Record<string, string>): Promise<void> {
    await this.call(`create volume ${name}`, () => this.docker.createVolume({ Name: name, Labels: labels }));
  }

  /** Removes a named volume; one already gone is not an error. */
  async removeVolume(name: string): Promise<void> {
    try {
      await this.call(`remove volume ${name}`, () => this.docker.getVolume(name).remove({ force: true }));
    } catch (e) {
      if (statusOf(e) !== 404) throw e;
    }
  }

  /** Named volumes carrying every given label (value "" matches any value). */
  async listVolumesByLabels(labels: Record<string, string>): Promise<VolumeSummary[]> {
    const filters = { label: Object.entries(labels).map(([k, v]) => (v === "" ? k : `${k}=${v}`)) };
    const r = await this.call("list volumes", () => this.docker.listVolumes({ filters }));
    return (r.Volumes ?? []).map((v) => ({ name: v.Name, labels: v.Labels ?? {} }));
  }

  /**
   * Extracts a tar stream into a path of a container (created or running; a path on a writable
   * volume works even under a read-only root filesystem). Entries keep the owners their headers name.
   */
  async putArchive(id: string, target: string, tar: Readable): Promise<void> {
    await this.call(`copy files into ${id}:${target}`, () => this.docker.getContainer(id).putArchive(tar, { path: target }));
  }

  /** A tar stream of a container's path (`<dir>/.` gives the directory's entries as `./…`). */
  async getArchive(id: string, source: string): Promise<Readable> {
    return (await this.call(`copy files out of ${id}:${source}`, () => this.docker.getContainer(id).getArchive({ path: source }))) as Readable;
  }

  /**
   * Streams image `ref` out of this engine as a `docker save` tar. The call's deadline covers the
   * answer; then the stream lasts as long as bytes keep coming: `callTimeoutMs` without one (while
   * its reader keeps up) ends it with an error naming this engine, so a long transfer is never cut
   * and a dead or hung engine still fails it.
   */
  async saveImage(ref: string): Promise<Readable> {
    const what = `save image ${ref}`;
    const body = (await this.call(what, () => this.docker.getImage(ref).get())) as Readable;
    const out = new PassThrough();
    let timer: NodeJS.Timeout | undefined;
    const kick = (): void => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        // Its reader is behind (the target engine is slow): no fault of this engine's.
        if (out.writableNeedDrain || out.readableLength > 0) return kick();
        body.destroy(this.lateError(what, this.callTimeoutMs));
      }, this.callTimeoutMs);
    };
    kick();
    const counter = new Transform({
      transform: (chunk: Buffer, _enc, done) => {
        kick();
        done(null, chunk);
      },
    });
    pipeline(body, counter, out, (e) => {
      clearTimeout(timer);
      if (e) out.destroy(this.engineError(e, what));
    });
    return out;
  }

  /**
   * Loads a `docker save` tar into this engine and resolves once the engine has taken it. No call
   * deadline (the engine answers only after reading the whole tar): instead, `callTimeoutMs`
   * without the engine reading a byte or reporting progress fails it, naming this engine. An
   * error of `tar` itself (its source engine failed) is what this rejects with.
   */
  async loadImage(tar: Readable): Promise<void> {
    const what = "load an image";
    const abort = new AbortController();
    let sourceError: Error | undefined;
    let fail: (e: unknown) => void = () => {};
    const failed = new Promise<never>((_, reject) => (fail = reject));
    failed.catch(() => {});
    let timer: NodeJS.Timeout | undefined;
    let tarEnded = false;
    const counter = new Transform({
      transform: (chunk: Buffer, _enc, done) => {
        kick();
        done(null, chunk);
      },
    });
    const kick = (): void => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        // The source is slow and this engine has read all it was given: not this engine's fault.
        if (!tarEnded && counter.readableLength === 0 && !counter.writableNeedDrain) return kick();
        fail(this.lateError(what, this.callTimeoutMs));
        abort.abort();
      }, this.callTimeoutMs);
    };
    tar.on("end", () => (tarEnded = true));
    pipeline(tar, counter, (e) => {
      if (e && sourceError === undefined && e.name !== "AbortError") {
        sourceError = e;
        fail(e);
      }
    });
    kick();
    try {
      const res = (await Promise.race([this.docker.loadImage(counter, { abortSignal: abort.signal, quiet: false }), failed])) as Readable;
      await Promise.race([
        failed,
        new Promise<void>((resolve, reject) => {
          readProgress(res, kick, () => {}, (engineSays) => (engineSays === null ? resolve() : reject(new WrapperError("IMAGE_MISSING", `${this.label} could not load the image: ${engineSays}`))), reject);
        }),
      ]);
    } catch (e) {
      abort.abort();
      tar.destroy();
      if (sourceError !== undefined) throw sourceError;
      throw this.engineError(e, what);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Pulls `ref` from its registry into this engine, reporting bytes downloaded over every layer.
   * Deadline discipline as for loadImage: the answer within `callTimeoutMs`, then a failure after
   * `callTimeoutMs` with no progress. Registry credentials: `auth` (a profile's registry_auth), else the engine's own.
   */
  async pullImage(ref: string, opts: { onProgress?: (bytes: number, total: number | null) => void; auth?: RegistryAuth } = {}): Promise<void> {
    const what = `pull image ${ref}`;
    const abort = new AbortController();
    let res: Readable;
    try {
      res = (await this.call(what, (signal) => {
        signal.addEventListener("abort", () => abort.abort());
        return this.docker.pull(ref, { abortSignal: abort.signal, ...(opts.auth ? { authconfig: opts.auth } : {}) });
      })) as Readable;
    } catch (e) {
      // The engine answered, and refused the pull (an unknown tag, a registry it cannot reach): its words, and the fix.
      const said = engineSaid(e);
      if (said !== null) throw this.pullError(ref, said);
      throw e;
    }
    const progress = new PullProgress();
    let timer: NodeJS.Timeout | undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        const kick = (): void => {
          clearTimeout(timer);
          timer = setTimeout(() => {
            reject(this.lateError(what, this.callTimeoutMs));
            abort.abort();
          }, this.callTimeoutMs);
        };
        kick();
        readProgress(
          res,
          kick,
          (m) => progress.add(m) && opts.onProgress?.(progress.bytes, progress.total),
          (engineSays) =>
            engineSays === null ? resolve() : reject(this.pullError(ref, engineSays)),
          (e) => reject(this.engineError(e, what)),
        );
      });
    } finally {
      clearTimeout(timer);
    }
  }
}

/**
 * What an engine said when it answered a call with an HTTP error, else null. dockerode gives its
 * statusCode, and the engine's words in `json.message`, or (for a streamed answer such as a pull,
 * where json is null) only in its own message: "(HTTP code 404) unexpected - <words> ".
 */
function engineSaid(e: unknown): string | null {
  const { statusCode: status, json } = (e ?? {}) as { statusCode?: unknown; json?: unknown };
  if (!(e instanceof Error) || typeof status !== "number") return null;
  const message = typeof json === "object" && json !== null ? (json as { message?: unknown }).message : undefined;
  if (typeof message === "string") return message;
  const words = /^\(HTTP code \d+\) [^-]*- (.*)$/s.exec(e.message)?.[1]?.trim();
  return words || `HTTP ${status}`;
}

/** The fix for a failed pull, from what the engine said. */
export function pullFix(engineSays: string): string {
  if (/manifest unknown|not found|does not exist|name unknown/i.test(engineSays)) return "the registry has no such image or tag: push it there, or fix the tag in the profile's image";
  if (/unauthorized|authentication required|denied|no basic auth credentials/i.test(engineSays)) return "the registry refused the credentials: give the profile registry_auth (a JSON file with username and password) or fix it";
  if (/connection refused|no such host|i\/o timeout|dial tcp|server gave HTTP response to HTTPS client|network is unreachable|no route to host|TLS handshake/i.test(engineSays))
    return "this engine cannot reach the registry: check that it runs and that the engine reaches its host (a plain-HTTP registry must be in the engine's insecure-registries)";
  return "check the image name, and that the engine can reach and log in to its registry (docker pull on that engine shows why)";
}

/**
 * Reads an engine's JSON-lines progress answer (load, pull): `data` on every chunk (the caller's
 * no-progress timer), `line` for each progress line without an error, then `end` with the last
 * error line the engine sent (null: none), or `error` if the stream fails.
 */
function readProgress(res: Readable, data: () => void, line: (m: PullEvent) => void, end: (engineSays: string | null) => void, error: (e: Error) => void): void {
  let buf = "";
  let engineSays: string | null = null;
  res.on("data", (d: Buffer) => {
    data();
    buf += d.toString("utf8");
    let nl: number;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const text = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (!text) continue;
      try {
        const m = JSON.parse(text) as PullEvent;
        if (m.error) engineSays = m.error;
        else line(m);
      } catch {
        // not a progress line: ignored
      }
    }
  });
  res.on("error", error);
  res.on("end", () => end(engineSays));
}

/** One line of the engine's pull progress. */
export interface PullEvent {
  id?: string;
  status?: string;
  error?: string;
  progressDetail?: { current?: number; total?: number };
}

/** Bytes downloaded over every layer of a pull, from the engine's progress lines. */
export class PullProgress {
  private readonly layers = new Map<string, { current: number; total: number | null }>();

  /** Takes one progress line; true when the byte count changed. */
  add(e: PullEvent): boolean {
    if (!e.id) return false;
    const d = e.progressDetail;
    if (e.status === "Downloading" && d && typeof d.current === "number") {
      this.layers.set(e.id, { current: d.current, total: typeof d.total === "number" && d.total > 0 ? d.total : null });
      return true;
    }
    if (e.status === "Download complete") {
      const l = this.layers.get(e.id);
      if (l && l.total !== null && l.current !== l.total) {
        l.current = l.total;
        return true;
      }
    }
    return false;
  }

  get bytes(): number {
    let n = 0;
    for (const l of this.layers.values()) n += l.current;
    return n;
  }

  /** Known only once every layer seen so far has said its size. */
  get total(): number | null {
    let n = 0;
    for (const l of this.layers.values()) {
      if (l.total === null) return null;
      n += l.total;
    }
    return this.layers.size === 0 ? null : n;
  }
}
