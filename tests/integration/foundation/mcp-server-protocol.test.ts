// Before any broker code: `codex mcp-server` (Codex ≤ 0.153.0) in the hardened rehearsal image,
// spoken to by the MCP SDK's own Client over `docker run -i` stdio: `codex`, then `codex-reply`.
import { readFileSync } from "node:fs";
import path from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { afterAll, describe, expect, it } from "vitest";
import { tokenFingerprint } from "../../../src/rehearsal/plan.js";
import { CONTAINER_USER, HARDENING, makeCodexHome, makeWorkspace, REHEARSAL_IMAGE_LEGACY, removeTestContainers, TEST_API_KEY, TEST_LABEL } from "../support/env.js";

const RUN = `mcp-${process.pid}`;
afterAll(() => removeTestContainers(RUN));

describe("codex mcp-server in the 0.153.0 rehearsal image", () => {
  it("answers codex then codex-reply on the same thread, with codex/event notifications", async () => {
    const home = makeCodexHome();
    const ws = makeWorkspace();
    const transport = new StdioClientTransport({
      command: "docker",
      args: ["run", "-i", "--rm", "--label", `${TEST_LABEL}=${RUN}`, ...HARDENING, "--user", CONTAINER_USER,
        "-v", `${home}:/codex-home`, "-v", `${ws}:/workspace`, REHEARSAL_IMAGE_LEGACY, "codex", "mcp-server"],
      stderr: "pipe",
    });
    const client = new Client({ name: "codex-mcp-wrapper-test", version: "0.0.0" });
    const events: string[] = [];
    client.fallbackNotificationHandler = async (n) => {
      if (n.method === "codex/event") events.push(String((n.params as { msg?: { type?: string } })?.msg?.type));
    };
    await client.connect(transport);
    try {
      const { tools } = await client.listTools();
      expect(tools.map((t) => t.name).sort()).toEqual(["codex", "codex-reply"]);

      const first = await client.callTool({
        name: "codex",
        arguments: { prompt: "#fake write mcp/out.txt from mcp-server\n#fake auth", cwd: "/workspace", sandbox: "danger-full-access", "approval-policy": "never" },
      });
      const sc = first.structuredContent as { threadId: string; content: string };
      expect(sc.threadId).toMatch(/^[0-9a-f-]{36}$/);
      expect(sc.content).toContain(`auth: ${tokenFingerprint(TEST_API_KEY)}`);
      expect(readFileSync(path.join(ws, "mcp/out.txt"), "utf8")).toBe("from mcp-server");
      expect(events).toContain("task_complete");

      const second = await client.callTool({ name: "codex-reply", arguments: { threadId: sc.threadId, prompt: "#fake recall" } });
      const sc2 = second.structuredContent as { threadId: string; content: string };
      expect(sc2.threadId).toBe(sc.threadId);
      expect(JSON.parse(sc2.content.replace(/^recall: /, ""))).toEqual(["#fake write mcp/out.txt from mcp-server\n#fake auth", "#fake recall"]);
    } finally {
      await client.close();
    }
  });
});
