// `run-mission` as CI runs it (the built CLI in a child process, the rehearsal image with the real
// Codex inside): exit 0 for a passing mission with its reports and artifacts, non-zero for a
// failing task, 2 for invalid input with nothing started, and no container left after SIGINT.
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { LABELS } from "../../../src/worker/container.js";
import { INSTANCE_PREFIX, makeWorkspace, REHEARSAL_IMAGE, TEST_API_KEY } from "../support/env.js";
import { docker } from "../support/pool.js";

const BIN = fileURLToPath(new URL("../../../dist/cli/bin.js", import.meta.url));
const labels: string[] = [];
afterAll(async () => {
  for (const label of labels) for (const c of await docker.listByLabels({ [LABELS.instance]: label })) await docker.remove(c.id);
});

function setup(name: string): { config: string; dir: string; label: string } {
  const dir = mkdtempSync(path.join(os.tmpdir(), "cmw-cli-"));
  const label = `${INSTANCE_PREFIX}-cli-${name}-${process.pid}`;
  labels.push(label);
  const auth = path.join(dir, "auth.json");
  writeFileSync(auth, JSON.stringify({ OPENAI_API_KEY: TEST_API_KEY }));
  chmodSync(auth, 0o600);
  const config = path.join(dir, "wrapper.toml");
  writeFileSync(config, `[broker]\nlabel = "${label}"\nstate_dir = "${dir}/state"\nauth_file = "${auth}"\nallowed_workspace_roots = ["${os.tmpdir()}"]\n\n[[workers]]\nname = "default"\nimage = "${REHEARSAL_IMAGE}"\nnetwork = "none"\nsandbox = "workspace-write"\ncapacity = 2\nmax_containers = 2\n`);
  return { config, dir, label };
}

