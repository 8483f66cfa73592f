import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { derivePurposeKey } from "../../src/domain/crypto/envelope.js";
import { InvalidArgumentError } from "../../src/domain/errors.js";
import {
  createPageTokens,
  defaultPageSize,
  type Listing,
  maxPageSize,
  maxPageTokenLength,
  resolvePageSize,
  toPage,
} from "../../src/domain/paging.js";
import { asRoomkeyError, rejectionOf } from "../helpers/fakes.js";

const base64url = (text: string) => Buffer.from(text, "utf8").toString("base64url");
const accountId = "acc_01JABCDEFGHJKMNPQRSTVW";

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

/** Page tokens with a fixed key; incarnations by environment, and a record of which were asked. */
function setup(
  key: Buffer = randomBytes(32),
  incarnations: Record<string, string> = { staging: "1", production: "2" },
) {
  const asked: string[] = [];
  const pages = createPageTokens({
    key,
    incarnation: (environment) => {
      asked.push(environment);
      const incarnation = incarnations[environment];
      if (incarnation === undefined) throw new Error(`no environment ${environment}`);
      return incarnation;
    },
  });
  return { pages, asked, key, incarnations };
}

const accounts: Listing = {
  environment: "staging",
  method: "ListAccounts",
  filter: { integration: "github", status: "0", tenantId: "t-1" },
};

async function expectRefused(promise: Promise<unknown>): Promise<void> {
  const error = await rejectionOf(promise);
  expect(error).toBeInstanceOf(InvalidArgumentError);
  const roomkey = asRoomkeyError(error);
  expect(roomkey.kind).toBe("invalid_argument");
  expect(roomkey.reason).toBe("INVALID_REQUEST");
  expect(roomkey.fieldViolations.map((v) => v.field)).toEqual(["page_token"]);
  expect(roomkey.message).toMatch(/^page_token: /);
}

