import { UnrecoverableError } from "bullmq";
import { describe, expect, it } from "vitest";
import { incarnationOf, payloads } from "../../workers/job-payloads.js";

const account = "acc_0123456789abcdefABCDEF";
const token = "tok_0123456789abcdefABCDEF";

describe("job payloads", () => {
  it("when a payload is what its producer writes, then it is read with its types", () => {
    expect(payloads.handshake.connect({ data: { accountId: account, attempt: 2, incarnation: "i1" } })).toEqual({
      accountId: account,
      attempt: 2,
      incarnation: "i1",
    });
    expect(payloads.handshake["sweep-connecting"]({ data: { noGrace: true } })).toEqual({ noGrace: true });
    expect(payloads.handshake["sweep-connecting"]({ data: {} })).toEqual({});
    expect(payloads.rotation["retire-token"]({ data: { tokenId: token } })).toEqual({ tokenId: token });
    expect(payloads.rotation["refresh-account"]({ data: { accountId: account, seenVersion: 7 } })).toEqual({
      accountId: account,
      seenVersion: 7,
    });
    expect(payloads.rotation["rewrap-data-key"]({ data: { to: "0123456789abcdef", incarnation: "i3" } })).toEqual({
      to: "0123456789abcdef",
      incarnation: "i3",
    });
    expect(incarnationOf({ data: { incarnation: "i2" } })).toBe("i2");
  });

  it("when a field is missing or wrong, then the job fails for good naming it", () => {
    const bad: [() => unknown, string][] = [
      [() => payloads.handshake.connect({ data: { accountId: "acc_x", attempt: 1 } }), "connect: data.accountId"],
      [() => payloads.handshake.connect({ data: { accountId: account, attempt: 0 } }), "connect: data.attempt"],
      [() => payloads.handshake.connect({ data: null }), "connect: data.accountId"],
      [() => payloads.rotation["retire-token"]({ data: "tok" }), "retire-token: data.tokenId"],
      [() => payloads.rotation["refresh-account"]({ data: { accountId: 42 } }), "refresh-account: data.accountId"],
      [() => payloads.rotation["rewrap-data-key"]({ data: { to: "default" } }), "rewrap-data-key: data.to"],
      [() => payloads.rotation["rewrap-data-key"]({ data: {} }), "rewrap-data-key: data.to"],
    ];
    for (const [read, message] of bad) {
      expect(read).toThrow(UnrecoverableError);
      expect(read).toThrow(message);
    }
  });

  it("when a payload carries only inherited properties, then they are not read as fields", () => {
    const inherited = Object.create({ accountId: account, attempt: 1, incarnation: "i1" }) as object;
    expect(() => payloads.handshake.connect({ data: inherited })).toThrow("connect: data.accountId");
    expect(incarnationOf({ data: inherited })).toBeUndefined();
  });
});