function cli(args: string[], onStdout?: (s: string, kill: (sig: NodeJS.Signals) => void) => void): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
      onStdout?.(stdout, (sig) => child.kill(sig));
    });
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const t = setTimeout(() => child.kill("SIGKILL"), 150_000);
    child.on("close", (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}

describe("run-mission", () => {
  it("exits 0 for a passing mission, with the summary, JSON and JUnit reports and the artifacts", async () => {
    const { config, dir, label } = setup("pass");
    const ws = makeWorkspace();
    const mission = path.join(dir, "mission.json");
    writeFileSync(mission, JSON.stringify({
      name: "ci-pass",
      // A task's artifacts are the files matching its globs when it ends (tasks share the workspace).
      tasks: [1, 2, 3].map((i) => ({ id: `t${i}`, prompt: `#fake write out/t${i}.txt content ${i}`, artifacts: [`out/t${i}.*`] })),
    }));
    const r = await cli(["run-mission", mission, "--workspace", ws, "--config", config, "--json", path.join(dir, "r.json"), "--junit", path.join(dir, "r.xml"), "--zip"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/task t1: started on /);
    expect(r.stdout).toMatch(/task\s+status\s+attempt\s+time\s+artifacts\s+error/);
    expect(r.stdout).toMatch(/mission succeeded/);
    const report = JSON.parse(readFileSync(path.join(dir, "r.json"), "utf8")) as { status: string; missionId: string; bundle: string; bundleZip: string; tasks: { id: string; status: string; conversationId: string; artifacts: { path: string; sha256: string }[]; usage?: Record<string, unknown> }[] };
    expect(report.status).toBe("succeeded");
    // Usage metered at the relay: a #fake write turn is two model requests (the call, the answer),
    // each of which the rehearsal model reports as 100 input tokens.
    for (const t of report.tasks) expect(t.usage).toEqual({ inputTokens: 200, cachedInputTokens: 0, outputTokens: expect.any(Number), reasoningOutputTokens: 0, requests: 2, model: "rehearsal", profile: "default" });
    for (const t of report.tasks) {
      expect(t.status).toBe("succeeded");
      expect(t.conversationId).toMatch(/^conv_/);
      const file = `out/${t.id}.txt`;
      expect(readFileSync(path.join(ws, file), "utf8")).toBe(`content ${t.id.slice(1)}`);
      expect(t.artifacts).toEqual([{ path: file, size: 9, sha256: createHash("sha256").update(`content ${t.id.slice(1)}`).digest("hex") }]);
    }
    expect(existsSync(report.bundle)).toBe(true);
    expect(report.bundleZip).toMatch(/bundle\.zip$/);
    expect(existsSync(report.bundleZip)).toBe(true);
    const junit = readFileSync(path.join(dir, "r.xml"), "utf8");
    expect(junit).toContain('<testsuite name="ci-pass" tests="3" failures="0"');
    expect(junit.match(/<property name="input_tokens" value="200"\/>/g)).toHaveLength(3);
    expect(junit).toMatch(/<testcase classname="ci-pass" name="t1"[^>]*>\s*<properties>\s*<property name="model" value="rehearsal"\/>/);
    expect((await docker.listByLabels({ [LABELS.instance]: label })).length).toBe(0);
  });

  it("exits non-zero when a task fails, and says which", async () => {
    const { config, dir } = setup("fail");
    const mission = path.join(dir, "mission.yaml");
    writeFileSync(mission, "name: ci-fail\ntasks:\n  - id: good\n    prompt: hello\n  - id: bad\n    prompt: \"#fake fail the model refused\"\n");
    const r = await cli(["run-mission", mission, "--workspace", makeWorkspace(), "--config", config, "--junit", path.join(dir, "r.xml")]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/task bad: failed \(the model refused\)/);
    expect(r.stdout).toMatch(/mission failed/);
    // The failure's type is the task's error code: Codex itself ended the turn failed.
    expect(readFileSync(path.join(dir, "r.xml"), "utf8")).toMatch(/<testcase classname="ci-fail" name="bad"[^>]*>\s*<failure message="failed: the model refused" type="turn_failed"/);
  });

  it("lets checks decide: a task that passes its check at attempt 2/2 and one whose check fails (exit 1, the check in JUnit)", async () => {
    const { config, dir } = setup("check");
    const mission = path.join(dir, "mission.yaml");
    writeFileSync(
      mission,
      [
        "name: ci-check",
        "tasks:",
        "  - id: fixed",
        '    prompt: "#fake on-attempt 1 write f.txt wrong\\n#fake on-attempt 2 write f.txt right"',
        "    check: grep -q right f.txt",
        "    attempts: 2",
        "  - id: broken",
        '    prompt: "#fake write g.txt nope"',
        "    check: cat g.txt; exit 4",
        "",
      ].join("\n"),
    );
    const r = await cli(["run-mission", mission, "--workspace", makeWorkspace(), "--config", config, "--json", path.join(dir, "r.json"), "--junit", path.join(dir, "r.xml")]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/task fixed: check attempt 1\/2 \$ grep -q right f.txt/);
    expect(r.stdout).toMatch(/task fixed: attempt 2\/2 \(check exited 1\)/);
    expect(r.stdout).toMatch(/task fixed: succeeded at attempt 2\/2/);
    expect(r.stdout).toMatch(/task broken: failed \(check `cat g.txt; exit 4` exited with code 4; its last lines:\)/);
    expect(r.stdout).toMatch(/fixed\s+succeeded\s+2\/2/);
    const report = JSON.parse(readFileSync(path.join(dir, "r.json"), "utf8")) as { tasks: { id: string; attempts: { check: { exitCode: number } }[]; artifacts: { path: string }[] }[] };
    expect(report.tasks.find((t) => t.id === "fixed")!.attempts.map((a) => a.check.exitCode)).toEqual([1, 0]);
    expect(report.tasks.find((t) => t.id === "broken")!.artifacts.map((a) => a.path)).toEqual(["check.log"]);
    const junit = readFileSync(path.join(dir, "r.xml"), "utf8");
    expect(junit).toContain('<testsuite name="ci-check" tests="2" failures="1"');
    expect(junit).toMatch(/<testcase classname="ci-check" name="broken"[^>]*>[\s\S]*<failure message="failed: check `cat g.txt; exit 4` exited with code 4[^"]*" type="check_failed">[\s\S]*<system-out>=== attempt 1: \$ cat g.txt; exit 4\nnope\n=== exited with code 4/);
  });

  it("refuses an invalid mission with exit 2, naming the task and field, and starts nothing", async () => {
    const { config, dir, label } = setup("invalid");
    const mission = path.join(dir, "mission.json");
    writeFileSync(mission, JSON.stringify({ name: "bad", tasks: [{ id: "a", prompt: "x", artifacts: ["../up"] }, { id: "a", prompt: "y" }] }));
    const r = await cli(["run-mission", mission, "--workspace", makeWorkspace(), "--config", config]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('tasks[0] ("a").artifacts[0]: "../up" climbs out of the workspace');
    expect((await docker.listByLabels({ [LABELS.instance]: label })).length).toBe(0);
    const missing = await cli(["run-mission", path.join(dir, "nope.json"), "--workspace", makeWorkspace(), "--config", config]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/cannot read the mission file \(no such file\)/);
  });

  it("on SIGINT in the middle of a run, cancels the tasks and leaves no container behind", async () => {
    const { config, dir, label } = setup("sigint");
    const mission = path.join(dir, "mission.json");
    writeFileSync(mission, JSON.stringify({ name: "ci-long", tasks: [1, 2].map((i) => ({ id: `long${i}`, prompt: "#fake sleep 60000" })) }));
    let sent = false;
    const started = Date.now();
    const r = await cli(["run-mission", mission, "--workspace", makeWorkspace(), "--config", config], (out, kill) => {
      if (!sent && (out.match(/started on/g) ?? []).length === 2) {
        sent = true;
        setTimeout(() => kill("SIGINT"), 500);
      }
    });
    expect(sent).toBe(true);
    expect(r.code).toBe(130);
    expect(Date.now() - started).toBeLessThan(40_000);
    expect(r.stdout).toMatch(/SIGINT: cancelling the tasks/);
    expect(r.stdout).toMatch(/task long1: cancelled/);
    expect((await docker.listByLabels({ [LABELS.instance]: label })).length).toBe(0);
  });
});
