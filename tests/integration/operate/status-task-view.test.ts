// The status page's mission and task views in a real browser (Debian's chromium, driven by
// playwright-core) while a mission runs on the real Codex in the rehearsal image: the mission
// page's timeline and task facts, a click into a running task whose command's output lines
// appear live, artifact and patch links that download the stored bytes, and a task whose
// command prints HTML shown as text, under a strict Content-Security-Policy.
import { mkdirSync } from "node:fs";
import path from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { type Browser, type Page } from "playwright-core";
import { beforeAll, describe, expect, it } from "vitest";
import { Broker } from "../../../src/broker.js";
import type { MissionRecord } from "../../../src/state/store.js";
import { makeWorkspace } from "../support/env.js";
import { statusFixture } from "../support/status-fixture.js";

const RUN = `taskview-${process.pid}`;
const TOKEN = `task-view-token-${process.pid}-0123456789`;
const SHOTS = path.resolve("test-results");
const auth = { Authorization: `Bearer ${TOKEN}` };
const EVIL = "<script>window.pwned=1</script><img src=x onerror=window.pwned=2>";
let broker: Broker;
let base: string;
let client: Client;
let browser: Browser;

const fx = statusFixture({ run: RUN, token: TOKEN, capacity: 3, clientName: "task-view-test" });
beforeAll(() => void ({ broker, base, client, browser } = fx));

const record = (missionId: string): MissionRecord => broker.store.readMission(missionId);

/** Console messages of a page that report a refused script or style (the pages' own must all pass). */
function cspViolations(page: Page): string[] {
  const seen: string[] = [];
  page.on("console", (m) => {
    if (/Content Security Policy/i.test(m.text())) seen.push(m.text());
  });
  return seen;
}

/** Reloads the page until `selector` is there (the mission page is rendered once per load). */
async function reloadUntil(page: Page, selector: string): Promise<void> {
  for (let i = 0; i < 240; i++) {
    if ((await page.locator(selector).count()) > 0) return;
    await new Promise((r) => setTimeout(r, 500));
    await page.reload();
  }
  throw new Error(`never saw ${selector}`);
}

