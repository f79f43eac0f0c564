// The release commands: `release <version>` (build and sign dist/releases/<version>/),
// `verify <dir>` (check its signature and every file) and `release-keygen <prefix>`.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { WrapperError } from "../errors.js";
import { buildRelease } from "../release/builder.js";
import { generateReleaseKeys, keyFingerprint, loadPrivateKey, loadPublicKey, verifyDirectory } from "../release/signing.js";

export const RELEASE_HELP = `Usage: codex-mcp-wrapper release <version> [--key FILE] [--repo DIR]
       codex-mcp-wrapper release keygen <prefix>   (same as release-keygen)

Builds release <version> from a clean git tree whose package.json has that version: the broker,
worker and rehearsal images tagged <version>, and dist/releases/<version>/ with the npm package,
the images (docker save), manifest.json, SHA256SUMS and SHA256SUMS.sig (ed25519). Refuses a
dirty tree, a malformed version, or a version that exists (directory or image tags).

Options:
  --key FILE   the ed25519 private key (PEM); else $CODEX_WRAPPER_RELEASE_KEY (the PEM itself)
               or $CODEX_WRAPPER_RELEASE_KEY_FILE
  --repo DIR   the repository (default: the current directory)`;

export const VERIFY_HELP = `Usage: codex-mcp-wrapper verify <release dir> --public-key FILE

Checks SHA256SUMS.sig against the public key you trust, then every file against SHA256SUMS,
and that no file was added or removed. Exits 0 when all holds, 1 naming the first problem.
The key may also come from $CODEX_WRAPPER_RELEASE_PUBLIC_KEY (the PEM itself).`;

export const KEYGEN_HELP = `Usage: codex-mcp-wrapper release-keygen <prefix>

Writes <prefix>.key (the ed25519 private key, mode 0600) and <prefix>.pub (the public key to
publish). Refuses to overwrite either.`;

function privateKeyFrom(file: string | undefined): ReturnType<typeof loadPrivateKey> {
  if (file) return loadPrivateKey(readFileSync(file, "utf8"), `--key ${file}`);
  if (process.env.CODEX_WRAPPER_RELEASE_KEY) return loadPrivateKey(process.env.CODEX_WRAPPER_RELEASE_KEY, "$CODEX_WRAPPER_RELEASE_KEY");
  const envFile = process.env.CODEX_WRAPPER_RELEASE_KEY_FILE;
  if (envFile) return loadPrivateKey(readFileSync(envFile, "utf8"), `$CODEX_WRAPPER_RELEASE_KEY_FILE (${envFile})`);
  throw new WrapperError("RELEASE_REFUSED", "no signing key: give --key FILE, or set CODEX_WRAPPER_RELEASE_KEY (PEM) or CODEX_WRAPPER_RELEASE_KEY_FILE; make one with codex-mcp-wrapper release-keygen");
}

export async function release(argv: string[]): Promise<number> {
  if (argv[0] === "keygen") return keygen(argv.slice(1)); // `release keygen` = `release-keygen`
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { key: { type: "string" }, repo: { type: "string" }, help: { type: "boolean", short: "h" } } });
  if (values.help || positionals.length !== 1) {
    process.stdout.write(`${RELEASE_HELP}\n`);
    return values.help ? 0 : 2;
  }
  const key = privateKeyFrom(values.key);
  const { dir, manifest } = await buildRelease({
    version: positionals[0]!,
    repoDir: path.resolve(values.repo ?? "."),
    key,
    imagePrefix: process.env.IMAGE_PREFIX,
    log: (l) => process.stderr.write(`release: ${l}\n`),
  });
  process.stdout.write(`${dir}\n${manifest.files.map((f) => `  ${f.name}  ${(f.size / 1e6).toFixed(1)} MB`).join("\n")}\n`);
  return 0;
}

export async function verifyCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { "public-key": { type: "string" }, help: { type: "boolean", short: "h" } } });
  if (values.help || positionals.length !== 1) {
    process.stdout.write(`${VERIFY_HELP}\n`);
    return values.help ? 0 : 2;
  }
  const keyFile = values["public-key"];
  const pem = keyFile ? readFileSync(keyFile, "utf8") : process.env.CODEX_WRAPPER_RELEASE_PUBLIC_KEY;
  if (!pem) throw new WrapperError("VERIFY_FAILED", "no public key: give --public-key FILE (the release's published .pub) or set CODEX_WRAPPER_RELEASE_PUBLIC_KEY");
  const publicKey = loadPublicKey(pem, keyFile ?? "$CODEX_WRAPPER_RELEASE_PUBLIC_KEY");
  const report = await verifyDirectory(positionals[0]!, publicKey);
  process.stdout.write(`verified: signature good (key sha256:${keyFingerprint(publicKey)}), ${report.files.length} files match SHA256SUMS\n`);
  return 0;
}

export async function keygen(argv: string[]): Promise<number> {
  const { positionals, values } = parseArgs({ args: argv, allowPositionals: true, options: { help: { type: "boolean", short: "h" } } });
  if (values.help || positionals.length !== 1) {
    process.stdout.write(`${KEYGEN_HELP}\n`);
    return values.help ? 0 : 2;
  }
  const prefix = positionals[0]!;
  for (const f of [`${prefix}.key`, `${prefix}.pub`]) if (existsSync(f)) throw new WrapperError("RELEASE_REFUSED", `${f} exists; choose another prefix (keys are never overwritten)`);
  const { privatePem, publicPem } = generateReleaseKeys();
  writeFileSync(`${prefix}.key`, privatePem, { mode: 0o600 });
  writeFileSync(`${prefix}.pub`, publicPem);
  process.stdout.write(`wrote ${prefix}.key (keep it secret) and ${prefix}.pub (publish it; fingerprint sha256:${keyFingerprint(loadPublicKey(publicPem, `${prefix}.pub`))})\n`);
  return 0;
}
