#!/usr/bin/env node
// The bench's figures drawn: one self-contained SVG (and an HTML page around it) from a results
// JSON of bench/run.mjs. Per latency measure, the broker's distribution beside its floor's (the
// samples as dots, p10–p90 as a box, the median as a bar, min–max as a whisker) on one axis;
// per scale run, wall time and broker CPU per task against the task count.
//   node bench/report.mjs bench/results/<time>.json [--svg out.svg] [--html out.html]
// No dependencies: it is plain string building, so any browser or Markdown viewer shows it.
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const W = 880;
const ROW = 26;
const LEFT = 250;
const RIGHT = 70;
const COLORS = { broker: "#0969da", floor: "#57606a", other: "#8250df" };

const esc = (s) => String(s).replace(/[<>&"]/g, (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;" })[c]);
const fmt = (x) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));

/** The relay's sides (netns, the default, when measured; runs before it had the socket first), then the floor. */
function relaySeries(x) {
  const first = x.netns ? "netns" : "socket";
  return [
    ["relay, container's netns", x.netns, first === "netns" ? "broker" : "other"],
    ["relay, unix socket", x.socket, first === "socket" ? "broker" : "other"],
    ["relay, through the engine", x.stdio, "other"],
    ["direct model (floor)", x.direct, "floor"],
  ].filter(([, s]) => s);
}

/** A difference in ms with its sign: +4.5, −75.2. */
export const signedMs = (x) => (x < 0 ? `−${-x}` : `+${x}`);

/** The latency measures of a results object: each a title, a unit, and its series (label, summary, role). */
export function latencyMeasures(r) {
  const m = [];
  if (r.cold) m.push({ title: "cold start: batch → turn/started", unit: "ms", series: [["broker", r.cold.broker, "broker"], ["docker run -i (floor)", r.cold.floor, "floor"]], note: `ratio ${r.cold.ratio}×` });
  if (r.coldSpare) m.push({ title: "cold start with a spare: batch → turn/started (isolated, new workspace)", unit: "ms", series: [["broker, spare ready", r.coldSpare.broker, "broker"], ["docker run -i (floor)", r.coldSpare.floor, "floor"]], note: `ratio ${r.coldSpare.ratio}× (target ≤ 0.85); a spare ${r.coldSpare.spareMemoryMiB.median} MiB` });
  if (r.warm) m.push({ title: "warm start: batch → turn/started", unit: "ms", series: [["broker", r.warm.broker, "broker"], ["direct app-server pipe (floor)", r.warm.floor, "floor"]], note: `${r.warm.ratio !== undefined ? `${r.warm.ratio}× (target ≤ 0.6×), ` : ""}${signedMs(r.warm.addedMsP50)} ms at p50` });
  if (r.relay?.turn) {
    m.push({
      title: "warm turn: model through the relay vs direct",
      unit: "ms",
      series: relaySeries(r.relay.turn),
      note: `${[r.relay.addedMsP50?.netns, r.relay.addedMsP50?.socket, r.relay.addedMsP50?.stdio].filter((x) => x !== undefined).map(signedMs).join(" / ")} ms at p50`,
    });
  }
  if (r.relay?.request) {
    const q = r.relay.request;
    m.push({ title: "one model request from inside the container", unit: "ms", series: relaySeries(q) });
  }
  if (r.throughput) m.push({ title: `throughput: ${r.throughput.tasks} tasks on ${r.throughput.containers}×${r.throughput.capacity}`, unit: "ms", series: [["broker", r.throughput.brokerMs, "broker"], ["direct (floor)", r.throughput.directMs, "floor"]], note: `${r.throughput.brokerTasksPerSecond} vs ${r.throughput.directTasksPerSecond} tasks/s` });
  for (const [protocol, d] of Object.entries(r.drivers ?? {})) {
    const series = Object.entries(d)
      .filter(([, s]) => s && typeof s === "object" && typeof s.median === "number")
      .map(([k, s], i) => [k, s, i === 0 ? "broker" : "other"]);
    if (series.length) m.push({ title: `driver ${protocol}`, unit: "ms", series });
  }
  return m.filter((x) => x.series.every(([, s]) => s && typeof s.median === "number"));
}

