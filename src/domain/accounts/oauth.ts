import { createHash, randomBytes } from "node:crypto";
import type { OAuth2Settings } from "../integrations/integrations.js";

/** What a token endpoint handed out. */
export interface OAuthTokens {
  accessToken: string;
  tokenType: string;
  /** Absent when the provider did not say (`expires_in` missing). */
  expiresInMs?: number;
  /** Absent when the provider kept the old one (no rotation) or issues none. */
  refreshToken?: string;
  /** Absent when the provider did not say (then the requested scopes were granted). */
  scopes?: string[];
}

/** The answer of a token endpoint. */
export type TokenOutcome =
  | { kind: "ok"; tokens: OAuthTokens }
  /** The provider refused the grant or the client (`invalid_grant`, `invalid_client`, other 4xx). */
  | { kind: "refused"; error: string; reason: string }
  /** The provider could not answer now (network error, timeout, 5xx, 429). */
  | { kind: "unavailable"; reason: string; retryAfterMs?: number };

/** The client half of OAuth 2.0 that roomkey runs: code exchange and refresh. */
export interface OAuthClient {
  exchangeCode(
    settings: OAuth2Settings,
    clientSecret: string,
    grant: { code: string; redirectUri: string; codeVerifier?: string },
  ): Promise<TokenOutcome>;
  refresh(settings: OAuth2Settings, clientSecret: string, refreshToken: string): Promise<TokenOutcome>;
}

/** Which kind of token a revocation names (RFC 7009 §2.1 `token_type_hint`). */
export type RevocableTokenType = "refresh_token" | "access_token";

/** The answer of a revocation endpoint (RFC 7009 §2.2). */
export type RevocationOutcome =
  /** Revoked, or the provider did not know the token (also 200 in RFC 7009: there is nothing left to revoke). */
  | { kind: "ok" }
  /** The provider said no (`unsupported_token_type`, `invalid_client`, other 4xx): asking again cannot help. */
  | { kind: "refused"; error: string; reason: string }
  /** The provider could not answer now (network error, timeout, 5xx, 429): asking later may work. */
  | { kind: "unavailable"; reason: string; retryAfterMs?: number };

/**
 * Token revocation at the provider (RFC 7009), after DeleteAccount. Kept apart
 * from OAuthClient so that the handshake and the refresher, which never
 * revoke, do not depend on it; the HTTP client implements both.
 */
export interface OAuthRevocationClient {
  /**
   * Asks `settings.revocationUrl` to revoke `token`, authenticating the client
   * as the token endpoint does (`settings.clientAuthMethod`).
   */
  revoke(
    settings: OAuth2Settings,
    clientSecret: string,
    token: string,
    tokenTypeHint: RevocableTokenType,
  ): Promise<RevocationOutcome>;
}

/**
 * An OAuth `state`: the environment, a dot, then 256 random bits. Only its
 * SHA-256 is stored. The environment lets roomkey's one fixed callback find
 * the state's database; names hold no dot, base64url none either.
 */
export function newState(environment: string): string {
  return `${environment}.${randomBytes(32).toString("base64url")}`;
}

/** The environment a state names (see newState), if it has the shape of one. */
export function environmentOfState(state: string): string | undefined {
  const dot = state.indexOf(".");
  return dot > 0 ? state.slice(0, dot) : undefined;
}

export function hashState(state: string): string {
  return createHash("sha256").update(state).digest("hex");
}

/** A PKCE verifier (RFC 7636: 43 to 128 characters) and its S256 challenge. */
export function newPkce(): { verifier: string; challenge: string } {
  const verifier = randomBytes(48).toString("base64url");
  return { verifier, challenge: createHash("sha256").update(verifier).digest("base64url") };
}

/** The provider's authorization URL for one connection attempt. */
export function authorizationUrl(
  settings: OAuth2Settings,
  request: { redirectUri: string; state: string; codeChallenge?: string },
): string {
  const url = new URL(settings.authorizationUrl);
  for (const [name, value] of Object.entries(settings.authorizationParams)) url.searchParams.set(name, value);
  url.searchParams.set("response_type", "code");
  url.searchParams.set("client_id", settings.clientId);
  url.searchParams.set("redirect_uri", request.redirectUri);
  if (settings.scopes.length > 0) url.searchParams.set("scope", settings.scopes.join(settings.scopeSeparator || " "));
  url.searchParams.set("state", request.state);
  if (request.codeChallenge !== undefined) {
    url.searchParams.set("code_challenge", request.codeChallenge);
    url.searchParams.set("code_challenge_method", "S256");
  }
  return url.toString();
}
