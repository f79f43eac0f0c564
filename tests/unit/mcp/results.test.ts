// A tool result's text drops nothing of the structured result: every value of every task is in
// it, the final message whole (cut only past FINAL_MESSAGE_TEXT_LIMIT, with where to read it all),
// and each artifact is also a resource_link with its own title and MIME type.
import { describe, expect, it } from "vitest";
import { artifactLinks, FINAL_MESSAGE_TEXT_LIMIT, finalMessageUri, missionText, type MissionResultOut } from "../../../src/mcp/results.js";

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
});
