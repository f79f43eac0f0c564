// The release builder: from a clean git tree whose package.json carries the version, builds the
// broker, worker and rehearsal images tagged with it, and writes dist/releases/<version>/: the
// npm package tarball, the images (one `docker save` tar, shared layers stored once), a
// manifest, SHA256SUMS and its ed25519 signature. A version is built once: an existing release
// directory or image tag refuses the build, so nothing can overwrite a release.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import type { KeyObject } from "node:crypto";
import { WrapperError } from "../errors.js";
import { formatSums, keyFingerprint, sha256File, SIG_FILE, signSums, SUMS_FILE } from "./signing.js";

export const RELEASE_VERSION = /^\d+\.\d+\.\d+$/;
export const RELEASE_IMAGES = ["broker", "worker", "rehearsal"] as const;

export interface ReleaseManifest {
  version: string;
  gitCommit: string;
  createdAt: string;
  node: string;
  codexVersion: string;
  /** sha256 of the signing key's public half (SPKI DER): compare it with the key you trust. */
  signingKey: string;
  images: { ref: string; id: string }[];
  imagesFile: string;
  packageFile: string;
  files: { name: string; size: number; sha256: string }[];
}

export interface ReleaseOptions {
  version: string;
  repoDir: string;
  key: KeyObject;
  imagePrefix?: string | undefined;
  log?: (line: string) => void;
}

const refuse = (msg: string): never => {
  throw new WrapperError("RELEASE_REFUSED", msg);
};

function run(cmd: string, args: string[], cwd: string, env?: NodeJS.ProcessEnv): string {
  const r = spawnSync(cmd, args, { cwd, env: env ?? process.env, encoding: "utf8", maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new WrapperError("RELEASE_REFUSED", `${cmd} ${args.join(" ")} failed (exit ${r.status ?? r.signal}): ${(r.stderr || r.stdout || String(r.error)).trim().split("\n").slice(-15).join("\n")}`);
  return r.stdout;
}

function imageExists(ref: string): boolean {
  return spawnSync("docker", ["image", "inspect", ref], { stdio: "ignore" }).status === 0;
}

/** Everything that must hold before anything is built; returns the image refs to build. */
export function checkReleasable(o: Pick<ReleaseOptions, "version" | "repoDir" | "imagePrefix">): string[] {
  if (!RELEASE_VERSION.test(o.version)) refuse(`version: "${o.version}" is not X.Y.Z (a release instance runs only such tags); e.g. 0.2.0`);
  const dirty = run("git", ["status", "--porcelain", "--untracked-files=all"], o.repoDir).split("\n").filter(Boolean);
  if (dirty.length) refuse(`the git tree at ${o.repoDir} is not clean (${dirty.length} change${dirty.length > 1 ? "s" : ""}: ${dirty.slice(0, 8).map((l) => l.trim()).join(", ")}${dirty.length > 8 ? ", …" : ""}); commit or remove them: a release is built from a commit`);
  const pkg = JSON.parse(readFileSync(path.join(o.repoDir, "package.json"), "utf8")) as { version: string };
  if (pkg.version !== o.version) refuse(`version: package.json says ${pkg.version}, not ${o.version}; run npm version ${o.version} --no-git-tag-version, commit, then release`);
  const dir = releaseDir(o.repoDir, o.version);
  if (existsSync(dir)) refuse(`version ${o.version} exists already (${dir}); a release is never rebuilt: choose a new version`);
  const prefix = o.imagePrefix ?? "codex-mcp-wrapper";
  const refs = RELEASE_IMAGES.map((i) => `${prefix}/${i}:${o.version}`);
  const taken = refs.filter(imageExists);
  if (taken.length) refuse(`version ${o.version} exists already: image ${taken.join(", ")} is present; a release tag is never overwritten: choose a new version (or remove the tags if that build was abandoned)`);
  return refs;
}

export function releaseDir(repoDir: string, version: string): string {
  return path.join(repoDir, "dist", "releases", version);
}

export async function buildRelease(o: ReleaseOptions): Promise<{ dir: string; manifest: ReleaseManifest }> {
  const log = o.log ?? (() => {});
  const refs = checkReleasable(o);
  const dir = releaseDir(o.repoDir, o.version);
  const partial = path.join(path.dirname(dir), `.${o.version}.partial`);
  const env = { ...process.env, IMAGE_PREFIX: o.imagePrefix ?? "codex-mcp-wrapper" };
  rmSync(partial, { recursive: true, force: true });
  try {
    log("building the project (npm run build)");
    run("npm", ["run", "--silent", "build"], o.repoDir);
    log(`building the images ${refs.join(", ")}`);
    run("bash", ["scripts/build-images.sh", "--release", "--only-current"], o.repoDir, env);
    mkdirSync(partial, { recursive: true });
    log("packing the npm package");
    const packed = run("npm", ["pack", "--silent", "--pack-destination", partial], o.repoDir).trim().split("\n").pop()!;
    const imagesFile = `codex-mcp-wrapper-images-${o.version}.tar`;
    log(`saving the images to ${imagesFile}`);
    run("docker", ["save", "-o", path.join(partial, imagesFile), ...refs], o.repoDir);
    const images = refs.map((ref) => ({ ref, id: execFileSync("docker", ["image", "inspect", "-f", "{{.Id}}", ref], { encoding: "utf8" }).trim() }));
    const codexVersion = execFileSync("docker", ["image", "inspect", "-f", '{{index .Config.Labels "io.codex-mcp-wrapper.codex-version"}}', refs[1]!], { encoding: "utf8" }).trim();
    const files = [];
    for (const name of readdirSync(partial).sort()) files.push({ name, size: statSync(path.join(partial, name)).size, sha256: await sha256File(path.join(partial, name)) });
    const manifest: ReleaseManifest = {
      version: o.version,
      gitCommit: run("git", ["rev-parse", "HEAD"], o.repoDir).trim(),
      createdAt: new Date().toISOString(),
      node: process.version,
      codexVersion,
      signingKey: keyFingerprint(o.key),
      images,
      imagesFile,
      packageFile: packed,
      files,
    };
    writeFileSync(path.join(partial, "manifest.json"), `${JSON.stringify(manifest, null, 2)}\n`);
    // The images tar is near a gigabyte: its sum, taken above for the manifest, is not taken again.
    const sums = formatSums([...files, { name: "manifest.json", sha256: await sha256File(path.join(partial, "manifest.json")) }]);
    writeFileSync(path.join(partial, SUMS_FILE), sums);
    writeFileSync(path.join(partial, SIG_FILE), signSums(sums, o.key));
    renameSync(partial, dir);
    log(`release ${o.version} written to ${dir}`);
    return { dir, manifest };
  } catch (e) {
    // An abandoned build leaves no tag behind, so the same version can be built again.
    rmSync(partial, { recursive: true, force: true });
    spawnSync("docker", ["rmi", ...refs], { stdio: "ignore" });
    throw e;
  }
}
