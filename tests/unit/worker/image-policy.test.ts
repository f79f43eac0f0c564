import { describe, expect, it } from "vitest";
import { checkImageForChannel, imageTag, parseCodexVersion, supportsProtocol } from "../../../src/worker/image-policy.js";

describe("image policy", () => {
  it("reads tags, including registries with ports and digests", () => {
    expect(imageTag("codex-mcp-wrapper/worker:dev")).toBe("dev");
    expect(imageTag("localhost:5000/worker")).toBe("latest");
    expect(imageTag("localhost:5000/worker:1.2.3@sha256:abc")).toBe("1.2.3");
  });

  it("lets a dev instance run only dev tags", () => {
    expect(checkImageForChannel("x/worker:dev", "dev")).toBeNull();
    expect(checkImageForChannel("x/worker:dev-codex-0.153.0", "dev")).toBeNull();
    expect(checkImageForChannel("x/worker:0.1.0", "dev")).toMatch(/dev instance runs only ":dev" or ":dev-\*" tags, got ":0.1.0"/);
    expect(checkImageForChannel("x/worker", "dev")).toMatch(/got ":latest"/);
  });

  it("lets a release instance run only version tags", () => {
    expect(checkImageForChannel("x/worker:0.1.0", "release")).toBeNull();
    expect(checkImageForChannel("x/worker:0.1.0-codex-0.153.0", "release")).toBeNull();
    expect(checkImageForChannel("x/worker:dev", "release")).toMatch(/release instance runs only version tags/);
    expect(checkImageForChannel("x/worker:latest", "release")).toMatch(/got ":latest"/);
  });

  it("knows mcp-server ended with 0.153.0", () => {
    expect(parseCodexVersion("codex-cli 0.169.0")).toEqual([0, 169, 0]);
    expect(supportsProtocol([0, 153, 0], "mcp-server")).toBe(true);
    expect(supportsProtocol([0, 154, 0], "mcp-server")).toBe(false);
    expect(supportsProtocol([0, 169, 0], "app-server")).toBe(true);
  });
});
