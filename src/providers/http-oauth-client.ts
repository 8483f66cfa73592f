import type { OAuthClient, OAuthTokens, TokenOutcome } from "../domain/accounts/oauth.js";
import type { OAuth2Settings } from "../domain/integrations/integrations.js";
import type { OutboundResponse } from "./outbound-http.js";
import { callProvider, type ProviderCallOptions } from "./provider-call.js";
import { jsonObjectOf, providerMessage, sanitized } from "./provider-message.js";

export type HttpOAuthClientOptions = ProviderCallOptions;

/** The longest OAuth `error` code kept (RFC 6749 codes are short ASCII words). */
const maxErrorCodeChars = 64;

function tokensOf(body: Record<string, unknown>): OAuthTokens | undefined {
  const accessToken = body.access_token;
  if (typeof accessToken !== "string" || accessToken === "") return undefined;
  const tokens: OAuthTokens = {
    accessToken,
    tokenType: typeof body.token_type === "string" && body.token_type !== "" ? body.token_type : "Bearer",
  };
  const expiresIn = Number(body.expires_in);
  if (body.expires_in !== undefined && Number.isFinite(expiresIn) && expiresIn > 0)
    tokens.expiresInMs = expiresIn * 1000;
  if (typeof body.refresh_token === "string" && body.refresh_token !== "") tokens.refreshToken = body.refresh_token;
  if (typeof body.scope === "string") tokens.scopes = body.scope.split(/[\s,]+/).filter((s) => s !== "");
  return tokens;
}

/** OAuth 2.0 token requests (RFC 6749 §4.1.3 and §6) over HTTP(S). */
export function createHttpOAuthClient(options: HttpOAuthClientOptions): OAuthClient {
  async function tokenRequest(
    settings: OAuth2Settings,
    clientSecret: string,
    grant: Record<string, string>,
  ): Promise<TokenOutcome> {
    const form = new URLSearchParams(grant);
    const headers: Record<string, string> = {
      accept: "application/json",
      "content-type": "application/x-www-form-urlencoded",
    };
    if (settings.clientAuthMethod === "client_secret_post") {
      form.set("client_id", settings.clientId);
      form.set("client_secret", clientSecret);
    } else {
      // RFC 6749 §2.3.1: both parts form-encoded before they are joined.
      const user = encodeURIComponent(settings.clientId);
      const password = encodeURIComponent(clientSecret);
      headers.authorization = `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;
    }
    // Whatever secret the endpoint echoes stays masked.
    const secrets = [clientSecret, grant.code, grant.code_verifier, grant.refresh_token].filter(
      (s): s is string => s !== undefined,
    );
    /** The status and what the endpoint said: RFC 6749 §5.2's code and description, or any provider's answer. */
    const answeredWith = (response: OutboundResponse, body: Record<string, unknown>) => {
      const description = typeof body.error_description === "string" ? body.error_description : "";
      const said =
        typeof body.error === "string"
          ? sanitized(description === "" ? body.error : `${body.error}: ${description}`, secrets)
          : providerMessage(response, secrets);
      return `the token endpoint answered ${response.status}${said ? `: ${said}` : ""}`;
    };
    const request = { url: settings.tokenUrl, method: "POST", headers, body: form.toString() };
    const kind = grant.grant_type === "refresh_token" ? "token_refresh" : "token_exchange";
    const call = await callProvider(options, request, { kind, what: "the token endpoint" }, (response) =>
      answeredWith(response, jsonObjectOf(response.text) ?? {}),
    );
    if (call.kind === "refused") return { ...call, error: "destination_refused" };
    if (call.kind === "unavailable") return call;
    const { response } = call;
    const body = jsonObjectOf(response.text) ?? {};
    const error = typeof body.error === "string" ? sanitized(body.error, secrets, maxErrorCodeChars) : "";
    const answered = answeredWith(response, body);
    if (response.status < 200 || response.status >= 300 || error !== "") {
      return { kind: "refused", error: error || `http_${response.status}`, reason: answered };
    }
    if (response.tooLarge) {
      return {
        kind: "refused",
        error: "invalid_response",
        reason: `the token endpoint answered ${response.status} with a response too large to read`,
      };
    }
    const tokens = tokensOf(body);
    if (!tokens) {
      return {
        kind: "refused",
        error: "invalid_response",
        reason: "the token endpoint answered without an access_token",
      };
    }
    return { kind: "ok", tokens };
  }

  return {
    exchangeCode(settings, clientSecret, grant) {
      const form: Record<string, string> = {
        grant_type: "authorization_code",
        code: grant.code,
        redirect_uri: grant.redirectUri,
      };
      if (grant.codeVerifier !== undefined) form.code_verifier = grant.codeVerifier;
      return tokenRequest(settings, clientSecret, form);
    },
    refresh(settings, clientSecret, refreshToken) {
      return tokenRequest(settings, clientSecret, { grant_type: "refresh_token", refresh_token: refreshToken });
    },
  };
}
