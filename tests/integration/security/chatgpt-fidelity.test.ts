// ChatGPT fidelity (issue 19, item 3): with a ChatGPT login, the model requests that reach the
// relay's upstream are the ones the real Codex sends ChatGPT's Codex backend by itself. Both
// sides run the real Codex (the worker image) with the same login, prompt and settings:
// - built-in: Codex alone in a container, its built-in provider and default URLs; chatgpt.com
//   resolves to a TLS capture server on the container's loopback (a CA made in the container,
//   given to Codex by CODEX_CA_CERTIFICATE); no network (only lo).
// - relay: a broker's pool (exec driver) whose model_upstream is a capture server on the host's
//   loopback at ChatGPT's path (/backend-api/codex); the container holds only the sentinel.
// Both capture servers answer model calls from the rehearsal model. The test compares every
// model call (GET …/models, POST …/responses): method, path and query, every header and its
// value, and the decoded body, with only the values that vary per run normalised (named below).
import { execFileSync, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { decompress } from "fzstd";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execArgv } from "../../../src/codex/exec-protocol.js";
import { startRehearsalServer, type RehearsalServer } from "../../../src/rehearsal/server.js";
import { CONTAINER_GID, CONTAINER_UID, CONTAINER_USER, makeWorkspace, PREFIX, removeTestContainers, TEST_LABEL } from "../support/env.js";
import { poolFixture } from "../support/pool.js";

const RUN = `fidelity-${process.pid}`;
const fixture = poolFixture(RUN);
const WORKER_IMAGE = `${PREFIX}/worker:dev`;
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const CAPTURE_SERVER = path.join(ROOT, "tests/integration/support/capture-server.mjs");

const b64 = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString("base64url");
const jwt = (claims: Record<string, unknown>): string => [b64({ alg: "none", typ: "JWT" }), b64(claims), "sig"].join(".");
const ACCOUNT = `acct-fidelity-${process.pid}`;
const AUTH_CLAIMS = { "https://api.openai.com/auth": { chatgpt_account_id: ACCOUNT, chatgpt_plan_type: "pro", chatgpt_user_id: "user-fidelity" } };
const ACCESS = jwt({ exp: Math.floor(Date.now() / 1000) + 7200, email: "fidelity@example.com", n: `access-${process.pid}`, ...AUTH_CLAIMS });
/** The same login on both sides: the built-in Codex holds it; the broker holds it for the relay. */
const LOGIN = {
  OPENAI_API_KEY: null,
  tokens: { id_token: jwt({ email: "fidelity@example.com", ...AUTH_CLAIMS }), access_token: ACCESS, refresh_token: `rt-fidelity-${process.pid}`, account_id: ACCOUNT },
  last_refresh: new Date().toISOString(),
};
/** A tool call, then the final answer: two POST /responses, the second carrying the tool's output. */
const PROMPT = "#fake run echo fidelity";
/** A model name Codex has no metadata for gives it the plain shell tool the rehearsal model drives. */
const MODEL = "rehearsal";

interface Captured {
  method: string;
  url: string;
  rawHeaders: string[];
  body?: string;
  upgrade?: boolean;
}
interface ModelCall {
  method: string;
  url: string;
  headers: Record<string, string>;
  body: unknown;
}

const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g;
/**
 * The values that legitimately vary per run, each replaced by a placeholder: ids Codex makes
 * (thread, session, turn, window, installation, request ids: UUIDs, in headers, in
 * x-codex-turn-metadata and in the body), the turn's start time (turn_started_at_unix_ms), the
 * rehearsal model's call id nonce (call_fake_…), and in a tool's output its chunk id and wall time.
 */
