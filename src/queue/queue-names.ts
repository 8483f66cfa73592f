/** The queues every environment has. */
export const queueKinds = ["handshake", "rotation"] as const;
export type QueueKind = (typeof queueKinds)[number];

/**
 * Job names and payloads per queue. The environment is never part of a
 * payload: it comes from the queue the job is on. Processors and payloads
 * arrive with the token and account features.
 */
export interface QueueJobs {
  handshake: Record<never, never>;
  rotation: Record<never, never>;
}

/**
 * The one place that builds a queue name: `<environment>.<kind>`. Environment
 * names cannot contain `.`, so names never collide across environments.
 */
export function queueName(environment: string, kind: QueueKind): string {
  return `${environment}.${kind}`;
}
