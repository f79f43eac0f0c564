// Loads wrapper.toml (optional), applies environment overrides and the channel's defaults,
// and validates it: every problem becomes one line naming the key path, the value and the fix.
import { existsSync, readFileSync, realpathSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parse as parseToml } from "smol-toml";
import type { z } from "zod";
import { ConfigError, formatZodIssues } from "../errors.js";
import { VERSION } from "../version.js";
import { readRegistryAuth } from "./registry-auth.js";
import { NETWORKS, WrapperConfigFileSchema, type EngineConfig, type NetworkMode, type WrapperConfig } from "./schema.js";

/** Environment variables that override the file, and the key each sets. */
export const ENV_OVERRIDES = {
  CODEX_WRAPPER_LABEL: "label",
  CODEX_WRAPPER_CHANNEL: "channel",
  CODEX_WRAPPER_HOST: "host",
  CODEX_WRAPPER_PORT: "port",
  CODEX_WRAPPER_STATE_DIR: "state_dir",
  CODEX_WRAPPER_TRANSPORT: "transport",
  CODEX_WRAPPER_AUTH_FILE: "auth_file",
  CODEX_WRAPPER_AUTH_TOKEN_ENV: "auth_token_env",
} as const;
// (CODEX_WRAPPER_WORKER_IMAGE sets the image of every profile that names none; see below.)

export const DEFAULT_PORTS = { dev: 4105, release: 4106 } as const;
export const DEFAULT_LABELS = { dev: "codex-wrapper-dev", release: "codex-wrapper" } as const;
export const DEFAULT_CHATGPT_TOKEN_URL = "https://auth.openai.com/oauth/token";

export interface LoadOptions {
  /** A wrapper.toml path; none means built-in defaults (or CODEX_WRAPPER_CONFIG). */
  file?: string | undefined;
  env?: NodeJS.ProcessEnv;
  /** Command-line overrides, applied last. */
  overrides?: { host?: string | undefined; port?: number | undefined; transport?: string | undefined };
}

/** Reads and validates the configuration; throws ConfigError with one line per problem. */
export function loadConfig(opts: LoadOptions = {}): WrapperConfig {
  const env = opts.env ?? process.env;
  const file = opts.file ?? env.CODEX_WRAPPER_CONFIG;
  let raw: Record<string, unknown> = {};
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (e) {
      throw new ConfigError("CONFIG_UNREADABLE", `${file}: cannot read the config file (${(e as NodeJS.ErrnoException).code ?? String(e)}); check the path given to --config`);
    }
    try {
      raw = parseToml(text);
    } catch (e) {
      throw new ConfigError("CONFIG_INVALID", `${file}: not valid TOML: ${(e as Error).message.split("\n")[0]}`);
    }
  }
  return resolveConfig(raw, file ?? "built-in defaults", env, opts.overrides);
}

