#!/usr/bin/env node
// Entry point of the rehearsal model server inside the rehearsal image (and for local use):
//   node main.js [--port N] [--host H]   (env: REHEARSAL_PORT, REHEARSAL_HOST, REHEARSAL_LOG)
// It never writes to stdout: in a worker container stdout belongs to Codex's protocol.
import { appendFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { startRehearsalServer } from "./server.js";

const { values } = parseArgs({ options: { port: { type: "string" }, host: { type: "string" } } });
const port = Number(values.port ?? process.env.REHEARSAL_PORT ?? 38080);
const host = values.host ?? process.env.REHEARSAL_HOST ?? "127.0.0.1";
const logFile = process.env.REHEARSAL_LOG;
const log = (line: string): void => {
  const stamped = `${new Date().toISOString()} rehearsal ${line}\n`;
  if (logFile === "stderr") process.stderr.write(stamped);
  else if (logFile) appendFileSync(logFile, stamped);
};

const server = await startRehearsalServer({ port, host, log });
log(`listening on ${server.url}`);
for (const sig of ["SIGTERM", "SIGINT"] as const) {
  process.on(sig, () => void server.close().then(() => process.exit(0)));
}
