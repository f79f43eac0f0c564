// Before any broker code: `codex app-server` (JSON-RPC over stdio) in the hardened rehearsal
// image over `docker run -i`: two concurrent threads in one process, then thread/resume from a
// new container on the same CODEX_HOME.
import { readFileSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { tokenFingerprint } from "../../../src/rehearsal/plan.js";
import { CONTAINER_USER, HARDENING, makeCodexHome, makeWorkspace, REHEARSAL_IMAGE, removeTestContainers, TEST_API_KEY, TEST_LABEL } from "../support/env.js";
import { JsonLineProcess, type Msg } from "../support/proc.js";

const RUN = `app-${process.pid}`;
afterAll(() => removeTestContainers(RUN));

class AppServer {
  private nextId = 1;
  readonly proc: JsonLineProcess;
  constructor(home: string, ws: string) {
    this.proc = new JsonLineProcess("docker", [
      "run", "-i", "--rm", "--label", `${TEST_LABEL}=${RUN}`, ...HARDENING, "--user", CONTAINER_USER,
      "-v", `${home}:/codex-home`, "-v", `${ws}:/workspace`, REHEARSAL_IMAGE, "codex", "app-server",
    ]);
  }
  async request(method: string, params: unknown): Promise<Msg> {
    const id = this.nextId++;
    this.proc.send({ id, method, params });
    const reply = await this.proc.waitFor((m) => m.id === id && !("method" in m), 60_000, `the answer to ${method}`);
    if (reply.error) throw new Error(`${method}: ${JSON.stringify(reply.error)}`);
    return reply.result as Msg;
  }
  async init(): Promise<void> {
    await this.request("initialize", { clientInfo: { name: "codex-mcp-wrapper-test", version: "0.0.0" } });
    this.proc.send({ method: "initialized" });
  }
  async startThread(): Promise<string> {
    const r = await this.request("thread/start", { cwd: "/workspace", approvalPolicy: "never", sandbox: "danger-full-access" });
    return String((r.thread as Msg).id);
  }
  async turn(threadId: string, text: string): Promise<Msg> {
    const r = await this.request("turn/start", { threadId, input: [{ type: "text", text }] });
    const turnId = (r.turn as Msg).id;
    const done = await this.proc.waitFor(
      (m) => m.method === "turn/completed" && ((m.params as Msg).turn as Msg).id === turnId,
      90_000,
      `turn/completed of ${String(turnId)}`,
    );
    return (done.params as Msg).turn as Msg;
  }
}

const agentText = (turn: Msg): string =>
  ((turn.items as Msg[]) ?? []).filter((i) => i.type === "agentMessage").map((i) => String(i.text)).join("\n");

describe("codex app-server in the rehearsal image", () => {
  it("runs two threads at once, then resumes one from a new container on the same CODEX_HOME", async () => {
    const home = makeCodexHome();
    const ws = makeWorkspace();
    const first = new AppServer(home, ws);
    try {
      await first.init();
      const [a, b] = await Promise.all([first.startThread(), first.startThread()]);
      expect(a).not.toBe(b);
      const started = Date.now();
      const [ta, tb] = await Promise.all([
        first.turn(a, "#fake sleep 1500\n#fake write thread-a.txt from a\n#fake auth"),
        first.turn(b, "#fake sleep 1500\n#fake write thread-b.txt from b"),
      ]);
      expect(ta.status).toBe("completed");
      expect(tb.status).toBe("completed");
      // Both turns were in flight together: each saw the other's turn/started before its own end.
      const order = first.proc.lines.filter((m) => m.method === "turn/started" || m.method === "turn/completed").map((m) => m.method);
      expect(order.slice(0, 2)).toEqual(["turn/started", "turn/started"]);
      expect(Date.now() - started).toBeGreaterThan(1500);
      expect(readFileSync(path.join(ws, "thread-a.txt"), "utf8")).toBe("from a");
      expect(readFileSync(path.join(ws, "thread-b.txt"), "utf8")).toBe("from b");
      expect(agentText(ta)).toContain(`auth: ${tokenFingerprint(TEST_API_KEY)}`);

      // The first container goes away; a new one on the same CODEX_HOME resumes thread a.
      first.proc.kill();
      await first.proc.exited;
      const second = new AppServer(home, ws);
      try {
        await second.init();
        const resumed = await second.request("thread/resume", { threadId: a });
        expect((resumed.thread as Msg).id).toBe(a);
        const t = await second.turn(a, "#fake recall");
        expect(t.status).toBe("completed");
        const recall = agentText(t).replace(/^recall: /, "");
        expect(JSON.parse(recall)).toEqual(["#fake sleep 1500\n#fake write thread-a.txt from a\n#fake auth", "#fake recall"]);
      } finally {
        second.proc.kill();
      }
    } finally {
      first.proc.kill();
    }
  });

  it("ends a turn as failed with the model's error on #fake fail, and the process keeps serving", async () => {
    const server = new AppServer(makeCodexHome(), makeWorkspace());
    try {
      await server.init();
      const thread = await server.startThread();
      const failed = await server.turn(thread, "#fake fail scripted refusal");
      expect(failed.status).toBe("failed");
      expect(JSON.stringify(failed.error)).toContain("scripted refusal");
      const ok = await server.turn(thread, "hello again");
      expect(ok.status).toBe("completed");
      expect(agentText(ok)).toBe("echo: hello again");
    } finally {
      server.proc.kill();
    }
  });
});
