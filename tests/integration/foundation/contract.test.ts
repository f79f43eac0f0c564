// The protocol contract, read from the real binaries inside the worker images: the broker's
// zod subset must be supported by `codex app-server generate-json-schema` (0.169.0 and 0.153.0)
// and by the 0.153.0 `codex mcp-server` tools/list. Breaking one field on purpose must fail.
import { execFileSync } from "node:child_process";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { afterAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { APP_SERVER_CONTRACT, ThreadStartParams } from "../../../src/codex/app-server-protocol.js";
import { checkContract, compareSchemas, loadGeneratedSchema } from "../../../src/codex/contract.js";
import { MCP_TOOL_CONTRACT } from "../../../src/codex/mcp-server-protocol.js";
import { CONTAINER_USER, HARDENING, LEGACY_CODEX, makeCodexHome, PREFIX, removeTestContainers, TEST_LABEL, tempDir } from "../support/env.js";

const RUN = `contract-${process.pid}`;
afterAll(() => removeTestContainers(RUN));

function generate(image: string): string {
  const out = tempDir("schema");
  execFileSync("docker", ["run", "--rm", "--label", `${TEST_LABEL}=${RUN}`, ...HARDENING, "--user", CONTAINER_USER, "-v", `${out}:/out`, image,
    "codex", "app-server", "generate-json-schema", "--out", "/out"], { stdio: "pipe" });
  return out;
}

describe.each([
  ["0.169.0", `${PREFIX}/worker:dev`],
  [LEGACY_CODEX, `${PREFIX}/worker:dev-codex-${LEGACY_CODEX}`],
])("app-server contract against the real Codex %s", (_version, image) => {
  const gen = loadGeneratedSchema(generate(image));

  it("supports every method, field and enum value the broker uses", () => {
    expect(checkContract(APP_SERVER_CONTRACT, gen)).toEqual([]);
  });

  it("fails when a field or an enum value is broken on purpose", () => {
    const broken = APP_SERVER_CONTRACT.map((e) =>
      e.method === "thread/start" ? { ...e, params: ThreadStartParams.extend({ workingDirectory: z.string(), sandbox: z.enum(["read-only", "yolo"]) }) } : e,
    );
    expect(checkContract(broken, gen)).toEqual([
      expect.stringMatching(/^request thread\/start params\.sandbox: value "yolo" is not allowed/),
      "request thread/start params.workingDirectory: field missing",
    ]);
    expect(checkContract([...APP_SERVER_CONTRACT, { direction: "request", method: "turn/teleport" }], gen)).toEqual(["request turn/teleport: method missing"]);
  });
});

describe(`mcp-server contract against the real Codex ${LEGACY_CODEX}`, () => {
  it("tools/list offers codex and codex-reply with every argument and output field the broker uses", async () => {
    const transport = new StdioClientTransport({
      command: "docker",
      args: ["run", "-i", "--rm", "--label", `${TEST_LABEL}=${RUN}`, ...HARDENING, "--user", CONTAINER_USER, "-v", `${makeCodexHome()}:/codex-home`,
        `${PREFIX}/worker:dev-codex-${LEGACY_CODEX}`, "codex", "mcp-server"],
      stderr: "pipe",
    });
    const client = new Client({ name: "contract-test", version: "0.0.0" });
    await client.connect(transport);
    try {
      const { tools } = await client.listTools();
      const noDefs = { definitions: new Map(), unions: {} as never };
      const problems: string[] = [];
      for (const [name, c] of Object.entries(MCP_TOOL_CONTRACT)) {
        const tool = tools.find((t) => t.name === name);
        if (!tool) {
          problems.push(`tool ${name}: missing`);
          continue;
        }
        problems.push(...compareSchemas(z.toJSONSchema(c.input, { io: "input" }), tool.inputSchema, noDefs, `tool ${name} input`));
        problems.push(...compareSchemas(z.toJSONSchema(c.output, { io: "input" }), tool.outputSchema, noDefs, `tool ${name} output`));
      }
      expect(problems).toEqual([]);
      // and broken on purpose:
      const codex = tools.find((t) => t.name === "codex");
      expect(compareSchemas(z.toJSONSchema(z.object({ "approval-policy": z.enum(["on-failure"]) })), codex?.inputSchema, noDefs, "tool codex input")).toEqual([
        expect.stringMatching(/^tool codex input\.approval-policy: value "on-failure" is not allowed/),
      ]);
    } finally {
      await client.close();
    }
  });
});
