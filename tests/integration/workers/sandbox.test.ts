// The container is the sandbox: a read-only task cannot write into the workspace, a
// workspace-write task can, and neither can write outside the workspace, /tmp and its
// CODEX_HOME. The auth file is in the container's own CODEX_HOME (0600 in a 0700 directory), no
// other container's CODEX_HOME is mounted, and the model sees the seeded key.
import { existsSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { tokenFingerprint } from "../../../src/rehearsal/plan.js";
import { ALL_DRIVERS, makeWorkspace, TEST_API_KEY } from "../support/env.js";
import { docker, poolFixture } from "../support/pool.js";

const RUN = `sbx-${process.pid}`;
const pools = poolFixture(RUN);

/** One shell probe per place: prints "<place>:ok" or "<place>:denied". */
const probe = (places: string[]): string =>
  `#fake run ${places.map((p) => `(touch ${p} 2>/dev/null && echo ${p}:ok || echo ${p}:denied)`).join("; ")}`;

describe.each(ALL_DRIVERS)("the container is the sandbox (%s)", (protocol, image) => {
  it("read-only: no write anywhere but /tmp and CODEX_HOME", async () => {
    const pool = await pools.start({ workers: [{ name: "ro", protocol, image, sandbox: "read-only", max_containers: 1 }] });
    const ws = makeWorkspace();
    const r = await pool.runTurn({ workspace: ws, prompt: `${probe(["/workspace/x", "/x", "/etc/x", "/home/codex/x", "/tmp/x", "/codex-home/x"])}\n#fake write blocked.txt no` });
    const out = r.outcome.finalMessage ?? "";
    expect(out).toContain("/workspace/x:denied");
    expect(out).toContain("/x:denied");
    expect(out).toContain("/etc/x:denied");
    expect(out).toContain("/home/codex/x:denied");
    expect(out).toContain("/tmp/x:ok");
    expect(out).toContain("/codex-home/x:ok");
    expect(out).toMatch(/write blocked\.txt failed \(exit 1\)/);
    expect(existsSync(path.join(ws, "blocked.txt"))).toBe(false);
  });

  it("workspace-write: the workspace too, and still nothing else", async () => {
    const pool = await pools.start({ workers: [{ name: "rw", protocol, image, sandbox: "workspace-write", max_containers: 1 }] });
    const ws = makeWorkspace();
    const r = await pool.runTurn({ workspace: ws, prompt: `${probe(["/workspace/x", "/x", "/etc/x", "/usr/local/bin/x", "/tmp/x", "/codex-home/x"])}\n#fake write allowed.txt yes` });
    const out = r.outcome.finalMessage ?? "";
    expect(out).toContain("/workspace/x:ok");
    expect(out).toContain("/x:denied");
    expect(out).toContain("/etc/x:denied");
    expect(out).toContain("/usr/local/bin/x:denied");
    expect(out).toContain("/tmp/x:ok");
    expect(out).toContain("/codex-home/x:ok");
    expect(existsSync(path.join(ws, "allowed.txt"))).toBe(true);
  });

  it("seeds auth.json 0600 in a 0700 CODEX_HOME of its own, hardened, and the model sees the key", async () => {
    const pool = await pools.start({ workers: [{ name: "a", protocol, image, capacity: 1, max_containers: 2 }] });
    const ws = makeWorkspace();
    const [one, two] = await Promise.all([
      pool.runTurn({ workspace: ws, prompt: "#fake run stat -c '%a %U' \"$CODEX_HOME\" \"$CODEX_HOME/auth.json\"; id -u\n#fake auth\n#fake sleep 300" }),
      pool.runTurn({ workspace: ws, prompt: "#fake auth\n#fake sleep 300" }),
    ]);
    expect(one.outcome.finalMessage).toMatch(/700 \S+\n600 \S+\n\d+/);
    expect(one.outcome.finalMessage).not.toMatch(/\n0\n/); // not root
    for (const r of [one, two]) expect(r.outcome.finalMessage).toContain(`auth: ${tokenFingerprint(TEST_API_KEY)}`);

    const containers = await docker.listByLabels({ "io.codex-mcp-wrapper.instance": pool.config.label });
    expect(containers).toHaveLength(2);
    const homes = new Set<string>();
    for (const c of containers) {
      const s = (await docker.inspect(c.id))!;
      expect(s.capDrop).toEqual(["ALL"]);
      expect(s.securityOpt).toContain("no-new-privileges");
      expect(s.user).not.toMatch(/^0?(:|$)/);
      expect(s.mounts.map((m) => m.destination).sort()).toEqual(["/codex-home", "/workspace"]);
      expect(s.mounts.some((m) => m.source.includes("docker.sock"))).toBe(false);
      const home = s.mounts.find((m) => m.destination === "/codex-home")!.source;
      expect(home.startsWith(pool.config.stateDir)).toBe(true);
      homes.add(home);
    }
    expect(homes.size).toBe(2); // each container its own CODEX_HOME
  });
});
