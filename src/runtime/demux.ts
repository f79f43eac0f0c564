// Docker's multiplexed stdio stream (an attach or exec without a TTY), split into stdout and
// stderr. Each frame is an 8-byte header (byte 0: the stream, 0 stdin, 1 stdout, 2 stderr; bytes
// 4-7: the payload's length, big-endian) and then the payload (Docker's engine API, "Attach to a
// container": "Stream format").
//
// docker-modem's demuxStream does the same through two PassThrough streams, concatenating what it
// has buffered with each chunk it receives: every line Codex prints went through a Transform's
// write and read machinery on its way to the broker (in the 200-task profile, the demultiplexer and
// its PassThrough were the largest part of the attach stream's cost outside the broker's own code).
// Here each payload is pushed as it is, sliced from the chunk it came in (no copy), into a plain
// Readable: a payload split over chunks is pushed in pieces, and the readers split lines themselves.
import { Readable } from "node:stream";

const HEADER = 8;

export interface Demuxed {
  stdout: Readable;
  stderr: Readable;
}

/**
 * Splits `source` (the hijacked connection) into stdout and stderr. Both end when the source
 * ends, closes or fails. A header whose stream byte is not 0, 1 or 2 means the stream is not
 * multiplexed (a TTY) or is out of step: from there on every byte goes to stdout as it came, as
 * docker-modem does.
 */
export function demuxStream(source: NodeJS.ReadableStream): Demuxed {
  // Nothing to do when asked for more: bytes come as the source sends them (as with the
  // PassThrough streams before, no backpressure reaches the connection).
  const stdout = new Readable({ read() {} });
  const stderr = new Readable({ read() {} });
  /** The header bytes seen so far of the next frame (a header may be split over chunks). */
  const header = Buffer.alloc(HEADER);
  let headerBytes = 0;
  /** The current frame's stream and the payload bytes still to come. */
  let target: Readable = stdout;
  let left = 0;
  let raw = false;

  const onData = (chunk: Buffer | string): void => {
    const buf = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
    if (raw) {
      stdout.push(buf);
      return;
    }
    let at = 0;
    while (at < buf.length) {
      if (left > 0) {
        const n = Math.min(left, buf.length - at);
        target.push(buf.subarray(at, at + n));
        at += n;
        left -= n;
        continue;
      }
      const n = Math.min(HEADER - headerBytes, buf.length - at);
      buf.copy(header, headerBytes, at, at + n);
      headerBytes += n;
      at += n;
      if (headerBytes < HEADER) break;
      headerBytes = 0;
      const type = header[0];
      if (type !== 0 && type !== 1 && type !== 2) {
        raw = true;
        stdout.push(Buffer.concat([header, buf.subarray(at)]));
        return;
      }
      // Stream 0 (stdin) "is written on stdout", the engine API says.
      target = type === 2 ? stderr : stdout;
      left = header.readUInt32BE(4);
    }
  };
  let ended = false;
  const end = (): void => {
    if (ended) return;
    ended = true;
    source.removeListener("data", onData);
    stdout.push(null);
    stderr.push(null);
  };
  source.on("data", onData);
  source.on("end", end);
  source.on("close", end);
  source.on("error", end);
  return { stdout, stderr };
}