/** One measure as an SVG group at y; returns [svg, height]. */
function measureSvg(measure, y) {
  const all = measure.series.flatMap(([, s]) => [s.min, s.max, ...(s.samples ?? [])]).filter((v) => Number.isFinite(v));
  const lo = Math.min(0, ...all);
  const hi = Math.max(...all) * 1.05 || 1;
  const x = (v) => LEFT + ((v - lo) / (hi - lo)) * (W - LEFT - RIGHT);
  const parts = [`<text x="10" y="${y + 16}" class="title">${esc(measure.title)}${measure.note ? ` — ${esc(measure.note)}` : ""}</text>`];
  let row = y + 26;
  for (const [label, s, role] of measure.series) {
    const c = COLORS[role] ?? COLORS.other;
    const mid = row + ROW / 2;
    parts.push(`<text x="${LEFT - 8}" y="${mid + 4}" text-anchor="end" class="label">${esc(label)}</text>`);
    parts.push(`<line x1="${x(s.min)}" x2="${x(s.max)}" y1="${mid}" y2="${mid}" stroke="${c}" stroke-width="1"/>`);
    parts.push(`<rect x="${x(s.p10)}" y="${mid - 7}" width="${Math.max(1, x(s.p90) - x(s.p10))}" height="14" fill="${c}" fill-opacity="0.18" stroke="${c}"/>`);
    for (const v of s.samples ?? []) parts.push(`<circle cx="${x(v)}" cy="${mid}" r="2" fill="${c}" fill-opacity="0.55"/>`);
    parts.push(`<line x1="${x(s.median)}" x2="${x(s.median)}" y1="${mid - 9}" y2="${mid + 9}" stroke="${c}" stroke-width="3"/>`);
    parts.push(`<text x="${W - RIGHT + 6}" y="${mid + 4}" class="value">${fmt(s.median)} ${measure.unit}</text>`);
    row += ROW;
  }
  // The axis: 0 (or the lowest value) and the highest, in the measure's unit.
  parts.push(`<line x1="${LEFT}" x2="${W - RIGHT}" y1="${row + 2}" y2="${row + 2}" stroke="#d0d7de"/>`);
  for (const v of [lo, (lo + hi) / 2, hi]) parts.push(`<text x="${x(v)}" y="${row + 15}" text-anchor="middle" class="axis">${fmt(v)} ${measure.unit}</text>`);
  return [parts.join("\n"), row + 24 - y];
}

const SCALE_PANELS = [
  ["wall time (s)", (c) => c.wallMs / 1000],
  ["broker CPU per task (ms)", (c) => c.brokerCpuMs / c.tasks],
  ["broker peak RSS (MiB)", (c) => c.peakRssMiB],
];

/**
 * The scale runs: wall time and broker CPU per task against tasks, one line per container count
 * (or per the `containers` each cell is given: the 3-engine runs give one line).
 */
function scaleSvg(scale, y, { title = "scale: tasks at once, by containers", legend = (c) => `${c} container(s)`, panels = SCALE_PANELS } = {}) {
  const byContainers = new Map();
  for (const c of scale) byContainers.set(c.containers, [...(byContainers.get(c.containers) ?? []), c].sort((a, b) => a.tasks - b.tasks));
  const pw = (W - 40) / panels.length;
  const ph = 150;
  const parts = [`<text x="10" y="${y + 16}" class="title">${esc(title)}</text>`];
  const maxT = Math.max(...scale.map((c) => c.tasks));
  const palette = ["#0969da", "#8250df", "#1a7f37", "#bf3989"];
  panels.forEach(([name, f], i) => {
    const x0 = 20 + i * pw + 30;
    const y0 = y + 46;
    const w = pw - 50;
    // A cell without this figure (a run with no status calls has no status latency) is left out.
    const has = (c) => Number.isFinite(f(c));
    const maxV = Math.max(...scale.filter(has).map(f)) * 1.1 || 1;
    const px = (t) => x0 + (t / maxT) * w;
    const py = (v) => y0 + ph - (v / maxV) * ph;
    parts.push(`<text x="${x0}" y="${y0 - 4}" class="label">${esc(name)}</text>`);
    parts.push(`<line x1="${x0}" x2="${x0 + w}" y1="${y0 + ph}" y2="${y0 + ph}" stroke="#d0d7de"/><line x1="${x0}" x2="${x0}" y1="${y0}" y2="${y0 + ph}" stroke="#d0d7de"/>`);
    parts.push(`<text x="${x0 - 4}" y="${y0 + 8}" text-anchor="end" class="axis">${fmt(maxV)}</text><text x="${x0 + w}" y="${y0 + ph + 13}" text-anchor="end" class="axis">${maxT} tasks</text>`);
    [...byContainers].forEach(([containers, all], k) => {
      const color = palette[k % palette.length];
      // Repeated counts in one run (250,1000,1000,250) are drawn as points; the line goes through them by count.
      const cells = all.filter(has).sort((a, b) => a.tasks - b.tasks);
      parts.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${cells.map((c) => `${px(c.tasks)},${py(f(c))}`).join(" ")}"/>`);
      for (const c of cells) parts.push(`<circle cx="${px(c.tasks)}" cy="${py(f(c))}" r="3" fill="${color}"/>`);
      if (i === 0) parts.push(`<text x="${x0 + 6}" y="${y0 + 14 + k * 13}" class="axis" style="fill:${color}">${esc(legend(containers))}</text>`);
    });
  });
  return [parts.join("\n"), ph + 76];
}

