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

/** An OAuth `state`: 256 random bits. Only its SHA-256 is stored. */
export function newState(): string {
  return randomBytes(32).toString("base64url");
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
