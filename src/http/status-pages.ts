// The status page's views of one mission and one task, rendered on the server: a mission's tasks
// (duration, tokens, final message, artifacts, patch) with a timeline of where each ran, and a
// task's page that follows its event log live (server-sent events from the log on disk, so a
// finished task replays and a running one streams). Every text a task wrote is escaped; the
// pages carry a strict Content-Security-Policy, their one script allowed by a per-response nonce.
import { randomBytes } from "node:crypto";
import { open } from "node:fs/promises";
import path from "node:path";
import type { HttpBindings } from "@hono/node-server";
import type { Context, Hono, MiddlewareHandler } from "hono";
import { streamSSE } from "hono/streaming";
import type { Broker } from "../broker.js";
import type { MissionRecord, TaskRecord } from "../state/store.js";
import { attemptLabel } from "../state/store.js";
import { joinOutput, newShownState, shownEvents, type ShownEvent } from "./task-events.js";

/** A final message longer than this is cut on the mission page (the task page shows more). */
export const MISSION_MESSAGE_CHARS = 600;
export const TASK_MESSAGE_CHARS = 20_000;
/** The patch an isolated task's changes come back as (the engines issue), when present. */
export const PATCH_NAME = "changes.patch";
/** Bytes of the event log read at a time by one stream: its memory bound. */
const READ_CHUNK = 256 * 1024;
const POLL_MS = 400;

/** Text made safe for HTML element content and attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (ch) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[ch]!);
}

/** "850 ms", "12.3 s", "4 min 05 s", "2 h 03 min". */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(Math.floor(s % 60)).padStart(2, "0")} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")} min`;
}

export const missionPagePath = (missionId: string): string => `/status/missions/${encodeURIComponent(missionId)}`;
export const taskPagePath = (missionId: string, taskId: string): string => `${missionPagePath(missionId)}/tasks/${encodeURIComponent(taskId)}`;
export const artifactHref = (missionId: string, taskId: string, file: string): string =>
  `/missions/${encodeURIComponent(missionId)}/artifacts/${encodeURIComponent(taskId)}/${file.split("/").map(encodeURIComponent).join("/")}`;

/** A task's run time: start to end, or to now while it runs; null before it starts. */
export function taskDurationMs(t: TaskRecord, now: number): number | null {
  if (!t.startedAt) return null;
  const end = t.finishedAt ? Date.parse(t.finishedAt) : now;
  return Math.max(0, end - Date.parse(t.startedAt));
}

function cutMessage(text: string, limit: number, more: string): string {
  if (text.length <= limit) return escapeHtml(text);
  return `${escapeHtml(text.slice(0, limit))}<span class="cut">… ${text.length - limit} more characters ${more}</span>`;
}

const tokens = (t: TaskRecord): string => (t.usage ? `${t.usage.inputTokens} / ${t.usage.cachedInputTokens} / ${t.usage.outputTokens}` : "");

function artifactLinks(m: MissionRecord, t: TaskRecord): string {
  return t.artifacts.map((a) => `<a class="artifact" href="${escapeHtml(artifactHref(m.missionId, t.id, a.path))}">${escapeHtml(a.path)}</a>`).join(" ");
}

function patchLink(m: MissionRecord, t: TaskRecord): string {
  const patch = t.artifacts.find((a) => a.path === PATCH_NAME || a.path.endsWith(`/${PATCH_NAME}`));
  return patch ? `<a class="patch" href="${escapeHtml(artifactHref(m.missionId, t.id, patch.path))}">patch</a>` : "";
}

const status = (s: string): string => `<span class="status ${escapeHtml(s)}">${escapeHtml(s)}</span>`;

