import { defineConfig } from "vitest/config";

// Two projects: unit tests (no Docker) and integration tests (a real Docker engine, the
// rehearsal image with the real Codex inside). Integration tests share one engine, so they
// run one file at a time.
export default defineConfig({
  test: {
    projects: [
      { test: { name: "unit", include: ["tests/unit/**/*.test.ts"], testTimeout: 30_000 } },
      {
        test: {
          name: "integration",
          include: ["tests/integration/**/*.test.ts"],
          testTimeout: 180_000,
          hookTimeout: 180_000,
          fileParallelism: false,
          globalSetup: ["tests/integration/global-setup.ts"],
        },
      },
    ],
  },
});
