// An isolated task's copy and patch, on the host side (git, no Docker): what is copied, and what
// the patch from the baseline to a task's tree holds (text, binary, new, deleted, mode changes),
// and that it applies to the source only when it applies cleanly.
import { execFileSync } from "node:child_process";
import { chmodSync, chownSync, cpSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import * as tar from "tar";
import { describe, expect, it } from "vitest";
import { applyPatch, changesFrom, copyList, packCopy, snapshot } from "../../../src/artifacts/changes.js";

const tmp = (p: string): string => mkdtempSync(path.join(os.tmpdir(), `cmw-${p}-`));

function workspace(git: boolean): string {
  const ws = tmp("ws");
  writeFileSync(path.join(ws, "a.txt"), "one\ntwo\n");
  writeFileSync(path.join(ws, "gone.txt"), "bye\n");
  writeFileSync(path.join(ws, "run.sh"), "echo hi\n");
  writeFileSync(path.join(ws, "blob.bin"), Buffer.from([0, 1, 2, 3, 255]));
  mkdirSync(path.join(ws, "node_modules", "x"), { recursive: true });
  writeFileSync(path.join(ws, "node_modules", "x", "i.js"), "1\n");
  if (git) {
    writeFileSync(path.join(ws, ".gitignore"), "node_modules/\n*.log\n");
    writeFileSync(path.join(ws, "debug.log"), "noise\n");
    execFileSync("git", ["init", "-q", ws]);
  }
  return ws;
}

/** A task's tree as the engine returns it: a tar of the copy, entries `./…`. */
function treeOf(dir: string): Readable {
  return tar.create({ cwd: dir }, ["."]) as unknown as Readable;
}

/** The copy a task would get: packCopy's tar extracted (its entries are under `prefix`). */
async function extractCopy(ws: string, copyIgnored = false): Promise<{ dir: string; base: Awaited<ReturnType<typeof snapshot>> }> {
  const base = await snapshot(ws, copyIgnored, tmp("work"));
  const dir = tmp("copy");
  await new Promise<void>((resolve, reject) => {
    const x = tar.x({ cwd: dir, strip: 1 });
    x.on("finish", resolve).on("error", reject);
    packCopy(base, { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 }, "copy").pipe(x);
  });
  return { dir, base };
}

describe("an isolated copy", () => {
  it("of a git workspace holds its tracked and untracked files, not what .gitignore excludes (unless copy_ignored)", async () => {
    const ws = workspace(true);
    expect(await copyList(ws, false)).toEqual([".gitignore", "a.txt", "blob.bin", "gone.txt", "run.sh"]);
    expect(await copyList(ws, true)).toEqual([".gitignore", "a.txt", "blob.bin", "debug.log", "gone.txt", "node_modules/x/i.js", "run.sh"]);
  });

  it("of another directory holds all but .git and node_modules (unless copy_ignored)", async () => {
    const ws = workspace(false);
    mkdirSync(path.join(ws, ".git"));
    writeFileSync(path.join(ws, ".git", "HEAD"), "x\n");
    expect(await copyList(ws, false)).toEqual(["a.txt", "blob.bin", "gone.txt", "run.sh"]);
    expect(await copyList(ws, true)).toEqual(["a.txt", "blob.bin", "gone.txt", "node_modules/x/i.js", "run.sh"]);
  });

  it("comes back as a git patch: edits, binary files, new and deleted files and modes; ignored bulk the task made is no change", async () => {
    const ws = workspace(true);
    const { dir, base } = await extractCopy(ws);
    expect(readFileSync(path.join(dir, "a.txt"), "utf8")).toBe("one\ntwo\n");
    writeFileSync(path.join(dir, "a.txt"), "one\nTWO\n");
    writeFileSync(path.join(dir, "blob.bin"), Buffer.from([0, 9, 9, 255]));
    rmSync(path.join(dir, "gone.txt"));
    chmodSync(path.join(dir, "run.sh"), 0o755);
    mkdirSync(path.join(dir, "new"));
    writeFileSync(path.join(dir, "new", "file.txt"), "fresh\n");
    mkdirSync(path.join(dir, "node_modules", "y"), { recursive: true });
    writeFileSync(path.join(dir, "node_modules", "y", "i.js"), "made by npm install\n");
    const changes = await changesFrom(base, treeOf(dir));
    expect(changes.files).toEqual([
      { status: "modified", path: "a.txt" },
      { status: "modified", path: "blob.bin" },
      { status: "deleted", path: "gone.txt" },
      { status: "added", path: "new/file.txt" },
      { status: "modified", path: "run.sh" },
    ]);
    const patch = changes.patch.toString("utf8");
    expect(patch).toContain("-two\n+TWO\n");
    expect(patch).toMatch(/diff --git a\/blob.bin b\/blob.bin\n[\s\S]*GIT binary patch/);
    expect(patch).toMatch(/diff --git a\/gone.txt b\/gone.txt\ndeleted file mode 100644/);
    expect(patch).toMatch(/diff --git a\/run.sh b\/run.sh\nold mode 100644\nnew mode 100755/);
    expect(patch).not.toContain("node_modules");

    // Applied to a fresh copy of the source, the patch gives the task's tree.
    const target = tmp("target");
    cpSync(ws, target, { recursive: true });
    const file = path.join(base.workDir, "changes.patch");
    writeFileSync(file, changes.patch);
    expect(await applyPatch(target, file, base.workDir)).toBeNull();
    expect(readFileSync(path.join(target, "a.txt"), "utf8")).toBe("one\nTWO\n");
    expect([...readFileSync(path.join(target, "blob.bin"))]).toEqual([0, 9, 9, 255]);
    expect(readFileSync(path.join(target, "new", "file.txt"), "utf8")).toBe("fresh\n");
    // …and a second time it does not apply: the reason is given and nothing changes.
    const why = await applyPatch(target, file, tmp("work"));
    expect(why).toMatch(/a\.txt|already exists/);
    expect(readFileSync(path.join(target, "a.txt"), "utf8")).toBe("one\nTWO\n");
  });

  it("with no change gives an empty patch (node_modules the task made in a non-git copy is no change either)", async () => {
    const { dir, base } = await extractCopy(workspace(false));
    mkdirSync(path.join(dir, "node_modules", "z"), { recursive: true });
    writeFileSync(path.join(dir, "node_modules", "z", "i.js"), "made by npm install\n");
    const changes = await changesFrom(base, treeOf(dir));
    expect(changes.patch.length).toBe(0);
    expect(changes.files).toEqual([]);
  });
  // Root only: chown needs it (the broker image runs as root, which is when this matters).
  it.runIf(process.getuid?.() === 0)("applied as root, keeps the workspace's owners: a changed file its own, a new file and directory their directory's", async () => {
    const ws = workspace(false);
    execFileSync("chown", ["-R", "4321:4322", ws]);
    const { dir, base } = await extractCopy(ws);
    writeFileSync(path.join(dir, "a.txt"), "one\nTWO\n");
    mkdirSync(path.join(dir, "deep", "er"), { recursive: true });
    writeFileSync(path.join(dir, "deep", "er", "new.txt"), "fresh\n");
    const changes = await changesFrom(base, treeOf(dir));
    const file = path.join(base.workDir, "changes.patch");
    writeFileSync(file, changes.patch);
    expect(await applyPatch(ws, file, base.workDir, changes.files)).toBeNull();
    expect(readFileSync(path.join(ws, "deep", "er", "new.txt"), "utf8")).toBe("fresh\n");
    for (const p of ["a.txt", "deep", "deep/er", "deep/er/new.txt"]) {
      const st = lstatSync(path.join(ws, p));
      expect([p, st.uid, st.gid]).toEqual([p, 4321, 4322]);
    }
    // A file of another owner keeps that owner, not the directory's.
    chownSync(path.join(ws, "run.sh"), 4400, 4401);
    const again = await extractCopy(ws);
    writeFileSync(path.join(again.dir, "run.sh"), "echo changed\n");
    const c2 = await changesFrom(again.base, treeOf(again.dir));
    const f2 = path.join(again.base.workDir, "changes.patch");
    writeFileSync(f2, c2.patch);
    expect(await applyPatch(ws, f2, again.base.workDir, c2.files)).toBeNull();
    expect([lstatSync(path.join(ws, "run.sh")).uid, lstatSync(path.join(ws, "run.sh")).gid]).toEqual([4400, 4401]);
  });
});
