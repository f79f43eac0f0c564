import { chmodSync, mkdirSync, mkdtempSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { checkWorkspaceWritable, resolveWorkspace } from "../../../src/worker/workspace.js";

describe("resolveWorkspace", () => {
  const root = mkdtempSync(path.join(os.tmpdir(), "cmw-roots-"));
  const allowed = path.join(root, "allowed");
  const outside = path.join(root, "outside");
  mkdirSync(path.join(allowed, "project"), { recursive: true });
  mkdirSync(outside);
  mkdirSync(`${allowed}-evil`); // shares the root's name as a prefix
  symlinkSync(outside, path.join(allowed, "sneaky"));
  writeFileSync(path.join(allowed, "file.txt"), "x");

  it("accepts a directory under an allowed root, as its real path", () => {
    expect(resolveWorkspace(path.join(allowed, "project"), [allowed])).toBe(path.join(allowed, "project"));
    expect(resolveWorkspace(allowed, [allowed])).toBe(allowed);
  });

  it("refuses paths outside the roots, also through .. and symlinks, naming the fix", () => {
    expect(() => resolveWorkspace(outside, [allowed])).toThrow(/is outside the allowed workspace roots .*broker\.allowed_workspace_roots/);
    expect(() => resolveWorkspace(path.join(allowed, "project", "..", "..", "outside"), [allowed])).toThrow(/outside the allowed workspace roots/);
    expect(() => resolveWorkspace(path.join(allowed, "sneaky"), [allowed])).toThrow(/resolves to .*outside.* is outside the allowed workspace roots/);
    expect(() => resolveWorkspace(`${allowed}-evil`, [allowed])).toThrow(/outside the allowed workspace roots/);
  });

  it("refuses what is missing or not a directory", () => {
    expect(() => resolveWorkspace(path.join(allowed, "nope"), [allowed])).toThrow(/does not exist/);
    expect(() => resolveWorkspace(path.join(allowed, "file.txt"), [allowed])).toThrow(/is not a directory/);
  });
});

describe("a workspace the worker cannot write", () => {
  it("is refused for a task that may write, naming the owner, the container's user and the fix", () => {
    const ws = mkdtempSync(path.join(os.tmpdir(), "cmw-wsw-"));
    chmodSync(ws, 0o755);
    const { uid, gid } = statSync(ws);
    const other = { uid: uid + 4242, gid: gid + 4242 };
    const why = checkWorkspaceWritable(ws, other, "workspace-write");
    expect(why).toContain(`${ws} is owned by uid ${uid}`);
    expect(why).toContain("mode 0755");
    expect(why).toContain(`runs as uid ${other.uid}`);
    expect(why).toContain(`chown -R ${other.uid}:${other.gid} ${ws}`);
    expect(checkWorkspaceWritable(ws, { uid, gid }, "workspace-write")).toBeNull();
    chmodSync(ws, 0o777);
    expect(checkWorkspaceWritable(ws, other, "workspace-write")).toBeNull();
  });
});