function normalizeText(s: string): string {
  return s
    .replace(UUID, "<uuid>")
    .replace(/"turn_started_at_unix_ms":\d+/g, '"turn_started_at_unix_ms":"<ms>"')
    .replace(/call_fake_([a-z0-9_]+?)_[0-9a-f]{8}\b/g, "call_fake_$1_<nonce>")
    .replace(/Chunk ID: [0-9a-f]+/g, "Chunk ID: <id>")
    .replace(/Wall time: [0-9.]+ seconds/g, "Wall time: <t> seconds");
}
/** Body fields that vary per run by key: the item timestamps of the ChatGPT metadata passthrough. */
const VARYING_KEYS = new Set(["create_time"]);
function normalizeJson(v: unknown): unknown {
  if (typeof v === "string") return normalizeText(v);
  if (Array.isArray(v)) return v.map(normalizeJson);
  if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, VARYING_KEYS.has(k) ? "<varies>" : normalizeJson(x)]));
  return v;
}
/**
 * Headers that must differ between the two captures, left out of the comparison: Host (the
 * upstream's own address here, chatgpt.com there), Connection (a hop-by-hop header Node's
 * client always sets on the relay's hop; RFC 9110 §7.6.1) and Content-Length's value (the
 * compressed size of a body whose ids differ; its presence is compared).
 */
const HOP_HEADERS = new Set(["host", "connection"]);

function readCapture(file: string): Captured[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Captured);
}
const isModelCall = (c: Captured): boolean => !c.upgrade && ((c.method === "GET" && /\/models(\?|$)/.test(c.url)) || (c.method === "POST" && /\/responses(\/compact)?$/.test(c.url)));

function modelCall(c: Captured): ModelCall {
  const headers: Record<string, string> = {};
  for (let i = 0; i < c.rawHeaders.length; i += 2) {
    const name = c.rawHeaders[i]!.toLowerCase();
    expect(headers[name], `header ${name} sent twice`).toBeUndefined();
    headers[name] = name === "content-length" ? "<present>" : normalizeText(c.rawHeaders[i + 1]!);
  }
  for (const h of HOP_HEADERS) delete headers[h];
  // Header order carries no meaning (and Codex's own varies from call to call): sorted by name.
  const sorted = Object.fromEntries(Object.entries(headers).sort(([a], [b]) => a.localeCompare(b)));
  let raw = Buffer.from(c.body ?? "", "base64");
  if (headers["content-encoding"] === "zstd") raw = Buffer.from(decompress(raw));
  return { method: c.method, url: c.url, headers: sorted, body: raw.length ? normalizeJson(JSON.parse(raw.toString("utf8"))) : null };
}

/** Waits (bounded) for a child's stdout line "listening http=<port> …". */
function listening(child: ChildProcess): Promise<number> {
  return new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`capture server did not listen within 10 s: ${out}`)), 10_000);
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString("utf8");
      const m = /listening http=(\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.once("exit", (code) => reject(new Error(`capture server exited (${code}): ${out}`)));
  });
}

/** A directory the container's user may write. */
function sharedDir(prefix: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), `cmw-${prefix}-`));
  if (process.getuid?.() === 0) execFileSync("chown", [`${CONTAINER_UID}:${CONTAINER_GID}`, dir]);
  chmodSync(dir, 0o777);
  return dir;
}

/**
 * Codex alone, in its built-in ChatGPT mode: the worker image's system config without the three
 * keys that point it at the relay, the same exec command line as the pool's exec driver, the
 * same user, workspace and CODEX_HOME path. Returns what chatgpt.com received.
 */
