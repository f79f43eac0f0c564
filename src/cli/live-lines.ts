// A live status line per task for `run-mission` on a terminal: the block of lines is redrawn in
// place as tasks move (cursor up, clear line). Off a terminal, the caller prints plain lines.
export interface LiveTask {
  id: string;
  state: string;
  detail: string;
  startedAt: number | null;
  finishedAt: number | null;
}

const CLEAR_LINE = "\x1b[2K";
const up = (n: number): string => (n > 0 ? `\x1b[${n}A` : "");

export class LiveLines {
  private readonly tasks: LiveTask[];
  private drawn = 0;

  constructor(
    ids: string[],
    private readonly write: (s: string) => void,
    private readonly width = 100,
    private readonly now: () => number = Date.now,
  ) {
    this.tasks = ids.map((id) => ({ id, state: "queued", detail: "", startedAt: null, finishedAt: null }));
  }

  update(id: string, state: string, detail = ""): void {
    const t = this.tasks.find((x) => x.id === id);
    if (!t) return;
    if (state === "running" && t.startedAt === null) t.startedAt = this.now();
    if (state !== "running" && state !== "queued" && state !== "checking") t.finishedAt ??= this.now(); // the clock stops
    t.state = state;
    t.detail = detail.split("\n")[0] ?? "";
    this.render();
  }

  /** The block as text: one line per task, redrawn over the previous block. */
  frame(): string {
    const idWidth = Math.max(...this.tasks.map((t) => t.id.length));
    const lines = this.tasks.map((t) => {
      const secs = t.startedAt === null ? "" : ` ${(((t.finishedAt ?? this.now()) - t.startedAt) / 1000).toFixed(0)}s`;
      const text = `${t.id.padEnd(idWidth)}  ${t.state.padEnd(9)}${secs}${t.detail ? `  ${t.detail}` : ""}`;
      return CLEAR_LINE + text.slice(0, this.width);
    });
    return `${up(this.drawn)}\r${lines.join("\n")}\n`;
  }

  render(): void {
    this.write(this.frame());
    this.drawn = this.tasks.length;
  }
}
