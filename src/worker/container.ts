// A worker container: one long-lived Docker container for a profile, a workspace and a sandbox
// mode, holding one slot (a CODEX_HOME directory on the host, so a replacement container can
// resume the threads of a dead one). It owns the container's lifecycle and its attached stdio.
import { chmodSync, chownSync, existsSync, mkdirSync, statSync } from "node:fs";
import type { NetworkMode, SandboxMode, WorkerProfile } from "../config/schema.js";
import { describeError } from "../errors.js";
import type { Logger } from "../log.js";
import type { AttachedStreams, ContainerSpec, DockerRuntime } from "../runtime/docker.js";
import { withDeadline } from "../deadline.js";

export const LABELS = {
  instance: "io.codex-mcp-wrapper.instance",
  channel: "io.codex-mcp-wrapper.channel",
  profile: "io.codex-mcp-wrapper.profile",
  slot: "io.codex-mcp-wrapper.slot",
  sandbox: "io.codex-mcp-wrapper.sandbox",
  workspace: "io.codex-mcp-wrapper.workspace",
  session: "io.codex-mcp-wrapper.session",
  /** On an isolated task's workspace volume (and its helper containers): the volume's name. */
  volume: "io.codex-mcp-wrapper.volume",
} as const;

/** Where things are inside every worker container. */
export const CONTAINER_PATHS = { codexHome: "/codex-home", workspace: "/workspace" } as const;

/** The image's own non-root user, used when the broker runs as root. */
export const IMAGE_UID = 10001;

export interface ExitInfo {
  exitCode: number | null;
  oomKilled: boolean;
  stderrTail: string;
  /** Why the container ended, in words, for task errors. */
  reason: string;
}

export interface WorkerContainerOptions {
  docker: DockerRuntime;
  logger: Logger;
  instanceLabel: string;
  channel: string;
  /** Identifies the broker process that started it. */
  session: string;
  profile: WorkerProfile;
  workspace: string;
  sandbox: SandboxMode;
  slotId: string;
  /** Host directory of the slot's CODEX_HOME (created 0700). */
  codexHomeDir: string;
  /** The container's main command. */
  cmd: string[];
  /** Extra labels (tests use them to find what they started). */
  extraLabels?: Record<string, string>;
  /** uid:gid the container runs as. */
  user: { uid: number; gid: number };
  /** What its commands may reach: "none" and "allowlist" have no container network at all. */
  network: NetworkMode;
  /** The Docker network of an "open" container. */
  dockerNetwork: string;
  /** An isolated task's workspace: this named volume (its own copy) is mounted instead of the workspace. */
  volume?: string | undefined;
  /** On a remote engine: the named volume mounted as CODEX_HOME instead of `codexHomeDir`. */
  homeVolume?: string | undefined;
}

/**
 * The variables that send a task's commands through the egress proxy (network = "allowlist"):
 * every common client (curl, npm, pip, git, Node's fetch) reads them. They are set for the
 * commands only, not for Codex itself, whose own background calls would only be refused.
 */
export function egressEnv(port: number): Record<string, string> {
  const proxy = `http://127.0.0.1:${port}`;
  return { HTTP_PROXY: proxy, HTTPS_PROXY: proxy, http_proxy: proxy, https_proxy: proxy, NO_PROXY: "127.0.0.1,localhost", no_proxy: "127.0.0.1,localhost", NODE_USE_ENV_PROXY: "1" };
}

const STDERR_TAIL_BYTES = 16 * 1024;

/** Why a worker's Codex process ended, with the last lines of its stderr, for task errors. */
export function describeExit(exit: ExitInfo | undefined, container: string): string {
  if (!exit) return `the Codex process in ${container} closed its output`;
  const tail = exit.stderrTail.trim();
  return `${exit.reason}${tail ? `; last stderr lines:\n${tail}` : ""}`;
}

/**
 * The exit report, when Docker gives it within `ms` (the attached stream often closes a moment
 * before the engine reports the exit), else undefined.
 */
export function exitReport(exited: Promise<ExitInfo>, ms = 3000): Promise<ExitInfo | undefined> {
  return withDeadline(exited, ms, () => undefined);
}

/** The uid:gid a worker runs as: the broker's own user, else the workspace owner, else the image's. */
export function workerUser(workspace: string): { uid: number; gid: number } {
  const uid = process.getuid?.() ?? IMAGE_UID;
  const gid = process.getgid?.() ?? IMAGE_UID;
  if (uid !== 0) return { uid, gid };
  const st = statSync(workspace);
  return st.uid !== 0 ? { uid: st.uid, gid: st.gid } : { uid: IMAGE_UID, gid: IMAGE_UID };
}

/** Creates a directory with mode 0700, owned by the worker's user when the broker is root. */
export function privateDir(dir: string, user: { uid: number; gid: number }): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  if (process.getuid?.() === 0) chownSync(dir, user.uid, user.gid);
}

export class WorkerContainer {
  readonly name: string;
  id = "";
  streams: AttachedStreams | undefined;
  private stderrTail = "";
  private exitInfo: ExitInfo | undefined;
  readonly exited: Promise<ExitInfo>;
  private resolveExited!: (e: ExitInfo) => void;
  private stopping = false;
  readonly startedAt = Date.now();

  constructor(readonly opts: WorkerContainerOptions) {
    const rand = Math.random().toString(36).slice(2, 8);
    this.name = `${opts.instanceLabel}-${opts.profile.name}-${opts.slotId}-${rand}`.replace(/[^a-zA-Z0-9_.-]/g, "-");
    this.exited = new Promise((r) => (this.resolveExited = r));
  }

