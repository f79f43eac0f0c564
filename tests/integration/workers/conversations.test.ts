// A conversation's reply reaches the same thread in the container that holds it, and, after
// that container is removed, a replacement on the same CODEX_HOME (app-server, exec). With
// mcp-server, a conversation whose process ended is `lost`.
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { makeWorkspace, REHEARSAL_IMAGE_LEGACY } from "../support/env.js";
import { docker, poolFixture, recalled } from "../support/pool.js";

const RUN = `conv-${process.pid}`;
const pools = poolFixture(RUN);

describe.each(["app-server", "exec"] as const)("conversations with the %s driver", (protocol) => {
  it("replies on the same thread, on the holding container and then on a replacement", async () => {
    const pool = await pools.start({ workers: [{ name: "w", protocol, capacity: 1, max_containers: 2 }] });
    const ws = makeWorkspace();
    // Two conversations at once: with capacity 1 they land on two containers.
    const [a, b] = await Promise.all([
      pool.runTurn({ workspace: ws, prompt: "#fake write a.txt first of a\n#fake sleep 300" }),
      pool.runTurn({ workspace: ws, prompt: "#fake write b.txt first of b\n#fake sleep 300" }),
    ]);
    expect(a.outcome.status).toBe("succeeded");
    expect(b.outcome.status).toBe("succeeded");
    expect(a.container).not.toBe(b.container);
    expect(readFileSync(path.join(ws, "a.txt"), "utf8")).toBe("first of a");

    const reply = await pool.runTurn({ conversationId: a.conversationId!, prompt: "#fake recall" });
    expect(reply.outcome.status, reply.outcome.error ?? "").toBe("succeeded");
    expect(reply.container).toBe(a.container);
    expect(reply.outcome.threadId).toBe(a.outcome.threadId);
    expect(recalled(reply.outcome.finalMessage)).toEqual(["#fake write a.txt first of a\n#fake sleep 300", "#fake recall"]);

    // The holding container disappears; the reply goes to a replacement on the same CODEX_HOME.
    const holder = (await docker.listByLabels({ "io.codex-mcp-wrapper.instance": pool.config.label })).find((c) => c.name === a.container);
    await docker.remove(holder!.id);
    const again = await pool.runTurn({ conversationId: a.conversationId!, prompt: "#fake recall" });
    expect(again.outcome.status, again.outcome.error ?? "").toBe("succeeded");
    expect(again.container).not.toBe(a.container);
    expect(recalled(again.outcome.finalMessage)).toEqual(["#fake write a.txt first of a\n#fake sleep 300", "#fake recall", "#fake recall"]);
  });
});

describe("conversations with the mcp-server driver (Codex 0.153.0)", () => {
  it("replies on the same thread, and says `lost` once its process has ended", async () => {
    const pool = await pools.start({ workers: [{ name: "m", protocol: "mcp-server", image: REHEARSAL_IMAGE_LEGACY, capacity: 2, max_containers: 1 }] });
    const ws = makeWorkspace();
    const first = await pool.runTurn({ workspace: ws, prompt: "#fake write m.txt via mcp" });
    expect(first.outcome).toMatchObject({ status: "succeeded" });
    expect(readFileSync(path.join(ws, "m.txt"), "utf8")).toBe("via mcp");
    const reply = await pool.runTurn({ conversationId: first.conversationId!, prompt: "#fake recall" });
    expect(recalled(reply.outcome.finalMessage)).toEqual(["#fake write m.txt via mcp", "#fake recall"]);

    const holder = (await docker.listByLabels({ "io.codex-mcp-wrapper.instance": pool.config.label }))[0];
    await docker.remove(holder!.id);
    const lost = await pool.runTurn({ conversationId: first.conversationId!, prompt: "#fake recall" });
    expect(lost.outcome.status, `${lost.outcome.errorCode}: ${lost.outcome.error}`).toBe("lost");
    expect(lost.outcome.error).toMatch(/mcp-server cannot resume/);
  });

  it("a reply whose process ends under it is `lost` (its thread went with the process), and so is every reply after it", async () => {
    const pool = await pools.start({ workers: [{ name: "m", protocol: "mcp-server", image: REHEARSAL_IMAGE_LEGACY, capacity: 2, max_containers: 1 }] });
    const ws = makeWorkspace();
    const first = await pool.runTurn({ workspace: ws, prompt: "#fake write m.txt via mcp" });
    expect(first.outcome.status).toBe("succeeded");
    // The reply's turn is under way (its command started) when its container goes.
    let commandStarted!: () => void;
    const underWay = new Promise<void>((r) => (commandStarted = r));
    const replying = pool.runTurn({ conversationId: first.conversationId!, prompt: "#fake sleep 60000", onEvent: (e) => e.kind === "command_started" && commandStarted() });
    // (A reply that ended without its command starting fails here, instead of waiting for ever.)
    await Promise.race([underWay, replying.then((r) => expect.fail(`the reply ended before its command started: ${r.outcome.status}: ${r.outcome.error}`))]);
    const holder = (await docker.listByLabels({ "io.codex-mcp-wrapper.instance": pool.config.label }))[0];
    await docker.remove(holder!.id);
    const reply = await replying;
    expect(reply.outcome.status, `${reply.outcome.errorCode}: ${reply.outcome.error}`).toBe("lost");
    expect(reply.outcome.errorCode).toBe("CONVERSATION_LOST");
    expect(reply.outcome.error).toMatch(/mcp-server cannot resume/);
    // The conversation is lost for good: the next reply says so at once, on no container.
    const next = await pool.runTurn({ conversationId: first.conversationId!, prompt: "#fake recall" });
    expect(next.outcome.status).toBe("lost");
    expect(next.container).toBeNull();
  });
});
