// What a hostile prompt can and cannot do from inside a worker the broker started (real Codex in
// the rehearsal image, scripted with #fake directives), seen from inside the container and from
// the engine: no root, no capabilities, no privilege gain, no Docker socket, only its own
// CODEX_HOME and the workspace, in every sandbox mode; a task's Codex config cannot widen the
// container; and a prompt that reads its own credential cannot carry it out of the worker
// through the broker (tool results, records, event logs, artifacts).
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync, realpathSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LABELS } from "../../../src/worker/container.js";
import { makeWorkspace } from "../support/env.js";
import { docker } from "../support/pool.js";
import { callTool, startChildBroker, type ChildBroker } from "../support/child-broker.js";

const API_KEY = `sk-exfil-${process.pid}-DO-NOT-LEAK`;
let b: ChildBroker;
beforeAll(async () => {
  b = await startChildBroker({ name: "sec-worker", auth: { OPENAI_API_KEY: API_KEY }, token: `broker-token-w-${process.pid}`, maxContainers: 3 });
});
afterAll(async () => {
  await b?.stop();
});

interface TaskOut { id: string; status: string; finalMessage: string | null; error: string | null }
const tasksOf = (r: { structured: unknown }): TaskOut[] => (r.structured as { tasks: TaskOut[] }).tasks;

interface RawInspect {
  Config: { User: string; Labels: Record<string, string> };
  HostConfig: { Privileged: boolean; CapAdd: string[] | null; CapDrop: string[] | null; SecurityOpt: string[] | null; Devices: unknown[] | null; PidMode: string; IpcMode: string; NetworkMode: string; ReadonlyRootfs: boolean; UsernsMode: string };
  Mounts: { Type: string; Source: string; Destination: string; RW: boolean }[];
}

describe("a worker container, from inside and from the engine", () => {
  const SANDBOXES = ["read-only", "workspace-write", "danger-full-access"] as const;
  const probe = [
    "id -u",
    "grep -E '^(CapEff|CapPrm|CapBnd|NoNewPrivs):' /proc/self/status",
    "for s in /var/run/docker.sock /run/docker.sock; do test -e $s && echo socket:$s || echo nosocket:$s; done",
    "awk '$5 ~ /^\\/(workspace|codex-home)/ {print \"mount:\" $5}' /proc/self/mountinfo",
    "ls /codex-home",
  ].join("; ");

  it.each(SANDBOXES)("%s: non-root, no capabilities, no-new-privileges, no Docker socket, only its own CODEX_HOME and the workspace", async (sandbox) => {
    const ws = makeWorkspace();
    const r = await callTool(b, "batch", { workspace: ws, mission: { name: `inspect-${sandbox}`, tasks: [{ id: "probe", prompt: `#fake run ${probe}`, sandbox }] } });
    const [t] = tasksOf(r);
    expect(t!.status, r.text).toBe("succeeded");
    const out = t!.finalMessage ?? "";
    // From inside: what the process really has, not only what was asked for.
    expect(out).toMatch(/:\n(\d+)\n/);
    expect(Number(/:\n(\d+)\n/.exec(out)![1])).not.toBe(0);
    for (const cap of ["CapEff", "CapPrm", "CapBnd"]) expect(out).toMatch(new RegExp(`${cap}:\\s+0{16}\\b`));
    expect(out).toMatch(/NoNewPrivs:\s+1\b/);
    expect(out).toContain("nosocket:/var/run/docker.sock");
    expect(out).toContain("nosocket:/run/docker.sock");
    expect(out.match(/^mount:.*$/gm)!.sort()).toEqual(["mount:/codex-home", "mount:/workspace"]);

    // From the engine: the container the broker made for this sandbox mode.
    const mine = (await docker.listByLabels({ [LABELS.instance]: b.label })).filter((c) => c.labels[LABELS.sandbox] === sandbox && c.labels[LABELS.workspace] === realpathSync(ws));
    expect(mine).toHaveLength(1);
    const [i] = JSON.parse(execFileSync("docker", ["inspect", mine[0]!.id], { encoding: "utf8" })) as RawInspect[];
    const h = i!.HostConfig;
    expect(i!.Config.User).toMatch(/^[1-9]\d*:\d+$/);
    expect(h.Privileged).toBe(false);
    expect(h.CapDrop).toEqual(["ALL"]);
    expect(h.CapAdd ?? []).toEqual([]);
    expect(h.SecurityOpt).toContain("no-new-privileges");
    expect(h.Devices ?? []).toEqual([]);
    expect([h.PidMode, h.IpcMode === "host" ? "host" : "", h.UsernsMode]).toEqual(["", "", ""]);
    expect(h.NetworkMode).toBe("none");
    expect(h.ReadonlyRootfs).toBe(sandbox !== "danger-full-access");
    const mounts = i!.Mounts.map((m) => ({ type: m.Type, dest: m.Destination, rw: m.RW, src: m.Source })).sort((a, z) => a.dest.localeCompare(z.dest));
    expect(mounts.map((m) => [m.type, m.dest, m.rw])).toEqual([["bind", "/codex-home", true], ["bind", "/workspace", sandbox !== "read-only"]]);
    expect(mounts[1]!.src).toBe(realpathSync(ws));
    // Its CODEX_HOME is its own directory in the broker's state, holding only what Codex needs.
    expect(mounts[0]!.src.startsWith(path.join(b.dir, "state") + path.sep)).toBe(true);
    expect(out).toMatch(/auth\.json/);
    expect(mounts.some((m) => m.src.includes("docker.sock") || m.src === "/" || m.src === path.join(b.dir, "auth.json"))).toBe(false);
  });

  it("each container's CODEX_HOME is a different directory", async () => {
    const homes = new Set<string>();
    const cs = await docker.listByLabels({ [LABELS.instance]: b.label });
    expect(cs.length).toBeGreaterThanOrEqual(3);
    for (const c of cs) homes.add((await docker.inspect(c.id))!.mounts.find((m) => m.destination === "/codex-home")!.source);
    expect(homes.size).toBe(cs.length);
  });
});

