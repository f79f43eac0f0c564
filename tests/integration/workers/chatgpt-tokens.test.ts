// ChatGPT tokens with app-server: a token endpoint on 127.0.0.1 issues short-lived access tokens
// (JWTs whose exp the rehearsal model checks, answering 401 once passed) and single-use refresh
// tokens. Four containers running turns across several expiries make exactly one refresh call
// per expiry between them, every turn succeeds, the source auth.json ends with the latest refresh
// token, and no container's CODEX_HOME ever holds a refresh token.
import { readdirSync, readFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ChatgptTokens } from "../../../src/auth/chatgpt-tokens.js";
import { WorkerPool } from "../../../src/pool/pool.js";
import { makeWorkspace, removeTestContainers, TEST_LABEL } from "../support/env.js";
import { docker, testConfig } from "../support/pool.js";

const RUN = `gpt-${process.pid}`;
const LIFETIME_S = 20;
const MARGIN_MS = 8000;
const b64 = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString("base64url");
const jwt = (claims: Record<string, unknown>): string => [b64({ alg: "none", typ: "JWT" }), b64(claims), "sig"].join(".");
const accessToken = (n: number): string => {
  const now = Math.floor(Date.now() / 1000);
  return jwt({ exp: now + LIFETIME_S, iat: now, n, email: "rehearsal@example.com", "https://api.openai.com/auth": { chatgpt_account_id: "acct-test", chatgpt_plan_type: "pro", chatgpt_user_id: "user-test" } });
};

/** Every regular file under dir, recursively (symlinks, which Codex leaves dangling, skipped). */
function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return files(p);
    return e.isFile() ? [p] : [];
  });
}

let server: http.Server | undefined;
let pool: WorkerPool | undefined;
let tokens: ChatgptTokens | undefined;
afterAll(async () => {
  tokens?.stop();
  await pool?.shutdown();
  await new Promise((r) => server?.close(r));
  removeTestContainers(RUN);
});

describe("a ChatGPT login brokered for app-server containers", () => {
  it("refreshes once per expiry for all containers and keeps the refresh token out of them", async () => {
    let generation = 0;
    const calls: { at: number; refreshToken: string }[] = [];
    let reused = 0;
    const spent = new Set<string>();
    server = http.createServer((req, res) => {
      let body = "";
      req.on("data", (d: Buffer) => (body += d.toString()));
      req.on("end", () => {
        const r = JSON.parse(body) as { grant_type: string; refresh_token: string };
        calls.push({ at: Date.now(), refreshToken: r.refresh_token });
        if (spent.has(r.refresh_token) || r.refresh_token !== `rt-${generation}`) {
          reused++;
          res.writeHead(400).end(JSON.stringify({ error: "refresh_token_reused" }));
          return;
        }
        spent.add(r.refresh_token);
        generation++;
        res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ access_token: accessToken(generation), refresh_token: `rt-${generation}`, id_token: jwt({}) }));
      });
    });
    await new Promise<void>((r) => server!.listen(0, "127.0.0.1", r));
    const tokenUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/oauth/token`;

    const config = testConfig({
      run: RUN,
      workers: [{ name: "gpt", protocol: "app-server", capacity: 1, max_containers: 4 }],
      auth: { OPENAI_API_KEY: null, tokens: { access_token: accessToken(0), refresh_token: "rt-0", id_token: jwt({}), account_id: "acct-test" }, last_refresh: new Date().toISOString() },
    });
    tokens = new ChatgptTokens({ authFile: config.authFile, tokenUrl, marginMs: MARGIN_MS });
    tokens.start();
    pool = new WorkerPool({ config, docker, tokens, extraLabels: { [TEST_LABEL]: RUN } });
    await pool.start();
    const ws = makeWorkspace();

    const started = Date.now();
    const outcomes: string[] = [];
    // Three rounds of four concurrent turns, spread over more than two token lifetimes.
    for (let round = 0; round < 3; round++) {
      if (round > 0) expect(calls.length).toBe(round); // a refresh happened since the last round
      const rs = await Promise.all(Array.from({ length: 4 }, (_, i) => pool!.runTurn({ workspace: ws, prompt: `round ${round} task ${i}\n#fake sleep 1000` })));
      outcomes.push(...rs.map((r) => `${r.outcome.status}${r.outcome.error ? `: ${r.outcome.error}` : ""}`));
      expect(new Set(rs.map((r) => r.container)).size).toBe(4);
      // Rounds start just after each refresh (every LIFETIME - margin = 12 s): tokens are pushed between turns.
      const next = started + (round + 1) * 12_500;
      if (Date.now() < next) await new Promise((r) => setTimeout(r, next - Date.now()));
    }
    const elapsed = Date.now() - started;

    expect(outcomes).toEqual(Array(12).fill("succeeded"));
    expect(reused).toBe(0);
    // One call per expiry: the broker refreshes LIFETIME - margin (12 s) after each issue.
    const expiries = Math.floor(elapsed / (LIFETIME_S * 1000 - MARGIN_MS));
    expect(calls.length).toBeGreaterThanOrEqual(2);
    expect(Math.abs(calls.length - expiries)).toBeLessThanOrEqual(1);
    expect(tokens.refreshCount).toBe(calls.length);
    for (let i = 1; i < calls.length; i++) expect(calls[i]!.at - calls[i - 1]!.at).toBeGreaterThan(10_000);

    const source = JSON.parse(readFileSync(config.authFile, "utf8")) as { tokens: { refresh_token: string } };
    expect(source.tokens.refresh_token).toBe(`rt-${generation}`);
    // No refresh token, current or spent, anywhere under the workers' CODEX_HOMEs.
    const workerFiles = files(path.join(config.stateDir, "workers"));
    expect(workerFiles.length).toBeGreaterThan(0);
    for (const f of workerFiles) {
      const text = readFileSync(f).toString("latin1");
      for (let g = 0; g <= generation; g++) expect(text.includes(`"rt-${g}"`), `${f} holds rt-${g}`).toBe(false);
    }
  });
});
