// The status page in a real browser (Debian's chromium, driven by playwright-core) while a
// mission runs on the real Codex in the rehearsal image, and /metrics checked by Prometheus's own
// promtool, its counters moving as the mission runs. Both behind the broker's token.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import path from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { type Browser } from "playwright-core";
import { beforeAll, describe, expect, it } from "vitest";
import { INSTANCE_PREFIX, makeWorkspace } from "../support/env.js";
import { statusFixture } from "../support/status-fixture.js";

const RUN = `status-${process.pid}`;
const TOKEN = `status-page-token-${process.pid}-0123456789`;
const SHOTS = path.resolve("test-results");
let base: string;
let client: Client;
let browser: Browser;

const auth = { Authorization: `Bearer ${TOKEN}` };

const fx = statusFixture({ run: RUN, token: TOKEN, capacity: 2, clientName: "status-test" });
beforeAll(() => void ({ base, client, browser } = fx));

async function metrics(): Promise<string> {
  const r = await fetch(`${base}/metrics`, { headers: auth });
  expect(r.status).toBe(200);
  expect(r.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
  return r.text();
}

/** Prometheus's own checker: exit 0 means the exposition parses (and passes its lint). */
function promtoolCheck(text: string): void {
  const r = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" });
  expect(r.error, "promtool is installed by scripts/test.sh (Debian's prometheus package)").toBeUndefined();
  expect(`${r.stdout}${r.stderr}`.trim()).toBe("");
  expect(r.status).toBe(0);
}

/** One sample's value (0 when the series is absent, as Prometheus treats a counter not yet seen). */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split("\n")) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = (m[2] ?? "").split(",").filter(Boolean);
    if (want.every((w) => have.includes(w))) return Number(m[3]);
  }
  return 0;
}

