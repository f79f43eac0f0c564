// The wrapper.toml contract: the broker's own settings ([broker]) and its worker profiles
// ([[workers]]). Every key has a default, so an empty file (or none) is a working dev instance.
import { z } from "zod";

export const CHANNELS = ["dev", "release"] as const;
export const PROTOCOLS = ["app-server", "exec", "mcp-server"] as const;
export const SANDBOXES = ["read-only", "workspace-write", "danger-full-access"] as const;
// As the real app-server accepts them (0.169.0: untrusted, on-request, granular, never; granular is not offered).
export const APPROVAL_POLICIES = ["never", "on-request", "untrusted"] as const;
export const TRANSPORTS = ["http", "stdio"] as const;
/** What a task's commands may reach: nothing, named hosts through the broker's proxy, or anything. */
export const NETWORKS = ["none", "allowlist", "open"] as const;
/** Where a task works: the workspace itself (a bind mount), or its own copy whose changes come back as a patch. */
export const WORKSPACE_MODES = ["shared", "isolated"] as const;

/** An allowlist entry: a host name, `*.` wildcard or IP address, with an optional `:port`. */
export const AllowEntry = z
  .string()
  .regex(/^(\*\.)?[A-Za-z0-9_.-]+(:\d{1,5})?$|^\[?[0-9A-Fa-f:.]+\]?(:\d{1,5})?$/, { error: 'expected a host name such as "registry.npmjs.org", a wildcard such as "*.pythonhosted.org" or an IP address, optionally with ":port"' });
export const AllowList = z.array(AllowEntry, { error: "expected a list of host names" });

const SIZE = /^(\d+(?:\.\d+)?)\s*(b|k|kb|kib|m|mb|mib|g|gb|gib)?$/i;
const UNIT: Record<string, number> = { b: 1, k: 1024, kb: 1024, kib: 1024, m: 1024 ** 2, mb: 1024 ** 2, mib: 1024 ** 2, g: 1024 ** 3, gb: 1024 ** 3, gib: 1024 ** 3 };
const DURATION = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)$/;
const DUR_UNIT: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Parses `512m`, `2g`, `1073741824` into bytes. */
export function parseSize(v: string | number): number | null {
  if (typeof v === "number") return Number.isInteger(v) && v > 0 ? v : null;
  const m = SIZE.exec(v.trim());
  if (!m) return null;
  return Math.round(Number(m[1]) * UNIT[(m[2] ?? "b").toLowerCase()]!);
}

/** Parses `30s`, `10m`, `500ms`, or a number of seconds, into milliseconds. */
export function parseDuration(v: string | number): number | null {
  if (typeof v === "number") return v >= 0 ? Math.round(v * 1000) : null;
  const m = DURATION.exec(v.trim());
  return m ? Math.round(Number(m[1]) * DUR_UNIT[m[2]!]!) : null;
}

const positiveInt = (what = "a positive integer") =>
  z.number({ error: `expected ${what}` }).int({ error: `expected ${what}` }).positive({ error: `expected ${what}` });

/** A whole number from 0 to `max`: `expected` for any other kind of value or one below 0, `tooMany` above `max`. */
const wholeUpTo = (max: number, expected: string, tooMany: string) =>
  z.number({ error: expected }).int({ error: expected }).min(0, { error: expected }).max(max, { error: tooMany });

/** A string-or-number field turned into a number by `parse`; `message` when it cannot be. */
export function parsedBy(parse: (v: string | number) => number | null, message: string) {
  return z.union([z.string(), z.number()], { error: message }).transform((v, ctx) => {
    const n = parse(v);
    if (n === null) {
      ctx.addIssue({ code: "custom", message });
      return z.NEVER;
    }
    return n;
  });
}

const size = parsedBy(parseSize, 'expected a size such as "2g" or "512m"');
const duration = parsedBy(parseDuration, 'expected a duration such as "30s", "10m" or a number of seconds');

const oneOf = <T extends readonly [string, ...string[]]>(values: T) =>
  z.enum(values, { error: `expected one of ${values.map((v) => `"${v}"`).join(", ")}` });

/** A label names an instance: it goes into container names and Docker labels. */
export const LABEL = /^[a-z0-9][a-z0-9_.-]{0,62}$/;
const NAME = /^[a-z0-9][a-z0-9_-]{0,31}$/;

