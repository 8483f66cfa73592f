/**
 * What the audit area needs from storage. The repository
 * (storage/audit-repository.ts) implements it in each environment's own
 * database and imports nothing else of the domain.
 */
import type { AuditEntry, AuditFilter } from "./audit.js";

export interface AuditStore {
  /** Writes entries of one environment in one round trip. */
  insertMany(environment: string, entries: readonly AuditEntry[]): Promise<void>;
  /** Up to `limit` entries matching `filter`, newest first, with ids below `before` when given. */
  list(environment: string, filter: AuditFilter, before: string | undefined, limit: number): Promise<AuditEntry[]>;
  /** Deletes up to about `limit` of the oldest entries with ids below `below`; returns how many went. */
  deleteOldest(environment: string, below: string, limit: number): Promise<number>;
}

/**
 * How the worker's state changes reach the audit log: accounts' status
 * changes, token retirements, endpoint disables. Never throws (a failed
 * write is the recorder's to retry, log and count).
 */
export interface WorkerAudit {
  record(
    environment: string,
    action: { method: string; resource: string; details?: Record<string, string> },
  ): Promise<void>;
}
