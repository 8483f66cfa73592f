import { describe, expect, it } from "vitest";
import type { CredentialCheck } from "../../src/domain/integrations.js";
import { createHttpCredentialChecker, retryAfterMs, valueAt } from "../../src/providers/http-credential-checker.js";

describe("valueAt", () => {
  const body = {
    id: 42,
    login: "ada",
    verified: false,
    account: { id: "acct-7", owner: { name: "Ada Lovelace" }, tags: ["x"], empty: null },
    items: [{ id: "first" }],
  };

  it.each([
    ["id", "42"],
    ["login", "ada"],
    ["verified", "false"],
    ["account.id", "acct-7"],
    ["account.owner.name", "Ada Lovelace"],
    ["items.0.id", "first"],
  ])("when the path %s leads to a scalar, then it comes back as the string %s", (path, expected) => {
    expect(valueAt(body, path)).toBe(expected);
  });

  it.each([
    ["", "an empty path"],
    ["account", "an object"],
    ["account.tags", "an array"],
    ["account.empty", "null"],
    ["account.missing", "a missing key"],
    ["login.length", "a property of a string"],
    ["account.empty.id", "a path through null"],
    ["toString", "an inherited property"],
    ["account.constructor.name", "an inherited property deeper down"],
  ])("when the path %s leads to %s, then undefined", (path) => {
    expect(valueAt(body, path)).toBeUndefined();
  });

  it("when a scalar is only inherited, not the object's own, then undefined", () => {
    expect(valueAt({ account: Object.create({ id: "inherited" }) }, "account.id")).toBeUndefined();
  });

  it("when the body is not an object, then undefined", () => {
    expect(valueAt("plain text", "id")).toBeUndefined();
    expect(valueAt(null, "id")).toBeUndefined();
    expect(valueAt(undefined, "id")).toBeUndefined();
  });
});

describe("retryAfterMs", () => {
  const now = Date.UTC(2030, 0, 1, 12, 0, 0);

  it.each([
    ["120", 120_000],
    [" 5 ", 5_000],
    ["0", 0],
    ["1.5", 1_500],
  ])("when Retry-After is %j seconds, then %i ms", (header, expected) => {
    expect(retryAfterMs(header, now)).toBe(expected);
  });

  it("when Retry-After is a negative number of seconds, then 0", () => {
    expect(retryAfterMs("-30", now)).toBe(0);
  });

  it("when Retry-After is an HTTP date in the future, then the time until it", () => {
    expect(retryAfterMs(new Date(now + 90_000).toUTCString(), now)).toBe(90_000);
    expect(retryAfterMs("Tue, 01 Jan 2030 12:10:00 GMT", now)).toBe(10 * 60_000);
  });

  it("when Retry-After is an HTTP date in the past, then 0", () => {
    expect(retryAfterMs("Tue, 01 Jan 2030 11:00:00 GMT", now)).toBe(0);
  });

  it.each<[string | null, string]>([
    [null, "absent"],
    ["", "empty"],
    ["   ", "blank"],
    ["soon", "a word"],
    ["12abc", "digits and letters"],
    ["Infinity", "Infinity"],
  ])("when Retry-After is %j (%s), then undefined", (header) => {
    expect(retryAfterMs(header, now)).toBeUndefined();
  });
});

describe("http credential checker", () => {
  const check: CredentialCheck = {
    url: "https://api.acme.test/me",
    method: "GET",
    placement: "header",
    parameterName: "X-Api-Key",
    accountIdPath: "account.id",
    accountNamePath: "account.name",
  };

  function checkerAnswering(response: () => Response, maxRetryAfterMs = 60_000) {
    const requests: { url: string; headers: Record<string, string> }[] = [];
    const checker = createHttpCredentialChecker({
      timeoutMs: 1_000,
      maxRetryAfterMs,
      fetch: async (url, init) => {
        requests.push({ url: String(url), headers: { ...(init?.headers as Record<string, string>) } });
        return response();
      },
    });
    return { checker, requests };
  }

  it("when the provider asks to wait longer than the cap, then the wait is cut to the cap", async () => {
    const { checker } = checkerAnswering(
      () => new Response("slow down", { status: 429, headers: { "retry-after": "3600" } }),
      30_000,
    );

    const outcome = await checker.check(check, { kind: "api_key", apiKey: "sk-live-123" });

    expect(outcome).toEqual({
      kind: "unavailable",
      reason: "the provider answered 429: slow down",
      retryAfterMs: 30_000,
    });
  });

  it("when the provider asks to wait less than the cap, then its wait is kept", async () => {
    const { checker } = checkerAnswering(
      () => new Response("", { status: 503, headers: { "retry-after": "20" } }),
      30_000,
    );

    const outcome = await checker.check(check, { kind: "api_key", apiKey: "sk-live-123" });

    expect(outcome).toEqual({ kind: "unavailable", reason: "the provider answered 503", retryAfterMs: 20_000 });
  });

  it("when the provider answers 429 without a readable Retry-After, then no wait is given", async () => {
    const { checker } = checkerAnswering(() => new Response("", { status: 429, headers: { "retry-after": "soon" } }));

    const outcome = await checker.check(check, { kind: "api_key", apiKey: "sk-live-123" });

    expect(outcome).toEqual({ kind: "unavailable", reason: "the provider answered 429" });
  });

  it("when the provider answers 401 quoting the key, then it is refused and the key is masked in the reason", async () => {
    const { checker, requests } = checkerAnswering(
      () => new Response(JSON.stringify({ message: "key sk-live-123 is revoked" }), { status: 401 }),
    );

    const outcome = await checker.check(check, { kind: "api_key", apiKey: "sk-live-123" });

    expect(outcome).toEqual({ kind: "refused", reason: "the provider answered 401: key *** is revoked" });
    expect(requests).toEqual([
      { url: "https://api.acme.test/me", headers: { accept: "application/json", "x-api-key": "sk-live-123" } },
    ]);
  });

  it("when the provider answers 200, then the remote id and name are read at the integration's paths", async () => {
    const { checker } = checkerAnswering(
      () => new Response(JSON.stringify({ account: { id: 42, name: "Ada" } }), { status: 200 }),
    );

    const outcome = await checker.check(check, { kind: "api_key", apiKey: "sk-live-123" });

    expect(outcome).toEqual({ kind: "ok", remoteId: "42", remoteName: "Ada" });
  });
});
