import { describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../../src/domain/errors.js";
import {
  defaultPageSize,
  encodePageToken,
  maxPageSize,
  parsePageRequest,
  resolvePageSize,
  toPage,
} from "../../src/domain/paging.js";
import { asRoomkeyError, errorOf } from "./fakes.js";

const base64url = (text: string) => Buffer.from(text, "utf8").toString("base64url");

describe("resolvePageSize", () => {
  it("when the defaults are read, then they are 50 and 100", () => {
    expect(defaultPageSize).toBe(50);
    expect(maxPageSize).toBe(100);
  });

  it.each([
    [0, 50],
    [-1, 50],
    [1, 1],
    [37, 37],
    [100, 100],
    [101, 100],
    [10_000, 100],
  ])("when %i is requested, then the page size is %i", (requested, expected) => {
    expect(resolvePageSize(requested)).toBe(expected);
  });
});

describe("parsePageRequest", () => {
  it("when there is no token, then the listing starts at the beginning with the resolved size", () => {
    expect(parsePageRequest("environments", "", 0)).toEqual({ after: undefined, size: 50 });
    expect(parsePageRequest("environments", "", 500)).toEqual({ after: undefined, size: 100 });
  });

  it("when a token of the same listing is given, then the listing continues after its key", () => {
    const token = encodePageToken("environments", "env-k");
    expect(parsePageRequest("environments", token, 10)).toEqual({ after: "env-k", size: 10 });
  });

  it("when a token is made, then it does not show its key in clear text", () => {
    expect(encodePageToken("environments", "env-k")).not.toContain("env-k");
  });

  it("when a token of another listing is given, then page_token is refused", () => {
    const token = encodePageToken("integrations:env-a", "github");
    const error = errorOf(() => parsePageRequest("integrations:env-b", token, 10));
    expect(error).toBeInstanceOf(InvalidArgumentError);
    const roomkey = asRoomkeyError(error);
    expect(roomkey.kind).toBe("invalid_argument");
    expect(roomkey.reason).toBe("INVALID_REQUEST");
    expect(roomkey.fieldViolations.map((v) => v.field)).toEqual(["page_token"]);
  });

  it.each([
    ["random text", "not-a-token"],
    ["characters outside base64url", "%%%***"],
    ["JSON null", base64url("null")],
    ["a JSON number", base64url("42")],
    ["a JSON string", base64url('"environments"')],
    ["a JSON array", base64url("[]")],
    ["an object without a key", base64url('{"l":"environments"}')],
    ["a numeric key", base64url('{"l":"environments","a":5}')],
    ["an object without a list", base64url('{"a":"env-k"}')],
    ["truncated JSON", base64url('{"l":"environments","a":"env')],
  ])("when the token is %s, then InvalidArgumentError names page_token", (_case, token) => {
    const error = errorOf(() => parsePageRequest("environments", token, 10));
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect(asRoomkeyError(error).fieldViolations.map((v) => v.field)).toEqual(["page_token"]);
  });
});

describe("toPage", () => {
  const key = (item: { id: string }) => item.id;
  const items = (...ids: string[]) => ids.map((id) => ({ id }));

  it("when size + 1 results come back, then the page holds size items and continues after the last one", () => {
    const page = toPage(items("a", "b", "c"), 2, key);
    expect(page.items.map(key)).toEqual(["a", "b"]);
    expect(page.nextAfter).toBe("b");
  });

  it("when exactly size results come back, then there is no next page", () => {
    const page = toPage(items("a", "b"), 2, key);
    expect(page.items.map(key)).toEqual(["a", "b"]);
    expect(page.nextAfter).toBeUndefined();
  });

  it("when fewer than size results come back, then there is no next page", () => {
    expect(toPage(items("a"), 2, key)).toEqual({ items: items("a"), nextAfter: undefined });
    expect(toPage([], 2, key)).toEqual({ items: [], nextAfter: undefined });
  });
});
