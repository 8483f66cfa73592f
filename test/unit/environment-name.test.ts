import { describe, expect, it } from "vitest";
import { environmentHeader, parseEnvironmentName } from "../../src/domain/environments/environment-name.js";
import { RoomkeyError } from "../../src/domain/errors.js";
import { queueName } from "../../src/queue/queue-names.js";
import { asRoomkeyError, errorOf } from "../helpers/fakes.js";

describe("parseEnvironmentName", () => {
  it.each([
    ["two characters", "ab"],
    ["a letter and a digit", "a1"],
    ["24 characters with digits and inner dashes", "team-42-production-eu-01"],
    ["24 letters", "abcdefghijklmnopqrstuvwx"],
    ["consecutive inner dashes", "a--b"],
  ])("when the name is %s (%j), then it is returned unchanged", (_case, name) => {
    expect(parseEnvironmentName(name)).toBe(name);
  });

  it("when the 24-character example is checked, then it really is 24 characters", () => {
    expect("team-42-production-eu-01").toHaveLength(24);
    expect("abcdefghijklmnopqrstuvwx").toHaveLength(24);
  });

  const hostile: [string, string][] = [
    ["MongoDB's admin database", "admin"],
    ["MongoDB's local database", "local"],
    ["MongoDB's config database", "config"],
    ["admin in capitals", "ADMIN"],
    ["a capital letter", "Prod"],
    ["a path traversal", "../x"],
    ["a slash", "a/b"],
    ["a dot", "a.b"],
    ["a colon", "a:b"],
    ["a dollar sign", "$x"],
    ["a leading underscore", "_x"],
    ["empty", ""],
    ["a single space", " "],
    ["a single letter", "a"],
    ["25 characters", "a".repeat(25)],
    ["200 characters", "a".repeat(200)],
    ["a NUL inside", "ab\u0000cd"],
    ["a Cyrillic look-alike of admin", "\u0430dmin"],
    ["a Cyrillic look-alike of a valid name", "\u0430bc"],
    ["a zero-width joiner inside", "ab\u200Dcd"],
    ["a right-to-left override inside", "ab\u202Ecd"],
    ["an emoji", "ab\u{1F600}"],
    ["a leading digit", "1abc"],
    ["a leading dash", "-abc"],
    ["a trailing dash", "abc-"],
    ["a trailing newline", "abc\n"],
    ["surrounding spaces", " abc "],
  ];

  it.each(hostile)("when the name has %s (%j), then it is refused with ENVIRONMENT_INVALID", (_case, name) => {
    const error = asRoomkeyError(errorOf(() => parseEnvironmentName(name)));
    expect(error).toBeInstanceOf(RoomkeyError);
    expect(error.kind).toBe("invalid_argument");
    expect(error.reason).toBe("ENVIRONMENT_INVALID");
    expect(error.fieldViolations).toHaveLength(1);
    expect(error.fieldViolations[0]?.field).toBe("roomkey-environment");
    expect(error.fieldViolations[0]?.field).toBe(environmentHeader);
    expect(error.fieldViolations[0]?.description).not.toBe("");
    expect(error.metadata).toEqual({ field: "roomkey-environment" });
  });

  it("when a source is given, then the violation names that field instead of the header", () => {
    const error = asRoomkeyError(errorOf(() => parseEnvironmentName("Bad", "environment.name")));
    expect(error.fieldViolations[0]?.field).toBe("environment.name");
    expect(error.message.startsWith("environment.name: ")).toBe(true);
  });

  it("when a reserved name is given in any case, then the description says it is reserved", () => {
    const error = asRoomkeyError(errorOf(() => parseEnvironmentName("Config")));
    expect(error.fieldViolations[0]?.description).toContain("reserved");
  });
});

describe("the EnvironmentName type", () => {
  it("when a name is parsed, then it can build a queue name; an unchecked string cannot (a compile error)", () => {
    expect(queueName(parseEnvironmentName("staging"), "handshake")).toBe("{staging}.handshake");
    const unchecked: string = "staging";
    // @ts-expect-error an unchecked string is not an EnvironmentName (npm run typecheck fails without the brand)
    expect(queueName(unchecked, "rotation")).toBe("{staging}.rotation");
  });
});
