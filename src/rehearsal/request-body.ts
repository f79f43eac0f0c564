// Decodes a request body as its Content-Encoding says. Codex compresses its Responses requests
// with zstd when it speaks to ChatGPT's backend through its built-in provider (what the worker
// images configure), so the rehearsal model must read zstd like the real backend does.
import zlib from "node:zlib";

/** zlib's zstd (Node ≥ 22.15, so inside the worker image); Node 20's zlib has none. */
const builtinZstd = (zlib as unknown as { zstdDecompressSync?: (b: Buffer) => Buffer }).zstdDecompressSync;

/** Returns the body's bytes without their content coding; throws on a coding it cannot read. */
export async function decodeBody(body: Buffer, encoding: string | undefined): Promise<Buffer> {
  const coding = (encoding ?? "identity").trim().toLowerCase();
  if (coding === "" || coding === "identity") return body;
  if (coding === "gzip") return zlib.gunzipSync(body);
  if (coding === "deflate") return zlib.inflateSync(body);
  if (coding === "br") return zlib.brotliDecompressSync(body);
  if (coding === "zstd") {
    if (builtinZstd) return builtinZstd(body);
    // On Node 20 (the broker's floor) a pure-JS decoder, the broker's own dependency; the copy
    // of this module in the rehearsal image never gets here (its Node has zstd).
    const { decompress } = await import("fzstd");
    return Buffer.from(decompress(body));
  }
  throw new Error(`unsupported content-encoding ${coding}`);
}
