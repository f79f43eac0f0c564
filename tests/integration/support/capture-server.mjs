// A capture server for the ChatGPT fidelity test: records every request it gets (method, URL,
// raw headers, the body as base64) as one JSON line, and answers like ChatGPT's backend would
// for a turn: model calls from the rehearsal model (CAPTURE_MODEL, the body passed on as it
// came), the workspace routing discovery for CAPTURE_ACCOUNT, 426 to a WebSocket upgrade (what
// the relay answers, so both sides fall back to HTTP alike) and 404 to the rest.
// Plain Node built-ins: it runs inside a worker container (Node 22) and on the host (Node 20).
//   env: CAPTURE_OUT (file), CAPTURE_MODEL (http://127.0.0.1:N), CAPTURE_ACCOUNT,
//        CAPTURE_HTTP_PORT (0: any), CAPTURE_TLS_PORT + CAPTURE_TLS_KEY + CAPTURE_TLS_CERT
//   prints "listening http=<port> tls=<port>" once it listens.
import { appendFileSync, readFileSync } from "node:fs";
import http from "node:http";
import https from "node:https";

const out = process.env.CAPTURE_OUT;
const model = new URL(process.env.CAPTURE_MODEL ?? "http://127.0.0.1:38081");
const account = process.env.CAPTURE_ACCOUNT ?? "";
const record = (r) => appendFileSync(out, JSON.stringify(r) + "\n");

function handle(req, res) {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const body = Buffer.concat(chunks);
    record({ method: req.method, url: req.url, rawHeaders: req.rawHeaders, body: body.toString("base64") });
    const path = req.url.split("?")[0];
    if (req.method === "GET" && path.endsWith("/wham/accounts/check")) {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ accounts: [{ id: account, workspace_backend_origin: "NO_CONSTRAINT", account_routing_override: "NO_CONSTRAINT", plan_type: "pro", structure: "personal" }], account_ordering: [account], default_account_id: account }));
      return;
    }
    if (req.method === "POST" && /\/responses(\/compact)?$/.test(path)) {
      const headers = { "content-type": req.headers["content-type"] ?? "application/json", authorization: req.headers.authorization ?? "" };
      if (req.headers["content-encoding"]) headers["content-encoding"] = req.headers["content-encoding"];
      const up = http.request({ host: model.hostname, port: model.port, path: "/v1/responses", method: "POST", headers }, (a) => {
        res.writeHead(a.statusCode ?? 502, a.headers);
        a.pipe(res);
      });
      up.on("error", (e) => {
        res.writeHead(502, { "content-type": "application/json" });
        res.end(JSON.stringify({ error: { message: `capture: the rehearsal model failed: ${e.message}` } }));
      });
      up.end(body);
      return;
    }
    res.writeHead(404, { "content-type": "application/json" });
    res.end(JSON.stringify({ error: { message: `capture: no route ${req.method} ${path}` } }));
  });
}

function onUpgrade(req, socket) {
  // An upgraded socket is the handler's own: the server no longer listens for its errors, and a
  // client that resets it (Codex may, on the 426) would otherwise crash this process.
  socket.on("error", () => socket.destroy());
  record({ method: req.method, url: req.url, rawHeaders: req.rawHeaders, upgrade: true });
  socket.end("HTTP/1.1 426 Upgrade Required\r\nconnection: close\r\ncontent-length: 0\r\n\r\n");
}

const listen = (server, port) =>
  new Promise((resolve, reject) => {
    server.on("upgrade", onUpgrade);
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve(server.address().port));
  });

const httpPort = await listen(http.createServer(handle), Number(process.env.CAPTURE_HTTP_PORT ?? 0));
let tlsPort = "";
if (process.env.CAPTURE_TLS_PORT) {
  const tls = https.createServer({ key: readFileSync(process.env.CAPTURE_TLS_KEY), cert: readFileSync(process.env.CAPTURE_TLS_CERT) }, handle);
  tlsPort = await listen(tls, Number(process.env.CAPTURE_TLS_PORT));
}
process.stdout.write(`listening http=${httpPort} tls=${tlsPort}\n`);
