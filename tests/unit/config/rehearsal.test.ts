import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { resolveConfig } from "../../../src/config/load.js";
import { chooseRehearsal, withRehearsal } from "../../../src/config/rehearsal.js";
import { EXAMPLE_WORKSPACE, exampleCall, rehearsalBanner } from "../../../src/cli/example-call.js";

const missing = (): boolean => false;
const present = (): boolean => true;

describe("rehearsal mode", () => {
  it("a dev instance with no auth file serves the rehearsal model, and its notice names the missing file", () => {
    const c = resolveConfig({ broker: { auth_file: "/nowhere/auth.json" } }, "test", {});
    const mode = chooseRehearsal(c, false, missing);
    expect(mode?.reason).toBe("no-login");
    expect(mode?.notice).toMatch(/^REHEARSAL MODE \(no Codex login: no auth file at \/nowhere\/auth\.json\)/);
    expect(mode?.notice).toContain("the answers are scripted");
    expect(mode?.notice).toContain("no OpenAI call is made");
  });

  it("with a login nothing changes, unless --rehearsal forces it", () => {
    const c = resolveConfig({}, "test", {});
    expect(chooseRehearsal(c, false, present)).toBeNull();
    expect(withRehearsal(c, null)).toBe(c);
    expect(chooseRehearsal(c, true, present)).toMatchObject({ reason: "flag", notice: expect.stringMatching(/^REHEARSAL MODE \(forced by --rehearsal\)/) });
  });

  it("a release instance with no login does not fall back to scripted answers", () => {
    const c = resolveConfig({ broker: { channel: "release" } }, "test", {});
    expect(chooseRehearsal(c, false, missing)).toBeNull();
    expect(chooseRehearsal(c, true, missing)?.reason).toBe("flag");
  });

  it("profiles on a worker image of the project run the rehearsal image of the same tag; other images stay", () => {
    const c = resolveConfig(
      {
        broker: { image_prefix: "cmwx" },
        workers: [{ name: "a" }, { name: "b", image: "cmwx/worker:dev-codex-0.153.0", protocol: "mcp-server" }, { name: "c", image: "example/own:dev" }, { name: "d", image: "registry.local:5000/team/worker:dev" }],
      },
      "test",
      {},
    );
    const r = withRehearsal(c, chooseRehearsal(c, true, present));
    expect(r.workers.map((w) => w.image)).toEqual(["cmwx/rehearsal:dev", "cmwx/rehearsal:dev-codex-0.153.0", "example/own:dev", "registry.local:5000/team/rehearsal:dev"]);
    // CODEX_WRAPPER_WORKER_IMAGE names the worker image of every profile that names none.
    const env = resolveConfig({}, "test", { CODEX_WRAPPER_WORKER_IMAGE: "other/worker:dev" });
    expect(withRehearsal(env, chooseRehearsal(env, true, present)).workers[0]!.image).toBe("other/rehearsal:dev");
    expect(r.rehearsal?.reason).toBe("flag");
    expect(c.workers[0]!.image).toBe("cmwx/worker:dev"); // the loaded config is left as it was
  });
});

describe("the example call", () => {
  it("the README shows the call the banner prints for the default port", () => {
    const readme = readFileSync("README.md", "utf8");
    expect(readme).toContain(exampleCall("http://127.0.0.1:4105/mcp"));
  });

  it("the banner prints the notice and the call for the broker's own URL", () => {
    const banner = rehearsalBanner("REHEARSAL MODE (test)", "http://127.0.0.1:5555/mcp");
    expect(banner).toContain("REHEARSAL MODE (test)");
    expect(banner).toContain("curl -sS http://127.0.0.1:5555/mcp");
    expect(banner).toContain(`"prompt":"#fake write hello.txt hello from the rehearsal model"`);
    expect(banner).toContain(`cat ${EXAMPLE_WORKSPACE}/hello.txt`);
    expect(rehearsalBanner("REHEARSAL MODE (test)", null)).not.toContain("curl");
  });
});
