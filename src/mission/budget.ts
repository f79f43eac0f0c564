// Token budgets: a task's `max_tokens` and its mission's, counted from the relay's metering of
// every model answer (input tokens, cached ones included, plus output tokens, reasoning
// included). A spent budget makes the relay refuse the task's next model call.
import type { TokenUsage } from "../relay/usage.js";
import type { TurnBudget } from "../pool/pool.js";

/** The tokens an answer counts against a budget. */
export const budgetTokens = (u: TokenUsage): number => u.inputTokens + u.outputTokens;

/** One budget: its name in messages, its limit and what was used of it. */
export class TokenBudget {
  used = 0;

  constructor(
    /** e.g. "the task's max_tokens", "the mission's max_tokens" */
    readonly name: string,
    readonly limit: number,
  ) {}

  /** No further model call may be made. */
  get spent(): boolean {
    return this.used >= this.limit;
  }

  describe(): string {
    return `${this.name} (${this.limit} tokens) is spent: ${this.used} used`;
  }
}

/**
 * A task's budgets (its own and its mission's, either optional), as the pool asks them: refuse a
 * model call once one is spent, and count each answer to both.
 */
export class TaskBudget implements TurnBudget {
  /** Model calls the relay refused for this task. */
  refused = 0;
  /** The budgets this task's own answers spent. */
  private readonly crossed = new Set<TokenBudget>();

  constructor(
    private readonly budgets: TokenBudget[],
    /** Told when an answer of this task spends a budget (once per budget). */
    private readonly onSpent: (b: TokenBudget) => void = () => {},
  ) {}

  /** The first spent budget, if any. */
  spentBudget(): TokenBudget | undefined {
    return this.budgets.find((b) => b.spent);
  }

  refusal(): string | null {
    const b = this.spentBudget();
    if (!b) return null;
    this.refused++;
    return `budget_exceeded: ${b.describe()}; the broker refuses the task's further model calls`;
  }

  spend(u: TokenUsage): void {
    const n = budgetTokens(u);
    for (const b of this.budgets) {
      const was = b.spent;
      b.used += n;
      if (!was && b.spent) {
        this.crossed.add(b);
        this.onSpent(b);
      }
    }
  }

  /** The budget this task ran out of: one its own answer spent, or one spent when it asked for more. */
  exceeded(): TokenBudget | undefined {
    return this.budgets.find((b) => this.crossed.has(b) || (this.refused > 0 && b.spent));
  }
}
