// The release builder end to end, from a clean clone of this repository: refusals (dirty tree,
// bad version, no key), a real release (images built and saved, npm package, manifest,
// SHA256SUMS signed with ed25519), `verify` passing and failing on a flipped byte in each file,
// the standard-tools install script (openssl + sha256sum, docker load, npm install) and the
// refusal to build a version twice.
import { execFileSync, spawnSync } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, rmSync, statSync, symlinkSync, writeFileSync, writeSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateReleaseKeys, keyFingerprint, loadPublicKey } from "../../../src/release/signing.js";
import { PREFIX } from "../support/env.js";

const REPO = process.cwd();
const VERSION = `98.0.${process.pid % 100000}`; // a version no real release uses
const TAGS = ["broker", "worker", "rehearsal"].map((i) => `${PREFIX}/${i}:${VERSION}`);
const BIN = path.join(REPO, "dist/cli/bin.js");
let tmp: string;
let clone: string;
let keyFile: string;
let pubFile: string;
let releaseDir: string;

function cli(...args: string[]): { status: number | null; out: string; err: string } {
  const env: NodeJS.ProcessEnv = { ...process.env, IMAGE_PREFIX: PREFIX };
  delete env.CODEX_WRAPPER_RELEASE_KEY;
  delete env.CODEX_WRAPPER_RELEASE_KEY_FILE;
  const r = spawnSync("node", [BIN, ...args], { env, encoding: "utf8", timeout: 600_000, maxBuffer: 16 << 20 });
  return { status: r.status, out: r.stdout, err: r.stderr };
}

function flipByte(file: string, at: number): () => void {
  const fd = openSync(file, "r+");
  const b = Buffer.alloc(1);
  readSync(fd, b, 0, 1, at);
  const original = b[0]!;
  writeSync(fd, Buffer.from([original ^ 0x01]), 0, 1, at);
  closeSync(fd);
  return () => {
    const fd2 = openSync(file, "r+");
    writeSync(fd2, Buffer.from([original]), 0, 1, at);
    closeSync(fd2);
  };
}

beforeAll(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), "cmw-release-"));
  clone = path.join(tmp, "repo");
  execFileSync("git", ["clone", "-q", REPO, clone]);
  // node_modules is ignored by git: a link keeps the tree clean and saves an npm ci.
  symlinkSync(path.join(REPO, "node_modules"), path.join(clone, "node_modules"));
  const pkgFile = path.join(clone, "package.json");
  writeFileSync(pkgFile, readFileSync(pkgFile, "utf8").replace(/"version": "[^"]+"/, `"version": "${VERSION}"`));
  execFileSync("git", ["-c", "user.name=test", "-c", "user.email=test@invalid", "commit", "-q", "-am", `release ${VERSION}`], { cwd: clone });
  const keys = generateReleaseKeys();
  keyFile = path.join(tmp, "release.key");
  pubFile = path.join(tmp, "release.pub");
  writeFileSync(keyFile, keys.privatePem, { mode: 0o600 });
  writeFileSync(pubFile, keys.publicPem);
  releaseDir = path.join(clone, "dist", "releases", VERSION);
});

