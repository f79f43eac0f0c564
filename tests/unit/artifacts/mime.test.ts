// An artifact's MIME type: by its extension when the table knows it and the content fits it,
// else by its content.
import { describe, expect, it } from "vitest";
import { artifactMimeType, mimeTypeByName } from "../../../src/artifacts/mime.js";

describe("artifact MIME types", () => {
  it("names common extensions, case-insensitively, and nothing for an unknown one or a dotfile", () => {
    expect(mimeTypeByName("out/report.MD")).toBe("text/markdown");
    expect(mimeTypeByName("a/b.json")).toBe("application/json");
    expect(mimeTypeByName("shot.png")).toBe("image/png");
    expect(mimeTypeByName("changes.patch")).toBe("text/x-diff");
    expect(mimeTypeByName("x.unknownext")).toBeUndefined();
    expect(mimeTypeByName("dir.d/.env")).toBeUndefined();
    expect(mimeTypeByName("Makefile")).toBeUndefined();
  });

  it("falls back on the content: UTF-8 is text/plain, other bytes octet-stream, a text type never for bytes", () => {
    expect(artifactMimeType("Makefile", true)).toBe("text/plain");
    expect(artifactMimeType("blob.bin", false)).toBe("application/octet-stream");
    expect(artifactMimeType("notes.txt", false)).toBe("application/octet-stream");
    expect(artifactMimeType("shot.png", false)).toBe("image/png");
  });
});
