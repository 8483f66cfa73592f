/**
 * What the account service's parts share: its dependencies and inputs, the
 * lifetimes it works with, and sealing and opening credentials.
 */
import type { Clock } from "../clock.js";
import { open, seal } from "../crypto/envelope.js";
import { FailedPreconditionError, invalidField, NotFoundError } from "../errors.js";
import type { Integration } from "../integrations/integrations.js";
import type { DataKeySource } from "../integrations/ports.js";
import {
  type Account,
  type CredentialField,
  credentialBinding,
  type EndUser,
  type HeldCredentials,
  type KeyCredential,
  type SealedCredentials,
} from "./accounts.js";
import type { AccountEvents, AccountStore, HandshakeQueue, RefreshQueue, RevocationQueue } from "./ports.js";

/** How long an OAuth state from StartOAuthConnection is accepted. */
export const oauthStateLifetimeMs = 10 * 60_000;
/** An access token closer than this to its expiry is not handed out; it is refreshed first, however long that takes. */
export const stillUsableMs = 60_000;
/** How long GetAccountCredentials waits for a refresh before handing out an access token that still works. */
export const refreshPatienceMs = 5_000;

export interface AccountServiceDeps {
  store: AccountStore;
  integrations: { get(environment: string, name: string): Promise<Integration | undefined> };
  keys: DataKeySource;
  events: AccountEvents;
  handshakes: HandshakeQueue;
  refreshes: RefreshQueue;
  /** Revocation at the provider after DeleteAccount; without it, deleted tokens are only wiped. */
  revocations?: RevocationQueue;
  /** The environment's OAuth refresh margin. */
  refreshMarginMs(environment: string): Promise<number>;
  /** How long a caller waits for a refresh it asked for. */
  refreshWaitMs: number;
  /** Pause between reads while waiting for a refresh. */
  pollMs?: number;
  clock: Clock;
  warn(message: string, details: Record<string, unknown>): void;
}

export interface StartOAuthInput {
  /** Empty with `accountId`: the account's. */
  integration: string;
  /** Empty: the end user's id (required when there is no end user, unless `accountId`). */
  tenantId: string;
  labels: Record<string, string>;
  redirectUri: string;
  accountId?: string;
  endUser?: EndUser;
  /** The id a new account gets (a connect session reserves it); a new one otherwise. */
  newAccountId?: string;
  /** The connect session that begins it: only that session (or the hosted callback) may complete it. */
  sessionId?: string;
}

export interface ConnectAccountInput {
  /** Empty with `accountId`: the account's. */
  integration: string;
  /** Empty: the end user's id (required when there is no end user, unless `accountId`). */
  tenantId: string;
  labels: Record<string, string>;
  credential: KeyCredential;
  idempotencyKey?: string;
  endUser?: EndUser;
  /** The id a new account gets (a connect session reserves it); a new one otherwise. */
  newAccountId?: string;
  /** Re-authorizes this account in place instead of connecting a new one. */
  accountId?: string;
  /** The connect session that connects it. */
  sessionId?: string;
}

/** What CompleteOAuthConnection knows besides the state and the code. */
export interface CompleteOAuthOptions {
  /** The authorization response's `iss` (RFC 9207), when it had one. */
  iss?: string;
  /**
   * Who completes: a session (only states it began), `any-session` (the
   * hosted callback: only states a session began), or undefined (a backend
   * token: any state).
   */
  session?: { id: string } | "any-session";
}

/** The tenant a new account gets: the one given, else its end user's id. */
export function tenantFor(input: { tenantId: string; endUser?: EndUser }): string {
  if (input.tenantId !== "") return input.tenantId;
  if (input.endUser && input.endUser.id !== "") return input.endUser.id;
  throw invalidField("tenant_id", "is required unless end_user is set");
}

/** An end user given for a new account must have an id. */
export function checkEndUser(endUser: EndUser | undefined): void {
  if (endUser && endUser.id === "") throw invalidField("end_user.id", "is required");
}

/**
 * The credentials a re-authorization sets aside: restored if the new one
 * fails, dropped once it succeeds. An account already re-authorizing keeps
 * what it set aside first.
 */
export function holdCredentials(account: Account): HeldCredentials {
  if (account.held) return account.held;
  // A first handshake still running holds only what it is checking: nothing worth restoring.
  if (account.status === "connecting") return { credentials: {} };
  const held: HeldCredentials = { credentials: account.credentials };
  if (account.credentialsExpireTime) held.credentialsExpireTime = account.credentialsExpireTime;
  if (account.lastRefreshTime) held.lastRefreshTime = account.lastRefreshTime;
  if (account.tokenType !== undefined) held.tokenType = account.tokenType;
  if (account.scopes !== undefined) held.scopes = account.scopes;
  return held;
}

/** A disconnected account is not connected again in place: a new one is. */
export function accountDisconnected(id: string, when = "is disconnected"): FailedPreconditionError {
  return new FailedPreconditionError(
    "failed_precondition",
    "ACCOUNT_NOT_ACTIVE",
    `account "${id}" ${when}: connect a new account instead`,
  );
}

export function accountNotFound(environment: string, id: string): NotFoundError {
  return new NotFoundError(
    "not_found",
    "ACCOUNT_NOT_FOUND",
    `account "${id}" does not exist in environment "${environment}"`,
    { environment, account: id },
  );
}

/** Seals credential fields for one account of one environment. */
export function sealCredentials(
  key: Buffer,
  environment: string,
  accountId: string,
  fields: Partial<Record<CredentialField, string>>,
): SealedCredentials {
  const sealed: SealedCredentials = {};
  for (const [field, value] of Object.entries(fields) as [CredentialField, string | undefined][]) {
    if (value !== undefined) sealed[field] = seal(key, value, credentialBinding(environment, accountId, field));
  }
  return sealed;
}

/** Opens one sealed field, or throws DecryptionError if it was moved, tampered with or its key is gone. */
export function openCredential(
  key: Buffer,
  environment: string,
  accountId: string,
  field: CredentialField,
  sealed: string,
): string {
  return open(key, sealed, credentialBinding(environment, accountId, field)).toString("utf8");
}

/** Accounts of an environment, as callers see them through AccountService. */
