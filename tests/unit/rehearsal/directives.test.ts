import { describe, expect, it } from "vitest";
import { commandFor, parseDirectives, shellQuote } from "../../../src/rehearsal/directives.js";

describe("parseDirectives", () => {
  it("reads each #fake line in order and ignores other lines", () => {
    const d = parseDirectives("please do this\n#fake write dir/a.txt hello there\n  #fake run echo hi  \n#fake env HOME\n#fake sleep 250\n#fake fail it broke\n#fake crash\n#fake stall\n#fake recall\n#fake auth");
    expect(d).toEqual([
      { kind: "write", path: "dir/a.txt", text: "hello there" },
      { kind: "run", command: "echo hi" },
      { kind: "env", name: "HOME" },
      { kind: "sleep", ms: 250 },
      { kind: "fail", message: "it broke" },
      { kind: "crash" },
      { kind: "stall" },
      { kind: "recall" },
      { kind: "auth" },
    ]);
  });

  it("turns a malformed directive into a failure that names it", () => {
    expect(parseDirectives("#fake sleep soon")[0]).toMatchObject({ kind: "fail", message: expect.stringContaining("#fake sleep soon") });
    expect(parseDirectives("#fake env 1BAD")[0]).toMatchObject({ kind: "fail" });
    expect(parseDirectives("#fake dance")[0]).toMatchObject({ kind: "fail", message: expect.stringContaining("unknown verb") });
    expect(parseDirectives("#fake run-escalated")[0]).toMatchObject({ kind: "fail", message: expect.stringContaining("expected `#fake run-escalated <command>`") });
    expect(parseDirectives("#fake run-escalated touch x")).toEqual([{ kind: "run-escalated", command: "touch x" }]);
  });

  it("gives no directives for a plain prompt", () => {
    expect(parseDirectives("just say hello")).toEqual([]);
  });
});

describe("commandFor", () => {
  it("quotes paths and text so the shell writes them literally", () => {
    expect(shellQuote("it's")).toBe(`'it'\\''s'`);
    const cmd = commandFor({ kind: "write", path: "a b/c'd.txt", text: "$(rm -rf /) 'x'" });
    expect(cmd).toContain(`'$(rm -rf /) '\\''x'\\'''`);
    expect(cmd).toContain(`'a b/c'\\''d.txt'`);
  });

  it("sleeps in seconds with millisecond precision", () => {
    expect(commandFor({ kind: "sleep", ms: 1500 })).toBe("sleep 1.500");
  });
});
