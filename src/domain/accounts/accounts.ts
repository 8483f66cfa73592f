import { bindingFor } from "../crypto/envelope.js";
import type { AuthType } from "../integrations.js";

/**
 * `connecting`: a handshake is under way. `active`: credentials usable.
 * `failed`: the handshake failed (`statusReason` says why). `needs_reauth`:
 * the provider refused a refresh. `disconnected`: deleted, credentials wiped.
 */
export type AccountStatus = "connecting" | "active" | "failed" | "needs_reauth" | "disconnected";

/** Credential fields, each sealed on its own under the environment's data key. */
export type CredentialField = "api_key" | "username" | "password" | "access_token" | "refresh_token";

/** Sealed credential fields (see `credentialBinding`); never leaves roomkey in this form. */
export type SealedCredentials = Partial<Record<CredentialField, string>>;

/** A credential in the clear: only inside one call or one job, never stored or logged. */
export type Credential = { kind: "api_key"; apiKey: string } | { kind: "basic"; username: string; password: string };

/** What a handshake in progress works on; it belongs to one attempt. */
export interface Handshake {
  /** Counts handshakes of this account: a job of an older attempt changes nothing. */
  attempt: number;
  startTime: Date;
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
  credentials: SealedCredentials;
  /** Bumped by every change of the credentials: a refresh writes only over the version it read. */
  credentialsVersion: number;
  handshake: Handshake;
  version: number;
}

/** An account as callers see it: no credentials, sealed or not. */
export type AccountView = Omit<Account, "credentials" | "credentialsVersion" | "handshake" | "version">;

export function toAccountView(account: Account): AccountView {
  const { credentials: _c, credentialsVersion: _v, handshake: _h, version: _version, ...view } = account;
  return view;
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
}
