// The broker killed with SIGKILL in the middle of a mission, at the moment it reports that a task
// has finished: the record on disk already says so (a task's end is written before it is
// reported); after a restart, status shows the mission interrupted, the task that had finished
// keeps its record, and no orphan remains.
import { spawn } from "node:child_process";
import { chmodSync, mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { afterAll, describe, expect, it } from "vitest";
import { Broker } from "../../../src/broker.js";
import { loadConfig } from "../../../src/config/load.js";
import { createBrokerServer } from "../../../src/mcp/server.js";
import { LABELS } from "../../../src/worker/container.js";
import { StateStore } from "../../../src/state/store.js";
import { INSTANCE_PREFIX, makeWorkspace, REHEARSAL_IMAGE, TEST_API_KEY } from "../support/env.js";
import { docker } from "../support/pool.js";
import { endChild } from "../support/wait.js";

const label = `${INSTANCE_PREFIX}-restart-${process.pid}`;
let successor: Broker | undefined;
let child: ReturnType<typeof spawn> | undefined;
afterAll(async () => {
  if (child) await endChild(child);
  await successor?.stop();
  for (const c of await docker.listByLabels({ [LABELS.instance]: label })) await docker.remove(c.id);
});

describe("a broker killed mid-mission", () => {
  it("is killed as it reports a task's end: the record on disk already has it; it comes back with the mission interrupted, nothing lost and no orphan", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "cmw-restart-"));
    const auth = path.join(dir, "auth.json");
    writeFileSync(auth, JSON.stringify({ OPENAI_API_KEY: TEST_API_KEY }));
    chmodSync(auth, 0o600);
    const cfg = path.join(dir, "wrapper.toml");
    writeFileSync(cfg, `[broker]\nlabel = "${label}"\nport = 0\nstate_dir = "${dir}/state"\nauth_file = "${auth}"\nallowed_workspace_roots = ["${os.tmpdir()}"]\n[[workers]]\nname = "default"\nimage = "${REHEARSAL_IMAGE}"\nnetwork = "none"\nsandbox = "workspace-write"\ncapacity = 2\n`);
    const bin = fileURLToPath(new URL("../../../dist/cli/bin.js", import.meta.url));
    // The preload kills the broker (SIGKILL) inside the runner's report of task "quick"'s end.
    const preload = pathToFileURL(fileURLToPath(new URL("../support/kill-on-report.mjs", import.meta.url))).href;
    const broker = spawn(process.execPath, ["--import", preload, bin, "serve", "--config", cfg], { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, CMW_KILL_ON_REPORT: "quick" } });
    child = broker;
    const exited = new Promise<NodeJS.Signals | number | null>((res) => broker.once("exit", (code, sig) => res(sig ?? code)));
    const url = await new Promise<string>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error("the broker did not start")), 60_000);
      let err = "";
      broker.stderr.on("data", (d: Buffer) => {
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
    // Both run on one container (capacity 2); quick sleeps first, so long is surely running when quick ends.
    const r = await client.callTool({ name: "batch", arguments: { workspace: ws, wait: false, mission: { name: "doomed", tasks: [{ id: "quick", prompt: "#fake sleep 1500\n#fake write quick.txt done" }, { id: "long", prompt: "#fake sleep 60000" }] } } });
    const { missionId, cursor } = r.structuredContent as { missionId: string; cursor: string };
    const how = await Promise.race([exited, new Promise<string>((res) => setTimeout(() => res("still running"), 90_000))]);
    await client.close().catch(() => {});
    expect(how, "the broker is killed when it reports that task quick has finished").toBe("SIGKILL");

    // What the killed broker left on disk: the end it reported, and the task still running.
    // (record.json and the task log a running mission appends to, as any reader replays them.)
    const onDisk = new StateStore(path.join(dir, "state")).readMission(missionId);
    expect(onDisk.tasks[0]!.status, "a task's end is written before it is reported: the record on disk says quick succeeded when the broker reports it").toBe("succeeded");
    expect(onDisk.tasks[0], "the record on disk has quick's whole result when its end is reported").toMatchObject({ id: "quick", finalMessage: "slept 1500 ms\nwrote quick.txt", finishedAt: expect.any(String) });
    expect(onDisk.tasks[1]!.status, "the long task was running when the broker was killed").toBe("running");
    expect((await docker.listByLabels({ [LABELS.instance]: label })).length).toBe(1); // the orphan

    successor = new Broker(loadConfig({ file: cfg }));
    await successor.start();
    const rec = successor.runner.status(missionId);
    expect(rec.status).toBe("interrupted");
    expect(rec.tasks[0]).toMatchObject({ id: "quick", status: "succeeded", finalMessage: "slept 1500 ms\nwrote quick.txt" });
    expect(rec.tasks[0]!.conversationId).toMatch(/^conv_/);
    expect(rec.tasks[1]).toMatchObject({ id: "long", status: "interrupted", error: "the broker stopped before this task finished" });
    expect(await docker.listByLabels({ [LABELS.instance]: label })).toEqual([]);
    // The routes survived too: the finished task's conversation can be continued.
    const again = await successor.pool.runTurn({ conversationId: rec.tasks[0]!.conversationId!, prompt: "#fake recall" });
    expect(again.outcome.status).toBe("succeeded");
    expect(again.outcome.finalMessage).toContain("#fake write quick.txt done");
    // The killed broker's cursor means nothing to its successor: status with it lists every task, saying why.
    const server = createBrokerServer(successor);
    const [a, b] = InMemoryTransport.createLinkedPair();
    await server.connect(a);
    const after = new Client({ name: "restart-after", version: "0" });
    await after.connect(b);
    const s = await after.callTool({ name: "status", arguments: { missionId, since: cursor } });
    await after.close();
    expect(s.structuredContent).toMatchObject({ status: "interrupted", counts: { succeeded: 1, interrupted: 1 }, tasks: [{ id: "quick" }, { id: "long" }] });
    expect(s.structuredContent).not.toHaveProperty("changedAfter");
    expect((s.content as { text: string }[])[0]!.text).toContain(`cursor ${cursor} is not one this broker gave (it restarted since, or the cursor is another's): every task is listed`);
  });
});