/** Validates an already parsed document (a TOML table) and resolves defaults. */
export function resolveConfig(
  raw: Record<string, unknown>,
  source: string,
  env: NodeJS.ProcessEnv = process.env,
  overrides: LoadOptions["overrides"] = {},
): WrapperConfig {
  const doc = structuredClone(raw);
  const broker = (typeof doc.broker === "object" && doc.broker !== null ? doc.broker : (doc.broker = {})) as Record<string, unknown>;
  for (const [name, key] of Object.entries(ENV_OVERRIDES)) {
    const v = env[name];
    if (v === undefined || v === "") continue;
    broker[key] = key === "port" && /^\d+$/.test(v) ? Number(v) : v;
  }
  if (overrides?.host !== undefined) broker.host = overrides.host;
  if (overrides?.port !== undefined) broker.port = overrides.port;
  if (overrides?.transport !== undefined) broker.transport = overrides.transport;

  const parsed = WrapperConfigFileSchema.safeParse(doc);
  if (!parsed.success) {
    const lines = formatZodIssues(parsed.error, doc);
    throw new ConfigError("CONFIG_INVALID", `${source}: ${lines.length} problem${lines.length > 1 ? "s" : ""}:\n  ${lines.join("\n  ")}`, { problems: lines });
  }
  const b = parsed.data.broker;
  const channel = b.channel;
  const label = b.label ?? DEFAULT_LABELS[channel];
  const home = os.homedir();
  const stateBase = env.XDG_STATE_HOME || path.join(home, ".local", "state");
  const codexHome = env.CODEX_HOME;
  const defaultImageTag = channel === "dev" ? "dev" : VERSION;
  const envImage = env.CODEX_WRAPPER_WORKER_IMAGE || undefined;
  const profiles = parsed.data.workers ?? [WrapperConfigFileSchema.shape.workers.unwrap().element.parse({ name: "default" })];

  const names = new Set<string>();
  const problems: string[] = [];
  profiles.forEach((p, i) => {
    if (names.has(p.name)) problems.push(`workers[${i}].name: "${p.name}" is used by another profile; give each profile its own name`);
    names.add(p.name);
  });
  if (problems.length) throw new ConfigError("CONFIG_INVALID", `${source}: ${problems.join("\n  ")}`, { problems });
  const warnings: string[] = [];
  const authProblems: string[] = [];
  const workers = profiles.map((q, i) => {
    const image = q.image ?? envImage ?? `${b.image_prefix}/worker:${defaultImageTag}`;
    // Read once now so that an unreadable credentials file stops the start; read again at each pull.
    const registry_auth = q.registry_auth === undefined ? undefined : path.resolve(expandHome(q.registry_auth));
    if (registry_auth) {
      try {
        readRegistryAuth(registry_auth, image, `workers[${i}].registry_auth`);
      } catch (e) {
        authProblems.push((e as Error).message);
      }
    }
    const p = { ...q, registry_auth };
    if ((NETWORKS as readonly string[]).includes(p.network)) return { ...p, image, network: p.network as NetworkMode };
    warnings.push(
      `workers[${i}].network = "${p.network}" names a Docker network: read as network = "open" with docker_network = "${p.network}", which lets a task's commands send anything anywhere; ` +
        `write network = "none" (the default), "allowlist" with allow = [hosts], or "open" with docker_network`,
    );
    return { ...p, image, network: "open" as const, docker_network: p.network };
  });

  if (authProblems.length) throw new ConfigError("CONFIG_INVALID", `${source}: ${authProblems.join("\n  ")}`, { problems: authProblems });

  const engines = resolveEngines(parsed.data.engines, env, source);
  const problemsOfEngines: string[] = [];
  workers.forEach((p, i) =>
    p.engines.forEach((want, j) => {
      if (!engines.some((e) => e.name === want || e.labels.includes(want)))
        problemsOfEngines.push(`workers[${i}].engines[${j}]: no engine is named or labelled "${want}"; known engines: ${engines.map((e) => `${e.name}${e.labels.length ? ` (labels ${e.labels.join(", ")})` : ""}`).join("; ")}. Add the label to an [[engines]] entry or remove it from the profile`);
    }),
  );
  if (problemsOfEngines.length) throw new ConfigError("CONFIG_INVALID", `${source}: ${problemsOfEngines.join("\n  ")}`, { problems: problemsOfEngines });

  return {
    label,
    channel,
    host: b.host,
    port: b.port ?? DEFAULT_PORTS[channel],
    stateDir: path.resolve(expandHome(b.state_dir ?? path.join(stateBase, "codex-mcp-wrapper", label))),
    transport: b.transport,
    allowedWorkspaceRoots: (b.allowed_workspace_roots ?? [home, os.tmpdir()]).map((r) => canonical(expandHome(r))),
    authFile: path.resolve(expandHome(b.auth_file ?? (codexHome ? path.join(codexHome, "auth.json") : path.join(home, ".codex", "auth.json")))),
    authTokenEnv: b.auth_token_env,
    chatgptTokenUrl: b.chatgpt_token_url ?? DEFAULT_CHATGPT_TOKEN_URL,
    imagePrefix: b.image_prefix,
    maxPromptBytes: b.max_prompt_bytes,
    maxTasksPerMission: b.max_tasks_per_mission,
    dockerTimeoutMs: b.docker_timeout,
    modelUpstream: b.model_upstream ?? null,
    modelTimeoutMs: b.model_timeout,
    egressHosts: b.egress_hosts,
    workers,
    engines,
    warnings,
    source,
  };
}

