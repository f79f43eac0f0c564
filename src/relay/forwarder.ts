#!/usr/bin/env node
// The relay forwarder, run inside a worker container by `docker exec` (no network needed):
// listens on the container's loopback and carries every connection it accepts to the broker.
// Without --connect, all of them travel multiplexed over its own stdin/stdout (frames.ts; through
// the engine: works on any engine). With --connect, the broker listens on a unix socket in the
// container's CODEX_HOME (a local engine: the engine is out of the data path): the forwarder's
// first connection there is its control channel (READY, and its life: the broker restarts a
// forwarder whose channel closes), and every accepted connection gets a unix connection of its
// own that starts with an OPEN frame naming its listener and then carries the bytes as they are
// (no framing, no multiplexing: the broker's HTTP server reads them as from a socket). Codex's
// model provider points at the `model` listener; with network = "allowlist", HTTP(S)_PROXY points
// at the `egress` listener.
//   node forwarder.js [--connect=/codex-home/.relay.sock] model=38080 [egress=38081]
// It holds no secret: the broker checks each request and puts the real credential in.
import net from "node:net";
import { FRAME, FrameReader, dataFrames, encodeFrame, type Frame } from "./frames.js";

const listeners = new Map<string, number>();
let connectTo: string | null = null;
for (const arg of process.argv.slice(2)) {
  if (arg.startsWith("--connect=")) {
    connectTo = arg.slice("--connect=".length);
    continue;
  }
  const m = /^([a-z]+)=(\d+)$/.exec(arg);
  if (!m) {
    process.stderr.write(`relay forwarder: bad argument "${arg}"; expected name=port\n`);
    process.exit(2);
  }
  listeners.set(m[1]!, Number(m[2]));
}

/** The channel to the broker: written to by `send`, read by `onChunk`. */
const channel = connectTo ? net.connect(connectTo) : null;
const out: NodeJS.WritableStream & { cork(): void; uncork(): void } = channel ?? process.stdout;
/** A connection; `pausedByBroker` while the broker's side of its stream is full. */
type Conn = net.Socket & { pausedByBroker?: boolean };
const sockets = new Map<number, Conn>();
let nextId = 1;
/** Sockets paused because the channel to the broker is full. */
let channelFull = false;

/** Frames written in one turn of the event loop leave in one write (see channel.ts). */
let corked = false;
function send(frame: Buffer): void {
  if (!corked) {
    corked = true;
    out.cork();
    setImmediate(() => {
      corked = false;
      out.uncork();
    });
  }
  if (!out.write(frame) && !channelFull) {
    channelFull = true;
    for (const s of sockets.values()) s.pause();
    out.once("drain", () => {
      channelFull = false;
      for (const s of sockets.values()) if (!s.destroyed && !s.pausedByBroker) s.resume();
    });
  }
}

/** The socket channel: a new unix connection to the broker (its OPEN frame not yet written). */
const connectBroker = (path: string): net.Socket => net.connect({ path, allowHalfOpen: true });

/** The socket channel: a unix connection to the broker of this connection's own (`early`, if opened at accept), piped both ways. */
function acceptDirect(name: string, socket: net.Socket, path: string, early?: net.Socket): void {
  socket.setNoDelay(true);
  const broker = early ?? connectBroker(path);
  if (broker.destroyed) {
    socket.destroy(); // opened early, and already failed: as a broken connection would
    return;
  }
  broker.write(encodeFrame(FRAME.OPEN, 0, Buffer.from(name)));
  // pipe: each side's end half-closes the other (as END frames do), and a full side pauses the other.
  socket.pipe(broker);
  broker.pipe(socket);
  // Either side broken, or gone while the other still waits on it: drop both (as RESET does).
  const drop = (): void => {
    socket.destroy();
    broker.destroy();
  };
  socket.on("error", drop);
  broker.on("error", drop);
  socket.on("close", () => {
    if (!socket.readableEnded || !broker.readableEnded) drop();
  });
  broker.on("close", () => {
    if (!broker.readableEnded || !socket.readableEnded) drop();
  });
}

/** The Responses WebSocket Codex's built-in provider tries first: the broker would answer it 426. */
const WEBSOCKET_ATTEMPT = /^GET \/v1\/responses(?:\?[^ ]*)? HTTP\/1\.1\r\n(?:[^\r\n]*\r\n)*?upgrade:[ \t]*websocket[ \t]*\r\n/i;
/** A request head longer than this is no WebSocket attempt of Codex's: carry it as it is. */
const MAX_HEAD = 16 * 1024;
const UPGRADE_REFUSED = (() => {
  const body = JSON.stringify({ error: { message: "relay: WebSocket upgrades are not relayed; use HTTP", type: "relay_error" } });
  return `HTTP/1.1 426 Upgrade Required\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`;
})();

/**
 * A connection to the model listener: Codex opens one for its Responses WebSocket at the start of
 * each session (thread), and the broker's relay, which carries HTTP only, would answer it 426.
 * The forwarder answers that attempt itself, as a model on the container's loopback would, so it
 * costs no trip to the broker (measured: one unix connection, the broker's parse and a reply per
 * thread on every turn's path). It holds nothing for it: the answer is a refusal, and anything
 * else (every model call) is carried to the broker untouched, first bytes included.
 */
