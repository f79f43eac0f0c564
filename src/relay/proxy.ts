// How the broker reaches a model upstream: directly, or through the outbound proxy the broker's
// environment names (HTTPS_PROXY / HTTP_PROXY / ALL_PROXY, with NO_PROXY), as a CI runner or a
// corporate network requires. Only the broker uses it: a worker's requests reach the upstream
// through the relay, and a task's commands only through the broker's egress proxy.
import http from "node:http";
import https from "node:https";
import { HttpProxyAgent } from "http-proxy-agent";
import { HttpsProxyAgent } from "https-proxy-agent";
import { getProxyForUrl } from "proxy-from-env";

/** A keep-alive agent per scheme: each turn's requests reuse connections to the upstream. */
const DIRECT = { http: new http.Agent({ keepAlive: true }), https: new https.Agent({ keepAlive: true }) };
const viaProxy = new Map<string, http.Agent>();

const LOOPBACK = /^(localhost|127(?:\.\d{1,3}){3}|\[::1\])$/i;

/** The proxy URL the environment names for `url`, or "" (loopback never goes through one). */
const proxyFor = (url: URL): string => (LOOPBACK.test(url.hostname) ? "" : getProxyForUrl(url.href));

/** The agent for a request to `url`: a proxy's (kept per proxy and scheme) or a direct one. Loopback is always direct. */
export function upstreamAgent(url: URL): http.Agent {
  const secure = url.protocol === "https:";
  const proxy = proxyFor(url);
  if (!proxy) return secure ? DIRECT.https : DIRECT.http;
  const key = `${secure ? "https" : "http"} ${proxy}`;
  let agent = viaProxy.get(key);
  if (!agent) {
    agent = secure ? new HttpsProxyAgent(proxy, { keepAlive: true }) : new HttpProxyAgent(proxy, { keepAlive: true });
    viaProxy.set(key, agent);
  }
  return agent;
}

/** The proxy a request to `url` goes through, without its credentials (logs, doctor), or null. */
export function upstreamProxy(url: URL): string | null {
  const proxy = proxyFor(url);
  if (!proxy) return null;
  try {
    const p = new URL(proxy);
    return `${p.protocol}//${p.host}`;
  } catch {
    return proxy;
  }
}
