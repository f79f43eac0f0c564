// Rehearsal mode, the first five minutes: with no Codex login (on a dev instance) or when forced
// (`--rehearsal`), the broker serves its built-in scripted model instead of OpenAI's, on the
// rehearsal image, so a newcomer sees a whole mission work before logging in.
import { existsSync } from "node:fs";
import type { RehearsalMode, WrapperConfig } from "./schema.js";

/** The sentinel that stands for a credential in rehearsal mode: no real one exists. */
export const REHEARSAL_KEY = "cmw-rehearsal-no-openai-credential";

/** What the banner, /healthz, the status page and every result say in rehearsal mode. */
export function rehearsalNotice(reason: RehearsalMode["reason"], authFile: string): string {
  const why = reason === "flag" ? "forced by --rehearsal" : `no Codex login: no auth file at ${authFile}`;
  const leave = reason === "flag" ? "start without --rehearsal" : "run `codex login` and restart the broker";
  return `REHEARSAL MODE (${why}): every answer comes from the broker's built-in rehearsal model; the answers are scripted (#fake directives, docs/rehearsal.md) and no OpenAI call is made. For real answers, ${leave}.`;
}

/**
 * Whether the broker runs in rehearsal mode: always with `forced`; else only a dev instance whose
 * auth file does not exist (a release instance that lost its login stops, as before, rather than
 * answer its clients with scripts).
 */
export function chooseRehearsal(config: Pick<WrapperConfig, "channel" | "authFile">, forced: boolean, exists: (p: string) => boolean = existsSync): RehearsalMode | null {
  const reason = forced ? "flag" : config.channel === "dev" && !exists(config.authFile) ? "no-login" : null;
  return reason ? { reason, notice: rehearsalNotice(reason, config.authFile) } : null;
}

/** A worker image of this project (`<prefix>/worker:<tag>`, any prefix: image_prefix or CODEX_WRAPPER_WORKER_IMAGE). */
const WORKER_IMAGE = /^(.+\/)worker(:[^/@]+)$/;

/**
 * The configuration in rehearsal mode: each profile on a worker image of this project runs the
 * rehearsal image beside it, of the same tag (`<prefix>/worker:dev` → `<prefix>/rehearsal:dev`).
 * A profile on another image keeps it; the pool sends its model calls to the rehearsal model too.
 */
export function withRehearsal(config: WrapperConfig, mode: RehearsalMode | null): WrapperConfig {
  if (!mode) return config;
  const workers = config.workers.map((p) => (WORKER_IMAGE.test(p.image) ? { ...p, image: p.image.replace(WORKER_IMAGE, "$1rehearsal$2") } : p));
  return { ...config, workers, rehearsal: mode };
}
