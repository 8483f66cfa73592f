import { randomUUID } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { OAuth2Server } from "oauth2-mock-server";

interface TokenResponse {
  statusCode: number;
  body: Record<string, unknown>;
}

/**
 * An OAuth 2.0 / OpenID provider on 127.0.0.1 for tests: `oauth2-mock-server`
 * (authorization code with PKCE, refresh tokens, userinfo), with the rules a
 * real provider keeps added through its hooks: a code works once, refresh
 * tokens rotate (each works once; reuse is `invalid_grant`), and userinfo
 * answers only a live access token. It counts token requests by grant.
 */
export interface OAuthProvider {
  issuer: string;
  calls(grant: "authorization_code" | "refresh_token"): number;
  /** How each token request authenticated its client: the `Authorization` header, or `client_id:client_secret` from the body. */
  clientAuthentications(): string[];
  /** Lifetime of the access tokens it hands out from now on. */
  setTokenLifetime(seconds: number): void;
  /** The next token requests get these answers instead, one each. */
  queue(...answers: { status: number; body: Record<string, unknown> }[]): void;
  /** Drops the answers still queued. */
  clearQueue(): void;
  /** Refresh tokens it would accept now (a rotated one leaves). */
  liveRefreshTokens(): number;
  /** Forgets every refresh token, as a user revoking the app would. */
  revokeAll(): void;
  /** Follows the authorization URL as a signed-in user would: the code and state from the redirect. */
  authorize(authorizationUrl: string): Promise<{ code: string; state: string; redirect: URL }>;
  stop(): Promise<void>;
}

export async function startOAuthProvider(): Promise<OAuthProvider> {
  const server = new OAuth2Server();
  await server.issuer.keys.generate("RS256");
  await server.start(0, "127.0.0.1");
  const issuer = (server.issuer.url ?? "").replace(/\/$/, "");
  const codes = new Map<string, boolean>();
  const refreshTokens = new Set<string>();
  const accessTokens = new Set<string>();
  const counts = { authorization_code: 0, refresh_token: 0 };
  const answers: { status: number; body: Record<string, unknown> }[] = [];
  const clients: string[] = [];
  let lifetime = 3600;

  // Tokens signed in the same second would be equal: a token id makes each one unique, as real ones are.
  server.service.on("beforeTokenSigning", (token: { payload: Record<string, unknown> }) => {
    token.payload.jti = randomUUID();
  });
  server.service.on("beforeAuthorizeRedirect", (redirect: { url: URL }) => {
    const code = redirect.url.searchParams.get("code");
    if (code) codes.set(code, false);
  });
  server.service.on(
    "beforeResponse",
    (response: TokenResponse, req: IncomingMessage & { body: Record<string, string> }) => {
      const grant = req.body.grant_type;
      if (grant === "authorization_code" || grant === "refresh_token") counts[grant]++;
      clients.push(req.headers.authorization ?? `${req.body.client_id}:${req.body.client_secret}`);
      const forced = answers.shift();
      if (forced) {
        response.statusCode = forced.status;
        response.body = forced.body;
        return;
      }
      const refuse = (description: string) => {
        response.statusCode = 400;
        response.body = { error: "invalid_grant", error_description: description };
      };
      if (grant === "authorization_code") {
        const code = req.body.code ?? "";
        if (codes.get(code) !== false) return refuse("the code is unknown or was used already");
        codes.set(code, true);
      } else if (grant === "refresh_token") {
        const token = req.body.refresh_token ?? "";
        if (!refreshTokens.delete(token)) return refuse("the refresh token is unknown, revoked or was used already");
      }
      if (response.statusCode === 200) {
        response.body.expires_in = lifetime;
        if (typeof response.body.refresh_token === "string") refreshTokens.add(response.body.refresh_token);
        if (typeof response.body.access_token === "string") accessTokens.add(response.body.access_token);
      }
    },
  );
  server.service.on("beforeUserinfo", (response: TokenResponse, req: IncomingMessage) => {
    const token = (req.headers.authorization ?? "").replace(/^Bearer /, "");
    if (!accessTokens.has(token)) {
      response.statusCode = 401;
      response.body = { error: "invalid_token", error_description: "the access token is not valid" };
      return;
    }
    response.body = { sub: "johndoe", name: "John Doe" };
  });

  return {
    issuer,
    calls: (grant) => counts[grant],
    clientAuthentications: () => [...clients],
    setTokenLifetime: (seconds) => {
      lifetime = seconds;
    },
    queue: (...more) => answers.push(...more),
    clearQueue: () => {
      answers.length = 0;
    },
    liveRefreshTokens: () => refreshTokens.size,
    revokeAll: () => refreshTokens.clear(),
    async authorize(authorizationUrl) {
      const response = await fetch(authorizationUrl, { redirect: "manual" });
      const location = response.headers.get("location");
      if (response.status !== 302 || !location) throw new Error(`authorize answered ${response.status}`);
      const redirect = new URL(location);
      return {
        code: redirect.searchParams.get("code") ?? "",
        state: redirect.searchParams.get("state") ?? "",
        redirect,
      };
    },
    stop: () => server.stop(),
  };
}
