// MCP progress for a mission: a value that strictly increases with every notification (the spec's
// MUST) against a total that never changes, the number of tasks. A finished task counts 1; a
// running one counts a fraction that grows with each of its events and stays below 1, so no
// event can carry the value past a task's end or the mission's total.

/** The share of a task that its events may fill before it ends. */
const RUNNING_SHARE = 0.9;

export class ProgressMeter {
  private readonly events = new Map<string, number>();
  private readonly finished = new Set<string>();
  private last = 0;

  constructor(readonly total: number) {}

  /** The value after an event of a running task (started, a command, a message, a check). */
  event(taskId: string): number {
    if (!this.finished.has(taskId)) this.events.set(taskId, (this.events.get(taskId) ?? 0) + 1);
    return this.next();
  }

  /** The value after a task's end. */
  finish(taskId: string): number {
    this.finished.add(taskId);
    this.events.delete(taskId);
    return this.next();
  }

  private next(): number {
    let value = this.finished.size;
    // k events fill k/(k+1) of the share: each event adds to it, and it never reaches 1.
    for (const k of this.events.values()) value += (RUNNING_SHARE * k) / (k + 1);
    // Past a million events of one task the increments fall below what a double can add to the
    // value; the next representable number above the last keeps the order strict, within total.
    if (value <= this.last) value = Math.min(nextUp(this.last), this.total);
    if (this.finished.size === this.total) value = this.total;
    this.last = value;
    return value;
  }
}

/** The smallest double above x (x ≥ 0). */
function nextUp(x: number): number {
  const buf = new DataView(new ArrayBuffer(8));
  buf.setFloat64(0, x);
  buf.setBigUint64(0, buf.getBigUint64(0) + 1n);
  return buf.getFloat64(0);
}