export const WorkerProfileSchema = z
  .strictObject({
    name: z.string().regex(NAME, { error: "expected a short name: lowercase letters, digits, - and _" }),
    image: z.string().min(1, { error: "expected an image reference such as codex-mcp-wrapper/worker:dev" }).optional(),
    /** Each engine that may run the profile pulls `image` from its registry when it lacks it (docs/engines.md). */
    pull: z.boolean({ error: "expected true (pull the image from its registry) or false" }).default(false),
    /** A JSON file with the registry's credentials for `pull` (its content never appears in a log or error). */
    registry_auth: z.string().min(1, { error: "expected the path of a JSON file with the registry's credentials" }).optional(),
    protocol: oneOf(PROTOCOLS).default("app-server"),
    capacity: positiveInt().default(4),
    max_containers: positiveInt().default(4),
    warm: z.number({ error: "expected a whole number of containers, 0 or more" }).int().nonnegative().default(0),
    warm_workspaces: z.array(z.string().min(1, { error: "expected a workspace path" }), { error: "expected a list of workspace paths" }).default([]),
    // Containers per engine started ahead with an empty workspace volume, Codex up, for a task on
    // a copy of a workspace not known ahead (isolated, or placed on a remote engine). docs/warm-pool.md.
    spare: z.number({ error: "expected a whole number of spare containers per engine, 0 or more" }).int().nonnegative().default(0),
    sandbox: oneOf(SANDBOXES).default("read-only"),
    approval_policy: oneOf(APPROVAL_POLICIES).default("never"),
    /** How long an approval Codex asks for may wait for the MCP client's answer before it is declined. */
    approval_timeout: duration.default(300_000),
    // "none" | "allowlist" | "open"; any other value is a Docker network name (before 0.2:
    // network = "bridge"), read as "open" on that network, with a warning at start.
    network: z.string().min(1).default("none"),
    allow: AllowList.default([]),
    docker_network: z.string().min(1).default("bridge"),
    memory: size.default(2 * 1024 ** 3),
    cpus: z.number({ error: "expected a number of CPUs such as 1.5" }).positive({ error: "expected a number of CPUs greater than 0" }).default(2),
    pids_limit: positiveInt().default(512),
    env: z.record(z.string(), z.string({ error: "expected a string value" })).default({}),
    // app-server: threads kept started ahead for each of the two settings last used in a
    // container, so a new task's path has only turn/start (docs/performance.md). 0: none.
    threads_ahead: wholeUpTo(8, "expected a whole number of threads from 0 to 8 (0: none started ahead)", "expected at most 8 threads started ahead (each costs Codex about 1.2 MiB); 1 is the default").default(1),
    // app-server: threads with no turn running that each container keeps loaded in Codex (the
    // most recently used); Codex unloads older ones, and a reply to one resumes it first.
    threads_loaded: wholeUpTo(256, "expected a whole number of threads from 0 to 256 (0: each thread is unloaded when its turn ends)", "expected at most 256 threads kept loaded (each costs Codex about 1.2 MiB of the container's memory); 8 is the default").default(8),
    idle_timeout: duration.default(600_000), // zod 4: a default is the output (milliseconds), not parsed
    turn_timeout: duration.default(1_800_000),
    /** "shared" (the default): the workspace is bind-mounted; "isolated": each task gets its own copy (docs/workspaces.md). */
    workspace_mode: oneOf(WORKSPACE_MODES).default("shared"),
    /** The engines this profile may run on, by name or label (none: any engine). docs/engines.md. */
    engines: z.array(z.string().regex(NAME, { error: "expected an engine's name or label: lowercase letters, digits, - and _" }), { error: 'expected a list of engine names or labels such as ["big"]' }).default([]),
  })
  .superRefine((w, ctx) => {
    if (w.warm > w.max_containers) ctx.addIssue({ code: "custom", path: ["warm"], message: `expected at most max_containers (${w.max_containers})` });
    if (w.spare > w.max_containers) ctx.addIssue({ code: "custom", path: ["spare"], message: `expected at most max_containers (${w.max_containers}): spares count toward it` });
    if (w.protocol === "exec" && w.approval_policy === "untrusted")
      ctx.addIssue({ code: "custom", path: ["approval_policy"], message: 'codex exec refuses "untrusted" ("no longer supported"); use "never" or "on-request" with protocol "exec", or protocol "app-server" (which forwards approvals to the client that asked)' });
    if (w.registry_auth !== undefined && !w.pull)
      ctx.addIssue({ code: "custom", path: ["registry_auth"], message: "applies only to an image pulled from a registry; add pull = true, or remove registry_auth" });
    if (w.warm * w.warm_workspaces.length > w.max_containers)
      ctx.addIssue({ code: "custom", path: ["warm_workspaces"], message: `warm (${w.warm}) containers for each of ${w.warm_workspaces.length} workspaces exceed max_containers (${w.max_containers}); raise max_containers or list fewer workspaces` });
  });

