// Hostile input and who gets in, against a broker running as its own process (`serve`, a token
// required, debug logging) with the real Codex in the rehearsal image:
// - a table of hostile MCP calls, each refused with an error naming the field and the fix, and
//   nothing started (no container, no mission record);
// - every HTTP endpoint without or with a wrong token → 401; a foreign Host or Origin → 403;
// - a symlink in the workspace to a host file never becomes an artifact;
// - after missions with a known API key and a known ChatGPT login, neither the key nor any token
//   appears in the broker's logs, the state directory (records, event logs, artifacts, bundles),
//   tool results, the status page, /status.json, /metrics or /healthz.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { request as httpRequest } from "node:http";
import { chownSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LABELS } from "../../../src/worker/container.js";
import { CONTAINER_GID, CONTAINER_UID, makeWorkspace, REHEARSAL_IMAGE } from "../support/env.js";
import { docker } from "../support/pool.js";
import { BIN, callTool, startChildBroker, type ChildBroker } from "../support/child-broker.js";

const API_KEY = `sk-secret-api-key-${process.pid}-DO-NOT-LEAK`;
const TOKEN = `broker-token-${process.pid}-DO-NOT-LEAK`;
const b64 = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString("base64url");
const jwt = (claims: Record<string, unknown>): string => [b64({ alg: "none", typ: "JWT" }), b64(claims), "sig"].join(".");
const ACCESS = jwt({ exp: Math.floor(Date.now() / 1000) + 3600, secret: `access-${process.pid}-DO-NOT-LEAK`, "https://api.openai.com/auth": { chatgpt_account_id: "acct-test", chatgpt_plan_type: "pro" } });
const REFRESH = `refresh-${process.pid}-DO-NOT-LEAK`;
const ID_TOKEN = jwt({ email: "rehearsal@example.com", secret: `id-${process.pid}-DO-NOT-LEAK` });
const SECRETS = [API_KEY, TOKEN, ACCESS, REFRESH, ID_TOKEN, `access-${process.pid}-DO-NOT-LEAK`];

type Instance = ChildBroker;
const instances: Instance[] = [];
let api: Instance;
let chatgpt: Instance;
const results: string[] = [];

async function startBroker(name: string, auth: unknown): Promise<Instance> {
  const inst = await startChildBroker({ name: `sec-${name}`, auth, token: TOKEN });
  instances.push(inst);
  return inst;
}

beforeAll(async () => {
  api = await startBroker("api", { OPENAI_API_KEY: API_KEY });
  chatgpt = await startBroker("chatgpt", { OPENAI_API_KEY: null, tokens: { access_token: ACCESS, refresh_token: REFRESH, id_token: ID_TOKEN, account_id: "acct-test" }, last_refresh: new Date().toISOString() });
});

afterAll(async () => {
  const stopped = await Promise.allSettled(instances.map((i) => i.stop())); // each, even if one fails
  for (const s of stopped) if (s.status === "rejected") throw s.reason;
});

async function call(i: Instance, name: string, args: Record<string, unknown>): Promise<{ isError: boolean; text: string; structured: unknown }> {
  const r = await callTool(i, name, args);
  results.push(r.text, JSON.stringify(r.structured ?? null));
  return r;
}

const missionCount = (i: Instance): number => (existsSync(path.join(i.dir, "state/missions")) ? readdirSync(path.join(i.dir, "state/missions")).length : 0);

