import { mkdtempSync, writeFileSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { RELEASE_VERSION } from "../../../src/release/builder.js";
import { computeSums, generateReleaseKeys, keyFingerprint, loadPrivateKey, loadPublicKey, parseSums, SIG_FILE, signSums, SUMS_FILE, verifyDirectory } from "../../../src/release/signing.js";
import { generateKeyPairSync } from "node:crypto";

const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

async function signedDir(): Promise<{ dir: string; publicPem: string }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "cmw-rel-"));
  dirs.push(dir);
  writeFileSync(path.join(dir, "a.tgz"), "package bytes");
  writeFileSync(path.join(dir, "manifest.json"), '{"version":"1.2.3"}\n');
  const keys = generateReleaseKeys();
  const sums = await computeSums(dir);
  writeFileSync(path.join(dir, SUMS_FILE), sums);
  writeFileSync(path.join(dir, SIG_FILE), signSums(sums, loadPrivateKey(keys.privatePem, "test")));
  return { dir, publicPem: keys.publicPem };
}

describe("release signing", () => {
  it("SHA256SUMS is the sha256sum format, sorted, without itself or the signature", async () => {
    const { dir } = await signedDir();
    const sums = readFileSync(path.join(dir, SUMS_FILE), "utf8");
    expect(sums.trim().split("\n").map((l) => l.slice(66))).toEqual(["a.tgz", "manifest.json"]);
    expect([...parseSums(sums).keys()]).toEqual(["a.tgz", "manifest.json"]);
  });

  it("verifies a signed directory, and names what breaks it", async () => {
    const { dir, publicPem } = await signedDir();
    const key = loadPublicKey(publicPem, "test");
    expect((await verifyDirectory(dir, key)).files.map((f) => f.name)).toEqual(["a.tgz", "manifest.json"]);

    writeFileSync(path.join(dir, "a.tgz"), "package byteS");
    await expect(verifyDirectory(dir, key)).rejects.toThrow(/^a\.tgz: sha256 .* does not match SHA256SUMS/);
    writeFileSync(path.join(dir, "a.tgz"), "package bytes");

    writeFileSync(path.join(dir, "extra.bin"), "x");
    await expect(verifyDirectory(dir, key)).rejects.toThrow(/extra\.bin: not listed in SHA256SUMS/);
    rmSync(path.join(dir, "extra.bin"));

    rmSync(path.join(dir, "manifest.json"));
    await expect(verifyDirectory(dir, key)).rejects.toThrow(/manifest\.json is listed in SHA256SUMS but missing/);
  });

  it("refuses a signature from another key, and keys of the wrong kind", async () => {
    const { dir } = await signedDir();
    await expect(verifyDirectory(dir, loadPublicKey(generateReleaseKeys().publicPem, "other"))).rejects.toThrow(/SHA256SUMS\.sig: the signature .* does not verify/);
    const rsa = generateKeyPairSync("rsa", { modulusLength: 1024 });
    expect(() => loadPrivateKey(rsa.privateKey.export({ type: "pkcs8", format: "pem" }).toString(), "--key k")).toThrow(/--key k: an rsa key; releases are signed with ed25519/);
    expect(() => loadPublicKey("not a key", "--public-key p")).toThrow(/--public-key p: not a PEM public key/);
  });

  it("parseSums rejects lines that are not <sha256>  <file name>, paths, and repeats", () => {
    const h = "a".repeat(64);
    expect(() => parseSums(`${h}  ../etc/passwd\n`)).toThrow(/line 1 is not/);
    expect(() => parseSums(`${h}  x\n${h}  x\n`)).toThrow(/lists x twice/);
    expect(() => parseSums("zz  x\n")).toThrow(/line 1/);
  });

  it("a key pair's two halves have one fingerprint; another key another", () => {
    const a = generateReleaseKeys();
    const fp = keyFingerprint(loadPrivateKey(a.privatePem, "k"));
    expect(fp).toMatch(/^[0-9a-f]{64}$/);
    expect(keyFingerprint(loadPublicKey(a.publicPem, "p"))).toBe(fp);
    expect(keyFingerprint(loadPublicKey(generateReleaseKeys().publicPem, "q"))).not.toBe(fp);
  });

  it("release versions are X.Y.Z", () => {
    expect(["0.1.0", "12.3.45"].every((v) => RELEASE_VERSION.test(v))).toBe(true);
    expect(["0.1", "v0.1.0", "0.1.0-rc.1", "dev", "0.1.0 "].some((v) => RELEASE_VERSION.test(v))).toBe(false);
  });
});
