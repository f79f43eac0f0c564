// Collects a task's artifacts: regular files in the workspace matching its globs, copied into the
// mission's state with size and sha256, and packed into a tar.gz bundle. Symlinks are never
// followed, so an artifact can never be a file outside the workspace.
import { createHash } from "node:crypto";
import { closeSync, constants, createWriteStream, fstatSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import * as tar from "tar";
import yazl from "yazl";
import { scrubBuffer } from "../log.js";
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
  let entries;
  try {
    entries = readdirSync(path.join(root, rel), { withFileTypes: true });
  } catch (e) {
    // A task still running in the workspace may remove or replace a directory while we walk.
    if (rel && ["ENOENT", "ENOTDIR"].includes((e as NodeJS.ErrnoException).code ?? "")) return out;
    throw e;
  }
  for (const e of entries) {
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
    const read = readInside(root, rel);
    if (read === null) continue; // changed under us into something else
    entries.push(storeArtifact(destDir, rel, read));
  }
  return entries;
}

/**
 * Writes one artifact under destDir, known secrets replaced (a task can copy the worker's
 * credential into a file: it never leaves as an artifact), and returns its manifest entry.
 * `redacted`: replacements already made in `raw` by the caller.
 */
export function storeArtifact(destDir: string, rel: string, raw: Buffer, redacted = 0): ArtifactEntry {
  const { data, replaced } = scrubBuffer(raw);
  const dest = path.join(destDir, rel);
  try {
    mkdirSync(path.dirname(dest), { recursive: true });
    writeFileSync(dest, data, { mode: 0o600 });
  } catch (e) {
    // A partial copy would pass for an artifact and fill what space is left: remove it.
    rmSync(dest, { force: true });
    throw e;
  }
  const n = replaced + redacted;
  return { path: rel, size: data.length, sha256: createHash("sha256").update(data).digest("hex"), ...(n > 0 ? { redacted: n } : {}) };
}

/**
 * Reads a regular file of the workspace, or null. A task may still be running in the workspace,
 * so the file is opened without following a symlink (O_NOFOLLOW) and where the opened file really
 * is must be inside the workspace: a swapped-in link can never make an artifact of a host file.
 * On Linux the kernel names the opened file (/proc/self/fd), so a directory swapped for a link
 * and back between the open and the check cannot fool it; elsewhere its directory's real path
 * is checked after the open. A file or directory that vanishes meanwhile is skipped (null).
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
    if (!fstatSync(fd).isFile()) return null;
    const where = openedPath(fd) ?? realDir(src);
    if (where === null || !where.startsWith(root + path.sep)) return null;
    return readFileSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** The path the kernel has for an open file (Linux), else null. */
function openedPath(fd: number): string | null {
  if (process.platform !== "linux") return null;
  try {
    return readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return null;
  }
}

/** The real path of a file's directory joined with its name, or null if it is gone. */
function realDir(file: string): string | null {
  try {
    return path.join(realpathSync(path.dirname(file)), path.basename(file));
  } catch {
    return null;
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
