/**
 * What the account service's parts share: its dependencies and inputs, the
 * lifetimes it works with, and sealing and opening credentials.
 */
import type { Clock } from "../clock.js";
import { open, seal } from "../crypto/envelope.js";
import { NotFoundError } from "../errors.js";
import type { Integration } from "../integrations/integrations.js";
import type { DataKeySource } from "../integrations/ports.js";
import { type CredentialField, credentialBinding, type KeyCredential, type SealedCredentials } from "./accounts.js";
import type { AccountEvents, AccountStore, HandshakeQueue, RefreshQueue } from "./ports.js";

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
  integration: string;
  tenantId: string;
  labels: Record<string, string>;
  redirectUri: string;
  accountId?: string;
}

export interface ConnectAccountInput {
  integration: string;
  tenantId: string;
  labels: Record<string, string>;
  credential: KeyCredential;
  idempotencyKey?: string;
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
