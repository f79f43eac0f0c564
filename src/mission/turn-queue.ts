/**
 * One conversation's turns run one at a time, in the order they were asked for. Codex runs one
 * turn of a thread at a time (app-server refuses a second at once: "thread … already has a turn
 * running"), and an isolated conversation's copy is read back after each turn, before the next
 * one changes it. A second reply sent while a turn runs waits for it instead of failing, and a
 * task holds its conversation (hold) until it has ended.
 */
export class TurnQueue {
  /** By conversation: settled once every turn asked for so far has ended. */
  private readonly tails = new Map<string, Promise<void>>();
  private waits = 0;

  /** Turns waiting now for their conversation's earlier turn (or its task) to end. */
  get waiting(): number {
    return this.waits;
  }

  /**
   * Runs `fn` once the conversation's earlier turns have ended; `fn` is told how long it waited.
   * A signal that aborts while it waits ends it with `cancelled()` instead, and the turns asked for
   * after it keep their order. `onWait` is called at once if it has to wait.
   */
  async run<T>(conversationId: string, signal: AbortSignal | undefined, fn: (waitedMs: number) => Promise<T>, cancelled: () => T, onWait?: () => void): Promise<T> {
    const before = this.tails.get(conversationId);
    let ended = (): void => {};
    const mine = new Promise<void>((resolve) => (ended = resolve));
    const tail = before ? before.then(() => mine) : mine;
    this.tails.set(conversationId, tail);
    try {
      const since = Date.now();
      if (before) {
        onWait?.();
        this.waits++;
        const settled = await settledUnlessAborted(before, signal).finally(() => this.waits--);
        if (!settled) return cancelled();
      }
      return await fn(before ? Date.now() - since : 0);
    } finally {
      ended();
      if (this.tails.get(conversationId) === tail) this.tails.delete(conversationId);
    }
  }

  /**
   * Holds the conversation from now until the returned release is called (after any earlier
   * turns): the turns asked for meanwhile wait for it. A task holds its conversation from its first
   * turn's end until its check, later attempts and read-back are done.
   */
  hold(conversationId: string): () => void {
    let release = (): void => {};
    const released = new Promise<void>((resolve) => (release = resolve));
    void this.run(conversationId, undefined, () => released, () => undefined);
    return release;
  }
}

/** True once `p` settles; false if `signal` aborts first. */
function settledUnlessAborted(p: Promise<void>, signal: AbortSignal | undefined): Promise<boolean> {
  if (!signal) return p.then(() => true);
  if (signal.aborted) return Promise.resolve(false);
  return new Promise<boolean>((resolve) => {
    const onAbort = (): void => resolve(false);
    signal.addEventListener("abort", onAbort, { once: true });
    void p.then(() => {
      signal.removeEventListener("abort", onAbort);
      resolve(true);
    });
  });
}
