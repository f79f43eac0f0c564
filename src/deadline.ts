// A wait with a deadline: the work's own outcome, or the deadline's, whichever comes first. The
// timer is cleared either way, so a wait that ended keeps no timer (and no process) alive.

/**
 * What `work` gives (or throws), or, if `ms` pass first, what `late()` gives or throws. The work
 * is not stopped at the deadline: a caller that can cancel it does so in `late`.
 */
export async function withDeadline<T, L = never>(work: Promise<T>, ms: number, late: () => L): Promise<T | L> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<L>((resolve, reject) => {
    timer = setTimeout(() => {
      try {
        resolve(late());
      } catch (e) {
        reject(e instanceof Error ? e : new Error(String(e)));
      }
    }, ms);
  });
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
