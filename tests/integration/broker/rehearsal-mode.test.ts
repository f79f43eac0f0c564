// Rehearsal mode, as a newcomer meets it (issue 21, item 5): a broker with no Codex login still
// starts, serves a whole mission from the rehearsal model on the rehearsal image, and says so in
// its banner, /healthz, the status page and every result; --rehearsal forces it with a login;
// with a login and no flag nothing says "rehearsal mode". The banner's curl call is run as printed.
import { execFile, spawn } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { chromium } from "playwright-core";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { REHEARSAL_KEY } from "../../../src/config/rehearsal.js";
import { tokenFingerprint } from "../../../src/rehearsal/plan.js";
import { LABELS } from "../../../src/worker/container.js";
import { BIN, callTool, startChildBroker, type ChildBroker } from "../support/child-broker.js";
import { INSTANCE_PREFIX, makeWorkspace, PREFIX, REHEARSAL_IMAGE, TEST_API_KEY } from "../support/env.js";
import { docker } from "../support/pool.js";

const run = promisify(execFile);
const NOTICE = /REHEARSAL MODE/;

let broker: ChildBroker | undefined;
afterEach(async () => {
  await broker?.stop();
  broker = undefined;
});

interface Structured {
  rehearsal?: string;
  status: string;
  tasks: { status: string; finalMessage: string | null; notes?: string[] }[];
}

const mission = (ws: string, prompt: string) => ({ workspace: ws, mission: { name: "newcomer", tasks: [{ id: "t", sandbox: "workspace-write", prompt }] } });

async function json(b: ChildBroker, p: string): Promise<Record<string, unknown>> {
  return (await (await fetch(`${b.base}${p}`)).json()) as Record<string, unknown>;
}

/** The status page's rehearsal banner as headless Chromium shows it: its text, or null when hidden. */
async function pageBanner(b: ChildBroker, shot?: string): Promise<string | null> {
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium", args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"] });
  try {
    const page = await browser.newPage();
    await page.goto(`${b.base}/`);
    await page.locator("#label").filter({ hasText: b.label }).waitFor({ timeout: 15_000 }); // rendered once
    if (shot) {
      mkdirSync(path.resolve("test-results"), { recursive: true });
      await page.screenshot({ path: path.resolve("test-results", shot), fullPage: true });
    }
    const banner = page.locator("#rehearsal");
    return (await banner.isVisible()) ? await banner.textContent() : null;
  } finally {
    await browser.close();
  }
}

/** The example call the banner printed: the lines from `mkdir` through `cat`. */
function printedCall(log: string): string {
  const m = /^mkdir -p -m 777 .*\n[\s\S]*?^cat .*$/m.exec(log);
  expect(m, `the banner's example call in:\n${log}`).not.toBeNull();
  return m![0];
}

