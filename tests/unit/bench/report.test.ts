// The bench's drawn report (bench/report.mjs): every measure of a results JSON becomes a row per
// series (box, median, samples) on one axis, scale runs become curves, and the SVG parses as XML.
import { describe, expect, it } from "vitest";
import { latencyMeasures, renderHtml, renderSvg } from "../../../bench/report.mjs";

const s = (median: number, spread = 10) => ({ n: 5, median, p10: median - spread / 2, p90: median + spread / 2, min: median - spread, max: median + spread, samples: [median - spread, median - 1, median, median + 1, median + spread] });
const results = {
  machine: { cpu: "AMD EPYC", cores: 2, memoryGiB: 24, node: "v20", docker: "20.10", codex: "0.169.0" },
  startedAt: "2026-12-01T00:00:00.000Z",
  cold: { broker: s(430), floor: s(428), ratio: 1.01 },
  warm: { broker: s(41), floor: s(37), addedMsP50: 4.5 },
  relay: { turn: { direct: s(200), socket: s(204), stdio: s(210) }, addedMsP50: { socket: 4, stdio: 10 }, request: { direct: s(2, 1), socket: s(6, 2), stdio: s(9, 3) } },
  throughput: { tasks: 200, containers: 4, capacity: 4, brokerMs: s(8000, 500), directMs: s(8500, 500), brokerTasksPerSecond: 25, directTasksPerSecond: 23.5 },
  scale: [
    { tasks: 50, containers: 1, wallMs: 4000, brokerCpuMs: 600, peakRssMiB: 120 },
    { tasks: 200, containers: 1, wallMs: 15000, brokerCpuMs: 2500, peakRssMiB: 140 },
    { tasks: 200, containers: 4, wallMs: 8000, brokerCpuMs: 2600, peakRssMiB: 150 },
  ],
};

describe("the bench report", () => {
  it("draws each measure's series side by side, with the samples, and the scale curves", () => {
    const measures = latencyMeasures(results);
    expect(measures.map((m) => [m.title, m.series.length])).toEqual([
      ["cold start: batch → turn/started", 2],
      ["warm start: batch → turn/started", 2],
      ["warm turn: model through the relay vs direct", 3],
      ["one model request from inside the container", 3],
      ["throughput: 200 tasks on 4×4", 2],
    ]);
    const svg = renderSvg(results);
    expect(svg.startsWith("<svg xmlns=")).toBe(true);
    expect(svg).toContain("docker run -i (floor)");
    expect(svg).toContain("ratio 1.01×");
    expect(svg.match(/<circle /g)?.length).toBe(12 * 5 + 3 * 3); // 12 series of 5 samples, 3 scale points in each of 3 panels
    expect(svg).toContain("broker CPU per task (ms)");
    expect(svg).toContain("4 container(s)");
    expect(renderHtml(results).startsWith("<!doctype html>")).toBe(true);
    // Well-formed: every element opened is closed (a browser would show a broken image otherwise).
    const opened = (svg.match(/<(?!\/)[a-z]+[^>]*[^/]>/g) ?? []).length;
    const closed = (svg.match(/<\/[a-z]+>/g) ?? []).length;
    expect(opened).toBe(closed);
  });

  it("draws scale3 with and without status calls as two lines, a run with no status calls left out of the status panel", () => {
    const cell = (tasks: number, statusP99: number | null) => ({ tasks, wallMs: tasks * 300, brokerCpuMs: tasks * 18, peakRssMiB: 160, statusMs: statusP99 === null ? null : { missionP99: statusP99 } });
    const svg = renderSvg({ scale3: { containers: 6, capacity: 4, cells: [cell(250, 700), cell(1000, null), cell(1000, 990), cell(250, null)] } });
    expect(svg).toContain("6 containers on 3 engines, status calls");
    expect(svg).toContain("6 containers on 3 engines, no status calls");
    expect(svg).not.toContain("NaN");
    // 3 panels with 4 points each, and the status panel with the 2 that have status calls.
    expect(svg.match(/<circle /g)?.length).toBe(3 * 4 + 2);
  });

  it("draws a scale3 run with no status calls at all without a status panel", () => {
    const cell = (tasks: number) => ({ tasks, wallMs: tasks * 260, brokerCpuMs: tasks * 18, peakRssMiB: 150, statusMs: null });
    const svg = renderSvg({ scale3: { containers: 6, capacity: 4, cells: [cell(250), cell(500), cell(1000), cell(1000), cell(500), cell(250)] } });
    expect(svg).not.toContain("status p99");
    expect(svg).not.toMatch(/NaN|Infinity/);
    expect(svg.match(/<circle /g)?.length).toBe(3 * 6);
  });

  it("signs the differences it notes: a broker faster than its floor reads −, not +-", () => {
    const notes = latencyMeasures({
      warm: { broker: s(22), floor: s(97), addedMsP50: -75.2, ratio: 0.23 },
      relay: { turn: { direct: s(153), netns: s(151), socket: s(157), stdio: s(159) }, addedMsP50: { netns: -1.5, socket: 4.4, stdio: 5.9 } },
    }).map((m) => m.note);
    expect(notes).toEqual(["0.23× (target ≤ 0.6×), −75.2 ms at p50", "−1.5 / +4.4 / +5.9 ms at p50"]);
  });

  it("leaves out what a run did not measure", () => {
    expect(latencyMeasures({ relay: { turn: { direct: s(1), socket: s(2), stdio: s(3) }, addedMsP50: { socket: 1, stdio: 2 } } })).toHaveLength(1);
    expect(renderSvg({})).toContain("<svg");
  });
});
