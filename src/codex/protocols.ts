// What differs between the ways the broker speaks to Codex (app-server, exec, mcp-server), as one
// table: the container's main command, how CODEX_HOME is laid out, how a ChatGPT login reaches
// Codex, whether a new process can continue an old thread, and the driver itself. The pool asks
// this table instead of branching on the protocol, so a new driver is one more entry here.
import type { ChatgptTokenSource } from "../auth/token-source.js";
import type { Protocol } from "../config/schema.js";
import type { AttachedStreams, DockerRuntime } from "../runtime/docker.js";
import { CONTAINER_PATHS, type ExitInfo } from "../worker/container.js";
import { AppServerDriver, type ThreadStats } from "./app-server-driver.js";
import type { CodexDriver } from "./driver.js";
import { EXEC_LANE_HOMES, ExecDriver } from "./exec-driver.js";
import { McpServerDriver } from "./mcp-server-driver.js";

/** What a driver is made from: the started container, its attached stdio and its exit. */
export interface DriverContext {
  /** The container's name (for messages). */
  name: string;
  docker: DockerRuntime;
  containerId: () => string;
  streams: AttachedStreams;
  exited: Promise<ExitInfo>;
  /** The access token pushed to Codex, for a protocol that takes a ChatGPT login as tokens. */
  tokens?: ChatgptTokenSource | undefined;
  /** Threads to keep started ahead per settings (app-server; the profile's threads_ahead). */
  threadsAhead?: number | undefined;
  /** Idle threads each container keeps loaded (app-server; the profile's threads_loaded). */
  threadsLoaded?: number | undefined;
  threadStats?: ThreadStats | undefined;
}

export interface CodexProtocol {
  /** The container's main command. */
  cmd: readonly string[];
  /**
   * The folder of the slot that holds one CODEX_HOME per lane (each turn is its own Codex
   * process, and no two processes share a CODEX_HOME), or null for one CODEX_HOME per container.
   * A conversation of a protocol with lane homes keeps its lane: its thread lives there.
   */
  laneHomes: string | null;
  /** A ChatGPT login reaches Codex as access tokens over the protocol, not as an auth.json. */
  pushesChatgptTokens: boolean;
  /** A new Codex process can continue a thread an earlier one started (else such a reply is lost). */
  resumesThreads: boolean;
  driver(ctx: DriverContext): CodexDriver;
}

export const CODEX_PROTOCOLS: Record<Protocol, CodexProtocol> = {
  "app-server": {
    // A thread the driver unsubscribes from is unloaded at once (else 30 minutes later; 0.153.0
    // accepts the setting and keeps that delay).
    cmd: ["codex", "app-server", "-c", "thread_unload_delay_secs=0"],
    laneHomes: null,
    pushesChatgptTokens: true,
    resumesThreads: true,
    driver: (c) => new AppServerDriver({ name: c.name, streams: c.streams, exited: c.exited, cwd: CONTAINER_PATHS.workspace, tokens: c.tokens, threadsAhead: c.threadsAhead, threadsLoaded: c.threadsLoaded, threadStats: c.threadStats }),
  },
  exec: {
    // Each turn is a `docker exec` of `codex exec`: the main process only keeps the container up.
    cmd: ["sleep", "infinity"],
    laneHomes: EXEC_LANE_HOMES,
    pushesChatgptTokens: false,
    resumesThreads: true,
    driver: (c) => new ExecDriver({ name: c.name, docker: c.docker, containerId: c.containerId, exited: c.exited }),
  },
  "mcp-server": {
    cmd: ["codex", "mcp-server"],
    laneHomes: null,
    pushesChatgptTokens: false,
    // mcp-server cannot resume a thread in a new process.
    resumesThreads: false,
    driver: (c) => new McpServerDriver({ name: c.name, streams: c.streams, exited: c.exited }),
  },
};
