import { PassThrough, type Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import { demuxStream } from "../../../src/runtime/demux.js";

/** One frame of Docker's multiplexed stream. */
const frame = (type: number, payload: string | Buffer): Buffer => {
  const body = typeof payload === "string" ? Buffer.from(payload) : payload;
  const h = Buffer.alloc(8);
  h[0] = type;
  h.writeUInt32BE(body.length, 4);
  return Buffer.concat([h, body]);
};

/** Everything a stream gives until it ends. */
const all = (r: Readable): Promise<Buffer> =>
  new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    r.on("data", (d: Buffer) => parts.push(d));
    r.once("end", () => resolve(Buffer.concat(parts)));
    r.once("error", reject);
  });

/** Feeds `bytes` to a demultiplexer in chunks cut at `cuts`, then ends it; stdout and stderr. */
async function feed(bytes: Buffer, cuts: number[], how: "end" | "close" | "error" = "end"): Promise<[string, string]> {
  const source = new PassThrough();
  const { stdout, stderr } = demuxStream(source);
  const out = all(stdout);
  const err = all(stderr);
  let at = 0;
  for (const c of [...cuts, bytes.length]) {
    source.write(bytes.subarray(at, c));
    at = c;
  }
  if (how === "end") source.end();
  else if (how === "close") source.destroy();
  else source.destroy(new Error("ECONNRESET"));
  const [o, e] = await Promise.all([out, err]);
  return [o.toString("utf8"), e.toString("utf8")];
}

describe("demuxStream (Docker's multiplexed stdio)", () => {
  const stream = Buffer.concat([frame(1, '{"id":1}\n'), frame(2, "warn: a\n"), frame(1, '{"method":"x"}\n{"id":2}\n'), frame(0, "echo\n"), frame(2, "é😀 ∑\n"), frame(1, "")]);

  it("sends each frame's payload to its stream, whole, in order", async () => {
    expect(await feed(stream, [])).toEqual(['{"id":1}\n{"method":"x"}\n{"id":2}\necho\n', "warn: a\né😀 ∑\n"]);
  });

  it("gives the same bytes however the chunks cut the frames (headers and payloads split anywhere, a multi-byte character split)", async () => {
    const want = await feed(stream, []);
    // Every single cut point, then every byte a chunk of its own.
    for (let c = 1; c < stream.length; c++) expect(await feed(stream, [c]), `cut at ${c}`).toEqual(want);
    expect(await feed(stream, Array.from({ length: stream.length - 1 }, (_, i) => i + 1))).toEqual(want);
  });

  it("carries a large payload that comes in many chunks", async () => {
    const big = Buffer.alloc(3 * 1024 * 1024, "a");
    const bytes = Buffer.concat([frame(1, big), frame(2, "done\n")]);
    const cuts = Array.from({ length: 50 }, (_, i) => 5 + i * 65_536);
    const [out, err] = await feed(bytes, cuts);
    expect(out.length).toBe(big.length);
    expect(err).toBe("done\n");
  });

  it("ends both streams when the connection ends, closes or fails", async () => {
    for (const how of ["end", "close", "error"] as const) expect(await feed(frame(1, "x\n"), [], how)).toEqual(["x\n", ""]);
  });

  it("passes a stream that is not multiplexed (a TTY's) to stdout as it came", async () => {
    expect(await feed(Buffer.from("plain text from a TTY\nmore\n"), [3, 9])).toEqual(["plain text from a TTY\nmore\n", ""]);
    // Out of step after a valid frame: from there on, raw.
    expect(await feed(Buffer.concat([frame(1, "ok\n"), Buffer.from("garbage!\n")]), [])).toEqual(["ok\ngarbage!\n", ""]);
  });
});
