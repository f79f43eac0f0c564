// Collects a task's artifacts: regular files in the workspace matching its globs, copied into the
// mission's state with size and sha256, and packed into a tar.gz bundle. Symlinks are never
// followed, so an artifact can never be a file outside the workspace.
import { createHash } from "node:crypto";
import { closeSync, constants, createWriteStream, fstatSync, mkdirSync, openSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import * as tar from "tar";
import yazl from "yazl";
import type { ArtifactEntry } from "../state/store.js";

/** A glob (`*`, `?`, `**`) as a regular expression over `/`-separated relative paths. */
export function globToRegExp(glob: string): RegExp {
  let re = "";
  const g = glob.replace(/\\/g, "/").replace(/^\.\//, "");
  for (let i = 0; i < g.length; i++) {
    const c = g[i]!;
    if (c === "*" && g[i + 1] === "*") {
      const slash = g[i + 2] === "/";
      re += slash ? "(?:.*/)?" : ".*";
      i += slash ? 2 : 1;
    } else if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else re += c.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}

/** Regular files under root (relative paths), not following symlinks, skipping .git. */
function walk(root: string, rel = "", out: string[] = [], limit = 100_000): string[] {
  for (const e of readdirSync(path.join(root, rel), { withFileTypes: true })) {
    if (out.length >= limit) break;
    const p = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) {
      if (e.name !== ".git") walk(root, p, out, limit);
    } else if (e.isFile()) out.push(p);
  }
  return out;
}

/** Copies the matching files into destDir and returns their manifest entries. */
export function collectArtifacts(workspace: string, globs: string[], destDir: string): ArtifactEntry[] {
  if (globs.length === 0) return [];
  const patterns = globs.map(globToRegExp);
  const entries: ArtifactEntry[] = [];
  const root = realpathSync(workspace);
  for (const rel of walk(workspace)) {
    if (!patterns.some((p) => p.test(rel))) continue;
    const data = readInside(root, rel);
    if (data === null) continue; // changed under us into something else
    const dest = path.join(destDir, rel);
    try {
      mkdirSync(path.dirname(dest), { recursive: true });
      writeFileSync(dest, data, { mode: 0o600 });
    } catch (e) {
      // A partial copy would pass for an artifact and fill what space is left: remove it.
      rmSync(dest, { force: true });
      throw e;
    }
    entries.push({ path: rel, size: data.length, sha256: createHash("sha256").update(data).digest("hex") });
  }
  return entries;
}

/**
 * Reads a regular file of the workspace, or null. A task may still be running in the workspace,
 * so the file is opened without following a symlink (O_NOFOLLOW) and its directory's real path
 * must still be inside the workspace: a swapped-in link can never make an artifact of a host file.
 */
export function readInside(root: string, rel: string): Buffer | null {
  const src = path.join(root, rel);
  let fd: number;
  try {
    fd = openSync(src, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch {
    return null;
  }
  try {
    const dir = realpathSync(path.dirname(src));
    if (dir !== root && !dir.startsWith(root + path.sep)) return null;
    if (!fstatSync(fd).isFile()) return null;
    return readFileSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Writes manifest.json and bundle.tar.gz for an artifacts directory; returns the bundle path. */
export async function packArtifacts(artifactsDir: string, manifest: Record<string, ArtifactEntry[]>): Promise<string> {
  mkdirSync(artifactsDir, { recursive: true });
  writeFileSync(path.join(artifactsDir, "manifest.json"), `${JSON.stringify(manifest, null, 2)}\n`);
  const bundle = path.join(path.dirname(artifactsDir), "bundle.tar.gz");
  const files = readdirSync(artifactsDir);
  await tar.create({ gzip: true, file: bundle, cwd: artifactsDir, portable: true }, files);
  return bundle;
}

/** Writes bundle.zip beside bundle.tar.gz (same content); returns its path. */
export async function packZip(artifactsDir: string): Promise<string> {
  const file = path.join(path.dirname(artifactsDir), "bundle.zip");
  const zip = new yazl.ZipFile();
  for (const rel of walk(artifactsDir)) zip.addFile(path.join(artifactsDir, rel), rel);
  zip.end();
  await new Promise<void>((resolve, reject) => {
    const out = createWriteStream(file, { mode: 0o600 });
    out.on("close", resolve);
    out.on("error", reject);
    zip.outputStream.pipe(out);
  });
  return file;
}