/** The whole report as one SVG document. */
export function renderSvg(r) {
  const groups = [];
  let y = 40;
  for (const m of latencyMeasures(r)) {
    const [svg, h] = measureSvg(m, y);
    groups.push(svg);
    y += h + 10;
  }
  if (Array.isArray(r.scale) && r.scale.length) {
    const [svg, h] = scaleSvg(r.scale, y);
    groups.push(svg);
    y += h + 10;
  }
  if (Array.isArray(r.scale3?.cells) && r.scale3.cells.length) {
    // One line with status calls every ~100 ms (the target's load), one without any (a batch that waits).
    const cells = r.scale3.cells.map((c) => ({ ...c, containers: c.statusMs === null ? "no status calls" : "status calls" }));
    const [svg, h] = scaleSvg(cells, y, {
      title: `scale over 3 engines (${r.scale3.containers} warm containers × ${r.scale3.capacity}), the broker while loaded`,
      legend: (k) => `${r.scale3.containers} containers on 3 engines, ${k}`,
      // The status panel only when some mission had status calls.
      panels: [...SCALE_PANELS, ...(cells.some((c) => c.statusMs) ? [["status p99 while loaded (ms)", (c) => c.statusMs?.missionP99 ?? NaN]] : [])],
    });
    groups.push(svg);
    y += h + 10;
  }
  const m = r.machine ?? {};
  const head = `codex-mcp-wrapper bench, ${esc(r.startedAt ?? "")}: ${esc(m.cpu ?? "?")} × ${m.cores ?? "?"} cores, ${m.memoryGiB ?? "?"} GiB, Node ${esc(m.node ?? "?")}, Docker ${esc(m.docker ?? "?")}, Codex ${esc(m.codex ?? "?")}`;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${y}" viewBox="0 0 ${W} ${y}" font-family="system-ui, sans-serif">
<style>.title{font-size:14px;font-weight:600;fill:#1f2328}.label{font-size:12px;fill:#1f2328}.value{font-size:12px;fill:#1f2328;font-variant-numeric:tabular-nums}.axis{font-size:10px;fill:#57606a}</style>
<rect width="100%" height="100%" fill="#ffffff"/>
<text x="10" y="22" class="label">${head}</text>
<text x="10" y="${y - 8}" class="axis">dots: each sample · box: p10–p90 · bar: median · whisker: min–max; broker and floor measured side by side in one run</text>
${groups.join("\n")}
</svg>
`;
}

export function renderHtml(r) {
  return `<!doctype html><meta charset="utf-8"><title>codex-mcp-wrapper bench ${esc(r.startedAt ?? "")}</title>\n<body style="margin:16px">\n${renderSvg(r)}</body>\n`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { svg: { type: "string" }, html: { type: "string" } } });
  if (positionals.length !== 1) {
    process.stderr.write("usage: node bench/report.mjs <results.json> [--svg out.svg] [--html out.html]\n");
    process.exit(2);
  }
  const r = JSON.parse(readFileSync(positionals[0], "utf8"));
  const svg = values.svg ?? positionals[0].replace(/\.json$/, ".svg");
  const html = values.html ?? positionals[0].replace(/\.json$/, ".html");
  writeFileSync(svg, renderSvg(r));
  writeFileSync(html, renderHtml(r));
  console.log(`SVG: ${svg}\nHTML: ${html}`);
}
