/**
 * What connect sessions need from storage and pub/sub. Storage modules
 * implement these and import nothing else of the domain.
 */
import type { ConnectSession } from "./connect-sessions.js";

/** Persistence of one environment's connect sessions. */
export interface ConnectSessionStore {
  insert(environment: string, session: ConnectSession): Promise<void>;
  get(environment: string, id: string): Promise<ConnectSession | undefined>;
  findByHash(environment: string, hash: string): Promise<ConnectSession | undefined>;
  /** Moves `session` (as read, at its version) to the next version with `changes`; undefined if another writer moved it first. */
  update(
    environment: string,
    session: ConnectSession,
    changes: Partial<ConnectSession>,
  ): Promise<ConnectSession | undefined>;
}

/**
 * Tells every replica to forget a session it may have cached (revoked).
 * Resolves false when the message could not be sent: replicas then drop it
 * when their cache entry ends.
 */
export interface SessionInvalidations {
  publish(environment: string, hash: string): Promise<boolean>;
}
