// The broker's unix socket for one container's forwarder (the socket channel, on a local engine):
// the forwarder's first connection is its control channel (frames: READY, and its life), and
// each connection Codex makes in the container arrives as a unix connection of its own, opened
// by an OPEN frame that names its listener and then carrying the bytes as they are. Those are
// handed to the forwarder's channel whole: no framing or multiplexing on the data path.
import net from "node:net";
import type { RelayChannel } from "./channel.js";
import { FRAME, type Frame } from "./frames.js";

const HEADER = 9;
/** A listener's name is a short word; a longer first frame is not from a forwarder. */
const MAX_FIRST_PAYLOAD = 4096;
/** How long a new connection may take to say what it is. */
const FIRST_FRAME_MS = 10_000;

export class ForwarderSocket {
  readonly server: net.Server;
  /** Takes the next control connection (a forwarder starting); unset, a control connection is refused. */
  onControl: ((socket: net.Socket) => void) | undefined;
  /** The running forwarder's channel: its data connections are served on it. */
  channel: RelayChannel | undefined;

  constructor() {
    this.server = net.createServer((s) => {
      // A container that is paused, killed or removed resets its connections (ECONNRESET): that is
      // the connection's end, seen by whoever holds it as a close, never an uncaught error (which
      // would end the broker). Found by the docker-pause fault test in a clean-clone CI run.
      s.on("error", () => s.destroy());
      void this.sort(s);
    });
  }

  private async sort(socket: net.Socket): Promise<void> {
    const first = await readFirstFrame(socket);
    if (!first) {
      socket.destroy();
      return;
    }
    if (first.frame.type === FRAME.OPEN) {
      const channel = this.channel;
      if (!channel || channel.isClosed) socket.destroy();
      else channel.adopt(socket, first.frame.payload.toString("utf8"));
      return;
    }
    const take = this.onControl;
    if (!take) {
      socket.destroy(); // only the forwarder the broker is waiting for
      return;
    }
    socket.unshift(first.raw); // the channel reads its first frame (READY) itself
    take(socket);
  }
}

/**
 * Reads exactly one frame off a new connection, leaving what follows unread; null if the
 * connection ends, breaks, says nothing in time or does not start with a frame.
 */
function readFirstFrame(socket: net.Socket): Promise<{ frame: Frame; raw: Buffer } | null> {
  return new Promise((resolve) => {
    let head: Buffer | null = null;
    const done = (r: { frame: Frame; raw: Buffer } | null): void => {
      clearTimeout(timer);
      socket.off("readable", onReadable);
      socket.off("end", fail);
      socket.off("close", fail);
      socket.off("error", fail);
      resolve(r);
    };
    const fail = (): void => done(null);
    const onReadable = (): void => {
      if (!head) {
        head = socket.read(HEADER) as Buffer | null;
        if (!head) return;
        if (head.length < HEADER || head.readUInt32BE(5) > MAX_FIRST_PAYLOAD) return fail();
      }
      const length = head.readUInt32BE(5);
      const payload = length ? (socket.read(length) as Buffer | null) : Buffer.alloc(0);
      if (!payload) return;
      if (payload.length < length) return fail();
      done({ frame: { type: head.readUInt8(0), stream: head.readUInt32BE(1), payload }, raw: Buffer.concat([head, payload]) });
    };
    const timer = setTimeout(fail, FIRST_FRAME_MS);
    socket.on("readable", onReadable);
    socket.once("end", fail);
    socket.once("close", fail);
    socket.once("error", fail);
  });
}
