// A tool result's text drops nothing of the structured result: every value of every task is in
// it, the final message whole (cut only past FINAL_MESSAGE_TEXT_LIMIT, with where to read it all),
// and each artifact is also a resource_link with its own title and MIME type.
import { describe, expect, it } from "vitest";
import { artifactLinks, FINAL_MESSAGE_TEXT_LIMIT, finalMessageUri, MissionResults, missionText, taskOut, type MissionResultOut, type TaskResultOut } from "../../../src/mcp/results.js";
import type { TaskRecord } from "../../../src/state/record.js";

const usage = { inputTokens: 1201, cachedInputTokens: 302, outputTokens: 45, reasoningOutputTokens: 6, requests: 3, model: "gpt-5.5", profile: "default" };
const mission: MissionResultOut = {
  missionId: "m-20261201000000-abcdef",
  status: "failed",
  tasks: [
    {
      id: "write",
      status: "succeeded",
      conversationId: "conv_1111",
      finalMessage: "slept 1500 ms\nwrote out/remote-http.txt\n\nand a third line",
      error: null,
      artifacts: [{ path: "out/remote-http.txt", size: 17, sha256: "ab".repeat(32), redacted: 2 }, { path: "out/img.png", size: 9001, sha256: "cd".repeat(32) }],
      startedAt: "2026-12-01T10:00:00.000Z",
      finishedAt: "2026-12-01T10:00:02.000Z",
      notes: ["a command was killed for exceeding the memory limit (512m)"],
      usage,
    },
    {
      id: "checked",
      status: "failed",
      conversationId: "conv_2222",
      finalMessage: "attempt 2\ndone",
      error: "check_failed: `npm test` exited 1 at attempt 2/2",
      errorCode: "check_failed",
      artifacts: [],
      startedAt: "2026-12-01T10:00:00.500Z",
      finishedAt: "2026-12-01T10:00:09.000Z",
      usage: { ...usage, inputTokens: 999 },
      maxAttempts: 2,
      attempts: [
        { attempt: 1, turn: "succeeded", turnError: null, startedAt: "2026-12-01T10:00:00.501Z", finishedAt: "2026-12-01T10:00:04.000Z", durationMs: 3499, usage: { ...usage, outputTokens: 77 }, check: { command: "npm test", exitCode: 1, timedOut: false, durationMs: 812, bytes: 4096, outputTail: "FAIL one\n1 failed" } },
        { attempt: 2, turn: "failed", turnError: "the model said no", startedAt: "2026-12-01T10:00:04.100Z", finishedAt: "2026-12-01T10:00:09.000Z", durationMs: 4900 },
      ],
    },
    { id: "queued", status: "queued", conversationId: null, finalMessage: null, error: null, artifacts: [], startedAt: null, finishedAt: null },
  ],
};

/** Every string and number in a value, with its path. */
function leaves(v: unknown, at = ""): [string, string][] {
  if (v === null || v === undefined || typeof v === "boolean") return [];
  if (typeof v === "string" || typeof v === "number") return [[at, String(v)]];
  if (Array.isArray(v)) return v.flatMap((x, i) => leaves(x, `${at}[${i}]`));
  return Object.entries(v).flatMap(([k, x]) => leaves(x, `${at}.${k}`));
}

