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
 * payload: it comes from the queue the job is on. A requested sweep works for
 * the incarnation current when it runs.
 */
export interface QueueJobs {
  handshake: {
    /** Check an account's credential with the provider: attempt `attempt` of its handshakes. */
    connect: { accountId: string; attempt: number } & IncarnationBound;
    /**
     * A one-off connecting sweep once Redis is back after losing or refusing handshakes: queue again
     * the handshakes of accounts CONNECTING without a live job, of any age with `noGrace`. (The
     * periodic sweeps run in the worker processes, workers/sweep-clock.ts, not as jobs.)
     */
    "sweep-connecting": { noGrace?: boolean };
  };
  rotation: {
    /** Retire a rotated token whose grace period has ended. */
    "retire-token": { tokenId: string } & IncarnationBound;
    /** Refresh one OAuth account's tokens (job id `refresh-<account>`: one at a time per account). */
    "refresh-account": { accountId: string; seenVersion?: number } & IncarnationBound;
    /**
     * Revoke a deleted account's tokens at its provider (RFC 7009; job id `revoke-<account>`: one per
     * account). The tokens wait, sealed, on the account; the job reads them there.
     */
    "revoke-account": { accountId: string } & IncarnationBound;
    /**
     * Wrap the environment's data key again under master key `to` (a fingerprint; job id `rewrap-<to>`:
     * once per environment and key). Idempotent; a worker whose current key is another one does nothing
     * with it (its own sweep may still move a data key it serves to its own current key until the rollout
     * ends: harmless, every replica of a rollout holds both keys).
     */
    "rewrap-data-key": { to: string } & IncarnationBound;
  };
  webhook: {
    /** Send one event to one endpoint (job id `deliver-<delivery>`, one per redelivery round). */
    deliver: { deliveryId: string; eventId: string; endpointId: string } & IncarnationBound;
  };
}

export type JobName<K extends QueueKind> = keyof QueueJobs[K] & string;
export type JobData<K extends QueueKind, N extends JobName<K>> = QueueJobs[K][N];

/**
 * The one place that builds a queue name: `{<environment>}.<kind>`. Environment
 * names cannot contain `.`, `{` or `}`, so names never collide across
 * environments; the type makes sure the name passed `parseEnvironmentName`.
 * The braces are a Redis Cluster hash tag: every key of an environment's three
 * queues (`<prefix>:{<environment>}.<kind>:<suffix>`) hashes to one slot, as
 * BullMQ's Lua scripts need, while environments spread over the cluster.
 */
export function queueName(environment: EnvironmentName, kind: QueueKind): string {
  return `{${environment}}.${kind}`;
}

/** The environment and kind a queue name was built from, or undefined for a name `queueName` never builds. */
export function parseQueueName(name: string): { environment: string; kind: QueueKind } | undefined {
  const match = /^\{([a-z0-9-]+)\}\.([a-z]+)$/.exec(name);
  const kind = queueKinds.find((k) => k === match?.[2]);
  return match?.[1] && kind ? { environment: match[1], kind } : undefined;
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

/** The one job id of an environment's rewrap under a master key (the queue names the environment). */
export function rewrapJobId(masterKeyFingerprint: string): string {
  return `rewrap-${masterKeyFingerprint}`;
}