export const BrokerSchema = z.strictObject({
  label: z.string().regex(LABEL, { error: "expected a label: lowercase letters, digits, '.', '-' and '_' (up to 63)" }).optional(),
  channel: oneOf(CHANNELS).default("dev"),
  host: z.string().min(1).default("127.0.0.1"),
  port: z
    .number({ error: "expected a port number from 0 to 65535 (0: any free port)" })
    .int({ error: "expected a port number from 0 to 65535 (0: any free port)" })
    .min(0, { error: "expected a port number from 0 to 65535 (0: any free port)" })
    .max(65535, { error: "expected a port number from 0 to 65535 (0: any free port)" })
    .optional(),
  state_dir: z.string().min(1).optional(),
  transport: z.preprocess((v) => (v === "sse" ? "http" : v), oneOf(TRANSPORTS)).default("http"),
  allowed_workspace_roots: z.array(z.string().min(1)).optional(),
  auth_file: z.string().min(1).optional(),
  auth_token_env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, { error: "expected an environment variable name" }).optional(),
  chatgpt_token_url: z.url({ error: "expected an http(s) URL" }).optional(),
  image_prefix: z.string().min(1).default("codex-mcp-wrapper"),
  max_prompt_bytes: positiveInt().default(256 * 1024),
  max_tasks_per_mission: positiveInt().default(1000),
  docker_timeout: duration.default(60_000),
  /** Where the model relay sends Codex's requests (default: the OpenAI API, or ChatGPT's Codex backend for a ChatGPT login). */
  model_upstream: z.url({ error: "expected an http(s) URL such as https://api.openai.com/v1" }).optional(),
  /** How long the model upstream may send nothing, once asked, before the relay ends the request. */
  model_timeout: duration.default(300_000),
  /** Host names the egress proxy resolves to these addresses instead of asking DNS (like /etc/hosts). */
  egress_hosts: z.record(z.string().min(1), z.union([z.ipv4(), z.ipv6()], { error: "expected an IP address" })).default({}),
});

/** An engine's client certificate for mutual TLS: PEM file paths (their content never appears in a log or error). */
export const EngineTlsSchema = z.strictObject({
  ca: z.string().min(1, { error: "expected the path of the CA certificate (ca.pem) the engine's certificate is signed by" }),
  cert: z.string().min(1, { error: "expected the path of the client certificate (cert.pem)" }),
  key: z.string().min(1, { error: "expected the path of the client key (key.pem)" }),
});

/** How the broker logs in to an ssh:// engine and knows the machine (file paths; a key's content never appears in a log or error). */
export const EngineSshSchema = z.strictObject({
  /** A private key file (unencrypted; an encrypted key goes in the agent at SSH_AUTH_SOCK). None: the agent only. */
  identity: z.string().min(1, { error: "expected the path of a private key file such as ~/.ssh/id_ed25519" }).optional(),
  /** The known_hosts file the engine's host key must be in (default ~/.ssh/known_hosts of the broker's user). */
  known_hosts: z.string().min(1, { error: "expected the path of a known_hosts file such as ~/.ssh/known_hosts" }).optional(),
});

