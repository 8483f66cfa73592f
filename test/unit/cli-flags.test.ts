import { create } from "@bufbuild/protobuf";
import { DurationSchema } from "@bufbuild/protobuf/wkt";
import { InvalidArgumentError } from "commander";
import { describe, expect, it } from "vitest";
import { collectLabel, enumOption, parseDuration, parsePageSize } from "../../src/cli/flags.js";
import { duration } from "../../src/cli/output.js";
import { TokenState, TokenStateSchema } from "../../src/gen/roomkey/v1/token_service_pb.js";

describe("the CLI's flag parsers", () => {
  it.each([
    ["90s", 90n],
    ["15m", 900n],
    ["12h", 43_200n],
    ["30d", 2_592_000n],
    ["2w", 1_209_600n],
    ["1h30m", 5_400n],
    ["0", 0n],
    ["0s", 0n],
  ])("when a duration is %s, then it is %i seconds", (text, seconds) => {
    expect(parseDuration(text)).toEqual({ seconds });
  });

  it.each(["", "30", "3x", "1.5h", "-1h", "h", "1h 30m", "30D", "99999999999999d"])(
    "when a duration is %j, then it is refused with the form to use",
    (text) => {
      expect(() => parseDuration(text)).toThrow(InvalidArgumentError);
    },
  );

  it("when a duration is printed, then it reads as the flag that would give it", () => {
    for (const text of ["1m30s", "15m", "12h", "30d", "1d1h1m1s", "0s"]) {
      expect(duration(create(DurationSchema, parseDuration(text)))).toBe(text);
    }
    expect(duration(create(DurationSchema, parseDuration("2w")))).toBe("14d");
    expect(duration(undefined)).toBe("");
  });

  it.each([
    ["1", 1],
    ["100", 100],
  ])("when the page size is %s, then it is %i", (text, size) => {
    expect(parsePageSize(text)).toBe(size);
  });

  it.each(["0", "101", "-1", "ten", "1e2"])("when the page size is %j, then it is refused", (text) => {
    expect(() => parsePageSize(text)).toThrow(/1 to 100/);
  });

  it("when labels are given several times, then they add up, and a malformed or repeated one is refused", () => {
    const labels = collectLabel("tier=gold", collectLabel("team=billing=east"));
    expect(labels).toEqual({ team: "billing=east", tier: "gold" });
    expect(collectLabel("empty=")).toEqual({ empty: "" });
    expect(() => collectLabel("team")).toThrow(/key=value/);
    expect(() => collectLabel("=x")).toThrow(/key=value/);
    expect(() => collectLabel("team=other", labels)).toThrow(/twice/);
  });

  it("when an enum flag is given, then its short lower-case name or full name becomes the number, and others are refused", () => {
    const option = enumOption("--state <state>", "", TokenStateSchema);
    const parse = (text: string) => option.parseArg?.(text, undefined);
    expect(parse("revoked")).toBe(TokenState.REVOKED);
    expect(parse("ACTIVE")).toBe(TokenState.ACTIVE);
    expect(parse("TOKEN_STATE_ROTATED")).toBe(TokenState.ROTATED);
    expect(() => parse("unspecified")).toThrow(/active, expired, revoked, rotated/);
    expect(option.argChoices).toEqual(["active", "expired", "revoked", "rotated"]);
  });
});
