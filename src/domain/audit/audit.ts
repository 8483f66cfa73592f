import { base62Fixed } from "../ids.js";

/** Who an entry says acted: the admin key, a token, a connect session, roomkey's worker, or a caller refused. */
export type AuditActorKind = "admin" | "token" | "connect_session" | "worker" | "unauthenticated";

/**
 * One entry of an environment's audit log, as stored. Built field by field
 * from a whitelist (the edge's call facts, a worker's action), never from a
 * request body, so it never holds a secret.
 */
export interface AuditEntry {
  /** `ae_` + 8 base62 characters of the entry's time in ms + 14 random: ids sort by time. */
  id: string;
  time: Date;
  actorKind: AuditActorKind;
  /** The token or connect session id; empty for the admin key, the worker and an unknown caller. */
  actorId: string;
  /** `roomkey.v1.TokenService/CreateToken`, or a worker action such as `worker/account.status`. */
  method: string;
  /** The id or name acted on; empty when there is none. */
  resource: string;
  /** Empty for the worker. */
  requestId: string;
  /** `OK` or the gRPC status code name. */
  outcome: string;
  /** The ErrorInfo reason of a failure; empty on success. */
  reason: string;
  /** The caller's peer key (IPv6 as its /64); empty for the worker. */
  peer: string;
  /** Non-secret extras: a status change's `from` and `to`, a refused token's `token_environment`, a `count`. */
  details: Record<string, string>;
}

/** The worker's actions, as entries name them. */
export const workerActions = {
  accountStatus: "worker/account.status",
  tokenRetire: "worker/token.retire",
  endpointDisable: "worker/webhook_endpoint.disable",
  masterKeyRewrap: "worker/master_key.rewrap",
} as const;

/** Filters of a listing; all given ones must match (AND). */
export interface AuditFilter {
  /** Inclusive. */
  startTime?: Date;
  /** Exclusive. */
  endTime?: Date;
  actorId?: string;
  resource?: string;
  method?: string;
}

/**
 * The smallest id an entry at `time` can have: ids start with their time, so
 * a time range is an id range (served by the `_id` index, newest first).
 */
export function auditIdFloor(time: Date): string {
  const ms = Math.min(Math.max(0, time.getTime()), 62 ** 8 - 1);
  return `ae_${base62Fixed(ms, 8)}`;
}

/** Page sizes of ListAuditEvents: 0 means 50; more than 500 is treated as 500. */
export const defaultAuditPageSize = 50;
export const maxAuditPageSize = 500;

export function auditPageSize(requested: number): number {
  if (requested <= 0) return defaultAuditPageSize;
  return Math.min(requested, maxAuditPageSize);
}
