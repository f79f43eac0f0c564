// Property-based fuzzing (fast-check) of what users hand the broker: missions (JSON/YAML files
// and MCP arguments) and wrapper.toml. A bounded number of cases with a fixed seed (printed on
// failure, so a case replays): every input either parses or is refused with the project's error
// type and a message naming where the problem is; nothing crashes with a TypeError or the like.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { loadConfig, resolveConfig } from "../../../src/config/load.js";
import { WrapperError } from "../../../src/errors.js";
import { loadMission, validateMission } from "../../../src/mission/load.js";

// FUZZ_SEED / FUZZ_RUNS vary a run; a failure prints the seed and path that replay it.
const SEED = Number(process.env.FUZZ_SEED ?? 20261125);
const RUNS = Number(process.env.FUZZ_RUNS ?? 400);
console.log(`fuzz: seed ${SEED}, ${RUNS} runs per property (FUZZ_SEED=${SEED} replays)`);
const config = resolveConfig({ broker: { allowed_workspace_roots: [os.tmpdir()] } }, "fuzz", {});
const dir = mkdtempSync(path.join(os.tmpdir(), "cmw-fuzz-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Parses, or throws a WrapperError whose message says where and what (never a bare crash). */
function parsesOrRefusesClearly(run: () => unknown): void {
  try {
    run();
  } catch (e) {
    if (!(e instanceof WrapperError)) throw new Error(`not a clear refusal: ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`, { cause: e });
    expect(e.message.length).toBeGreaterThan(10);
    // (Quoted parts are the user's own keys and values, echoed.)
    expect(e.message.replace(/"(?:[^"\\]|\\.)*"/g, '""')).not.toMatch(/undefined|\[object Object\]|Cannot read prop/);
  }
}

const validTask = fc.record({
  id: fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,20}$/),
  prompt: fc.string({ minLength: 1, maxLength: 200 }),
});
const validMission = fc.record({ name: fc.string({ minLength: 1, maxLength: 40 }), tasks: fc.uniqueArray(validTask, { minLength: 1, maxLength: 5, selector: (t) => t.id }) });

/** A valid mission with one field somewhere replaced by an arbitrary JSON value. */
const mutatedMission = fc.tuple(validMission, fc.constantFrom("name", "tasks", "workspace", "defaults", "bundle", "task.id", "task.prompt", "task.sandbox", "task.timeout", "task.artifacts", "task.env", "task.approval_policy", "task.config", "extra"), fc.jsonValue()).map(([m, where, value]) => {
  const copy = JSON.parse(JSON.stringify(m)) as Record<string, unknown> & { tasks: Record<string, unknown>[] };
  if (where.startsWith("task.")) copy.tasks[0]![where.slice(5)] = value;
  else (copy as Record<string, unknown>)[where] = value;
  return copy;
});

