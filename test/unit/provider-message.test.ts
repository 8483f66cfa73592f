import { describe, expect, it } from "vitest";
import { createHttpOAuthClient } from "../../src/providers/http-oauth-client.js";
import type { OutboundResult } from "../../src/providers/outbound-http.js";
import { maxProviderMessageChars, providerMessage, sanitized } from "../../src/providers/provider-message.js";

const json = "application/json";

describe("providerMessage", () => {
  it.each([
    [{ error_description: "The code expired.", message: "m", error: "invalid_grant" }, "The code expired."],
    [{ message: "The API key is not valid.", error: "unauthorized" }, "The API key is not valid."],
    [{ error: "invalid_client" }, "invalid_client"],
    [{ error: { code: 401, message: "Request had invalid credentials." } }, "Request had invalid credentials."],
  ])("when the JSON answer is %j, then the known field says %j", (body, said) => {
    expect(providerMessage({ contentType: json, text: JSON.stringify(body) }, [])).toBe(said);
  });

  it("when a JSON answer has none of the known fields, then nothing of it is repeated", () => {
    const text = JSON.stringify({ internal: "secret-config", Code: "AccessDenied" });
    expect(providerMessage({ contentType: json, text }, [])).toBe("");
  });

  it("when the answer is an HTML page, then nothing of it is repeated", () => {
    const text = "<html><body><h1>502 Bad Gateway</h1><p>nginx/1.25 at 10.0.0.7</p></body></html>";
    expect(providerMessage({ contentType: "text/html; charset=utf-8", text }, [])).toBe("");
  });

  it("when the answer is text without a content type, then nothing of it is repeated", () => {
    expect(providerMessage({ contentType: "", text: "root:x:0:0:root:/root:/bin/bash" }, [])).toBe("");
  });

  it("when the answer is text/plain, then its text is repeated", () => {
    expect(providerMessage({ contentType: "text/plain; charset=utf-8", text: "slow down\n" }, [])).toBe("slow down");
  });

  it("when the message is long, then it is cut to the bound with an ellipsis", () => {
    const said = providerMessage({ contentType: json, text: JSON.stringify({ message: "é".repeat(1000) }) }, []);
    expect(Array.from(said)).toHaveLength(maxProviderMessageChars);
    expect(said.endsWith("…")).toBe(true);
  });

  it("when the message holds control, bidi and zero-width characters, then they are gone and lines are one", () => {
    const message = "bad\u0000 key\u0007\r\n\tline\u202e two\u200b\u2028three\u001b[31m red";
    expect(sanitized(message, [])).toBe("bad key line two three[31m red");
  });

  it("when the message quotes a secret, also split by control characters, then it is masked", () => {
    expect(sanitized("key sk-live-123 and sk-live\u0000-123 and sk-l\u200bive-123", ["sk-live-123"])).toBe(
      "key *** and *** and ***",
    );
  });

  it("when a secret sits where the message is cut, then no part of it shows", () => {
    const secret = "sk-live-0123456789";
    const said = sanitized(`${"a".repeat(190)} ${secret}`, [secret]);
    expect(said).not.toContain("sk-live");
    expect(said).toContain("***");
  });
});

describe("http OAuth client status reasons", () => {
  const settings = {
    authorizationUrl: "https://auth.example.test/authorize",
    tokenUrl: "https://auth.example.test/token",
    clientId: "client",
    scopes: [],
    pkce: false,
    clientAuthMethod: "client_secret_post" as const,
    authorizationParams: {},
    scopeSeparator: " ",
  };

  function clientAnswering(result: OutboundResult) {
    return createHttpOAuthClient({ maxRetryAfterMs: 60_000, send: async () => result });
  }

  function answer(status: number, text: string, contentType = json): OutboundResult {
    return {
      kind: "response",
      response: { status, header: () => undefined, contentType, text, tooLarge: false },
    };
  }

  it("when the endpoint echoes the client secret and the refresh token, then both are masked", async () => {
    const client = clientAnswering(
      answer(400, JSON.stringify({ error: "invalid_grant", error_description: "rt-abcdef for cs-123456 is revoked" })),
    );

    const outcome = await client.refresh(settings, "cs-123456", "rt-abcdef");

    expect(outcome).toEqual({
      kind: "refused",
      error: "invalid_grant",
      reason: "the token endpoint answered 400: invalid_grant: *** for *** is revoked",
    });
  });

  it("when the endpoint answers 502 with an HTML page, then the reason is the status alone", async () => {
    const client = clientAnswering(answer(502, "<html><body>Bad Gateway</body></html>", "text/html"));
    expect(await client.refresh(settings, "cs-123456", "rt-abcdef")).toEqual({
      kind: "unavailable",
      reason: "the token endpoint answered 502",
    });
  });

  it("when the guard refuses the token endpoint, then the refresh is refused for good, saying so", async () => {
    const client = clientAnswering({ kind: "refused", reason: '"auth.example.test" resolves to a private address' });
    expect(await client.exchangeCode(settings, "cs-123456", { code: "c", redirectUri: "https://app/cb" })).toEqual({
      kind: "refused",
      error: "destination_refused",
      reason:
        'roomkey refused to call the token endpoint (auth.example.test): "auth.example.test" resolves to a private address',
    });
  });

  it("when a 200 answer was too large to read, then the exchange is refused, not parsed", async () => {
    const client = createHttpOAuthClient({
      maxRetryAfterMs: 60_000,
      send: async () => ({
        kind: "response",
        response: { status: 200, header: () => undefined, contentType: json, text: "", tooLarge: true },
      }),
    });
    expect(await client.refresh(settings, "cs-123456", "rt-abcdef")).toEqual({
      kind: "refused",
      error: "invalid_response",
      reason: "the token endpoint answered 200 with a response too large to read",
    });
  });
});
