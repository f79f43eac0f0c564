// The status page: `/` (one self-contained HTML page), `/status.json` (the same facts as JSON),
// `/status/events` (server-sent events: a fresh snapshot whenever it changes), the mission and
// task pages (./status-pages.ts) and the artifact downloads they link to. The page renders with
// textContent only, so nothing a task wrote can run in the browser.
import { closeSync, createReadStream, existsSync, openSync, readSync, statSync } from "node:fs";
import path from "node:path";
import { Readable } from "node:stream";
import type { HttpBindings } from "@hono/node-server";
import type { Context, Hono, MiddlewareHandler } from "hono";
import { streamSSE } from "hono/streaming";
import type { Broker } from "../broker.js";
import { artifactMimeType } from "../artifacts/mime.js";
import { attemptLabel, type MissionRecord } from "../state/store.js";
import { addMissionPages, artifactHref, missionPagePath, pagePolicy, taskPagePath } from "./status-pages.js";

export interface StatusSnapshot {
  /** `rehearsal`: only in rehearsal mode, the notice the page shows as a banner. */
  instance: { label: string; channel: string; version: string; uptimeSeconds: number; docker: string; port: number; rehearsal?: string };
  workers: { containers: ReturnType<Broker["pool"]["stats"]>["containers"]; queued: number; inFlight: number };
  engines: ReturnType<Broker["pool"]["stats"]>["engines"];
  missions: {
    missionId: string;
    name: string;
    status: string;
    createdAt: string;
    finishedAt: string | null;
    progress: Record<string, number>;
    bundle: string | null;
    /** The mission's own page (its timeline and tasks). */
    page: string;
    tasks: { id: string; page: string; status: string; attempt: string | null; container: string | null; startedAt: string | null; finishedAt: string | null; error: string | null; tokens: { input: number; cached: number; output: number } | null; artifacts: { path: string; size: number; href: string }[] }[];
  }[];
}

const MAX_MISSIONS = 20;
const MAX_ERROR_CHARS = 400;

export async function statusSnapshot(broker: Broker): Promise<StatusSnapshot> {
  const health = await broker.health();
  const pool = broker.pool.stats();
  const missions = broker.store.listMissions(MAX_MISSIONS).map((m) => missionView(m, broker.config.rehearsal?.notice));
  return {
    instance: {
      label: broker.config.label,
      channel: broker.config.channel,
      version: String(health.version),
      uptimeSeconds: Number(health.uptimeSeconds),
      docker: String(health.docker),
      port: broker.config.port,
      ...(broker.config.rehearsal ? { rehearsal: broker.config.rehearsal.notice } : {}),
    },
    workers: { containers: pool.containers, queued: pool.queued, inFlight: pool.inFlight },
    engines: pool.engines,
    missions,
  };
}

/** `banner`: a note the page shows once, above everything (the rehearsal notice), left out of each task's. */
function missionView(m: MissionRecord, banner?: string): StatusSnapshot["missions"][number] {
  const progress: Record<string, number> = {};
  for (const t of m.tasks) progress[t.status] = (progress[t.status] ?? 0) + 1;
  const base = `/missions/${encodeURIComponent(m.missionId)}`;
  return {
    missionId: m.missionId,
    name: m.name,
    status: m.status,
    createdAt: m.createdAt,
    finishedAt: m.finishedAt,
    progress,
    bundle: m.bundle ? `${base}/bundle.tar.gz` : null,
    page: missionPagePath(m.missionId),
    tasks: m.tasks.map((t) => {
      const error = [t.error, ...(t.notes ?? []).filter((n) => n !== banner)].filter(Boolean).join("\n"); // notes show with the error
      return {
        id: t.id,
        page: taskPagePath(m.missionId, t.id),
        status: t.status,
        attempt: attemptLabel(t),
        container: t.container,
        startedAt: t.startedAt,
        finishedAt: t.finishedAt,
        error: error.length > MAX_ERROR_CHARS ? `${error.slice(0, MAX_ERROR_CHARS)}…` : error || null,
        tokens: t.usage ? { input: t.usage.inputTokens, cached: t.usage.cachedInputTokens, output: t.usage.outputTokens } : null,
        artifacts: t.artifacts.map((a) => ({ path: a.path, size: a.size, href: artifactHref(m.missionId, t.id, a.path) })),
      };
    }),
  };
}

