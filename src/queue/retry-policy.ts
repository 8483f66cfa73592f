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