describe("status page: mission and task views", () => {
  let missionId = "";

  it("the mission page's task view shows a running task's events live; the mission page has durations, tokens, final messages, artifacts, a patch and a timeline", async () => {
    const ws = makeWorkspace();
    const r = await client.callTool({
      name: "batch",
      arguments: {
        workspace: ws,
        wait: false,
        mission: {
          name: "task-view",
          tasks: [
            { id: "slow", prompt: "#fake run for i in 1 2 3 4 5 6 7 8; do echo line-$i; sleep 1; done" },
            { id: "writer", prompt: "#fake write out/report.txt all good\n#fake write changes.patch --- a/x +++ b/x", sandbox: "workspace-write", artifacts: ["out/report.txt", "changes.patch"] },
            { id: "evil", prompt: `#fake run echo '${EVIL}'` },
          ],
        },
      },
    });
    expect(r.isError).toBeFalsy();
    missionId = (r.structuredContent as { missionId: string }).missionId;

    const context = await browser.newContext({ httpCredentials: { username: "me", password: TOKEN }, viewport: { width: 1200, height: 900 } });
    const page = await context.newPage();
    const refused = cspViolations(page);
    // From the main page, the mission's name links to its page.
    await page.goto(`${base}/`);
    await page.locator(`section[data-mission="${missionId}"] a.mission-link`).click();
    await page.waitForURL(`${base}/status/missions/${missionId}`);
    await reloadUntil(page, 'tr[data-task="slow"] .status.running');
    mkdirSync(SHOTS, { recursive: true });
    await page.screenshot({ path: path.join(SHOTS, "status-mission-running.png"), fullPage: true });

    // A click on the running task opens its view, whose event list fills while the command runs.
    await page.locator('tr[data-task="slow"] a.task-link').click();
    await page.waitForURL(`${base}/status/missions/${missionId}/tasks/slow`);
    const output = page.locator("#events li.output pre");
    await expect.poll(() => page.locator("#live-state").textContent(), { timeout: 60_000 }).toBe("live");
    await expect.poll(async () => (await output.allTextContents()).join(""), { timeout: 90_000 }).toContain("line-2");
    // Seen part-way: some lines there, the last not yet: they arrived while the page stayed open.
    expect((await output.allTextContents()).join("")).not.toContain("line-8");
    expect(await page.locator("#events li.command pre").first().textContent()).toContain("echo line-$i");
    expect(await page.locator("h1 .status").textContent()).toBe("running");
    await page.screenshot({ path: path.join(SHOTS, "status-task-live.png"), fullPage: true });
    await expect.poll(async () => (await output.allTextContents()).join(""), { timeout: 90_000 }).toContain("line-8");
    await expect.poll(() => page.locator("#live-state").textContent(), { timeout: 90_000 }).toBe("ended: succeeded (reload for the final record)");
    const lines = (await output.allTextContents()).join("").match(/line-\d/g);
    expect(lines).toEqual(["line-1", "line-2", "line-3", "line-4", "line-5", "line-6", "line-7", "line-8"]); // each once, in order
    expect(await page.locator("#events li.message").count()).toBeGreaterThan(0);
    expect(await page.locator("#events li.end pre").textContent()).toBe("finished: succeeded");

    // Reloaded: the finished task's facts, and its events replayed from the log.
    await page.reload();
    const slow = record(missionId).tasks.find((t) => t.id === "slow")!;
    expect(await page.locator("h1 .status").textContent()).toBe("succeeded");
    expect(await page.locator("dd .container").textContent()).toBe(slow.container);
    expect(await page.locator("dd.duration").textContent()).toMatch(/^\d+(\.\d)? s$|^\d+ min \d\d s$/);
    expect(await page.locator("dd.tokens").textContent()).toBe(`${slow.usage!.inputTokens} in (${slow.usage!.cachedInputTokens} cached) / ${slow.usage!.outputTokens} out`);
    expect(await page.locator(".final-message").textContent()).toBe(slow.finalMessage);
    expect(slow.finalMessage).toContain("line-8");
    await expect.poll(() => page.locator("#live-state").textContent()).toBe("ended: succeeded (reload for the final record)");
    expect((await output.allTextContents()).join("").match(/line-\d/g)).toHaveLength(8);

    // The mission page once the mission has ended.
    await page.goto(`${base}/status/missions/${missionId}`);
    await reloadUntil(page, "h1 .status.succeeded");
    const rec = record(missionId);
    for (const t of rec.tasks) {
      const row = page.locator(`tr[data-task="${t.id}"]`);
      expect(await row.locator(".status").textContent()).toBe("succeeded");
      expect(await row.locator(".container").textContent()).toBe(t.container);
      expect(await row.locator(".duration").textContent()).toMatch(/^\d+(\.\d)? s$|^\d+ min \d\d s$|^\d+ ms$/);
      expect(await row.locator(".tokens").textContent()).toBe(`${t.usage!.inputTokens} / ${t.usage!.cachedInputTokens} / ${t.usage!.outputTokens}`);
      expect(await row.locator(".final-message").textContent()).toBe(t.finalMessage);
      // The timeline: a bar per task, labelled with the container it ran on.
      const bar = page.locator(`#timeline g.row[data-task="${t.id}"]`);
      expect(await bar.locator("rect.bar.succeeded").count()).toBe(1);
      expect(await bar.locator("text.container-label").textContent()).toBe(t.container);
    }
    const report = page.locator('tr[data-task="writer"] a.artifact', { hasText: "out/report.txt" });
    const got = await fetch(new URL((await report.getAttribute("href"))!, base), { headers: auth });
    expect(got.status).toBe(200);
    expect(got.headers.get("content-type")).toBe("text/plain; charset=utf-8");
    expect(got.headers.get("content-security-policy")).toMatch(/^sandbox/);
    expect(await got.text()).toBe("all good");
    const patch = await fetch(new URL((await page.locator('tr[data-task="writer"] a.patch').getAttribute("href"))!, base), { headers: auth });
    expect(patch.headers.get("content-type")).toBe("text/x-diff; charset=utf-8");
    expect(await patch.text()).toBe("--- a/x +++ b/x");
    expect(await page.locator('tr[data-task="slow"] a.patch').count()).toBe(0);
    await page.screenshot({ path: path.join(SHOTS, "status-mission-done.png"), fullPage: true });
    // The main page, the mission's and the task's ran their own style and script under the policy.
    expect(refused).toEqual([]);
    await context.close();
  });

  it("a command printing HTML shows as text on the task view and the mission page; nothing of it runs", async () => {
    const context = await browser.newContext({ httpCredentials: { username: "me", password: TOKEN } });
    const page = await context.newPage();
    const res = await page.goto(`${base}/status/missions/${missionId}/tasks/evil`);
    const csp = res!.headers()["content-security-policy"]!;
    expect(csp).toMatch(/script-src 'nonce-[A-Za-z0-9+/=]{24}'/);
    expect(csp).not.toContain("unsafe-inline");
    await expect.poll(() => page.locator("#live-state").textContent(), { timeout: 30_000 }).toMatch(/^ended/);
    expect((await page.locator("#events li.output pre").allTextContents()).join("")).toContain(EVIL);
    expect(await page.locator("#events li.command pre").first().textContent()).toContain(EVIL);
    expect(await page.locator(".final-message").textContent()).toContain(EVIL);
    expect(await page.locator("img").count()).toBe(0);
    expect(await page.evaluate("typeof window.pwned")).toBe("undefined");
    await page.screenshot({ path: path.join(SHOTS, "status-task-escaped.png"), fullPage: true });
    await page.goto(`${base}/status/missions/${missionId}`);
    expect(await page.locator('tr[data-task="evil"] .final-message').textContent()).toContain(EVIL);
    expect(await page.locator("img").count()).toBe(0);
    expect(await page.evaluate("typeof window.pwned")).toBe("undefined");
    await page.screenshot({ path: path.join(SHOTS, "status-mission-escaped.png"), fullPage: true });
    await context.close();
    const html = await (await fetch(`${base}/status/missions/${missionId}/tasks/evil`, { headers: auth })).text();
    expect(html).toContain("&lt;script&gt;window.pwned=1&lt;/script&gt;");
    expect(html.match(/<script/g)).toHaveLength(1); // the page's own
  });

  it("a task's event stream, opened as it starts, lasts through its check to the task's end", async () => {
    const r = await client.callTool({
      name: "batch",
      arguments: { workspace: makeWorkspace(), wait: false, mission: { name: "checked", tasks: [{ id: "checked", prompt: "#fake write out/x.txt ok", sandbox: "workspace-write", check: "sleep 3; echo check-done" }] } },
    });
    const id = (r.structuredContent as { missionId: string }).missionId;
    // While the check runs, the task's status reads `succeeded` (its turn did): not its end.
    const text = await (await fetch(`${base}/status/missions/${id}/tasks/checked/events`, { headers: auth })).text();
    const events = [...text.matchAll(/^event: events\ndata: (.*)$/gm)].flatMap((m) => JSON.parse(m[1]!) as { kind: string; text: string }[]);
    expect(events.filter((e) => e.kind === "check").map((e) => e.text)).toEqual(["check (attempt 1): $ sleep 3; echo check-done", "check exited 0\ncheck-done"]);
    expect(events.at(-1)).toMatchObject({ kind: "end", text: "finished: succeeded" });
    expect(text).toMatch(/^event: end\ndata: \{"status":"succeeded"\}\nid: \d+$/m);
  });

  it("the event stream resumes from Last-Event-ID; unknown tasks are 404; every new path needs the token", async () => {
    const url = `${base}/status/missions/${missionId}/tasks/slow/events`;
    const whole = await (await fetch(url, { headers: auth })).text();
    expect(whole).toMatch(/^event: end$/m);
    const ids = [...whole.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]));
    expect(ids.length).toBeGreaterThan(1);
    const rest = await (await fetch(url, { headers: { ...auth, "Last-Event-ID": String(ids.at(-1)) } })).text();
    expect(rest).not.toMatch(/^event: events$/m); // nothing after the last id but the end
    expect(rest).toMatch(/^event: end$/m);
    for (const p of [`/status/missions/${missionId}/tasks/nope`, `/status/missions/${missionId}/tasks/nope/events`, "/status/missions/m-00000000000000-000000", "/status/missions/..%2F..%2Fetc"]) {
      const r = await fetch(`${base}${p}`, { headers: auth });
      expect(r.status, p).toBe(404);
      await r.body?.cancel();
    }
    for (const p of [`/status/missions/${missionId}`, `/status/missions/${missionId}/tasks/slow`, `/status/missions/${missionId}/tasks/slow/events`]) {
      const r = await fetch(`${base}${p}`);
      expect(r.status, p).toBe(401);
      expect(r.headers.get("www-authenticate"), p).toMatch(/^Basic /);
      await r.body?.cancel();
    }
  });
});