describe("hostile input through the MCP endpoint: refused, naming the field, nothing started", () => {
  // outside the allowed roots (the temp dir) on purpose; removed after the table.
  const outside = mkdtempSync(path.join("/var/tmp", "cmw-outside-"));
  const linkToOutside = path.join(mkdtempSync(path.join(os.tmpdir(), "cmw-link-")), "ws");
  symlinkSync(outside, linkToOutside);
  afterAll(() => {
    rmSync(outside, { recursive: true, force: true });
    rmSync(path.dirname(linkToOutside), { recursive: true, force: true });
  });
  const ws = makeWorkspace();
  const task = { id: "t", prompt: "hello" };
  const rows: [string, string, Record<string, unknown>, RegExp][] = [
    ["workspace outside the roots", "batch", { workspace: "/etc", mission: { name: "x", tasks: [task] } }, /workspace: \/etc is outside the allowed workspace roots .*add a root to broker\.allowed_workspace_roots/],
    ["workspace through a symlink", "batch", { workspace: linkToOutside, mission: { name: "x", tasks: [task] } }, /workspace: .*\/ws \(it resolves to \/var\/tmp\/cmw-outside-\w+\) is outside the allowed workspace roots/],
    ["workspace through ..", "batch", { workspace: `${ws}/${"../".repeat(ws.split("/").length - 1)}etc`, mission: { name: "x", tasks: [task] } }, /workspace: .* is outside the allowed workspace roots/],
    ["artifact glob climbing out", "batch", { workspace: ws, mission: { name: "x", tasks: [{ ...task, artifacts: ["../*"] }] } }, /tasks\[0\] \("t"\)\.artifacts\[0\]: "\.\.\/\*" climbs out of the workspace/],
    ["absolute artifact glob", "batch", { workspace: ws, mission: { name: "x", tasks: [{ ...task, artifacts: ["/etc/passwd"] }] } }, /tasks\[0\] \("t"\)\.artifacts\[0\]: "\/etc\/passwd" is absolute/],
    ["task id with path characters", "batch", { workspace: ws, mission: { name: "x", tasks: [{ id: "../../etc", prompt: "p" }] } }, /tasks\[0\].*\.id/],
    ["oversized prompt", "batch", { workspace: ws, mission: { name: "x", tasks: [{ id: "big", prompt: "x".repeat(70_000) }] } }, /tasks\[0\] \("big"\)\.prompt: .*65536/],
    ["too many tasks", "batch", { workspace: ws, mission: { name: "x", tasks: Array.from({ length: 51 }, (_, i) => ({ id: `t${i}`, prompt: "p" })) } }, /tasks: .*50/],
    ["invalid enum value", "batch", { workspace: ws, mission: { name: "x", tasks: [{ ...task, sandbox: "root-access" }] } }, /tasks\[0\] \("t"\)\.sandbox: expected one of "read-only", "workspace-write", "danger-full-access"/],
    ["mission path outside the roots", "batch", { workspace: ws, mission_path: "/etc/passwd" }, /mission_path: \/etc\/passwd is outside the allowed workspace roots .*use a file under one/],
    ["unknown conversation id", "reply", { conversationId: "conv_00000000-0000-0000-0000-000000000000", prompt: "hi" }, /conversationId: no conversation conv_0+-.*use an id returned by batch or reply/],
    ["mission id with path characters", "status", { missionId: "../../../etc/passwd" }, /missionId: /],
    ["cancel of an unknown mission", "cancel", { missionId: "m-20260101000000-abcdef" }, /missionId: no mission m-20260101000000-abcdef/],
  ];

  // Each row on its own: what a row started is compared with what was there before it, and
  // removed after it, so one row that leaks a container fails alone and the next starts clean.
  it.each(rows)("%s", async (name, tool, args, expected) => {
    const containers = async (): Promise<string[]> => (await docker.listByLabels({ [LABELS.instance]: api.label })).map((c) => c.id);
    const before = missionCount(api);
    const had = new Set(await containers());
    try {
      const r = await call(api, tool, args);
      expect(r.isError, r.text).toBe(true);
      expect(r.text).toMatch(expected);
      expect(missionCount(api), `${name}: no mission record`).toBe(before);
      expect((await containers()).filter((id) => !had.has(id)), `${name}: no container started`).toEqual([]);
    } finally {
      for (const id of await containers()) if (!had.has(id)) await docker.remove(id);
    }
  });

  it("malformed JSON-RPC and oversized bodies get JSON-RPC errors, not a crash", async () => {
    const post = (body: string, extra: Record<string, string> = {}): Promise<Response> =>
      fetch(`${api.base}/mcp`, { method: "POST", headers: { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${TOKEN}`, ...extra }, body });
    for (const body of ["{not json", "[]", '{"jsonrpc":"2.0"}', '{"jsonrpc":"1.0","id":1,"method":"initialize"}', "null"]) {
      const r = await post(body);
      expect(r.status, body).toBeGreaterThanOrEqual(400);
      expect(r.status, body).toBeLessThan(500);
      expect(((await r.json()) as { error?: { message?: string } }).error?.message, body).toBeTruthy();
    }
    const big = await post(JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize", params: { pad: "x".repeat(20 * 1024 * 1024) } }));
    expect(big.status).toBe(413);
    expect(((await big.json()) as { error: { message: string } }).error.message).toMatch(/larger than 16 MiB/);
    // The broker is still there.
    expect((await call(api, "status", {})).isError).toBe(false);
  });
});

describe("who gets in", () => {
  const endpoints: [string, string][] = [
    ["GET", "/"], ["GET", "/status.json"], ["GET", "/status/events"], ["GET", "/metrics"], ["POST", "/mcp"], ["GET", "/mcp"], ["DELETE", "/mcp"],
    ["GET", "/sse"], ["POST", "/messages?sessionId=x"], ["GET", "/missions/m-20260101000000-abcdef/bundle.tar.gz"], ["GET", "/missions/m-20260101000000-abcdef/artifacts/t/a.txt"],
  ];

  it("every endpoint but /healthz: 401 without the token or with a wrong one", async () => {
    for (const [method, p] of endpoints) {
      const tries: Record<string, string>[] = [{}, { authorization: "Bearer wrong" }, { authorization: `Bearer ${TOKEN}x` }, { authorization: `Basic ${Buffer.from("u:wrong").toString("base64")}` }];
      for (const headers of tries) {
        const r = await fetch(`${api.base}${p}`, { method, headers: { "content-type": "application/json", ...headers }, body: method === "POST" ? "{}" : undefined, signal: AbortSignal.timeout(10_000) });
        expect(r.status, `${method} ${p} ${JSON.stringify(headers)}`).toBe(401);
        await r.body?.cancel();
      }
    }
    const h = await fetch(`${api.base}/healthz`);
    expect(h.status).toBe(200);
    const health = (await h.json()) as Record<string, unknown>;
    expect(Object.keys(health).sort()).toEqual(["channel", "docker", "engines", "label", "uptimeSeconds", "version", "workers"]);
    expect(health.engines).toEqual({ local: "up" }); // names and states only: no host, no reason
  });

  it("serve refuses a non-loopback bind without a token", () => {
    const cfg = path.join(api.dir, "open.toml");
    writeFileSync(cfg, `[broker]\nlabel = "${api.label}-open"\nport = 0\nstate_dir = "${api.dir}/open-state"\nauth_file = "${api.dir}/auth.json"\n[[workers]]\nname = "default"\nimage = "${REHEARSAL_IMAGE}"\n`);
    const env: NodeJS.ProcessEnv = { ...process.env };
    delete env.CODEX_WRAPPER_AUTH_TOKEN_ENV;
    const r = spawnSync(process.execPath, [BIN, "serve", "--config", cfg, "--host", "0.0.0.0"], { encoding: "utf8", env, timeout: 30_000 });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/broker\.host: 0\.0\.0\.0 is not a loopback address, so a bearer token is required; set broker\.auth_token_env/);
  });

  it("a foreign Host or Origin: 403 even with the token", async () => {
    // node:http, because fetch will not send a Host header of the caller's choosing.
    const status = (method: string, p: string, headers: Record<string, string>): Promise<number> =>
      new Promise((resolve, reject) => {
        const u = new URL(`${api.base}${p}`);
        const req = httpRequest({ host: u.hostname, port: u.port, path: `${u.pathname}${u.search}`, method, headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json", ...headers } }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on("error", reject);
        req.end(method === "POST" ? "{}" : undefined);
      });
    for (const [method, p] of endpoints) {
      const foreign: Record<string, string>[] = [{ host: "evil.example:80" }, { origin: "http://evil.example" }];
      for (const headers of foreign) {
        expect(await status(method, p, headers), `${method} ${p} ${JSON.stringify(headers)}`).toBe(403);
      }
    }
  });
});

describe("secrets stay secret", () => {
  it("a symlink in the workspace to a host file never becomes an artifact", async () => {
    const ws = makeWorkspace();
    // /etc/passwd and /etc/shadow here are the host's: the broker, not the container, reads them.
    const prompt = "#fake run ln -s /etc/passwd leak; ln -s /etc/shadow leak.txt; ln -s /etc leakdir; echo real > real.txt; ls -l";
    const r = await call(api, "batch", { workspace: ws, mission: { name: "links", tasks: [{ id: "l", prompt, sandbox: "workspace-write", artifacts: ["*.txt", "leak", "leakdir/**"] }] } });
    expect(r.isError, r.text).toBe(false);
    const t = (r.structured as { missionId: string; tasks: { status: string; finalMessage: string; artifacts: { path: string }[] }[] }).tasks[0]!;
    expect(t.status).toBe("succeeded");
    expect(t.finalMessage).toMatch(/leak -> \/etc\/passwd/); // the links were made
    expect(t.artifacts.map((a) => a.path)).toEqual(["real.txt"]);
    const copied = path.join(api.dir, "state/missions", (r.structured as { missionId: string }).missionId, "artifacts");
    expect(spawnSync("find", [copied, "-type", "f", "-printf", "%P\\n"], { encoding: "utf8" }).stdout.split("\n").filter(Boolean).sort()).toEqual(["l/real.txt", "manifest.json"]);
    expect(execTar(path.join(copied, "../bundle.tar.gz"))).not.toContain("root:");
  });

  it("runs missions with the API key and with the ChatGPT login; the model gets the credential, nobody else sees it", async () => {
    for (const inst of [api, chatgpt]) {
      const ws = makeWorkspace();
      mkdirSync(path.join(ws, "out"));
      chownSync(path.join(ws, "out"), CONTAINER_UID, CONTAINER_GID);
      const r = await call(inst, "batch", { workspace: ws, mission: { name: "secrets", tasks: [{ id: "auth", prompt: "#fake auth" }, { id: "env", prompt: "#fake run env > out/env.txt; ls -la /codex-home >> out/env.txt", sandbox: "workspace-write", artifacts: ["out/*"] }, { id: "fail", prompt: "#fake fail boom" }, ...(inst === api ? [{ id: "cat", prompt: "#fake run cat $CODEX_HOME/auth.json\n#fake run printf 'leaked=%s' \"$LEAKED\"", env: { LEAKED: API_KEY } }] : [])] } });
      const tasks = (r.structured as { tasks: { id: string; status: string; finalMessage: string | null; error: string | null }[] }).tasks;
      expect(tasks.map((t) => t.status), `${inst.label}: ${r.text}`).toEqual(["succeeded", "succeeded", "failed", ...(inst === api ? ["succeeded"] : [])]);
      if (inst === api) {
        // The worker's auth.json holds only its relay token (the sentinel). A raw secret reaches the
        // worker only when a task is handed one (here in its env, as a careless mission might):
        // Codex prints it, so its events and final message carry it, and the scan below has a raw
        // secret to miss if a scrub is missing.
        expect(tasks[3]!.finalMessage, "Codex printed its auth.json: the sentinel").toMatch(/ran cat \$CODEX_HOME\/auth\.json:\n\{\s*"OPENAI_API_KEY": "cmw-relay-/);
        expect(tasks[3]!.finalMessage, "the printed credential is scrubbed").toContain("leaked=[redacted]");
      }
      // The model receives the credential (the rehearsal answers its hash): the API key, or the
      // ChatGPT access token, put in place of the worker's sentinel by the broker's relay.
      expect(tasks[0]!.finalMessage, inst.label).toBe(`auth: sha256:${createHash("sha256").update(inst === api ? API_KEY : ACCESS).digest("hex").slice(0, 12)}`);
      for (const p of ["/", "/status.json", "/metrics", "/healthz"]) results.push(await (await fetch(`${inst.base}${p}`, { headers: { authorization: `Bearer ${TOKEN}` } })).text());
    }
    // Requests with the right and wrong tokens were made above, and missions run: scan everything.
    const scanned: string[] = [];
    const leaks: string[] = [];
    const check = (where: string, text: string): void => {
      scanned.push(where);
      for (const s of SECRETS) if (text.includes(s)) leaks.push(`${where} contains ${s.slice(0, 12)}…`);
    };
    for (const inst of instances) {
      check(`${inst.label} log`, inst.log());
      const walk = (dir: string): void => {
        for (const name of readdirSync(dir)) {
          const p = path.join(dir, name);
          // workers/ holds each worker's CODEX_HOME: Codex's own records of what its tasks did,
          // here a key a task was handed and printed. Its auth.json files are checked below.
          if (p === path.join(inst.dir, "state", "workers")) continue;
          const st = lstatSync(p); // Codex leaves dangling links in its home: not files to scan
          if (st.isDirectory()) walk(p);
          else if (st.isFile()) {
            let text = readFileSync(p).toString("latin1");
            if (name.endsWith(".tar.gz")) text += execTar(p);
            check(path.relative(inst.dir, p), text);
          }
        }
      };
      walk(path.join(inst.dir, "state"));
    }
    results.forEach((r, i) => check(`tool result/page ${i}`, r));
    expect(leaks, "no secret in the logs, the state directory, tool results or pages: a secret here is one that was not scrubbed").toEqual([]);
    // The search does find a secret where one must be: the broker's own auth file, outside state/.
    const found = spawnSync("grep", ["-rl", API_KEY, api.dir], { encoding: "utf8" }).stdout;
    expect(found.split("\n")).toContain(path.join(api.dir, "auth.json"));
    // Each worker's auth.json holds its sentinel, no secret (security/zero-secret.test.ts counts every file).
    const workerAuth = spawnSync("find", [path.join(api.dir, "state", "workers"), path.join(chatgpt.dir, "state", "workers"), "-name", "auth.json"], { encoding: "utf8" }).stdout.split("\n").filter(Boolean);
    expect(workerAuth.length).toBeGreaterThan(0);
    for (const f of workerAuth) check(f, readFileSync(f, "utf8"));
    expect(leaks).toEqual([]);
    expect(scanned.some((s) => s.endsWith("events.jsonl"))).toBe(true);
    expect(scanned.some((s) => s.includes("artifacts/env/out/env.txt"))).toBe(true);
    expect(scanned.some((s) => s.endsWith("bundle.tar.gz"))).toBe(true);
    expect(instances.every((i) => i.log().includes("Unauthorized") || i.log().length > 0)).toBe(true);
    // (That one holds for any started broker.) The scanned logs cover the missions: workers started for them.
    for (const i of instances) expect(i.log(), i.label).toContain('"msg":"worker container started"');
  });
});

/** The contents of every file in a .tar.gz, concatenated. */
function execTar(file: string): string {
  return spawnSync("tar", ["-xzOf", file], { encoding: "latin1", maxBuffer: 64 << 20 }).stdout ?? "";
}
