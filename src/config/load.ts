// Loads wrapper.toml (optional), applies environment overrides and the channel's defaults,
// and validates it: every problem becomes one line naming the key path, the value and the fix.
import { existsSync, readFileSync, realpathSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parse as parseToml } from "smol-toml";
import { ConfigError, formatZodIssues } from "../errors.js";
import { VERSION } from "../version.js";
import { NETWORKS, WrapperConfigFileSchema, type NetworkMode, type WrapperConfig } from "./schema.js";

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
  const workers = profiles.map((p, i) => {
    const image = p.image ?? envImage ?? `${b.image_prefix}/worker:${defaultImageTag}`;
    if ((NETWORKS as readonly string[]).includes(p.network)) return { ...p, image, network: p.network as NetworkMode };
    warnings.push(
      `workers[${i}].network = "${p.network}" names a Docker network: read as network = "open" with docker_network = "${p.network}", which lets a task's commands send anything anywhere; ` +
        `write network = "none" (the default), "allowlist" with allow = [hosts], or "open" with docker_network`,
    );
    return { ...p, image, network: "open" as const, docker_network: p.network };
  });

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
    warnings,
    source,
  };
}

function expandHome(p: string): string {
  return p === "~" || p.startsWith("~/") ? path.join(os.homedir(), p.slice(1)) : p;
}

/** The real path where it exists (symlinks resolved), else the absolute path. */
export function canonical(p: string): string {
  const abs = path.resolve(p);
  return existsSync(abs) ? realpathSync(abs) : abs;
}
