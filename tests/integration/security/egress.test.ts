// Egress with network = "allowlist": a test host of the test's own (a network namespace on a veth
// pair, an HTTP server on port 80), mapped to a name for the broker's proxy. A task's commands
// reach it by that name when it is allowlisted, through plain HTTP and a CONNECT tunnel; another
// name for the same host, and the broker's own loopback, are refused, and each refusal is in the
// task's notes and live events. (Real Codex in the rehearsal image; the container has no network.)
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DriverEvent } from "../../../src/codex/driver.js";
import { makeWorkspace } from "../support/env.js";
import { startTestHost, type TestHost } from "../support/netns.js";
import { poolFixture } from "../support/pool.js";

const RUN = `egress-${process.pid}`;
const fixture = poolFixture(RUN);
let host: TestHost;
beforeAll(async () => {
  host = await startTestHost();
});
afterAll(async () => {
  await host?.close();
});

/** node's fetch through the proxy in HTTP(S)_PROXY (NODE_USE_ENV_PROXY=1 is set in the container; undici tunnels every request with CONNECT). */
const fetchLine = (url: string): string =>
  `node -e 'fetch("${url}").then(async r=>console.log("status="+r.status+" "+(await r.text()).trim()),e=>console.log("error="+(e.cause?.message||e.message)))' 2>/dev/null`;
/** A raw CONNECT to the egress proxy: prints its status line, then a GET's body through the tunnel, or the refusal's text. */
const connectLine = (host: string): string =>
  `node -e 'const s=require("net").connect(38081,"127.0.0.1",()=>s.write("CONNECT ${host}:80 HTTP/1.1\\r\\nHost: ${host}:80\\r\\n\\r\\n"));let buf="",open=false;s.on("data",d=>{buf+=d;if(!open&&buf.includes("\\r\\n\\r\\n")){open=true;const [head,rest]=buf.split("\\r\\n\\r\\n");console.log("${host}: "+head.split("\\r\\n")[0]);buf=rest;if(/ 200 /.test(head))s.write("GET /tunnel HTTP/1.1\\r\\nHost: ${host}\\r\\nConnection: close\\r\\n\\r\\n")}});s.on("end",()=>console.log("${host} body: "+buf.split("\\r\\n").find(l=>/^(testhost|codex-mcp-wrapper)/.test(l))))'`;

describe('network = "allowlist"', () => {
  it("reaches an allowlisted host by name, refuses another name and the broker's loopback, and records each refusal", async () => {
    const pool = await fixture.start({
      broker: { egress_hosts: { "testhost.cmw.test": host.address, "other.cmw.test": host.address } },
      workers: [{ name: "default", network: "allowlist", allow: ["testhost.cmw.test", "localhost"], capacity: 1, max_containers: 1 }],
    });
    const events: DriverEvent[] = [];
    const r = await pool.runTurn({
      workspace: makeWorkspace(),
      onEvent: (e) => events.push(e),
      prompt: [
        `#fake run ${fetchLine("http://testhost.cmw.test/allowed")}`,
        `#fake run ${connectLine("testhost.cmw.test")}`,
        `#fake run ${fetchLine("http://other.cmw.test/refused")}`,
        `#fake run ${connectLine("localhost")}`,
        `#fake run ${connectLine(host.address)}`,
      ].join("\n"),
    });
    expect(r.outcome.status, r.outcome.error ?? "").toBe("succeeded");
    const out = r.outcome.finalMessage ?? "";
    const addr = host.address.replace(/\./g, "\\.");
    expect(out).toContain("status=200 testhost says hello to GET /allowed");
    expect(out).toContain("testhost.cmw.test: HTTP/1.1 200 Connection Established");
    expect(out).toContain("testhost.cmw.test body: testhost says hello to GET /tunnel");
    expect(out).toMatch(/other\.cmw\.test\/refused[^\n]*:\n(\(node[^\n]*\n[^\n]*\n)?error=/); // node's fetch fails: the proxy answered 403
    expect(out).not.toContain("GET /refused");
    expect(out).toContain("localhost: HTTP/1.1 403 Forbidden");
    expect(out).toMatch(/localhost body: codex-mcp-wrapper egress: refused localhost:80: localhost resolves to (127\.0\.0\.1|::1), a loopback address on the broker's side/);
    expect(out).toContain(`${host.address}: HTTP/1.1 403 Forbidden`);
    expect(out).toMatch(new RegExp(`${addr} body: codex-mcp-wrapper egress: refused ${addr}:80: ${addr} is not in this task's allowlist`));
    // Each refusal is in the task's notes, and was told while the turn ran.
    expect(r.notes).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^egress refused: other\.cmw\.test:80: /),
        expect.stringMatching(/^egress refused: localhost:80: .*loopback/),
        expect.stringMatching(new RegExp(`^egress refused: ${addr}:80: `)),
      ]),
    );
    expect(r.notes!.filter((n) => n.startsWith("egress refused")), JSON.stringify(r.notes)).toHaveLength(3);
    expect(events.filter((e) => e.kind === "warning" && e.message.startsWith("egress refused")).length).toBe(3);
  });

  it('a task of a "none" profile that names hosts gets them, and only for itself', async () => {
    const pool = await fixture.start({
      broker: { egress_hosts: { "testhost.cmw.test": host.address } },
      workers: [{ name: "default", capacity: 1, max_containers: 2 }],
    });
    const ws = makeWorkspace();
    const closed = await pool.runTurn({ workspace: ws, prompt: `#fake run ${fetchLine("http://testhost.cmw.test/closed")}` });
    expect(closed.outcome.finalMessage).toMatch(/error=|status=(?!200)/);
    expect(closed.outcome.finalMessage).not.toContain("testhost says hello");
    const open = await pool.runTurn({ workspace: ws, allow: ["testhost.cmw.test"], prompt: `#fake run ${fetchLine("http://testhost.cmw.test/opened")}` });
    expect(open.outcome.finalMessage).toContain("status=200 testhost says hello to GET /opened");
    expect(open.container).not.toBe(closed.container);
  });
});
