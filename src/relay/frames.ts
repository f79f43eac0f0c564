// The relay channel's framing: many TCP connections made inside a worker container, carried
// over one byte stream (the stdio of a `docker exec`'d forwarder) to the broker. Node built-ins
// only: this module also runs inside the worker image (/opt/codex-relay).
//
// A frame is a 9-byte header, type (u8), stream id (u32 BE), payload length (u32 BE), then the
// payload. Stream 0 is the channel itself.

export const FRAME = {
  /** Forwarder → broker, stream 0: JSON `{ "listeners": { name: port } }` once it listens. */
  READY: 1,
  /** Forwarder → broker: a connection was accepted on the listener named by the payload. */
  OPEN: 2,
  DATA: 3,
  /** The sender will write no more on this stream (half-close). */
  END: 4,
  /** The stream is gone (either side): drop it. */
  RESET: 5,
  /** The receiver's buffer is full: stop sending DATA on this stream until RESUME. */
  PAUSE: 6,
  RESUME: 7,
} as const;

export type FrameType = (typeof FRAME)[keyof typeof FRAME];

export interface Frame {
  type: number;
  stream: number;
  payload: Buffer;
}

const HEADER = 9;
/** The largest payload one frame carries; a larger write is split. */
export const MAX_PAYLOAD = 64 * 1024;
/** A peer announcing more than this is not speaking the protocol. */
const MAX_ACCEPTED = 1024 * 1024;

/** Encodes one frame (a payload over MAX_PAYLOAD is the caller's to split: see `dataFrames`). */
export function encodeFrame(type: number, stream: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(HEADER);
  head.writeUInt8(type, 0);
  head.writeUInt32BE(stream, 1);
  head.writeUInt32BE(payload.length, 5);
  return payload.length ? Buffer.concat([head, payload]) : head;
}

/** DATA frames for `data`, split at MAX_PAYLOAD. */
export function dataFrames(stream: number, data: Buffer): Buffer {
  if (data.length <= MAX_PAYLOAD) return encodeFrame(FRAME.DATA, stream, data);
  const parts: Buffer[] = [];
  for (let at = 0; at < data.length; at += MAX_PAYLOAD) parts.push(encodeFrame(FRAME.DATA, stream, data.subarray(at, at + MAX_PAYLOAD)));
  return Buffer.concat(parts);
}

/**
 * Reassembles frames from chunks of a byte stream. A DATA frame's payload is handed on as its bytes
 * arrive, as DATA frames of its stream (one per chunk it spans), not held until the whole frame is
 * here: a request of Codex's (tens of KB, one frame) reaches the engine's far side in several
 * reads, and its head can be parsed, and the model's request begun, while the rest is on its way.
 * Only a frame's header, and the payload of a control frame (READY, OPEN), are ever buffered.
 */
export class FrameReader {
  private buf: Buffer = Buffer.alloc(0);
  /** The DATA frame whose payload is still arriving: its stream and the bytes still to come. */
  private partial: { stream: number; left: number } | null = null;

  /** Feeds a chunk; returns the frames (and pieces of DATA frames) it completed. Throws on a frame no peer would send. */
  push(chunk: Buffer): Frame[] {
    const out: Frame[] = [];
    if (this.partial) {
      const take = Math.min(this.partial.left, chunk.length);
      if (take > 0) out.push({ type: FRAME.DATA, stream: this.partial.stream, payload: chunk.subarray(0, take) });
      this.partial.left -= take;
      if (this.partial.left > 0) return out;
      this.partial = null;
      chunk = chunk.subarray(take);
      if (chunk.length === 0) return out;
    }
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    while (this.buf.length >= HEADER) {
      const type = this.buf.readUInt8(0);
      const stream = this.buf.readUInt32BE(1);
      const length = this.buf.readUInt32BE(5);
      if (length > MAX_ACCEPTED) throw new Error(`relay channel: a frame of ${length} bytes is over the limit (${MAX_ACCEPTED}); the peer is not a relay forwarder`);
      if (this.buf.length < HEADER + length) {
        if (type !== FRAME.DATA) break;
        // The DATA frame's first bytes now, the rest as they come.
        const have = this.buf.length - HEADER;
        if (have > 0) out.push({ type, stream, payload: this.buf.subarray(HEADER) });
        this.partial = { stream, left: length - have };
        this.buf = Buffer.alloc(0);
        break;
      }
      out.push({ type, stream, payload: this.buf.subarray(HEADER, HEADER + length) });
      this.buf = this.buf.subarray(HEADER + length);
    }
    return out;
  }
}
