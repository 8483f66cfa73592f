import { bindingFor } from "../crypto/envelope.js";
import type { AuthType } from "../integrations/integrations.js";

/**
 * `connecting`: a handshake is under way. `active`: credentials usable.
 * `failed`: the handshake failed (`statusReason` says why). `needs_reauth`:
 * the provider refused a refresh. `disconnected`: deleted, credentials wiped.
 */
export type AccountStatus = "connecting" | "active" | "failed" | "needs_reauth" | "disconnected";

/** Credential fields, each sealed on its own under the environment's data key. */
export type CredentialField =
  | "api_key"
  | "username"
  | "password"
  | "access_token"
  | "refresh_token"
  /** An OAuth code waiting for its exchange, and its PKCE verifier: gone once exchanged. */
  | "authorization_code"
  | "code_verifier";

/** Sealed credential fields (see `credentialBinding`); never leaves roomkey in this form. */
export type SealedCredentials = Partial<Record<CredentialField, string>>;

/** A credential in the clear: only inside one call or one job, never stored or logged. */
export type KeyCredential = { kind: "api_key"; apiKey: string } | { kind: "basic"; username: string; password: string };

/** What GetAccountCredentials hands out: a key credential, or an OAuth access token (never the refresh token). */
export type Credential =
  | KeyCredential
  | { kind: "oauth2"; accessToken: string; tokenType: string; expireTime?: Date; scopes: string[] };

/** What a handshake in progress works on; it belongs to one attempt. */
export interface Handshake {
  /** Counts handshakes of this account: a job of an older attempt changes nothing. */
  attempt: number;
  startTime: Date;
  /** OAuth: the redirect URI the code was issued for (the token request repeats it). */
  redirectUri?: string;
  /** A re-authorization: the status the account had when it began (NEEDS_REAUTH → ACTIVE is a recovery). */
  reauthorizedFrom?: AccountStatus;
  /** A re-authorization whose new credential failed: the account went back to `reauthorizedFrom` with its old one. */
  reauthorizationFailed?: true;
}

/** The platform's own user who owns an account (or a connect session's account to be). */
export interface EndUser {
  id: string;
  displayName: string;
  email: string;
  tags: string[];
}

/**
 * The credentials a re-authorization set aside: what the account had before
 * it began. They come back if the new credential fails its handshake, and go
 * once it succeeds.
 */
export interface HeldCredentials {
  credentials: SealedCredentials;
  credentialsExpireTime?: Date;
  lastRefreshTime?: Date;
  tokenType?: string;
  scopes?: string[];
}

/** Revoking a deleted account's tokens at the provider (RFC 7009). */
export interface UpstreamRevocation {
  status: "pending" | "done" | "failed";
  attempts: number;
  /** Why the last attempt failed; empty once done. */
  lastError: string;
  updateTime: Date;
  /** The tokens still to revoke, sealed as they were on the account; wiped once done or failed. */
  tokens?: SealedCredentials;
}

/** A third-party account of one environment, as stored. */
export interface Account {
  id: string;
  integration: string;
  tenantId: string;
  labels: Record<string, string>;
  status: AccountStatus;
  statusReason: string;
  authType: AuthType;
  remoteId?: string;
  remoteName?: string;
  createTime: Date;
  updateTime: Date;
  credentialsExpireTime?: Date;
  lastRefreshTime?: Date;
  /** OAuth: the access token's type and the scopes granted. */
  tokenType?: string;
  scopes?: string[];
  credentials: SealedCredentials;
  /** Bumped by every change of the credentials: a refresh writes only over the version it read. */
  credentialsVersion: number;
  handshake: Handshake;
  /** The platform's end user who owns the account. */
  endUser?: EndUser;
  /** The connect session that made the account (or last re-authorized it): spent once the account is ACTIVE. */
  connectSessionId?: string;
  /** During a re-authorization: the credentials it would replace (see HeldCredentials). */
  held?: HeldCredentials;
  /** After DeleteAccount, when the integration has a revocation endpoint. */
  upstreamRevocation?: UpstreamRevocation;
  version: number;
}

/** An account as callers see it: no credentials, sealed or not. */
export type AccountView = Omit<
  Account,
  | "credentials"
  | "credentialsVersion"
  | "handshake"
  | "version"
  | "tokenType"
  | "scopes"
  | "held"
  | "upstreamRevocation"
> & {
  upstreamRevocation?: Omit<UpstreamRevocation, "tokens">;
  /** The last handshake was a re-authorization that failed (see Handshake.reauthorizationFailed). */
  reauthorizationFailed?: true;
};

export function toAccountView(account: Account): AccountView {
  const {
    credentials: _c,
    credentialsVersion: _v,
    handshake: _h,
    version: _version,
    tokenType: _t,
    scopes: _s,
    held: _held,
    upstreamRevocation,
    ...rest
  } = account;
  const view: AccountView = account.handshake.reauthorizationFailed ? { ...rest, reauthorizationFailed: true } : rest;
  if (!upstreamRevocation) return view;
  const { tokens: _tokens, ...revocation } = upstreamRevocation;
  return { ...view, upstreamRevocation: revocation };
}

/**
 * Where a sealed credential field belongs: it opens for this environment,
 * account and field only, so a ciphertext copied anywhere else fails.
 */
export function credentialBinding(environment: string, accountId: string, field: CredentialField): string {
  return bindingFor(environment, "account", accountId, field);
}

/** A status change, as WatchAccounts streams it. */
export interface AccountEvent {
  account: AccountView;
  previousStatus: AccountStatus;
  eventTime: Date;
  /** A handshake's outcome: the status the account had when its re-authorization began. */
  reauthorizedFrom?: AccountStatus;
  /** A handshake's outcome: which handshake of the account it ended. */
  handshake?: { attempt: number; startTime: Date };
}

/** A pending OAuth connection: what StartOAuthConnection began and CompleteOAuthConnection finishes. */
export interface OAuthState {
  /** SHA-256 of the state handed to the caller; the state itself is not stored. */
  hash: string;
  integration: string;
  tenantId: string;
  labels: Record<string, string>;
  redirectUri: string;
  /** The account it connects: made up front for a new one, or the one re-authorized. */
  accountId: string;
  reauthorize: boolean;
  /** The end user a new account gets. */
  endUser?: EndUser;
  /** The connect session that began it: only that session (or the hosted callback) completes it. */
  sessionId?: string;
  /** The PKCE verifier, sealed (bound to this state), when the integration uses PKCE. */
  sealedVerifier?: string;
  createTime: Date;
  expireTime: Date;
  /** SHA-256 of the code it was completed with: a retry with the same code gets the same account. */
  usedWith?: string;
  version: number;
}
