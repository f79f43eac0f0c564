// Makes sure an engine has a profile's image with the same image ID as the broker's own engine:
// nothing when it has, else the image travels there (`docker save` streamed into `docker load`,
// never a file of the whole image), or, when the image comes from a registry, the engine pulls it.
// Afterwards the target's ID must equal the source's: an image that drifted is an error, not a
// worker on different bits.
import type { RegistryAuth } from "../config/registry-auth.js";
import { WrapperError } from "../errors.js";
import type { DockerRuntime } from "./docker.js";

export interface EnsureImageOptions {
  /** Bytes moved so far, and the total when known (the source's image size: an estimate of the tar). */
  onProgress?: (bytes: number, total: number | null) => void;
  /** The image comes from a registry: the target pulls it instead of receiving it from `source`. */
  registry?: boolean;
  /** The registry's credentials for that pull (read when needed: a function, so nothing holds them longer). */
  auth?: () => RegistryAuth;
}

/**
 * Gives `target` the image `ref` as `source` has it. Resolves with the image ID and whether
 * anything travelled. IMAGE_MISSING when the source lacks it (the fix: `npm run images`) or when
 * the target's ID differs afterwards; DOCKER_UNAVAILABLE (naming the engine) when either engine
 * fails on the way.
 */
export async function ensureImage(source: DockerRuntime, target: DockerRuntime, ref: string, opts: EnsureImageOptions = {}): Promise<{ id: string; transferred: boolean }> {
  const want = await source.imageInspect(ref);
  if (opts.registry) {
    const have = await target.imageInspect(ref);
    if (have && (!want || have.id === want.id)) return { id: have.id, transferred: false };
    await target.pullImage(ref, { onProgress: opts.onProgress, auth: opts.auth?.() });
    const got = await target.imageInspect(ref);
    if (!got) throw new WrapperError("IMAGE_MISSING", `${target.label} pulled ${ref} but does not list it afterwards; pull it by hand there (docker pull ${ref}) to see why`, { image: ref, engine: target.name });
    if (want && got.id !== want.id)
      throw mismatch(source, target, ref, want.id, got.id, `the registry's copy differs from the one on ${source.label}: push that one to the registry (docker push ${ref}), or remove it there (docker rmi ${ref}) so that it is pulled too`);
    return { id: got.id, transferred: true };
  }
  if (!want) {
    throw new WrapperError("IMAGE_MISSING", `image ${ref} is missing on ${source.label}, so it cannot be sent to ${target.label}; build it with npm run images`, { image: ref, engine: source.name });
  }
  const have = await target.imageInspect(ref);
  if (have?.id === want.id) return { id: want.id, transferred: false };

  const tar = await source.saveImage(ref);
  let bytes = 0;
  if (opts.onProgress) {
    const report = opts.onProgress;
    tar.on("data", (d: Buffer) => {
      bytes += d.length;
      report(bytes, want.size > 0 ? want.size : null);
    });
    tar.pause(); // a 'data' listener starts the flow: loadImage's pipe resumes it at its own pace
  }
  await target.loadImage(tar);
  const got = await target.imageInspect(ref);
  if (!got) throw new WrapperError("IMAGE_MISSING", `${target.label} loaded a tar of ${ref} but does not list the image afterwards; load it by hand to see why (docker save ${ref} | docker -H … load)`, { image: ref, engine: target.name });
  if (got.id !== want.id) throw mismatch(source, target, ref, want.id, got.id, "load it again; if it persists, remove the image on that engine first");
  return { id: got.id, transferred: true };
}

function mismatch(source: DockerRuntime, target: DockerRuntime, ref: string, want: string, got: string, fix: string): WrapperError {
  return new WrapperError("IMAGE_MISSING", `${target.label} has ${ref} as ${got}, not ${want} as on ${source.label}; ${fix}`, { image: ref, engine: target.name, want, got });
}
