/**
 * What the accounts area needs from storage, queues, pub/sub and providers.
 * Storage and queue modules implement these interfaces and import nothing
 * else of the domain (no service file).
 */
import type { IdempotencyClaim, IdempotencyStore } from "../idempotency.js";
import type { PageRequest } from "../paging.js";
import type { Account, AccountEvent, AccountStatus, OAuthState } from "./accounts.js";

export interface AccountFilter {
  integration?: string;
  status?: AccountStatus;
  tenantId?: string;
  endUserId?: string;
  /** Accounts whose end user has this tag. */
  endUserTag?: string;
}

/** What ConnectAccount remembers of a request under its idempotency key. */
export interface AccountIdempotencyRecord extends IdempotencyClaim {
  accountId: string;
  fingerprint: string;
  createTime: Date;
}

/** Persistence of one environment's accounts. */
export interface AccountStore extends IdempotencyStore<AccountIdempotencyRecord> {
  insert(environment: string, account: Account): Promise<void>;
  get(environment: string, id: string): Promise<Account | undefined>;
  /** Up to `page.size + 1` accounts matching `filter`, newest first, after `page.after`. */
  list(environment: string, filter: AccountFilter, page: PageRequest): Promise<Account[]>;
  /**
   * Moves `account` (as read, at its version) to the next version with
   * `changes`, removing `unset`: the account afterwards, or undefined if
   * another writer moved it first, or claimed this version and has not
   * written it yet (then the account still reads at its version; once that
   * claim is abandoned, a later update finishes it with the claimant's
   * changes and returns undefined). Given an `incarnation` (a job's), writes
   * nothing and throws EnvironmentReplacedError unless that is still the
   * environment's current incarnation.
   */
  update(
    environment: string,
    account: Account,
    changes: Partial<Account>,
    unset?: readonly (keyof Account)[],
    incarnation?: string,
  ): Promise<Account | undefined>;
  insertState(environment: string, state: OAuthState): Promise<void>;
  getState(environment: string, hash: string): Promise<OAuthState | undefined>;
  /** Marks the state used with a code (by its hash) if it is still at its version: false if another call did first. */
  useState(environment: string, state: OAuthState, usedWith: string): Promise<boolean>;
}

/** Where status changes go: to every WatchAccounts on every replica. Best effort. */
export interface AccountEvents {
  publish(environment: string, event: AccountEvent): Promise<void>;
}

/**
 * Puts an account's handshake on its environment's handshake queue, bound to
 * `incarnation` (by default the one this process knows the environment as).
 */
export interface HandshakeQueue {
  enqueue(environment: string, accountId: string, attempt: number, incarnation?: string): Promise<void>;
}

/** An account to refresh, with the credentials version its requester saw (the job skips it if that moved). */
export interface RefreshRequest {
  accountId: string;
  seenVersion: number;
}

/** Asks the rotation queue to refresh accounts now (one job per account: a refresh already queued is it). */
export interface RefreshQueue {
  /**
   * Queues refreshes in one round trip; one already queued for an account
   * absorbs a new one. Bound to `incarnation` like HandshakeQueue.
   */
  request(environment: string, requests: readonly RefreshRequest[], incarnation?: string): Promise<void>;
}

/**
 * Queues the revocation of a deleted account's tokens at its provider
 * (RFC 7009) on the environment's rotation queue. One job per account.
 */
export interface RevocationQueue {
  enqueue(environment: string, accountId: string, incarnation?: string): Promise<void>;
}
