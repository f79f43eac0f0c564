// Real MCP clients, as users run them, against a broker run as its own process (the rehearsal
// image, the real Codex): the MCP Inspector's CLI (`--cli`) over Streamable HTTP, the legacy SSE
// transport and stdio, and mcp-remote bridging stdio to /mcp and to /sse, each with the broker's
// bearer token. Each lists the tools, runs a `batch` whose task writes a file, and reads that
// artifact back as a resource. Both clients are pinned devDependencies (package.json). The
// Inspector needs Node ≥ 22, so it runs in a container of the rehearsal image (support/node22.ts).
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LABELS } from "../../../src/worker/container.js";
import { BIN, startChildBroker, type ChildBroker } from "../support/child-broker.js";
import { INSTANCE_PREFIX, makeWorkspace, REHEARSAL_IMAGE, removeTestContainers, TEST_API_KEY } from "../support/env.js";
import { NODE_MODULES, runNode22, SUPPORT } from "../support/node22.js";
import { docker } from "../support/pool.js";
import { listenStdioBroker, type StdioSocket } from "../support/stdio-socket.js";
import { until, within } from "../support/wait.js";

const RUN = `cmw-realclients-${process.pid}`;
const TOKEN = `rc-${process.pid}-0123456789abcdef`;
const INSPECTOR = `${NODE_MODULES}/@modelcontextprotocol/inspector/clients/launcher/build/index.js`;
const MCP_REMOTE = fileURLToPath(new URL("../../../node_modules/mcp-remote/dist/proxy.js", import.meta.url));
const TOOLS = ["batch", "cancel", "reply", "status"];

interface TaskOut { id: string; status: string; error: string | null; artifacts: { path: string; size: number }[] }
interface MissionOut { missionId: string; status: string; tasks: TaskOut[] }
interface CallResult { content: { type: string; uri?: string; text?: string; mimeType?: string }[]; structuredContent: MissionOut; isError?: boolean }
interface ReadResult { contents: { uri: string; mimeType?: string; text?: string }[] }

let broker: ChildBroker;

beforeAll(async () => {
  broker = await startChildBroker({ name: "realclients", auth: { OPENAI_API_KEY: TEST_API_KEY }, token: TOKEN, logLevel: "info" });
});

afterAll(async () => {
  await broker?.stop();
  removeTestContainers(RUN);
});

/** A batch of one task that writes `out/<name>.txt` saying `text`, and asks for it as an artifact. */
function batchArgs(name: string, text: string): { workspace: string; mission: unknown } {
  return { workspace: makeWorkspace(), mission: { name, tasks: [{ id: name, prompt: `#fake write out/${name}.txt ${text}`, sandbox: "workspace-write", artifacts: ["out/*.txt"] }] } };
}

/** Checks a batch result and returns its one artifact's resource URI. */
function artifactUri(r: CallResult, args: { workspace: string }, name: string, text: string): string {
  expect(r.isError ?? false, JSON.stringify(r).slice(0, 1000)).toBe(false);
  expect(r.structuredContent.status).toBe("succeeded");
  expect(r.structuredContent.tasks[0]!.artifacts).toEqual([expect.objectContaining({ path: `out/${name}.txt`, size: Buffer.byteLength(text) })]);
  expect(readFileSync(path.join(args.workspace, `out/${name}.txt`), "utf8"), "the task wrote the file in the workspace").toBe(text);
  const link = r.content.find((c) => c.type === "resource_link");
  expect(link?.uri, "the result links the artifact as a resource").toMatch(new RegExp(`^codex-wrapper://missions/${r.structuredContent.missionId}/artifacts/${name}/out/${name}\\.txt$`));
  return link!.uri!;
}

/** One `mcp-inspector --cli` call; its `--format json` output's `result`. */
async function inspector(target: string[], method: string[], mounts: string[] = []): Promise<unknown> {
  const r = await runNode22([INSPECTOR, "--cli", "--format", "json", "--connect-timeout", "60000", ...method, ...target], { run: RUN, mounts, timeoutMs: 150_000 });
  expect(r.code, `the Inspector failed (exit ${r.code}): ${r.stderr.slice(-3000)}${r.stdout.slice(-2000)}`).toBe(0);
  return (JSON.parse(r.stdout) as { result: unknown }).result;
}