/** Adds the status routes to the app, each behind `guard` (the same token as the MCP endpoints). */
export function addStatusRoutes(app: Hono<{ Bindings: HttpBindings }>, broker: Broker, guard: MiddlewareHandler): void {
  // Every open page polls each second: one snapshot (an engine ping, the recent records read)
  // serves all of those that ask within half a second.
  let shared: { at: number; snapshot: Promise<StatusSnapshot> } | undefined;
  const latest = (): Promise<StatusSnapshot> => {
    if (!shared || Date.now() - shared.at >= 500) shared = { at: Date.now(), snapshot: statusSnapshot(broker) };
    return shared.snapshot;
  };
  app.get("/", guard, (c) => {
    const { nonce, headers } = pagePolicy();
    return c.html(PAGE.replaceAll("NONCE", nonce), 200, headers);
  });
  app.get("/status.json", guard, async (c) => c.json(await statusSnapshot(broker)));
  app.get("/status/events", guard, (c) =>
    streamSSE(c, async (stream) => {
      let last = "";
      let closed = false;
      stream.onAbort(() => void (closed = true));
      while (!closed) {
        const { instance, ...rest } = await latest();
        // Uptime alone changing is not news; everything else is.
        const key = JSON.stringify(rest) + instance.docker;
        if (key !== last) {
          last = key;
          await stream.writeSSE({ event: "status", data: JSON.stringify({ instance, ...rest }) });
        }
        await stream.sleep(1000);
      }
    }),
  );
  // Only files the mission's record lists are served: never a path a request makes up.
  app.get("/missions/:missionId/artifacts/:taskId/*", guard, (c) => {
    const record = readRecord(broker, c.req.param("missionId"));
    const taskId = c.req.param("taskId");
    const prefix = `/missions/${encodeURIComponent(record?.missionId ?? "")}/artifacts/${encodeURIComponent(taskId)}/`;
    const rel = decodeURIComponent(new URL(c.req.url).pathname.slice(prefix.length));
    const entry = record?.tasks.find((t) => t.id === taskId)?.artifacts.find((a) => a.path === rel);
    if (!record || !entry) return c.text("No such artifact: the mission's record does not list it", 404);
    return sendFile(c, path.join(broker.store.missionDir(record.missionId), "artifacts", taskId, entry.path), path.basename(entry.path), true);
  });
  addMissionPages(app, broker, guard);
  app.get("/missions/:missionId/bundle.tar.gz", guard, (c) => {
    const record = readRecord(broker, c.req.param("missionId"));
    if (!record?.bundle) return c.text("No bundle: this mission kept no artifacts", 404);
    return sendFile(c, record.bundle, `${record.missionId}.tar.gz`);
  });
}

function readRecord(broker: Broker, missionId: string): MissionRecord | null {
  try {
    return broker.store.readMission(missionId);
  } catch {
    return null;
  }
}

// Shown in the browser rather than saved: plain text and raster images, which cannot run script.
const INLINE = /^(text\/(plain|markdown|csv|tab-separated-values|x-diff|x-[a-z+-]+)|image\/(png|jpeg|gif|webp))$/;

/**
 * A file as a download, or (`typed`: an artifact) with its type from artifacts/mime.ts, shown
 * inline when that type cannot run script. Either way sandboxed: an HTML or SVG artifact opened
 * from the page runs nothing on this origin.
 */
function sendFile(c: Context, file: string, name: string, typed = false): Response {
  if (!existsSync(file)) return c.text("The file is listed but missing from the state directory", 410);
  const type = typed ? artifactMimeType(name, headIsUtf8(file)) : "application/octet-stream";
  const text = /^text\/|^application\/(json|jsonl|x-ndjson|xml|yaml|toml|sql|x-sh)$|^image\/svg\+xml$/.test(type);
  const body = Readable.toWeb(createReadStream(file)) as ReadableStream;
  return new Response(body, {
    headers: {
      "content-type": text ? `${type}; charset=utf-8` : type,
      "content-length": String(statSync(file).size),
      "content-disposition": `${INLINE.test(type) ? "inline" : "attachment"}; filename="${name.replace(/["\\\r\n]/g, "_")}"`,
      "content-security-policy": "sandbox; default-src 'none'",
      "x-content-type-options": "nosniff",
    },
  });
}

