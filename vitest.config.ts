import { defineConfig } from "vitest/config";

// Unit tests (no Docker) and integration tests (a real Docker engine, the rehearsal image with
// the real Codex inside). Integration files run two at a time, each with its own run label,
// ports and temp dirs, except the ones that must have the machine to themselves: they run one at
// a time afterwards (the "integration-alone" project, a later group): the ones that stop or pause
// an engine (the main one, or a test engine), drive hundreds of turns or the clock of token
// expiries, or count on Codex's own retry timing. Each project's run makes its temp dirs under a
// root of its own, removed at the end (tests/support/temp-root.ts).
const TEMP_ROOT = "tests/support/temp-root.ts";
const USE_TEMP_ROOT = "tests/support/use-temp-root.ts";
const ALONE = ["tests/integration/reliability/**/*.test.ts", "tests/integration/engines/**/*.test.ts", "tests/integration/workers/chatgpt-tokens.test.ts"];
const integration = {
  testTimeout: 180_000,
  hookTimeout: 180_000,
  globalSetup: [TEMP_ROOT, "tests/integration/global-setup.ts"],
  setupFiles: [USE_TEMP_ROOT],
};

export default defineConfig({
  test: {
    projects: [
      { test: { name: "unit", include: ["tests/unit/**/*.test.ts"], testTimeout: 30_000, hookTimeout: 60_000, globalSetup: [TEMP_ROOT], setupFiles: [USE_TEMP_ROOT], maxWorkers: 2, sequence: { groupOrder: 0 } } },
      { test: { name: "integration", include: ["tests/integration/**/*.test.ts"], exclude: ALONE, maxWorkers: 2, sequence: { groupOrder: 0 }, ...integration } },
      { test: { name: "integration-alone", include: ALONE, maxWorkers: 1, fileParallelism: false, sequence: { groupOrder: 1 }, ...integration } },
    ],
  },
});
