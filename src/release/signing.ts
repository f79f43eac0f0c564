// A release directory's integrity: SHA256SUMS (the sha256sum format, one line per file) and a
// detached ed25519 signature of it (SHA256SUMS.sig, base64). Verification checks the signature
// against a public key the user trusts, then every file against its sum, and that no file was
// added or removed.
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from "node:crypto";
import { createReadStream, readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { WrapperError } from "../errors.js";

export const SUMS_FILE = "SHA256SUMS";
export const SIG_FILE = "SHA256SUMS.sig";

export async function sha256File(file: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/** `<hex>  <name>` lines, sorted by name, for every regular file of the directory but the sums and signature. */
export async function computeSums(dir: string): Promise<string> {
  const names = readdirSync(dir).filter((n) => n !== SUMS_FILE && n !== SIG_FILE && statSync(path.join(dir, n)).isFile());
  const files: { name: string; sha256: string }[] = [];
  for (const name of names) files.push({ name, sha256: await sha256File(path.join(dir, name)) });
  return formatSums(files);
}

/** SHA256SUMS text (the sha256sum format) for files whose sums are known, sorted by name. */
export function formatSums(files: { name: string; sha256: string }[]): string {
  return `${[...files].sort((a, b) => (a.name < b.name ? -1 : 1)).map((f) => `${f.sha256}  ${f.name}`).join("\n")}\n`;
}

/** Parses SHA256SUMS; throws on any line that is not `<64 hex>  <plain file name>`. */
export function parseSums(text: string): Map<string, string> {
  const sums = new Map<string, string>();
  text.split("\n").forEach((line, i) => {
    if (line === "") return;
    const m = /^([0-9a-f]{64}) [ *]([^/\\]+)$/.exec(line);
    if (!m || m[2] === "." || m[2] === "..") throw new WrapperError("VERIFY_FAILED", `${SUMS_FILE} line ${i + 1} is not "<sha256>  <file name>": ${JSON.stringify(line.slice(0, 120))}`);
    if (sums.has(m[2]!)) throw new WrapperError("VERIFY_FAILED", `${SUMS_FILE} lists ${m[2]} twice`);
    sums.set(m[2]!, m[1]!);
  });
  return sums;
}

export function loadPrivateKey(pem: string, where: string): KeyObject {
  return loadKey(pem, where, "private");
}

export function loadPublicKey(pem: string, where: string): KeyObject {
  return loadKey(pem, where, "public");
}

/** An ed25519 key from PEM, or an error naming where it came from and what to do. */
function loadKey(pem: string, where: string, kind: "private" | "public"): KeyObject {
  const code = kind === "private" ? "RELEASE_REFUSED" : "VERIFY_FAILED";
  const fix = kind === "private" ? "; make a key pair with codex-mcp-wrapper release-keygen" : "";
  let key: KeyObject;
  try {
    key = kind === "private" ? createPrivateKey(pem) : createPublicKey(pem);
  } catch (e) {
    throw new WrapperError(code, `${where}: not a PEM ${kind} key (${(e as Error).message})${fix}`);
  }
  if (key.asymmetricKeyType !== "ed25519") throw new WrapperError(code, `${where}: an ${key.asymmetricKeyType} key; releases are signed with ed25519${fix ? ` (codex-mcp-wrapper release-keygen)` : ""}`);
  return key;
}

/** A key's fingerprint: sha256 of its public key (SPKI DER), hex; the same for a key pair's two halves. */
export function keyFingerprint(key: KeyObject): string {
  const pub = key.type === "private" ? createPublicKey(key) : key;
  return createHash("sha256").update(pub.export({ type: "spki", format: "der" })).digest("hex");
}

export function signSums(sums: string, key: KeyObject): string {
  return `${sign(null, Buffer.from(sums), key).toString("base64")}\n`;
}

/** A new ed25519 key pair, as PEM (PKCS#8 private, SPKI public). */
export function generateReleaseKeys(): { privatePem: string; publicPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  return { privatePem: privateKey.export({ type: "pkcs8", format: "pem" }).toString(), publicPem: publicKey.export({ type: "spki", format: "pem" }).toString() };
}

export interface VerifyReport {
  files: { name: string; sha256: string }[];
}

/** Throws VERIFY_FAILED naming the first problem: signature, a changed, missing or extra file. */
export async function verifyDirectory(dir: string, publicKey: KeyObject): Promise<VerifyReport> {
  const read = (name: string): Buffer => {
    try {
      return readFileSync(path.join(dir, name));
    } catch {
      throw new WrapperError("VERIFY_FAILED", `${name} is missing from ${dir}`);
    }
  };
  const sumsText = read(SUMS_FILE);
  const sigText = read(SIG_FILE).toString("utf8").trim();
  const sig = Buffer.from(sigText, "base64");
  if (sig.length !== 64 || sig.toString("base64") !== sigText || !verify(null, sumsText, publicKey, sig)) {
    throw new WrapperError("VERIFY_FAILED", `${SIG_FILE}: the signature of ${SUMS_FILE} does not verify with the given public key (${SUMS_FILE} or ${SIG_FILE} was changed, or the key is not the release's)`);
  }
  const sums = parseSums(sumsText.toString("utf8"));
  const present = readdirSync(dir).filter((n) => n !== SUMS_FILE && n !== SIG_FILE);
  const extra = present.filter((n) => !sums.has(n));
  if (extra.length) throw new WrapperError("VERIFY_FAILED", `${extra.join(", ")}: not listed in ${SUMS_FILE} (a file was added to the release)`);
  const files: VerifyReport["files"] = [];
  for (const [name, want] of sums) {
    const file = path.join(dir, name);
    let got: string;
    try {
      got = await sha256File(file);
    } catch {
      throw new WrapperError("VERIFY_FAILED", `${name} is listed in ${SUMS_FILE} but missing`);
    }
    if (got !== want) throw new WrapperError("VERIFY_FAILED", `${name}: sha256 ${got} does not match ${SUMS_FILE} (${want}); the file was changed or damaged`);
    files.push({ name, sha256: got });
  }
  return { files };
}
