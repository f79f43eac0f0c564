// `codex-mcp-wrapper serve`: runs the broker with its MCP server over HTTP (Streamable HTTP at
// /mcp) or stdio, until SIGINT/SIGTERM, then removes every container it started.
import type { AddressInfo } from "node:net";
import { parseArgs } from "node:util";
import { serve as serveHttp } from "@hono/node-server";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { Broker } from "../broker.js";
import { loadConfig } from "../config/load.js";
import { chooseRehearsal, withRehearsal } from "../config/rehearsal.js";
import { ConfigError } from "../errors.js";
import { createApp, isLoopback } from "../http/app.js";
import { createLogger, redact } from "../log.js";
import { createBrokerServer } from "../mcp/server.js";
import { rehearsalBanner } from "./example-call.js";

const KEEP_ALIVE_MS = 65_000;

export const SERVE_HELP = `Usage: codex-mcp-wrapper serve [--config wrapper.toml] [--transport http|stdio] [--host H] [--port P] [--rehearsal]

Runs the broker: an MCP server with the tools batch, reply, status and cancel.
  http (default): Streamable HTTP at http://<host>:<port>/mcp, the legacy HTTP+SSE transport
                  at /sse and /messages, health at /healthz
                  (the seed's "sse" spelling is accepted for it)
  stdio:          MCP over stdin/stdout, for clients that spawn the broker
Listens on 127.0.0.1:4105 by default (a dev instance). Binding another address needs a bearer
token: set broker.auth_token_env to the name of a variable holding it.
  --rehearsal     serve the built-in rehearsal model (scripted answers, no OpenAI call) on the
                  rehearsal image, even with a login; a dev instance with no Codex login (no
                  auth file) does so by itself`;

export async function serve(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { config: { type: "string" }, transport: { type: "string" }, host: { type: "string" }, port: { type: "string" }, rehearsal: { type: "boolean" }, help: { type: "boolean", short: "h" } },
  });
  if (values.help) {
    process.stdout.write(`${SERVE_HELP}\n`);
    return 0;
  }
  if (values.port !== undefined && !/^\d+$/.test(values.port)) throw new ConfigError("CONFIG_INVALID", `--port: expected a port number, got "${values.port}"`);
  const loaded = loadConfig({ file: values.config, overrides: { host: values.host, port: values.port ? Number(values.port) : undefined, transport: values.transport } });
  const config = withRehearsal(loaded, chooseRehearsal(loaded, values.rehearsal === true));
  const token = config.authTokenEnv ? process.env[config.authTokenEnv] : undefined;
  redact(token);
  if (config.transport === "http" && !isLoopback(config.host) && !token) {
    throw new ConfigError("CONFIG_INVALID", `broker.host: ${config.host} is not a loopback address, so a bearer token is required; set broker.auth_token_env to a variable name and export the token in it`);
  }
  const logger = createLogger();
  const broker = new Broker(config, logger);
  await broker.start();

  let close: () => Promise<void>;
  if (config.transport === "stdio") {
    const server = createBrokerServer(broker);
    const transport = new StdioServerTransport();
    await server.connect(transport);
    close = () => server.close();
    logger.info("serving MCP over stdio", { label: config.label });
    if (config.rehearsal) process.stderr.write(rehearsalBanner(config.rehearsal.notice, null));
  } else {
    const app = createApp({ broker, token });
    const http = serveHttp({ fetch: app.fetch, hostname: config.host, port: config.port });
    // An idle keep-alive connection is closed by the client, never by us: Node's 5 s default let
    // a client reuse a socket at the moment the server closed it ("other side closed").
    if ("keepAliveTimeout" in http) {
      http.keepAliveTimeout = KEEP_ALIVE_MS;
      http.headersTimeout = KEEP_ALIVE_MS + 1000;
    }
    await new Promise<void>((resolve, reject) => {
      http.once("listening", resolve);
      http.once("error", reject);
    }).catch((e: NodeJS.ErrnoException) => {
      throw new ConfigError("CONFIG_INVALID", `cannot listen on ${config.host}:${config.port} (${e.code}); is another broker running there? use --port`);
    });
    const port = (http.address() as AddressInfo).port;
    const url = `http://${config.host.includes(":") ? `[${config.host}]` : config.host}:${port}/mcp`;
    logger.info("serving MCP over HTTP", { url, label: config.label, channel: config.channel });
    if (config.rehearsal) process.stderr.write(rehearsalBanner(config.rehearsal.notice, url));
    close = () =>
      new Promise((r) => {
        http.close(() => r());
        (http as import("node:http").Server).closeAllConnections(); // SSE streams stay open otherwise
      });
  }

  await new Promise<void>((resolve) => {
    const stop = (): void => resolve();
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
    if (config.transport === "stdio") process.stdin.once("end", stop);
  });
  logger.info("shutting down: removing worker containers");
  await broker.stop();
  await close();
  return 0;
}
