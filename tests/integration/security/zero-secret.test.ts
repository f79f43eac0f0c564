// Zero-secret, zero-egress workers (real Codex in the rehearsal image, through the model relay):
// for every driver and both login kinds, a task's own commands count the real secrets in their
// container's files and process environments and find none, its auth.json is the sentinel, and
// the model upstream still receives the real credential. The default network is loopback only.
import { chmodSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { tokenFingerprint } from "../../../src/rehearsal/plan.js";
import { ALL_DRIVERS, makeWorkspace, TEST_API_KEY as API_KEY_DEFAULT } from "../support/env.js";
import { poolFixture } from "../support/pool.js";

const RUN = `zero-${process.pid}`;
const fixture = poolFixture(RUN);

const b64 = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString("base64url");
const jwt = (claims: Record<string, unknown>): string => [b64({ alg: "none", typ: "JWT" }), b64(claims), "sig"].join(".");

const API_KEY = `sk-zero-${process.pid}-REAL-KEY-never-in-a-container`;
const ACCESS = jwt({ exp: Math.floor(Date.now() / 1000) + 7200, n: `access-${process.pid}`, email: "zero@example.com", "https://api.openai.com/auth": { chatgpt_account_id: "acct-zero", chatgpt_plan_type: "pro", chatgpt_user_id: "user-zero" } });
const REFRESH = `rt-zero-${process.pid}-REAL-REFRESH-TOKEN`;
const ID_TOKEN = jwt({ email: "zero@example.com", "https://api.openai.com/auth": { chatgpt_account_id: "acct-zero", chatgpt_plan_type: "pro" }, n: `id-${process.pid}` });

const LOGINS = {
  "API key": { auth: { OPENAI_API_KEY: API_KEY }, secrets: [API_KEY], upstreamSees: API_KEY },
  ChatGPT: {
    auth: { OPENAI_API_KEY: null, tokens: { id_token: ID_TOKEN, access_token: ACCESS, refresh_token: REFRESH, account_id: "acct-zero" }, last_refresh: new Date().toISOString() },
    secrets: [ACCESS, REFRESH],
    upstreamSees: ACCESS,
  },
} as const;

/**
 * One shell line that counts `secret` in every file of the container (but /proc, /sys, /dev) and
 * in every process's environment and command line. The secret is passed in two halves, so the
 * prompt (which Codex stores in CODEX_HOME) never holds it whole.
 */
function countCommand(secret: string, i: number): string {
  const half = Math.floor(secret.length / 2);
  // The pattern reaches grep through a file descriptor (printf is a shell builtin): no process's
  // command line or environment holds it, so the count sees only copies that were there before.
  return (
    `S='${secret.slice(0, half)}''${secret.slice(half)}'; ` +
    `f=$(grep -rlF -D skip --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev -f <(printf '%s\\n' "$S") / 2>/dev/null | wc -l); ` +
    `e=$(for p in /proc/[0-9]*; do cat $p/environ $p/cmdline 2>/dev/null; echo; done | tr '\\0' '\\n' | grep -cF -f <(printf '%s\\n' "$S")); ` +
    `echo "secret${i} files=$f env=$e"`
  );
}

describe("no real credential in any worker container", () => {
  for (const [driver, image] of ALL_DRIVERS) {
    for (const [login, l] of Object.entries(LOGINS)) {
      it(`${driver}, ${login}: a task's commands find 0 copies of the secret, auth.json is the sentinel, the upstream gets the real credential`, async () => {
        const pool = await fixture.start({ workers: [{ name: "default", protocol: driver, image, capacity: 1, max_containers: 1 }], auth: l.auth });
        const ws = makeWorkspace();
        const prompt = [...l.secrets.map((s, i) => `#fake run ${countCommand(s, i)}`), "#fake run cat $CODEX_HOME/auth.json", "#fake auth"].join("\n");
        const r = await pool.runTurn({ workspace: ws, prompt });
        expect(r.outcome.status, r.outcome.error ?? "").toBe("succeeded");
        const out = r.outcome.finalMessage ?? "";
        l.secrets.forEach((_, i) => expect(new RegExp(`secret${i} files=\\d+ env=\\d+`).exec(out)?.[0], `copies of secret ${i} in the container's files and process environments`).toBe(`secret${i} files=0 env=0`));
        // The counts ran for real: each printed its line (a broken command would print none).
        expect(out.match(/secret\d files=\d+ env=\d+/g)).toHaveLength(l.secrets.length);
        const authJson = /ran cat \$CODEX_HOME\/auth\.json(?: \(exit \d+\))?:\n([\s\S]*?)\nauth: /.exec(out)?.[1] ?? "";
        if (driver === "app-server" && login === "ChatGPT") expect(authJson).toMatch(/No such file/); // pushed over the protocol
        else expect(authJson).toMatch(/cmw-relay/);
        for (const s of l.secrets) expect(authJson).not.toContain(s);
        expect(out).toContain(`auth: ${tokenFingerprint(l.upstreamSees)}`);
      });
    }
  }
});

describe("the default network", () => {
  it("a task's commands see only lo and no route", async () => {
    const pool = await fixture.start({ workers: [{ name: "default", network: undefined, capacity: 1, max_containers: 1 }] });
    expect(pool.config.workers[0]!.network).toBe("none");
    const r = await pool.runTurn({ workspace: makeWorkspace(), prompt: "#fake run ls /sys/class/net; echo routes=$(tail -n +2 /proc/net/route | wc -l); echo v6routes=$(grep -vc ' lo$' /proc/net/ipv6_route || true)" });
    expect(r.outcome.status, r.outcome.error ?? "").toBe("succeeded");
    const out = r.outcome.finalMessage ?? "";
    expect(out).toMatch(/:\nlo\nroutes=0\nv6routes=0/);
  });
});

describe("the relay's token checks", () => {
  /** A node script (one line, written by #fake write) that POSTs to a URL with a token ("own": its auth.json's). */
  const SCRIPT =
    'const [u,t]=process.argv.slice(2);const tok=t==="own"?JSON.parse(require("fs").readFileSync(process.env.CODEX_HOME+"/auth.json","utf8")).OPENAI_API_KEY:t;' +
    'fetch(u,{method:"POST",headers:{authorization:"Bearer "+tok,"content-type":"application/json"},body:"{}"}).then(async r=>console.log("status="+r.status+" "+(await r.text())),e=>console.log("error="+e.message))';
  const post = (url: string, token: string): string => `#fake run node /tmp/post.js ${url} ${token}`;

  it("refuses a path outside the model API, another container's token, and a removed container's token", async () => {
    const pool = await fixture.start({ workers: [{ name: "default", capacity: 1, max_containers: 2 }] });
    const [wsA, wsB] = [makeWorkspace(), makeWorkspace()];
    const a = await pool.runTurn({ workspace: wsA, prompt: "#fake run echo a" });
    expect(a.outcome.status, a.outcome.error ?? "").toBe("succeeded");
    const slot = a.container!.split("-").at(-2)!;
    const tokenA = (JSON.parse(readFileSync(path.join(pool.config.stateDir, "workers", pool.config.label, "default", slot, "auth.json"), "utf8")) as { OPENAI_API_KEY: string }).OPENAI_API_KEY;
    expect(tokenA).toMatch(/^cmw-relay-/);

    const b = await pool.runTurn({
      workspace: wsB,
      prompt: [`#fake write /tmp/post.js ${SCRIPT}`, post("http://127.0.0.1:38080/v1/files", "own"), post("http://127.0.0.1:38080/v1/responses", tokenA)].join("\n"),
    });
    expect(b.outcome.status, b.outcome.error ?? "").toBe("succeeded");
    expect(b.container).not.toBe(a.container);
    const outB = b.outcome.finalMessage ?? "";
    expect(outB).toMatch(/status=403 .*POST \/v1\/files is not a model API call/);
    expect(outB).toMatch(/status=401 .*belongs to another container/);

    // A's container goes (evicted: max_containers 2, a third workspace): its token is revoked.
    const c = await pool.runTurn({ workspace: makeWorkspace(), prompt: "#fake run echo c" });
    expect(c.outcome.status).toBe("succeeded");
    expect(pool.stats().containers.map((x) => x.name)).not.toContain(a.container);
    const again = await pool.runTurn({ workspace: wsB, prompt: post("http://127.0.0.1:38080/v1/responses", tokenA) });
    expect(again.container).toBe(b.container);
    expect(again.outcome.finalMessage).toMatch(/status=401 .*unknown or was revoked/);
  });
});

describe("a workspace the worker cannot write", () => {
  it("a workspace-write task is refused before any container starts, naming the owner, the container's user and the fix", async () => {
    const pool = await fixture.start({ workers: [{ name: "default", capacity: 1, max_containers: 1 }] });
    const ws = mkdtempSync(path.join(os.tmpdir(), "cmw-ro-ws-"));
    chmodSync(ws, 0o555); // like a root-owned CI checkout seen by the container's user
    try {
      const r = await pool.runTurn({ workspace: ws, sandbox: "workspace-write", prompt: "#fake write a.txt never" });
      expect(r.outcome.status).toBe("failed");
      expect(r.outcome.error).toMatch(new RegExp(`^workspace: ${ws} is owned by uid \\d+ \\(gid \\d+, mode 0555\\) and the worker container runs as uid \\d+, which cannot write it`));
      expect(r.outcome.error).toMatch(/chown -R \d+:\d+ /);
      expect(r.container).toBeNull();
      expect(pool.stats().containers).toEqual([]);
      // Read-only tasks still run there.
      const ro = await pool.runTurn({ workspace: ws, sandbox: "read-only", prompt: "#fake run ls -ld /workspace" });
      expect(ro.outcome.status, ro.outcome.error ?? "").toBe("succeeded");
    } finally {
      rmSync(ws, { recursive: true, force: true });
    }
  });
});

describe("the relay channel", () => {
  const about = {
    netns: "on a local engine by default, the broker's own sockets on the container's loopback (no forwarder)",
    socket: "on a local engine, a unix socket in CODEX_HOME",
    stdio: "through the engine (the forwarder's stdio, as on a remote engine)",
  };
  for (const channel of ["netns", "socket", "stdio"] as const) {
    it(`${about[channel]}: turns and a streamed answer go through, with the real credential upstream`, async () => {
      const pool = await fixture.start({ workers: [{ name: "default", capacity: 1, max_containers: 1 }], ...(channel === "netns" ? {} : { pool: { relayChannel: channel } }) });
      const r = await pool.runTurn({ workspace: makeWorkspace(), prompt: "#fake run ls -la /codex-home/.relay.sock 2>&1 | cut -c1 ; echo listed; echo forwarders=$(pgrep -fc '^node /opt/codex-relay/forwarder.js')\n#fake auth\n#fake deltas 300" });
      expect(r.outcome.status, r.outcome.error ?? "").toBe("succeeded");
      const out = r.outcome.finalMessage ?? "";
      expect(out).toMatch(channel === "socket" ? /:\ns\nlisted/ : /:\nl\nlisted/); // "s": a socket; "l" of "ls: cannot access"
      expect(out).toContain(`forwarders=${channel === "netns" ? 0 : 1}`); // the netns channel has no process in the container
      expect(out).toContain(`auth: ${tokenFingerprint(API_KEY_DEFAULT)}`);
      expect(out).toContain(Array.from({ length: 300 }, (_, k) => `w${k + 1}`).join(" "));
      expect(r.usage).toMatchObject({ requests: 2, inputTokens: 200, model: "rehearsal" });
    });
  }
});
