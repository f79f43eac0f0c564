// Setup file for both test projects: os.tmpdir() is the run's temp root (temp-root.ts) in the test
// process and in every process it starts (child brokers inherit TMPDIR).
import { inject } from "vitest";

process.env.TMPDIR = inject("tempRoot");