/** Whether a file's first 64 KiB are UTF-8 (a character cut at the end is allowed). */
function headIsUtf8(file: string): boolean {
  const fd = openSync(file, "r");
  try {
    const buf = Buffer.alloc(64 * 1024);
    const n = readSync(fd, buf, 0, buf.length, 0);
    new TextDecoder("utf-8", { fatal: true }).decode(buf.subarray(0, n), { stream: true });
    return true;
  } catch {
    return false;
  } finally {
    closeSync(fd);
  }
}

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>codex-mcp-wrapper</title>
<style nonce="NONCE">
  :root { font-family: system-ui, sans-serif; color: #1d2125; background: #f6f7f9; }
  body { margin: 0 auto; max-width: 1100px; padding: 1.2rem; }
  h1 { font-size: 1.3rem; margin: 0 0 .2rem; }
  h2 { font-size: 1.05rem; margin: 1.4rem 0 .5rem; }
  .meta { color: #555; font-size: .9rem; }
  .live { display: inline-block; width: .6rem; height: .6rem; border-radius: 50%; background: #aaa; margin-right: .3rem; }
  .live.on { background: #2da44e; }
  table { border-collapse: collapse; width: 100%; background: #fff; font-size: .88rem; }
  th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid #e3e5e8; vertical-align: top; }
  th { background: #eef0f3; font-weight: 600; }
  .mission { background: #fff; border: 1px solid #e3e5e8; border-radius: 6px; margin: .6rem 0; padding: .6rem .8rem; }
  .mission header { display: flex; gap: .8rem; align-items: baseline; flex-wrap: wrap; }
  .status { font-weight: 600; padding: 0 .35rem; border-radius: 4px; background: #eef0f3; }
  .status.succeeded { background: #dafbe1; color: #116329; }
  .status.failed, .status.timed_out, .status.lost, .status.interrupted { background: #ffebe9; color: #a40e26; }
  .status.running, .status.starting { background: #ddf4ff; color: #0550ae; }
  .status.cancelled, .status.queued { background: #fff8c5; color: #7d4e00; }
  .bar { display: flex; height: .5rem; border-radius: 3px; overflow: hidden; background: #eef0f3; margin: .4rem 0; }
  .bar span { display: block; }
  .error { color: #a40e26; white-space: pre-wrap; font-family: ui-monospace, monospace; font-size: .8rem; }
  .empty { color: #777; font-style: italic; }
  code { font-family: ui-monospace, monospace; font-size: .85rem; }
  .rehearsal { background: #fff8c5; border: 2px solid #d4a72c; color: #4d2d00; border-radius: 6px; padding: .6rem .8rem; margin: .6rem 0; font-weight: 600; }
</style>
</head>
<body>
<h1>codex-mcp-wrapper <span id="label"></span></h1>
<div class="meta"><span id="live" class="live" title="live updates"></span><span id="instance">loading…</span></div>
<div id="rehearsal" class="rehearsal" role="alert" hidden></div>
<h2>Engines</h2>
<div id="engines"></div>
<h2>Workers</h2>
<div id="workers"></div>
<h2>Missions</h2>
<div id="missions"></div>
<script nonce="NONCE">
"use strict";
const el = (tag, props, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (k === "text") e.textContent = v; else if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  for (const k of kids) if (k != null) e.append(k);
  return e;
};
const COLORS = { succeeded: "#2da44e", running: "#0969da", queued: "#d4a72c", failed: "#cf222e", timed_out: "#cf222e", lost: "#cf222e", interrupted: "#cf222e", cancelled: "#bf8700" };
const duration = (s) => s < 90 ? s + " s" : s < 5400 ? Math.round(s / 60) + " min" : Math.round(s / 3600) + " h";
function render(s) {
  const i = s.instance;
  document.getElementById("label").textContent = "· " + i.label;
  document.title = i.label + " · codex-mcp-wrapper";
  document.getElementById("instance").textContent = i.channel + " instance, version " + i.version + ", port " + i.port + ", up " + duration(i.uptimeSeconds) + " · Docker: " + i.docker;
  const banner = document.getElementById("rehearsal");
  banner.textContent = i.rehearsal || "";
  banner.hidden = !i.rehearsal;
  const engines = document.getElementById("engines");
  const et = el("table", { id: "engines-table" }, el("tr", {}, ...["engine", "state", "containers", "host", "labels", "since"].map((h) => el("th", { text: h }))));
  for (const e of s.engines) et.append(el("tr", {}, el("td", { text: e.name }), el("td", {}, el("span", { class: "status " + (e.state === "up" ? "ready" : "dead"), text: e.state + (e.reason ? ": " + e.reason : "") })), el("td", { text: e.containers + (e.maxContainers === null ? "" : " / " + e.maxContainers) }), el("td", {}, el("code", { text: e.host })), el("td", { text: e.labels.join(", ") }), el("td", { text: e.since })));
  engines.replaceChildren(et);
  const w = s.workers;
  const workers = document.getElementById("workers");
  workers.replaceChildren(el("p", { class: "meta", text: w.containers.length + " container(s), " + w.inFlight + " turn(s) running, " + w.queued + " queued" }));
  if (w.containers.length) {
    const t = el("table", { id: "workers-table" }, el("tr", {}, ...["container", "engine", "profile", "state", "load", "sandbox", "workspace"].map((h) => el("th", { text: h }))));
    for (const c of w.containers) t.append(el("tr", {}, el("td", {}, el("code", { text: c.name })), el("td", { text: c.engine }), el("td", { text: c.profile }), el("td", {}, el("span", { class: "status " + c.state, text: c.state })), el("td", { text: c.inFlight + " / " + c.capacity }), el("td", { text: c.sandbox }), el("td", {}, el("code", { text: c.workspace }))));
    workers.append(t);
  }
  const missions = document.getElementById("missions");
  missions.replaceChildren();
  if (!s.missions.length) missions.append(el("p", { class: "empty", text: "No mission yet: call the batch tool or run-mission." }));
  for (const m of s.missions) {
    const total = m.tasks.length;
    const done = total - (m.progress.queued || 0) - (m.progress.running || 0);
    const bar = el("div", { class: "bar", title: JSON.stringify(m.progress) });
    for (const [st, n] of Object.entries(m.progress)) { const b = el("span"); b.style.width = (100 * n / total) + "%"; b.style.background = COLORS[st] || "#999"; bar.append(b); }
    const tasks = el("table", { class: "tasks" }, el("tr", {}, ...["task", "status", "container", "tokens (in / cached / out)", "artifacts", "error"].map((h) => el("th", { text: h }))));
    for (const t of m.tasks) {
      const arts = el("td");
      for (const a of t.artifacts) arts.append(el("a", { class: "artifact", href: a.href, text: a.path }), " ");
      tasks.append(el("tr", { "data-task": t.id }, el("td", {}, el("a", { class: "task-link", href: t.page }, el("code", { text: t.id }))), el("td", {}, el("span", { class: "status " + t.status, text: t.status }), t.attempt ? el("span", { class: "attempt", text: " attempt " + t.attempt }) : null), el("td", {}, t.container ? el("code", { text: t.container }) : null), el("td", { class: "tokens", text: t.tokens ? t.tokens.input + " / " + t.tokens.cached + " / " + t.tokens.output : "" }), arts, el("td", { class: "error", text: t.error || "" })));
    }
    const header = el("header", {}, el("a", { class: "mission-link", href: m.page }, el("strong", { text: m.name })), el("code", { text: m.missionId }), el("span", { class: "status " + m.status, text: m.status }), el("span", { class: "meta", text: done + " of " + total + " task(s) done · started " + new Date(m.createdAt).toLocaleString() }));
    if (m.bundle) header.append(el("a", { class: "bundle", href: m.bundle, text: "artifacts (tar.gz)" }));
    missions.append(el("section", { class: "mission", "data-mission": m.missionId }, header, bar, tasks));
  }
}
const live = document.getElementById("live");
let polling = null;
function poll() {
  if (polling) return;
  const tick = () => fetch("status.json", { credentials: "same-origin" }).then((r) => r.json()).then(render).catch(() => live.classList.remove("on"));
  tick();
  polling = setInterval(tick, 2000);
}
if (window.EventSource) {
  const es = new EventSource("status/events");
  es.addEventListener("status", (e) => { live.classList.add("on"); render(JSON.parse(e.data)); });
  es.onerror = () => { live.classList.remove("on"); if (es.readyState === EventSource.CLOSED) poll(); };
} else poll();
</script>
</body>
</html>
`;
