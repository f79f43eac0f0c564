// The broker killed with SIGKILL in the middle of a mission: after a restart, status shows the
// mission interrupted, the task that had finished keeps its record, and no orphan remains.
import { spawn } from "node:child_process";
import { chmodSync, mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { afterAll, describe, expect, it } from "vitest";
import { Broker } from "../../../src/broker.js";
import { loadConfig } from "../../../src/config/load.js";
import { LABELS } from "../../../src/worker/container.js";
import { makeWorkspace, REHEARSAL_IMAGE, TEST_API_KEY } from "../support/env.js";
import { docker } from "../support/pool.js";

const label = `cmw-restart-${process.pid}`;
let successor: Broker | undefined;
afterAll(async () => {
  await successor?.stop();
  for (const c of await docker.listByLabels({ [LABELS.instance]: label })) await docker.remove(c.id);
});

describe("a broker killed mid-mission", () => {
  it("comes back with the mission interrupted, nothing lost and no orphan", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "cmw-restart-"));
    const auth = path.join(dir, "auth.json");
    writeFileSync(auth, JSON.stringify({ OPENAI_API_KEY: TEST_API_KEY }));
    chmodSync(auth, 0o600);
    const cfg = path.join(dir, "wrapper.toml");
    writeFileSync(cfg, `[broker]\nlabel = "${label}"\nport = 0\nstate_dir = "${dir}/state"\nauth_file = "${auth}"\nallowed_workspace_roots = ["${os.tmpdir()}"]\n[[workers]]\nname = "default"\nimage = "${REHEARSAL_IMAGE}"\nnetwork = "none"\nsandbox = "workspace-write"\ncapacity = 2\n`);
    const bin = fileURLToPath(new URL("../../../dist/cli/bin.js", import.meta.url));
    const child = spawn(process.execPath, [bin, "serve", "--config", cfg], { stdio: ["ignore", "ignore", "pipe"] });
    const url = await new Promise<string>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error("the broker did not start")), 60_000);
      let err = "";
      child.stderr.on("data", (d: Buffer) => {
        err += d.toString();
        const m = /"url":"([^"]+)"/.exec(err);
        if (m) {
          clearTimeout(t);
          resolve(m[1]!);
        }
      });
    });
    const client = new Client({ name: "restart", version: "0" });
    await client.connect(new StreamableHTTPClientTransport(new URL(url)));
    const ws = makeWorkspace();
    const r = await client.callTool({ name: "batch", arguments: { workspace: ws, wait: false, mission: { name: "doomed", tasks: [{ id: "quick", prompt: "#fake write quick.txt done" }, { id: "long", prompt: "#fake sleep 60000" }] } } });
    const { missionId } = r.structuredContent as { missionId: string };
    // Wait until the quick task is recorded as succeeded and the long one runs.
    const end = Date.now() + 60_000;
    for (;;) {
      const s = (await client.callTool({ name: "status", arguments: { missionId } })).structuredContent as { tasks: { id: string; status: string }[] };
      if (s.tasks[0]!.status === "succeeded" && s.tasks[1]!.status === "running") break;
      if (Date.now() > end) throw new Error(`mission never got there: ${JSON.stringify(s)}`);
      await new Promise((res) => setTimeout(res, 300));
    }
    child.kill("SIGKILL");
    await new Promise((res) => child.on("close", res));
    await client.close().catch(() => {});
    expect((await docker.listByLabels({ [LABELS.instance]: label })).length).toBe(1); // the orphan

    successor = new Broker(loadConfig({ file: cfg }));
    await successor.start();
    const rec = successor.runner.status(missionId);
    expect(rec.status).toBe("interrupted");
    expect(rec.tasks[0]).toMatchObject({ id: "quick", status: "succeeded", finalMessage: "wrote quick.txt" });
    expect(rec.tasks[0]!.conversationId).toMatch(/^conv_/);
    expect(rec.tasks[1]).toMatchObject({ id: "long", status: "interrupted", error: "the broker stopped before this task finished" });
    expect(await docker.listByLabels({ [LABELS.instance]: label })).toEqual([]);
    // The routes survived too: the finished task's conversation can be continued.
    const again = await successor.pool.runTurn({ conversationId: rec.tasks[0]!.conversationId!, prompt: "#fake recall" });
    expect(again.outcome.status).toBe("succeeded");
    expect(again.outcome.finalMessage).toContain("#fake write quick.txt done");
  });
});