describe("the MCP Inspector CLI (--cli)", () => {
  for (const transport of ["http", "sse"] as const) {
    it(`lists the tools, runs a batch and reads its artifact over ${transport === "http" ? "Streamable HTTP (/mcp)" : "legacy SSE (/sse)"}, with the token`, async () => {
      const target = ["--transport", transport, "--header", `Authorization: Bearer ${TOKEN}`, "--server-url", `${broker.base}/${transport === "http" ? "mcp" : "sse"}`];
      const listed = (await inspector(target, ["--method", "tools/list"])) as { tools: { name: string; inputSchema: unknown }[] };
      expect(listed.tools.map((t) => t.name).sort()).toEqual(TOOLS);
      const name = `insp-${transport}`;
      const text = `hello from the inspector over ${transport}`;
      const args = batchArgs(name, text);
      const r = (await inspector(target, ["--method", "tools/call", "--tool-name", "batch", "--tool-args-json", JSON.stringify(args)])) as CallResult;
      const uri = artifactUri(r, args, name, text);
      const read = (await inspector(target, ["--method", "resources/read", "--uri", uri])) as ReadResult;
      expect(read.contents).toEqual([{ uri, mimeType: "text/plain", text }]);
    });
  }

  describe("over stdio", () => {
    let dir: string;
    let sock: StdioSocket;
    let label: string;

    beforeAll(async () => {
      // The broker's own stdio run, as a client that spawns it would configure it.
      dir = mkdtempSync(path.join(os.tmpdir(), "cmw-rc-stdio-"));
      label = `${INSTANCE_PREFIX}-rc-stdio-${process.pid}`;
      const auth = path.join(dir, "auth.json");
      writeFileSync(auth, JSON.stringify({ OPENAI_API_KEY: TEST_API_KEY }));
      chmodSync(auth, 0o600);
      const cfg = path.join(dir, "wrapper.toml");
      writeFileSync(cfg, `[broker]\nlabel = "${label}"\nstate_dir = "${dir}/state"\nauth_file = "${auth}"\nallowed_workspace_roots = ["${os.tmpdir()}"]\n[[workers]]\nname = "default"\nimage = "${REHEARSAL_IMAGE}"\nnetwork = "none"\nsandbox = "workspace-write"\n`);
      sock = await listenStdioBroker(path.join(dir, "stdio.sock"), process.execPath, [BIN, "serve", "--transport", "stdio", "--config", cfg]);
    });

    afterAll(async () => {
      await sock?.close();
      for (const c of await docker.listByLabels({ [LABELS.instance]: label })) await docker.remove(c.id);
    });

    it("lists the tools, runs a batch and reads its artifact, spawning the broker for each call", async () => {
      // The Inspector spawns `node stdio-socket-pipe.mjs <socket>`: its stdin and stdout are the broker's.
      const target = ["--transport", "stdio", "--", "node", `${SUPPORT}/stdio-socket-pipe.mjs`, "/sock/stdio.sock"];
      const call = async (method: string[]): Promise<unknown> => {
        const result = await inspector(target, method, [`${dir}:/sock`]);
        // The Inspector's end closed the broker's stdin: that broker exits (and removes its containers).
        await within(sock.idle(), 60_000, "the stdio broker exits when the Inspector that spawned it ends");
        return result;
      };
      const listed = (await call(["--method", "tools/list"])) as { tools: { name: string }[] };
      expect(listed.tools.map((t) => t.name).sort()).toEqual(TOOLS);
      const name = "insp-stdio";
      const text = "hello from the inspector over stdio";
      const args = batchArgs(name, text);
      const uri = artifactUri((await call(["--method", "tools/call", "--tool-name", "batch", "--tool-args-json", JSON.stringify(args)])) as CallResult, args, name, text);
      // A third broker process, on the same state directory, serves the artifact the second one stored.
      const read = (await call(["--method", "resources/read", "--uri", uri])) as ReadResult;
      expect(read.contents).toEqual([{ uri, mimeType: "text/plain", text }]);
      expect(sock.runs(), "each Inspector call spawned its own broker").toBe(3);
      await until(async () => (await docker.listByLabels({ [LABELS.instance]: label })).length === 0, 20_000, "the stdio brokers, ended, removed their containers");
    });
  });
});

describe("mcp-remote (stdio to a remote server, with a bearer token header)", () => {
  for (const [transport, endpoint] of [["http-only", "mcp"], ["sse-only", "sse"]] as const) {
    it(`bridges stdio to /${endpoint} (--transport ${transport}): tools, a batch, its artifact`, async () => {
      // Its OAuth state and lock files go to a directory of this test's own, not ~/.mcp-auth.
      const configDir = mkdtempSync(path.join(os.tmpdir(), "cmw-mcp-auth-"));
      const transportToRemote = new StdioClientTransport({
        command: process.execPath,
        args: [MCP_REMOTE, `${broker.base}/${endpoint}`, "--transport", transport, "--header", "Authorization:${CMW_RC_AUTH}"],
        // As docs/clients.md configures it: mcp-remote expands ${…} in a header from its environment.
        env: { ...(process.env as Record<string, string>), CMW_RC_AUTH: `Bearer ${TOKEN}`, MCP_REMOTE_CONFIG_DIR: configDir },
        stderr: "pipe",
      });
      let stderr = "";
      transportToRemote.stderr?.on("data", (d: Buffer) => void (stderr += d.toString()));
      const client = new Client({ name: `rc-mcp-remote-${endpoint}`, version: "0" });
      try {
        await client.connect(transportToRemote);
        expect((await client.listTools()).tools.map((t) => t.name).sort()).toEqual(TOOLS);
        const name = `remote-${endpoint}`;
        const text = `hello through mcp-remote to ${endpoint}`;
        const args = batchArgs(name, text);
        const r = (await client.callTool({ name: "batch", arguments: args }, undefined, { timeout: 150_000 })) as unknown as CallResult;
        const uri = artifactUri(r, args, name, text);
        const listed = await client.listResources();
        expect(listed.resources.map((x) => x.uri)).toContain(uri);
        const read = await client.readResource({ uri });
        expect(read.contents).toEqual([{ uri, mimeType: "text/plain", text }]);
      } catch (e) {
        throw new Error(`${(e as Error).message}\nmcp-remote's stderr:\n${stderr.slice(-4000)}`, { cause: e });
      } finally {
        await client.close();
      }
      expect(stderr, "mcp-remote sent the header and needed no OAuth").toContain(`Connected to remote server using ${transport === "http-only" ? "StreamableHTTPClientTransport" : "SSEClientTransport"}`);
    });
  }
});
