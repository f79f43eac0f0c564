// Workspaces are bind-mounted into workers, so only directories under the allowed roots may be
// used, judged after resolving symlinks and `..`.
import { realpathSync, statSync } from "node:fs";
import path from "node:path";
import { WrapperError } from "../errors.js";

/** The workspace's real path, or a WORKSPACE_REFUSED error that says why and what to do. */
export function resolveWorkspace(requested: string, allowedRoots: string[], field = "workspace"): string {
  return resolveInsideRoots(requested, allowedRoots, field, "directory");
}

/**
 * The real path of a directory (a workspace) or a file (a mission file a client names) under the
 * allowed roots: what a client asks the broker to touch on its machine never escapes them.
 */
export function resolveInsideRoots(requested: string, allowedRoots: string[], field: string, kind: "directory" | "file"): string {
  let real: string;
  try {
    real = realpathSync(path.resolve(requested));
  } catch {
    throw new WrapperError("WORKSPACE_REFUSED", `${field}: ${requested} does not exist; ${kind === "directory" ? "create the directory or give another path" : "give the path of an existing file"}`);
  }
  const st = statSync(real);
  if (kind === "directory" ? !st.isDirectory() : !st.isFile()) throw new WrapperError("WORKSPACE_REFUSED", `${field}: ${requested} is not a ${kind}`);
  const inside = allowedRoots.some((root) => real === root || real.startsWith(root.endsWith(path.sep) ? root : root + path.sep));
  if (!inside) {
    const via = real !== path.resolve(requested) ? ` (it resolves to ${real})` : "";
    throw new WrapperError(
      "WORKSPACE_REFUSED",
      `${field}: ${requested}${via} is outside the allowed workspace roots (${allowedRoots.join(", ")}); add a root to broker.allowed_workspace_roots or use a ${kind} under one`,
    );
  }
  return real;
}

/**
 * Why a task that may write (`workspace-write`, `danger-full-access`) could not write the
 * workspace as the container's user, or null when it can: without this, every write fails inside
 * Codex and the task still reads `succeeded`. (A root-owned CI checkout is the usual case.)
 */
export function checkWorkspaceWritable(workspace: string, user: { uid: number; gid: number }, sandbox: string): string | null {
  const st = statSync(workspace);
  const mode = st.mode & 0o777;
  const can = st.uid === user.uid ? (mode & 0o200) !== 0 : st.gid === user.gid ? (mode & 0o020) !== 0 : (mode & 0o002) !== 0;
  if (can) return null;
  const octal = mode.toString(8).padStart(4, "0");
  return (
    `workspace: ${workspace} is owned by uid ${st.uid} (gid ${st.gid}, mode ${octal}) and the worker container runs as uid ${user.uid}, which cannot write it, so a ${sandbox} task's changes would all fail; ` +
    `give the workspace to that user (chown -R ${user.uid}:${user.gid} ${workspace}), run the broker as the workspace's owner, or use sandbox "read-only"`
  );
}