/** A Docker engine workers may run on ([[engines]]); none configured: the local one. */
export const EngineSchema = z.strictObject({
  name: z.string().regex(NAME, { error: "expected a short name: lowercase letters, digits, - and _" }),
  /** unix:///path, tcp://host:port (with tls) or ssh://user@host; none: DOCKER_HOST or the local socket. */
  host: z
    .string()
    .regex(/^(unix:\/\/\/.+|tcp:\/\/[^\s/]+:\d{1,5}|ssh:\/\/[^\s/]+)$/, { error: 'expected "unix:///path/docker.sock", "tcp://host:2376" or "ssh://user@host"' })
    .optional(),
  tls: EngineTlsSchema.optional(),
  ssh: EngineSshSchema.optional(),
  /** Containers of this broker on the engine at once, over every profile. */
  max_containers: positiveInt().default(8),
  labels: z.array(z.string().regex(NAME, { error: "expected a label: lowercase letters, digits, - and _" }), { error: 'expected a list of labels such as ["big"]' }).default([]),
  /** Host paths this engine sees at the same place as the broker (a shared file system): shared workspaces under them may run there. */
  shared_paths: z.array(z.string().min(1), { error: "expected a list of absolute paths" }).default([]),
});

export const WrapperConfigFileSchema = z.strictObject({
  broker: BrokerSchema.default(BrokerSchema.parse({})),
  workers: z.array(WorkerProfileSchema).optional(),
  engines: z.array(EngineSchema, { error: "expected [[engines]] tables" }).optional(),
});

export type Channel = (typeof CHANNELS)[number];
export type Protocol = (typeof PROTOCOLS)[number];
export type SandboxMode = (typeof SANDBOXES)[number];
export type ApprovalPolicy = (typeof APPROVAL_POLICIES)[number];

export type NetworkMode = (typeof NETWORKS)[number];
export type WorkspaceMode = (typeof WORKSPACE_MODES)[number];

/** A worker profile with every default filled in (image resolved for the channel, network read). */
export type WorkerProfile = Omit<z.output<typeof WorkerProfileSchema>, "network"> & { image: string; network: NetworkMode };

/**
 * Rehearsal mode: every model call goes to the broker's built-in scripted model (src/rehearsal),
 * none to OpenAI, and no real credential exists. `notice` is what the banner, /healthz, the status
 * page and every result say.
 */
export interface RehearsalMode {
  /** "flag": --rehearsal; "no-login": a dev instance with no auth file. */
  reason: "flag" | "no-login";
  notice: string;
}

/** An engine with its defaults filled in: `local` when it is this machine's (a unix socket). */
export interface EngineConfig {
  name: string;
  /** unix:///…, tcp://host:port or ssh://user@host. */
  host: string;
  tls?: { ca: string; cert: string; key: string } | undefined;
  /** For an ssh:// host: the identity file (none: the agent only) and the known_hosts file its host key must be in. */
  ssh?: { identity: string | undefined; knownHosts: string } | undefined;
  maxContainers: number;
  labels: string[];
  /** Paths under which a shared workspace is seen by the engine (a local engine: every path). */
  sharedPaths: string[];
  local: boolean;
}

/** The broker's resolved configuration. */
export interface WrapperConfig {
  label: string;
  channel: Channel;
  host: string;
  port: number;
  stateDir: string;
  transport: (typeof TRANSPORTS)[number];
  allowedWorkspaceRoots: string[];
  authFile: string;
  authTokenEnv: string | undefined;
  chatgptTokenUrl: string;
  imagePrefix: string;
  maxPromptBytes: number;
  maxTasksPerMission: number;
  /** How long one Docker engine call may take before the engine counts as unreachable (ms). */
  dockerTimeoutMs: number;
  /** The model relay's upstream; null: the OpenAI API or ChatGPT's backend, by login kind. */
  modelUpstream: string | null;
  /** How long the model upstream may stay silent (ms). */
  modelTimeoutMs: number;
  egressHosts: Record<string, string>;
  workers: WorkerProfile[];
  /** The engines workers run on (at least one: with no [[engines]], DOCKER_HOST or the local socket). */
  engines: EngineConfig[];
  /** Things that work but should change (e.g. a Docker network named where a mode is expected). */
  warnings: string[];
  /** Where the config came from: a file path, or "built-in defaults". */
  source: string;
  /** Set when the broker serves the rehearsal model instead of OpenAI's (config/rehearsal.ts). */
  rehearsal?: RehearsalMode | null | undefined;
}
