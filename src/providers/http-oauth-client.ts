import type {
  OAuthClient,
  OAuthRevocationClient,
  OAuthTokens,
  RevocationOutcome,
  TokenOutcome,
} from "../domain/accounts/oauth.js";
import type { OAuth2Settings } from "../domain/integrations/integrations.js";
import type { OutboundRequest, OutboundResponse } from "./outbound-http.js";
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

/**
 * A form request to one of the provider's endpoints, with the client
 * authenticated as `settings.clientAuthMethod` says (RFC 6749 §2.3.1; RFC 7009
 * §2.1 asks the same of the revocation endpoint).
 */
function clientRequest(
  url: string,
  settings: OAuth2Settings,
  clientSecret: string,
  fields: Record<string, string>,
): OutboundRequest {
  const form = new URLSearchParams(fields);
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
  return { url, method: "POST", headers, body: form.toString() };
}

/**
 * The status and what the endpoint said: RFC 6749 §5.2's code and
 * description, or any provider's answer, with every secret of the request masked.
 */
function answeredWith(what: string, response: OutboundResponse, body: Record<string, unknown>, secrets: string[]) {
  const description = typeof body.error_description === "string" ? body.error_description : "";
  const said =
    typeof body.error === "string"
      ? sanitized(description === "" ? body.error : `${body.error}: ${description}`, secrets)
      : providerMessage(response, secrets);
  return `${what} answered ${response.status}${said ? `: ${said}` : ""}`;
}

/** OAuth 2.0 token requests (RFC 6749 §4.1.3 and §6) and token revocation (RFC 7009) over HTTP(S). */
export function createHttpOAuthClient(options: HttpOAuthClientOptions): OAuthClient & OAuthRevocationClient {
  async function tokenRequest(
    settings: OAuth2Settings,
    clientSecret: string,
    grant: Record<string, string>,
  ): Promise<TokenOutcome> {
    // Whatever secret the endpoint echoes stays masked.
    const secrets = [clientSecret, grant.code, grant.code_verifier, grant.refresh_token].filter(
      (s): s is string => s !== undefined,
    );
    const what = "the token endpoint";
    const request = clientRequest(settings.tokenUrl, settings, clientSecret, grant);
    const kind = grant.grant_type === "refresh_token" ? "token_refresh" : "token_exchange";
    const call = await callProvider(options, request, { kind, what }, (response) =>
      answeredWith(what, response, jsonObjectOf(response.text) ?? {}, secrets),
    );
    if (call.kind === "refused") return { ...call, error: "destination_refused" };
    if (call.kind === "unavailable") return call;
    const { response } = call;
    const body = jsonObjectOf(response.text) ?? {};
    const error = typeof body.error === "string" ? sanitized(body.error, secrets, maxErrorCodeChars) : "";
    const answered = answeredWith(what, response, body, secrets);
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
    async revoke(settings, clientSecret, token, tokenTypeHint): Promise<RevocationOutcome> {
      const url = settings.revocationUrl;
      if (url === undefined || url === "") {
        return { kind: "refused", error: "no_revocation_endpoint", reason: "the integration has no revocation_url" };
      }
      const secrets = [clientSecret, token];
      const what = "the revocation endpoint";
      const request = clientRequest(url, settings, clientSecret, { token, token_type_hint: tokenTypeHint });
      const call = await callProvider(options, request, { kind: "token_revocation", what }, (response) =>
        answeredWith(what, response, jsonObjectOf(response.text) ?? {}, secrets),
      );
      if (call.kind === "refused") return { ...call, error: "destination_refused" };
      if (call.kind === "unavailable") return call;
      const { response } = call;
      // RFC 7009 §2.2: 200 also for a token the provider no longer knows; any 2xx is taken as done.
      if (response.status >= 200 && response.status < 300) return { kind: "ok" };
      const body = jsonObjectOf(response.text) ?? {};
      const error = typeof body.error === "string" ? sanitized(body.error, secrets, maxErrorCodeChars) : "";
      return {
        kind: "refused",
        error: error || `http_${response.status}`,
        reason: answeredWith(what, response, body, secrets),
      };
    },
  };
}
