import type { Clock } from "../clock.js";
import { idempotencyWindowMs } from "../idempotency.js";

/** What the scheduled handshake sweep did in one environment. */
export interface HandshakeSweepResult {
  requeued: number;
  failed: number;
  purgedKeys: number;
  purgedStates: number;
  purgedClaims: number;
  purgedSessions: number;
}

export interface HandshakeSweepDeps {
  /** The connecting sweep (handshake.ts): re-queues handshakes whose job was lost, fails the stuck. */
  sweepConnecting(
    environment: string,
    options: { noGrace: boolean; incarnation: string },
  ): Promise<{ requeued: number; failed: number }>;
  store: {
    /** Removes ConnectAccount idempotency keys made before `before`. */
    purgeKeys(environment: string, before: Date): Promise<number>;
    /** Removes OAuth states that expired before `before`. */
    purgeStates(environment: string, before: Date): Promise<number>;
  };
  /** Removes connect sessions that expired before `before`. */
  purgeSessions(environment: string, before: Date): Promise<number>;
  /** Removes transition claims made before `before`, and at once those of incarnations other than `incarnation`. */
  purgeClaims(environment: string, before: Date, incarnation: string): Promise<number>;
  /** How long a transition claim is kept (storage/versioned.ts). */
  claimRetentionMs: number;
  clock: Clock;
  /** Told when the sweep re-queued or failed something. */
  onSwept?(environment: string, result: { requeued: number; failed: number }): void;
}

/** An expired connect session is kept this long, so its maker can still read that it expired. */
export const endedSessionRetentionMs = 86_400_000;

/**
 * The handshake queue's scheduled sweep of one environment: the connecting
 * sweep, then the purge of what has outlived its use (idempotency keys past
 * their window, expired OAuth states, connect sessions a day past their
 * expiry, day-old transition claims and at once
 * those a job of a replaced incarnation left).
 */
export function createHandshakeSweep(deps: HandshakeSweepDeps) {
  return async (
    environment: string,
    options: { noGrace: boolean; incarnation: string },
  ): Promise<HandshakeSweepResult> => {
    const result = await deps.sweepConnecting(environment, options);
    const now = deps.clock.now().getTime();
    const purgedKeys = await deps.store.purgeKeys(environment, new Date(now - idempotencyWindowMs));
    const purgedStates = await deps.store.purgeStates(environment, new Date(now));
    const purgedSessions = await deps.purgeSessions(environment, new Date(now - endedSessionRetentionMs));
    const purgedClaims = await deps.purgeClaims(
      environment,
      new Date(now - deps.claimRetentionMs),
      options.incarnation,
    );
    if (result.requeued + result.failed > 0) deps.onSwept?.(environment, result);
    return { ...result, purgedKeys, purgedStates, purgedClaims, purgedSessions };
  };
}