/** The default engine: DOCKER_HOST (with DOCKER_CERT_PATH's certificates when DOCKER_TLS_VERIFY is set) or the local socket. */
function defaultEngine(env: NodeJS.ProcessEnv): EngineConfig {
  const host = env.DOCKER_HOST || "unix:///var/run/docker.sock";
  const certs = env.DOCKER_TLS_VERIFY && env.DOCKER_CERT_PATH ? env.DOCKER_CERT_PATH : undefined;
  const tls = certs && host.startsWith("tcp://") ? { ca: path.join(certs, "ca.pem"), cert: path.join(certs, "cert.pem"), key: path.join(certs, "key.pem") } : undefined;
  const ssh = host.startsWith("ssh://") ? { identity: undefined, knownHosts: path.join(os.homedir(), ".ssh", "known_hosts") } : undefined;
  return { name: "local", host, tls, ssh, maxContainers: Number.MAX_SAFE_INTEGER, labels: [], sharedPaths: host.startsWith("unix://") ? ["/"] : [], local: host.startsWith("unix://") };
}

const LOOPBACK = /^tcp:\/\/(127\.\d+\.\d+\.\d+|localhost|\[::1\]):/;

/** [[engines]] with defaults filled in and checked: unique names, TLS for a remote tcp engine, readable key files. */
function resolveEngines(entries: z.output<typeof WrapperConfigFileSchema>["engines"], env: NodeJS.ProcessEnv, source: string): EngineConfig[] {
  if (!entries?.length) return [defaultEngine(env)];
  const problems: string[] = [];
  const names = new Set<string>();
  const engines = entries.map((e, i): EngineConfig => {
    if (names.has(e.name)) problems.push(`engines[${i}].name: "${e.name}" is used by another engine; give each engine its own name`);
    names.add(e.name);
    const host = e.host ?? defaultEngine(env).host;
    if (e.tls && !host.startsWith("tcp://")) problems.push(`engines[${i}].tls: TLS applies to a tcp:// host only (this one is ${host}); remove tls or give host = "tcp://…:2376"`);
    if (host.startsWith("tcp://") && !e.tls && !LOOPBACK.test(host))
      problems.push(`engines[${i}].tls: engine "${e.name}" at ${host} has no tls: its API would be open to anyone on the network; give tls = { ca, cert, key } (docs/engines.md shows how to make them)`);
    const tls = e.tls ? { ca: path.resolve(expandHome(e.tls.ca)), cert: path.resolve(expandHome(e.tls.cert)), key: path.resolve(expandHome(e.tls.key)) } : undefined;
    for (const k of ["ca", "cert", "key"] as const) {
      if (!tls) break;
      try {
        readFileSync(tls[k]);
      } catch (err) {
        problems.push(`engines[${i}].tls.${k}: cannot read ${tls[k]} (${(err as NodeJS.ErrnoException).code ?? String(err)}); check the path`);
      }
    }
    if (e.ssh && !host.startsWith("ssh://")) problems.push(`engines[${i}].ssh: ssh applies to an ssh:// host only (this one is ${host}); remove ssh or give host = "ssh://user@host"`);
    let ssh: EngineConfig["ssh"];
    if (host.startsWith("ssh://")) {
      ssh = { identity: e.ssh?.identity === undefined ? undefined : path.resolve(expandHome(e.ssh.identity)), knownHosts: path.resolve(expandHome(e.ssh?.known_hosts ?? "~/.ssh/known_hosts")) };
      if (ssh.identity !== undefined) {
        try {
          readFileSync(ssh.identity);
        } catch (err) {
          problems.push(`engines[${i}].ssh.identity: cannot read ${ssh.identity} (${(err as NodeJS.ErrnoException).code ?? String(err)}); check the path`);
        }
      }
    }
    const local = host.startsWith("unix://");
    return { name: e.name, host, tls, ssh, maxContainers: e.max_containers, labels: e.labels, sharedPaths: local ? ["/"] : e.shared_paths.map((p) => path.resolve(expandHome(p))), local };
  });
  if (problems.length) throw new ConfigError("CONFIG_INVALID", `${source}: ${problems.length} problem${problems.length > 1 ? "s" : ""}:\n  ${problems.join("\n  ")}`, { problems });
  return engines;
}

function expandHome(p: string): string {
  return p === "~" || p.startsWith("~/") ? path.join(os.homedir(), p.slice(1)) : p;
}

/** The real path where it exists (symlinks resolved), else the absolute path. */
export function canonical(p: string): string {
  const abs = path.resolve(p);
  return existsSync(abs) ? realpathSync(abs) : abs;
}