describe("page tokens", () => {
  it("when there is no token, then the listing starts at the beginning with the resolved size", async () => {
    const { pages } = setup();
    expect(await pages.parse(accounts, "", 0)).toEqual({ after: undefined, size: 50 });
    expect(await pages.parse(accounts, "", 500)).toEqual({ after: undefined, size: 100 });
  });

  it("when there is no next key, then the next page token is empty", async () => {
    expect(await setup().pages.next(accounts, undefined)).toBe("");
  });

  it("when a token goes back to the listing that made it, then the listing continues after its key", async () => {
    const { pages } = setup();
    const token = await pages.next(accounts, accountId);
    expect(await pages.parse(accounts, token, 10)).toEqual({ after: accountId, size: 10 });
  });

  it("when another replica with the same master key reads a token, then it continues the listing", async () => {
    const masterKey = randomBytes(32);
    const one = setup(derivePurposeKey(masterKey, "page-tokens")).pages;
    const other = setup(derivePurposeKey(masterKey, "page-tokens")).pages;
    const token = await one.next(accounts, accountId);
    expect(await other.parse(accounts, token, 10)).toEqual({ after: accountId, size: 10 });
  });

  it("when a key holds any text, then it comes back the same", async () => {
    const { pages } = setup();
    for (const key of ["a", "env-k", "ü€😀", "x".repeat(200)]) {
      expect((await pages.parse(accounts, await pages.next(accounts, key), 1)).after).toBe(key);
    }
  });

  it("when the filter is given in another order, then the token is the same", async () => {
    const { pages } = setup();
    const reordered: Listing = { ...accounts, filter: { tenantId: "t-1", status: "0", integration: "github" } };
    expect(await pages.next(reordered, accountId)).toBe(await pages.next(accounts, accountId));
  });

  it("when a token is made, then it is short, URL-safe and does not show its key", async () => {
    const token = await setup().pages.next(accounts, accountId);
    expect(token).toMatch(/^[A-Za-z0-9_-]+$/);
    // A version byte and a 16-byte tag before the key: 23 characters more than the key itself.
    expect(token).toHaveLength(Math.ceil(((17 + accountId.length) * 4) / 3));
    expect(token.length).toBeLessThan(60);
    expect(token).not.toContain(accountId);
  });

  it("when any byte of a token is altered, then page_token is refused", async () => {
    const { pages } = setup();
    const bytes = Buffer.from(await pages.next(accounts, accountId), "base64url");
    for (let i = 0; i < bytes.length; i++) {
      const altered = Buffer.from(bytes);
      altered[i] = (altered[i] ?? 0) ^ 0x01;
      await expectRefused(pages.parse(accounts, altered.toString("base64url"), 10));
    }
  });

  it("when a token is cut short or lengthened, then page_token is refused", async () => {
    const { pages } = setup();
    const bytes = Buffer.from(await pages.next(accounts, accountId), "base64url");
    await expectRefused(pages.parse(accounts, bytes.subarray(0, bytes.length - 1).toString("base64url"), 10));
    await expectRefused(pages.parse(accounts, Buffer.concat([bytes, Buffer.of(0x41)]).toString("base64url"), 10));
  });

  it("when a token is sent in another environment, then page_token is refused", async () => {
    const { pages } = setup();
    const token = await pages.next(accounts, accountId);
    await expectRefused(pages.parse({ ...accounts, environment: "production" }, token, 10));
  });

  it("when the environment was deleted and made again under its name, then its old tokens are refused", async () => {
    const { pages, incarnations } = setup();
    const token = await pages.next(accounts, accountId);
    incarnations.staging = "3";
    await expectRefused(pages.parse(accounts, token, 10));
  });

  it("when a token is sent to another list method, then page_token is refused", async () => {
    const { pages } = setup();
    const tokens: Listing = { environment: "staging", method: "ListTokens", filter: { state: "0" } };
    const token = await pages.next(tokens, "tok_1");
    await expectRefused(pages.parse({ ...tokens, method: "ListIntegrations" }, token, 10));
    await expectRefused(pages.parse(accounts, token, 10));
  });

  it.each([
    ["another integration", { integration: "gitlab" }],
    ["another status", { status: "2" }],
    ["another tenant", { tenantId: "t-2" }],
    ["a filter cleared", { tenantId: "" }],
  ])("when a token is sent with %s, then page_token is refused", async (_case, change) => {
    const { pages } = setup();
    const token = await pages.next(accounts, accountId);
    await expectRefused(pages.parse({ ...accounts, filter: { ...accounts.filter, ...change } }, token, 10));
  });

  it("when a filter field is added or dropped, then page_token is refused", async () => {
    const { pages } = setup();
    const token = await pages.next(accounts, accountId);
    await expectRefused(pages.parse({ ...accounts, filter: { ...accounts.filter, labels: "" } }, token, 10));
    await expectRefused(pages.parse({ environment: "staging", method: "ListAccounts" }, token, 10));
  });

  it("when a token was made under another key (another deployment), then page_token is refused", async () => {
    const token = await setup().pages.next(accounts, accountId);
    await expectRefused(setup().pages.parse(accounts, token, 10));
  });

  it("when the purpose differs, then the derived key differs", () => {
    const masterKey = randomBytes(32);
    expect(derivePurposeKey(masterKey, "page-tokens")).toHaveLength(32);
    expect(derivePurposeKey(masterKey, "page-tokens")).toEqual(derivePurposeKey(masterKey, "page-tokens"));
    expect(derivePurposeKey(masterKey, "page-tokens")).not.toEqual(derivePurposeKey(masterKey, "other"));
    expect(derivePurposeKey(masterKey, "page-tokens")).not.toEqual(masterKey);
  });

  it.each([
    ["the old unsigned JSON", base64url('{"l":"tokens:0","a":"zzzz"}')],
    ["unsigned JSON of this listing", base64url('{"l":"accounts:github:0:t-1","a":"zzzz"}')],
    ["random text", "not-a-token"],
    ["characters outside base64url", "%%%***"],
    ["padded base64", `${base64url("abcd")}==`],
    ["a version byte alone", Buffer.of(1).toString("base64url")],
    ["a tag of zeros", Buffer.concat([Buffer.of(1), Buffer.alloc(16), Buffer.from("zzzz")]).toString("base64url")],
    ["another version", Buffer.concat([Buffer.of(2), randomBytes(16), Buffer.from("zzzz")]).toString("base64url")],
    ["a single character", "A"],
  ])("when the token is %s, then page_token is refused", async (_case, token) => {
    await expectRefused(setup().pages.parse(accounts, token, 10));
  });

  it("when a token is longer than the proto allows, then it is refused before any work is done for it", async () => {
    const { pages, asked } = setup();
    await expectRefused(pages.parse(accounts, "A".repeat(maxPageTokenLength + 1), 10));
    await expectRefused(pages.parse(accounts, "A".repeat(100_000), 10));
    expect(asked).toEqual([]);
  });

  it("when a key shorter than 32 bytes is given, then page tokens are not made", () => {
    expect(() => createPageTokens({ key: randomBytes(16), incarnation: () => "1" })).toThrow(/32 bytes/);
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

describe("page tokens across a master-key switch", () => {
  const keyA = derivePurposeKey(randomBytes(32), "page-tokens");
  const keyB = derivePurposeKey(randomBytes(32), "page-tokens");
  const listing = { environment: "env-a", method: "ListAccounts" };

  it("when a replica signs under B and still has A, then it takes tokens signed under A, and one with B alone refuses them", async () => {
    const before = createPageTokens({ key: keyA, incarnation: () => "1" });
    const during = createPageTokens({ key: keyB, acceptedKeys: [keyA], incarnation: () => "1" });
    const after = createPageTokens({ key: keyB, incarnation: () => "1" });
    const signedUnderA = await before.next(listing, "acc_1");
    expect((await during.parse(listing, signedUnderA, 10)).after).toBe("acc_1");
    const signedUnderB = await during.next(listing, "acc_2");
    expect((await after.parse(listing, signedUnderB, 10)).after).toBe("acc_2");
    expect(asRoomkeyError(await rejectionOf(after.parse(listing, signedUnderA, 10))).message).toContain("page_token");
  });
});
