/**
 * What the environments area needs from storage, queues, pub/sub and providers.
 * Storage and queue modules implement these interfaces and import nothing
 * else of the domain (no service file).
 */
import type { WrappedDataKey } from "../crypto/envelope.js";
import type { PageRequest } from "../paging.js";
import type { Environment, EnvironmentEvent } from "./environments.js";

export interface EnvironmentSource {
  get(name: string): Promise<Environment | undefined>;
  listActive(): Promise<Environment[]>;
}

/** Persistence of environment records (the control database). */
export interface EnvironmentStore {
  /** Inserts a new record; false when one with that name exists. */
  insert(environment: Environment): Promise<boolean>;
  get(name: string): Promise<Environment | undefined>;
  /** Up to `page.size + 1` active records after `page.after`, ordered by name. */
  list(page: PageRequest): Promise<Environment[]>;
  /** Whether the default environments were created once already (then they are not again). */
  isBootstrapped(): Promise<boolean>;
  markBootstrapped(at: Date): Promise<void>;
  /** Writes the record if its stored version is still `expectedVersion`. */
  replace(environment: Environment, expectedVersion: number): Promise<boolean>;
  remove(name: string): Promise<void>;
}

/** What an environment owns outside its record: its database and its queues. */
export interface EnvironmentResources {
  /** Throws an UNAVAILABLE error when the queues cannot be removed now (Redis down). */
  assertQueuesReachable(): void;
  /** Creates the database, its collections and indexes. Idempotent. */
  /** Creates the database with its collections and indexes, and remembers it was, for this incarnation. */
  provision(name: string, incarnation: string): Promise<void>;
  dropDatabase(name: string): Promise<void>;
  /** Removes the environment's queues and every job on them. */
  removeQueues(name: string): Promise<void>;
}

export interface ActiveAccountCounter {
  countActive(environment: string): Promise<number>;
}

/** Tells other replicas and the workers; never throws (they also poll). */
export interface EnvironmentEventPublisher {
  publish(event: EnvironmentEvent): Promise<void>;
}

/** Where the rewrap job reads and moves environments' data keys (the control database). */
export interface DataKeyStore {
  get(name: string): Promise<Environment | undefined>;
  /** Every record, whatever its state. */
  listAll(): Promise<Environment[]>;
  /**
   * Replaces the record's wrapped data key with `to`, if the record is still
   * of `incarnation`, at `expectedVersion`, and holds `from`; false otherwise.
   * Nothing else of the record changes.
   */
  replaceDataKey(
    name: string,
    incarnation: string,
    expectedVersion: number,
    from: WrappedDataKey,
    to: WrappedDataKey,
  ): Promise<boolean>;
}

/** Queues the rewrap of an environment's data key under the current master key (job id per key: once each). */
export interface RewrapQueue {
  request(environment: string, incarnation: string, currentFingerprint: string): Promise<void>;
}
