// A broker run as its own process (`node dist/cli/bin.js serve`) with a temp config, for the
// security and load tests: its whole log is kept (the security tests scan it for secrets), and
// `stop()` ends it (SIGTERM, then SIGKILL) and removes its containers by label.
import { spawn, type ChildProcess } from "node:child_process";
import { chmodSync, mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { LABELS } from "../../../src/worker/container.js";
import { INSTANCE_PREFIX, PREFIX, REHEARSAL_IMAGE } from "./env.js";
import { docker } from "./pool.js";
import { endChild } from "./wait.js";

export const BIN = fileURLToPath(new URL("../../../dist/cli/bin.js", import.meta.url));

export interface ChildBroker {
  label: string;
  /** The temp directory holding wrapper.toml, auth.json and state/. */
  dir: string;
  child: ChildProcess;
  /** http://127.0.0.1:<port> */
  base: string;
  /** Everything the broker wrote to stdout and stderr so far. */
  log: () => string;
  client: Client;
  stop: () => Promise<void>;
}

export interface ChildBrokerOptions {
  name: string;
  /** The content of the auth file the broker seeds workers from; null: no auth file (no login). */
  auth: unknown;
  /** Arguments added after `serve --config <file>` (e.g. --rehearsal). */
  args?: string[];
  /** The default profile names no image: it runs the instance's default (`<IMAGE_PREFIX>/worker:dev`, or the rehearsal image in rehearsal mode). */
  defaultImage?: boolean;
  /** The bearer token the broker requires (none when absent). */
  token?: string;
  /** The default worker profile's capacity (default 2) and max_containers (default 1). */
  capacity?: number;
  maxContainers?: number;
  /** broker.max_tasks_per_mission (default 50). */
  maxTasksPerMission?: number;
  /** The broker's log level (default debug: everything it could write is scanned). */
  logLevel?: "debug" | "info";
}

export async function startChildBroker(o: ChildBrokerOptions): Promise<ChildBroker> {
  const label = `${INSTANCE_PREFIX}-${o.name}-${process.pid}`;
  const dir = mkdtempSync(path.join(os.tmpdir(), `cmw-${o.name}-`));
  const authFile = path.join(dir, "auth.json");
  if (o.auth !== null) {
    writeFileSync(authFile, JSON.stringify(o.auth));
    chmodSync(authFile, 0o600);
  }
  const cfg = path.join(dir, "wrapper.toml");
  writeFileSync(
    cfg,
    `[broker]\nlabel = "${label}"\nport = 0\nstate_dir = "${dir}/state"\nauth_file = "${authFile}"\n${o.token ? 'auth_token_env = "CMW_SEC_TOKEN"\n' : ""}chatgpt_token_url = "http://127.0.0.1:9/never-called"\nallowed_workspace_roots = ["${os.tmpdir()}"]\nmax_prompt_bytes = 65536\nmax_tasks_per_mission = ${o.maxTasksPerMission ?? 50}\n${o.defaultImage ? `image_prefix = "${PREFIX}"\n` : ""}[[workers]]\nname = "default"\n${o.defaultImage ? "" : `image = "${REHEARSAL_IMAGE}"\n`}network = "none"\nmemory = "1g"\nsandbox = "workspace-write"\ncapacity = ${o.capacity ?? 2}\nmax_containers = ${o.maxContainers ?? 1}\n`,
  );
  const child = spawn(process.execPath, [BIN, "serve", "--config", cfg, ...(o.args ?? [])], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...(o.token ? { CMW_SEC_TOKEN: o.token } : {}), CODEX_WRAPPER_LOG_LEVEL: o.logLevel ?? "debug" } });
  let log = "";
  child.stdout.on("data", (d: Buffer) => void (log += d.toString()));
  const stop = async (): Promise<void> => {
    await endChild(child);
    for (const c of await docker.listByLabels({ [LABELS.instance]: label })) await docker.remove(c.id);
  };
  try {
    const base = await new Promise<string>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`the broker did not start: ${log}`)), 60_000);
      child.once("exit", (code) => reject(new Error(`the broker exited (${code}): ${log}`)));
      child.stderr.on("data", (d: Buffer) => {
        log += d.toString();
        const m = /"url":"(http:\/\/[^"]+)\/mcp"/.exec(log);
        if (m) {
          clearTimeout(t);
          resolve(m[1]!);
        }
      });
    });
    const client = new Client({ name: `sec-${o.name}`, version: "0" });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${base}/mcp`), { requestInit: { headers: o.token ? { Authorization: `Bearer ${o.token}` } : {} } }));
    return { label, dir, child, base, log: () => log, client, stop: async () => (await client.close().catch(() => {}), await stop()) };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** A tool call's text, structured result and error flag. */
export async function callTool(b: ChildBroker, name: string, args: Record<string, unknown>): Promise<{ isError: boolean; text: string; structured: unknown }> {
  const r = await b.client.callTool({ name, arguments: args }, undefined, { timeout: 170_000 });
  const text = (r.content as { type: string; text?: string }[]).map((c) => c.text ?? "").join("\n");
  return { isError: !!r.isError, text, structured: r.structuredContent };
}