  get slotId(): string {
    return this.opts.slotId;
  }

  get isAlive(): boolean {
    return this.id !== "" && this.exitInfo === undefined;
  }

  get exit(): ExitInfo | undefined {
    return this.exitInfo;
  }

  /** Last lines of the container's stderr (bounded). */
  get stderr(): string {
    return this.stderrTail;
  }

  private spec(): ContainerSpec {
    const { profile, sandbox } = this.opts;
    const readOnlyRoot = sandbox !== "danger-full-access";
    const { uid, gid } = this.opts.user;
    return {
      name: this.name,
      image: profile.image,
      cmd: this.opts.cmd,
      // CODEX_RELAY tells the image its model is reached through the broker's relay (the
      // rehearsal image then starts no model server of its own).
      env: { ...profile.env, CODEX_RELAY: "1", CODEX_HOME: CONTAINER_PATHS.codexHome },
      labels: {
        [LABELS.instance]: this.opts.instanceLabel,
        [LABELS.channel]: this.opts.channel,
        [LABELS.profile]: profile.name,
        [LABELS.slot]: this.opts.slotId,
        [LABELS.sandbox]: sandbox,
        [LABELS.workspace]: this.opts.workspace,
        [LABELS.session]: this.opts.session,
        ...this.opts.extraLabels,
      },
      user: `${uid}:${gid}`,
      workdir: CONTAINER_PATHS.workspace,
      mounts: [
        this.opts.homeVolume
          ? { type: "volume" as const, source: this.opts.homeVolume, target: CONTAINER_PATHS.codexHome, readOnly: false }
          : { source: this.opts.codexHomeDir, target: CONTAINER_PATHS.codexHome, readOnly: false },
        this.opts.volume
          ? { type: "volume" as const, source: this.opts.volume, target: CONTAINER_PATHS.workspace, readOnly: sandbox === "read-only" }
          : { source: this.opts.workspace, target: CONTAINER_PATHS.workspace, readOnly: sandbox === "read-only" },
      ],
      tmpfs: readOnlyRoot ? { "/tmp": "rw,nosuid,nodev,mode=1777,size=512m" } : undefined,
      readOnlyRootfs: readOnlyRoot,
      network: this.opts.network === "open" ? this.opts.dockerNetwork : "none",
      memoryBytes: profile.memory,
      cpus: profile.cpus,
      pidsLimit: profile.pids_limit,
      capDrop: ["ALL"],
      securityOpt: ["no-new-privileges"],
      openStdin: true,
    };
  }

  /** Creates, attaches to and starts the container. */
  async start(): Promise<void> {
    const { docker, logger } = this.opts;
    if (!this.opts.homeVolume && !existsSync(this.opts.codexHomeDir)) throw new Error(`${this.name}: CODEX_HOME ${this.opts.codexHomeDir} does not exist`);
    this.id = await docker.createContainer(this.spec());
    try {
      this.streams = await docker.attach(this.id);
      this.streams.stderr.on("data", (d: Buffer) => {
        // eslint-disable-next-line no-control-regex -- strip ANSI colours from Codex's logs
        this.stderrTail = (this.stderrTail + d.toString("utf8").replace(/\x1b\[[0-9;]*m/g, "")).slice(-STDERR_TAIL_BYTES);
      });
      await docker.start(this.id);
    } catch (e) {
      await docker.remove(this.id).catch(() => {});
      throw e;
    }
    logger.info("worker container started", { container: this.name, image: this.opts.profile.image, slot: this.opts.slotId });
    void this.watch();
  }

  /** Waits for the container to end and records why. */
  private async watch(): Promise<void> {
    const { docker } = this.opts;
    let code: number | null = null;
    let lost: string | null = null;
    try {
      code = await docker.wait(this.id);
    } catch (e) {
      // The engine went away (the stream's close will have told the drivers): say which.
      lost = describeError(e);
    }
    const state = await docker.inspect(this.id).catch(() => null);
    const oom = state?.oomKilled ?? false;
    const reason = this.stopping
      ? "stopped by the broker"
      : lost
        ? `container ${this.name} lost its engine: ${lost}`
        : oom
        ? `container ${this.name} was killed for exceeding its memory limit (${Math.round(this.opts.profile.memory / 1024 / 1024)} MiB)`
        : `container ${this.name} exited with code ${code ?? "unknown"}`;
    this.exitInfo = { exitCode: code ?? state?.exitCode ?? null, oomKilled: oom, stderrTail: this.stderrTail.split("\n").slice(-20).join("\n"), reason };
    this.opts.logger.info("worker container ended", { container: this.name, exitCode: this.exitInfo.exitCode, oomKilled: oom, byBroker: this.stopping });
    this.resolveExited(this.exitInfo);
  }

  /**
   * How many processes the kernel has killed in this container for exceeding its memory limit
   * (the cgroup's oom_kill counter, v2 or v1), or null when it cannot be read.
   */
  async oomKills(): Promise<number | null> {
    if (!this.id) return null;
    const r = await this.opts.docker
      .execCollect(this.id, ["sh", "-c", "cat /sys/fs/cgroup/memory.events 2>/dev/null || cat /sys/fs/cgroup/memory/memory.oom_control"])
      .catch(() => null);
    const m = r ? /^oom_kill (\d+)$/m.exec(r.stdout) : null;
    return m ? Number(m[1]) : null;
  }

  /** Marks the end as the broker's own doing, then stops and removes the container. */
  async remove(): Promise<void> {
    this.stopping = true;
    if (!this.id) return;
    await this.opts.docker.remove(this.id);
  }

}