function captureBuiltIn(): Captured[] {
  const dir = sharedDir("fid-builtin");
  const home = path.join(dir, "home");
  mkdirSync(path.join(home, "lanes", "0"), { recursive: true });
  writeFileSync(path.join(home, "lanes", "0", "auth.json"), JSON.stringify(LOGIN), { mode: 0o600 });
  const config = readFileSync(path.join(ROOT, "images/worker/config.toml"), "utf8")
    .split("\n")
    .filter((l) => !/^(model_provider|openai_base_url|chatgpt_base_url)\s*=/.test(l))
    .join("\n");
  expect(config).not.toMatch(/127\.0\.0\.1/);
  writeFileSync(path.join(dir, "config.toml"), config, { mode: 0o644 });
  // The rehearsal model, as the image would hold it (ESM, Node built-ins only).
  cpSync(path.join(ROOT, "dist/rehearsal"), path.join(dir, "rehearsal"), { recursive: true });
  writeFileSync(path.join(dir, "rehearsal", "package.json"), '{"type":"module"}\n');
  if (process.getuid?.() === 0) execFileSync("chown", ["-R", `${CONTAINER_UID}:${CONTAINER_GID}`, home]);
  const ws = makeWorkspace();
  const argv = execArgv({ model: MODEL, config: { approval_policy: JSON.stringify("never") } });
  const script = [
    "set -e",
    "t=$(mktemp -d) && cd $t",
    // A test CA and chatgpt.com's certificate, made here: nothing outside this container trusts it.
    'openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 1 -subj "/CN=cmw fidelity test CA" -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null',
    "openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj /CN=chatgpt.com 2>/dev/null",
    "printf 'subjectAltName=DNS:chatgpt.com\\nbasicConstraints=CA:FALSE\\nextendedKeyUsage=serverAuth\\n' > ext.cnf",
    "openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem -days 1 -extfile ext.cnf 2>/dev/null",
    "REHEARSAL_PORT=38081 node /opt/cmw-fid/rehearsal/main.js &",
    "CAPTURE_TLS_PORT=443 CAPTURE_TLS_KEY=$t/srv.key CAPTURE_TLS_CERT=$t/srv.pem node /opt/cmw-fid/capture-server.mjs > $t/listening &",
    "for i in $(seq 1 200); do grep -q listening $t/listening 2>/dev/null && (exec 3<>/dev/tcp/127.0.0.1/38081) 2>/dev/null && break; sleep 0.05; done",
    "cd /workspace",
    'printf %s "$PROMPT" | CODEX_CA_CERTIFICATE=$t/ca.pem "$@"',
  ].join("\n");
  const args = [
    "run", "--rm", "--name", `cmw-${RUN}-builtin`, "--label", `${TEST_LABEL}=${RUN}`,
    "--network", "none", "--add-host", "chatgpt.com:127.0.0.1", "--sysctl", "net.ipv4.ip_unprivileged_port_start=0",
    "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--user", CONTAINER_USER,
    "-v", `${home}:/codex-home`, "-v", `${ws}:/workspace`, "-v", `${dir}:/opt/cmw-fid`,
    "-v", `${path.join(dir, "config.toml")}:/etc/codex/config.toml:ro`, "-v", `${CAPTURE_SERVER}:/opt/cmw-fid/capture-server.mjs:ro`,
    "-e", "CODEX_HOME=/codex-home/lanes/0", "-e", `PROMPT=${PROMPT}`,
    "-e", "CAPTURE_OUT=/opt/cmw-fid/builtin.jsonl", "-e", "CAPTURE_MODEL=http://127.0.0.1:38081", "-e", `CAPTURE_ACCOUNT=${ACCOUNT}`,
    WORKER_IMAGE, "sh", "-c", script, "sh", ...argv,
  ];
  const run = spawnSync("docker", args, { encoding: "utf8", timeout: 150_000 });
  expect(run.stdout, `the built-in run's turn (exit ${run.status}): ${run.stderr.slice(-3000)}`).toMatch(/"type":"turn\.completed"/);
  return readCapture(path.join(dir, "builtin.jsonl"));
}

