import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { watchLine } from "../../src/cli/commands/watch.js";
import { errorJson, errorText, fields, printable, table, time } from "../../src/cli/output.js";
import { errorOf } from "../../src/client/index.js";
import { BadRequestSchema, ErrorInfoSchema } from "../../src/gen/google/rpc/error_details_pb.js";
import { AccountStatus, WatchAccountsResponseSchema } from "../../src/gen/roomkey/v1/account_service_pb.js";

function roomkeyError() {
  const error = new ConnectError("roomkey-environment: must be 2-24 characters", Code.InvalidArgument, undefined, [
    { desc: ErrorInfoSchema, value: { reason: "ENVIRONMENT_INVALID", domain: "roomkey.dev", metadata: { a: "1" } } },
    {
      desc: BadRequestSchema,
      value: { fieldViolations: [{ field: "roomkey-environment", description: "must be 2-24 characters" }] },
    },
  ]);
  const read = errorOf(error);
  if (!read) throw new Error("errorOf read nothing");
  return read;
}

describe("the CLI's output", () => {
  it("when rows are printed as a table, then columns line up under their headers with no trailing spaces", () => {
    const text = table(
      ["ID", "NAME", "STATE"],
      [
        ["tok_1", "a-long-name", "ACTIVE"],
        ["tok_22", "b", ""],
      ],
    );
    expect(text.split("\n")).toEqual([
      "ID      NAME         STATE",
      "tok_1   a-long-name  ACTIVE",
      "tok_22  b            -",
    ]);
  });

  it("when a value holds control characters, then they are shown escaped instead of reaching the terminal", () => {
    expect(printable("bad\u001b[31mred\nline")).toBe("bad\\u001b[31mred\\u000aline");
    expect(fields([["status reason", "x\u0007"]])).toBe("status reason  x\\u0007");
    expect(table(["R"], [["\u001b]0;title\u0007"]])).not.toContain("\u001b");
  });

  it("when a list cell is very long, then the table cuts it and the fields view keeps it whole", () => {
    const long = "x".repeat(200);
    expect(table(["R"], [[long]]).split("\n")[1]).toHaveLength(60);
    expect(fields([["r", long]])).toContain(long);
  });

  it("when a timestamp is printed, then it is UTC to the second, and unset is empty", () => {
    expect(time(timestampFromDate(new Date("2026-11-28T00:42:56.474Z")))).toBe("2026-11-28T00:42:56Z");
    expect(time(undefined)).toBe("");
  });

  it("when a roomkey error is printed, then the code, the reason, the metadata and the field are on stderr's lines", () => {
    expect(errorText(roomkeyError()).split("\n")).toEqual([
      "error: INVALID_ARGUMENT ENVIRONMENT_INVALID: roomkey-environment: must be 2-24 characters",
      "  a: 1",
      "  field roomkey-environment: must be 2-24 characters",
    ]);
  });

  it("when a roomkey error is printed for --json, then it is one object with the API's names", () => {
    expect(JSON.parse(errorJson(roomkeyError()))).toEqual({
      error: {
        code: "INVALID_ARGUMENT",
        reason: "ENVIRONMENT_INVALID",
        message: "roomkey-environment: must be 2-24 characters",
        metadata: { a: "1" },
        fieldViolations: [{ field: "roomkey-environment", description: "must be 2-24 characters" }],
      },
    });
  });

  it("when a watch event is printed, then one line says when, which account, the change and the provider's words", () => {
    const event = create(WatchAccountsResponseSchema, {
      account: {
        id: "acc_0Nm2bqZp8tQy4rW1xKs9Lf",
        integration: "acme",
        tenantId: "t-1",
        status: AccountStatus.FAILED,
        statusReason: "The API key is not valid.",
        remoteName: "ignored when failed",
      },
      previousStatus: AccountStatus.CONNECTING,
      eventTime: timestampFromDate(new Date("2026-11-28T00:42:56Z")),
    });
    expect(watchLine(event)).toMatch(
      /^2026-11-28T00:42:56Z acc_0Nm2bqZp8tQy4rW1xKs9Lf acme +t-1 +CONNECTING -> FAILED +The API key is not valid\.$/,
    );
  });
});
