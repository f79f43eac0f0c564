// The Stelae bundle under docs/stelae matches the broker: both instances' legacy SSE URLs, a
// start that does not abort Stelae when a broker is down, the token header, and the tools (names
// and descriptions) the broker really lists over MCP.
import { readFileSync } from "node:fs";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { describe, expect, it } from "vitest";
import type { Broker } from "../../../src/broker.js";
import { createBrokerServer } from "../../../src/mcp/server.js";

interface Catalog {
  schemaVersion: number;
  servers: { name: string; url: string; transport: string; headers: Record<string, string>; options: { panicIfInvalid: boolean }; installRef: string }[];
  toolOverrides: { servers: Record<string, { tools: Record<string, { name: string; description: string; enabled: boolean }> }> };
}
const catalog = JSON.parse(readFileSync("docs/stelae/catalog.json", "utf8")) as Catalog;
const install = JSON.parse(readFileSync("docs/stelae/install.json", "utf8")) as { installRefs: { ref: string }[] };

async function brokerTools(): Promise<{ name: string; description?: string | undefined }[]> {
  // Registering the tools needs no Docker: only calling them does.
  const server = createBrokerServer({} as unknown as Broker);
  const [a, b] = InMemoryTransport.createLinkedPair();
  await server.connect(a);
  const client = new Client({ name: "docs-test", version: "0" });
  await client.connect(b);
  const { tools } = await client.listTools();
  await client.close();
  return tools;
}

describe("the Stelae bundle", () => {
  it("has both instances on their legacy SSE URLs, panicIfInvalid false and the token header", () => {
    expect(catalog.servers.map((s) => [s.name, s.url])).toEqual([
      ["codex-wrapper-dev", "http://127.0.0.1:4105/sse"],
      ["codex-wrapper", "http://127.0.0.1:4106/sse"],
    ]);
    for (const s of catalog.servers) {
      expect(s.options.panicIfInvalid).toBe(false);
      expect(s.headers.Authorization).toBe("Bearer {{CODEX_WRAPPER_TOKEN}}");
      expect(install.installRefs.map((r) => r.ref)).toContain(s.installRef);
    }
  });

  it("lists exactly the tools the broker registers, with their descriptions", async () => {
    const tools = await brokerTools();
    for (const s of catalog.servers) {
      const listed = catalog.toolOverrides.servers[s.name]!.tools;
      expect(Object.keys(listed).sort()).toEqual(tools.map((t) => t.name).sort());
      for (const t of tools) expect(listed[t.name]!.description, `${s.name}.${t.name}`).toBe(t.description);
    }
  });
});