describe("ChatGPT fidelity: the relay sends upstream what Codex's built-in ChatGPT mode sends", () => {
  let rehearsal: RehearsalServer;
  let capture: ChildProcess | undefined;
  let port = 0;
  const relayOut = path.join(mkdtempSync(path.join(os.tmpdir(), "cmw-fid-relay-")), "relay.jsonl");

  beforeAll(async () => {
    rehearsal = await startRehearsalServer({ host: "127.0.0.1", port: 0 });
    capture = spawn(process.execPath, [CAPTURE_SERVER], {
      env: { ...process.env, CAPTURE_OUT: relayOut, CAPTURE_MODEL: rehearsal.url.replace(/\/v1$/, ""), CAPTURE_ACCOUNT: ACCOUNT, CAPTURE_HTTP_PORT: "0" },
      stdio: ["ignore", "pipe", "inherit"],
    });
    port = await listening(capture);
  });
  afterAll(async () => {
    if (capture?.pid) process.kill(capture.pid);
    await rehearsal?.close();
    removeTestContainers(RUN);
  });

  it("exec driver, ChatGPT login: every model call (method, path, query, each header and its value, the decoded body) is the built-in one; only the named per-run values differ", async () => {
    const builtIn = captureBuiltIn();

    const pool = await fixture.start({
      workers: [{ name: "default", protocol: "exec", image: WORKER_IMAGE, capacity: 1, max_containers: 1 }],
      auth: LOGIN,
      broker: { model_upstream: `http://127.0.0.1:${port}/backend-api/codex` },
    });
    const r = await pool.runTurn({ workspace: makeWorkspace(), prompt: PROMPT, model: MODEL });
    expect(r.outcome.status, r.outcome.error ?? "").toBe("succeeded");
    expect(r.outcome.finalMessage).toContain("fidelity");
    const relayed = readCapture(relayOut);

    // The relay forwards model calls only: Codex's other ChatGPT backend calls stop at the relay.
    expect(relayed.filter((c) => !isModelCall(c)).map((c) => `${c.method} ${c.url}`)).toEqual([]);

    const posts = (cs: Captured[]): ModelCall[] => cs.filter((c) => isModelCall(c) && c.method === "POST").map(modelCall);
    // The suffix Codex adds to its user-agent once its client is initialised (" (codex_exec; 0.169.0)")
    // comes or not by a race, on either side: a named per-run value, taken off before comparing.
    const raceless = (m: ModelCall): ModelCall => ({ ...m, headers: { ...m.headers, ...(m.headers["user-agent"] ? { "user-agent": m.headers["user-agent"].replace(/ \(codex_[a-z_]+; [0-9.]+\)$/, "") } : {}) } });
    const gets = (cs: Captured[]): string[] => [...new Set(cs.filter((c) => isModelCall(c) && c.method === "GET").map((c) => JSON.stringify(raceless(modelCall(c)))))].sort();
    const [want, got] = [posts(builtIn), posts(relayed)];
    expect(want).toHaveLength(2);
    // What makes ChatGPT's request its own, so that a custom provider's request could not pass.
    expect(want[0]!.url).toBe("/backend-api/codex/responses");
    expect(want[0]!.headers).toMatchObject({ "content-encoding": "zstd", version: expect.any(String), "x-codex-routing-hint": expect.any(String), authorization: `Bearer ${ACCESS}`, "chatgpt-account-id": ACCOUNT });
    expect(got).toHaveLength(want.length);
    for (const [i, w] of want.entries()) {
      const g = got[i]!;
      expect(`${g.method} ${g.url}`, `request ${i}`).toBe(`${w.method} ${w.url}`);
      expect(g.headers, `request ${i}: its headers`).toEqual(w.headers);
      expect(g.body, `request ${i}: its body`).toEqual(w.body);
    }
    // GET /models: Codex asks more than once, and its user-agent gains a suffix once the client
    // is initialised (a race), so the two sides need not ask the same number of each; every one
    // the upstream got must be one the built-in mode sends, header for header.
    expect(gets(relayed).length).toBeGreaterThan(0);
    expect(gets(builtIn), "a GET /models the built-in mode never sends").toEqual(expect.arrayContaining(gets(relayed)));
  });
});