describe("fuzz: missions", () => {
  it("valid missions parse", () => {
    fc.assert(fc.property(validMission, (m) => void validateMission(m, config)), { seed: SEED, numRuns: RUNS });
  });

  it("arbitrary values and mutated missions parse or are refused naming the field", () => {
    fc.assert(fc.property(fc.oneof(fc.jsonValue(), fc.anything(), mutatedMission), (input) => parsesOrRefusesClearly(() => validateMission(input, config))), { seed: SEED, numRuns: RUNS * 2 });
    fc.assert(
      fc.property(mutatedMission, (input) => {
        try {
          validateMission(input, config);
        } catch (e) {
          // The message names a field path: tasks[0] ("id").field, or a top-level key.
          expect((e as Error).message).toMatch(/tasks\[\d+\]|name|tasks|workspace|defaults|bundle|extra|\(root\)/);
        }
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it("hostile JavaScript values (null prototypes, __proto__ keys, bigints, Maps, typed and sparse arrays) parse or are refused", () => {
    const hostile = fc.anything({ withBigInt: true, withBoxedValues: true, withDate: true, withMap: true, withSet: true, withNullPrototype: true, withObjectString: true, withSparseArray: true, withTypedArray: true, key: fc.oneof(fc.string(), fc.constantFrom("__proto__", "constructor", "prototype", "toString", "tasks", "name", "id", "prompt")) });
    const inMission = fc.tuple(validMission, fc.constantFrom("name", "tasks", "defaults", "workspace", "task.id", "task.prompt", "task.env", "task.config", "task.artifacts", "task.timeout", "task.sandbox"), hostile).map(([m, where, value]) => {
      const copy = JSON.parse(JSON.stringify(m)) as Record<string, unknown> & { tasks: Record<string, unknown>[] };
      if (where.startsWith("task.")) copy.tasks[0]![where.slice(5)] = value;
      else (copy as Record<string, unknown>)[where] = value;
      return copy;
    });
    fc.assert(fc.property(fc.oneof(hostile, inMission), (input) => parsesOrRefusesClearly(() => validateMission(input, config))), { seed: SEED, numRuns: RUNS });
  });

  it("arbitrary file contents (JSON, YAML or neither) parse or are refused", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 400 }), fc.jsonValue().map((v) => JSON.stringify(v)), mutatedMission.map((m) => JSON.stringify(m))), fc.constantFrom("json", "yaml", "yml"), (text, ext) => {
        const file = path.join(dir, `m.${ext}`);
        writeFileSync(file, text);
        parsesOrRefusesClearly(() => loadMission(file, config));
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });
});

describe("fuzz: wrapper.toml", () => {
  const keys = ["label", "channel", "host", "port", "state_dir", "transport", "allowed_workspace_roots", "auth_file", "auth_token_env", "chatgpt_token_url", "image_prefix", "max_prompt_bytes", "max_tasks_per_mission", "bogus"];
  const workerKeys = ["name", "image", "protocol", "capacity", "max_containers", "warm", "warm_workspaces", "sandbox", "approval_policy", "network", "memory", "cpus", "pids_limit", "env", "idle_timeout", "turn_timeout", "bogus"];
  const value = fc.oneof(fc.jsonValue(), fc.string({ maxLength: 30 }), fc.integer(), fc.double(), fc.constantFrom("10s", "2g", "-1", "0", "dev", "release", "app-server", "read-only", "~/x", ""));

  it("arbitrary broker and worker settings resolve or are refused naming the key", () => {
    fc.assert(
      fc.property(fc.dictionary(fc.constantFrom(...keys), value, { maxKeys: 4 }), fc.array(fc.dictionary(fc.constantFrom(...workerKeys), value, { maxKeys: 5 }), { maxLength: 3 }), (broker, workers) => {
        parsesOrRefusesClearly(() => resolveConfig({ broker, ...(workers.length ? { workers } : {}) }, "fuzz.toml", {}));
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it("a valid configuration with one key replaced, removed or added resolves or is refused naming it", () => {
    const valid = { broker: { label: "cmw-fuzz", channel: "dev", host: "127.0.0.1", port: 0, state_dir: "/tmp/cmw-fuzz", allowed_workspace_roots: ["/tmp"], max_prompt_bytes: 1024, max_tasks_per_mission: 10 }, workers: [{ name: "default", image: "x/y:dev", capacity: 2, max_containers: 2, memory: "1g", idle_timeout: "10m", sandbox: "read-only", env: { A: "b" } }] };
    const where = fc.oneof(fc.constantFrom(...keys).map((k) => ["broker", k] as const), fc.constantFrom(...workerKeys).map((k) => ["workers", k] as const), fc.constant(["root", "broker"] as const), fc.constant(["root", "workers"] as const), fc.constant(["root", "bogus"] as const));
    fc.assert(
      fc.property(where, fc.option(value, { nil: undefined }), ([table, key], v) => {
        const doc = structuredClone(valid) as Record<string, unknown> & { broker: Record<string, unknown>; workers: Record<string, unknown>[] };
        const target = table === "root" ? doc : table === "broker" ? doc.broker : doc.workers[0]!;
        if (v === undefined) delete target[key];
        else target[key] = v;
        try {
          resolveConfig(doc, "fuzz.toml", {});
        } catch (e) {
          if (!(e instanceof WrapperError)) throw e;
          expect(e.message).toMatch(/^fuzz\.toml: /);
          expect(e.message).toContain(table === "root" ? key : key === "bogus" ? '"bogus"' : key);
        }
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it("arbitrary file text parses as TOML and validates, or is refused", () => {
    const line = fc.oneof(fc.string({ maxLength: 60 }), fc.tuple(fc.constantFrom(...keys, ...workerKeys), value).map(([k, v]) => `${k} = ${JSON.stringify(v) ?? "1"}`), fc.constantFrom("[broker]", "[[workers]]", "[workers]", "name = \"w\""));
    fc.assert(
      fc.property(fc.array(line, { maxLength: 12 }), (lines) => {
        const file = path.join(dir, "wrapper.toml");
        writeFileSync(file, lines.join("\n"));
        parsesOrRefusesClearly(() => loadConfig({ file, env: {} }));
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });
});
