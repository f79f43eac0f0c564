// The relay channel's framing (src/relay/frames.ts): a DATA frame's bytes are handed on as they
// arrive, and whatever the chunking, every stream gets its bytes in order and control frames whole.
import { describe, expect, it } from "vitest";
import { dataFrames, encodeFrame, FRAME, FrameReader, type Frame } from "../../../src/relay/frames.js";

/** A deterministic byte pattern of `n` bytes, different per `seed`. */
const bytes = (n: number, seed: number): Buffer => Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + seed * 7) & 0xff));

describe("FrameReader", () => {
  it("hands on a DATA frame's first bytes before the frame is whole (a Codex request arriving in several reads)", () => {
    const payload = bytes(40_000, 1);
    const wire = Buffer.concat([encodeFrame(FRAME.OPEN, 7, Buffer.from("model")), dataFrames(7, payload)]);
    const reader = new FrameReader();
    // The first read: the OPEN frame and the request's head, 16 KB of a 40 KB frame.
    const first = reader.push(wire.subarray(0, 16_384));
    expect(first.map((f) => f.type)).toEqual([FRAME.OPEN, FRAME.DATA]);
    expect(first[1]!.stream).toBe(7);
    const head = first[1]!.payload;
    expect(head.length).toBe(16_384 - 14 - 9);
    expect(head.equals(payload.subarray(0, head.length))).toBe(true);
    // The rest, in two more reads, continues the same stream's bytes.
    const rest = [...reader.push(wire.subarray(16_384, 30_000)), ...reader.push(wire.subarray(30_000))];
    expect(rest.every((f) => f.type === FRAME.DATA && f.stream === 7)).toBe(true);
    expect(Buffer.concat([head, ...rest.map((f) => f.payload)]).equals(payload)).toBe(true);
  });

  it("splits at any byte give each stream its bytes in order and every control frame whole", () => {
    const sent: Frame[] = [
      { type: FRAME.READY, stream: 0, payload: Buffer.from('{"listeners":{"model":38080}}') },
      { type: FRAME.OPEN, stream: 1, payload: Buffer.from("model") },
      { type: FRAME.DATA, stream: 1, payload: bytes(70_000, 2) }, // over MAX_PAYLOAD: two frames
      { type: FRAME.OPEN, stream: 2, payload: Buffer.from("egress") },
      { type: FRAME.DATA, stream: 2, payload: bytes(300, 3) },
      { type: FRAME.DATA, stream: 1, payload: bytes(5, 4) },
      { type: FRAME.PAUSE, stream: 2, payload: Buffer.alloc(0) },
      { type: FRAME.END, stream: 1, payload: Buffer.alloc(0) },
      { type: FRAME.RESET, stream: 2, payload: Buffer.alloc(0) },
    ];
    const wire = Buffer.concat(sent.map((f) => (f.type === FRAME.DATA ? dataFrames(f.stream, f.payload) : encodeFrame(f.type, f.stream, f.payload))));
    const want = (frames: Frame[]): { control: string[]; data: Map<number, Buffer> } => {
      const data = new Map<number, Buffer>();
      const control: string[] = [];
      for (const f of frames) {
        if (f.type === FRAME.DATA) data.set(f.stream, Buffer.concat([data.get(f.stream) ?? Buffer.alloc(0), f.payload]));
        else control.push(`${f.type}/${f.stream}/${f.payload.toString("hex")}`);
      }
      return { control, data };
    };
    const expected = want(sent);
    let seed = 12345;
    const random = (): number => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
    for (let round = 0; round < 60; round++) {
      const reader = new FrameReader();
      const got: Frame[] = [];
      for (let at = 0; at < wire.length; ) {
        const size = round === 0 ? 1 : 1 + Math.floor(random() * (round % 2 ? 40 : 20_000));
        // Copies: a reader must not depend on the chunks it was given staying as they were.
        for (const f of reader.push(Buffer.from(wire.subarray(at, at + size)))) got.push({ ...f, payload: Buffer.from(f.payload) });
        at += size;
      }
      const seen = want(got);
      expect(seen.control).toEqual(expected.control);
      expect([...seen.data.keys()].sort()).toEqual([...expected.data.keys()].sort());
      for (const [k, v] of expected.data) expect(seen.data.get(k)!.equals(v), `stream ${k}, round ${round}`).toBe(true);
      expect(got.every((f) => f.type !== FRAME.DATA || f.payload.length > 0)).toBe(true);
    }
  });

  it("refuses a frame announcing more than a forwarder ever sends", () => {
    const head = Buffer.alloc(9);
    head.writeUInt8(FRAME.DATA, 0);
    head.writeUInt32BE(1, 1);
    head.writeUInt32BE(2 * 1024 * 1024, 5);
    expect(() => new FrameReader().push(head)).toThrow(/over the limit/);
  });
});
