// A broker with its HTTP app (status page, /mcp) on 127.0.0.1 behind a token, an MCP client of
// it, and a headless Chromium (Debian's, driven by playwright-core) for the status page tests.
// Started before the file's tests, and after them stopped, with the run's containers removed.
import type { AddressInfo } from "node:net";
import { serve, type ServerType } from "@hono/node-server";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { chromium, type Browser } from "playwright-core";
import { afterAll, beforeAll } from "vitest";
import { Broker } from "../../../src/broker.js";
import { createApp } from "../../../src/http/app.js";
import { LABELS } from "../../../src/worker/container.js";
import { INSTANCE_PREFIX } from "./env.js";
import { docker, testConfig } from "./pool.js";

export interface StatusFixture {
  broker: Broker;
  base: string;
  client: Client;
  browser: Browser;
}

/** Registers the file's beforeAll/afterAll; the fields are set once beforeAll has run. */
export function statusFixture(o: { run: string; token: string; capacity: number; clientName: string }): StatusFixture {
  const fx = {} as StatusFixture;
  let http: ServerType | undefined;
  beforeAll(async () => {
    fx.broker = new Broker(testConfig({ run: o.run, workers: [{ name: "default", capacity: o.capacity, max_containers: 1 }] }));
    await fx.broker.start();
    http = serve({ fetch: createApp({ broker: fx.broker, token: o.token }).fetch, hostname: "127.0.0.1", port: 0 });
    await new Promise((r) => http!.once("listening", r));
    fx.base = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
    fx.client = new Client({ name: o.clientName, version: "0" });
    await fx.client.connect(new StreamableHTTPClientTransport(new URL(`${fx.base}/mcp`), { requestInit: { headers: { Authorization: `Bearer ${o.token}` } } }));
    fx.browser = await chromium.launch({
      executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    });
  });
  afterAll(async () => {
    await fx.browser?.close();
    await fx.client?.close();
    await fx.broker?.stop();
    await new Promise((r) => (http ? http.close(r) : r(null)));
    for (const c of await docker.listByLabels({ [LABELS.instance]: `${INSTANCE_PREFIX}-test-${o.run}` })) await docker.remove(c.id);
  });
  return fx;
}
