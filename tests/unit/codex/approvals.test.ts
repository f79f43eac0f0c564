// askApproval: every approval Codex asks for gets an answer: the approver's, or a decline when
// there is no approver, it fails, the approval timeout passes or the turn is cancelled; and each
// answer becomes one readable note.
import { describe, expect, it } from "vitest";
import { approvalEvent, approvalNote, askApproval, type ApprovalRequest, type Approver } from "../../../src/codex/driver.js";

const cmd: ApprovalRequest = { kind: "command", command: "touch x", cwd: "/workspace", reason: "needs a file" };
const never: Approver = (_req, { signal }) => new Promise((_resolve, reject) => signal.addEventListener("abort", () => reject(new Error("aborted")), { once: true }));

describe("askApproval", () => {
  it("declines with no approver (no client to ask)", async () => {
    expect(await askApproval({}, cmd)).toEqual({ decision: "decline", why: "no_client" });
  });

  it("gives the approver's answer, and the request as asked", async () => {
    const seen: ApprovalRequest[] = [];
    const approve: Approver = async (req) => (seen.push(req), { decision: "accept" });
    expect(await askApproval({ approve }, cmd)).toEqual({ decision: "accept" });
    expect(seen).toEqual([cmd]);
  });

  it("declines as timed out when the approver does not answer within the approval timeout, and aborts its question", async () => {
    let aborted = false;
    const approve: Approver = (req, opts) => {
      opts.signal.addEventListener("abort", () => (aborted = true));
      return never(req, opts);
    };
    expect(await askApproval({ approve, approvalTimeoutMs: 20 }, cmd)).toEqual({ decision: "decline", why: "timed_out", message: "20 ms" });
    expect(aborted).toBe(true);
  });

  it("declines as client gone when the approver fails or the turn is cancelled", async () => {
    const failing: Approver = async () => {
      throw new Error("Connection closed");
    };
    expect(await askApproval({ approve: failing }, cmd)).toEqual({ decision: "decline", why: "client_gone", message: "Connection closed" });
    const turn = new AbortController();
    const asked = askApproval({ approve: never, signal: turn.signal, approvalTimeoutMs: 60_000 }, cmd);
    turn.abort();
    expect(await asked).toMatchObject({ decision: "decline", why: "client_gone" });
  });
});

describe("approvalNote", () => {
  it("says what was asked, where, and what became of it", () => {
    const m = "item/commandExecution/requestApproval";
    expect(approvalNote(approvalEvent(m, cmd, { decision: "accept" }))).toBe("approval for command `touch x` in /workspace: accepted by the client");
    expect(approvalNote(approvalEvent(m, cmd, { decision: "decline", why: "timed_out", message: "300000 ms" }))).toBe("approval for command `touch x` in /workspace: declined: no answer within approval_timeout (300000 ms)");
    expect(approvalNote(approvalEvent("item/fileChange/requestApproval", { kind: "patch" }, { decision: "decline", why: "no_client" }))).toMatch(/^approval for patch: declined: no client to ask/);
    expect(approvalNote({ kind: "warning", message: "w" })).toBeNull();
  });
});
