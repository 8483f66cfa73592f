/**
 * The retry policy of roomkey's jobs: every attempts, backoff, stall, lock and
 * Retry-After number, named once. Queue producers take their job options from
 * here; the workers take the backoff and stall settings.
 *
 * What is configurable stays in config.ts and is only referred to here:
 * `ROOMKEY_PROVIDER_RETRY_MS` (the first backoff step, default 1 s),
 * `ROOMKEY_JOB_LOCK_MS` (how long a job's lock lasts, and how often stalled
 * jobs are looked for, default 30 s) and `ROOMKEY_HANDSHAKE_SWEEP_MS` (how
 * often the connecting sweep runs, and how long an account may sit CONNECTING
 * before it re-queues its handshake, default 30 s). Upstream revocations
 * back off from five times `ROOMKEY_PROVIDER_RETRY_MS`.
 */
import type { JobsOptions } from "bullmq";

/** The backoff type of jobs that call a provider: exponential, or the provider's `Retry-After`. */
export const providerBackoff = "provider";

/** Attempts of one handshake job: with the provider backoff, about 8 minutes of trying. */
export const handshakeAttempts = 8;

/** Attempts of one OAuth refresh job. */
export const refreshAttempts = 5;

/** The provider backoff doubles from `ROOMKEY_PROVIDER_RETRY_MS` up to this. */
export const providerBackoffCapMs = 60_000;

/** Each provider backoff is scaled by a factor in [1 - jitter, 1 + jitter), so that many accounts do not retry in step. */
export const providerBackoffJitter = 0.25;

/** The longest provider `Retry-After` honoured (429/503); a longer one is cut to this. */
export const maxProviderRetryAfterMs = 5 * 60_000;

/** How many times a job may lose its worker (a crash, SIGKILL, OOM) and still run again; past that it fails. */
export const maxStalledRuns = 5;

/**
 * Delay before the next attempt of a provider job: what the provider asked for
 * (`retryAfterMs`, from a 429 or 503 `Retry-After`), else `baseMs` doubling
 * per attempt up to `capMs` (`providerBackoffCapMs`), with jitter.
 */
export function providerBackoffMs(
  attemptsMade: number,
  retryAfterMs: number | undefined,
  baseMs: number,
  capMs = providerBackoffCapMs,
): number {
  if (retryAfterMs !== undefined) return retryAfterMs;
  const exponential = Math.min(capMs, baseMs * 2 ** Math.max(0, attemptsMade - 1));
  return Math.round(exponential * (1 - providerBackoffJitter + Math.random() * 2 * providerBackoffJitter));
}

/** A handshake job (ConnectAccount, CompleteOAuthConnection, the connecting sweep's re-queue). */
export const handshakeJobOptions = {
  attempts: handshakeAttempts,
  backoff: { type: providerBackoff },
  // Kept a while for operators to look at, then removed.
  removeOnComplete: { age: 3_600, count: 1_000 },
  removeOnFail: { age: 7 * 86_400, count: 10_000 },
} satisfies JobsOptions;

/** An OAuth refresh job; removed when done, so that its job id holds back refreshes only while it is queued or running. */
export const refreshJobOptions = {
  attempts: refreshAttempts,
  backoff: { type: providerBackoff },
  removeOnComplete: true,
  removeOnFail: true,
} satisfies JobsOptions;

/**
 * The backoff type of upstream revocations (RFC 7009, after DeleteAccount):
 * the provider backoff, slower and longer, since nobody waits for it and a
 * provider that is down is better given time than asked again at once.
 */
export const revocationBackoff = "revocation";

/**
 * Attempts of one revocation job. With the revocation backoff and the default
 * `ROOMKEY_PROVIDER_RETRY_MS` (1 s): 5 s, 10 s, 20 s, 40 s, 80 s, 160 s, 300 s
 * between them, about 10 minutes of trying (7.7 at least with the jitter);
 * then the revocation is recorded as failed and the tokens are wiped.
 */
export const revocationAttempts = 8;

/** A revocation's first backoff step, in multiples of `ROOMKEY_PROVIDER_RETRY_MS` (5 s by default; 250 ms in tests at 50 ms). */
export const revocationBackoffScale = 5;

/** The revocation backoff doubles up to this. */
export const revocationBackoffCapMs = 5 * 60_000;

/**
 * A pending revocation unchanged for this long has lost its job (Redis refused
 * it at DeleteAccount, or lost it): the account sweep queues it again. A job
 * still waiting out its backoff has the same id, so queueing it again is a no-op.
 */
