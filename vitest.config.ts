import { defineConfig } from "vitest/config";

// Two projects: unit tests (no Docker) and integration tests (a real Docker engine, the
// rehearsal image with the real Codex inside). Integration tests share one engine, so they
// run one file at a time. Each project's run makes its temp dirs under a root of its own,
// removed at the end (tests/support/temp-root.ts).
const TEMP_ROOT = "tests/support/temp-root.ts";
const USE_TEMP_ROOT = "tests/support/use-temp-root.ts";

export default defineConfig({
  test: {
    projects: [
      { test: { name: "unit", include: ["tests/unit/**/*.test.ts"], testTimeout: 30_000, globalSetup: [TEMP_ROOT], setupFiles: [USE_TEMP_ROOT] } },
      {
        test: {
          name: "integration",
          include: ["tests/integration/**/*.test.ts"],
          testTimeout: 180_000,
          hookTimeout: 180_000,
          fileParallelism: false,
          globalSetup: [TEMP_ROOT, "tests/integration/global-setup.ts"],
          setupFiles: [USE_TEMP_ROOT],
        },
      },
    ],
  },
});
