// The Docker engines workers run on ([[engines]], or the one local engine): each engine's runtime,
// whether it answers (and why not), and its images. The pool asks for a view of them to place a
// container (placement.ts decides), probes them in its health rounds, and prepares an engine that
// comes up (its images, its orphans) before placing anything there.
import type { EngineConfig, WrapperConfig } from "../config/schema.js";
import { describeError } from "../errors.js";
import type { Logger } from "../log.js";
import { readRegistryAuth } from "../config/registry-auth.js";
import { DockerRuntime, type ImageInfo } from "../runtime/docker.js";
import { ensureImage } from "../runtime/images.js";
import type { EngineView } from "./placement.js";

export interface Engine {
  readonly config: EngineConfig;
  readonly docker: DockerRuntime;
  /** Answering, with the profiles' images in place. */
  up: boolean;
  /** Why it is not up (named in errors, /healthz, doctor, the status page). */
  down: string | null;
  /** When it last changed between up and down. */
  since: number;
  /** Its Docker version, once it answered. */
  version: string | null;
}

export class EngineSet {
  readonly all: Engine[];
  private readonly byName = new Map<string, Engine>();
  /** Probes under way, one per engine at a time. */
  private readonly probing = new Map<string, Promise<boolean>>();
  /** Image checks under way before a container starts, by engine and image: one at a time each. */
  private readonly checking = new Map<string, Promise<void>>();
  /** The last image ID seen on the source for each image (what imageReady compares with if the source cannot answer). */
  private readonly sourceIds = new Map<string, string>();
  /** The images profiles pull from their registry (`pull = true`), with where their credentials are. */
  private readonly pulls = new Map<string, { auth: string | undefined; field: string }>();

  /**
   * `first` is the runtime of the first engine (the broker's, or a test's); the others are made
   * from their config. The first engine is where images come from.
   */
  constructor(
    config: WrapperConfig,
    first: DockerRuntime,
    private readonly logger: Logger,
  ) {
    this.all = config.engines.map((c, i) => ({
      config: c,
      docker: i === 0 ? first : new DockerRuntime({ engine: c, callTimeoutMs: config.dockerTimeoutMs }),
      up: i === 0,
      down: i === 0 ? null : "not yet reached",
      since: Date.now(),
      version: null,
    }));
    for (const e of this.all) this.byName.set(e.config.name, e);
    config.workers.forEach((p, i) => {
      if (p.pull && !this.pulls.has(p.image)) this.pulls.set(p.image, { auth: p.registry_auth, field: `workers[${i}].registry_auth` });
    });
  }

  /** The engine images come from (the first). */
  get source(): Engine {
    return this.all[0]!;
  }

