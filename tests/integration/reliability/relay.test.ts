// The model relay's upstream failing, with the real worker image (not the rehearsal: its model is
// the upstream under test, a server on 127.0.0.1 named by broker.model_upstream). Codex retries as
// it would against the API; then the task ends with an error that says what the upstream did.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { makeWorkspace, PREFIX } from "../support/env.js";
import { poolFixture } from "../support/pool.js";

const RUN = `relayfail-${process.pid}`;
const fixture = poolFixture(RUN);
let server: http.Server | undefined;
afterEach(async () => {
  server?.closeAllConnections();
  await new Promise((r) => (server ? server.close(r) : r(undefined)));
  server = undefined;
});

/** An upstream on 127.0.0.1 that does `answer` with every request; counts them. */
async function upstream(answer: (res: http.ServerResponse) => void): Promise<{ url: string; requests: () => number; auth: string[] }> {
  let n = 0;
  const auth: string[] = [];
  server = http.createServer((req, res) => {
    req.resume();
    n++;
    auth.push(req.headers.authorization ?? "");
    answer(res);
  });
  await new Promise<void>((r) => server!.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`, requests: () => n, auth };
}

const worker = { name: "default", image: `${PREFIX}/worker:dev`, capacity: 1, max_containers: 1 };
/** Codex's own retries, fewer than its defaults so the test is quick (still more than one request). */
const retries = { "model_providers.relay.request_max_retries": 2, "model_providers.relay.stream_max_retries": 2 };

describe("the model upstream fails", () => {
  it("an upstream 5xx: Codex retries through the relay, then the task fails naming the status", async () => {
    const up = await upstream((res) => res.writeHead(503, { "content-type": "application/json" }).end(JSON.stringify({ error: { message: "upstream overloaded (test)", type: "server_error" } })));
    const pool = await fixture.start({ broker: { model_upstream: up.url }, workers: [worker] });
    const r = await pool.runTurn({ workspace: makeWorkspace(), prompt: "hello", config: retries });
    expect(r.outcome.status).toBe("failed");
    expect(r.outcome.error ?? "").toMatch(/503/);
    expect(r.outcome.error ?? "").toContain("upstream overloaded (test)");
    expect(up.requests()).toBeGreaterThan(1); // Codex's own retries went through the relay
    expect(new Set(up.auth)).toEqual(new Set(["Bearer sk-test-rehearsal-0123456789abcdef"])); // the real key, every time
  });

  it("an upstream that never answers: the relay ends each request after broker.model_timeout, and the task fails naming the upstream", async () => {
    const up = await upstream(() => {}); // never answers
    const pool = await fixture.start({ broker: { model_upstream: up.url, model_timeout: "1s" }, workers: [worker] });
    const r = await pool.runTurn({ workspace: makeWorkspace(), prompt: "hello", config: retries });
    expect(r.outcome.status).toBe("failed");
    expect(r.outcome.error ?? "").toMatch(/no answer within 1 s/);
    expect(up.requests()).toBeGreaterThan(1);
  });
});