afterAll(() => {
  spawnSync("docker", ["rmi", ...TAGS], { stdio: "ignore" });
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe("the release builder", () => {
  it("refuses a dirty tree, a malformed version and a missing key, before building anything", () => {
    writeFileSync(path.join(clone, "stray.txt"), "x");
    let r = cli("release", VERSION, "--key", keyFile, "--repo", clone);
    expect(r.status).toBe(2);
    expect(r.err).toMatch(/is not clean \(1 change: \?\? stray\.txt\); commit or remove them/);
    rmSync(path.join(clone, "stray.txt"));

    r = cli("release", "1.2", "--key", keyFile, "--repo", clone);
    expect(r.status).toBe(2);
    expect(r.err).toMatch(/version: "1\.2" is not X\.Y\.Z/);
    r = cli("release", "1.2.3", "--key", keyFile, "--repo", clone);
    expect(r.err).toMatch(/package\.json says 98\.0\.\d+, not 1\.2\.3; run npm version 1\.2\.3/);

    r = cli("release", VERSION, "--repo", clone);
    expect(r.status).toBe(2);
    expect(r.err).toMatch(/no signing key: give --key FILE, or set CODEX_WRAPPER_RELEASE_KEY/);
    expect(TAGS.filter((t) => spawnSync("docker", ["image", "inspect", t], { stdio: "ignore" }).status === 0)).toEqual([]);
  });

  it("release keygen writes a key pair once, the private half 0600", () => {
    const prefix = path.join(tmp, "made");
    let r = cli("release", "keygen", prefix);
    expect(r.status, r.err).toBe(0);
    expect(r.out).toMatch(/wrote .*made\.key .* fingerprint sha256:[0-9a-f]{64}/);
    expect(statSync(`${prefix}.key`).mode & 0o777).toBe(0o600);
    expect(keyFingerprint(loadPublicKey(readFileSync(`${prefix}.pub`, "utf8"), "pub"))).toBe(r.out.match(/sha256:([0-9a-f]{64})/)![1]);
    r = cli("release-keygen", prefix);
    expect(r.status).toBe(2);
    expect(r.err).toMatch(/made\.key exists; choose another prefix/);
  });

  it("builds the release directory: package, images, manifest, sums and signature; verify passes", () => {
    const r = cli("release", VERSION, "--key", keyFile, "--repo", clone);
    expect(r.status, r.err).toBe(0);
    expect(readdirSync(releaseDir).sort()).toEqual(["SHA256SUMS", "SHA256SUMS.sig", `codex-mcp-wrapper-${VERSION}.tgz`, `codex-mcp-wrapper-images-${VERSION}.tar`, "manifest.json"]);
    const manifest = JSON.parse(readFileSync(path.join(releaseDir, "manifest.json"), "utf8")) as { version: string; gitCommit: string; codexVersion: string; signingKey: string; images: { ref: string; id: string }[]; files: { name: string }[] };
    expect(manifest.version).toBe(VERSION);
    expect(manifest.gitCommit).toBe(execFileSync("git", ["rev-parse", "HEAD"], { cwd: clone, encoding: "utf8" }).trim());
    expect(manifest.codexVersion).toMatch(/^\d+\.\d+\.\d+$/);
    expect(manifest.signingKey).toBe(keyFingerprint(loadPublicKey(readFileSync(pubFile, "utf8"), "pub")));
    expect(manifest.images.map((i) => i.ref)).toEqual(TAGS);
    for (const i of manifest.images) expect(i.id).toBe(execFileSync("docker", ["image", "inspect", "-f", "{{.Id}}", i.ref], { encoding: "utf8" }).trim());
    // The saved tar holds the three tags; the package carries the version and no release dir.
    const repoTags = JSON.parse(execFileSync("tar", ["-xOf", path.join(releaseDir, `codex-mcp-wrapper-images-${VERSION}.tar`), "manifest.json"], { encoding: "utf8" })) as { RepoTags: string[] }[];
    expect(repoTags.flatMap((m) => m.RepoTags).sort()).toEqual([...TAGS].sort());
    const listing = execFileSync("tar", ["-tzf", path.join(releaseDir, `codex-mcp-wrapper-${VERSION}.tgz`)], { encoding: "utf8" });
    expect(listing).toContain("package/dist/cli/bin.js");
    expect(listing).not.toContain("releases/");
    console.log(`release ${VERSION}: ${readdirSync(releaseDir).map((f) => `${f} ${(statSync(path.join(releaseDir, f)).size / 1e6).toFixed(1)} MB`).join(", ")}`);

    const v = cli("verify", releaseDir, "--public-key", pubFile);
    expect(v.status, v.err).toBe(0);
    expect(v.out).toMatch(/verified: signature good \(key sha256:[0-9a-f]{64}\), 3 files match SHA256SUMS/);
    expect(v.out).toContain(`sha256:${manifest.signingKey}`);
  });

  it("verify fails on one flipped byte in any file, naming it; and on a file added or another key", () => {
    for (const name of readdirSync(releaseDir)) {
      const file = path.join(releaseDir, name);
      const restore = flipByte(file, Math.floor(statSync(file).size / 2));
      try {
        const r = cli("verify", releaseDir, "--public-key", pubFile);
        expect(r.status, name).toBe(1);
        const named = name === "SHA256SUMS" ? /SHA256SUMS\.sig: the signature of SHA256SUMS does not verify/ : name === "SHA256SUMS.sig" ? /SHA256SUMS\.sig/ : new RegExp(`${name.replace(/\./g, "\\.")}: sha256 .* does not match SHA256SUMS`);
        expect(r.err, name).toMatch(named);
      } finally {
        restore();
      }
    }
    writeFileSync(path.join(releaseDir, "extra.sh"), "echo hi");
    expect(cli("verify", releaseDir, "--public-key", pubFile).err).toMatch(/extra\.sh: not listed in SHA256SUMS/);
    rmSync(path.join(releaseDir, "extra.sh"));
    const other = path.join(tmp, "other.pub");
    writeFileSync(other, generateReleaseKeys().publicPem);
    expect(cli("verify", releaseDir, "--public-key", other).status).toBe(1);
    expect(cli("verify", releaseDir, "--public-key", pubFile).status).toBe(0);
  });

  it("installs with one command using standard tools, and refuses a damaged release", () => {
    const prefix = path.join(tmp, "npm-prefix");
    const script = path.join(clone, "scripts/install-release.sh");
    // The package's dependencies from npm's cache where it has them (npm ci filled it): the same
    // install, half the time, and no registry hiccup failing the suite.
    const env = { ...process.env, NPM_PREFIX: prefix, npm_config_prefer_offline: "true" };
    const restore = flipByte(path.join(releaseDir, "manifest.json"), 3);
    let r = spawnSync("bash", [script, releaseDir, pubFile], { env, encoding: "utf8", timeout: 300_000 });
    restore();
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/does not match SHA256SUMS: do not install/);

    r = spawnSync("bash", [script, releaseDir, pubFile], { env, encoding: "utf8", timeout: 300_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/verified: signature and 3 files/);
    expect(r.stdout).toMatch(/Loaded image: /);
    expect(execFileSync(path.join(prefix, "bin", "codex-mcp-wrapper"), ["version"], { encoding: "utf8" }).trim()).toBe(VERSION);
  });

  it("never builds the same version twice, nor over its image tags", () => {
    let r = cli("release", VERSION, "--key", keyFile, "--repo", clone);
    expect(r.status).toBe(2);
    expect(r.err).toMatch(new RegExp(`version ${VERSION} exists already \\(.*releases/${VERSION}\\)`));
    rmSync(releaseDir, { recursive: true });
    r = cli("release", VERSION, "--key", keyFile, "--repo", clone);
    expect(r.status).toBe(2);
    expect(r.err).toMatch(/image .*:98\.0\.\d+.* is present; a release tag is never overwritten/);
    // A dev build writes only :dev tags; a direct --release build of an existing version is refused too.
    const b = spawnSync("bash", ["scripts/build-images.sh", "--release", "--only-current"], { cwd: clone, env: { ...process.env, IMAGE_PREFIX: PREFIX }, encoding: "utf8", timeout: 120_000 });
    expect(b.status).toBe(1);
    expect(b.stderr).toMatch(/exists: release tags are never overwritten/);
  });
});