  get(name: string | undefined): Engine {
    return (name ? this.byName.get(name) : undefined) ?? this.source;
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  /** Placement's view, with this broker's containers on each engine. */
  views(containers: (engine: string) => number): EngineView[] {
    return this.all.map((e) => ({
      name: e.config.name,
      up: e.up,
      down: e.down ?? undefined,
      containers: containers(e.config.name),
      maxContainers: e.config.maxContainers,
      labels: e.config.labels,
      sharedPaths: e.config.sharedPaths,
    }));
  }

  /**
   * Asks an engine whether it answers (ping: 5 s at most). Going down is recorded at once; coming
   * back (or up the first time) only after `prepare` has made it ready (images, orphans). Returns
   * whether it is up now. One probe per engine at a time.
   */
  probe(e: Engine, prepare: (e: Engine) => Promise<void>): Promise<boolean> {
    const running = this.probing.get(e.config.name);
    if (running) return running;
    const p = (async (): Promise<boolean> => {
      try {
        const v = await e.docker.ping();
        e.version = v.version;
        if (!e.up) {
          await prepare(e);
          this.mark(e, null);
        }
        return true;
      } catch (err) {
        this.mark(e, describeError(err));
        return false;
      }
    })().finally(() => this.probing.delete(e.config.name));
    this.probing.set(e.config.name, p);
    return p;
  }

  /** Records an engine up (reason null) or down, logging each change once. */
  mark(e: Engine, reason: string | null): void {
    const up = reason === null;
    if (e.up === up && (up || e.down === reason)) return;
    const was = e.up;
    e.up = up;
    e.down = reason;
    if (was !== up) {
      e.since = Date.now();
      if (up) this.logger.info("engine up", { engine: e.config.name, host: e.config.host, version: e.version });
      else this.logger.warn("engine down: its tasks fail and new ones go to the other engines", { engine: e.config.name, host: e.config.host, reason });
    }
  }

  /**
   * Makes sure `target` has each image with the source's image ID (runtime/images.ts): nothing when
   * it has, else the engine pulls it (a profile with `pull = true`) or the image is streamed to it
   * from the source (docker save into docker load), its progress logged every 10 %. An image
   * missing on the source (and not pulled), a failed pull and an image ID that differs from the
   * source's are each a clear error naming the engine and the image.
   */
  async ensureImages(target: Engine, images: readonly string[]): Promise<void> {
    for (const ref of new Set(images)) {
      const pull = this.pulls.get(ref);
      const doing = pull ? "pulling an image on an engine" : "copying an image to an engine";
      let logged = 0;
      const began = Date.now();
      const r = await ensureImage(this.source.docker, target.docker, ref, {
        registry: pull !== undefined,
        ...(pull?.auth ? { auth: () => readRegistryAuth(pull.auth!, ref, pull.field) } : {}),
        onProgress: (bytes, total) => {
          const tenth = total ? Math.floor((10 * bytes) / total) : Math.floor(bytes / 100e6);
          if (tenth <= logged) return;
          logged = tenth;
          this.logger.info(doing, { engine: target.config.name, image: ref, mb: Math.round(bytes / 1e6), ...(total ? { of: Math.round(total / 1e6) } : {}) });
        },
      });
      this.sourceIds.set(ref, r.id); // the target's ID now equals the source's
      if (r.transferred) this.logger.info(pull ? "image pulled on an engine" : "image copied to an engine", { engine: target.config.name, image: ref, id: r.id, seconds: Math.round((Date.now() - began) / 100) / 10 });
    }
  }

  /**
   * Before a container of `ref` starts on a further engine: makes sure the engine still has the
   * image with the source's ID, and sends (or pulls) it again when not. An engine that was ready
   * when it came up may have drifted since: the image rebuilt on the source (npm run images while
   * the broker runs), or the tag moved on that engine (someone's docker build or pull there). Two
   * inspects when nothing changed (the container's own create, attach and start are dozens of
   * engine calls' worth), none on the source itself; starts of one image on one engine share one
   * check, so a burst of containers streams the image once.
   */
  imageReady(target: Engine, ref: string): Promise<void> {
    if (target === this.source) return Promise.resolve();
    const key = `${target.config.name}\n${ref}`;
    const running = this.checking.get(key);
    if (running) return running;
    const p = (async (): Promise<void> => {
      const [source, have] = await Promise.all([
        // The first engine failing a call must not stop starts elsewhere: its last known ID stands in.
        this.source.docker.imageInspect(ref).then(
          (i) => (i ? (this.sourceIds.set(ref, i.id), i.id) : null),
          (e: unknown) => {
            const known = this.sourceIds.get(ref);
            if (known === undefined) throw e;
            this.logger.warn("cannot ask the first engine for an image's ID; comparing with the last one seen", { image: ref, id: known, error: describeError(e) });
            return known;
          },
        ),
        target.docker.imageInspect(ref),
      ]);
      if (source && have?.id === source) return;
      this.logger.warn("an engine's image differs from the source's: sending it again", { engine: target.config.name, image: ref, want: source, have: have?.id ?? null });
      await this.ensureImages(target, [ref]);
    })().finally(() => this.checking.delete(key));
    this.checking.set(key, p);
    return p;
  }

  /**
   * The source engine's image `ref`, pulled there first when a profile pulls it and the source
   * lacks it (the source is the reference for every other engine's image ID); null: missing.
   */
  async sourceImage(ref: string): Promise<ImageInfo | null> {
    if (this.pulls.has(ref)) await this.ensureImages(this.source, [ref]);
    return this.source.docker.imageInspect(ref);
  }

  /** What /healthz, doctor, the status page and /metrics show of each engine. */
  describe(containers: (engine: string) => number): EngineStatus[] {
    return this.all.map((e) => ({
      name: e.config.name,
      host: e.config.host,
      state: e.up ? "up" : "down",
      ...(e.down ? { reason: e.down } : {}),
      since: new Date(e.since).toISOString(),
      containers: containers(e.config.name),
      maxContainers: e.config.maxContainers === Number.MAX_SAFE_INTEGER ? null : e.config.maxContainers,
      labels: e.config.labels,
      ...(e.version ? { version: e.version } : {}),
    }));
  }
}

export interface EngineStatus {
  name: string;
  host: string;
  state: "up" | "down";
  reason?: string;
  since: string;
  containers: number;
  /** null: unbounded (the one local engine of a broker without [[engines]]). */
  maxContainers: number | null;
  labels: string[];
  version?: string;
}