describe("a task cannot widen its container", () => {
  it("a read-only task whose Codex config asks for danger-full-access still cannot write the workspace", async () => {
    const ws = makeWorkspace();
    const r = await callTool(b, "batch", {
      workspace: ws,
      mission: { name: "widen", tasks: [{ id: "w", prompt: "#fake write pwned.txt yes\n#fake run touch /workspace/pwned2.txt && echo wrote || echo denied", sandbox: "read-only", config: { sandbox_mode: "danger-full-access", "sandbox_workspace_write.writable_roots": ["/"] }, env: { CODEX_HOME: "/workspace" } }] },
    });
    const [t] = tasksOf(r);
    expect(t!.status, r.text).toBe("succeeded");
    expect(t!.finalMessage).toMatch(/write pwned\.txt failed/);
    expect(t!.finalMessage).toContain("denied");
    expect(readdirSync(ws)).toEqual([]);
  });
});

describe("a prompt that reads its own credential", () => {
  // The container holds no credential: its auth.json is a sentinel (its own relay token) that the
  // broker's model relay swaps for the real key. The scrub of known secrets on the way out stays
  // as a second layer: a key that reaches a worker anyway (here a task given it in its env) is
  // replaced by [redacted] in what leaves the worker (events, final messages, errors, artifacts).
  it("`cat $CODEX_HOME/auth.json` shows the sentinel; a key handed to a task is in no tool result, record, event log or artifact", async () => {
    const ws = makeWorkspace();
    const r = await callTool(b, "batch", {
      workspace: ws,
      mission: { name: "exfil", tasks: [
        { id: "ro", prompt: "#fake run cat $CODEX_HOME/auth.json", sandbox: "read-only" },
        { id: "rw", prompt: '#fake run printf \'{"OPENAI_API_KEY": "%s"}\' "$LEAKED" > stolen.json && cat stolen.json', sandbox: "workspace-write", artifacts: ["stolen.json"], env: { LEAKED: API_KEY } },
      ] },
    });
    const ts = tasksOf(r) as (TaskOut & { artifacts: { path: string; redacted?: number }[] })[];
    for (const t of ts) expect(t.status, r.text).toBe("succeeded");
    expect(ts[0]!.finalMessage).toMatch(/"OPENAI_API_KEY":\s*"cmw-relay-[\w-]+"/); // the sentinel, not the key
    expect(ts[1]!.finalMessage).toMatch(/"OPENAI_API_KEY":\s*"\[redacted\]"/); // the file was read, the key replaced
    expect(readFileSync(path.join(ws, "stolen.json"), "utf8")).toContain(API_KEY); // the copy in the workspace is real
    expect(ts[1]!.artifacts).toEqual([expect.objectContaining({ path: "stolen.json", redacted: 1 })]);
    const dir = path.join(b.dir, "state/missions", (r.structured as { missionId: string }).missionId);
    const files = execFileSync("find", [dir, "-type", "f"], { encoding: "utf8" }).split("\n").filter(Boolean);
    expect(files.some((f) => f.endsWith("events.jsonl"))).toBe(true);
    expect(files.some((f) => f.endsWith("stolen.json"))).toBe(true);
    for (const f of files.filter((x) => !x.endsWith(".gz") && !x.endsWith(".zip"))) expect(readFileSync(f, "utf8"), f).not.toContain(API_KEY);
    expect(execFileSync("tar", ["-xzOf", path.join(dir, "bundle.tar.gz")], { encoding: "utf8" })).not.toContain(API_KEY);
    expect(JSON.stringify(r)).not.toContain(API_KEY);
    const status = await callTool(b, "status", { missionId: (r.structured as { missionId: string }).missionId });
    expect(JSON.stringify(status)).not.toContain(API_KEY);
  });

  it("the broker's own log never has it, even then", () => {
    expect(b.log()).toContain("worker container started");
    expect(b.log()).not.toContain(API_KEY);
  });
});
