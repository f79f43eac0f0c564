// Mirrors the broker's auth file into each worker's CODEX_HOME (auth.json, mode 0600), and again
// when the source changes. A ChatGPT login driven through app-server is not mirrored: its refresh
// token stays with the broker, which logs each app-server in with access tokens instead.
import { chmodSync, chownSync, copyFileSync, renameSync, rmSync, unwatchFile, watchFile } from "node:fs";
import path from "node:path";
import type { Logger } from "../log.js";
import { readAuthFile, type AuthFileInfo } from "./auth-file.js";

export interface SeedTarget {
  dir: string;
  user: { uid: number; gid: number };
  /** False for a ChatGPT login driven through app-server (tokens pushed over the protocol). */
  mirror: boolean;
}

export class AuthSeeder {
  private readonly targets = new Map<string, SeedTarget>();
  private watching = false;
  info: AuthFileInfo;

  constructor(
    private readonly source: string,
    private readonly logger: Logger,
  ) {
    this.info = readAuthFile(source);
  }

  get kind(): AuthFileInfo["kind"] {
    return this.info.kind;
  }

  /** Writes auth.json into a CODEX_HOME and keeps it current while registered. */
  seed(target: SeedTarget): void {
    this.targets.set(target.dir, target);
    this.write(target);
    if (!this.watching) {
      this.watching = true;
      watchFile(this.source, { interval: 1000 }, () => this.refreshAll());
    }
  }

  forget(dir: string): void {
    this.targets.delete(dir);
  }

  private write(t: SeedTarget): void {
    const dest = path.join(t.dir, "auth.json");
    if (!t.mirror) {
      rmSync(dest, { force: true });
      return;
    }
    const tmp = `${dest}.tmp-${process.pid}`;
    copyFileSync(this.source, tmp);
    chmodSync(tmp, 0o600);
    if (process.getuid?.() === 0) chownSync(tmp, t.user.uid, t.user.gid);
    renameSync(tmp, dest);
  }

  private refreshAll(): void {
    try {
      this.info = readAuthFile(this.source);
    } catch (e) {
      this.logger.warn("auth file changed but cannot be read; workers keep the previous copy", { error: (e as Error).message });
      return;
    }
    for (const t of this.targets.values()) {
      try {
        this.write(t);
      } catch (e) {
        this.logger.warn("cannot refresh a worker's auth.json", { dir: t.dir, error: (e as Error).message });
      }
    }
    this.logger.info("auth file changed; mirrored into worker CODEX_HOMEs", { workers: this.targets.size });
  }

  close(): void {
    if (this.watching) unwatchFile(this.source);
    this.watching = false;
  }
}
