// known_hosts matching, checked against files OpenSSH's own tools write: keys from ssh-keygen,
// names hashed by `ssh-keygen -H`, fingerprints as `ssh-keygen -lf` prints them. A host is
// known only with the very key it offers; a listed host offering another key is a mismatch.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { checkHostKey, fingerprint, hostToken, knownAlgorithms, lineMatches, parseKnownHosts } from "../../../src/runtime/known-hosts.js";

const dir = mkdtempSync(path.join(os.tmpdir(), "cmw-known-hosts-"));

/** A new key pair of `type`: its public line ("type base64") and its wire blob. */
function key(name: string, type = "ed25519"): { line: string; blob: Buffer; file: string } {
  const file = path.join(dir, name);
  execFileSync("ssh-keygen", ["-q", "-t", type, "-N", "", "-C", name, "-f", file]);
  const line = readFileSync(`${file}.pub`, "utf8").trim().split(" ").slice(0, 2).join(" ");
  return { line, blob: Buffer.from(line.split(" ")[1]!, "base64"), file };
}

const a = key("a");
const b = key("b");
const rsa = key("r", "rsa");

describe("known_hosts", () => {
  it("a plain host name with its key is known; the same name offering another key is a mismatch naming the line; another host is unknown", () => {
    const lines = parseKnownHosts(`# a comment\n\nbuild-3.example ${a.line}\n`);
    expect(checkHostKey(lines, "build-3.example", 22, a.blob)).toEqual({ verdict: "known", line: 3 });
    expect(checkHostKey(lines, "build-3.example", 22, b.blob)).toEqual({ verdict: "mismatch", lines: [3] });
    expect(checkHostKey(lines, "build-4.example", 22, a.blob)).toEqual({ verdict: "unknown" });
  });

  it("a port other than 22 is [host]:port, and only that entry names it", () => {
    const lines = parseKnownHosts(`[10.0.0.5]:2222 ${a.line}\n10.0.0.5 ${b.line}\n`);
    expect(hostToken("10.0.0.5", 2222)).toBe("[10.0.0.5]:2222");
    expect(checkHostKey(lines, "10.0.0.5", 2222, a.blob).verdict).toBe("known");
    expect(checkHostKey(lines, "10.0.0.5", 2222, b.blob)).toEqual({ verdict: "mismatch", lines: [1] });
    expect(checkHostKey(lines, "10.0.0.5", 22, b.blob).verdict).toBe("known");
    expect(checkHostKey(lines, "10.0.0.5", 22, a.blob).verdict).toBe("mismatch");
  });

  it("names hashed by ssh-keygen -H match their host and port, and nothing else", () => {
    const file = path.join(dir, "hashed");
    writeFileSync(file, `build-3.example ${a.line}\n[build-3.example]:2200 ${b.line}\n`);
    execFileSync("ssh-keygen", ["-q", "-H", "-f", file], { stdio: "ignore" });
    const text = readFileSync(file, "utf8");
    expect(text).not.toContain("build-3"); // really hashed
    const lines = parseKnownHosts(text);
    expect(lines.map((l) => l.patterns[0]!.startsWith("|1|"))).toEqual([true, true]);
    expect(checkHostKey(lines, "build-3.example", 22, a.blob).verdict).toBe("known");
    expect(checkHostKey(lines, "build-3.example", 2200, b.blob).verdict).toBe("known");
    expect(checkHostKey(lines, "build-3.example", 22, b.blob).verdict).toBe("mismatch");
    expect(checkHostKey(lines, "build-4.example", 22, a.blob).verdict).toBe("unknown");
  });

  it("several names on a line, wildcards, and a negated name that excludes a host the wildcard would take", () => {
    expect(lineMatches(["one.example", "10.0.0.7"], "10.0.0.7")).toBe(true);
    expect(lineMatches(["*.build.example", "!bad.build.example"], "b2.build.example")).toBe(true);
    expect(lineMatches(["*.build.example", "!bad.build.example"], "bad.build.example")).toBe(false);
    expect(lineMatches(["b?.example"], "b2.example")).toBe(true);
    expect(lineMatches(["b?.example"], "b22.example")).toBe(false);
    expect(lineMatches(["10.0.0.*"], "[10.0.0.1]:2222")).toBe(false); // a pattern for port 22 does not name another port
    expect(lineMatches(["BUILD.example"], "build.example")).toBe(true); // host names are case-blind
  });

  it("a revoked key is refused for any host; @cert-authority, comments and malformed lines are skipped", () => {
    const lines = parseKnownHosts(`@revoked * ${b.line}\n@cert-authority *.example ${a.line}\nnot-a-line\nhost ssh-ed25519 %%%\nhost ssh-rsa ${a.line.split(" ")[1]}\nhost ${a.line}\n`);
    expect(lines.map((l) => l.line)).toEqual([1, 6]); // the rsa line carries an ed25519 blob: not a key of its type
    expect(checkHostKey(lines, "host", 22, b.blob)).toEqual({ verdict: "revoked", line: 1 });
    expect(checkHostKey(lines, "host", 22, a.blob).verdict).toBe("known");
  });

  it("the fingerprint is the one ssh-keygen -lf prints", () => {
    for (const k of [a, rsa]) {
      const printed = execFileSync("ssh-keygen", ["-lf", `${k.file}.pub`], { encoding: "utf8" }).split(" ")[1];
      expect(fingerprint(k.blob)).toBe(printed);
    }
  });

  it("asks the server for the key types known for the host, so a host known by its RSA key is not called changed", () => {
    const lines = parseKnownHosts(`h ${rsa.line}\nh ${a.line}\nother ${b.line}\n`);
    expect(knownAlgorithms(lines, "h", 22)).toEqual(["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa", "ssh-ed25519"]);
    expect(knownAlgorithms(lines, "nobody", 22)).toBeNull();
  });
});
