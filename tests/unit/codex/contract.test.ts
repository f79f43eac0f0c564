import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { checkContract, loadGeneratedSchema } from "../../../src/codex/contract.js";

/** A miniature of what `codex app-server generate-json-schema` writes. */
function fixture(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), "cmw-schema-"));
  mkdirSync(path.join(dir, "v2"));
  writeFileSync(path.join(dir, "ClientRequest.json"), JSON.stringify({
    title: "ClientRequest",
    oneOf: [{ properties: { id: {}, method: { enum: ["thread/start"], type: "string" }, params: { $ref: "#/definitions/ThreadStartParams" } }, type: "object" }],
    definitions: {
      ThreadStartParams: { type: "object", properties: { cwd: { type: ["string", "null"] }, sandbox: { anyOf: [{ $ref: "#/definitions/SandboxMode" }, { type: "null" }] } } },
      SandboxMode: { type: "string", enum: ["read-only", "workspace-write", "danger-full-access"] },
    },
  }));
  writeFileSync(path.join(dir, "v2", "ThreadStartResponse.json"), JSON.stringify({
    title: "ThreadStartResponse", type: "object", properties: { thread: { $ref: "#/definitions/Thread" } },
    definitions: { Thread: { type: "object", properties: { id: { type: "string" } } } },
  }));
  return dir;
}

const entry = (params: z.ZodType, result?: z.ZodType) => ({
  direction: "request" as const,
  method: "thread/start",
  params,
  ...(result ? { result: { definition: "ThreadStartResponse", schema: result } } : {}),
});

describe("checkContract", () => {
  const gen = loadGeneratedSchema(fixture());

  it("accepts a subset of the real schema", () => {
    const ok = entry(z.object({ cwd: z.string().optional(), sandbox: z.enum(["read-only", "danger-full-access"]).optional() }), z.object({ thread: z.object({ id: z.string() }) }));
    expect(checkContract([ok], gen)).toEqual([]);
  });

  it("names a field the real schema does not have", () => {
    expect(checkContract([entry(z.object({ cwdir: z.string() }))], gen)).toEqual(["request thread/start params.cwdir: field missing"]);
  });

  it("names an enum value the real schema does not allow", () => {
    const problems = checkContract([entry(z.object({ sandbox: z.enum(["read-only", "full-yolo"]) }))], gen);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^request thread\/start params\.sandbox: value "full-yolo" is not allowed/);
  });

  it("names a missing method and a missing response field", () => {
    expect(checkContract([{ direction: "request", method: "thread/fly" }], gen)).toEqual(["request thread/fly: method missing"]);
    expect(checkContract([entry(z.object({}), z.object({ thread: z.object({ uuid: z.string() }) }))], gen)).toEqual(["request thread/start result.thread.uuid: field missing"]);
  });
});