/** An SVG timeline: one row per task, a bar from its start to its end (or now), labelled with its container. */
export function timelineSvg(m: MissionRecord, now: number): string {
  const t0 = Date.parse(m.createdAt);
  const ends = m.tasks.map((t) => (t.finishedAt ? Date.parse(t.finishedAt) : t.startedAt ? now : t0));
  const t1 = Math.max(m.finishedAt ? Date.parse(m.finishedAt) : now, ...ends, t0 + 1);
  const W = 1000;
  const LABEL = 420;
  const ROW = 36;
  const span = W - LABEL - 10;
  const x = (at: number): number => LABEL + ((at - t0) / (t1 - t0)) * span;
  const rows = m.tasks.map((t, i) => {
    const y = 24 + i * ROW;
    const label = `<text class="task-label" x="4" y="${y + 13}">${escapeHtml(t.id)}</text><text class="container-label" x="4" y="${y + 28}">${escapeHtml(t.container ?? "not placed")}</text>`;
    if (!t.startedAt) return `<g class="row" data-task="${escapeHtml(t.id)}">${label}</g>`;
    const a = x(Date.parse(t.startedAt));
    const b = x(ends[i]!);
    const title = `${t.id}: ${t.status} on ${t.container ?? "?"}, ${t.startedAt} → ${t.finishedAt ?? "running"}`;
    return `<g class="row" data-task="${escapeHtml(t.id)}" data-container="${escapeHtml(t.container ?? "")}">${label}<rect class="bar ${escapeHtml(t.status)}" x="${a.toFixed(1)}" y="${y + 2}" width="${Math.max(2, b - a).toFixed(1)}" height="26" rx="3"><title>${escapeHtml(title)}</title></rect></g>`;
  });
  const h = 24 + m.tasks.length * ROW + 4;
  const axis = `<text class="axis" x="${LABEL}" y="14">${escapeHtml(new Date(t0).toISOString().slice(11, 19))} UTC</text><text class="axis" x="${W - 10}" y="14" text-anchor="end">+${escapeHtml(formatDuration(t1 - t0))}${m.finishedAt ? "" : " (now)"}</text><line class="axis-line" x1="${LABEL}" y1="18" x2="${W - 10}" y2="18"/>`;
  return `<svg id="timeline" role="img" aria-label="mission timeline" viewBox="0 0 ${W} ${h}" width="100%" xmlns="http://www.w3.org/2000/svg">${axis}${rows.join("")}</svg>`;
}

const STYLE = `
  :root { font-family: system-ui, sans-serif; color: #1d2125; background: #f6f7f9; }
  body { margin: 0 auto; max-width: 1100px; padding: 1.2rem; }
  h1 { font-size: 1.25rem; margin: 0 0 .2rem; } h2 { font-size: 1.05rem; margin: 1.3rem 0 .5rem; }
  .meta { color: #555; font-size: .9rem; } a { color: #0550ae; }
  table { border-collapse: collapse; width: 100%; background: #fff; font-size: .88rem; }
  th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid #e3e5e8; vertical-align: top; }
  th { background: #eef0f3; font-weight: 600; }
  code, pre { font-family: ui-monospace, monospace; font-size: .82rem; }
  .message, pre { white-space: pre-wrap; word-break: break-word; margin: 0; }
  .cut { color: #777; font-style: italic; }
  .error { color: #a40e26; white-space: pre-wrap; font-family: ui-monospace, monospace; font-size: .8rem; }
  .status { font-weight: 600; padding: 0 .35rem; border-radius: 4px; background: #eef0f3; }
  .status.succeeded { background: #dafbe1; color: #116329; }
  .status.failed, .status.timed_out, .status.lost, .status.interrupted { background: #ffebe9; color: #a40e26; }
  .status.running { background: #ddf4ff; color: #0550ae; } .status.cancelled, .status.queued { background: #fff8c5; color: #7d4e00; }
  svg { background: #fff; border: 1px solid #e3e5e8; border-radius: 6px; }
  svg text { font-size: 12px; fill: #1d2125; } svg .container-label, svg .axis { fill: #666; font-size: 11px; font-family: ui-monospace, monospace; }
  svg .axis-line { stroke: #ccc; } svg .bar { fill: #999; } svg .bar.succeeded { fill: #2da44e; } svg .bar.running { fill: #0969da; }
  svg .bar.failed, svg .bar.timed_out, svg .bar.lost, svg .bar.interrupted { fill: #cf222e; } svg .bar.cancelled { fill: #bf8700; }
  dl { display: grid; grid-template-columns: max-content 1fr; gap: .3rem 1rem; background: #fff; padding: .6rem .8rem; border: 1px solid #e3e5e8; border-radius: 6px; }
  dt { font-weight: 600; } dd { margin: 0; }
  #events { list-style: none; padding: 0; margin: 0; background: #0d1117; color: #e6edf3; border-radius: 6px; max-height: 60vh; overflow: auto; }
  #events li { padding: .2rem .6rem; border-bottom: 1px solid #21262d; }
  #events .kind { color: #8b949e; font-size: .75rem; margin-right: .5rem; }
  #events li.command pre { color: #79c0ff; } #events li.message pre { color: #d2a8ff; } #events li.exit pre, #events li.note pre { color: #8b949e; }
  #events li.end pre { color: #7ee787; font-weight: 600; }
`;

