// The model relay's upstream failing, with the real worker image (not the rehearsal: its model is
// the upstream under test, a server on 127.0.0.1 named by broker.model_upstream). Codex retries as
// it would against the API; then the task ends with an error that says what the upstream did.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { tokenFingerprint } from "../../../src/rehearsal/plan.js";
import { makeWorkspace, PREFIX, TEST_API_KEY } from "../support/env.js";
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
// Codex's built-in provider (the images' config) retries 4 times a request and 5 times a stream,
// with backoff, and cannot be given fewer: these tasks use a provider of their own, on the same
// relay address with the same auth.json, that retries once, so the tests see Codex's own retries
// through the relay without waiting a minute for them.
const FEW_RETRIES = {
  model_provider: "relay-test",
  model_providers: { "relay-test": { name: "relay test", base_url: "http://127.0.0.1:38080/v1", wire_api: "responses", requires_openai_auth: true, supports_websockets: false, request_max_retries: 1, stream_max_retries: 1 } },
};

describe("the model upstream fails", () => {
  it("an upstream 5xx: Codex retries through the relay, then the task fails naming the status", async () => {
    const up = await upstream((res) => res.writeHead(503, { "content-type": "application/json" }).end(JSON.stringify({ error: { message: "upstream overloaded (test)", type: "server_error" } })));
    const pool = await fixture.start({ broker: { model_upstream: up.url }, workers: [worker] });
    const r = await pool.runTurn({ workspace: makeWorkspace(), prompt: "hello", config: FEW_RETRIES });
    expect(r.outcome.status).toBe("failed");
    expect(r.outcome.error ?? "").toMatch(/503/);
    expect(r.outcome.error ?? "").toContain("upstream overloaded (test)");
    expect(up.requests()).toBeGreaterThan(1); // Codex's own retries went through the relay
    expect(new Set(up.auth)).toEqual(new Set(["Bearer sk-test-rehearsal-0123456789abcdef"])); // the real key, every time
  });

  it("an upstream that never answers: the relay ends each request after broker.model_timeout, and the task fails naming the upstream", async () => {
    const up = await upstream(() => {}); // never answers
    const pool = await fixture.start({ broker: { model_upstream: up.url, model_timeout: "1s" }, workers: [worker] });
    const r = await pool.runTurn({ workspace: makeWorkspace(), prompt: "hello", config: FEW_RETRIES });
    expect(r.outcome.status).toBe("failed");
    expect(r.outcome.error ?? "").toMatch(/no answer within 1 s/);
    expect(up.requests()).toBeGreaterThan(1);
  });
});

describe("the model upstream resets a long request as it arrives", () => {
  // Seen at 1,000 tasks over 3 engines: one task waited for ever after a 502. The relay stopped
  // piping the request's body to the failed upstream and left the rest of it unread, so the
  // connection stayed paused mid-request and Codex's retry on it was never read. A request of
  // about 1 MB arrives in many pieces (on either channel) and is still arriving at the reset.
  for (const channel of ["netns", "stdio"] as const) {
    it(`(${channel} channel) each of Codex's retries gets its 502, and the task fails naming the upstream`, async () => {
      let n = 0;
      server = http.createServer((req) => {
        n++;
        req.socket.destroy();
      });
      await new Promise<void>((r) => server!.listen(0, "127.0.0.1", r));
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
      const pool = await fixture.start({ broker: { model_upstream: url }, workers: [worker], pool: { relayChannel: channel } });
      // A bound of the test's own: before the fix the turn waited until it.
      const r = await pool.runTurn({ workspace: makeWorkspace(), prompt: `hello ${"lorem ipsum ".repeat(80_000)}`, config: FEW_RETRIES, timeoutMs: 60_000 });
      expect(r.outcome.status, r.outcome.error ?? "").toBe("failed");
      expect(r.outcome.error ?? "").toMatch(/502 Bad Gateway: relay: the model upstream http:\/\/127\.0\.0\.1:\d+ is unreachable or failed: ECONNRESET/);
      expect(n).toBeGreaterThan(1); // Codex's retries reached the upstream
    });
  }
});

describe("the relay forwarder is killed from inside", () => {
  for (const channel of ["socket", "stdio"] as const) {
    it(`(${channel} channel) the broker starts it again and the conversation goes on`, async () => {
      const pool = await fixture.start({ workers: [{ name: "default", capacity: 1, max_containers: 1 }], pool: { relayChannel: channel } });
      const ws = makeWorkspace();
      // The task's command kills the forwarder; Codex's next model request, for the answer, meets
      // the restarted one (or retries until it does).
      // A bound of the test's own: without a restart the turn would wait on a dead forwarder.
      const timeoutMs = 60_000;
      const first = await pool.runTurn({ workspace: ws, timeoutMs, prompt: "#fake run p=$(pgrep -f '^node /opt/codex-relay/forwarder.js'); kill $p; echo killed=$p" });
      expect(first.outcome.status, `the turn whose command killed the forwarder: ${first.outcome.error ?? ""}`).toBe("succeeded");
      const killed = /killed=(\d+)/.exec(first.outcome.finalMessage ?? "")?.[1];
      expect(killed, "the forwarder's pid").toBeDefined();
      const again = await pool.runTurn({ conversationId: first.conversationId!, timeoutMs, prompt: "#fake run echo now=$(pgrep -f '^node /opt/codex-relay/forwarder.js')\n#fake auth" });
      expect(again.outcome.status, again.outcome.error ?? "").toBe("succeeded");
      expect(again.container).toBe(first.container); // the same container, not a replacement
      const now = /now=(\d+)/.exec(again.outcome.finalMessage ?? "")?.[1];
      expect(now, "a forwarder runs again").toBeDefined();
      expect(now).not.toBe(killed);
      expect(again.outcome.finalMessage).toContain(`auth: ${tokenFingerprint(TEST_API_KEY)}`);
    });
  }
});
