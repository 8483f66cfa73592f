import { ConcurrentModificationError, FailedPreconditionError } from "./errors.js";

/** How long an idempotency key answers with what its first request created (CreateToken, ConnectAccount). */
export const idempotencyWindowMs = 24 * 60 * 60_000;

/** What a request leaves under its idempotency key: a digest of the request and when it came. */
export interface IdempotencyClaim {
  /** Digest of the request, so a key reused for another request is refused. */
  fingerprint: string;
  createTime: Date;
}

/** Where idempotency keys live: one record per key, claimed and replaced with single-document writes. */
export interface IdempotencyStore<R extends IdempotencyClaim> {
  /** Records `record` under `key` unless one is there: then returns the one that is. */
  claimIdempotency(environment: string, key: string, record: R): Promise<R | undefined>;
  /** Replaces the record under `key` if it is still the one created at `expectedCreateTime`. */
  replaceIdempotency(environment: string, key: string, expectedCreateTime: Date, record: R): Promise<boolean>;
}

/**
 * Claims an idempotency key for a request. Resolves undefined when the
 * request owns the key (it was free, or older than the window and taken
 * over), or with the record of an earlier identical request within the
 * window, whose result the caller returns (or finishes, under its id).
 * A key used within the window by a different request is
 * FAILED_PRECONDITION IDEMPOTENCY_KEY_REUSED; losing the take-over of a stale
 * key to other requests four times is ABORTED.
 */
export async function claimIdempotencyKey<R extends IdempotencyClaim>(
  store: IdempotencyStore<R>,
  environment: string,
  key: string,
  record: R,
  given: string,
): Promise<R | undefined> {
  for (let attempt = 0; ; attempt++) {
    const existing = await store.claimIdempotency(environment, key, record);
    if (!existing) return undefined;
    if (record.createTime.getTime() - existing.createTime.getTime() >= idempotencyWindowMs) {
      // The key is free again: this request takes it, unless another request took it first.
      if (await store.replaceIdempotency(environment, key, existing.createTime, record)) return undefined;
      if (attempt < 3) continue;
      throw new ConcurrentModificationError(`idempotency key "${given}"`);
    }
    if (existing.fingerprint !== record.fingerprint) {
      throw new FailedPreconditionError(
        "failed_precondition",
        "IDEMPOTENCY_KEY_REUSED",
        "idempotency_key: was used within 24 hours for a different request",
        { field: "idempotency_key" },
      );
    }
    return existing;
  }
}
