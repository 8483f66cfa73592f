import { describe, expect, it } from "vitest";
import type { CredentialCheck } from "../../src/domain/integrations/integrations.js";
import { createHttpCredentialChecker, valueAt } from "../../src/providers/http-credential-checker.js";
import type { OutboundResult } from "../../src/providers/outbound-http.js";
import { retryAfterMs } from "../../src/providers/provider-call.js";

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

  /** An answer as the outbound guard gives it. */
  function answer(
    status: number,
    text: string,
    headers: Record<string, string> = {},
    contentType = "application/json",
  ): OutboundResult {
    return {
      kind: "response",
      response: { status, header: (name) => headers[name], contentType, text, tooLarge: false },
    };
  }

  function checkerAnswering(result: () => OutboundResult, maxRetryAfterMs = 60_000) {
    const requests: { url: string; headers: Record<string, string> }[] = [];
    const checker = createHttpCredentialChecker({
      maxRetryAfterMs,
      send: async (request) => {
        requests.push({ url: String(request.url), headers: { ...request.headers } });
        return result();
      },
    });
    return { checker, requests };
  }

  it("when the provider asks to wait longer than the cap, then the wait is cut to the cap", async () => {
    const { checker } = checkerAnswering(
      () => answer(429, "slow down", { "retry-after": "3600" }, "text/plain"),
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
    const { checker } = checkerAnswering(() => answer(503, "", { "retry-after": "20" }), 30_000);

    const outcome = await checker.check(check, { kind: "api_key", apiKey: "sk-live-123" });

    expect(outcome).toEqual({ kind: "unavailable", reason: "the provider answered 503", retryAfterMs: 20_000 });
  });

  it("when the provider answers 429 without a readable Retry-After, then no wait is given", async () => {
    const { checker } = checkerAnswering(() => answer(429, "", { "retry-after": "soon" }));

    const outcome = await checker.check(check, { kind: "api_key", apiKey: "sk-live-123" });

    expect(outcome).toEqual({ kind: "unavailable", reason: "the provider answered 429" });
  });

  it("when the provider answers 401 quoting the key, then it is refused and the key is masked in the reason", async () => {
    const { checker, requests } = checkerAnswering(() =>
      answer(401, JSON.stringify({ message: "key sk-live-123 is revoked" })),
    );

    const outcome = await checker.check(check, { kind: "api_key", apiKey: "sk-live-123" });

    expect(outcome).toEqual({ kind: "refused", reason: "the provider answered 401: key *** is revoked" });
    expect(requests).toEqual([
      { url: "https://api.acme.test/me", headers: { accept: "application/json", "x-api-key": "sk-live-123" } },
    ]);
  });

  it("when the provider answers 200, then the remote id and name are read at the integration's paths", async () => {
    const { checker } = checkerAnswering(() => answer(200, JSON.stringify({ account: { id: 42, name: "Ada" } })));

    const outcome = await checker.check(check, { kind: "api_key", apiKey: "sk-live-123" });

    expect(outcome).toEqual({ kind: "ok", remoteId: "42", remoteName: "Ada" });
  });

  it("when the remote id and name hold control characters or run long, then they are cleaned and bounded", async () => {
    const { checker } = checkerAnswering(() =>
      answer(
        200,
        JSON.stringify({ account: { id: "42\u202e\u0000\n", name: `Ada ${"x".repeat(1_000)} sk-live-123` } }),
      ),
    );

    const outcome = await checker.check(check, { kind: "api_key", apiKey: "sk-live-123" });

    expect(outcome.kind).toBe("ok");
    if (outcome.kind !== "ok") return;
    expect(outcome.remoteId).toBe("42");
    expect([...outcome.remoteName].length).toBeLessThanOrEqual(256);
    expect(outcome.remoteName).not.toContain("sk-live-123");
  });

  it("when the provider answers 401 with an HTML page, then the reason is the status alone", async () => {
    const { checker } = checkerAnswering(() =>
      answer(401, "<html><title>Login</title><body>internal admin at 10.0.0.3</body></html>", {}, "text/html"),
    );

    expect(await checker.check(check, { kind: "api_key", apiKey: "sk-live-123" })).toEqual({
      kind: "refused",
      reason: "the provider answered 401",
    });
  });

  it("when the provider answers 302, then the credential is refused and the redirect is not repeated", async () => {
    const { checker } = checkerAnswering(() =>
      answer(302, "", { location: "http://169.254.169.254/latest/meta-data/" }, "text/plain"),
    );

    expect(await checker.check(check, { kind: "api_key", apiKey: "sk-live-123" })).toEqual({
      kind: "refused",
      reason: "the provider answered 302",
    });
  });

  it("when the outbound guard refuses the destination, then the check is refused for good, saying so", async () => {
    const { checker } = checkerAnswering(() => ({
      kind: "refused",
      reason: '"api.acme.test" resolves to a loopback address',
    }));

    expect(await checker.check(check, { kind: "api_key", apiKey: "sk-live-123" })).toEqual({
      kind: "refused",
      reason: 'roomkey refused to call the provider (api.acme.test): "api.acme.test" resolves to a loopback address',
    });
  });

  it("when the request fails on the network, then the provider is unavailable (retried)", async () => {
    const { checker } = checkerAnswering(() => ({ kind: "failed", reason: "ECONNRESET" }));

    expect(await checker.check(check, { kind: "api_key", apiKey: "sk-live-123" })).toEqual({
      kind: "unavailable",
      reason: "the provider could not be reached (api.acme.test): ECONNRESET",
    });
  });

  it("when a 200 answer was too large to read, then the check is refused, not parsed", async () => {
    const { checker } = checkerAnswering(() => ({
      kind: "response",
      response: { status: 200, header: () => undefined, contentType: "application/json", text: "", tooLarge: true },
    }));

    expect(await checker.check(check, { kind: "api_key", apiKey: "sk-live-123" })).toEqual({
      kind: "refused",
      reason: "the provider answered 200 with a response too large to read",
    });
  });
});