function page(title: string, nonce: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title><style nonce="${nonce}">${STYLE}</style></head>
<body>${body}</body></html>`;
}

/** A mission's page: its tasks and its timeline, as of `now`. */
export function renderMissionPage(m: MissionRecord, nonce: string, now = Date.now()): string {
  const rows = m.tasks.map((t) => {
    const d = taskDurationMs(t, now);
    const attempt = attemptLabel(t);
    const error = [t.error, ...(t.notes ?? [])].filter(Boolean).join("\n");
    return `<tr data-task="${escapeHtml(t.id)}">
<td><a class="task-link" href="${escapeHtml(taskPagePath(m.missionId, t.id))}"><code>${escapeHtml(t.id)}</code></a></td>
<td>${status(t.status)}${attempt ? ` <span class="attempt">attempt ${escapeHtml(attempt)}</span>` : ""}</td>
<td>${t.container ? `<code class="container">${escapeHtml(t.container)}</code>` : ""}</td>
<td class="duration">${d === null ? "" : escapeHtml(formatDuration(d))}${t.finishedAt || d === null ? "" : " so far"}</td>
<td class="tokens">${tokens(t)}</td>
<td><div class="message final-message">${t.finalMessage ? cutMessage(t.finalMessage, MISSION_MESSAGE_CHARS, "on the task's page") : ""}</div>${error ? `<div class="error">${cutMessage(error, MISSION_MESSAGE_CHARS, "on the task's page")}</div>` : ""}</td>
<td class="artifacts">${artifactLinks(m, t)} ${patchLink(m, t)}</td></tr>`;
  });
  const body = `<p class="meta"><a href="/">← all missions</a></p>
<h1>${escapeHtml(m.name)} <code>${escapeHtml(m.missionId)}</code> ${status(m.status)}</h1>
<p class="meta">started ${escapeHtml(m.createdAt)}${m.finishedAt ? `, ended ${escapeHtml(m.finishedAt)} (${escapeHtml(formatDuration(Date.parse(m.finishedAt) - Date.parse(m.createdAt)))})` : ", running: reload for the latest"}${m.bundle ? ` · <a href="/missions/${encodeURIComponent(m.missionId)}/bundle.tar.gz">artifacts (tar.gz)</a>` : ""}</p>
<h2>Timeline</h2>
${timelineSvg(m, now)}
<h2>Tasks</h2>
<p class="meta">Click a task for its live events.</p>
<table id="tasks"><tr><th>task</th><th>status</th><th>container</th><th>duration</th><th>tokens (in / cached / out)</th><th>final message</th><th>artifacts</th></tr>
${rows.join("\n")}</table>`;
  return page(`${m.name} · codex-mcp-wrapper`, nonce, body);
}

/** A task's page: its facts, then its events, streamed into the list by the page's one script. */
export function renderTaskPage(m: MissionRecord, t: TaskRecord, nonce: string, now = Date.now()): string {
  const d = taskDurationMs(t, now);
  const attempt = attemptLabel(t);
  const error = [t.error, ...(t.notes ?? [])].filter(Boolean).join("\n");
  const usage = t.usage ? `${t.usage.inputTokens} in (${t.usage.cachedInputTokens} cached) / ${t.usage.outputTokens} out` : "";
  const body = `<p class="meta"><a href="/">← all missions</a> · <a href="${escapeHtml(missionPagePath(m.missionId))}">${escapeHtml(m.name)}</a></p>
<h1>task <code>${escapeHtml(t.id)}</code> ${status(t.status)}${attempt ? ` <span class="attempt">attempt ${escapeHtml(attempt)}</span>` : ""}</h1>
<dl>
<dt>container</dt><dd><code class="container">${escapeHtml(t.container ?? "")}</code></dd>
<dt>started</dt><dd>${escapeHtml(t.startedAt ?? "not yet")}</dd>
<dt>ended</dt><dd>${escapeHtml(t.finishedAt ?? "")}</dd>
<dt>duration</dt><dd class="duration">${d === null ? "" : escapeHtml(formatDuration(d))}${t.finishedAt || d === null ? "" : " so far"}</dd>
<dt>tokens</dt><dd class="tokens">${escapeHtml(usage)}</dd>
<dt>final message</dt><dd><div class="message final-message">${t.finalMessage ? cutMessage(t.finalMessage, TASK_MESSAGE_CHARS, "left out: the whole message is in the status tool's result") : ""}</div></dd>
${error ? `<dt>error</dt><dd class="error">${cutMessage(error, TASK_MESSAGE_CHARS, "left out")}</dd>` : ""}
<dt>artifacts</dt><dd class="artifacts">${artifactLinks(m, t)} ${patchLink(m, t)}</dd>
</dl>
<h2>Events <span id="live-state" class="meta">connecting…</span></h2>
<ol id="events" data-src="${escapeHtml(taskPagePath(m.missionId, t.id))}/events"></ol>
<script nonce="${nonce}">
"use strict";
const list = document.getElementById("events");
const state = document.getElementById("live-state");
const MAX_ITEMS = 2000, MAX_TEXT = 65536;
function add(e) {
  const last = list.lastElementChild;
  const follow = list.scrollTop + list.clientHeight >= list.scrollHeight - 4;
  if (e.kind === "output" && last && last.dataset.kind === "output") {
    const pre = last.querySelector("pre");
    const text = e.replace ? e.text : pre.textContent + e.text;
    pre.textContent = text.length > MAX_TEXT ? "…" + text.slice(-MAX_TEXT) : text;
  } else {
    const li = document.createElement("li");
    li.className = e.kind;
    li.dataset.kind = e.kind;
    const kind = document.createElement("span");
    kind.className = "kind";
    kind.textContent = e.kind + (e.at ? " " + e.at.slice(11, 19) : "");
    const pre = document.createElement("pre");
    pre.textContent = e.text;
    li.append(kind, pre);
    list.append(li);
    while (list.childElementCount > MAX_ITEMS) list.firstElementChild.remove();
  }
  if (follow) list.scrollTop = list.scrollHeight;
}
const es = new EventSource(list.dataset.src);
es.onopen = () => { state.textContent = "live"; };
es.addEventListener("events", (m) => { for (const e of JSON.parse(m.data)) add(e); });
es.addEventListener("end", (m) => { state.textContent = "ended: " + JSON.parse(m.data).status + " (reload for the final record)"; es.close(); });
es.onerror = () => { if (es.readyState !== EventSource.OPEN) state.textContent = "reconnecting…"; };
</script>`;
  return page(`${t.id} · ${m.name} · codex-mcp-wrapper`, nonce, body);
}

/** A fresh nonce and the strict policy that allows only the page's own inline style and script. */
export function pagePolicy(): { nonce: string; headers: Record<string, string> } {
  const nonce = randomBytes(16).toString("base64");
  return {
    nonce,
    headers: {
      "content-security-policy": `default-src 'none'; script-src 'nonce-${nonce}'; style-src 'nonce-${nonce}'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`,
      "x-content-type-options": "nosniff",
      "referrer-policy": "no-referrer",
    },
  };
}

function readRecord(broker: Broker, missionId: string): MissionRecord | null {
  try {
    return broker.store.readMission(missionId);
  } catch {
    return null;
  }
}

/** A running mission's record as the runner holds it (no disk read), else the stored one. */
function liveRecord(broker: Broker, missionId: string): MissionRecord | null {
  try {
    return broker.runner.status(missionId);
  } catch {
    return null;
  }
}

const notFound = (c: Context, what: string): Response => c.text(`No such ${what}`, 404);

/** Adds the mission and task pages and the task event stream, each behind `guard`. */
export function addMissionPages(app: Hono<{ Bindings: HttpBindings }>, broker: Broker, guard: MiddlewareHandler): void {
  app.get("/status/missions/:missionId", guard, (c) => {
    const m = readRecord(broker, c.req.param("missionId"));
    if (!m) return notFound(c, "mission");
    const { nonce, headers } = pagePolicy();
    return c.html(renderMissionPage(m, nonce), 200, headers);
  });
  app.get("/status/missions/:missionId/tasks/:taskId", guard, (c) => {
    const m = readRecord(broker, c.req.param("missionId"));
    const t = m?.tasks.find((x) => x.id === c.req.param("taskId"));
    if (!m || !t) return notFound(c, "task");
    const { nonce, headers } = pagePolicy();
    return c.html(renderTaskPage(m, t, nonce), 200, headers);
  });
  // The task's events: its log from the start (or from Last-Event-ID, the byte offset a
  // reconnecting browser sends), then what is appended, until the task has ended and all is sent.
  app.get("/status/missions/:missionId/tasks/:taskId/events", guard, (c) => {
    const missionId = c.req.param("missionId");
    const taskId = c.req.param("taskId");
    const m = readRecord(broker, missionId);
    if (!m?.tasks.some((x) => x.id === taskId)) return notFound(c, "task");
    const file = path.join(broker.store.taskDir(missionId, taskId), "events.jsonl");
    const resume = Number(c.req.header("last-event-id"));
    return streamSSE(c, async (stream) => {
      let closed = false;
      stream.onAbort(() => void (closed = true));
      let offset = Number.isSafeInteger(resume) && resume > 0 ? resume : 0;
      let skipping = false; // inside a line longer than a chunk: dropped to its end
      const state = newShownState();
      let finished: string | undefined; // the task's end status, once its task_finished event is read
      const buf = Buffer.alloc(READ_CHUNK);
      while (!closed) {
        const read = await readAt(file, buf, offset);
        if (read > 0) {
          let chunk = buf.subarray(0, read);
          const lastNl = chunk.lastIndexOf(10);
          if (lastNl < 0) {
            if (read === READ_CHUNK) {
              offset += read;
              skipping = true;
            } else await stream.sleep(POLL_MS); // a line being written
            continue;
          }
          chunk = chunk.subarray(0, lastNl + 1);
          offset += chunk.length;
          let text = chunk.toString("utf8");
          if (skipping) {
            text = text.slice(text.indexOf("\n") + 1);
            skipping = false;
          }
          const shown: ShownEvent[] = [];
          for (const line of text.split("\n")) {
            if (!line) continue;
            try {
              const event = JSON.parse(line) as { type?: unknown; status?: unknown };
              if (event.type === "task_finished") finished = String(event.status);
              shown.push(...shownEvents(event, state));
            } catch {
              // a line that is not JSON (a torn write after a crash): nothing to show
            }
          }
          if (shown.length) await stream.writeSSE({ event: "events", id: String(offset), data: JSON.stringify(joinOutput(shown)) });
          continue;
        }
        // At the end of the log: done once the task's last event (task_finished) has been read,
        // or its mission is no longer running (a broker that stopped under it: no such event
        // comes). Not the task's status: it reads `succeeded` while the task's check runs, and
        // the record is written after the log's last event.
        const mission = liveRecord(broker, missionId);
        if (finished || !mission || mission.status !== "running") {
          if ((await readAt(file, buf, offset)) > 0) continue;
          const status = finished ?? mission?.tasks.find((x) => x.id === taskId)?.status ?? "unknown";
          await stream.writeSSE({ event: "end", id: String(offset), data: JSON.stringify({ status }) });
          return;
        }
        await stream.sleep(POLL_MS);
      }
    });
  });
}

/** Reads what the file holds from `offset` into `buf` (0 when nothing more, or no file yet). */
async function readAt(file: string, buf: Buffer, offset: number): Promise<number> {
  let fh;
  try {
    fh = await open(file, "r");
  } catch {
    return 0;
  }
  try {
    return (await fh.read(buf, 0, buf.length, offset)).bytesRead;
  } finally {
    await fh.close();
  }
}
