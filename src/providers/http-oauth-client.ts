import type { OAuthClient, OAuthTokens, TokenOutcome } from "../domain/accounts/oauth.js";
import type { OAuth2Settings } from "../domain/integrations.js";
import { retryAfterMs } from "./http-credential-checker.js";

export interface HttpOAuthClientOptions {
  timeoutMs: number;
  maxRetryAfterMs: number;
  fetch?: typeof fetch;
}

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
  const doFetch = options.fetch ?? fetch;

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
    const host = new URL(settings.tokenUrl).host;
    let response: Response;
    let text: string;
    try {
      response = await doFetch(settings.tokenUrl, {
        method: "POST",
        headers,
        body: form.toString(),
        redirect: "manual",
        signal: AbortSignal.timeout(options.timeoutMs),
      });
      text = await response.text();
    } catch (error) {
      const timedOut = error instanceof Error && (error.name === "TimeoutError" || error.name === "AbortError");
      const code = (error as { cause?: { code?: unknown } }).cause?.code;
      const detail = timedOut
        ? `no answer within ${options.timeoutMs} ms`
        : typeof code === "string"
          ? code
          : "network error";
      return { kind: "unavailable", reason: `the token endpoint could not be reached (${host}): ${detail}` };
    }
    let body: Record<string, unknown> = {};
    try {
      const parsed: unknown = JSON.parse(text);
      if (parsed !== null && typeof parsed === "object") body = parsed as Record<string, unknown>;
    } catch {
      // Not JSON: judged by its status alone.
    }
    const error = typeof body.error === "string" ? body.error : "";
    const description = typeof body.error_description === "string" ? body.error_description : "";
    const said = [error, description]
      .filter((s) => s !== "")
      .join(": ")
      .slice(0, 200);
    if (response.status === 429 || response.status >= 500) {
      const after = retryAfterMs(response.headers.get("retry-after"), Date.now());
      return {
        kind: "unavailable",
        reason: `the token endpoint answered ${response.status}${said ? `: ${said}` : ""}`,
        ...(after === undefined ? {} : { retryAfterMs: Math.min(after, options.maxRetryAfterMs) }),
      };
    }
    if (response.status < 200 || response.status >= 300 || error !== "") {
      return {
        kind: "refused",
        error: error || `http_${response.status}`,
        reason: `the token endpoint answered ${response.status}${said ? `: ${said}` : ""}`,
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
