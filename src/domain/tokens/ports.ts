/**
 * What the tokens area needs from storage, queues, pub/sub and providers.
 * Storage and queue modules implement these interfaces and import nothing
 * else of the domain (no service file).
 */
import type { IdempotencyClaim, IdempotencyStore } from "../idempotency.js";
import type { PageRequest } from "../paging.js";
import type { Token, TokenState } from "./tokens.js";

/** Every token hash an environment holds, whatever its state: what the known-hash filter is made of. */
export interface TokenHashSource {
  listHashes(environment: string): Promise<string[]>;
}

/** Writes last-used times: per environment, token id to the latest use seen. */
export interface UsageWriter {
  recordUsage(environment: string, lastUsed: ReadonlyMap<string, Date>): Promise<void>;
}

/** What the rotation worker's token jobs need of storage. */
export interface TokenMaintenanceStore {
  get(environment: string, id: string): Promise<Token | undefined>;
  /** Marks a rotated token whose grace has ended as retired; false when it was already (or is not due). */
  retire(environment: string, id: string, now: Date): Promise<boolean>;
  /** Rotated tokens whose grace ended before `now` and that are not retired yet. */
  dueForRetirement(environment: string, now: Date): Promise<Token[]>;
  /** Stores state `expired` on tokens past expiry; returns those it changed. */
  markExpired(environment: string, now: Date): Promise<Token[]>;
  /** Deletes revoked, expired and retired tokens that ended before `before`; returns how many. */
  purgeEnded(environment: string, before: Date): Promise<number>;
  /** Deletes idempotency records created before `before`. */
  purgeIdempotency(environment: string, before: Date): Promise<number>;
}

/** Tokens about to expire, for token.expiring. */
export interface ExpiringTokenSource {
  /** Active tokens that expire after `now` and by `before`, soonest first. */
  listActiveExpiringBefore(environment: string, before: Date, now: Date, limit: number): Promise<Token[]>;
}

export interface TokenLookup {
  findByHash(environment: string, hash: string): Promise<Token | undefined>;
}

/** Where successful uses go, to be written as `last_used_time` in batches. */
export interface UsageSink {
  record(environment: string, tokenId: string, at: number): void;
}

/** What CreateToken remembers of a request under its idempotency key. */
export interface IdempotencyRecord extends IdempotencyClaim {
  tokenId: string;
}

export interface TokenStore extends IdempotencyStore<IdempotencyRecord> {
  /** False when a token with that id exists. */
  insert(environment: string, token: Token): Promise<boolean>;
  get(environment: string, id: string): Promise<Token | undefined>;
  /** Up to `page.size + 1` tokens in `state` at `now` (any state if unset), newest first, after `page.after`. */
  list(environment: string, filter: { state?: TokenState; now: Date }, page: PageRequest): Promise<Token[]>;
  /** Sets the revoke time unless revoked already; the token as it is afterwards, or undefined if absent. */
  revoke(environment: string, id: string, at: Date): Promise<Token | undefined>;
  /** Marks the token rotated if it still has `expectedVersion`; the updated token, or undefined. */
  markRotated(
    environment: string,
    id: string,
    expectedVersion: number,
    rotation: { rotateTime: Date; graceExpireTime: Date; successorId: string },
  ): Promise<Token | undefined>;
  remove(environment: string, id: string): Promise<void>;
}

/**
 * Tells every replica to forget a token it may have cached. Resolves false
 * when the message could not be sent (Redis down): replicas then drop the
 * token only when their cache entry ends.
 */
export interface TokenInvalidations {
  publish(environment: string, hash: string): Promise<boolean>;
}

/**
 * Schedules the job that retires a rotated token when its grace period ends.
 * Best effort: the rotation worker's sweep retires what a lost job did not.
 */
export interface RetirementScheduler {
  retireAt(environment: string, tokenId: string, at: Date): Promise<void>;
}

/**
 * Where token changes are told (webhooks). Called after the change is
 * committed; implementations never fail their caller.
 */
export interface TokenEvents {
  created(environment: string, token: Token): Promise<void>;
  rotated(environment: string, token: Token, previous: Token): Promise<void>;
  revoked(environment: string, token: Token): Promise<void>;
}
