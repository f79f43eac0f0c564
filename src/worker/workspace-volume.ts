// An isolated task's workspace: a named volume, filled and read back through the engine's archive
// API (a tar in, a tar out), never a host path, so it works the same on an engine on another
// machine. Filling and reading go through a short-lived container that is created and never
// started (no process runs in it): it only gives the archive API a path on the volume.
import { randomUUID } from "node:crypto";
import type { Readable } from "node:stream";
import * as tar from "tar";
import type { DockerRuntime } from "../runtime/docker.js";

/** Where the helper container mounts the volume (a directory name under its root). */
const MOUNT = "copy";

export interface VolumeOptions {
  docker: DockerRuntime;
  /** The volume's name (and the helper containers' first word). */
  name: string;
  /** The instance's labels (instance, channel, session, …): reaping finds the volume and its helpers by them. */
  labels: Record<string, string>;
  /** An image present on the engine (the worker's): the helper container is made from it. */
  image: string;
  /** Told the helper's name before it exists and when it is gone (the pool must not reap it meanwhile). */
  hold?: ((name: string, held: boolean) => void) | undefined;
}

/** Runs `fn` with a created (never started) container that mounts the volume at MOUNT. */
async function withHelper<T>(o: VolumeOptions, readOnly: boolean, fn: (id: string) => Promise<T>): Promise<T> {
  const name = `${o.name}-io-${randomUUID().slice(0, 6)}`;
  o.hold?.(name, true);
  let id = "";
  try {
    id = await o.docker.createContainer({
      name,
      image: o.image,
      cmd: ["true"],
      labels: o.labels,
      mounts: [{ type: "volume", source: o.name, target: `/${MOUNT}`, readOnly }],
      network: "none",
      capDrop: ["ALL"],
      securityOpt: ["no-new-privileges"],
    });
    return await fn(id);
  } finally {
    if (id) await o.docker.remove(id).catch(() => {}); // a leftover carries the labels: reaped later
    o.hold?.(name, false);
  }
}

/**
 * Creates the volume and extracts the copy into it (removing the volume again on failure). `copy`
 * gives a tar whose entries are under `prefix`: extracted at the helper's root, the entry
 * `prefix/` is the volume's own root, so its owner is set too (an engine keeps the owner of the
 * directory it extracts into, and a new volume's root is root's).
 */
export async function createWorkspaceVolume(o: VolumeOptions, copy: (prefix: string) => Readable): Promise<void> {
  await o.docker.createVolume(o.name, o.labels);
  try {
    await withHelper(o, false, (id) => o.docker.putArchive(id, "/", copy(MOUNT)));
  } catch (e) {
    await o.docker.removeVolume(o.name).catch(() => {});
    throw e;
  }
}

/**
 * Creates the volume if it does not exist and extracts a tar into it, keeping what it holds (a
 * remote slot's CODEX_HOME, seeded again for each of its containers).
 */
export async function seedVolume(o: VolumeOptions, copy: (prefix: string) => Readable): Promise<void> {
  await o.docker.createVolume(o.name, o.labels);
  await withHelper(o, false, (id) => o.docker.putArchive(id, "/", copy(MOUNT)));
}

/** A host directory as a tar stream under `prefix`, every entry owned by `user` (what a volume of the worker's user needs). */
export function packDir(dir: string, user: { uid: number; gid: number }, prefix: string): Readable {
  return tar.create(
    {
      cwd: dir,
      prefix,
      portable: false,
      // The relay's socket is the local engine's channel; a remote engine has none.
      filter: (p) => !p.endsWith(".relay.sock"),
      onWriteEntry: (e) => {
        if (!e.stat) return;
        e.stat.uid = user.uid;
        e.stat.gid = user.gid;
      },
    },
    ["."],
  ) as unknown as Readable;
}

/** The volume's content as a tar stream (entries `./…`), handed to `consume` before the helper goes. */
export async function readWorkspaceVolume<T>(o: VolumeOptions, consume: (tar: Readable) => Promise<T>): Promise<T> {
  return withHelper(o, true, async (id) => consume(await o.docker.getArchive(id, `/${MOUNT}/.`)));
}

/**
 * Fills a volume made empty ahead (a spare's) with a task's copy. `into`: a running container
 * that mounts the volume writable at `path` takes the tar itself (entries under no prefix, so the
 * volume's root keeps the owner it was made with); without it, a helper container does, as for a
 * new volume (a read-only mount cannot take it).
 */
export async function fillWorkspaceVolume(o: VolumeOptions, copy: (prefix: string) => Readable, into?: { id: string; path: string }): Promise<void> {
  if (into) await o.docker.putArchive(into.id, into.path, copy(""));
  else await withHelper(o, false, (id) => o.docker.putArchive(id, "/", copy(MOUNT)));
}