function acceptModel(name: string, socket: net.Socket): void {
  const chunks: Buffer[] = [];
  let size = 0;
  // On the socket channel the broker connection is opened now, while Codex sends its request, so
  // that the request's first bytes find it connected and accepted, not waiting on a connect. Its
  // OPEN frame goes with those bytes: a WebSocket attempt drops it unused, before it said anything,
  // so the broker (which waits for a connection's OPEN) never serves it.
  const early = connectTo ? connectBroker(connectTo) : undefined;
  early?.on("error", () => {}); // its errors are handled once it is carried; unused, it is dropped
  const decide = (): void => {
    socket.off("data", onData);
    socket.off("end", onEnd);
    socket.pause();
    const head = Buffer.concat(chunks);
    if (WEBSOCKET_ATTEMPT.test(head.toString("latin1"))) {
      early?.destroy();
      socket.on("error", () => {});
      socket.end(UPGRADE_REFUSED);
      return;
    }
    socket.unshift(head);
    carry(name, socket, early);
  };
  const onData = (d: Buffer): void => {
    chunks.push(d);
    size += d.length;
    const text = Buffer.concat(chunks).toString("latin1");
    // Decided at the first bytes for a model call (a POST), at the head's end for a GET.
    if (!text.startsWith("GET ".slice(0, Math.min(4, text.length))) || text.includes("\r\n\r\n") || size > MAX_HEAD) decide();
  };
  // Gone before its head was whole: nothing to carry.
  const onEnd = (): void => {
    early?.destroy();
    socket.destroy();
  };
  socket.on("data", onData);
  socket.once("end", onEnd);
  socket.once("error", onEnd);
}

function accept(name: string, socket: net.Socket): void {
  if (name === "model") return acceptModel(name, socket);
  carry(name, socket);
}

/** Carries a connection to the broker: on a unix connection of its own, or as frames on stdio. */
function carry(name: string, socket: net.Socket, early?: net.Socket): void {
  if (connectTo) return acceptDirect(name, socket, connectTo, early);
  const id = nextId;
  nextId = (nextId % 0x7fffffff) + 1;
  sockets.set(id, socket);
  socket.setNoDelay(true);
  send(encodeFrame(FRAME.OPEN, id, Buffer.from(name)));
  if (channelFull) socket.pause();
  let ended = false;
  socket.on("data", (d: Buffer) => send(dataFrames(id, d)));
  socket.on("end", () => {
    ended = true;
    send(encodeFrame(FRAME.END, id));
  });
  socket.on("drain", () => send(encodeFrame(FRAME.RESUME, id)));
  socket.on("close", (hadError: boolean) => {
    if (!sockets.has(id)) return;
    sockets.delete(id);
    if (hadError || !ended) send(encodeFrame(FRAME.RESET, id));
  });
  socket.on("error", () => {}); // close follows
  if (!channelFull) socket.resume(); // a model connection arrives paused, its first bytes put back
}

function onFrame(f: Frame): void {
  const s = sockets.get(f.stream);
  if (!s) {
    if (f.type === FRAME.DATA || f.type === FRAME.END) send(encodeFrame(FRAME.RESET, f.stream));
    return;
  }
  switch (f.type) {
    case FRAME.DATA:
      if (!s.write(f.payload)) send(encodeFrame(FRAME.PAUSE, f.stream));
      break;
    case FRAME.END:
      s.end();
      break;
    case FRAME.RESET:
      sockets.delete(f.stream);
      s.destroy();
      break;
    case FRAME.PAUSE:
      s.pausedByBroker = true;
      s.pause();
      break;
    case FRAME.RESUME:
      s.pausedByBroker = false;
      if (!channelFull) s.resume();
      break;
  }
}

const reader = new FrameReader();
const input: NodeJS.ReadableStream = channel ?? process.stdin;
input.on("data", (chunk: Buffer) => {
  try {
    // The frames of one chunk reach each socket in one write.
    const touched = new Set<Conn>();
    for (const f of reader.push(chunk)) {
      const s = f.type === FRAME.DATA ? sockets.get(f.stream) : undefined;
      if (s && !touched.has(s)) {
        touched.add(s);
        s.cork();
      }
      onFrame(f);
    }
    for (const s of touched) s.uncork();
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n`);
    process.exit(1);
  }
});
// The broker went away (or ended this exec): nothing can reach the model any more.
process.stdin.on("end", () => process.exit(0));
input.on("end", () => process.exit(0));
out.on("error", (e: Error) => {
  if (channel) process.stderr.write(`relay forwarder: the broker's socket ${connectTo}: ${e.message}\n`);
  process.exit(channel ? 1 : 0);
});
process.stdin.resume(); // read (nothing comes with --connect) so that its end is seen

const bound: Record<string, number> = {};
for (const [name, port] of listeners) {
  // Half-open on the socket channel: Codex's end reaches the broker as an end, not as a close.
  const server = net.createServer({ allowHalfOpen: connectTo !== null }, (socket) => accept(name, socket));
  server.on("error", (e) => {
    process.stderr.write(`relay forwarder: cannot listen on 127.0.0.1:${port} for ${name}: ${e.message}\n`);
    process.exit(1);
  });
  server.listen(port, "127.0.0.1", () => {
    bound[name] = (server.address() as net.AddressInfo).port;
    if (Object.keys(bound).length === listeners.size) send(encodeFrame(FRAME.READY, 0, Buffer.from(JSON.stringify({ listeners: bound }))));
  });
}
