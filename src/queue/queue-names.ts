import type { EnvironmentName } from "../domain/environments/environment-name.js";
/** The queues every environment has. */
export const queueKinds = ["handshake", "rotation", "webhook"] as const;
export type QueueKind = (typeof queueKinds)[number];

/**
 * What every job made for one environment's data carries: the incarnation of
 * the environment it was made for (`incarnationOf`). The queue says which
 * environment; this says which life of that name. A job of another
 * incarnation (the environment was deleted and created again) runs nothing.
 * Optional: jobs queued before it existed work for the current incarnation.
 */
export interface IncarnationBound {
  incarnation?: string;
}

/**
 * Job names and payloads per queue. The environment is never part of a
 * payload: it comes from the queue the job is on. Scheduled sweeps carry
 * nothing and work for the incarnation current when they run.
 */
export interface QueueJobs {
  handshake: {
    /** Check an account's credential with the provider: attempt `attempt` of its handshakes. */
    connect: { accountId: string; attempt: number } & IncarnationBound;
    /**
     * Queue again the handshakes of accounts CONNECTING without a live job; purge old idempotency
     * keys, OAuth states and transition claims. `noGrace`: a one-off sweep once Redis is back, of
     * accounts of any age (the scheduled one has none).
     */
    "sweep-connecting": { noGrace?: boolean };
  };
  rotation: {
    /** Retire a rotated token whose grace period has ended. */
    "retire-token": { tokenId: string } & IncarnationBound;
    /** Mark expired tokens, retire what a lost job did not, purge what ended long ago. */
    "sweep-tokens": Record<string, never>;
    /** Refresh one OAuth account's tokens (job id `refresh-<account>`: one at a time per account). */
    "refresh-account": { accountId: string; seenVersion?: number } & IncarnationBound;
    /**
     * Revoke a deleted account's tokens at its provider (RFC 7009; job id `revoke-<account>`: one per
     * account). The tokens wait, sealed, on the account; the job reads them there.
     */
    "revoke-account": { accountId: string } & IncarnationBound;
    /**
     * Queue refreshes for OAuth accounts whose tokens expire within the margin or sit idle, and queue
     * again the upstream revocations still pending whose job was lost.
     */
    "sweep-accounts": Record<string, never>;
  };
  webhook: {
    /** Send one event to one endpoint (job id `deliver-<delivery>`, one per redelivery round). */
    deliver: { deliveryId: string; eventId: string; endpointId: string } & IncarnationBound;
    /** Queue again overdue deliveries (Redis lost their jobs) and raise token.expiring. */
    "sweep-webhooks": Record<string, never>;
    /** Remove events and deliveries past the retention period. */
    "purge-webhooks": Record<string, never>;
  };
}

export type JobName<K extends QueueKind> = keyof QueueJobs[K] & string;
export type JobData<K extends QueueKind, N extends JobName<K>> = QueueJobs[K][N];

/**
 * The one place that builds a queue name: `<environment>.<kind>`. Environment
 * names cannot contain `.`, so names never collide across environments; the
 * type makes sure the name passed `parseEnvironmentName`.
 */
export function queueName(environment: EnvironmentName, kind: QueueKind): string {
  return `${environment}.${kind}`;
}

/** The one job id of an account's refresh: while one is queued or running, adding another changes nothing. */
export function refreshJobId(accountId: string): string {
  return `refresh-${accountId}`;
}

/** The one job id of an account's handshake attempt: adding it twice queues it once. */
export function handshakeJobId(accountId: string, attempt: number): string {
  return `connect-${accountId}-${attempt}`;
}

/**
 * The one job id of a deleted account's upstream revocation: DeleteAccount and
 * the sweep that re-queues a lost one add the same job, so it runs once.
 */
export function revokeJobId(accountId: string): string {
  return `revoke-${accountId}`;
}