describe("rehearsal mode", () => {
  it("with no auth file, the broker serves a mission on the rehearsal model and says so in its banner, /healthz, the status page and the result", async () => {
    broker = await startChildBroker({ name: "newcomer", auth: null, defaultImage: true, logLevel: "info" });
    const b = broker;
    expect(b.log()).toMatch(/={20,}\nREHEARSAL MODE \(no Codex login: no auth file at .*auth\.json\).*the answers are scripted.*no OpenAI call is made/);
    expect(b.log()).toContain("Try a whole mission (one #fake write task) with curl:");

    const health = await json(b, "/healthz");
    expect(health.rehearsal).toMatch(/^REHEARSAL MODE .*no OpenAI call is made/);
    const status = (await json(b, "/status.json")) as { instance: { rehearsal?: string } };
    expect(status.instance.rehearsal).toBe(health.rehearsal);

    // The printed call, run by the shell as a newcomer would paste it (its workspace moved into
    // this run's temp root, so that another run on the machine is not touched).
    const ws = path.join(mkdtempSync(path.join(os.tmpdir(), "cmw-hello-")), "hello");
    const call = printedCall(b.log()).replaceAll("/tmp/cmw-hello", ws);
    const { stdout } = await run("bash", ["-c", call], { timeout: 150_000 });
    expect(stdout).toMatch(/^event: message\ndata: \{"result":\{"structuredContent":\{"missionId":"m-[^"]+","status":"succeeded"/m);
    expect(stdout).toContain(`"text":"REHEARSAL MODE`);
    expect(stdout.trimEnd().split("\n").at(-1)).toBe("hello from the rehearsal model");

    // Through an MCP client: the notice heads the text, and is in structuredContent and each task's notes.
    // The credential the model received is the sentinel: no real one exists.
    const ws2 = makeWorkspace();
    const r = await callTool(b, "batch", mission(ws2, "#fake write out.txt scripted\n#fake auth"));
    expect(r.isError).toBe(false);
    expect(r.text).toMatch(/^REHEARSAL MODE \(no Codex login/);
    const s = r.structured as Structured;
    expect(s.status).toBe("succeeded");
    expect(s.rehearsal).toBe(health.rehearsal);
    expect(s.tasks[0]!.notes).toEqual([health.rehearsal]);
    expect(s.tasks[0]!.finalMessage).toContain(`auth: ${tokenFingerprint(REHEARSAL_KEY)}`);
    expect(readFileSync(path.join(ws2, "out.txt"), "utf8")).toBe("scripted");

    // The workers run the rehearsal image (the default profile names none).
    const containers = await docker.listByLabels({ [LABELS.instance]: b.label });
    expect(containers.length).toBeGreaterThan(0);
    const { stdout: images } = await run("docker", ["inspect", "-f", "{{.Config.Image}}", ...containers.map((c) => c.id)]);
    expect(new Set(images.trim().split("\n"))).toEqual(new Set([`${PREFIX}/rehearsal:dev`]));

    // Every other tool's result says so too.
    const st = await callTool(b, "status", {});
    expect(st.text).toMatch(NOTICE);
    expect((st.structured as { rehearsal?: string }).rehearsal).toBe(health.rehearsal);

    // The status page, in a browser: the notice as a banner above everything.
    expect(await pageBanner(b, "status-page-rehearsal.png")).toBe(health.rehearsal);
  });

  it("--rehearsal forces it with a login present: the login is not used", async () => {
    broker = await startChildBroker({ name: "forced", auth: { OPENAI_API_KEY: TEST_API_KEY }, args: ["--rehearsal"], logLevel: "info" });
    const b = broker;
    expect(b.log()).toMatch(/REHEARSAL MODE \(forced by --rehearsal\)/);
    expect((await json(b, "/healthz")).rehearsal).toMatch(/^REHEARSAL MODE \(forced by --rehearsal\)/);
    const r = await callTool(b, "batch", mission(makeWorkspace(), "#fake auth"));
    expect(r.text).toMatch(/^REHEARSAL MODE \(forced by --rehearsal\)/);
    const s = r.structured as Structured;
    expect(s.tasks[0]!.status).toBe("succeeded");
    expect(s.tasks[0]!.finalMessage).toContain(`auth: ${tokenFingerprint(REHEARSAL_KEY)}`);
    expect(s.tasks[0]!.finalMessage).not.toContain(tokenFingerprint(TEST_API_KEY));
  });

  it("with a login and no flag, no rehearsal notice anywhere", async () => {
    broker = await startChildBroker({ name: "login", auth: { OPENAI_API_KEY: TEST_API_KEY }, logLevel: "info" });
    const b = broker;
    const r = await callTool(b, "batch", mission(makeWorkspace(), "#fake write out.txt real\n#fake auth"));
    const s = r.structured as Structured;
    expect(s.tasks[0]!.status).toBe("succeeded");
    // The relay put the login's key in place of the sentinel, as before.
    expect(s.tasks[0]!.finalMessage).toContain(`auth: ${tokenFingerprint(TEST_API_KEY)}`);
    expect(s.rehearsal).toBeUndefined();
    expect(s.tasks[0]!.notes).toBeUndefined();
    expect(r.text).not.toMatch(NOTICE);
    const health = await json(b, "/healthz");
    expect(health).not.toHaveProperty("rehearsal");
    expect(((await json(b, "/status.json")) as { instance: Record<string, unknown> }).instance).not.toHaveProperty("rehearsal");
    expect(b.log()).not.toMatch(NOTICE);
    expect(b.log()).not.toContain("Try a whole mission");
    expect(await pageBanner(b)).toBeNull();
  });
});

describe("run-mission --rehearsal", () => {
  const labels: string[] = [];
  afterAll(async () => {
    for (const label of labels) for (const c of await docker.listByLabels({ [LABELS.instance]: label })) await docker.remove(c.id);
  });

  it("prints the notice before and after the mission, and puts it in each task's line and the report", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "cmw-cli-rehearsal-"));
    const label = `${INSTANCE_PREFIX}-cli-rehearsal-${process.pid}`;
    labels.push(label);
    const auth = path.join(dir, "auth.json");
    writeFileSync(auth, JSON.stringify({ OPENAI_API_KEY: TEST_API_KEY }));
    chmodSync(auth, 0o600);
    const config = path.join(dir, "wrapper.toml");
    writeFileSync(config, `[broker]\nlabel = "${label}"\nstate_dir = "${dir}/state"\nauth_file = "${auth}"\nallowed_workspace_roots = ["${os.tmpdir()}"]\n\n[[workers]]\nname = "default"\nimage = "${REHEARSAL_IMAGE}"\nsandbox = "workspace-write"\ncapacity = 1\nmax_containers = 1\n`);
    const missionFile = path.join(dir, "mission.json");
    writeFileSync(missionFile, JSON.stringify({ name: "ci-rehearsal", tasks: [{ id: "t1", prompt: "#fake write out.txt scripted" }] }));
    const ws = makeWorkspace();
    const r = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [BIN, "run-mission", missionFile, "--workspace", ws, "--config", config, "--json", path.join(dir, "r.json"), "--rehearsal"], { stdio: ["ignore", "pipe", "pipe"] });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      const t = setTimeout(() => child.kill("SIGKILL"), 150_000);
      child.on("close", (code) => (clearTimeout(t), resolve({ code, stdout, stderr })));
    });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const lines = r.stdout.split("\n");
    expect(lines[0]).toMatch(/^\d\d:\d\d:\d\d REHEARSAL MODE \(forced by --rehearsal\): .*the answers are scripted.*no OpenAI call is made/);
    expect(r.stdout).toMatch(/task t1: succeeded \[REHEARSAL MODE \(forced by --rehearsal\)/);
    expect(lines.filter(Boolean).at(-1)).toMatch(/^REHEARSAL MODE \(forced by --rehearsal\)/);
    const report = JSON.parse(readFileSync(path.join(dir, "r.json"), "utf8")) as { tasks: { notes?: string[] }[] };
    expect(report.tasks[0]!.notes).toEqual([expect.stringMatching(/^REHEARSAL MODE \(forced by --rehearsal\)/)]);
    expect(readFileSync(path.join(ws, "out.txt"), "utf8")).toBe("scripted");
  });
});