export const revocationSweepGraceMs = 5 * 60_000;

/** Delay before a revocation job's next attempt: the provider backoff from `revocationBackoffScale` × `providerRetryMs`. */
export function revocationBackoffMs(
  attemptsMade: number,
  retryAfterMs: number | undefined,
  providerRetryMs: number,
): number {
  return providerBackoffMs(
    attemptsMade,
    retryAfterMs,
    revocationBackoffScale * providerRetryMs,
    revocationBackoffCapMs,
  );
}

/**
 * An upstream revocation job; removed when it ends, so that the account sweep
 * may queue one that failed on something unexpected (the account still says
 * pending) again under the same id.
 */
export const revocationJobOptions = {
  attempts: revocationAttempts,
  backoff: { type: revocationBackoff },
  removeOnComplete: true,
  removeOnFail: true,
} satisfies JobsOptions;

/** A one-off connecting sweep without grace (after Redis lost or refused handshakes): three tries, 1 s, 2 s apart. */
export const sweepRequestJobOptions = {
  attempts: 3,
  backoff: { type: "exponential", delay: 1_000 },
  removeOnComplete: true,
  removeOnFail: true,
} satisfies JobsOptions;

/**
 * A data key's rewrap under the current master key: a few quick tries (it is one read and one write of the
 * environment's record); removed when it ends, so that the rewrap sweep may queue one that failed again.
 */
export const rewrapJobOptions = {
  attempts: 5,
  backoff: { type: "exponential", delay: 1_000 },
  removeOnComplete: true,
  removeOnFail: true,
} satisfies JobsOptions;

/** A delayed token retirement (the end of a rotation's grace period): one try; the token sweep retires what it misses. */
export const retireTokenJobOptions = { removeOnComplete: 1_000, removeOnFail: 1_000 } satisfies JobsOptions;

/**
 * A handshake's write of its outcome (src/domain/accounts/handshake.ts). Refused while the account
 * reads unchanged, it waits for the run that claimed the transition: a live one writes within
 * milliseconds; the claim of one that died between its claim and its write (SIGKILL) is finished by
 * the first write after the claim is a minute old (versioned.ts). Refused because the account really
 * changed, it is tried again up to `changedLimit` times, then the attempt fails and BullMQ runs it again.
 */
export const handshakeWriteRetries = { retryMs: 1_000, patienceMs: 120_000, changedLimit: 5 } as const;

/** The backoff type of webhook deliveries: the delay the processor chose (its error's `retryAfterMs`). */
export const webhookBackoff = "webhook";

/** Each webhook retry waits this many times longer than the one before. */
export const webhookBackoffFactor = 4;

/** Each webhook delay is scaled by a factor in [1 - jitter, 1 + jitter), so that endpoints back off out of step. */
export const webhookBackoffJitter = 0.2;

/**
 * The delay before a delivery's next attempt after `failed` failed ones:
 * `ROOMKEY_WEBHOOK_RETRY_BASE_MS` × 4^(failed - 1), at most
 * `ROOMKEY_WEBHOOK_RETRY_MAX_MS`, with jitter. With the defaults (5 s, 8 h, 11
 * attempts): 5 s, 20 s, 80 s, 5.3 min, 21 min, 85 min, 5.7 h, 8 h, 8 h, 8 h:
 * 31.6 hours in all, 25.3 at least with the jitter.
 */
export function webhookRetryDelayMs(failed: number, baseMs: number, maxMs: number, random = Math.random): number {
  const exponential = Math.min(maxMs, baseMs * webhookBackoffFactor ** Math.max(0, failed - 1));
  return Math.round(exponential * (1 - webhookBackoffJitter + random() * 2 * webhookBackoffJitter));
}

/** The schedule without jitter: each retry's delay, for the docs and for operators to check a setting. */
export function webhookRetrySchedule(attempts: number, baseMs: number, maxMs: number): number[] {
  return Array.from({ length: Math.max(0, attempts - 1) }, (_, i) =>
    webhookRetryDelayMs(i + 1, baseMs, maxMs, () => 0.5),
  );
}

/**
 * A delivery job: its attempts are set per job (a re-queued delivery has only
 * what is left); removed when done, so that the sweep may queue a lost one
 * again under the same id.
 */
export const deliverJobOptions = {
  backoff: { type: webhookBackoff },
  removeOnComplete: true,
  removeOnFail: true,
} satisfies JobsOptions;