describe("status page and metrics", () => {
  it("without the token: 401 on /, /status.json, /status/events and /metrics; the browser is asked for credentials", async () => {
    for (const p of ["/", "/status.json", "/status/events", "/metrics"]) {
      const r = await fetch(`${base}${p}`);
      expect(r.status, p).toBe(401);
      await r.body?.cancel();
    }
    const page = await (await browser.newContext()).newPage();
    // Headless Chromium has no dialog to ask with: the navigation fails for want of credentials.
    await expect(page.goto(`${base}/`)).rejects.toThrow(/ERR_INVALID_AUTH_CREDENTIALS/);
    await page.context().close();
    const r = await fetch(`${base}/`);
    expect(r.headers.get("www-authenticate")).toMatch(/^Basic realm=/);
    expect(await r.text()).not.toContain("<html");
    const mcp = await fetch(`${base}/metrics`);
    expect(mcp.headers.get("www-authenticate")).toMatch(/^Bearer realm=/);
    await mcp.body?.cancel();
  });

  it("shows the running mission live, then its end, with artifact links; /metrics moves with it", async () => {
    const before = await metrics();
    promtoolCheck(before);
    expect(sample(before, "codex_wrapper_info", { label: `${INSTANCE_PREFIX}-test-${RUN}`, channel: "dev" })).toBe(1);
    const succeededBefore = sample(before, "codex_wrapper_tasks_finished_total", { status: "succeeded" });
    const tokens = { profile: "default", model: "rehearsal" };
    const inputBefore = sample(before, "codex_wrapper_tokens_total", { ...tokens, kind: "input" });
    const batchCallsBefore = sample(before, "codex_wrapper_mcp_tool_call_seconds_count", { tool: "batch", outcome: "ok" });

    const ws = makeWorkspace();
    const r = await client.callTool({
      name: "batch",
      arguments: {
        workspace: ws,
        wait: false,
        mission: {
          name: "status-page",
          tasks: [
            { id: "writer", prompt: "#fake write out/report.txt all good", sandbox: "workspace-write", artifacts: ["out/report.txt"] },
            // Its check fails after the first attempt (an 8 s sleep) and passes after the second.
            { id: "slow-1", prompt: "#fake on-attempt 1 sleep 8000\n#fake on-attempt 2 write out/fixed.txt ok", check: "test -f out/fixed.txt", attempts: 2 },
            { id: "slow-2", prompt: "#fake sleep 8000" },
          ],
        },
      },
    });
    expect(r.isError).toBeFalsy();
    const missionId = (r.structuredContent as { missionId: string }).missionId;

    const context = await browser.newContext({ httpCredentials: { username: "me", password: TOKEN }, viewport: { width: 1200, height: 800 } });
    const page = await context.newPage();
    const res = await page.goto(`${base}/`);
    expect(res?.status()).toBe(200);
    const mission = page.locator(`section[data-mission="${missionId}"]`);
    await mission.waitFor({ timeout: 60_000 });
    await expect.poll(() => page.locator("#label").textContent()).toContain(`${INSTANCE_PREFIX}-test-${RUN}`);
    // While it runs: a task shown running on a container, and the workers table lists the container.
    await mission.locator("tr[data-task] .status.running").first().waitFor({ timeout: 90_000 });
    await page.locator("#workers-table").waitFor();
    const during = await metrics();
    expect(sample(during, "codex_wrapper_containers", { state: "ready" })).toBe(1);
    expect(sample(during, "codex_wrapper_tasks", { status: "running" }) + sample(during, "codex_wrapper_tasks", { status: "queued" })).toBeGreaterThan(0);
    mkdirSync(SHOTS, { recursive: true });
    const shot = path.join(SHOTS, "status-page-running.png");
    await page.screenshot({ path: shot, fullPage: true });
    console.log(`status page screenshot (mission running): ${shot}`);

    // The same page, never reloaded, follows the mission to its end.
    await mission.locator("header .status.succeeded").waitFor({ timeout: 120_000 });
    for (const id of ["writer", "slow-1", "slow-2"]) await expect.poll(() => mission.locator(`tr[data-task="${id}"] .status`).textContent()).toBe("succeeded");
    // Each task made two model requests (a call, the answer) of 100 input tokens each, metered at the relay.
    await expect.poll(() => mission.locator('tr[data-task="writer"] .tokens').textContent()).toMatch(/^200 \/ 0 \/ \d+$/);
    // The task with a check shows the attempt it ended on; a task of one attempt shows none.
    expect(await mission.locator('tr[data-task="slow-1"] .attempt').textContent()).toBe(" attempt 2/2");
    expect(await mission.locator('tr[data-task="slow-2"] .attempt').count()).toBe(0);
    const link = mission.locator('tr[data-task="writer"] a.artifact');
    expect(await link.textContent()).toBe("out/report.txt");
    const href = await link.getAttribute("href");
    const download = await fetch(new URL(href!, base), { headers: auth });
    expect(download.status).toBe(200);
    expect(await download.text()).toBe("all good");
    expect(await mission.locator("header a.bundle").getAttribute("href")).toBe(`/missions/${missionId}/bundle.tar.gz`);
    await page.screenshot({ path: path.join(SHOTS, "status-page-done.png"), fullPage: true });
    await context.close();

    // A path the record does not list is never served, whatever it names.
    for (const p of [`/missions/${missionId}/artifacts/writer/..%2F..%2Frecord.json`, `/missions/${missionId}/artifacts/writer/out/other.txt`, `/missions/m-00000000000000-000000/bundle.tar.gz`]) {
      const bad = await fetch(`${base}${p}`, { headers: auth });
      expect(bad.status, p).toBe(404);
      await bad.body?.cancel();
    }

    const after = await metrics();
    promtoolCheck(after);
    expect(sample(after, "codex_wrapper_tasks_finished_total", { status: "succeeded" })).toBe(succeededBefore + 3);
    expect(sample(after, "codex_wrapper_task_duration_seconds_count", { status: "succeeded" })).toBe(succeededBefore + 3);
    expect(sample(after, "codex_wrapper_task_duration_seconds_sum", { status: "succeeded" })).toBeGreaterThan(16); // two 8 s sleeps
    expect(sample(after, "codex_wrapper_missions_finished_total", { status: "succeeded" })).toBe(1);
    // Two requests of 100 input tokens per turn: writer and slow-2 one turn each, slow-1 two.
    expect(sample(after, "codex_wrapper_tokens_total", { ...tokens, kind: "input" })).toBe(inputBefore + 800);
    expect(after).toMatch(/^codex_wrapper_budget_refusals_total 0$/m);
    expect(sample(after, "codex_wrapper_tokens_total", { ...tokens, kind: "output" })).toBeGreaterThan(0);
    expect(sample(after, "codex_wrapper_container_start_seconds_count", { profile: "default" })).toBe(1);
    expect(sample(after, "codex_wrapper_queue_length")).toBe(0);
    expect(sample(after, "codex_wrapper_tasks", { status: "running" })).toBe(0);
    // Each tool call is timed, by tool and outcome: the batch above, and a status that fails.
    expect(sample(after, "codex_wrapper_mcp_tool_call_seconds_count", { tool: "batch", outcome: "ok" })).toBe(batchCallsBefore + 1);
    const missing = await client.callTool({ name: "status", arguments: { missionId: "m-00000000000000-000000" } });
    expect(missing.isError).toBe(true);
    const later = await metrics();
    promtoolCheck(later);
    expect(sample(later, "codex_wrapper_mcp_tool_call_seconds_count", { tool: "status", outcome: "error" })).toBe(sample(after, "codex_wrapper_mcp_tool_call_seconds_count", { tool: "status", outcome: "error" }) + 1);
    // The event loop's delay since the last scrape: there, and ordered.
    expect(later).toMatch(/^nodejs_eventloop_lag_max_seconds \d/m);
    expect(sample(later, "nodejs_eventloop_lag_p50_seconds")).toBeLessThanOrEqual(sample(later, "nodejs_eventloop_lag_max_seconds"));
    // (sample reads an absent series as 0: these gauges must be there, at 0.)
    expect(after).toMatch(/^codex_wrapper_queue_length 0$/m);
    expect(after).toMatch(/^codex_wrapper_tasks\{status="running"\} 0$/m);
  });

  it("promtool is the real checker: it rejects a broken exposition", () => {
    const r = spawnSync("promtool", ["check", "metrics"], { input: "codex_wrapper_x{oops 1\n", encoding: "utf8" });
    expect(r.status).not.toBe(0);
    expect(execFileSync("promtool", ["--version"], { encoding: "utf8" })).toMatch(/promtool/);
  });
});
