// An isolated task's copy of its workspace and the changes that come back from it: the files to
// copy (a git workspace's tracked and untracked files minus its ignored ones; elsewhere all but
// DEFAULT_EXCLUDES), the copy as a tar owned by the worker's user, the baseline those files form
// (a git tree in a private repository of the broker's, never the workspace's own), the patch from
// that baseline to the tree the task left, and applying that patch to the source when asked.
import { execFile } from "node:child_process";
import { existsSync, lchownSync, lstatSync, mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import * as tar from "tar";

/** What a non-git workspace's copy leaves out (and every copy's patch ignores), unless the task sets copy_ignored. */
export const DEFAULT_EXCLUDES = [".git", "node_modules"] as const;

/** The most bytes git may print for one call (a patch of a large change). */
const MAX_GIT_OUTPUT = 512 * 1024 * 1024;

/** git with no user or system configuration (hooks, excludes, autocrlf cannot change the result), trusting any owner. */
function git(args: string[], opts: { cwd?: string; env?: Record<string, string>; input?: string } = {}): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      "git",
      args,
      {
        cwd: opts.cwd,
        encoding: "buffer",
        maxBuffer: MAX_GIT_OUTPUT,
        env: {
          PATH: process.env.PATH ?? "/usr/bin:/bin",
          HOME: "/nonexistent",
          GIT_CONFIG_NOSYSTEM: "1",
          GIT_CONFIG_GLOBAL: "/dev/null",
          // The workspace is often owned by the worker's user, not the broker's.
          GIT_CONFIG_COUNT: "1",
          GIT_CONFIG_KEY_0: "safe.directory",
          GIT_CONFIG_VALUE_0: "*",
          ...opts.env,
        },
      },
      (err, stdout, stderr) => {
        if ((err as NodeJS.ErrnoException | null)?.code === "ENOENT") {
          reject(new Error(`workspace_mode "isolated" needs git on the broker's machine, and there is none on PATH; install git (apt-get install git) or use workspace_mode "shared"`));
        } else if (err) {
          const why = stderr.toString("utf8").trim().split("\n").slice(0, 5).join("; ");
          reject(new Error(`git ${args[0]} failed: ${why || err.message}`));
        } else resolve(stdout);
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** The copy's baseline: the files copied and the git tree they formed, in a private repository. */
export interface Baseline {
  workspace: string;
  /** Relative paths of the files (and symlinks) copied. */
  files: string[];
  /** The broker's own repository (temporary) and the baseline tree in it. */
  gitDir: string;
  tree: string;
  /** Scratch space for this task (removed by the caller with the repository). */
  workDir: string;
}

/** Whether the workspace is in a git work tree. */
async function isGitWorkTree(workspace: string): Promise<boolean> {
  try {
    return (await git(["-C", workspace, "rev-parse", "--is-inside-work-tree"])).toString().trim() === "true";
  } catch {
    return false;
  }
}

/** Files and symlinks under root, not following links, skipping `skip` directory names. */
function walk(root: string, skip: readonly string[], rel = "", out: string[] = []): string[] {
  for (const e of readdirSync(path.join(root, rel), { withFileTypes: true })) {
    const p = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) {
      if (!skip.includes(e.name)) walk(root, skip, p, out);
    } else if (e.isFile() || e.isSymbolicLink()) out.push(p);
  }
  return out;
}

/**
 * The files an isolated copy holds. A git workspace: `git ls-files -co --exclude-standard` (its
 * tracked files and the untracked ones its .gitignore does not exclude; with copyIgnored, the
 * ignored ones too). Elsewhere: every file except under DEFAULT_EXCLUDES (with copyIgnored, only
 * .git is left out). Tracked files missing on disk and submodules are left out.
 */
export async function copyList(workspace: string, copyIgnored: boolean): Promise<string[]> {
  if (await isGitWorkTree(workspace)) {
    const out = await git(["-C", workspace, "ls-files", "-z", "-co", ...(copyIgnored ? [] : ["--exclude-standard"])]);
    const seen = new Set<string>();
    for (const rel of out.toString("utf8").split("\0")) {
      if (!rel || seen.has(rel)) continue;
      try {
        const st = lstatSync(path.join(workspace, rel));
        if (st.isFile() || st.isSymbolicLink()) seen.add(rel);
      } catch {
        // deleted in the work tree but still in the index: not copied, so not in the baseline either
      }
    }
    return [...seen].sort();
  }
  return walk(workspace, copyIgnored ? [".git"] : DEFAULT_EXCLUDES).sort();
}

/**
 * Lists the workspace's files and records them as the baseline tree in a new private repository
 * under workDir (the workspace's own repository, if any, is only read).
 */
export async function snapshot(workspace: string, copyIgnored: boolean, workDir: string): Promise<Baseline> {
  const files = await copyList(workspace, copyIgnored);
  const gitDir = path.join(workDir, "git");
  mkdirSync(workDir, { recursive: true, mode: 0o700 });
  await git(["init", "-q", "--bare", gitDir]);
  // The patch ignores what the copy left out: bulk the task may make (npm install) is no change.
  mkdirSync(path.join(gitDir, "info"), { recursive: true });
  writeFileSync(path.join(gitDir, "info", "exclude"), copyIgnored ? "" : DEFAULT_EXCLUDES.filter((x) => x !== ".git").map((x) => `${x}/\n`).join(""));
  const env = { GIT_DIR: gitDir, GIT_WORK_TREE: workspace, GIT_INDEX_FILE: path.join(workDir, "index.base") };
  if (files.length) await git(["update-index", "--add", "-z", "--stdin"], { env, input: files.map((f) => `${f}\0`).join("") });
  const tree = (await git(["write-tree"], { env })).toString().trim();
  return { workspace, files, gitDir, tree, workDir };
}

/** The parent directories of the files, each once, parents first. */
function directoriesOf(files: readonly string[]): string[] {
  const dirs = new Set<string>();
  for (const f of files) for (let d = path.posix.dirname(f); d !== "."; d = path.posix.dirname(d)) dirs.add(d);
  return [...dirs].sort();
}

/**
 * The copy as a tar stream (its entries under `prefix`): the root, every parent directory and the baseline's files, all owned
 * by the worker's user (an engine extracts a tar with the owners its headers name; a directory it
 * had to make would be root's, and the task could not write in it).
 */
export function packCopy(b: Baseline, user: { uid: number; gid: number }, prefix: string): Readable {
  return tar.create(
    {
      cwd: b.workspace,
      prefix,
      noDirRecurse: true,
      portable: false,
      onWriteEntry: (e) => {
        if (!e.stat) return;
        e.stat.uid = user.uid;
        e.stat.gid = user.gid;
      },
    },
    [".", ...directoriesOf(b.files), ...b.files],
  ) as unknown as Readable;
}

/** A change a task made to its copy, as git names it. */
export interface ChangedFile {
  path: string;
  status: "added" | "modified" | "deleted" | "type-changed";
}

/** What came back: the patch (git's binary diff, empty when nothing changed) and the files it touches. */
export interface Changes {
  patch: Buffer;
  files: ChangedFile[];
  /** Where the task's tree was extracted (inside the baseline's workDir). */
  resultDir: string;
  /** The task's tree in the baseline's repository: the baseline of the conversation's next turn. */
  after: string;
}

const STATUS: Record<string, ChangedFile["status"]> = { A: "added", M: "modified", D: "deleted", T: "type-changed" };

/**
 * Extracts the task's tree (a tar stream of its copy, entries `./…`) and diffs it against the
 * baseline: files the baseline had are compared even if ignored; new files only if not ignored.
 */
export async function changesFrom(b: Baseline, tree: Readable): Promise<Changes> {
  const resultDir = path.join(b.workDir, "result");
  // A tree read before (an earlier turn's) would keep the files this one deleted.
  rmSync(resultDir, { recursive: true, force: true });
  mkdirSync(resultDir, { recursive: true, mode: 0o700 });
  // node-tar refuses absolute paths, `..` and writing through a symlink it made: a hostile tree
  // cannot write outside resultDir. Owners are not kept (the broker's own user owns the copy).
  await pipeline(tree, tar.x({ cwd: resultDir, preserveOwner: false }));
  const env = { GIT_DIR: b.gitDir, GIT_WORK_TREE: resultDir, GIT_INDEX_FILE: path.join(b.workDir, "index.result") };
  await git(["read-tree", b.tree], { env });
  await git(["add", "-A", "."], { env, cwd: resultDir });
  const after = (await git(["write-tree"], { env })).toString().trim();
  const patch = await git(["diff", "--binary", "--full-index", "--no-renames", b.tree, after], { env });
  const names = (await git(["diff", "--name-status", "-z", "--no-renames", b.tree, after], { env })).toString("utf8").split("\0");
  const files: ChangedFile[] = [];
  for (let i = 0; i + 1 < names.length; i += 2) files.push({ status: STATUS[names[i]!] ?? "modified", path: names[i + 1]! });
  return { patch, files, resultDir, after };
}

/**
 * Applies a patch to the source workspace if it applies cleanly (`git apply --check` first, so a
 * patch that does not apply changes nothing); returns null, or why it was not applied. `files`
 * (what the patch touches) keeps the workspace's owners: git writes each file anew, as the
 * broker's user (root in the broker image), so a broker that may (root) gives a changed file back
 * its owner, and a new file or directory the owner of the directory it was made in.
 */
export async function applyPatch(workspace: string, patchFile: string, workDir: string, files: readonly ChangedFile[] = []): Promise<string | null> {
  // A repository of the broker's: git apply then works relative to the workspace, whether or not
  // it is (or is inside) a git work tree, and never touches that repository's index.
  const gitDir = path.join(workDir, "apply.git");
  await git(["init", "-q", "--bare", gitDir]);
  const env = { GIT_DIR: gitDir, GIT_WORK_TREE: workspace };
  try {
    await git(["apply", "--check", "--binary", patchFile], { env, cwd: workspace });
  } catch (e) {
    return (e as Error).message.replace(/^git apply failed: /, "");
  }
  const owners = process.getuid?.() === 0 ? ownersBefore(workspace, files) : [];
  await git(["apply", "--binary", patchFile], { env, cwd: workspace });
  for (const [p, o] of owners) if (existsSync(p)) lchownSync(p, o.uid, o.gid);
  return null;
}

/**
 * Who should own each path the patch writes, read before it is applied: a file that exists, its
 * own owner; a new one, and each directory to be made for it, the owner of its nearest existing
 * directory. Paths the patch deletes are left out.
 */
function ownersBefore(workspace: string, files: readonly ChangedFile[]): [string, { uid: number; gid: number }][] {
  const out = new Map<string, { uid: number; gid: number }>();
  const ownerOf = (p: string): { uid: number; gid: number } | null => {
    try {
      const st = lstatSync(p);
      return { uid: st.uid, gid: st.gid };
    } catch {
      return null;
    }
  };
  for (const f of files) {
    if (f.status === "deleted") continue;
    const target = path.join(workspace, f.path);
    if (!target.startsWith(workspace + path.sep)) continue;
    const own = ownerOf(target);
    if (own) {
      out.set(target, own);
      continue;
    }
    // A new file: its missing directories and itself take the nearest existing directory's owner.
    const made = [target];
    let dir = path.dirname(target);
    let parent = ownerOf(dir);
    while (!parent && dir.startsWith(workspace + path.sep)) {
      made.push(dir);
      dir = path.dirname(dir);
      parent = ownerOf(dir);
    }
    if (parent) for (const p of made) if (!out.has(p)) out.set(p, parent);
  }
  // Directories before the files in them.
  return [...out].sort(([a], [b]) => a.length - b.length);
}
