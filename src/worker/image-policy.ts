// Dev/release isolation by image tag: a dev instance runs only `:dev` or `:dev-*` tags, a release
// instance only version tags (X.Y.Z, optionally `-codex-<v>`), so a dev build can never replace
// what the release instance runs.
import type { Channel } from "../config/schema.js";

const VERSION_TAG = /^\d+\.\d+\.\d+(?:-codex-\d+\.\d+\.\d+)?$/;

/** The tag of an image reference (`latest` when none is given). */
export function imageTag(ref: string): string {
  const noDigest = ref.split("@")[0] ?? ref;
  const slash = noDigest.lastIndexOf("/");
  const colon = noDigest.lastIndexOf(":");
  return colon > slash ? noDigest.slice(colon + 1) : "latest";
}

/** Null when the channel may run the image, else why not and what to do. */
export function checkImageForChannel(ref: string, channel: Channel): string | null {
  const tag = imageTag(ref);
  if (channel === "dev") {
    if (tag === "dev" || tag.startsWith("dev-")) return null;
    return `image ${ref}: a dev instance runs only ":dev" or ":dev-*" tags, got ":${tag}"; build it with npm run images, or set broker.channel = "release"`;
  }
  if (VERSION_TAG.test(tag)) return null;
  return `image ${ref}: a release instance runs only version tags (X.Y.Z), got ":${tag}"; use a released image (npm run release) or set broker.channel = "dev"`;
}

/** Codex versions as numbers for comparison: "0.153.0" → [0, 153, 0]. */
export function parseCodexVersion(text: string): [number, number, number] | null {
  const m = /(\d+)\.(\d+)\.(\d+)/.exec(text);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : null;
}

/** Whether a Codex version offers a protocol (mcp-server was removed in 0.154.0). */
export function supportsProtocol(version: [number, number, number], protocol: "app-server" | "exec" | "mcp-server"): boolean {
  if (protocol !== "mcp-server") return true;
  const [a, b] = version;
  return a === 0 && b <= 153;
}
