// The official MCP conformance suite (@modelcontextprotocol/conformance, a pinned devDependency)
// against a broker run as its own process: every server scenario, with the ones that do not apply
// to the broker (conformance-not-applicable.yml, each with its reason in docs/mcp.md) passed as the
// suite's expected failures, so the suite's own verdict is that every other scenario passes and
// every listed one still fails. The suite needs Node ≥ 22: it runs in a container of the rehearsal
// image sharing the host's network namespace (support/node22.ts), against 127.0.0.1.
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import { afterAll, beforeAll, expect, it } from "vitest";
import { startChildBroker, type ChildBroker } from "../support/child-broker.js";
import { makeWorkspace, removeTestContainers, TEST_API_KEY } from "../support/env.js";
import { NODE_MODULES, runNode22 } from "../support/node22.js";

const RUN = `cmw-conformance-${process.pid}`;
const SUITE = `${NODE_MODULES}/@modelcontextprotocol/conformance/dist/index.js`;
const NOT_APPLICABLE_FILE = fileURLToPath(new URL("./conformance-not-applicable.yml", import.meta.url));
const NOT_APPLICABLE = (parse(readFileSync(NOT_APPLICABLE_FILE, "utf8")) as { server: string[] }).server;
/** The scenarios that apply to a server offering tools and resources, as the broker does. */
const APPLICABLE = ["server-initialize", "ping", "tools-list", "resources-list", "server-sse-multiple-streams", "dns-rebinding-protection"];

interface Check { id: string; status: "SUCCESS" | "FAILURE" | "WARNING" | "INFO" | "SKIPPED"; errorMessage?: string; details?: Record<string, unknown> }

let broker: ChildBroker;

beforeAll(async () => {
  // No token: the suite sends no Authorization header (and dns-rebinding-protection is about
  // servers without one). A finished mission first, so that resources-list checks a real artifact.
  broker = await startChildBroker({ name: "conformance", auth: { OPENAI_API_KEY: TEST_API_KEY }, logLevel: "info" });
  const ws = makeWorkspace();
  const r = await broker.client.callTool({ name: "batch", arguments: { workspace: ws, mission: { name: "conf", tasks: [{ id: "w", prompt: "#fake write out/conf.txt conformance", sandbox: "workspace-write", artifacts: ["out/*.txt"] }] } } }, undefined, { timeout: 150_000 });
  expect((r.structuredContent as { status: string }).status).toBe("succeeded");
});

afterAll(async () => {
  await broker?.stop();
  removeTestContainers(RUN);
});

it("passes every conformance scenario that applies to a server offering tools and resources", async () => {
  const out = mkdtempSync(path.join(os.tmpdir(), "cmw-conformance-"));
  const r = await runNode22([SUITE, "server", "--url", `${broker.base}/mcp`, "--suite", "all", "--expected-failures", "/cmw/not-applicable.yml", "--output-dir", "/results"], {
    run: RUN,
    mounts: [`${NOT_APPLICABLE_FILE}:/cmw/not-applicable.yml:ro`, `${out}:/results`],
    timeoutMs: 150_000,
  });
  // Each scenario's checks, from its results directory (server-<scenario>-<timestamp>/checks.json).
  const checks = new Map<string, Check[]>();
  for (const d of readdirSync(out)) {
    const scenario = /^server-(.+)-\d{4}-\d\d-\d\dT[\d-]+Z$/.exec(d)?.[1];
    if (scenario) checks.set(scenario, JSON.parse(readFileSync(path.join(out, d, "checks.json"), "utf8")) as Check[]);
  }
  const report = [...checks].map(([s, cs]) => `${s}: ${cs.filter((c) => c.status !== "INFO").map((c) => `${c.status} ${c.id}${c.errorMessage ? ` (${c.errorMessage})` : ""}`).join("; ")}`).join("\n");
  expect(r.code, `the suite's verdict (exit 0: every scenario passes but the listed ones, which fail):\n${r.stdout.slice(-3000)}\n${r.stderr.slice(-2000)}\n${report}`).toBe(0);
  expect([...checks.keys()].sort(), "the suite ran exactly the applicable and the listed scenarios").toEqual([...APPLICABLE, ...NOT_APPLICABLE].sort());
  for (const s of APPLICABLE) {
    const cs = checks.get(s)!;
    expect(cs.filter((c) => c.status === "FAILURE" || c.status === "WARNING"), `${s} has no failure and no warning`).toEqual([]);
    expect(cs.some((c) => c.status === "SUCCESS"), `${s} passed a check`).toBe(true);
  }
  expect(checks.get("resources-list")!.find((c) => c.id === "resources-list")?.details?.resourceCount, "resources-list checked the mission's artifact, not an empty list").toBeGreaterThan(0);
});

it("docs/mcp.md gives the reason for each scenario that does not apply", () => {
  const doc = readFileSync(fileURLToPath(new URL("../../../docs/mcp.md", import.meta.url)), "utf8");
  const section = doc.slice(doc.indexOf("## Conformance"));
  expect(section.length, "docs/mcp.md has a Conformance section").toBeGreaterThan(20);
  expect(NOT_APPLICABLE.filter((s) => !section.includes(`\`${s}\``)), "scenarios docs/mcp.md does not name").toEqual([]);
});
