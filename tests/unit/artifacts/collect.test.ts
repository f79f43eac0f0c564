import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import * as tar from "tar";
import { describe, expect, it } from "vitest";
import { collectArtifacts, globToRegExp, packArtifacts, packZip, readInside } from "../../../src/artifacts/collect.js";
import { execFileSync } from "node:child_process";

describe("artifact globs", () => {
  it("match like shell globs with **", () => {
    const re = globToRegExp("out/**/*.txt");
    expect(re.test("out/a.txt")).toBe(true);
    expect(re.test("out/x/y/a.txt")).toBe(true);
    expect(re.test("out/a.md")).toBe(false);
    expect(globToRegExp("*.log").test("dir/a.log")).toBe(false);
    expect(globToRegExp("a?.json").test("ab.json")).toBe(true);
    expect(globToRegExp("reports/**").test("reports/deep/file")).toBe(true);
  });
});

describe("collectArtifacts", () => {
  it("copies matching regular files with size and sha256, never through a symlink", async () => {
    const ws = mkdtempSync(path.join(os.tmpdir(), "cmw-ws-"));
    const outside = mkdtempSync(path.join(os.tmpdir(), "cmw-secret-"));
    writeFileSync(path.join(outside, "secret.txt"), "host secret");
    mkdirSync(path.join(ws, "out"));
    writeFileSync(path.join(ws, "out", "a.txt"), "hello");
    symlinkSync(path.join(outside, "secret.txt"), path.join(ws, "out", "leak.txt"));
    symlinkSync(outside, path.join(ws, "out", "dir-link"));
    const dest = mkdtempSync(path.join(os.tmpdir(), "cmw-art-"));
    const entries = collectArtifacts(ws, ["out/**"], dest);
    expect(entries).toEqual([{ path: "out/a.txt", size: 5, sha256: "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824" }]);
    expect(readFileSync(path.join(dest, "out", "a.txt"), "utf8")).toBe("hello");

    const bundle = await packArtifacts(dest, { t1: entries });
    const listed: string[] = [];
    await tar.list({ file: bundle, onReadEntry: (e) => listed.push(e.path) });
    expect(listed.sort()).toEqual(["manifest.json", "out/", "out/a.txt"]);

    // zip on request: the same files, readable by Python's zipfile (an independent reader).
    const zip = await packZip(dest);
    const names = execFileSync("python3", ["-c", "import sys, zipfile; print('\\n'.join(sorted(zipfile.ZipFile(sys.argv[1]).namelist())))", zip], { encoding: "utf8" });
    expect(names.trim().split("\n")).toEqual(["manifest.json", "out/a.txt"]);
  });

  it("the manifest.json inside bundle.tar.gz and bundle.zip gives each packed file's size and sha256", async () => {
    const ws = mkdtempSync(path.join(os.tmpdir(), "cmw-ws-"));
    mkdirSync(path.join(ws, "out/deep"), { recursive: true });
    writeFileSync(path.join(ws, "out/a.txt"), "alpha");
    writeFileSync(path.join(ws, "out/deep/b.bin"), Buffer.from([0, 1, 2, 255]));
    const dir = mkdtempSync(path.join(os.tmpdir(), "cmw-art-"));
    const artifacts = path.join(dir, "artifacts");
    const manifest = { t1: collectArtifacts(ws, ["out/a.txt"], path.join(artifacts, "t1")), t2: collectArtifacts(ws, ["out/deep/**"], path.join(artifacts, "t2")) };
    const tarball = await packArtifacts(artifacts, manifest);
    const zip = await packZip(artifacts);
    // Read back with independent readers (tar(1), Python's zipfile): every member's bytes.
    const fromTar = (member: string): Buffer => execFileSync("tar", ["-xzOf", tarball, member]);
    const fromZip = (member: string): Buffer => execFileSync("python3", ["-c", "import sys, zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read(sys.argv[2]))", zip, member]);
    const sha = (b: Buffer): string => createHash("sha256").update(b).digest("hex");
    for (const [bundle, read] of [["bundle.tar.gz", fromTar], ["bundle.zip", fromZip]] as const) {
      const packed = JSON.parse(read("manifest.json").toString("utf8")) as Record<string, { path: string; size: number; sha256: string }[]>;
      expect(Object.keys(packed).sort(), `${bundle}'s manifest.json lists every task`).toEqual(["t1", "t2"]);
      for (const [task, entries] of Object.entries(packed)) {
        expect(entries.length, `${bundle}'s manifest.json lists task ${task}'s files`).toBeGreaterThan(0);
        for (const e of entries) {
          const bytes = read(`${task}/${e.path}`);
          expect(e.sha256, `${bundle}'s manifest.json: sha256 of ${task}/${e.path} is the hash of the file in the bundle`).toBe(sha(bytes));
          expect(e.size, `${bundle}'s manifest.json: size of ${task}/${e.path} is the size of the file in the bundle`).toBe(bytes.length);
        }
      }
      expect(packed, `${bundle}'s manifest.json is the manifest of the mission`).toEqual(manifest);
    }
    expect(manifest.t1[0]!.sha256).toBe(sha(Buffer.from("alpha"))); // and the hashes are of what the task wrote
  });

  it("does not follow a directory replaced by a link, before or after the listing", async () => {
    const { realpathSync, renameSync } = await import("node:fs");
    const ws = realpathSync(mkdtempSync(path.join(os.tmpdir(), "cmw-ws-")));
    const outside = mkdtempSync(path.join(os.tmpdir(), "cmw-secret-"));
    writeFileSync(path.join(outside, "a.txt"), "host secret");
    mkdirSync(path.join(ws, "out"));
    writeFileSync(path.join(ws, "out", "a.txt"), "mine");
    expect(readInside(ws, "out/a.txt")?.toString()).toBe("mine");
    // A task still running swaps out/ for a link to a host directory after the listing:
    renameSync(path.join(ws, "out"), path.join(ws, "out-old"));
    symlinkSync(outside, path.join(ws, "out"));
    expect(readInside(ws, "out/a.txt")).toBeNull();
    // and a fresh listing does not walk into the link.
    const entries = collectArtifacts(ws, ["out/**", "out-old/**"], mkdtempSync(path.join(os.tmpdir(), "cmw-art-")));
    expect(entries.map((e) => e.path)).toEqual(["out-old/a.txt"]);
  });
});