describe("a mission's result text", () => {
  it("holds every value of the structured result, each final message whole", () => {
    const text = missionText(mission, "clients");
    // Line by line: a check's output is indented under its attempt.
    for (const [where, value] of leaves(mission)) for (const line of value.split("\n")) expect(text, `${where} = ${value}`).toContain(line);
    expect(text).toContain("slept 1500 ms\nwrote out/remote-http.txt\n\nand a third line");
    expect(text).toContain(`out/remote-http.txt (17 bytes, sha256 ${"ab".repeat(32)}, 2 known secret(s) replaced by [redacted]): codex-wrapper://missions/m-20261201000000-abcdef/artifacts/write/out/remote-http.txt`);
    expect(text).toContain("check `npm test`: exit code 1 in 812 ms, 4096 bytes of output; its last lines:\n    FAIL one\n    1 failed");
  });

  it("cuts a final message past the limit, saying how long it is and where it is whole", () => {
    const long = "x".repeat(FINAL_MESSAGE_TEXT_LIMIT + 500);
    const text = missionText({ ...mission, tasks: [{ ...mission.tasks[0]!, finalMessage: long }] });
    expect(text).toContain(`${"x".repeat(FINAL_MESSAGE_TEXT_LIMIT)}\n[cut at ${FINAL_MESSAGE_TEXT_LIMIT} of ${long.length} characters; the whole message: structuredContent.tasks[0].finalMessage, or the resource ${finalMessageUri(mission.missionId, "write")}]`);
    expect(text).not.toContain("x".repeat(FINAL_MESSAGE_TEXT_LIMIT + 1));
  });

  it("links each artifact as a resource with its path as title, its MIME type and size", () => {
    expect(artifactLinks(mission.missionId, mission.tasks)).toEqual([
      expect.objectContaining({ type: "resource_link", uri: "codex-wrapper://missions/m-20261201000000-abcdef/artifacts/write/out/remote-http.txt", name: "out/remote-http.txt", title: "out/remote-http.txt", mimeType: "text/plain", size: 17 }),
      expect.objectContaining({ type: "resource_link", title: "out/img.png", mimeType: "image/png", size: 9001 }),
    ]);
  });

  describe("MissionResults: a mission's result built again only where its tasks changed", () => {
    // As the runner keeps it: the records with their container, changed in place.
    const live = () => ({ ...mission, name: "clients", tasks: mission.tasks.map((t) => structuredClone({ ...t, container: "cmw-x-default-0" }) as TaskRecord) });
    /** A result's text without its cursor's line (the line after the head), which the first test checks. */
    const plain = (r: { text: string }): string => r.text.replace(/\ncursor: [0-9a-f]{8}\.\d+ \(status with since="[^"]+" lists only the tasks that change after this\)/, "");

    it("gives what missionText and artifactLinks give, and each change made in place since the last call", () => {
      const checked: string[] = [];
      const results = new MissionResults((t) => (checked.push(t.id), true));
      const m = live();
      const first = results.build(m);
      expect(first.out).toEqual(mission);
      expect(first.text).toBe(missionText(mission, "clients").replace("3 tasks\n", `3 tasks\ncursor: ${first.cursor} (status with since="${first.cursor}" lists only the tasks that change after this)\n`));
      expect(first.counts).toEqual({ queued: 1, running: 0, succeeded: 1, failed: 1, timed_out: 0, cancelled: 0, lost: 0, interrupted: 0 });
      expect(first.links).toEqual(artifactLinks(mission.missionId, mission.tasks));
      expect(first.checked).toBe(true);
      expect(checked).toEqual(["write", "checked", "queued"]);

      // The queued task starts and ends, changed in place as the runner does: only it is built again.
      Object.assign(m.tasks[2]!, { status: "succeeded", finalMessage: "done at last", startedAt: "2026-12-01T10:01:00.000Z", finishedAt: "2026-12-01T10:01:01.000Z" });
      m.tasks[2]!.artifacts.push({ path: "late.md", size: 3, sha256: "ef".repeat(32) });
      const second = results.build(m);
      const now = { ...mission, tasks: [mission.tasks[0]!, mission.tasks[1]!, { ...mission.tasks[2]!, status: "succeeded", finalMessage: "done at last", startedAt: "2026-12-01T10:01:00.000Z", finishedAt: "2026-12-01T10:01:01.000Z", artifacts: [{ path: "late.md", size: 3, sha256: "ef".repeat(32) }] } as TaskResultOut] };
      expect(second.out).toEqual(now);
      expect(plain(second)).toBe(missionText(now, "clients"));
      expect(second.links).toEqual(artifactLinks(now.missionId, now.tasks));
      expect(checked).toEqual(["write", "checked", "queued", "queued"]);
      expect(second.out.tasks[0]).toBe(first.out.tasks[0]); // the unchanged ones are the same parts
      expect(second.out).not.toBe(first.out);

      // Nothing changed: the same; then only the mission's status: its head line follows.
      expect(results.build(m)).toEqual(second);
      m.status = "succeeded";
      expect(plain(results.build(m))).toBe(missionText({ ...now, status: "succeeded" }, "clients"));
      expect(checked).toHaveLength(4);
    });

    it("sees a change made deep in a record, a key added or removed, and a string changed in place of another", () => {
      const built: string[] = [];
      const results = new MissionResults((t) => (built.push(t.id), true));
      const m = live();
      results.build(m);
      built.length = 0;
      const expectRebuilt = (change: () => void, id: string): void => {
        change();
        const r = results.build(m);
        expect(built).toEqual([id]);
        const want = { ...m, tasks: m.tasks.map(({ container: _c, ...t }) => (t.notes?.length ? t : (({ notes: _n, ...rest }) => rest)(t))) } as MissionResultOut & { name: string };
        expect(r.out).toEqual({ missionId: want.missionId, status: want.status, tasks: want.tasks });
        expect(plain(r)).toBe(missionText({ missionId: want.missionId, status: want.status, tasks: want.tasks }, "clients"));
        built.length = 0;
      };
      expectRebuilt(() => m.tasks[0]!.usage!.outputTokens++, "write"); // a number two levels down
      expectRebuilt(() => (m.tasks[0]!.artifacts[0]!.size = 18), "write"); // in an array's object
      expectRebuilt(() => (m.tasks[1]!.attempts![0]!.check!.exitCode = 2), "checked"); // three levels down
      expectRebuilt(() => delete m.tasks[1]!.errorCode, "checked"); // a key removed
      expectRebuilt(() => (m.tasks[1]!.errorCode = undefined), "checked"); // present, though undefined
      expectRebuilt(() => delete m.tasks[1]!.errorCode, "checked");
      expectRebuilt(() => (m.tasks[1]!.errorCode = "check_failed"), "checked"); // and added again
      expectRebuilt(() => m.tasks[0]!.notes!.pop(), "write"); // an array shorter
      expectRebuilt(() => (m.tasks[0]!.notes = {} as unknown as string[]), "write"); // an object for an empty array
      expectRebuilt(() => (m.tasks[0]!.notes = []), "write");
      expectRebuilt(() => (m.tasks[1]!.usage = null as unknown as TaskRecord["usage"]), "checked"); // null for an object
      expectRebuilt(() => (m.tasks[2]!.finalMessage = `${"x".repeat(20_000)}y`), "queued");
      expectRebuilt(() => (m.tasks[2]!.finalMessage = `${"x".repeat(20_000)}z`), "queued"); // same length, last character
      // A value set again to what it was is no change.
      m.tasks[0]!.status = "succeeded";
      results.build(m);
      expect(built).toEqual([]);
    });

    it("says a result is not checked while any task failed its check", () => {
      const results = new MissionResults((t) => t.id !== "checked");
      expect(results.build(live()).checked).toBe(false);
    });

    it("with since, lists only the tasks changed after that cursor, counting every task", () => {
      const results = new MissionResults(() => true);
      const m = live();
      const first = results.build(m);
      expect(first.since).toBeUndefined();
      // Nothing changed: no task, the same cursor, and the mission's counts.
      const none = results.build(m, first.cursor);
      expect(none).toMatchObject({ since: "changes", cursor: first.cursor, counts: first.counts, links: [], checked: true });
      expect(none.out).toEqual({ missionId: mission.missionId, status: "failed", tasks: [] });
      expect(none.text).toBe(`mission clients (${mission.missionId}): failed, 3 tasks (1 queued, 1 succeeded, 1 failed); 0 changed after ${first.cursor}\ncursor: ${first.cursor} (status with since="${first.cursor}" lists only the tasks that change after this)`);

      // The queued task ends with an artifact: only it, with its link, and a later cursor.
      Object.assign(m.tasks[2]!, { status: "succeeded", finalMessage: "done at last", startedAt: "2026-12-01T10:01:00.000Z", finishedAt: "2026-12-01T10:01:01.000Z" });
      m.tasks[2]!.artifacts.push({ path: "late.md", size: 3, sha256: "ef".repeat(32) });
      const second = results.build(m, first.cursor);
      expect(second.out.tasks.map((t) => t.id)).toEqual(["queued"]);
      expect(second.out.tasks[0]).toMatchObject({ status: "succeeded", finalMessage: "done at last" });
      expect(second.counts).toMatchObject({ queued: 0, succeeded: 2, failed: 1 });
      expect(second.cursor).not.toBe(first.cursor);
      expect(second.links).toEqual(artifactLinks(mission.missionId, [second.out.tasks[0]!]));
      expect(second.text).toContain(`; 1 changed after ${first.cursor}\n`);
      expect(second.text).toContain("## task queued: succeeded");
      expect(second.text).not.toContain("## task write");
      // Another client still holding the first cursor, after the change was seen: the same task.
      expect(results.build(m, first.cursor).out.tasks.map((t) => t.id)).toEqual(["queued"]);
      expect(results.build(m, second.cursor).out.tasks).toEqual([]);

      // Two changes, seen by calls without since: a cursor before both lists both, in the mission's order.
      m.tasks[1]!.usage!.outputTokens++;
      const third = results.build(m);
      m.tasks[0]!.notes!.push("another note");
      results.build(m);
      expect(results.build(m, second.cursor).out.tasks.map((t) => t.id)).toEqual(["write", "checked"]);
      expect(results.build(m, third.cursor).out.tasks.map((t) => t.id)).toEqual(["write"]);
      // The whole result is as without since.
      expect(plain(results.build(m))).toBe(missionText({ missionId: mission.missionId, status: "failed", tasks: m.tasks.map(taskOut) }, "clients"));
    });

    it("a cursor this process did not give lists every task, saying why; another mission's cursor is a moment like any", () => {
      const results = new MissionResults(() => true);
      const m = live();
      const { cursor } = results.build(m);
      const [instance, n] = cursor.split(".");
      for (const since of [`${instance === "00000000" ? "11111111" : "00000000"}.1`, `${instance}.${Number(n) + 1}`, `${instance}.999999999999999`]) {
        const r = results.build(m, since);
        expect(r.since, since).toBe("unknown");
        expect(r.out.tasks, since).toHaveLength(3);
        expect(r.text, since).toContain(`\ncursor ${since} is not one this broker gave (it restarted since, or the cursor is another's): every task is listed\ncursor: ${cursor} `);
      }
      // A second mission built after that cursor: each of its tasks changed after it.
      const other = { ...live(), missionId: "m-20261201000000-fedcba" };
      const firstOfOther = results.build(other, cursor);
      expect(firstOfOther.out.tasks).toHaveLength(3);
      // Asked for only with since, nothing changed: no task, and the cursor stays.
      expect(results.build(other, firstOfOther.cursor)).toMatchObject({ cursor: firstOfOther.cursor, out: { tasks: [] } });
      expect(results.build(other, results.build(other).cursor).out.tasks).toEqual([]);
    });

    it("keeps the parts of the 8 missions asked for last: a 9th drops the one asked for longest ago, which lists every task again after it", () => {
      const built: string[] = [];
      const results = new MissionResults((t) => (built.push(t.id), true));
      const m = live();
      const { cursor } = results.build(m);
      for (let i = 1; i <= 7; i++) results.build({ ...live(), missionId: `m-20261201000000-00000${i}` });
      built.length = 0;
      expect(results.build(m, cursor).out.tasks).toEqual([]); // still kept: 8 missions
      expect(built).toEqual([]);
      // m was just asked for: 7 more keep it, an 8th drops it.
      for (let i = 8; i <= 14; i++) results.build({ ...live(), missionId: `m-20261201000000-0000${String(i).padStart(2, "0")}` });
      expect(results.build(m, cursor).out.tasks).toEqual([]);
      for (let i = 15; i <= 22; i++) results.build({ ...live(), missionId: `m-20261201000000-0000${i}` });
      built.length = 0;
      expect(results.build(m, cursor).out.tasks.map((t) => t.id)).toEqual(["write", "checked", "queued"]);
      expect(built).toEqual(["write", "checked", "queued"]); // built again
    });
  });
});
