// Before any broker code: the real Codex in the rehearsal image, driven by `codex exec --json`
// over `docker run -i` (network none, capabilities dropped, no-new-privileges, non-root).
import { readFileSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ExecEvent } from "../../../src/codex/exec-protocol.js";
import { tokenFingerprint } from "../../../src/rehearsal/plan.js";
import { CONTAINER_USER, HARDENING, makeCodexHome, makeWorkspace, REHEARSAL_IMAGE, removeTestContainers, TEST_API_KEY, TEST_LABEL } from "../support/env.js";
import { JsonLineProcess, type Msg } from "../support/proc.js";

const RUN = `exec-${process.pid}`;
afterAll(() => removeTestContainers(RUN));

function execTurn(home: string, ws: string, argv: string[]): JsonLineProcess {
  return new JsonLineProcess("docker", [
    "run", "-i", "--rm", "--label", `${TEST_LABEL}=${RUN}`, ...HARDENING, "--user", CONTAINER_USER,
    "-v", `${home}:/codex-home`, "-v", `${ws}:/workspace`, REHEARSAL_IMAGE,
    "codex", "exec", "--json", "--skip-git-repo-check", "-s", "danger-full-access", ...argv,
  ]);
}

const agentText = (lines: Msg[]): string[] =>
  lines.flatMap((l) => {
    const item = l.item as Msg | undefined;
    return l.type === "item.completed" && item?.type === "agent_message" ? [String(item.text)] : [];
  });

describe("codex exec --json in the rehearsal image", () => {
  it("runs a turn that writes a file on the host, then resumes the thread", async () => {
    const home = makeCodexHome();
    const ws = makeWorkspace();
    const first = execTurn(home, ws, ["#fake write notes/first.txt from exec\n#fake auth"]);
    first.endInput();
    const started = await first.waitFor((l) => l.type === "thread.started", 60_000, "thread.started");
    await first.waitFor((l) => l.type === "turn.completed", 60_000, "turn.completed");
    expect(await first.exited).toBe(0);
    const threadId = String(started.thread_id);
    expect(threadId).toMatch(/^[0-9a-f-]{36}$/);
    expect(readFileSync(path.join(ws, "notes/first.txt"), "utf8")).toBe("from exec");
    expect(agentText(first.lines).join("\n")).toContain(`auth: ${tokenFingerprint(TEST_API_KEY)}`);

    // A new container on the same CODEX_HOME continues the thread.
    const second = execTurn(home, ws, ["resume", threadId, "#fake recall"]);
    second.endInput();
    await second.waitFor((l) => l.type === "turn.completed", 60_000, "turn.completed after resume");
    expect(await second.exited).toBe(0);
    // Every event the real binary printed fits the broker's exec schema.
    for (const line of [...first.lines, ...second.lines]) expect(ExecEvent.safeParse(line).error).toBeUndefined();
    const recall = agentText(second.lines).find((t) => t.startsWith("recall: "));
    expect(recall).toBeDefined();
    expect(JSON.parse(recall!.slice("recall: ".length))).toEqual(["#fake write notes/first.txt from exec\n#fake auth", "#fake recall"]);
  });

  it("reports a scripted model failure as turn.failed and exits non-zero", async () => {
    const proc = execTurn(makeCodexHome(), makeWorkspace(), ["#fake fail the model said no"]);
    proc.endInput();
    const failed = await proc.waitFor((l) => l.type === "turn.failed", 60_000, "turn.failed");
    expect(JSON.stringify(failed.error)).toContain("the model said no");
    expect(await proc.exited).not.toBe(0);
  });
});
