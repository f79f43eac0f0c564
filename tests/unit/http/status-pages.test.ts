// The status page's mission and task views as pure functions: what a task's event log shows,
// and the rendered HTML (escaped, cut, with a timeline of where each task ran).
import { describe, expect, it } from "vitest";
import { MISSION_MESSAGE_CHARS, escapeHtml, formatDuration, renderMissionPage, renderTaskPage, timelineSvg } from "../../../src/http/status-pages.js";
import { SHOWN_TEXT_LIMIT, joinOutput, newShownState, shownEvents, type ShownEvent } from "../../../src/http/task-events.js";
import { MissionRecordSchema, type MissionRecord } from "../../../src/state/record.js";

const delta = (text: string): object => ({ type: "codex", message: { method: "item/commandExecution/outputDelta", params: { itemId: "c1", delta: text } } });

function show(events: object[]): ShownEvent[] {
  const state = newShownState();
  return joinOutput(events.flatMap((e) => shownEvents(e, state)));
}

function mission(over: Partial<MissionRecord["tasks"][number]>[] = []): MissionRecord {
  return MissionRecordSchema.parse({
    missionId: "m-20261201120000-abcdef",
    name: "m",
    status: "succeeded",
    workspace: "/tmp/w",
    createdAt: "2026-12-01T12:00:00.000Z",
    updatedAt: "2026-12-01T12:00:10.000Z",
    finishedAt: "2026-12-01T12:00:10.000Z",
    tasks: over.map((t, i) => ({ id: `t${i}`, status: "succeeded", container: `box-${i}`, startedAt: "2026-12-01T12:00:02.000Z", finishedAt: "2026-12-01T12:00:07.500Z", ...t })),
  });
}

describe("a task's events as shown", () => {
  it("streamed output shows as it comes; a command's end puts its whole output in place of a stream that missed a part", () => {
    const shown = show([{ type: "command_started", command: "loop" }, delta("line-2\n"), delta("line-3\n"), { type: "command_finished", command: "loop", exitCode: 0, output: "line-1\nline-2\nline-3\n" }]);
    expect(shown.map((e) => e.kind)).toEqual(["command", "output", "exit"]);
    expect(shown[1]).toMatchObject({ text: "line-1\nline-2\nline-3\n", replace: true });
    // Apart, the stream and the end: the stream appends, the end replaces.
    const state = newShownState();
    shownEvents({ type: "command_started", command: "loop" }, state);
    expect(shownEvents(delta("line-2\n"), state)).toEqual([{ kind: "output", text: "line-2\n" }]);
    expect(shownEvents({ type: "command_finished", exitCode: 0, output: "line-1\nline-2\n" }, state)[0]).toEqual({ kind: "output", text: "line-1\nline-2\n", replace: true });
  });

  it("a stream that got it all is not repeated; output that was never streamed (exec) shows at the end", () => {
    expect(show([{ type: "command_started", command: "x" }, delta("a\n"), { type: "command_finished", exitCode: 0, output: "a\n" }]).map((e) => e.text)).toEqual(["$ x", "a\n", "exit 0"]);
    const exec = show([{ type: "command_started", command: "x" }, { type: "command_finished", exitCode: 2, output: "boom\n" }]);
    expect(exec).toEqual([{ kind: "command", text: "$ x" }, { kind: "output", text: "boom\n" }, { kind: "exit", text: "exit 2" }]);
  });

  it("protocol chatter shows nothing; a long text is cut to the bound", () => {
    expect(shownEvents({ type: "codex", message: { method: "turn/started", params: {} } }, newShownState())).toEqual([]);
    expect(shownEvents({ type: "thread", threadId: "x" }, newShownState())).toEqual([]);
    const long = shownEvents({ type: "agent_message", text: "x".repeat(SHOWN_TEXT_LIMIT * 3) }, newShownState())[0]!;
    expect(long.text.length).toBeLessThan(SHOWN_TEXT_LIMIT + 200);
    expect(long.text).toContain("left out");
  });
});

describe("the mission and task pages", () => {
  it("escape what a task wrote, and cut a long final message with a note", () => {
    const evil = "<script>alert(1)</script>";
    const m = mission([{ finalMessage: evil, error: `<img src=x onerror=alert(2)>`, container: `<b>box</b>` }, { finalMessage: "y".repeat(MISSION_MESSAGE_CHARS + 50) }]);
    const html = renderMissionPage(m, "NONCE", Date.parse("2026-12-01T12:00:10.000Z"));
    expect(html).not.toContain(evil);
    expect(html).not.toContain("<img");
    expect(html).not.toContain("<b>box");
    expect(html).toContain("&lt;script&gt;alert(1)&lt;/script&gt;");
    expect(html).toContain("… 50 more characters on the task's page");
    const task = renderTaskPage(m, m.tasks[0]!, "NONCE");
    expect(task).not.toContain(evil);
    expect(task.match(/<script/g)).toEqual(["<script"]);
    expect(task).toContain('<script nonce="NONCE">');
  });

  it("shows each task's duration and tokens, and a patch link when changes.patch is an artifact", () => {
    const m = mission([{ usage: { inputTokens: 200, cachedInputTokens: 10, outputTokens: 52, reasoningOutputTokens: 0, requests: 2, model: "m", profile: "default" }, artifacts: [{ path: "changes.patch", size: 3, sha256: "x" }] }, {}]);
    const html = renderMissionPage(m, "N");
    expect(html).toContain('<td class="duration">5.5 s</td>');
    expect(html).toContain('<td class="tokens">200 / 10 / 52</td>');
    expect(html).toContain('<a class="patch" href="/missions/m-20261201120000-abcdef/artifacts/t0/changes.patch">patch</a>');
    expect(html.match(/class="patch"/g)).toHaveLength(1);
  });

  it("the timeline has a bar per started task, from its start to its end, labelled with its container", () => {
    const m = mission([{ container: "box-a" }, { container: "box-b", startedAt: "2026-12-01T12:00:05.000Z", finishedAt: "2026-12-01T12:00:10.000Z" }, { status: "queued", container: null, startedAt: null, finishedAt: null }]);
    const svg = timelineSvg(m, Date.parse(m.finishedAt!));
    expect(svg.match(/<rect /g)).toHaveLength(2);
    expect(svg).toContain('>box-a</text>');
    expect(svg).toContain('>box-b</text>');
    expect(svg).toContain(">not placed</text>");
    // 10 s over 570 units from x=420: the second task's bar from 5 s (x=705) to 10 s (width 285).
    expect(svg).toMatch(/data-task="t1"[^]*?<rect class="bar succeeded" x="705\.0" y="\d+" width="285\.0"/);
  });

  it("formats durations and escapes quotes", () => {
    expect([formatDuration(850), formatDuration(12_340), formatDuration(245_000), formatDuration(7_380_000)]).toEqual(["850 ms", "12.3 s", "4 min 05 s", "2 h 03 min"]);
    expect(escapeHtml(`"'&<>`)).toBe("&quot;&#39;&amp;&lt;&gt;");
  });
});
