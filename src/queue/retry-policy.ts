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
 * before it re-queues its handshake, default 30 s).
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
 * per attempt up to `providerBackoffCapMs`, with jitter.
 */
export function providerBackoffMs(attemptsMade: number, retryAfterMs: number | undefined, baseMs: number): number {
  if (retryAfterMs !== undefined) return retryAfterMs;
  const exponential = Math.min(providerBackoffCapMs, baseMs * 2 ** Math.max(0, attemptsMade - 1));
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

/** A one-off connecting sweep without grace (after Redis lost or refused handshakes): three tries, 1 s, 2 s apart. */
export const sweepRequestJobOptions = {
  attempts: 3,
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
